"""PNG files (the PNG specification, ISO/IEC 15948): :func:`png_bytes` writes them,
:func:`read_plain` reads the common ones, :func:`chunks` splits a file into its chunks.

The writer Paeth-filters every row, by the compiled loop of ``_png_filter`` (which
releases the GIL) when the extension is built, else by :func:`paeth_numpy`: the
same bytes. The reader takes the files most folders hold, 8 or 16 bits a sample,
grey or colour, with or without alpha, not interlaced, no palette: zlib inflates
them (python-isal's inflate where it is installed, ``revdeconv[fast]``: the same
bytes, 2.3 times as fast) and ``_png_filter`` undoes the rows' filters, both with
the GIL released, in one read of the file. Anything else (a palette, fewer bits,
interlacing, an orientation in EXIF or XMP, a damaged file, an image past Pillow's
size limit, no compiled extension) is left to Pillow, which reads it as before.
"""

import struct
import zlib

import numpy as np
from PIL import Image

from ._native import png_filter as _png_filter    # None: the NumPy filter, Pillow's reader

try:                    # python-isal's inflate (``revdeconv[fast]``): 2.3 times zlib's speed
    from isal import isal_zlib as _inflate
except ImportError:
    _inflate = zlib

__all__ = ["PNG_SIGNATURE", "CHANNELS", "png_bytes", "paeth_numpy", "read_plain", "chunks",
           "key_colour"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Values per pixel of each colour type (IHDR) as the reading counts them: grey, RGB,
#: palette (as RGBA, whether or not it has transparency), grey and alpha, RGBA.
CHANNELS = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}
_PNG_BAND = 256              # rows filtered at once: bounds the temporaries
_PNG_IDAT = 1 << 23          # bytes of compressed data per IDAT chunk


def png_bytes(values, level=None):
    """A PNG file of ``values`` (uint8 or uint16; ``(H, W)`` or ``(H, W, C)``, C in
    1-4: grey, grey and alpha, RGB, RGBA): IHDR, IDAT and IEND, each with its CRC
    (the PNG specification, ISO/IEC 15948). Every row is Paeth-filtered (as small as
    choosing a filter per row, within 1-3% on photographs and filtered images, and
    a third of Sub's, OpenCV's choice, on zoomed ones), then compressed in
    bands of rows at zlib's ``level``; None: level 1, run-length strategy."""
    if values.ndim == 2:
        values = values[:, :, None]
    height, width, channels = values.shape
    raw = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder(">")).view(
        np.uint8).reshape(height, -1)
    step = channels * values.dtype.itemsize
    compressor = (zlib.compressobj(1, strategy=zlib.Z_RLE) if level is None
                  else zlib.compressobj(level))
    data = []
    for start in range(0, height, _PNG_BAND):
        stop = min(start + _PNG_BAND, height)
        data.append(compressor.compress(_paeth_rows(raw, start, stop, step)))
    data.append(compressor.flush())
    data = b"".join(data)
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 8 * values.dtype.itemsize, colour_type,
                         0, 0, 0)
    return b"".join([PNG_SIGNATURE, _png_chunk(b"IHDR", header)]
                    + [_png_chunk(b"IDAT", data[n:n + _PNG_IDAT])
                       for n in range(0, len(data), _PNG_IDAT)]
                    + [_png_chunk(b"IEND", b"")])


def _paeth_rows(raw, start, stop, step):
    """Rows ``start`` to ``stop`` of ``raw`` (bytes) with PNG filter 4 (Paeth), each row
    led by its filter-type byte; ``step`` is the bytes per pixel. The compiled loop
    (``_png_filter``) when the extension is built, else :func:`paeth_numpy`: the same
    bytes."""
    if _png_filter is None:
        above = raw[start - 1:stop - 1] if start else \
            np.vstack([np.zeros_like(raw[:1]), raw[:stop - 1]])
        return paeth_numpy(raw[start:stop], above, step)
    out = np.empty((stop - start, raw.shape[1] + 1), dtype=np.uint8)
    _png_filter.paeth_rows(raw, start, stop, step, out)
    return out


def paeth_numpy(rows, above, step):
    """Rows of bytes (``above``: the row before each) with PNG filter 4 (Paeth), each
    row led by its filter-type byte; ``step`` is the bytes per pixel."""
    def shifted(array):                  # the byte one pixel to the left (0 at the edge)
        out = np.zeros(array.shape, dtype=np.int16)
        out[:, step:] = array[:, :-step]
        return out
    a, b, c = shifted(rows), above.astype(np.int16), shifted(above)
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    predictor = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = 4
    out[:, 1:] = rows - predictor          # modulo 256, as the filter is defined
    return out


def _png_chunk(kind, body):
    crc = zlib.crc32(body, zlib.crc32(kind))
    return b"".join([struct.pack(">I", len(body)), kind, body, struct.pack(">I", crc)])


# -- reading -----------------------------------------------------------------------------

def chunks(data):
    """(type, body) of each chunk of the PNG file ``data``, CRCs checked, up to IEND."""
    position, found = 8, []
    while True:
        if position + 8 > len(data):
            raise ValueError("truncated PNG file (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        end = position + 12 + length
        if end > len(data):
            raise ValueError(f"truncated PNG file (in a {kind.decode('latin-1')} chunk)")
        body = data[position + 8:end - 4]
        if zlib.crc32(body, zlib.crc32(kind)) != struct.unpack(">I", data[end - 4:end])[0]:
            raise ValueError(f"broken PNG file (CRC error in a {kind.decode('latin-1')} chunk)")
        found.append((kind, body))
        if kind == b"IEND":
            return found
        position = end


_PLAIN_TYPES = (0, 2, 4, 6)                 # no palette
_TEXT = (b"tEXt", b"zTXt", b"iTXt")
# Text chunks where Pillow finds an orientation (EXIF as hex, XMP's tiff:Orientation)
_ORIENTED_TEXT = (b"Raw profile type exif", b"XML:com.adobe.xmp")


def _keyword(body):
    """A text chunk's keyword: the bytes before its first NUL (at most 79)."""
    return bytes(body[:80]).split(b"\0", 1)[0]


def read_plain(data):
    """``(values, key)`` of a plain PNG file (``data``, its bytes): its samples (uint8
    or uint16, ``(H, W)`` for grey, else ``(H, W, C)``) and its transparent colour
    (tRNS; None when it has none); None for any other file, and for any file without
    the compiled extension."""
    if _png_filter is None:
        return None
    data = memoryview(data)
    try:
        found = chunks(data)
    except (ValueError, struct.error):
        return None                                 # (Pillow says what is wrong)
    kind, header = found[0]
    if kind != b"IHDR" or len(header) != 13:
        return None
    width, height, depth, colour_type, method, filtering, interlace = struct.unpack(
        ">IIBBBBB", header)
    limit = Image.MAX_IMAGE_PIXELS
    if (depth not in (8, 16) or colour_type not in _PLAIN_TYPES or (method, filtering,
                                                                  interlace) != (0, 0, 0)
            or not width or not height or (limit is not None and width * height > limit)
            or any(k == b"eXIf" or (k in _TEXT and _keyword(b) in _ORIENTED_TEXT)
                   for k, b in found)):
        return None
    channels, size = CHANNELS[colour_type], depth // 8
    step = channels * size
    filtered = _inflated(b"".join(b for k, b in found if k == b"IDAT"),
                         height * (width * step + 1))
    if filtered is None:
        return None
    rows = np.empty((height, width * step), dtype=np.uint8)
    if _png_filter.unfilter_rows(np.frombuffer(filtered, np.uint8), step, rows) >= 0:
        return None                                 # a filter type past 4
    values = rows.view(">u2").astype(np.uint16) if size == 2 else rows
    values = values.reshape(height, width, channels)
    if channels == 1:
        values = values[:, :, 0]
    return values, key_colour([b for k, b in found if k == b"tRNS"], colour_type)


def _inflated(compressed, expected):
    """The ``expected`` bytes zlib gives for ``compressed`` (checksum checked); None if
    it gives others (no more than one byte past them is inflated)."""
    inflater = _inflate.decompressobj()
    try:
        data = inflater.decompress(compressed, expected + 1)
    except (zlib.error, _inflate.error):
        return None
    return data if len(data) == expected and inflater.eof else None


def key_colour(bodies, colour_type):
    """The transparent colour of a file's tRNS chunks (``bodies``; grey or RGB), as
    sample values: an int for grey, a tuple for RGB; None when there is none."""
    if not bodies or colour_type not in (0, 2) or len(bodies[0]) != (2 if colour_type == 0
                                                                       else 6):
        return None
    key = struct.unpack(">HHH" if colour_type == 2 else ">H", bodies[0])
    return key[0] if colour_type == 0 else key
