"""Images as the façades take them: one image or a list, checked and converted once.

:func:`as_images` turns what a user passed (an array, a nested list, a list of
images) into :class:`Images`: C-contiguous ``(H, W, C)`` arrays of one float
dtype (the dtype policy of ``_validation``), finite unless asked otherwise,
with what is needed to give the results back in the caller's form (a list or
one array, 2-D when the input was).
"""

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from ._layout import back_to_back
from ._threads import thread_share
from ._validation import NONFINITE, as_image, check_channels, check_choice, check_same_ndim
from ._validation import image_dtype

__all__ = ["Images", "as_images", "as_image_list", "is_batch", "check_finite"]


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
        # The images of a contiguous stack in one pass; image by image only to
        # name the one at fault (or when they do not lie back to back).
        flat = back_to_back(arrays) if len(arrays) > 1 else None
        if flat is None or not _surely_finite(flat, n_threads):
            for array, n in zip(arrays, names):
                check_finite(array, n, n_threads)
    is_2d = [flag for _, flag in converted]
    check_same_ndim(is_2d, names)
    return Images(arrays, names, is_list, is_2d[0], check_channels(arrays, names))
