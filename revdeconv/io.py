"""Reading and writing image files, with the pixels as they are in the file.

:func:`read_image` reads one image (or one page of a multi-page TIFF) and says
what it read: a :class:`Picture` of the pixels as floats in ``[0, 1]``
(channels last), the alpha channel apart, kept as the last channel or
dropped (``alpha=``), and the file's bit depth: 8, 16, or 32 for floating
point. :func:`load_image` is its short form (the pixels, alpha last).
:func:`save_image` writes 8-bit, 16-bit (grey and colour, PNG and TIFF) and
float32 (TIFF) files. Every file that cannot be read raises
:class:`ImageReadError`, which names the file and the reason.

Formats. PNG files are written, and read when they are plain (8 or 16 bits,
no palette, not interlaced, no EXIF), by this package's own PNG code (the same
pixels as Pillow's, faster, the GIL released); a 16-bit colour PNG it leaves is
read with Pillow's PNG decoder twice, once for each byte of a sample (Pillow's
own reading keeps 8 of the 16 bits). Pillow reads and writes the rest, where it
holds them exactly; TIFF is read through
`tifffile <https://pypi.org/project/tifffile/>`_ when it is installed
(``pip install "revdeconv[tiff]"``). Without it, a TIFF Pillow reads exactly
(8 bits per sample, 16-bit or float grey) is read by Pillow, and any other
raises :class:`ImageReadError` saying what to install.

Pages. A multi-page TIFF holds several images; :func:`page_count` says how
many and ``read_image(path, page=n)`` reads one (reduced-resolution copies,
such as thumbnails, are not pages). ``read_image`` refuses to guess which
page of a multi-page file is meant.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from revdeconv.io import load_image, read_image, save_image
>>> path = os.path.join(tempfile.mkdtemp(), "ramp.png")
>>> save_image(path, np.linspace(0, 1, 12).reshape(3, 4), bits=16)
>>> picture = read_image(path)
>>> picture.pixels.shape, picture.alpha, picture.bits
((3, 4), None, 16)
>>> load_image(path).shape
(3, 4)
"""

import io
import operator
import os
import warnings
from typing import NamedTuple, Optional

import numpy as np
from PIL import Image

from ._codecs import INSTALL_TIFF, ImageReadError, count_pages, decode, tifffile_module
from ._atomic import remove_stale_temporaries, write_atomically
from ._png import png_bytes

from ._native import levels as _levels       # None: levels() in NumPy

__all__ = ["ImageReadError", "Picture", "read_image", "load_image", "page_count", "save_image",
           "levels", "load_array", "save_array", "write_atomically", "remove_stale_temporaries",
           "ALPHA", "BITS"]

#: What :func:`read_image` does with an alpha channel.
ALPHA = ("split", "last", "drop")
#: The bit depths :func:`save_image` writes: 8 and 16 bits, and 32 for float32 (TIFF).
BITS = (8, 16, 32)
#: How PNG files are compressed when no level is given: zlib's fastest level with
#: its run-length strategy, as OpenCV compresses PNG. PNG files are written by this
#: package's own writer (every row Paeth-filtered, by a compiled loop releasing the
#: GIL), 8- and 16-bit, grey or colour, with or without alpha. On photographs and
#: filtered images the files come out as small as Pillow's at its level 6 (within
#: 1%) and are written 8 to 9 times faster (README, "Speed over folders").
DEFAULT_PNG_COMPRESSION = None


class Picture(NamedTuple):
    """One image as :func:`read_image` read it."""

    #: float, ``(H, W)`` (grey) or ``(H, W, C)``, in ``[0, 1]``: float64, or float32 for a
    #: float32 (or float16) file. With ``alpha="last"`` the alpha channel is the last one.
    pixels: np.ndarray
    #: ``(H, W)`` in ``[0, 1]``, of the pixels' dtype, with ``alpha="split"`` when the
    #: file has an alpha channel; None otherwise.
    alpha: Optional[np.ndarray]
    #: The file's depth: 8 (8 bits or fewer per sample, palettes), 16 (9 to 16 bits),
    #: or 32 (floating point, or integers wider than 16 bits).
    bits: int


# -- reading ---------------------------------------------------------------------------

def read_image(path, *, alpha="split", page=None):
    """Read an image file: its pixels in ``[0, 1]``, its alpha and its bit depth.

    Integer samples are divided by their largest value (255 for 8 bits,
    65535 for 16 bits, ``2**b - 1`` for ``b`` bits); floating-point samples
    are taken as they are, float32 staying float32, and clipped to
    ``[0, 1]`` with a warning naming the range when some lie outside.
    Palette images become RGB (RGBA with a transparent colour), bilevel and
    grey images stay grey, CMYK and other colour spaces become RGB, a
    transparent colour key (PNG ``tRNS``) becomes alpha, premultiplied alpha
    is undone, and the EXIF (or TIFF) orientation is applied, so the array
    is upright.

    Parameters
    ----------
    path : str or os.PathLike
    alpha : {"split", "last", "drop"}, optional
        ``"split"`` (default): ``pixels`` holds the colour channels and
        ``alpha`` the alpha channel (None when the file has none).
        ``"last"``: alpha is the last channel of ``pixels`` (``(H, W, 2)`` for
        grey + alpha, ``(H, W, 4)`` for RGBA), as :func:`load_image` returns.
        ``"drop"``: the colour channels only.
    page : int, optional
        The page (from 0) of a multi-page TIFF; see :func:`page_count`.
        Needed when the file has more than one page.

    Returns
    -------
    Picture
        ``(pixels, alpha, bits)``: ``pixels`` ``(H, W)`` or ``(H, W, C)``
        float64 (float32 for a float32 or float16 file), ``alpha`` ``(H, W)``
        or None, ``bits`` 8, 16 or 32 (floating point).

    Raises
    ------
    ImageReadError
        The file is missing, not an image, truncated or corrupt, or needs
        tifffile to be read at its full depth (the message says what to install).
    ValueError
        ``alpha`` is not one of the above, or ``page`` is missing (for a
        multi-page file) or out of range.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from revdeconv.io import read_image, save_image
    >>> path = os.path.join(tempfile.mkdtemp(), "logo.png")
    >>> save_image(path, np.ones((2, 3, 4)))             # opaque RGBA
    >>> picture = read_image(path)
    >>> picture.pixels.shape, picture.alpha.shape, picture.bits
    ((2, 3, 3), (2, 3), 8)
    >>> read_image(path, alpha="last").pixels.shape
    (2, 3, 4)
    """
    if not isinstance(alpha, str) or alpha not in ALPHA:
        raise ValueError(f"alpha must be one of {', '.join(map(repr, ALPHA))}, got {alpha!r}")
    if page is not None and (isinstance(page, bool) or not isinstance(page, (int, np.integer))
                             or page < 0):
        raise ValueError(f"page must be a whole number from 0, got {page!r}")
    decoded = decode(path, page)
    pixels, has_alpha = decoded.pixels, decoded.has_alpha
    if not decoded.exact:
        pixels = _clipped(pixels, path)
    if not has_alpha or alpha == "last":
        return Picture(pixels, None, decoded.bits)
    # copies, not views: the array with alpha is not kept alive by them
    colour = np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 2 else pixels[:, :, :-1])
    split = np.ascontiguousarray(pixels[:, :, -1]) if alpha == "split" else None
    return Picture(colour, split, decoded.bits)


def load_image(path, *, alpha="last", page=None):
    """Read an image file as a float array in ``[0, 1]``: :func:`read_image`'s pixels.

    Parameters
    ----------
    path : str or os.PathLike
    alpha : {"last", "drop"}, optional
        ``"last"`` (default): an alpha channel is the last channel.
        ``"drop"``: the colour channels only.
    page : int, optional
        The page of a multi-page TIFF (see :func:`read_image`).

    Returns
    -------
    ndarray
        ``(H, W)``, ``(H, W, 2)``, ``(H, W, 3)`` or ``(H, W, 4)``; float64, or
        float32 for a float32 file.

    Raises
    ------
    ImageReadError
        The file is missing, not an image, truncated or corrupt.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from revdeconv.io import load_image, save_image
    >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
    >>> save_image(path, np.full((2, 2), 0.5))
    >>> load_image(path)
    array([[0.50196078, 0.50196078],
           [0.50196078, 0.50196078]])
    """
    if alpha not in ("last", "drop"):
        raise ValueError(f"alpha must be 'last' or 'drop', got {alpha!r}")
    return read_image(path, alpha=alpha, page=page).pixels


def page_count(path):
    """The number of pages of an image file: those of a TIFF, else 1.

    Reduced-resolution copies in a TIFF (thumbnails) are not pages.

    Raises
    ------
    ImageReadError
        The file cannot be read.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from revdeconv.io import page_count, save_image
    >>> path = os.path.join(tempfile.mkdtemp(), "one.png")
    >>> save_image(path, np.zeros((2, 2)))
    >>> page_count(path)
    1
    """
    return count_pages(path)


def _clipped(pixels, path):
    """Pixels outside [0, 1] (float or signed samples) clipped, with a warning."""
    low, high = float(np.nanmin(pixels)), float(np.nanmax(pixels))
    if low < 0 or high > 1:
        warnings.warn(f"{os.fspath(path)}: pixels span [{low:g}, {high:g}]; clipped to "
                      f"[0, 1]", UserWarning, stacklevel=3)
        pixels = np.clip(pixels, 0, 1)
    return pixels


# -- writing ---------------------------------------------------------------------------

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
    image = np.asarray(image)
    # a new array (float, as the rounding needs): the passes below work in place
    stored = np.clip(image, 0, 1, dtype=np.result_type(image, 0.5))
    stored *= 2 ** bits - 1
    stored += 0.5
    return np.floor(stored, out=stored)


_SAVE_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def save_image(path, image, *, bits=8, png_compression=DEFAULT_PNG_COMPRESSION):
    """Write an image in ``[0, 1]`` to a file at 8 or 16 bits, or as float32.

    At 8 and 16 bits values are clipped to ``[0, 1]``, multiplied by 255 (or
    65535) and rounded half up, as the author's Java code (``Math.round``)
    does; at 32 bits they are stored as float32, as they are. The format
    comes from the file name's extension. The last channel of a 2- or
    4-channel image is alpha. The file is written whole or not at all: a
    temporary file beside it is renamed into place.

    Parameters
    ----------
    path : str or os.PathLike
    image : array_like
        ``(H, W)`` or ``(H, W, C)`` with ``C`` in 1-4, real values.
    bits : {8, 16, 32}, optional
        8 (default) for any format. 16 for PNG and TIFF, grey or colour (a
        16-bit colour TIFF needs tifffile). 32: a float32 TIFF (colour needs tifffile).
    png_compression : int or None, optional
        zlib's level for a PNG file, 0 (none, fastest) to 9 (smallest, slowest),
        with zlib's default strategy. None (default): level 1 with the run-length
        strategy (:data:`DEFAULT_PNG_COMPRESSION`). Other formats ignore it.

    Raises
    ------
    ValueError
        A bad shape, non-finite values, an unknown extension or ``bits``, or
        ``bits=32`` for a format other than TIFF.
    ImportError
        A 16-bit or float colour TIFF without tifffile (the message says what
        to install).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from revdeconv.io import read_image, save_image
    >>> path = os.path.join(tempfile.mkdtemp(), "colour16.png")
    >>> save_image(path, np.full((2, 3, 3), 0.25), bits=16)
    >>> read_image(path).bits
    16
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
    if isinstance(bits, bool) or bits not in BITS:
        raise ValueError(f"bits must be 8, 16 or 32 (float32), got {bits!r}")
    if png_compression is not None and not _is_level(png_compression):
        raise ValueError(f"png_compression must be None or an integer from 0 to 9, "
                         f"got {png_compression!r}")
    path = os.fspath(path)
    fmt = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format from the file name {path!r}")
    if bits == 32 and fmt != "TIFF":
        raise ValueError(f"bits=32 (float32) is for TIFF files (.tif, .tiff), not {fmt}")
    colour = array.ndim == 3
    stored = _stored(array, bits)
    if fmt == "PNG":
        write_atomically(path, lambda f: f.write(png_bytes(stored, png_compression)))
    elif fmt == "TIFF" and bits > 8 and colour:
        tifffile = tifffile_module()
        if tifffile is None:
            raise ImportError(f"writing a {'float' if bits == 32 else '16-bit'} colour TIFF "
                              f"needs tifffile: {INSTALL_TIFF}")
        options = dict(photometric="rgb" if stored.shape[2] >= 3 else "minisblack",
                       extrasamples=["unassalpha"] if stored.shape[2] in (2, 4) else None)

        def write(f):                     # (tifffile wants a file with a name, or memory)
            memory = io.BytesIO()
            tifffile.imwrite(memory, stored, **options)
            f.write(memory.getbuffer())
        write_atomically(path, write)
    else:
        if bits == 16 and colour:
            raise OSError(f"cannot write a 16-bit colour image as {fmt}: use PNG or TIFF")
        picture = Image.fromarray(stored)     # L, LA, RGB, RGBA, I;16 or F by shape and dtype
        write_atomically(path, lambda f: picture.save(f, format=fmt))


def _stored(array, bits):
    """The samples of ``array`` stored at ``bits`` bits (float32 at 32, else the
    :func:`levels` as integers); ValueError when a value is not finite. A float image
    goes through the compiled loop (one pass, the GIL released) when it is built."""
    if _levels is not None and bits != 32 and array.dtype in (np.float32, np.float64):
        values = np.ascontiguousarray(array)
        stored = np.empty(values.shape, np.uint8 if bits == 8 else np.uint16)
        if _levels.stored_levels(values.reshape(-1), stored.reshape(-1), 2.0 ** bits - 1):
            return stored
    elif np.isfinite(array).all():
        return array.astype(np.float32) if bits == 32 else levels(
            np.asarray(array, dtype=np.float64), bits).astype(
                np.uint8 if bits == 8 else np.uint16)
    raise ValueError("image must hold finite values only")


def _is_level(value):
    """Whether ``value`` is a zlib level: an integer (not a bool, nor a float) 0-9."""
    try:
        return not isinstance(value, bool) and operator.index(value) in range(10)
    except TypeError:
        return False


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
