"""Undoing the filter: the paper's reverse solve (eq. 3) and the zoom baseline (SPEC 4-5)."""

import numpy as np

from . import _numpy_backend
from ._backend import effective_n_threads, get_backend
from ._validation import (ACTIVATIONS, as_float, as_images, as_kernel, as_kernels, as_pair,
                          as_returned, as_shape, check_choice, covered_shape)

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


def _kernels(kernel, n_images, n_channels, dtype):
    """One kernel for every image ``(C, kh, kw)``, or ``(N, C, kh, kw)``: one per image."""
    if np.ndim(kernel) != 4:
        return as_kernel(kernel, "kernel", n_channels, dtype)
    if len(kernel) != n_images:
        raise ValueError(f"kernel holds {len(kernel)} kernels (one per image), "
                         f"but there are {n_images} images")
    return as_kernels(kernel, "kernel", n_channels, dtype)


def deconvolve(filtered, kernel, *, stride=None, activation="clip", eps=DEFAULT_EPS,
               output_shape=None, n_threads=None, backend=None, nonfinite="raise"):
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
    kernel : array_like
        ``(kh, kw)`` or ``(C, kh, kw)`` filter, e.g. ``learn_filter(...).kernel``;
        or, with a list of ``N`` images, ``(N, C, kh, kw)``: one per image.
    stride : int or (int, int), optional
        The stride the image was filtered with. Default: the kernel size.
        Overlapping (``stride < kernel``) and gapped (``stride > kernel``)
        strides work.
    activation : {"clip", "relu", "identity"}, optional
        Applied to every solved pixel; default ``"clip"`` (to ``[0, 1]``).
    eps : float, optional
        A weight with ``|w_ij| <= eps`` is not divided by: its pixel takes
        ``x``. Default ``1e-6``.
    output_shape : (int, int) or list of them, optional
        Default ``((Ho-1)*sh + kh, (Wo-1)*sw + kw)``, the region the blocks
        cover. A larger shape (e.g. the original image's; ``image.shape``
        with its channel count is accepted too) is allowed; pixels
        that no block covers, there and in the gaps of a stride larger than
        the kernel, take their :func:`zoom` value.
    n_threads, backend, nonfinite
        As in :func:`revdeconv.convolve`.

    Returns
    -------
    ndarray or list of ndarray
        ``output_shape[, C]``, the filtered image's float dtype.

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
    impl = get_backend(backend)
    n_threads = effective_n_threads(n_threads)
    images, names, is_list, is_2d, n_channels = as_images(filtered, "filtered",
                                                          nonfinite=nonfinite,
                                                          n_threads=n_threads)
    weights = _kernels(kernel, len(images), n_channels, images[0].dtype)
    kh, kw = weights.shape[-2:]
    stride = (kh, kw) if stride is None else as_pair(stride, "stride")
    check_choice(activation, "activation", ACTIVATIONS)
    eps = as_float(eps, "eps", minimum=0)
    covered = [covered_shape(image.shape, (kh, kw), stride) for image in images]
    shapes = _output_shapes(output_shape, covered, names, n_channels)
    elements = max(h * w for h, w in shapes) * n_channels
    if elements > MAX_ELEMENTS:
        raise ValueError(f"the output would hold {elements} values per image (stride "
                         f"{stride}); more than {MAX_ELEMENTS} is surely a mistake")
    outputs = impl.deconvolve(images, weights, stride, shapes, eps, activation, n_threads)
    return as_returned(outputs, is_list, is_2d)


def zoom(filtered, stride, output_shape=None):
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

    Returns
    -------
    ndarray or list of ndarray

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
    images, names, is_list, is_2d, n_channels = as_images(filtered, "filtered",
                                                          nonfinite="propagate")
    stride = as_pair(stride, "stride")
    default = [(h * stride[0], w * stride[1]) for h, w, _ in (im.shape for im in images)]
    if output_shape is None:
        shapes = default
    else:
        shapes = [as_shape(output_shape, "output_shape", n_channels)] * len(images)
    outputs = [_numpy_backend.zoom(image, stride, shape) for image, shape in zip(images, shapes)]
    return as_returned(outputs, is_list, is_2d)
