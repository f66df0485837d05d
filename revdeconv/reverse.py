"""Undoing the filter: the paper's reverse solve (eq. 3) and the zoom baseline of eq. 4."""

import numpy as np

from . import _numpy_backend
from ._backend import get_backend
from ._images import as_images, as_outputs
from ._layout import covered_shape
from ._threads import effective_n_threads
from ._validation import (ACTIVATIONS, DEFAULT_ACTIVATION, DEFAULT_NONFINITE, as_float,
                          as_kernel, as_kernels, as_pair, as_shape, check_choice)
from .learning import FilterResult

__all__ = ["deconvolve", "zoom", "DEFAULT_EPS"]

#: Weights with ``|w| <= DEFAULT_EPS`` are not divided by (the pixel takes x).
DEFAULT_EPS = 1e-6
# No image of this package's use holds 2**40 values; a stride that asks for it is a slip.
MAX_ELEMENTS = 2**40


def _output_shapes(output_shape, minimum_shapes, names, n_channels, name="output_shape"):
    """One (rows, cols) pair per image: the default, or what was asked for."""
    if output_shape is None:
        return minimum_shapes
    if (isinstance(output_shape, (list, tuple)) and len(output_shape) > 0
            and all(np.ndim(shape) == 1 for shape in output_shape)):   # one per image
        if len(output_shape) != len(minimum_shapes):
            raise ValueError(f"{name} must be one (rows, cols) pair or one per image "
                             f"({len(minimum_shapes)}), got {len(output_shape)}")
        shapes = [as_shape(shape, name, n_channels) for shape in output_shape]
    else:
        shapes = [as_shape(output_shape, name, n_channels)] * len(minimum_shapes)
    for shape, minimum, image_name in zip(shapes, minimum_shapes, names):
        if shape[0] < minimum[0] or shape[1] < minimum[1]:
            raise ValueError(f"{name} {shape} for {image_name} is smaller than the "
                             f"{minimum[0]}x{minimum[1]} region its blocks cover")
    return shapes


def _filters(kernel, n_images, n_channels, dtype, name="kernel", listed_per_image=False):
    """The one conversion point for the filters of a reverse solve.

    ``kernel`` is an array (one ``(kh, kw)`` or ``(C, kh, kw)`` kernel for every
    image, or ``(N, C, kh, kw)``: one per image), a :class:`FilterResult`, or a
    list of results (one per image); with ``listed_per_image`` any list is one
    filter per image, arrays and results mixed. Returns the weights, ``(C, kh,
    kw)`` or ``(N, C, kh, kw)`` of ``dtype``, and the results given (for their
    stride and activation), or None when not only results were given.
    """
    listed = isinstance(kernel, (list, tuple)) and len(kernel) > 0 and (
        listed_per_image or all(isinstance(k, FilterResult) for k in kernel))
    if isinstance(kernel, FilterResult):
        return as_kernel(kernel.kernel, name, n_channels, dtype), [kernel]
    if not listed:
        if np.ndim(kernel) != 4:
            return as_kernel(kernel, name, n_channels, dtype), None
        if len(kernel) != n_images:
            raise ValueError(f"{name} holds {len(kernel)} kernels (one per image), "
                             f"but there are {n_images} images")
        return as_kernels(kernel, name, n_channels, dtype), None
    if len(kernel) != n_images:
        raise ValueError(f"{name} holds {len(kernel)} filters but there are "
                         f"{n_images} images")
    results = kernel if all(isinstance(k, FilterResult) for k in kernel) else None
    kernels = [k.kernel if isinstance(k, FilterResult) else k for k in kernel]
    shapes = {np.shape(k)[-2:] for k in kernels}
    if len(shapes) != 1:
        raise ValueError(f"{name} must share one size, got {sorted(shapes)}")
    same = all(isinstance(k, np.ndarray) and k.shape == np.shape(kernels[0]) for k in kernels)
    return as_kernels(np.stack(kernels) if same else kernels, name, n_channels, dtype), results


def deconvolve(filtered, kernel, *, stride=None, activation=None, eps=DEFAULT_EPS,
               output_shape=None, n_threads=None, backend=None, nonfinite=DEFAULT_NONFINITE,
               out=None):
    """Rebuild the original-size image from a filtered one (paper eq. 3).

    Blocks are visited in raster order and, inside a block, pixels too; each
    pixel not solved yet is ``y_ij = (x - sum_{kl != ij} w_kl v_kl) / w_ij``,
    where ``v`` is the solved value of a pixel solved earlier (in this block
    or an earlier overlapping one) and ``x`` itself otherwise (the paper's
    "smoothing trick"). The activation is applied to each pixel as soon as it
    is solved. Each block keeps a running sum of ``w * v``, so solving a pixel
    costs O(1) once its block's sum is formed (O(kh*kw) per block).

    Parameters
    ----------
    filtered : array_like or list of array_like
        ``(Ho, Wo)`` or ``(Ho, Wo, C)`` filtered image, or a list of them
        (same channel count), solved in one parallel call. Dtype policy as in
        :func:`revdeconv.convolve`.
    kernel : array_like, FilterResult or list of FilterResult
        ``(kh, kw)`` or ``(C, kh, kw)`` filter, or a :class:`~revdeconv.FilterResult`
        (what :func:`revdeconv.learn_filter` returns); or, with a list of ``N``
        images, one per image: an ``(N, C, kh, kw)`` array or a list of ``N``
        results.
    stride : int or (int, int), optional
        The stride the image was filtered with. Default: the result's stride
        when results are given, else the kernel size. Overlapping
        (``stride < kernel``) and gapped (``stride > kernel``) strides work.
    activation : {"clip", "relu", "identity"}, optional
        Applied to every solved pixel. Default: the result's activation when
        results are given, else ``"clip"`` (to ``[0, 1]``).
    eps : float, optional
        A weight with ``|w_ij| <= eps`` is not divided by: its pixel takes
        ``x``. Default ``1e-6``.
    output_shape : (int, int) or list of them, optional
        Default ``((Ho-1)*sh + kh, (Wo-1)*sw + kw)``, the region the blocks
        cover. A larger shape (e.g. the original image's; ``image.shape``
        with its channel count is accepted too) is allowed; pixels
        that no block covers, there and in the gaps of a stride larger than
        the kernel, take their :func:`zoom` value.
    n_threads, backend, nonfinite, out
        As in :func:`revdeconv.convolve`; ``out`` of shape ``output_shape[, C]``.

    Returns
    -------
    ndarray or list of ndarray
        ``output_shape[, C]``, the filtered image's float dtype; ``out`` itself
        when given.

    Examples
    --------
    Given the blur filter, the reverse solve returns exactly the zoom:

    >>> import numpy as np
    >>> import revdeconv
    >>> rng = np.random.default_rng(0)
    >>> image = rng.random((180, 250, 3))
    >>> filtered = revdeconv.convolve(image, revdeconv.filters.BLUR)
    >>> restored = revdeconv.deconvolve(filtered, revdeconv.filters.BLUR,
    ...                                 output_shape=image.shape[:2])
    >>> restored.shape
    (180, 250, 3)
    >>> bool(np.allclose(restored, revdeconv.zoom(filtered, 3, image.shape[:2])))
    True
    """
    return _deconvolve(filtered, kernel, stride=stride, activation=activation, eps=eps,
                       output_shape=output_shape, n_threads=n_threads, backend=backend,
                       nonfinite=nonfinite, out=out)


def _deconvolve(filtered, kernel, *, stride, activation, eps, output_shape, n_threads,
                backend, nonfinite, kernel_name="kernel", listed_per_image=False, out=None):
    """:func:`deconvolve`; ``revdeconv.batch`` names its filters ``kernels`` and
    takes any list of them as one per image."""
    impl = get_backend(backend)
    n_threads = effective_n_threads(n_threads)
    images = as_images(filtered, "filtered", nonfinite=nonfinite, n_threads=n_threads)
    n_channels = images.n_channels
    weights, results = _filters(kernel, len(images.arrays), n_channels, images.dtype,
                                kernel_name, listed_per_image)
    kh, kw = weights.shape[-2:]
    if results is not None:
        stride = results[0].stride if stride is None else stride
        activation = results[0].activation if activation is None else activation
    stride = (kh, kw) if stride is None else as_pair(stride, "stride")
    activation = DEFAULT_ACTIVATION if activation is None else activation
    check_choice(activation, "activation", ACTIVATIONS)
    eps = as_float(eps, "eps", minimum=0)
    covered = [covered_shape(image.shape, (kh, kw), stride) for image in images.arrays]
    shapes = _output_shapes(output_shape, covered, images.names, n_channels)
    elements = max(h * w for h, w in shapes) * n_channels
    if elements > MAX_ELEMENTS:
        raise ValueError(f"the output would hold {elements} values per image (stride "
                         f"{stride}); more than {MAX_ELEMENTS} is surely a mistake")
    outputs = as_outputs(out, filtered, images, shapes)
    results = impl.deconvolve(images.arrays, weights, stride, shapes, eps, activation,
                              n_threads, outputs)
    return out if out is not None else images.returned(results)


def zoom(filtered, stride, output_shape=None, *, out=None):
    """Nearest-neighbour zoom of a filtered image: the paper's MAE0 baseline.

    ``out[r, c] = x[min(r // sh, Ho - 1), min(c // sw, Wo - 1)]``.

    Parameters
    ----------
    filtered : array_like or list of array_like
        ``(Ho, Wo)`` or ``(Ho, Wo, C)`` image (or a list). Dtype policy as in
        :func:`revdeconv.convolve`.
    stride : int or (int, int)
        Zoom factor (the stride the image was filtered with).
    output_shape : (int, int), optional
        Default ``(Ho * sh, Wo * sw)`` (``image.shape`` with its channel count
        is accepted too); any other size replicates the last
        row and column as needed, or crops.
    out : ndarray or list of ndarray, optional
        Where to write the result, as in :func:`revdeconv.convolve`.

    Returns
    -------
    ndarray or list of ndarray
        ``out`` itself when given.

    Examples
    --------
    >>> import numpy as np
    >>> import revdeconv
    >>> revdeconv.zoom(np.array([[0.0, 1.0]]), 2)
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.]])
    >>> revdeconv.zoom(np.array([[0.0, 1.0]]), 2, output_shape=(1, 5))
    array([[0., 0., 1., 1., 1.]])
    """
    # Zoom copies pixels: a NaN stays a NaN where it was, and nothing else.
    images = as_images(filtered, "filtered", nonfinite="propagate")
    stride = as_pair(stride, "stride")
    if output_shape is None:
        shapes = [(h * stride[0], w * stride[1]) for h, w, _ in (im.shape for im in images.arrays)]
    else:
        shapes = [as_shape(output_shape, "output_shape", images.n_channels)] * len(images.arrays)
    outputs = as_outputs(out, filtered, images, shapes) or [None] * len(shapes)
    results = [_numpy_backend.zoom(image, stride, shape, output)
               for image, shape, output in zip(images.arrays, shapes, outputs)]
    return out if out is not None else images.returned(results)
