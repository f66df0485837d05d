"""Input checks and the dtype policy, shared by every public function.

Everything a compiled kernel will see is checked here, before it runs, and
converted to what the kernels expect: C-contiguous, native byte order,
channels last ``(H, W, C)``, one float dtype. User arrays are never written
to; a conversion makes a copy only when one is needed.

Dtype policy (as scikit-image's): float32 stays float32, float64 stays
float64, float16 becomes float32; integer images are scaled by their
dtype's maximum (uint8 255 -> 1.0), to float64. Boolean arrays (a mask fed
by mistake, most likely) are rejected, as are complex and object arrays.
"""

import numbers
import operator

import numpy as np

ACTIVATIONS = ("clip", "relu", "identity")
#: The activation every function assumes unless told: clamp to ``[0, 1]``.
DEFAULT_ACTIVATION = "clip"
#: What a NaN or infinite pixel does: an error (the default), or pass through the maths.
NONFINITE = ("raise", "propagate")
DEFAULT_NONFINITE = "raise"
#: Sizes and strides above this are mistakes (and would overflow the kernels' indices).
MAX_SIZE = 2**31 - 1


def float_dtype(dtype):
    """The float dtype the kernels compute in for an input of ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    return np.dtype(np.float64)


def as_int(value, name, minimum=None):
    """``value`` as a Python int (no floats, no bools), at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def as_pair(value, name, minimum=1):
    """An int or a pair of ints as a ``(rows, cols)`` tuple, each at least ``minimum``
    and at most ``MAX_SIZE``."""
    if np.ndim(value) == 0:
        values = (value, value)
    else:
        values = tuple(np.asarray(value, dtype=object).ravel()) if np.ndim(value) == 1 else ()
        if len(values) != 2:
            raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}")
    pair = tuple(as_int(v, name, minimum) for v in values)
    if max(pair) > MAX_SIZE:
        raise ValueError(f"{name} must be at most {MAX_SIZE}, got {value!r}")
    return pair


def as_shape(value, name, n_channels):
    """An image shape ``(rows, cols)``; ``(rows, cols, C)`` too, so ``image.shape`` works."""
    if np.ndim(value) == 1 and len(value) == 3:
        if as_int(value[2], name) != n_channels:
            raise ValueError(f"{name} {tuple(value)} has {value[2]} channels, the images "
                             f"have {n_channels}")
        value = tuple(value)[:2]
    return as_pair(value, name)


def as_float(value, name, minimum=None, strict=False):
    """A finite real number, ``> minimum`` when ``strict`` else ``>= minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value}")
    return value


def check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _as_numeric_array(value, name):
    array = np.asarray(value)
    if array.dtype.kind == "b":
        raise TypeError(f"{name} must hold numbers, got a boolean array; "
                        f"use {name}.astype(float) for 0/1 values")
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real-valued array, got dtype {array.dtype}")
    return array


def image_dtype(image, name):
    """The float dtype an image computes in (see the module's dtype policy)."""
    return float_dtype(_as_numeric_array(image, name).dtype)


def as_image(image, name, dtype):
    """``image`` as a C-contiguous ``(H, W, C)`` array of ``dtype``, and whether it was 2-D.

    Integer images are scaled to ``[0, 1]`` by their dtype's maximum.
    """
    array = _as_numeric_array(image, name)
    if array.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, C), got shape {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    array = scale_integers(array)
    is_2d = array.ndim == 2
    if is_2d:
        array = array[:, :, np.newaxis]
    return np.ascontiguousarray(array, dtype=dtype), is_2d


def scale_integers(array):
    """The dtype policy's scaling: an integer array divided by its dtype's maximum
    (uint8 255 -> 1.0), in float64; any other array as it is."""
    if array.dtype.kind in "iu":
        return array / np.iinfo(array.dtype).max
    return array


def comparable(a, b, names=("a", "b"), scale=False):
    """``a`` and ``b`` as arrays, after checking that they can be compared: real
    values, one shape, not empty (``names`` name them in the errors).

    With ``scale``, an integer image (an array with an integer dtype) is scaled
    by :func:`scale_integers`, as every other function scales it; a plain list
    of numbers has no image dtype and is taken as written.
    """
    arrays = []
    for value, name in zip((a, b), names):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real-valued array, got dtype {array.dtype}")
        arrays.append(scale_integers(array) if scale and hasattr(value, "dtype") else array)
    a, b = arrays
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have one shape, "
                         f"got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError(f"{names[0]} and {names[1]} must not be empty")
    return a, b


def as_kernel(kernel, name, n_channels, dtype):
    """``kernel`` as a C-contiguous ``(C, kh, kw)`` array of ``dtype``.

    A ``(kh, kw)`` kernel (or ``(1, kh, kw)``) is shared by all channels.
    """
    array = _as_numeric_array(kernel, name)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3 or array.shape[0] not in (1, n_channels):
        raise ValueError(f"{name} must have shape (kh, kw) or ({n_channels}, kh, kw) "
                         f"for {n_channels}-channel images, got shape {np.shape(kernel)}")
    if 0 in array.shape:
        raise ValueError(f"{name} must not be empty, got shape {np.shape(kernel)}")
    with np.errstate(over="ignore"):       # an overflow is reported just below
        array = np.ascontiguousarray(np.broadcast_to(array, (n_channels,) + array.shape[1:]),
                                     dtype=dtype)
    if not np.all(np.isfinite(array)):      # checked after the cast, which may overflow
        raise ValueError(f"{name} must hold finite values (in {np.dtype(dtype).name}) only")
    return array


def as_kernels(kernels, name, n_channels, dtype):
    """A sequence of kernels, one per image, as a C-contiguous ``(N, C, kh, kw)`` array.

    Each is validated as :func:`as_kernel` validates one: an ``(N, kh, kw)`` or
    ``(N, 1 or C, kh, kw)`` array of numbers is checked in one go, anything
    else (or one that fails) kernel by kernel, so that the error names
    ``name[n]``.
    """
    array = np.asarray(kernels) if isinstance(kernels, np.ndarray) else None
    if array is not None and array.dtype.kind in "iuf" and array.ndim in (3, 4):
        if array.ndim == 3:
            array = array[:, np.newaxis]
        if array.shape[1] in (1, n_channels) and 0 not in array.shape:
            with np.errstate(over="ignore"):
                stacked = np.ascontiguousarray(
                    np.broadcast_to(array, (len(array), n_channels) + array.shape[2:]),
                    dtype=dtype)
            if np.isfinite(stacked).all():
                return stacked
    return np.stack([as_kernel(k, f"{name}[{n}]", n_channels, dtype)
                     for n, k in enumerate(kernels)])


def as_bias(bias, n_channels, dtype, name="bias"):
    """``bias`` (None, a scalar or one value per channel) as a ``(C,)`` array."""
    if bias is None:
        return np.zeros(n_channels, dtype=dtype)
    array = _as_numeric_array(bias, name)
    if array.ndim > 1 or array.size not in (1, n_channels):
        raise ValueError(f"{name} must be a scalar or have shape ({n_channels},), "
                         f"got shape {array.shape}")
    with np.errstate(over="ignore"):       # an overflow is reported just below
        array = np.ascontiguousarray(np.broadcast_to(array.reshape(-1), (n_channels,)),
                                     dtype=dtype)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite values (in {np.dtype(dtype).name}) only")
    return array


def check_fits(images, names, kernel_shape):
    """Every image must be at least as large as the kernel."""
    kh, kw = kernel_shape
    for image, name in zip(images, names):
        if image.shape[0] < kh or image.shape[1] < kw:
            raise ValueError(f"{name} of shape {image.shape[:2]} is smaller than the "
                             f"{kh}x{kw} kernel")


def check_channels(images, names):
    """All images share one channel count; return it."""
    n_channels = images[0].shape[2]
    for image, name in zip(images[1:], names[1:]):
        if image.shape[2] != n_channels:
            raise ValueError(f"{name} has {image.shape[2]} channels, {names[0]} has {n_channels}")
    return n_channels


def check_same_ndim(is_2d, names):
    if len(set(is_2d)) > 1:
        raise ValueError(f"{', '.join(names)} must all be 2-D (H, W) or all 3-D (H, W, C)")
