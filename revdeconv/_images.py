"""Images as the façades take them: one image or a list, checked and converted once.

:func:`as_images` turns what a user passed (an array, a nested list, a list of
images) into :class:`Images`: C-contiguous ``(H, W, C)`` arrays of one float
dtype (the dtype policy of ``_validation``), finite unless asked otherwise,
with what is needed to give the results back in the caller's form (a list or
one array, 2-D when the input was). :func:`as_outputs` checks the arrays a
caller gives for the results (``out=``), and the finite checks are here too:
before a kernel (:func:`check_all_finite`), or after a convolution that
reported which images may hold a NaN (:func:`check_reported_finite`).
"""

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from ._layout import back_to_back
from ._threads import thread_share
from ._validation import NONFINITE, as_image, check_channels, check_choice, check_same_ndim
from ._validation import image_dtype

__all__ = ["Images", "as_images", "as_image_list", "is_batch", "check_finite",
           "check_all_finite", "check_reported_finite", "as_outputs"]


class Images(NamedTuple):
    """Validated images, ready for a kernel, and the form they came in."""

    #: C-contiguous ``(H, W, C)`` arrays of one float dtype.
    arrays: list
    #: What each is called in error messages (``"image"``, ``"images[3]"``).
    names: list
    #: The caller gave a list (results go back as a list).
    is_list: bool
    #: The caller's images were 2-D (results go back 2-D).
    is_2d: bool
    n_channels: int

    @property
    def dtype(self):
        return self.arrays[0].dtype

    def returned(self, outputs):
        """``(H, W, C)`` results in the caller's form: a list or one array, 2-D when
        the input was."""
        if self.is_2d:
            outputs = [output[:, :, 0] for output in outputs]
        return outputs if self.is_list else outputs[0]


def is_batch(images):
    """A list or tuple whose items are 2-D or 3-D arrays is a batch of images (one
    that holds any array of 2 dimensions or more is one too, so that the error
    names the item that is not an image).

    A nested list of numbers (``[[0.1, 0.2], [0.3, 0.4]]``) is one image.
    """
    return (isinstance(images, (list, tuple))
            and (len(images) == 0 or all(np.ndim(item) >= 2 for item in images)
                 or any(isinstance(item, np.ndarray) and item.ndim >= 2 for item in images)))


def as_image_list(images, name):
    """One image or a list of images -> (list of images, their names, given as a list)."""
    if is_batch(images):
        if len(images) == 0:
            raise ValueError(f"{name} must not be an empty list")
        names = [f"{name}[{n}]" for n in range(len(images))]
        return list(images), names, True
    return [images], [name], False


#: Values per thread below which the finite check runs on one thread.
_PARALLEL_CHECK_VALUES = 1 << 22


def _sum(values):
    with np.errstate(over="ignore", invalid="ignore"):    # (per thread: errstate is)
        return np.add.reduce(values, axis=None)


def _surely_finite(array, n_threads=1):
    """True when a sum in the array's own dtype is finite, which it is exactly when
    every value is, unless huge finite values overflow it (then False, and a
    value-by-value test must settle it): one vectorised pass, no temporary.
    A large C-contiguous array is summed in parts at once (NumPy releases the
    GIL while it sums), on threads taken from the package's shared budget."""
    if not array.flags.c_contiguous or array.size < 2 * _PARALLEL_CHECK_VALUES:
        return bool(np.isfinite(_sum(array)))
    with thread_share(n_threads, array.size, _PARALLEL_CHECK_VALUES) as parts:
        if parts == 1:
            return bool(np.isfinite(_sum(array)))
        with ThreadPoolExecutor(parts) as pool:
            sums = list(pool.map(_sum, np.array_split(array.reshape(-1), parts)))
    return bool(np.isfinite(_sum(np.array(sums))))


def check_finite(array, name, n_threads=1):
    """Raise ValueError when ``array`` holds a NaN or an infinity."""
    if not _surely_finite(array, n_threads) and not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite pixels; pass nonfinite='propagate' "
                         f"to compute with them (they spread into the results)")


def check_all_finite(arrays, names, n_threads=1):
    """Raise ValueError, naming the first image at fault, when one of ``arrays``
    holds a NaN or an infinity. The images of a contiguous stack are checked in
    one pass; image by image only to name the one at fault (or when they do not
    lie back to back)."""
    flat = back_to_back(arrays) if len(arrays) > 1 else None
    if flat is None or not _surely_finite(flat, n_threads):
        for array, name in zip(arrays, names):
            check_finite(array, name, n_threads)


def _frame(array, kernel_shape):
    """The pixels of an ``(H, W, C)`` image within ``kh - 1`` rows or ``kw - 1``
    columns of its border, as four views (empty for a 1x1 kernel)."""
    kh, kw = kernel_shape
    height, width = array.shape[:2]
    top, bottom = min(kh - 1, height), max(height - (kh - 1), 0)
    middle = array[top:max(bottom, top)]
    return [array[:top], array[max(bottom, top):], middle[:, :kw - 1],
            middle[:, max(width - (kw - 1), kw - 1):]]


def check_reported_finite(images, suspects, kernel_shape, n_threads=1):
    """The finite check of a stride-1 convolution, after it ran.

    A NaN or an infinity makes every sum that reads it not finite (``0 * inf``
    is NaN, and so is ``inf - inf``), and at stride 1 each pixel farther than
    ``kh - 1`` rows and ``kw - 1`` columns from the border is read by every
    tap; the convolution reports (``suspects[n]``) which images had a sum that
    was not finite. Those, and any whose border frame is not surely finite
    (the taps summed may leave out a zero weight, and with it the only read of
    a corner pixel), are checked value by value, in order, so that the error
    names the first image at fault, as :func:`check_all_finite` does. An image
    reported only because huge finite values overflowed a sum passes.
    """
    for array, name, suspect in zip(images.arrays, images.names, suspects):
        if suspect or not np.isfinite(_sum([_sum(part) for part in _frame(array, kernel_shape)])):
            check_finite(array, name, n_threads)


def as_images(images, name, dtype=None, nonfinite="raise", n_threads=1):
    """Validate one image or a list of them for a kernel.

    Returns :class:`Images` whose ``arrays`` are C-contiguous ``(H, W, C)``
    arrays of one float dtype (``dtype``, or the common float dtype of the
    images), all 2-D or all 3-D in the caller's form, with one channel count,
    and (unless ``nonfinite="propagate"``) finite, which is checked on up to
    ``n_threads`` threads.

    Examples
    --------
    >>> import numpy as np
    >>> from revdeconv._images import as_images
    >>> images = as_images(np.zeros((4, 5), dtype=np.uint8), "image")
    >>> images.arrays[0].shape, images.dtype, images.is_2d
    ((4, 5, 1), dtype('float64'), True)
    >>> images.returned(images.arrays).shape
    (4, 5)
    """
    check_choice(nonfinite, "nonfinite", NONFINITE)
    images, names, is_list = as_image_list(images, name)
    if dtype is None:
        dtype = np.result_type(*(image_dtype(image, n) for image, n in zip(images, names)))
    converted = [as_image(image, n, dtype) for image, n in zip(images, names)]
    arrays = [array for array, _ in converted]
    if nonfinite == "raise":
        check_all_finite(arrays, names, n_threads)
    is_2d = [flag for _, flag in converted]
    check_same_ndim(is_2d, names)
    return Images(arrays, names, is_list, is_2d[0], check_channels(arrays, names))


_byte_bounds = getattr(np.lib, "array_utils", np).byte_bounds     # (NumPy 2, NumPy 1)


def _check_apart(outputs, out_names, inputs, in_names):
    """No output may share memory with an input or with another output (inputs may
    share memory with one another). The arrays are swept in the order of their
    lowest address, each compared (``np.shares_memory``) with those whose memory
    bounds reach past its start only, so that a long list takes about N log N
    steps, not N**2."""
    items = sorted([(*_byte_bounds(a), True, a, n) for a, n in zip(outputs, out_names)]
                   + [(*_byte_bounds(a), False, a, n) for a, n in zip(inputs, in_names)
                      if isinstance(a, np.ndarray)], key=lambda item: item[0])
    active = []
    for low, high, is_output, array, name in items:
        active = [item for item in active if item[1] > low]
        for _, _, other_is_output, other, other_name in active:
            if (is_output or other_is_output) and np.shares_memory(array, other):
                first, second = (name, other_name) if is_output else (other_name, name)
                raise ValueError(f"{first} shares memory with {second}; out must be "
                                 f"separate arrays (the inputs are read while it is written)")
        active.append((low, high, is_output, array, name))


def as_outputs(out, given, images, shapes, name="out"):
    """The caller's arrays for the results (``out=``), checked before any kernel runs.

    ``given`` is what the caller passed for the images (they must not share
    memory with ``out``), ``images`` what :func:`as_images` made of it, and
    ``shapes`` the ``(rows, cols)`` of each result. One image takes one array,
    a list of images a list (or tuple) of as many; each must be a NumPy array of
    the result's exact shape (2-D when the images are) and dtype, C-contiguous,
    writable, and share no memory with an input image or another output.

    Returns None when ``out`` is None, else ``(H, W, C)`` views of the arrays,
    for the kernels to write into.

    Examples
    --------
    >>> import numpy as np
    >>> from revdeconv._images import as_images, as_outputs
    >>> image = np.zeros((4, 5))
    >>> outputs = as_outputs(np.empty((2, 3)), image, as_images(image, "image"), [(2, 3)])
    >>> outputs[0].shape
    (2, 3, 1)
    >>> as_outputs(np.empty((2, 3), np.float32), image, as_images(image, "image"), [(2, 3)])
    Traceback (most recent call last):
    ...
    TypeError: out must have dtype float64 (the result's), got float32
    """
    if out is None:
        return None
    n_images = len(images.arrays)
    if images.is_list:
        if not isinstance(out, (list, tuple)):
            raise TypeError(f"{name} must be a list of {n_images} arrays (one per image), "
                            f"got {type(out).__name__}")
        if len(out) != n_images:
            raise ValueError(f"{name} must hold {n_images} arrays (one per image), "
                             f"got {len(out)}")
        arrays, names = list(out), [f"{name}[{n}]" for n in range(n_images)]
    else:
        arrays, names = [out], [name]
    for array, label, (height, width) in zip(arrays, names, shapes):
        shape = (height, width) if images.is_2d else (height, width, images.n_channels)
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{label} must be a NumPy array, got {type(array).__name__}")
        if array.dtype != images.dtype:
            raise TypeError(f"{label} must have dtype {images.dtype} (the result's), "
                            f"got {array.dtype}")
        if array.shape != shape:
            raise ValueError(f"{label} must have shape {shape} (the result's), "
                             f"got {array.shape}")
        if not array.flags.c_contiguous:
            raise ValueError(f"{label} must be C-contiguous")
        if not array.flags.writeable:
            raise ValueError(f"{label} must be writable, got a read-only array")
    originals, _, _ = as_image_list(given, "image")
    _check_apart(arrays, names, originals, images.names)
    return [array if array.ndim == 3 else array[:, :, np.newaxis] for array in arrays]
