"""PNG files (``revdeconv._png``): the writer's compiled Paeth filter against the
NumPy one and against the filter written straight from the PNG specification, its
files read back exactly by Pillow (and OpenCV where installed); the reader of plain
files against files with every filter type made from the specification, against
Pillow on files of Pillow, OpenCV and ours, and leaving every other file to Pillow."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from revdeconv import _codecs, _png
from revdeconv._png import paeth_numpy, png_bytes, read_plain
from revdeconv.io import ImageReadError, read_image, save_image

compiled = pytest.mark.skipif(_png._png_filter is None, reason="compiled extension not built")


def filtered_reference(raw, step, types):
    """Each row of bytes led by its filter type and filtered by it (0 None, 1 Sub,
    2 Up, 3 Average, 4 Paeth), one byte at a time, as the specification states."""
    out = []
    for r, row in enumerate(raw.astype(int)):
        above = raw[r - 1].astype(int) if r else np.zeros_like(row)
        filtered = [types[r]]
        for i, x in enumerate(row):
            a = row[i - step] if i >= step else 0
            b = above[i]
            c = above[i - step] if i >= step else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            paeth = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            predictor = (0, a, b, (a + b) // 2, paeth)[types[r]]
            filtered.append((x - predictor) % 256)
        out.append(filtered)
    return np.array(out, dtype=np.uint8)


def paeth_reference(raw, step):
    return filtered_reference(raw, step, [4] * len(raw))


@pytest.mark.parametrize("shape, step", [((1, 1), 1), ((3, 9), 3), ((7, 24), 6),
                                          ((5, 16), 8), ((4, 10), 2), ((6, 12), 4)])
def test_paeth_filter_is_the_specifications(shape, step, rng):
    raw = rng.integers(0, 256, shape, dtype=np.uint8)
    expected = paeth_reference(raw, step)
    above = np.vstack([np.zeros_like(raw[:1]), raw[:-1]])
    np.testing.assert_array_equal(paeth_numpy(raw, above, step), expected)
    if _png._png_filter is None:
        pytest.skip("compiled extension not built")
    for start, stop in ((0, shape[0]), (shape[0] // 2, shape[0])):      # a band
        out = np.empty((stop - start, shape[1] + 1), dtype=np.uint8)
        _png._png_filter.paeth_rows(raw, start, stop, step, out)
        np.testing.assert_array_equal(out, expected[start:stop])


@compiled
def test_the_two_filters_write_the_same_bytes(rng, monkeypatch):
    """The compiled filter and the NumPy one (the fallback): the same file, over two
    bands of rows, and a file Pillow reads back exactly."""
    values = rng.integers(0, 256, (300, 70, 3), dtype=np.uint8)      # two bands of rows
    values[100:200] = values[100]                                     # long runs
    data = png_bytes(values)
    monkeypatch.setattr(_png, "_png_filter", None)
    assert data == png_bytes(values)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), values)


@pytest.mark.parametrize("channels, mode", [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
@pytest.mark.parametrize("level", [None, 0, 6, 9])
def test_8_bit_files_read_back_exactly(channels, mode, level, rng):
    values = rng.integers(0, 256, (17, 23, channels), dtype=np.uint8)
    with Image.open(io.BytesIO(png_bytes(values, level))) as image:
        image.verify()                                # chunks and CRCs
    with Image.open(io.BytesIO(png_bytes(values, level))) as image:
        assert image.mode == mode and image.size == (23, 17)
        np.testing.assert_array_equal(np.asarray(image).reshape(values.shape), values)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16_bit_files_read_back_exactly(channels, rng, tmp_path):
    values = rng.integers(0, 65536, (9, 11, channels), dtype=np.uint16)
    shape = values.shape if channels > 1 else values.shape[:2]
    save_image(tmp_path / "a.png", values.reshape(shape) / 65535, bits=16)
    picture = read_image(tmp_path / "a.png", alpha="last")
    assert picture.bits == 16
    np.testing.assert_array_equal(np.round(picture.pixels * 65535).astype(np.uint16),
                                  values.reshape(shape))


def test_opencv_reads_the_files(rng):
    cv2 = pytest.importorskip("cv2")
    values = rng.integers(0, 256, (31, 40, 3), dtype=np.uint8)
    decoded = cv2.imdecode(np.frombuffer(png_bytes(values), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded[:, :, ::-1], values)       # (OpenCV: BGR)



# -- reading -----------------------------------------------------------------------------

def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_file(values, types, *, colour_type=None, extra=(), interlace=0, filtered=None):
    """A PNG file of ``values`` (uint8 or uint16, ``(H, W, C)``), row ``r`` filtered by
    ``types[r]`` with :func:`filtered_reference`."""
    height, width, channels = values.shape
    size = values.dtype.itemsize
    raw = values.astype(values.dtype.newbyteorder(">")).view(np.uint8).reshape(height, -1)
    filtered = filtered_reference(raw, channels * size, types) if filtered is None else filtered
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels] if colour_type is None else colour_type
    header = struct.pack(">IIBBBBB", width, height, 8 * size, colour_type, 0, 0, interlace)
    return (_png.PNG_SIGNATURE + chunk(b"IHDR", header) + b"".join(extra)
            + chunk(b"IDAT", zlib.compress(filtered.tobytes())) + chunk(b"IEND", b""))


@compiled
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_every_filter_type_is_undone(channels, dtype, rng, tmp_path):
    values = rng.integers(0, np.iinfo(dtype).max + 1, (15, 13, channels), dtype=dtype)
    values[5:9] = values[5]                                        # runs, as images have
    types = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 1, 2, 3, 4, 0]
    (tmp_path / "a.png").write_bytes(png_file(values, types))
    found, key = read_plain((tmp_path / "a.png").read_bytes())
    assert found.dtype == dtype and key is None
    np.testing.assert_array_equal(found, values if channels > 1 else values[:, :, 0])


@compiled
@pytest.mark.parametrize("writer", ["ours", "pillow", "opencv"])
@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_files_of_every_writer_read_as_pillow_reads_them(writer, mode, rng, tmp_path):
    channels = len(mode)
    values = rng.integers(0, 256, (40, 37, channels), dtype=np.uint8)
    values[10:20, 5:30] = 200                                      # flat: other filters win
    values = values[:, :, 0] if channels == 1 else values
    path = tmp_path / "a.png"
    if writer == "ours":
        path.write_bytes(png_bytes(values))
    elif writer == "pillow":
        Image.fromarray(values, mode).save(path)          # a filter chosen per row
    else:
        cv2 = pytest.importorskip("cv2")
        if channels == 2:
            pytest.skip("OpenCV writes no grey and alpha PNG")
        order = {3: [2, 1, 0], 4: [2, 1, 0, 3]}.get(channels)
        cv2.imwrite(str(path), values[:, :, order] if order else values)   # Sub
    with Image.open(path) as image:
        expected = np.asarray(image)
    found, key = read_plain(path.read_bytes())
    np.testing.assert_array_equal(found, expected)
    assert key is None


@compiled
def test_a_transparent_colour_is_the_key_pillow_gives(rng, tmp_path):
    values = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    values[2, 3] = (10, 20, 30)
    path = tmp_path / "k.png"
    path.write_bytes(png_file(values, [1] * 6, extra=[chunk(b"tRNS", struct.pack(
        ">HHH", 10, 20, 30))]))
    assert read_plain(path.read_bytes())[1] == (10, 20, 30)
    ours = _codecs.decode(path, None)
    with Image.open(path) as image:
        assert image.info["transparency"] == (10, 20, 30)
    assert ours.has_alpha and ours.pixels.shape == (6, 7, 4)
    assert ours.pixels[2, 3, 3] == 0 and ours.pixels[..., 3].sum() == 6 * 7 - 1


def _exif_orientation(value):
    body = b"MM\x00*" + struct.pack(">IHHHIHH", 8, 1, 0x0112, 3, 1, value, 0) + b"\0\0\0\0"
    return chunk(b"eXIf", body)


def _text_orientation(keyword, value):
    if keyword == b"XML:com.adobe.xmp":
        text = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
                b'1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/'
                b'tiff/1.0/" tiff:Orientation="%d"/></rdf:RDF></x:xmpmeta>' % value)
        return chunk(b"iTXt", keyword + b"\0\0\0\0\0" + text)
    exif = b"Exif\0\0" + _exif_orientation(value)[8:-4]
    return chunk(b"tEXt", keyword + b"\0\nexif\n%8d\n" % len(exif) + exif.hex().encode() + b"\n")


@pytest.mark.parametrize("case", ["palette", "two bits", "interlaced", "exif", "exif text",
                                  "xmp", "bad filter", "truncated", "bad crc", "too large"])
def test_other_files_are_left_to_pillow(case, rng, tmp_path, monkeypatch):
    """read_plain gives them up (None), and reading them is what Pillow makes of them:
    the same pixels, or the same error."""
    values = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    data = png_file(values, [1] * 8)
    if case == "palette":
        Image.fromarray(values).convert("P").save(tmp_path / "a.png")
        data = (tmp_path / "a.png").read_bytes()
    elif case == "two bits":
        Image.fromarray(values[:, :, 0] // 64 * 64).convert("L").save(
            tmp_path / "a.png", bits=2)
        data = (tmp_path / "a.png").read_bytes()
    elif case == "interlaced":                      # one pixel: Adam7's first pass only
        data = png_file(values[:1, :1], [0], interlace=1)
    elif case == "exif":
        data = png_file(values, [1] * 8, extra=[_exif_orientation(6)])
    elif case in ("exif text", "xmp"):
        keyword = b"Raw profile type exif" if case == "exif text" else b"XML:com.adobe.xmp"
        data = png_file(values, [1] * 8, extra=[_text_orientation(keyword, 6)])
    elif case == "bad filter":
        raw = values.reshape(8, -1)
        data = png_file(values, None, filtered=np.hstack([np.full((8, 1), 7, np.uint8), raw]))
    elif case == "truncated":
        data = data[:len(data) // 2]
    elif case == "bad crc":
        data = data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]       # IEND's CRC broken
    elif case == "too large":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    assert read_plain(path.read_bytes()) is None
    try:
        with Image.open(path) as image:
            expected = np.asarray(image.convert("L" if image.mode == "L" else "RGB"))
    except Image.DecompressionBombWarning:
        expected = None
    except Exception:                               # broken: an error, named by ours
        with pytest.raises(ImageReadError):
            read_image(path)
        return
    if case == "too large":
        with pytest.warns(Image.DecompressionBombWarning):
            read_image(path)
    elif case in ("exif", "exif text", "xmp"):      # Pillow turns it upright
        with Image.open(path) as image:
            assert image.getexif().get(0x0112) == 6
        assert read_image(path).pixels.shape == (9, 8, 3)
    else:
        levels = 3 if case == "two bits" else 255
        np.testing.assert_array_equal(np.round(read_image(path).pixels * levels),
                                      expected // (85 if case == "two bits" else 1))


def test_the_numpy_fallback_reads_with_pillow(rng, tmp_path, monkeypatch):
    values = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(png_bytes(values))
    fast = _codecs.decode(tmp_path / "a.png", None)
    monkeypatch.setattr(_png, "_png_filter", None)
    assert read_plain((tmp_path / "a.png").read_bytes()) is None
    slow = _codecs.decode(tmp_path / "a.png", None)
    np.testing.assert_array_equal(fast.pixels, slow.pixels)
    assert fast[1:] == slow[1:]


# -- levels ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", [8, 16])
def test_compiled_levels_are_numpys(dtype, bits, rng):
    """The compiled levels of ``save_image`` against ``io.levels`` (in NumPy): values
    past both ends, halves exactly between two levels, and every level's neighbours."""
    levels_module = pytest.importorskip("revdeconv._levels")
    top = 2 ** bits - 1
    edges = (np.arange(top + 1) + 0.5) / top
    values = np.concatenate([rng.normal(0.5, 0.7, 5000), edges, np.nextafter(edges, 0),
                             np.nextafter(edges, 1), [0.0, -0.0, 1.0, -1e30, 1e30]])
    values = values.astype(dtype)
    stored = np.empty(values.shape, np.uint8 if bits == 8 else np.uint16)
    assert levels_module.stored_levels(values, stored, float(top))
    from revdeconv.io import levels
    np.testing.assert_array_equal(stored, levels(values.astype(np.float64), bits))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_value_not_finite_is_refused_before_anything_is_written(bad, tmp_path):
    image = np.full((4, 5, 3), 0.5, dtype=np.float32)
    image[2, 3, 1] = bad
    with pytest.raises(ValueError, match="finite"):
        save_image(tmp_path / "a.png", image)
    assert not list(tmp_path.iterdir())


@compiled
@pytest.mark.parametrize("inflater", ["zlib", "isal"])
def test_both_inflaters_read_the_same_pixels(inflater, rng, tmp_path, monkeypatch):
    """zlib, and python-isal (``revdeconv[fast]``) where it is installed; a damaged
    stream is given up by either (Pillow then says what is wrong)."""
    if inflater == "isal":
        monkeypatch.setattr(_png, "_inflate", pytest.importorskip("isal.isal_zlib"))
    else:
        monkeypatch.setattr(_png, "_inflate", zlib)
    values = rng.integers(0, 256, (50, 61, 3), dtype=np.uint8)
    values[10:30] = values[10]
    (tmp_path / "a.png").write_bytes(png_file(values, [k % 5 for k in range(50)]))
    np.testing.assert_array_equal(read_plain((tmp_path / "a.png").read_bytes())[0], values)
    data = png_file(values, [4] * 50)
    idat = data.index(b"IDAT") + 4
    broken = data[:idat + 40] + bytes(b ^ 0x55 for b in data[idat + 40:idat + 60]) + data[idat + 60:]
    kind = b"IDAT"
    body = broken[idat:broken.index(b"IEND") - 8]
    broken = broken[:idat + len(body)] + struct.pack(">I", zlib.crc32(kind + body)) + \
        broken[idat + len(body) + 4:]                    # (a CRC that holds: zlib must see it)
    (tmp_path / "b.png").write_bytes(broken)
    assert _png.chunks(broken)[1][0] == b"IDAT"      # the chunks hold; the stream does not
    assert read_plain((tmp_path / "b.png").read_bytes()) is None


@pytest.mark.parametrize("dtype", [np.float16, ">f8", np.int32, bool])
def test_every_dtype_is_stored_as_a_float64_image_is(dtype, rng, tmp_path):
    """``save_image`` through its NumPy path (half floats, big-endian, integers, bools)
    stores the samples the compiled path stores for the same image as float64."""
    values = (rng.random((7, 9, 3)) > 0.5) if dtype is bool else \
        rng.integers(-1, 3, (7, 9, 3)).astype(dtype) if dtype is np.int32 else \
        rng.random((7, 9, 3)).astype(dtype)                 # (integers: clipped to 0-1)
    as_float = values.astype(np.float64)
    save_image(tmp_path / "a.png", values)
    save_image(tmp_path / "b.png", as_float)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png").pixels,
                                  read_image(tmp_path / "b.png").pixels)
