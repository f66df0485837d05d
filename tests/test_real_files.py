"""Pixels as they are in the file (issue 12, points 5-7), on real files.

Every file is written by an independent writer (OpenCV's libpng, tifffile,
Pillow, or the by-hand PNG writer below that follows the PNG specification),
then read through :mod:`revdeconv.io` and through the command line; nothing
is mocked. The last test runs a folder of every format people keep through
``filter``, ``learn`` and ``deconvolve``.
"""

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

import revdeconv
import revdeconv.io
from revdeconv import filters
from revdeconv.io import ImageReadError, levels, load_image, save_image

tifffile = pytest.importorskip("tifffile")          # in the test extra
try:
    import cv2                                       # in the bench extra: libpng's view
except ImportError:
    cv2 = None
needs_libpng = pytest.mark.skipif(cv2 is None, reason="OpenCV (libpng) is not installed")

def read_image(path, **options):
    """:func:`revdeconv.io.read_image` (looked up at call time)."""
    return revdeconv.io.read_image(path, **options)


def page_count(path):
    return revdeconv.io.page_count(path)


H, W = 30, 36                     # a multiple of 3 (the kernels' stride) and not square


# -- independent writers ---------------------------------------------------------------

def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


#: Adam7: (first row, first column, row step, column step) of each pass.
ADAM7 = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2),
         (1, 0, 2, 1)]


def png16(path, values, *, interlace=False, extra=()):
    """A 16-bit PNG of ``values`` (uint16, (H, W) or (H, W, C)), written by hand from the
    PNG specification (filter 0 on every row; Adam7 when ``interlace``). ``extra``:
    (type, body) chunks put before the image data."""
    values = np.asarray(values, dtype=">u2")
    if values.ndim == 2:
        values = values[:, :, None]
    h, w, c = values.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = b""
    for y0, x0, dy, dx in passes:
        part = values[y0::dy, x0::dx]
        if part.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in part)
    data = (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, int(interlace)))
            + b"".join(_chunk(kind, body) for kind, body in extra)
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


def cv2_png16(path, values):
    """A 16-bit RGB or RGBA PNG written by OpenCV (libpng, its own filters); by hand
    (:func:`png16`) where OpenCV is not installed."""
    if cv2 is None:
        return png16(path, values)
    order = [2, 1, 0] + ([3] if values.shape[2] == 4 else [])
    assert cv2.imwrite(str(path), np.ascontiguousarray(values[:, :, order]))


def cv2_read16(path):
    """A PNG's levels as OpenCV (libpng) reads them, RGB order (as revdeconv.io reads
    them where OpenCV is not installed: the tests marked needs_libpng tie the two)."""
    if cv2 is None:
        return np.round(read_image(path, alpha="last").pixels * 65535).astype(np.uint16)
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert array is not None, path
    if array.ndim == 3:
        array = array[:, :, [2, 1, 0] + ([3] if array.shape[2] == 4 else [])]
    return array


def png_header(path):
    """(bit depth, colour type) from a PNG's IHDR."""
    with open(path, "rb") as f:
        data = f.read(33)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return data[24], data[25]


def exif_orientation_chunk(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return (b"eXIf", exif.tobytes()[6:])        # without the "Exif\0\0" of JPEG's APP1


def tiff_page(path, index=0):
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[index]
        return page.asarray(), page.dtype, len(tif.pages)


def rand16(rng, shape):
    values = rng.integers(0, 65536, shape, dtype=np.uint16)
    values.flat[:6] = (0, 1, 255, 256, 65534, 65535)   # what 8 bits would merge
    return values


def rand8(rng, shape):
    return rng.integers(0, 256, shape, dtype=np.uint8)


def sha(folder):
    """Every file under ``folder`` (hidden ones too) with its SHA-256."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def main(*args):
    """``revdeconv ARGS`` in this process; the exit status."""
    import revdeconv.cli
    return revdeconv.cli.main([str(a) for a in args])


def refused(*args):
    """``revdeconv ARGS`` ends with a non-zero status (returned, or by argparse's exit)."""
    try:
        return main(*args) != 0
    except SystemExit as exc:
        return exc.code not in (0, None)


def report(capsys):
    """(stdout, stderr) of the commands so far."""
    captured = capsys.readouterr()
    return captured.out, captured.err


def summary(err, command):
    lines = [line for line in err.splitlines() if line.startswith(f"revdeconv {command}: ")
             and " done, " in line]
    assert lines, err
    return lines[-1]


def block_mean(alpha, size=3):
    h, w = alpha.shape[0] // size, alpha.shape[1] // size
    return alpha[:h * size, :w * size].reshape(h, size, w, size).mean(axis=(1, 3))


# -- point 6: 16-bit colour PNG is read at 16 bits --------------------------------------

@needs_libpng
@pytest.mark.parametrize("channels", [3, 4])
def test_read_16bit_colour_png_from_libpng_is_exact(tmp_path, rng, channels):
    values = rand16(rng, (H, W, channels))
    cv2_png16(tmp_path / "c.png", values)
    assert png_header(tmp_path / "c.png") == (16, {3: 2, 4: 6}[channels])
    picture = read_image(tmp_path / "c.png", alpha="last")
    assert picture.bits == 16 and picture.alpha is None
    assert picture.pixels.dtype == np.float64
    np.testing.assert_array_equal(picture.pixels, values / 65535)
    np.testing.assert_array_equal(load_image(tmp_path / "c.png"), values / 65535)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "adam7"])
def test_read_16bit_png_every_colour_type_and_interlace(tmp_path, rng, channels, interlace):
    values = rand16(rng, (13, 19, channels) if channels > 1 else (13, 19))
    png16(tmp_path / "p.png", values, interlace=interlace)
    picture = read_image(tmp_path / "p.png", alpha="last")
    assert picture.bits == 16
    np.testing.assert_array_equal(picture.pixels, values / 65535)


def test_read_16bit_png_applies_exif_orientation(tmp_path, rng):
    upright = rand16(rng, (5, 7, 3))
    stored = np.rot90(upright, 1)              # orientation 6: turn 90 degrees clockwise to show
    png16(tmp_path / "o.png", stored, extra=[exif_orientation_chunk(6)])
    with Image.open(tmp_path / "o.png") as check:
        assert check.getexif().get(0x0112) == 6
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").pixels, upright / 65535)


def test_read_16bit_png_colour_key_is_alpha(tmp_path, rng):
    values = rand16(rng, (6, 8, 3))
    values[2, 3] = (1000, 2000, 3000)
    png16(tmp_path / "k.png", values, extra=[(b"tRNS", struct.pack(">HHH", 1000, 2000, 3000))])
    picture = read_image(tmp_path / "k.png")
    expected = np.ones((6, 8))
    expected[2, 3] = 0
    np.testing.assert_array_equal(picture.alpha, expected)
    np.testing.assert_array_equal(picture.pixels, values / 65535)


@pytest.mark.parametrize("damage", ["truncated", "crc"])
def test_damaged_16bit_png_is_an_image_read_error(tmp_path, rng, damage):
    cv2_png16(tmp_path / "whole.png", rand16(rng, (H, W, 3)))
    data = bytearray((tmp_path / "whole.png").read_bytes())
    if damage == "truncated":
        data = data[:len(data) // 2]
    else:
        data[60] ^= 0xFF                            # inside the image data: its CRC fails
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "bad.png")
    assert "bad.png" in str(info.value)


# -- point 6: writing 16-bit and float -------------------------------------------------

@pytest.mark.parametrize("channels", [2, 3, 4])
def test_save_16bit_colour_png_round_trips_exactly(tmp_path, rng, channels):
    values = rand16(rng, (H, W, channels))
    save_image(tmp_path / "s.png", values / 65535, bits=16)
    assert png_header(tmp_path / "s.png") == (16, {2: 4, 3: 2, 4: 6}[channels])
    np.testing.assert_array_equal(read_image(tmp_path / "s.png", alpha="last").pixels,
                                  values / 65535)
    if channels > 2 and cv2 is not None:        # libpng reads the same levels
        np.testing.assert_array_equal(cv2_read16(tmp_path / "s.png"), values)
    with Image.open(tmp_path / "s.png") as check:   # and Pillow accepts the file
        check.load()


def test_save_16bit_png_every_level(tmp_path):
    values = np.arange(65536 * 3, dtype=np.int64).reshape(256, 256, 3) % 65536
    save_image(tmp_path / "all.png", values / 65535, bits=16)
    np.testing.assert_array_equal(read_image(tmp_path / "all.png").pixels, values / 65535)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("bits, dtype", [(16, np.uint16), (32, np.float32)])
def test_save_tiff_16bit_and_float(tmp_path, rng, channels, bits, dtype):
    shape = (H, W, channels) if channels > 1 else (H, W)
    image = rng.random(shape)
    save_image(tmp_path / "s.tif", image, bits=bits)
    stored, stored_dtype, pages = tiff_page(tmp_path / "s.tif")
    assert stored_dtype == dtype and pages == 1
    expected = levels(image, 16).astype(np.uint16) if bits == 16 else image.astype(np.float32)
    np.testing.assert_array_equal(stored, expected)
    picture = read_image(tmp_path / "s.tif", alpha="last")
    assert picture.bits == bits
    np.testing.assert_array_equal(picture.pixels, expected / 65535 if bits == 16 else expected)


def test_save_float_needs_tiff(tmp_path):
    with pytest.raises(ValueError, match="TIFF"):
        save_image(tmp_path / "f.png", np.zeros((2, 2)), bits=32)
    assert os.listdir(tmp_path) == []


# -- point 6: TIFF through tifffile ---------------------------------------------------

@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_read_16bit_tiff(tmp_path, rng, channels):
    values = rand16(rng, (H, W, channels) if channels > 1 else (H, W))
    options = {1: {}, 2: dict(photometric="minisblack", extrasamples=["unassalpha"]),
               3: dict(photometric="rgb"), 4: dict(photometric="rgb")}[channels]
    tifffile.imwrite(tmp_path / "t.tif", values, **options)
    picture = read_image(tmp_path / "t.tif", alpha="last")
    assert picture.bits == 16
    np.testing.assert_array_equal(picture.pixels, values / 65535)


@pytest.mark.parametrize("shape", [(H, W), (H, W, 3)], ids=["grey", "rgb"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_float_tiff(tmp_path, rng, shape, dtype):
    values = rng.random(shape).astype(dtype)
    tifffile.imwrite(tmp_path / "f.tif", values, photometric="rgb" if len(shape) == 3 else None)
    picture = read_image(tmp_path / "f.tif")
    assert picture.bits == 32 and picture.pixels.dtype == dtype   # the dtype policy
    np.testing.assert_array_equal(picture.pixels, values)


def test_read_float_tiff_outside_unit_range_warns_and_clips(tmp_path):
    tifffile.imwrite(tmp_path / "hdr.tif", np.array([[-0.5, 0.25, 3.0]], dtype=np.float32))
    with pytest.warns(UserWarning, match=r"-0\.5.*3"):
        picture = read_image(tmp_path / "hdr.tif")
    np.testing.assert_array_equal(picture.pixels, np.array([[0, 0.25, 1]], dtype=np.float32))


def test_multipage_tiff_pages_are_read_one_by_one(tmp_path, rng):
    stack = rand8(rng, (3, H, W))
    tifffile.imwrite(tmp_path / "m.tif", stack, photometric="minisblack")
    assert page_count(tmp_path / "m.tif") == 3
    for n in range(3):
        np.testing.assert_array_equal(read_image(tmp_path / "m.tif", page=n).pixels,
                                      stack[n] / 255)
    with pytest.raises(ValueError, match="3 pages"):          # never page 1 silently
        read_image(tmp_path / "m.tif")
    with pytest.raises(ValueError, match="page"):
        read_image(tmp_path / "m.tif", page=3)


def test_tiff_thumbnail_is_not_a_page(tmp_path, rng):
    image = rand8(rng, (H, W, 3))
    with tifffile.TiffWriter(tmp_path / "thumb.tif") as tif:
        tif.write(image, photometric="rgb")
        tif.write(image[::3, ::3], photometric="rgb", subfiletype=1)   # reduced resolution
    assert page_count(tmp_path / "thumb.tif") == 1
    np.testing.assert_array_equal(read_image(tmp_path / "thumb.tif").pixels, image / 255)


def test_tiff_photometric_conventions(tmp_path, rng):
    grey = rand8(rng, (H, W))
    tifffile.imwrite(tmp_path / "white.tif", grey, photometric="miniswhite")
    np.testing.assert_array_equal(read_image(tmp_path / "white.tif").pixels, (255 - grey) / 255)
    # associated (premultiplied) alpha is undone, as Pillow does for 8 bits
    colour, alpha = rand8(rng, (H, W, 3)), rand8(rng, (H, W, 1))
    premultiplied = np.floor(colour.astype(np.float64) * alpha / 255 + 0.5).astype(np.uint8)
    tifffile.imwrite(tmp_path / "assoc.tif", np.dstack([premultiplied, alpha]),
                     photometric="rgb", extrasamples=["assocalpha"])
    picture = read_image(tmp_path / "assoc.tif")
    np.testing.assert_array_equal(picture.alpha, alpha[..., 0] / 255)
    with Image.open(tmp_path / "assoc.tif") as pillow:
        np.testing.assert_allclose(picture.pixels, np.asarray(pillow.convert("RGBA"))[..., :3]
                                   / 255, atol=1.5 / 255)


def test_tiff_tifffile_cannot_decode_falls_back_to_pillow(tmp_path, rng):
    """LZW and JPEG need imagecodecs in tifffile: Pillow reads what it reads faithfully."""
    grey16 = rand16(rng, (H, W))
    Image.fromarray(grey16).save(tmp_path / "lzw16.tif", compression="tiff_lzw")
    picture = read_image(tmp_path / "lzw16.tif")
    assert picture.bits == 16
    np.testing.assert_array_equal(picture.pixels, grey16 / 65535)
    rgb = rand8(rng, (H, W, 3))
    Image.fromarray(rgb).save(tmp_path / "lzw8.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw8.tif").pixels, rgb / 255)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk_t.tif")
    picture = read_image(tmp_path / "cmyk_t.tif")
    assert picture.pixels.shape == (H, W, 3) and picture.bits == 8


def _compression_claimed(path, code):
    """Rewrite the Compression tag (259) of a little-endian TIFF's first page in place."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack("<I", data[4:8])[0]
    for n in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * n
        if struct.unpack("<H", data[entry:entry + 2])[0] == 259:
            data[entry + 8:entry + 10] = struct.pack("<H", code)
    path.write_bytes(bytes(data))


#: Read the file named by the first argument, as revdeconv does where imagecodecs is not
#: installed (tifffile looks for it once, when imported: hence a process of its own).
WITHOUT_IMAGECODECS = """
import sys
sys.modules["imagecodecs"] = None
import revdeconv.io
assert revdeconv.io.__file__ == sys.argv[2], revdeconv.io.__file__
try:
    revdeconv.io.read_image(sys.argv[1])
except revdeconv.io.ImageReadError as exc:
    print(exc)
else:
    print("read")
"""


def test_lzw_16bit_colour_tiff_without_imagecodecs_says_what_to_install(tmp_path, rng):
    """tifffile needs imagecodecs for LZW; Pillow would keep 8 bits of 16: refused, with
    what to install, never read at 8 bits."""
    tifffile.imwrite(tmp_path / "lzw16.tif", rand16(rng, (H, W, 3)), photometric="rgb")
    _compression_claimed(tmp_path / "lzw16.tif", 5)                 # LZW
    run = subprocess.run([sys.executable, "-c", WITHOUT_IMAGECODECS, str(tmp_path / "lzw16.tif"),
                          revdeconv.io.__file__], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert re.search("LZW.*pip install imagecodecs", run.stdout), run.stdout
    assert "16-bit colour" in run.stdout


@pytest.mark.parametrize("compression, predictor", [
    ("lzw", None), ("lzw", "horizontal"), ("zlib", None), ("zlib", "horizontal"),
], ids=["lzw", "lzw-predictor", "deflate", "deflate-predictor"])
@pytest.mark.parametrize("channels", [3, 4])
def test_compressed_16bit_colour_tiff_is_read_exactly(tmp_path, rng, compression, predictor,
                                                      channels):
    """LZW and deflate (with or without the predictor, as image editors write them):
    tifffile decodes them with imagecodecs, which the tiff (and test) extra installs."""
    values = rand16(rng, (H, W, channels))
    tifffile.imwrite(tmp_path / "c.tif", values, photometric="rgb", compression=compression,
                     predictor=predictor,
                     extrasamples=["unassalpha"] if channels == 4 else None)
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:          # really compressed
        assert tif.pages[0].compression.name == {"lzw": "LZW", "zlib": "ADOBE_DEFLATE"}[
            compression]
    picture = read_image(tmp_path / "c.tif", alpha="last")
    assert picture.bits == 16
    np.testing.assert_array_equal(picture.pixels, values / 65535)


def test_without_tifffile_8bit_tiff_reads_and_16bit_colour_says_what_to_install(
        tmp_path, rng, monkeypatch):
    rgb8, rgb16 = rand8(rng, (H, W, 3)), rand16(rng, (H, W, 3))
    Image.fromarray(rgb8).save(tmp_path / "tiff8.tif")
    tifffile.imwrite(tmp_path / "tiff16.tif", rgb16, photometric="rgb")
    tifffile.imwrite(tmp_path / "frgb.tif", rng.random((H, W, 3)).astype(np.float32),
                     photometric="rgb")
    monkeypatch.setitem(sys.modules, "tifffile", None)     # as if it were not installed
    np.testing.assert_array_equal(read_image(tmp_path / "tiff8.tif").pixels, rgb8 / 255)
    for name in ["tiff16.tif", "frgb.tif"]:
        with pytest.raises(ImageReadError, match=r'pip install "revdeconv\[tiff\]"'):
            read_image(tmp_path / name)
    with pytest.raises(ImportError, match=r'pip install "revdeconv\[tiff\]"'):
        save_image(tmp_path / "out.tif", rgb16 / 65535, bits=16)
    assert not (tmp_path / "out.tif").exists()


def test_command_without_tifffile_names_what_to_install(tmp_path, rng, monkeypatch, capsys):
    """A file the command cannot read or write at its depth fails with what to install;
    the others are done."""
    cv2_png16(tmp_path / "rgb16.png", rand16(rng, (H, W, 3)))
    tifffile.imwrite(tmp_path / "tiff16.tif", rand16(rng, (H, W, 3)), photometric="rgb")
    Image.fromarray(rand8(rng, (H, W, 3))).save(tmp_path / "rgb8.png")
    monkeypatch.setitem(sys.modules, "tifffile", None)
    assert main("filter", tmp_path, "--kernel", "blur", "--format", "tiff",
                "--out", tmp_path / "o") == 1
    err = report(capsys)[1]
    assert sorted(os.listdir(tmp_path / "o")) == ["rgb8.tiff"]
    for name in ["rgb16.png", "tiff16.tif"]:
        line = [x for x in err.splitlines() if name in x]
        assert len(line) == 1 and 'pip install "revdeconv[tiff]"' in line[0], err
    assert "Traceback" not in err and "1 done, 2 failed" in err


# -- the memory budget (point 2) counts every TIFF from its headers ----------------------

def read_bytes(path):
    """Bytes of the pixels of every page of ``path`` as a command reads them."""
    count = page_count(path)
    return sum(read_image(path, alpha="last", page=n if count > 1 else None).pixels.nbytes
               for n in range(count))


def footprint(path):
    from revdeconv._inputs import footprint
    return footprint(str(path))


@pytest.mark.parametrize("values, options", [
    ((H, W, 3), dict(photometric="rgb")),
    ((3, H, W), dict(photometric="rgb", planarconfig="separate")),
    ((H, W, 4), dict(photometric="rgb", extrasamples=["unassalpha"])),
    ((2, H, W, 3), dict(photometric="rgb")),
    ((H, W), {}),
], ids=["rgb", "planar", "rgba", "pages", "grey"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_footprint_of_a_tiff_is_its_pixels_as_read(tmp_path, rng, values, options, dtype):
    """Float and 16-bit colour TIFFs (which Pillow cannot open, or reads at 8 bits)
    count as the bytes their pixels take as read (float32 stays float32), not as 0."""
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, (rng.random(values) * (65535 if dtype == np.uint16 else 1))
                     .astype(dtype), **options)
    assert footprint(path) == read_bytes(path) > 0


def test_footprint_of_a_tiff_without_tifffile_is_its_size_times_a_safe_factor(
        tmp_path, rng, monkeypatch):
    """Where no header Pillow reads says the pixels' size, the file's size on disk,
    times a factor that covers an 8-bit image compressed 4:1, stands for it (never 0)."""
    from revdeconv._inputs import UNKNOWN_BYTES
    tifffile.imwrite(tmp_path / "frgb.tif", rng.random((H, W, 3)).astype(np.float32),
                     photometric="rgb")
    tifffile.imwrite(tmp_path / "zip.tif", rng.random((3, H, W)).astype(np.float32),
                     photometric="rgb", planarconfig="separate", compression="zlib")
    as_read = read_bytes(tmp_path / "frgb.tif")
    monkeypatch.setitem(sys.modules, "tifffile", None)     # as if it were not installed
    for name in ["frgb.tif", "zip.tif"]:
        size = os.path.getsize(tmp_path / name)
        assert footprint(tmp_path / name) == size * UNKNOWN_BYTES > 0, name
    assert footprint(tmp_path / "frgb.tif") >= as_read
    assert footprint(tmp_path / "missing.tif") == 0


# -- point 5: the Python functions say what they return --------------------------------

@pytest.mark.parametrize("mode, shape", [("RGBA", (H, W, 4)), ("LA", (H, W, 2))])
def test_read_image_alpha_split_last_drop(tmp_path, rng, mode, shape):
    values = rand8(rng, shape)
    Image.frombytes(mode, (W, H), values.tobytes()).save(tmp_path / "a.png")
    split = read_image(tmp_path / "a.png")                 # the default: alpha apart
    colour = values[..., :-1] / 255
    colour = colour[..., 0] if mode == "LA" else colour
    np.testing.assert_array_equal(split.pixels, colour)
    np.testing.assert_array_equal(split.alpha, values[..., -1] / 255)
    assert split.bits == 8
    last = read_image(tmp_path / "a.png", alpha="last")
    np.testing.assert_array_equal(last.pixels, values / 255)
    assert last.alpha is None
    dropped = read_image(tmp_path / "a.png", alpha="drop")
    np.testing.assert_array_equal(dropped.pixels, colour)
    assert dropped.alpha is None
    with pytest.raises(ValueError, match="alpha"):
        read_image(tmp_path / "a.png", alpha="yes")


def test_read_image_bits_of_each_kind(tmp_path, rng):
    Image.fromarray(rand8(rng, (H, W))).save(tmp_path / "l.png")
    Image.fromarray(rand8(rng, (H, W, 3))).quantize(8).save(tmp_path / "p.png")
    Image.fromarray(rand8(rng, (H, W)) > 127).save(tmp_path / "one.png")
    Image.fromarray(rand16(rng, (H, W))).save(tmp_path / "i16.png")
    tifffile.imwrite(tmp_path / "f.tif", rng.random((H, W)).astype(np.float32))
    got = {name: read_image(tmp_path / name).bits
           for name in ["l.png", "p.png", "one.png", "i16.png", "f.tif"]}
    assert got == {"l.png": 8, "p.png": 8, "one.png": 8, "i16.png": 16, "f.tif": 32}
    assert read_image(tmp_path / "p.png").alpha is None


# -- point 5: alpha through the command line -------------------------------------------

def logo(path, alpha=255):
    """An RGBA logo: a red block on black, alpha ``alpha`` everywhere (opaque by default)."""
    values = np.zeros((H, W, 4), dtype=np.uint8)
    values[..., 3] = alpha
    values[6:24, 9:27, :3] = (200, 30, 30)
    Image.fromarray(values, "RGBA").save(path)
    return values


def test_filter_an_opaque_logo_stays_opaque(tmp_path, capsys):
    values = logo(tmp_path / "logo.png")
    assert main("filter", tmp_path / "logo.png", "--kernel", "edge", "--out", tmp_path / "o") == 0
    out = read_image(tmp_path / "o" / "logo.png")
    np.testing.assert_array_equal(out.alpha, np.ones((H // 3, W // 3)))
    expected = revdeconv.convolve(values[..., :3] / 255, filters.EDGE)
    np.testing.assert_array_equal(out.pixels, levels(expected) / 255)


def test_filter_alpha_is_the_block_mean(tmp_path, rng, capsys):
    values = rand8(rng, (H, W, 4))
    Image.fromarray(values, "RGBA").save(tmp_path / "a.png")
    assert main("filter", tmp_path / "a.png", "--kernel", "sharpen", "--out", tmp_path / "o") == 0
    out = read_image(tmp_path / "o" / "a.png")
    np.testing.assert_array_equal(out.alpha, levels(block_mean(values[..., 3] / 255)) / 255)
    expected = revdeconv.convolve(values[..., :3] / 255, filters.SHARPEN)
    np.testing.assert_array_equal(out.pixels, levels(expected) / 255)


def test_filter_alpha_drop_and_filter(tmp_path, capsys):
    values = logo(tmp_path / "logo.png")
    assert main("filter", tmp_path / "logo.png", "--kernel", "edge", "--alpha", "drop",
                "--out", tmp_path / "drop") == 0
    dropped = read_image(tmp_path / "drop" / "logo.png")
    assert dropped.alpha is None and dropped.pixels.shape == (H // 3, W // 3, 3)
    assert main("filter", tmp_path / "logo.png", "--kernel", "edge", "--alpha", "filter",
                "--out", tmp_path / "as-channel") == 0                 # the old behaviour
    channel = read_image(tmp_path / "as-channel" / "logo.png", alpha="last").pixels
    np.testing.assert_array_equal(channel, levels(revdeconv.convolve(values / 255,
                                                                     filters.EDGE)) / 255)


def test_grey_alpha_filter_and_deconvolve_keep_alpha(tmp_path, rng, capsys):
    values = rand8(rng, (H, W, 2))
    values[..., 1] = 255
    values[:3, :3, 1] = 0                       # one transparent block
    Image.frombytes("LA", (W, H), values.tobytes()).save(tmp_path / "la.png")
    assert main("filter", tmp_path / "la.png", "--kernel", "blur", "--out", tmp_path / "f") == 0
    filtered = read_image(tmp_path / "f" / "la.png")
    expected_alpha = np.ones((H // 3, W // 3))
    expected_alpha[0, 0] = 0
    np.testing.assert_array_equal(filtered.alpha, expected_alpha)
    assert filtered.pixels.ndim == 2
    assert main("deconvolve", tmp_path / "f" / "la.png", "--kernel", "blur",
                "--out", tmp_path / "d") == 0
    restored = read_image(tmp_path / "d" / "la.png")
    np.testing.assert_array_equal(restored.alpha, revdeconv.zoom(expected_alpha, 3))
    np.testing.assert_array_equal(
        restored.pixels, levels(revdeconv.deconvolve(filtered.pixels, filters.BLUR)) / 255)


def test_deconvolve_alpha_follows_output_size(tmp_path, rng, capsys):
    values = rand8(rng, (10, 12, 4))
    Image.fromarray(values, "RGBA").save(tmp_path / "small.png")
    assert main("deconvolve", tmp_path / "small.png", "--kernel", "blur", "--output-size",
                "32x40", "--out", tmp_path / "d") == 0
    restored = read_image(tmp_path / "d" / "small.png")
    expected = revdeconv.zoom(values[..., 3] / 255, 3, output_shape=(32, 40))
    np.testing.assert_array_equal(restored.alpha, expected)
    assert restored.pixels.shape == (32, 40, 3)


def learn_pair(folder, name, image, kernel=filters.BLUR):
    """Write ``image`` (levels, uint8) as an original and its filtered version (8-bit)."""
    original = folder / "orig" / f"{name}.png"
    original.parent.mkdir(exist_ok=True)
    (folder / "filt").mkdir(exist_ok=True)
    Image.fromarray(image).save(original)
    picture = read_image(original)
    filtered = revdeconv.convolve(picture.pixels, kernel)
    if picture.alpha is not None:
        filtered = np.dstack([filtered, block_mean(picture.alpha)])
    save_image(folder / "filt" / f"{name}.png", filtered)


def test_learn_shared_on_rgba_learns_the_colour_channels(tmp_path, rng, capsys):
    learn_pair(tmp_path, "a", rand8(rng, (H, W, 4)))
    assert main("learn", "--original", tmp_path / "orig", "--filtered", tmp_path / "filt",
                "--shared", "--out", tmp_path / "k.json") == 0
    learned = json.loads((tmp_path / "k.json").read_text())
    original = read_image(tmp_path / "orig" / "a.png").pixels
    filtered = read_image(tmp_path / "filt" / "a.png").pixels
    expected = revdeconv.learn_filter(original, filtered)
    assert np.shape(learned["kernel"]) == (3, 3, 3)
    np.testing.assert_array_equal(np.array(learned["kernel"]), expected.kernel)
    assert main("learn", "--original", tmp_path / "orig", "--filtered", tmp_path / "filt",
                "--shared", "--alpha", "filter", "--out", tmp_path / "k4.json") == 0
    assert np.shape(json.loads((tmp_path / "k4.json").read_text())["kernel"]) == (4, 3, 3)


# -- point 6: bit depth through the command line ---------------------------------------

def test_filter_16bit_rgb_png_gives_16bit_png(tmp_path, rng, capsys):
    values = rand16(rng, (H, W, 3))
    cv2_png16(tmp_path / "rgb16.png", values)
    assert main("filter", tmp_path / "rgb16.png", "--kernel", "sharpen",
                "--out", tmp_path / "o") == 0
    assert png_header(tmp_path / "o" / "rgb16.png") == (16, 2)
    expected = levels(revdeconv.convolve(values / 65535, filters.SHARPEN), 16)
    np.testing.assert_array_equal(cv2_read16(tmp_path / "o" / "rgb16.png"), expected)
    assert main("filter", tmp_path / "rgb16.png", "--kernel", "sharpen", "--bits", "8",
                "--out", tmp_path / "o8") == 0
    assert png_header(tmp_path / "o8" / "rgb16.png") == (8, 2)


def test_filter_16bit_grey_png_and_8bit_png(tmp_path, rng, capsys):
    grey16, rgb8 = rand16(rng, (H, W)), rand8(rng, (H, W, 3))
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    Image.fromarray(rgb8).save(tmp_path / "rgb8.png")
    assert main("filter", tmp_path, "--kernel", "blur", "--out", tmp_path / "o") == 0
    assert png_header(tmp_path / "o" / "grey16.png") == (16, 0)
    assert png_header(tmp_path / "o" / "rgb8.png") == (8, 2)
    np.testing.assert_array_equal(
        read_image(tmp_path / "o" / "grey16.png").pixels,
        levels(revdeconv.convolve(grey16 / 65535, filters.BLUR), 16) / 65535)


@pytest.mark.parametrize("shape", [(H, W), (H, W, 3)], ids=["grey", "rgb"])
def test_filter_float_tiff_gives_float32_tiff(tmp_path, rng, shape, capsys):
    values = rng.random(shape).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", values, photometric="rgb" if len(shape) == 3 else None)
    assert main("filter", tmp_path / "f.tif", "--kernel", "sharpen", "--activation", "identity",
                "--format", "tiff", "--out", tmp_path / "o") == 0
    stored, dtype, _ = tiff_page(tmp_path / "o" / "f.tiff")
    assert dtype == np.float32
    expected = revdeconv.convolve(values, filters.SHARPEN, activation="identity")
    assert expected.dtype == np.float32
    np.testing.assert_array_equal(stored, expected)           # not clipped, not rounded
    assert main("filter", tmp_path / "f.tif", "--kernel", "sharpen", "--out", tmp_path / "p") == 0
    assert png_header(tmp_path / "p" / "f.png")[0] == 16       # PNG's closest: 16 bits


def test_bits_option(tmp_path, rng, capsys):
    Image.fromarray(rand8(rng, (H, W, 3))).save(tmp_path / "rgb8.png")
    assert main("filter", tmp_path / "rgb8.png", "--kernel", "blur", "--bits", "16",
                "--out", tmp_path / "o16") == 0
    assert png_header(tmp_path / "o16" / "rgb8.png") == (16, 2)
    assert main("filter", tmp_path / "rgb8.png", "--kernel", "blur", "--bits", "32",
                "--format", "tiff", "--out", tmp_path / "o32") == 0
    assert tiff_page(tmp_path / "o32" / "rgb8.tiff")[1] == np.float32
    capsys.readouterr()
    # float32 is for TIFF: said before anything is read or written
    assert refused("filter", tmp_path / "rgb8.png", "--kernel", "blur", "--bits", "32",
                   "--out", tmp_path / "bad")
    assert "--bits" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_filter_and_deconvolve_multipage_tiff_one_output_per_page(tmp_path, rng, capsys):
    stack = rand16(rng, (3, H, W))
    tifffile.imwrite(tmp_path / "scan.tif", stack, photometric="minisblack")
    assert main("filter", tmp_path / "scan.tif", "--kernel", "blur", "--out", tmp_path / "f") == 0
    assert sorted(os.listdir(tmp_path / "f")) == ["scan_p1.png", "scan_p2.png", "scan_p3.png"]
    assert "3 done" in summary(report(capsys)[1], "filter")
    for n in range(3):
        np.testing.assert_array_equal(
            read_image(tmp_path / "f" / f"scan_p{n + 1}.png").pixels,
            levels(revdeconv.convolve(stack[n] / 65535, filters.BLUR), 16) / 65535)
    assert main("deconvolve", tmp_path / "scan.tif", "--kernel", "blur", "--format", "tiff",
                "--out", tmp_path / "d") == 0
    assert sorted(os.listdir(tmp_path / "d")) == ["scan_p1.tiff", "scan_p2.tiff", "scan_p3.tiff"]
    assert tiff_page(tmp_path / "d" / "scan_p2.tiff")[1] == np.uint16


def test_filter_bad_page_is_named(tmp_path, rng, capsys):
    """A page that cannot be read is reported by page; the others are done."""
    with tifffile.TiffWriter(tmp_path / "mixed.tif") as tif:
        tif.write(rand8(rng, (H, W)))
        tif.write(rand8(rng, (2, 2)))               # too small for a 3x3 kernel
    assert main("filter", tmp_path / "mixed.tif", "--kernel", "blur", "--out", tmp_path / "f") == 1
    err = report(capsys)[1]
    assert "page 2 of 2" in err
    assert os.listdir(tmp_path / "f") == ["mixed_p1.png"]


# -- point 7: learn on a mixed folder ----------------------------------------------------

def mixed_pairs(folder, rng):
    learn_pair(folder, "grey", rand8(rng, (H, W)))
    learn_pair(folder, "rgb", rand8(rng, (H, W, 3)))
    learn_pair(folder, "rgba", rand8(rng, (H, W, 4)))
    Image.fromarray(rand8(rng, (10, 12))).save(folder / "filt" / "stray.png")


def as_colour(image):
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def test_learn_shared_mixed_folder_one_channel_policy(tmp_path, rng, capsys):
    mixed_pairs(tmp_path, rng)
    status = main("learn", "--original", tmp_path / "orig", "--filtered", tmp_path / "filt",
                  "--shared", "--out", tmp_path / "k.json")
    err = report(capsys)[1]
    assert status == 0, err
    line = [x for x in err.splitlines() if "stray.png" in x]
    assert len(line) == 1 and "skipped" in line[0] and "no original" in line[0]
    assert "3 done, 0 failed, 1 skipped" in summary(err, "learn")
    names = ["grey", "rgb", "rgba"]                # name order; grey gets three equal channels
    expected = revdeconv.learn_filter(
        [as_colour(read_image(tmp_path / "orig" / f"{n}.png").pixels) for n in names],
        [as_colour(read_image(tmp_path / "filt" / f"{n}.png").pixels) for n in names])
    learned = np.array(json.loads((tmp_path / "k.json").read_text())["kernel"])
    np.testing.assert_array_equal(learned, expected.kernel)


@pytest.mark.parametrize("chunk", ["1", "64"])
def test_learn_shared_grey_first_then_colour_whatever_the_chunk(tmp_path, rng, capsys, chunk):
    learn_pair(tmp_path, "a", rand8(rng, (H, W)))
    learn_pair(tmp_path, "b", rand8(rng, (H, W)))
    learn_pair(tmp_path, "c", rand8(rng, (H, W, 3)))
    assert main("learn", "--original", tmp_path / "orig", "--filtered", tmp_path / "filt",
                "--shared", "--chunk", chunk, "--out", tmp_path / "k.json") == 0
    expected = revdeconv.learn_filter(
        [as_colour(read_image(tmp_path / "orig" / f"{n}.png").pixels) for n in "abc"],
        [as_colour(read_image(tmp_path / "filt" / f"{n}.png").pixels) for n in "abc"])
    learned = np.array(json.loads((tmp_path / "k.json").read_text())["kernel"])
    np.testing.assert_array_equal(learned, expected.kernel)


def test_learn_per_pair_mixed_folder(tmp_path, rng, capsys):
    mixed_pairs(tmp_path, rng)
    status = main("learn", "--original", tmp_path / "orig", "--filtered", tmp_path / "filt",
                  "--out", tmp_path / "k.json")
    err = report(capsys)[1]
    assert status == 0, err
    assert "3 done, 0 failed, 1 skipped" in summary(err, "learn")
    learned = json.loads((tmp_path / "k.json").read_text())
    shapes = {name: np.shape(learned["kernels"][name]["kernel"]) for name in learned["kernels"]}
    # each pair in its own colour channels: grey stays grey (deconvolve applies it to grey)
    assert shapes == {"grey": (1, 3, 3), "rgb": (3, 3, 3), "rgba": (3, 3, 3)}


# -- the "done when": a folder of every format -----------------------------------

def every_format(folder, rng):
    """Good files of every kind people keep, by name -> (bits, has alpha, pages); bad
    files by name -> what their reason says; and a nested subfolder. (Every name is
    its own: outputs are named by the stem.)"""
    folder.mkdir()
    good = {}

    def add(name, bits, alpha=False, pages=1):
        good[name] = (bits, alpha, pages)

    Image.fromarray(rand8(rng, (H, W, 3))).save(folder / "rgb8.png")
    add("rgb8.png", 8)
    Image.fromarray(rand16(rng, (H, W))).save(folder / "grey16.png")
    add("grey16.png", 16)
    cv2_png16(folder / "rgb16.png", rand16(rng, (H, W, 3)))
    add("rgb16.png", 16)
    cv2_png16(folder / "rgba16.png", rand16(rng, (H, W, 4)))
    add("rgba16.png", 16, alpha=True)
    Image.fromarray(rand8(rng, (H, W, 3))).save(folder / "tiff8.tif")
    add("tiff8.tif", 8)
    tifffile.imwrite(folder / "tiff16.tif", rand16(rng, (H, W, 3)), photometric="rgb")
    add("tiff16.tif", 16)
    tifffile.imwrite(folder / "fgrey.tif", rng.random((H, W)).astype(np.float32))
    add("fgrey.tif", 32)
    tifffile.imwrite(folder / "frgb.tif", rng.random((H, W, 3)).astype(np.float32),
                     photometric="rgb")
    add("frgb.tif", 32)
    photo = Image.fromarray(np.ascontiguousarray(np.rot90(rand8(rng, (H, W, 3)), 1)))
    exif = photo.getexif()
    exif[0x0112] = 6
    photo.save(folder / "photo.jpg", exif=exif, quality=95)
    add("photo.jpg", 8)
    Image.fromarray(rand8(rng, (H, W, 3))).save(folder / "bitmap.bmp")
    add("bitmap.bmp", 8)
    Image.fromarray(rand8(rng, (H, W, 3))).quantize(16).save(folder / "palette.png")
    add("palette.png", 8)
    Image.fromarray(rand8(rng, (H, W, 3))).quantize(16).save(folder / "palette_t.png",
                                                             transparency=3)
    add("palette_t.png", 8, alpha=True)
    Image.frombytes("LA", (W, H), rand8(rng, (H, W, 2)).tobytes()).save(folder / "greya.png")
    add("greya.png", 8, alpha=True)
    Image.fromarray(rand8(rng, (H, W, 4)), "RGBA").save(folder / "rgba.png")
    add("rgba.png", 8, alpha=True)
    Image.fromarray(rand8(rng, (H, W)) > 127).save(folder / "bilevel.png")
    add("bilevel.png", 8)
    Image.fromarray(rand8(rng, (H, W, 3))).convert("CMYK").save(folder / "cmyk.jpg")
    add("cmyk.jpg", 8)
    Image.fromarray(rand8(rng, (H, W, 3))).convert("CMYK").save(folder / "cmyk_t.tif")
    add("cmyk_t.tif", 8)
    tifffile.imwrite(folder / "pages.tif", rand16(rng, (3, H, W)), photometric="minisblack")
    add("pages.tif", 16, pages=3)
    (folder / "sub").mkdir()
    Image.fromarray(rand8(rng, (H, W, 3))).save(folder / "sub" / "nested.png")
    bad = {"text.png": "not an image", "empty.tif": "", "truncated.png": "truncated",
           "corrupt.jpg": ""}
    (folder / "text.png").write_text("not a picture\n")
    (folder / "empty.tif").write_bytes(b"")
    whole = (folder / "rgb8.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[:len(whole) // 2])
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + rng.bytes(200))
    return good, bad


def outputs_of(good, suffix):
    names = []
    for name, (_, _, pages) in good.items():
        stem = os.path.splitext(name)[0]
        names += [f"{stem}_p{n}{suffix}" for n in range(1, pages + 1)] if pages > 1 \
            else [stem + suffix]
    return sorted(names)


def check_output(path, bits, alpha, fmt):
    picture = read_image(path)
    assert (picture.alpha is not None) == alpha, path
    if fmt == "png":
        assert png_header(path)[0] == (16 if bits in (16, 32) else 8), path
    else:
        dtype = tiff_page(path)[1]
        assert dtype == {8: np.uint8, 16: np.uint16, 32: np.float32}[bits], path
    return picture


def test_every_format_through_every_command(tmp_path, rng, capsys):
    good, bad = every_format(tmp_path / "in", rng)
    before = sha(tmp_path / "in")

    def run(*args):
        status = main(*args)
        return status, report(capsys)[1]

    def check_bad(err, command):
        for name, reason in bad.items():
            lines = [x for x in err.splitlines() if f"{name}:" in x]
            assert len(lines) == 1 and reason in lines[0], (name, err)
        assert "nested.png" not in err

    # filter: one output per good file (per page), as PNG and as TIFF
    for fmt, suffix in [("png", ".png"), ("tiff", ".tiff")]:
        status, err = run("filter", tmp_path / "in", "--kernel", "blur", "--format", fmt,
                          "--out", tmp_path / f"f_{fmt}")
        assert status == 1                          # the bad files fail
        assert sorted(os.listdir(tmp_path / f"f_{fmt}")) == outputs_of(good, suffix)
        pages = sum(p for _, _, p in good.values())
        assert f"{pages} done, {len(bad)} failed" in summary(err, "filter")
        check_bad(err, "filter")
        for name, (bits, alpha, n_pages) in good.items():
            stem = os.path.splitext(name)[0]
            for n in range(n_pages):
                out = f"{stem}_p{n + 1}{suffix}" if n_pages > 1 else stem + suffix
                check_output(tmp_path / f"f_{fmt}" / out, bits, alpha, fmt)
    # the JPEG's EXIF rotation was applied: the output is upright (H/3 x W/3)
    assert read_image(tmp_path / "f_png" / "photo.png").pixels.shape == (H // 3, W // 3, 3)

    # learn, one filter per image and shared, on the originals and the PNG outputs
    status, err = run("learn", "--original", tmp_path / "in", "--filtered", tmp_path / "f_png",
                      "--method", "lstsq", "--out", tmp_path / "k.json")
    assert status == 0, err
    learned = json.loads((tmp_path / "k.json").read_text())["kernels"]
    assert sorted(learned) == sorted(os.path.splitext(n)[0] for n in outputs_of(good, ""))
    for name, spec in learned.items():
        np.testing.assert_allclose(np.array(spec["kernel"])[0], filters.BLUR, atol=0.02,
                                   err_msg=name)
    assert all(np.shape(spec["kernel"])[0] in (1, 3) for spec in learned.values())
    status, err = run("learn", "--original", tmp_path / "in", "--filtered", tmp_path / "f_png",
                      "--shared", "--method", "lstsq", "--out", tmp_path / "shared.json")
    assert status == 0, err
    shared = np.array(json.loads((tmp_path / "shared.json").read_text())["kernel"])
    assert shared.shape == (3, 3, 3)
    np.testing.assert_allclose(shared, np.broadcast_to(filters.BLUR, (3, 3, 3)), atol=0.02)

    # deconvolve the filtered PNGs, each with its own filter: bit depth and alpha kept
    status, err = run("deconvolve", tmp_path / "f_png", "--kernel", tmp_path / "k.json",
                      "--out", tmp_path / "restored")
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "restored")) == outputs_of(good, ".png")
    for name, (bits, alpha, n_pages) in good.items():
        stem = os.path.splitext(name)[0]
        for n in range(n_pages):
            out = f"{stem}_p{n + 1}.png" if n_pages > 1 else stem + ".png"
            restored = check_output(tmp_path / "restored" / out, bits, alpha, "png")
            assert restored.pixels.shape[:2] == (H, W)

    # no input touched, nothing added to the input folder (the nested file included)
    assert sha(tmp_path / "in") == before


def nested_formats(folder, rng):
    """Files in subfolders of ``folder`` (an :func:`every_format` folder), some with the
    name of a file above them, by path under ``folder`` -> (bits, has alpha, pages);
    and a bad nested file."""
    (folder / "sub" / "deeper").mkdir(parents=True)
    nested = {"sub/nested.png": (8, False, 1)}                 # every_format's own
    cv2_png16(folder / "sub" / "rgba16.png", rand16(rng, (H, W, 4)))
    nested["sub/rgba16.png"] = (16, True, 1)
    Image.frombytes("LA", (W, H), rand8(rng, (H, W, 2)).tobytes()).save(
        folder / "sub" / "greya.png")
    nested["sub/greya.png"] = (8, True, 1)
    tifffile.imwrite(folder / "sub" / "deeper" / "frgb.tif",
                     rng.random((H, W, 3)).astype(np.float32), photometric="rgb")
    nested["sub/deeper/frgb.tif"] = (32, False, 1)
    tifffile.imwrite(folder / "sub" / "deeper" / "pages.tif", rand16(rng, (2, H, W)),
                     photometric="minisblack")
    nested["sub/deeper/pages.tif"] = (16, False, 2)
    (folder / "sub" / "deeper" / "broken.png").write_text("not a picture\n")
    return nested


def test_every_format_recursive_mirrors_the_tree(tmp_path, rng, capsys):
    """``--recursive`` through ``filter``, ``learn`` and ``deconvolve``: every nested file
    is done, its output under the same subfolders of --out, bit depth and alpha kept."""
    good, bad = every_format(tmp_path / "in", rng)
    nested = nested_formats(tmp_path / "in", rng)
    bad = {**bad, "sub/deeper/broken.png": "not an image"}
    every = {**good, **nested}
    before = sha(tmp_path / "in")

    def run(*args):
        status = main(*args)
        return status, report(capsys)[1]

    for fmt, suffix in [("png", ".png"), ("tiff", ".tiff")]:
        out = tmp_path / f"f_{fmt}"
        status, err = run("filter", tmp_path / "in", "--recursive", "--kernel", "blur",
                          "--format", fmt, "--out", out)
        assert status == 1, err                      # the bad files fail
        assert sorted(sha(out)) == outputs_of(every, suffix)
        pages = sum(p for _, _, p in every.values())
        line = summary(err, "filter")
        assert f"{pages} done, {len(bad)} failed" in line and "not entered" not in line
        for name in bad:
            assert len([x for x in err.splitlines()
                        if os.path.join("in", name) + ":" in x]) == 1, (name, err)
        for name, (bits, alpha, n_pages) in nested.items():
            for out_name in outputs_of({name: (bits, alpha, n_pages)}, suffix):
                picture = check_output(out / out_name, bits, alpha, fmt)
                assert picture.pixels.shape[:2] == (H // 3, W // 3), out_name
    # a nested file with the name of one above it is its own: computed from its own pixels
    np.testing.assert_allclose(
        read_image(tmp_path / "f_tiff" / "sub" / "deeper" / "frgb.tiff").pixels,
        revdeconv.convolve(read_image(tmp_path / "in" / "sub" / "deeper" / "frgb.tif").pixels,
                           filters.BLUR), atol=1e-6)

    # learn pairs the nested files by their path under the folders given
    status, err = run("learn", "--original", tmp_path / "in", "--filtered", tmp_path / "f_png",
                      "--recursive", "--method", "lstsq", "--out", tmp_path / "k.json")
    assert status == 0, err
    learned = json.loads((tmp_path / "k.json").read_text())["kernels"]
    assert sorted(learned) == sorted(os.path.splitext(n)[0] for n in outputs_of(every, ""))
    for name, spec in learned.items():
        np.testing.assert_allclose(np.array(spec["kernel"])[0], filters.BLUR, atol=0.02,
                                   err_msg=name)
    status, err = run("learn", "--original", tmp_path / "in", "--filtered", tmp_path / "f_png",
                      "--recursive", "--shared", "--method", "lstsq",
                      "--out", tmp_path / "shared.json")
    assert status == 0, err
    assert "not entered" not in summary(err, "learn")
    shared = np.array(json.loads((tmp_path / "shared.json").read_text())["kernel"])
    np.testing.assert_allclose(shared, np.broadcast_to(filters.BLUR, (3, 3, 3)), atol=0.02)

    # deconvolve each filtered file, nested ones too, with its own filter (found by path)
    status, err = run("deconvolve", tmp_path / "f_png", "--recursive", "--kernel",
                      tmp_path / "k.json", "--out", tmp_path / "restored")
    assert status == 0, err
    assert sorted(sha(tmp_path / "restored")) == outputs_of(every, ".png")
    for name, (bits, alpha, n_pages) in every.items():
        for out_name in outputs_of({name: (bits, alpha, n_pages)}, ".png"):
            restored = check_output(tmp_path / "restored" / out_name, bits, alpha, "png")
            assert restored.pixels.shape[:2] == (H, W), out_name

    # no input touched, nothing added to the input folder or its subfolders
    assert sha(tmp_path / "in") == before
