"""The forward model: strided valid convolution through an activation."""

from ._backend import get_backend
from ._images import as_images, as_outputs, check_all_finite, check_reported_finite
from ._layout import output_size
from ._threads import effective_n_threads
from ._validation import (ACTIVATIONS, DEFAULT_ACTIVATION, DEFAULT_NONFINITE, NONFINITE,
                          as_bias, as_kernel, as_pair, check_choice, check_fits)

__all__ = ["convolve"]


def convolve(image, kernel, *, stride=None, bias=None, activation=DEFAULT_ACTIVATION,
             n_threads=None, backend=None, nonfinite=DEFAULT_NONFINITE, out=None):
    """Convolve an image with a filter, stride ``n`` by default, through an activation.

    ``out[p, q, c] = f(sum_ij K_c[i, j] * image[p*sh + i, q*sw + j, c] + b_c)``:
    valid region only (no padding) and no kernel flip (cross-correlation, as
    in CNNs).

    Parameters
    ----------
    image : array_like or list of array_like
        ``(H, W)`` or ``(H, W, C)`` image, channels last, values nominally in
        ``[0, 1]``; or a list of such images (same channel count), convolved
        in one parallel call. float32 stays float32, float64 stays float64,
        float16 becomes float32, integer images are scaled by their dtype's
        maximum to float64.
    kernel : array_like
        ``(kh, kw)`` filter shared by all channels, or ``(C, kh, kw)``, one
        per channel. Cast to the image's float dtype.
    stride : int or (int, int), optional
        Step between blocks. Default: the kernel size (non-overlapping
        blocks, the paper's setting).
    bias : float or array_like, optional
        Added before the activation: a scalar or one value per channel.
        Default: no bias.
    activation : {"clip", "relu", "identity"}, optional
        ``"clip"`` (default) clamps to ``[0, 1]``, as a filtered image must
        be; ``"relu"`` is ``max(z, 0)``, the paper's printed formula.
    n_threads : int, optional
        OpenMP threads. None: OpenMP's default, which honours
        ``OMP_NUM_THREADS``; negative: counted back from that default.
    backend : {None, "compiled", "numpy"}, optional
        None uses the compiled kernels unless ``REVDECONV_BACKEND=numpy``.
    nonfinite : {"raise", "propagate"}, optional
        A NaN or infinite pixel raises ValueError (default), or passes
        through the computation (``"propagate"``: it spreads into the results).
        At stride 1 the convolution itself finds them (no pass of its own
        over the image), so the error comes after it ran: the image is
        untouched, but the contents of ``out`` are then unspecified.
    out : ndarray or list of ndarray, optional
        Where to write the result (as ``scipy.ndimage``'s ``output=`` and
        OpenCV's ``dst``): an array of the result's exact shape (2-D when the
        result is) and dtype, C-contiguous, writable, sharing no memory with
        the image; for a list of images, a list of such arrays. Reusing one
        buffer saves allocating and faulting in a fresh output every call.

    Returns
    -------
    ndarray or list of ndarray
        Shape ``((H - kh)//sh + 1, (W - kw)//sw + 1[, C])``, the image's
        float dtype; a list when a list was given. ``out`` itself when given.

    Examples
    --------
    >>> import numpy as np
    >>> import revdeconv
    >>> image = np.linspace(0, 1, 180 * 250 * 3).reshape(180, 250, 3)
    >>> revdeconv.convolve(image, revdeconv.filters.BLUR).shape
    (60, 83, 3)
    >>> revdeconv.convolve(image, revdeconv.filters.BLUR, stride=1).shape
    (178, 248, 3)

    Into an array of one's own, reused from call to call:

    >>> out = np.empty((60, 83, 3))
    >>> revdeconv.convolve(image, revdeconv.filters.BLUR, out=out) is out
    True
    """
    impl = get_backend(backend)
    n_threads = effective_n_threads(n_threads)
    check_choice(nonfinite, "nonfinite", NONFINITE)
    images = as_images(image, "image", nonfinite="propagate")     # checked below
    weights = as_kernel(kernel, "kernel", images.n_channels, images.dtype)
    kernel_shape = weights.shape[1:]
    stride = kernel_shape if stride is None else as_pair(stride, "stride")
    check_fits(images.arrays, images.names, kernel_shape)
    offsets = as_bias(bias, images.n_channels, images.dtype)
    check_choice(activation, "activation", ACTIVATIONS)
    shapes = [tuple(output_size(size, k, s) for size, k, s in zip(a.shape, kernel_shape, stride))
              for a in images.arrays]
    outputs = as_outputs(out, image, images, shapes)
    # At stride 1 every pixel enters a sum, which a NaN or an infinity makes not
    # finite: the convolution reports the images it saw one in, and the check
    # follows it (check_reported_finite) instead of a pass of its own over the
    # images. Other strides may skip pixels: their images are checked first.
    after = nonfinite == "raise" and stride == (1, 1)
    if nonfinite == "raise" and not after:
        check_all_finite(images.arrays, images.names, n_threads)
    results, suspects = impl.convolve(images.arrays, weights, offsets, stride, activation,
                                      n_threads, outputs, nonfinite)
    if after:
        check_reported_finite(images, suspects, kernel_shape, n_threads)
    return out if out is not None else images.returned(results)
