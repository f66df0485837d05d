"""Reading and writing image files (Pillow).

:func:`load_image` returns a float64 array in ``[0, 1]``, channels last:
``(H, W)`` for grey images, ``(H, W, 2)`` for grey + alpha, ``(H, W, 3)`` for
colour and ``(H, W, 4)`` for colour + alpha. :func:`save_image` clips to
``[0, 1]`` and rounds to 8 bits (or 16 bits for grey images, where asked).
Every file that cannot be read raises :class:`ImageReadError`, which names
the file.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from revdeconv.io import load_image, save_image
>>> path = os.path.join(tempfile.mkdtemp(), "ramp.png")
>>> save_image(path, np.linspace(0, 1, 12).reshape(3, 4))
>>> load_image(path).shape
(3, 4)
"""

import os
import tempfile

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageReadError", "load_image", "save_image", "levels", "load_array", "save_array",
           "write_atomically"]

# Pillow modes and the scale that maps their integers onto [0, 1]; "I" (32-bit
# integers) and "F" (32-bit floats) are scaled in _to_unit_range.
_SCALE = {"1": 1, "L": 255, "LA": 255, "RGB": 255, "RGBA": 255,
          "I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": None, "F": None}


class ImageReadError(OSError):
    """A file could not be read as an image (missing, not an image, truncated, corrupt)."""

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path!r}: {reason}")


def _plain_mode(image):
    """Convert palette and exotic modes to one of ``_SCALE``'s modes."""
    if image.mode in _SCALE:
        return image
    if image.mode in ("P", "PA"):
        has_alpha = image.mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if image.mode == "La":
        return image.convert("LA")
    if image.mode == "RGBa":
        return image.convert("RGBA")
    return image.convert("RGB")            # CMYK, YCbCr, LAB, HSV, ...


def load_image(path):
    """Read an image file as a float64 array in ``[0, 1]``.

    8-bit images are divided by 255 and 16-bit grey images by 65535
    (Pillow reads 16-bit colour files as 8-bit); 32-bit integer images by
    65535 when their values fit 16 bits, else by ``2**31 - 1``; 32-bit float
    images are taken as they are. The result is clipped to ``[0, 1]``.
    Palette images become RGB, or RGBA when they have a transparent colour;
    alpha is kept as the last channel; the EXIF orientation is applied, so
    the array is upright.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ndarray of float64
        ``(H, W)``, ``(H, W, 2)``, ``(H, W, 3)`` or ``(H, W, 4)``.

    Raises
    ------
    ImageReadError
        The file is missing, not an image, truncated or corrupt.
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
            image = _plain_mode(image)
            pixels = np.asarray(image)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"{exc} (raise PIL.Image.MAX_IMAGE_PIXELS to read it)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:   # truncated or corrupt data
        raise ImageReadError(path, f"{type(exc).__name__}: {exc}") from None
    return _to_unit_range(pixels, image.mode)


def _to_unit_range(pixels, mode):
    values = pixels.astype(np.float64)
    scale = _SCALE[mode]
    if scale is None:          # "I": 16-bit data in a 32-bit mode, or full 32-bit; "F": as is
        scale = 1 if mode == "F" else (65535 if values.max(initial=0) <= 65535 else 2**31 - 1)
        return np.clip(values / scale, 0, 1)
    return values / scale


_SAVE_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def levels(image, bits=8):
    """The integer levels (as floats) an image in ``[0, 1]`` is stored as at ``bits`` bits.

    ``floor(clip(v, 0, 1) * (2**bits - 1) + 0.5)``: clipped, then rounded half
    up, as the author's Java code (``Math.round``) does.

    Examples
    --------
    >>> import numpy as np
    >>> from revdeconv.io import levels
    >>> levels(np.array([-0.5, 0.5, 1 / 510, 2.0]))
    array([  0., 128.,   1., 255.])
    """
    top = 2 ** bits - 1
    return np.floor(np.clip(image, 0, 1) * top + 0.5)


def save_image(path, image, *, bits=8):
    """Write an image in ``[0, 1]`` to a file, clipped and rounded to ``bits`` bits.

    Values are clipped to ``[0, 1]``, multiplied by 255 (or 65535) and rounded
    half up, as the author's Java code (``Math.round``) does. The format comes
    from the file name's extension (PNG keeps every bit). The file is written
    whole or not at all: a temporary file beside it is renamed into place.

    Parameters
    ----------
    path : str or os.PathLike
    image : array_like
        ``(H, W)`` or ``(H, W, C)`` with ``C`` in 1-4, real values.
    bits : {8, 16}, optional
        16 bits are for grey images (``(H, W)`` or ``(H, W, 1)``) only:
        Pillow has no 16-bit colour mode.
    """
    array = np.asarray(image)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"image must be a real-valued array, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in _SAVE_MODES):
        raise ValueError(f"image must have shape (H, W) or (H, W, C) with C in 1-4, "
                         f"got shape {np.shape(image)}")
    if 0 in array.shape:
        raise ValueError(f"image must not be empty, got shape {np.shape(image)}")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    if bits == 16 and array.ndim == 3:
        raise ValueError("bits=16 is for grey images only (Pillow has no 16-bit colour mode)")
    if not np.isfinite(array).all():
        raise ValueError("image must hold finite values only")
    stored = levels(array.astype(np.float64), bits)
    if bits == 16:
        picture = Image.fromarray(stored.astype(np.uint16))
    else:
        picture = Image.fromarray(stored.astype(np.uint8))   # L, LA, RGB or RGBA by shape
    path = os.fspath(path)
    fmt = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format from the file name {path!r}")
    write_atomically(path, lambda f: picture.save(f, format=fmt))


def write_atomically(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to
    ``path``: the file appears whole or not at all (an error or Ctrl-C midway
    leaves the old file, or none, and no temporary file)."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
        os.chmod(temporary, 0o666 & ~_umask())   # mkstemp's 0o600 is for secrets, not images
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_array(path):
    """Read a ``.npy`` image (``(H, W)`` or ``(H, W, C)``, real values) as it is stored.

    Raises
    ------
    ImageReadError
        The file is missing, not a ``.npy`` file, or not an image-shaped real array.
    """
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise ImageReadError(path, f"not a readable .npy file ({exc})") from None
    if array.dtype.kind not in "biuf" or array.ndim not in (2, 3) or 0 in array.shape:
        raise ImageReadError(path, f"not an image array (dtype {array.dtype}, "
                                   f"shape {array.shape})")
    return array


def save_array(path, array):
    """Write an array to a ``.npy`` file, whole or not at all."""
    array = np.asarray(array)
    write_atomically(path, lambda f: np.save(f, array, allow_pickle=False))
