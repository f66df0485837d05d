"""Decoding image files for :mod:`revdeconv.io`.

Each reader returns :class:`Decoded`: float pixels in ``[0, 1]`` (alpha last),
whether there is alpha, and the file's depth. :func:`decode` picks the reader
from the file's first bytes: TIFF through tifffile (Pillow when tifffile is
missing or leaves a page to it, and only where Pillow reads the page at its
depth), plain PNG (8 or 16 bits, no palette, not interlaced, no EXIF) by
:mod:`revdeconv._png` in one read with the GIL released, a 16-bit colour PNG it
leaves by Pillow's PNG decoder run once per byte of a sample (Pillow's own
reading keeps 8 of the 16 bits), the rest by Pillow.
"""

import contextlib
import io
import os
import struct
import zlib
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import _png as png

INSTALL_TIFF = 'pip install "revdeconv[tiff]"'
INSTALL_CODECS = "pip install imagecodecs"     # tifffile's decoders of LZW, JPEG, ...

_ORIENTATION = 0x0112                                           # the EXIF tag
_TIFF = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")     # classic and BigTIFF


class ImageReadError(OSError):
    """A file could not be read as an image (missing, not an image, truncated, corrupt)."""

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path!r}: {reason}")

    def __reduce__(self):               # pickle (to and from other processes) by its own
        return type(self), (self.path, self.reason), self.__dict__   # not OSError's args


class Decoded(NamedTuple):
    """What a reader found: float pixels (alpha last when ``has_alpha``), in [0, 1]
    for certain when ``exact`` (integers divided by their type's largest value),
    else to be checked (float samples, or integers of fewer bits than their type)."""
    pixels: np.ndarray
    has_alpha: bool
    bits: int
    exact: bool = False


# -- reading ---------------------------------------------------------------------------

def count_pages(path):
    """The pages of a TIFF (not its reduced-resolution copies), else 1."""
    with reading(path):
        if _magic(path)[:4] not in _TIFF:
            return 1
        tifffile = tifffile_module()
        if tifffile is None:
            return len(_pillow_pages(path))
        with tifffile.TiffFile(os.fspath(path)) as tif:
            return len(_tiff_pages(tif))


def decode(path, page):
    """The pixels of ``path`` (page ``page`` of a TIFF) as :class:`Decoded`."""
    with reading(path):
        head, whole = _magic(path, whole_png=True)
        if head[:4] in _TIFF:
            return _read_tiff(path, page)
        _one_page(path, page, 1)
        if whole is not None:
            plain = png.read_plain(whole)
            if plain is not None:
                return _png_pixels(*plain)
            if head[24] == 16 and head[25] in (2, 4, 6):
                return _read_png16(whole)         # 16-bit colour: Pillow keeps 8 bits
        return _read_pillow(path)


@contextlib.contextmanager
def reading(path):
    """Turn what a reader raises on a bad file into :class:`ImageReadError` (and a
    missing or out-of-range page into ValueError)."""
    try:
        yield
    except (ImageReadError, _PageError) as exc:
        if isinstance(exc, _PageError):
            raise ValueError(str(exc)) from None
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"{exc} (raise PIL.Image.MAX_IMAGE_PIXELS to read "
                                   f"it)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
            IndexError, KeyError) as exc:                        # truncated or corrupt
        raise ImageReadError(path, f"{type(exc).__name__}: {exc}") from None


class _PageError(Exception):
    """``page`` missing or out of range (a ValueError for the caller)."""


def _magic(path, whole_png=False):
    """The file's first 32 bytes (zeros past its end); with ``whole_png``, and the whole
    file when it is a PNG (else None), from the one open."""
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        head = os.read(handle, 32)
        whole = None
        if whole_png and head[:8] == png.PNG_SIGNATURE:
            with open(handle, "rb", closefd=False) as f:
                whole = head + f.read()
    finally:
        os.close(handle)
    return (head.ljust(32, b"\0"), whole) if whole_png else head.ljust(32, b"\0")


def _one_page(path, page, count):
    if page is None:
        if count > 1:
            raise _PageError(f"{os.fspath(path)!r} holds {count} pages: pass page=0 to "
                             f"{count - 1} (page_count tells how many)")
        return 0
    if page >= count:
        raise _PageError(f"page {page} is out of range: {os.fspath(path)!r} holds "
                         f"{count} page{'s' if count > 1 else ''}")
    return page


def _upright(array, orientation):
    """The array turned as EXIF/TIFF orientation ``orientation`` says (1-8) to display it."""
    turn = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
            7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, 1)}
    return np.ascontiguousarray(turn[orientation](array)) if orientation in turn else array


def _as_unit(values, top):
    return np.divide(values, top, dtype=np.float64)       # one pass, one new array


def _float_pixels(values):
    """Floating-point samples in the dtype policy: float32 (from float16) or float64."""
    return values.astype(np.float32 if values.dtype.itemsize <= 4 else np.float64)


def _key_alpha(values, key):
    """Alpha from a transparent colour key (PNG tRNS on grey or RGB)."""
    key = np.asarray(key)
    match = values == key if values.ndim == 2 else (values == key).all(axis=2)
    return (~match).astype(np.float64)


# Pillow ------------------------------------------------------------------------------

def _read_pillow(path, frame=None, hint=None):
    """Read with Pillow (frame ``frame`` of a TIFF). ``hint``: for a TIFF, what to
    install to read what Pillow cannot (None when installing would not help)."""
    with _pillow_open(path, hint) as image:
        if frame:
            image.seek(frame)
        if image.format == "TIFF":
            _check_pillow_tiff(image, path, hint)
        key = image.info.get("transparency") if image.mode in ("L", "RGB", "I;16", "I;16B",
                                                                 "I;16L", "I") else None
        image.load()
        if image.getexif().get(_ORIENTATION, 1) != 1:     # (else exif_transpose copies)
            image = ImageOps.exif_transpose(image)
        return _pillow_pixels(image, key)


def _pillow_pixels(image, key=None):
    mode = image.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif mode == "La":
        image = image.convert("LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    elif mode not in ("1", "L", "LA", "RGB", "RGBA", "I;16", "I;16L", "I;16B", "I;16N", "I",
                      "F"):
        image = image.convert("RGB")              # CMYK, YCbCr, LAB, HSV, RGBX, ...
    mode, values = image.mode, np.asarray(image)
    if mode == "F":
        return Decoded(_float_pixels(values), False, 32)
    if mode == "I":                               # 16-bit data in a 32-bit mode, or 32-bit
        pixels, bits = _wide_int(values)
    elif mode.startswith("I;16"):
        pixels, bits = _as_unit(values, 65535), 16
    else:
        pixels, bits = _as_unit(values, 1 if mode == "1" else 255), 8
    exact = mode != "I"
    if key is not None and not isinstance(key, bytes):
        return Decoded(np.dstack([pixels, _key_alpha(values, key)]), True, bits, exact)
    return Decoded(pixels, mode in ("LA", "RGBA"), bits, exact)


def _check_pillow_tiff(image, path, hint):
    """Refuse a TIFF page Pillow would read at less than its depth."""
    sample_bits = image.tag_v2.get(258, (1,))
    sample_bits = sample_bits if isinstance(sample_bits, tuple) else (sample_bits,)
    formats = image.tag_v2.get(339, (1,))
    formats = formats if isinstance(formats, tuple) else (formats,)
    wide_mode = image.mode in ("F", "I") or image.mode.startswith("I;16")
    if (max(sample_bits) > 8 and not wide_mode) or (3 in formats and image.mode != "F"):
        kind = "floating-point" if 3 in formats else f"{max(sample_bits)}-bit"
        what = f"a {kind} {_colour_name(image)} TIFF, which Pillow would read at 8 bits"
        if hint is None:
            raise ImageReadError(path, f"{what} (photometric interpretation "
                                       f"{image.tag_v2.get(262)}); not supported")
        raise ImageReadError(path, f"{what}; {hint} to read it at its depth")


def _colour_name(image):
    return {"L": "grey", "LA": "grey + alpha"}.get(image.mode, "colour")


# PNG, 16-bit colour -------------------------------------------------------------------

def _png_pixels(values, key):
    """:class:`Decoded` of a plain PNG file's samples and transparent colour."""
    pixels = _as_unit(values, 255 if values.dtype == np.uint8 else 65535)
    bits = 8 * values.dtype.itemsize
    if key is not None:
        return Decoded(np.dstack([pixels, _key_alpha(values, key)]), True, bits, True)
    return Decoded(pixels, values.ndim == 3 and values.shape[2] in (2, 4), bits, True)


def _read_png16(data):
    """A 16-bit colour PNG (``data``, its bytes) that :func:`revdeconv._png.read_plain`
    leaves (interlaced, EXIF) at 16 bits: Pillow's decoder (filters, interlacing) run
    twice, keeping the high then the low byte of each sample."""
    with Image.open(io.BytesIO(data)) as image:      # Pillow's checks (size limit) and EXIF
        orientation = image.getexif().get(_ORIENTATION, 1)
    chunks = png.chunks(data)
    width, height, _, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    compressed = b"".join(body for kind, body in chunks if kind == b"IDAT")
    size = (width, height)
    if colour_type == 4:                    # grey + alpha: 4 bytes a pixel, as 8-bit RGBA
        raw = np.asarray(Image.frombytes("RGBA", size, compressed, "zip", "RGBA", interlace))
        values = raw[..., 0::2].astype(np.uint16) << 8 | raw[..., 1::2]
    else:
        mode = "RGB" if colour_type == 2 else "RGBA"
        high, low = (np.asarray(Image.frombytes(mode, size, compressed, "zip",
                                                f"{mode};16{order}", interlace))
                     for order in "BL")     # ;16L of big-endian samples: their low bytes
        values = high.astype(np.uint16) << 8 | low
    pixels = _as_unit(values, 65535)
    key = png.key_colour([body for kind, body in chunks if kind == b"tRNS"], colour_type)
    if key is not None:
        pixels = np.dstack([pixels, _key_alpha(values, key)])
    return Decoded(_upright(pixels, orientation), colour_type != 2 or key is not None, 16,
                   exact=True)


# TIFF --------------------------------------------------------------------------------

def tifffile_module():
    """The tifffile module, or None when it is not installed."""
    try:
        import tifffile
    except ImportError:
        return None
    return tifffile


def png_values(path):
    """Values of a PNG file's pixels as :func:`decode` gives them, from its IHDR chunk
    (what a folder of PNG files reads most: no Pillow open); None for another file."""
    head = _magic(path)
    if head[:8] != png.PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    channels = png.CHANNELS.get(head[25])
    if channels is None or width * height == 0:      # (no PNG: cut short, or not one)
        return None
    return width * height * channels


def tiff_bytes(path):
    """Bytes the pixels of every page of a TIFF take as :func:`decode` gives them, from
    its headers (nothing is decoded); None when ``path`` is not a TIFF or tifffile is
    not installed."""
    with reading(path):
        tifffile = tifffile_module()
        if tifffile is None or _magic(path)[:4] not in _TIFF:
            return None
        with tifffile.TiffFile(os.fspath(path)) as tif:
            total = 0
            for index in _tiff_pages(tif):
                page = tif.pages[index]
                dtype = np.dtype(page.dtype or np.float64)
                # a palette page becomes RGB(A); floats stay float32 (from float16)
                values = int(np.prod(page.shape)) * (4 if int(page.photometric) == 3 else 1)
                total += values * (4 if dtype.kind == "f" and dtype.itemsize <= 4 else 8)
            return total


def _tiff_pages(tif):
    """Indices of a TIFF's pages: its images, not their reduced-resolution copies."""
    pages = [n for n, page in enumerate(tif.pages) if not page.subfiletype & 1]
    return pages or list(range(len(tif.pages)))


def _pillow_open(path, hint=None):
    """``Image.open``; with ``hint``, a TIFF it cannot open says what to install."""
    try:
        return Image.open(path)
    except (UnidentifiedImageError, SyntaxError) as exc:
        if hint is None:
            raise
        raise ImageReadError(path, f"a TIFF Pillow cannot read ({exc}); {hint} to read "
                                   f"it") from None


def _pillow_pages(path):
    with _pillow_open(path, INSTALL_TIFF) as image:
        pages = []
        for n in range(getattr(image, "n_frames", 1)):
            image.seek(n)
            if not image.tag_v2.get(254, 0) & 1:
                pages.append(n)
        return pages or list(range(getattr(image, "n_frames", 1)))


def _read_tiff(path, page):
    tifffile = tifffile_module()
    if tifffile is None:
        pages = _pillow_pages(path)
        return _read_pillow(path, pages[_one_page(path, page, len(pages))], INSTALL_TIFF)
    with tifffile.TiffFile(os.fspath(path)) as tif:
        pages = _tiff_pages(tif)
        index = pages[_one_page(path, page, len(pages))]
        tiff_page = tif.pages[index]
        photometric = int(tiff_page.photometric)
        if photometric in (0, 1, 2):            # MINISWHITE, MINISBLACK, RGB
            try:
                values = tiff_page.asarray()
            except ValueError as exc:
                if "imagecodecs" not in str(exc):
                    raise
                hint = (f"tifffile decodes its {tiff_page.compression.name} compression "
                        f"with imagecodecs: {INSTALL_CODECS}")
            else:
                return _tiff_pixels(tiff_page, values, path)
        else:                                   # palette, CMYK, YCbCr, CIELab, ...: Pillow's
            hint = None
    return _read_pillow(path, index, hint)


def _tiff_pixels(page, values, path):
    """A tifffile page's samples as float pixels (alpha last)."""
    axes = page.axes
    if axes == "SYX":
        values, axes = np.moveaxis(values, 0, -1), "YXS"
    if axes not in ("YX", "YXS"):
        raise ImageReadError(path, f"a TIFF page with axes {axes!r} is not an image "
                                   f"(height, width, samples)")
    if values.ndim == 2:
        values = values[:, :, None]
    samples = values.shape[2]
    colours = 3 if int(page.photometric) == 2 else 1
    extra = tuple(int(e) for e in page.extrasamples)
    if samples != colours + len(extra) or len(extra) > 1 or colours + len(extra) > 4:
        raise ImageReadError(path, f"{samples} samples per pixel ({colours} colour and "
                                   f"{len(extra)} extra) is not an image revdeconv reads")
    kind, white = values.dtype.kind, int(page.photometric) == 0   # MINISWHITE: 0 is white
    if kind == "i" and not white:               # signed: as Pillow's 32-bit mode "I"
        pixels, bits = _wide_int(values)
        return Decoded(_upright_page(pixels, page, samples), bool(extra), bits)
    if kind not in "buf":
        raise ImageReadError(path, f"{values.dtype} samples are not supported")
    if white:
        values = values.copy()
    if kind == "b":
        if white:
            values[..., :colours] = ~values[..., :colours]
        pixels, bits = values.astype(np.float64), 8
    elif kind == "u":
        depth = int(page.bitspersample)
        top = 2**depth - 1
        if white:
            values[..., :colours] = top - values[..., :colours]
        pixels, bits = _as_unit(values, top), (8 if depth <= 8 else 16 if depth <= 16 else 32)
    else:
        pixels, bits = _float_pixels(values), 32
        if white:
            pixels[..., :colours] = 1 - pixels[..., :colours]
    if extra == (1,):                           # associated (premultiplied) alpha: undo it
        alpha = pixels[..., -1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels[..., :-1] = np.where(alpha > 0, np.clip(pixels[..., :-1] / alpha, 0, 1), 0)
    return Decoded(_upright_page(pixels, page, samples), bool(extra), bits)


def _upright_page(pixels, page, samples):
    orientation = page.tags.get(_ORIENTATION)
    pixels = _upright(pixels, orientation.value if orientation is not None else 1)
    return pixels[:, :, 0] if samples == 1 else pixels


def _wide_int(values):
    """Integers in a 32-bit (or signed) container: 16-bit levels when they fit, else
    fractions of ``2**31 - 1`` (as before tifffile); negative values clip to 0."""
    wide = values.max(initial=0) > 65535
    return _as_unit(values, 2**31 - 1 if wide else 65535), 32 if wide else 16
