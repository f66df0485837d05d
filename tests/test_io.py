"""revdeconv.io: load_image / save_image on real files written with Pillow.

Every file here is written into pytest's ``tmp_path`` (or a fresh temporary
directory inside a hypothesis example); nothing is mocked.
"""

import os
import struct
import sys
import tempfile
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from revdeconv.io import ImageReadError, load_image, save_image

RNG = np.random.default_rng(2024)
H, W = 5, 7                                    # non-square on purpose
GREY8 = RNG.integers(0, 256, (H, W), dtype=np.uint8)
GREY8[0, :2] = (0, 255)                        # both ends of the range
LA8 = RNG.integers(0, 256, (H, W, 2), dtype=np.uint8)
RGB8 = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
RGBA8 = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
RGB8[0, 0], RGBA8[0, 0] = (0, 128, 255), (0, 1, 254, 255)


def _pil(array, mode):
    """A Pillow image of ``mode`` holding ``array`` (uint8), independent of fromarray's guesses."""
    h, w = array.shape[:2]
    return Image.frombytes(mode, (w, h), np.ascontiguousarray(array).tobytes())


def _files(folder):
    """Every entry in ``folder``, hidden ones (``.name.xxxx`` temporaries) included."""
    return sorted(os.listdir(folder))


def _check_float_image(result, shape):
    assert result.shape == shape
    assert result.dtype == np.float64
    assert np.all(result >= 0) and np.all(result <= 1)


def _blocks(rows, cols, seed):
    """An image of 8x8 single-colour blocks, distinct enough to survive JPEG."""
    rng = np.random.default_rng(seed)
    colours = rng.choice(np.arange(0, 256, 32), size=(rows, cols, 3)).astype(np.uint8)
    return np.kron(colours, np.ones((8, 8, 1), dtype=np.uint8))


# --- load_image: round trips for every mode it supports -----------------------------------

@pytest.mark.parametrize("mode, array", [("L", GREY8), ("LA", LA8), ("RGB", RGB8), ("RGBA", RGBA8)],
                         ids=["L", "LA", "RGB", "RGBA"])
def test_load_8bit_png_is_exact(tmp_path, mode, array):
    path = tmp_path / f"{mode}.png"
    _pil(array, mode).save(path)
    with Image.open(path) as check:
        assert check.mode == mode                  # the file really holds that mode
    result = load_image(path)
    _check_float_image(result, array.shape)
    np.testing.assert_array_equal(result, array.astype(np.float64) / 255)


def _palette_image():
    indices = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 1, 2, 2]], dtype=np.uint8)
    palette = [(10, 20, 30), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
    image = _pil(indices, "P")
    image.putpalette([c for colour in palette for c in colour] + [0] * (3 * (256 - len(palette))))
    return image, indices, np.array(palette, dtype=np.float64) / 255


def test_load_palette_without_transparency_is_rgb(tmp_path):
    image, indices, palette = _palette_image()
    path = tmp_path / "p.png"
    image.save(path)
    with Image.open(path) as check:
        assert check.mode == "P" and "transparency" not in check.info
    result = load_image(path)
    _check_float_image(result, indices.shape + (3,))
    np.testing.assert_array_equal(result, palette[indices])


@pytest.mark.parametrize("ext", ["png", "gif"])
def test_load_palette_with_transparent_index_is_rgba(tmp_path, ext):
    image, indices, palette = _palette_image()
    image.info["transparency"] = 1
    path = tmp_path / f"pt.{ext}"
    image.save(path, transparency=1)
    with Image.open(path) as check:
        assert check.mode == "P" and check.info.get("transparency") == 1
    result = load_image(path)
    _check_float_image(result, indices.shape + (4,))
    np.testing.assert_array_equal(result[..., :3], palette[indices])
    np.testing.assert_array_equal(result[..., 3], np.where(indices == 1, 0.0, 1.0))


def test_load_palette_with_per_index_alpha(tmp_path):
    image, indices, palette = _palette_image()
    path = tmp_path / "palpha.png"
    image.save(path, transparency=bytes([255, 0, 128, 255]))
    result = load_image(path)
    _check_float_image(result, indices.shape + (4,))
    alpha = np.array([255, 0, 128, 255], dtype=np.float64)[indices] / 255
    np.testing.assert_array_equal(result[..., 3], alpha)
    np.testing.assert_array_equal(result[..., :3], palette[indices])


def test_load_bilevel_mode_1(tmp_path):
    bits = RNG.random((H, W)) < 0.5
    bits[0, :2] = (False, True)
    path = tmp_path / "bits.png"
    Image.fromarray(bits).save(path)
    with Image.open(path) as check:
        assert check.mode == "1"
    result = load_image(path)
    _check_float_image(result, (H, W))
    np.testing.assert_array_equal(result, bits.astype(np.float64))


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_load_16bit_grey_keeps_full_precision(tmp_path, ext):
    levels = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    levels.flat[:6] = (0, 1, 255, 256, 65534, 65535)   # values 8 bits would merge
    path = tmp_path / f"grey16.{ext}"
    Image.fromarray(levels).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I;16")
    result = load_image(path)
    _check_float_image(result, (H, W))
    np.testing.assert_array_equal(result, levels.astype(np.float64) / 65535)
    assert len(np.unique(result)) == len(np.unique(levels))


def test_load_jpeg_is_close(tmp_path):
    upright = _blocks(2, 3, seed=5)
    path = tmp_path / "photo.jpg"
    Image.fromarray(upright).save(path, quality=95, subsampling=0)
    result = load_image(path)
    _check_float_image(result, upright.shape)
    error = np.abs(result - upright / 255)
    assert error.max() <= 6 / 255
    assert error.mean() <= 1 / 255


@pytest.mark.parametrize("mode, array", [("L", GREY8), ("RGB", RGB8), ("RGBA", RGBA8)],
                         ids=["L", "RGB", "RGBA"])
def test_load_tiff_is_exact(tmp_path, mode, array):
    path = tmp_path / f"{mode}.tif"
    _pil(array, mode).save(path)
    result = load_image(path)
    _check_float_image(result, array.shape)
    np.testing.assert_array_equal(result, array.astype(np.float64) / 255)


def test_load_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 8), (0, 255, 0, 0)).save(path, quality=95)   # magenta
    result = load_image(path)
    _check_float_image(result, (8, 16, 3))
    np.testing.assert_allclose(result, np.broadcast_to([1.0, 0.0, 1.0], (8, 16, 3)), atol=3 / 255)


def test_load_accepts_str_and_pathlib(tmp_path):
    path = tmp_path / "grey.png"
    _pil(GREY8, "L").save(path)
    np.testing.assert_array_equal(load_image(str(path)), load_image(path))


@pytest.mark.parametrize("mode, array", [("I", np.array([[0, 1000, 70000, 2**31 - 1]], dtype=np.int32)),
                                         ("F", np.array([[0.0, 0.5, 2.5, -1.0]], dtype=np.float32))])
def test_load_32bit_tiff_stays_in_unit_range(tmp_path, mode, array):
    # load_image's docstring promises [0, 1]: outside values are clipped, with a warning
    path = tmp_path / f"{mode}.tif"
    Image.fromarray(array).save(path)
    with Image.open(path) as check:
        assert check.mode == mode
    if mode == "F":
        with pytest.warns(UserWarning, match=r"\[-1, 2\.5\]"):
            result = load_image(path)
        assert result.dtype == np.float32         # the dtype policy: float32 stays float32
        result = result.astype(np.float64)
    else:
        result = load_image(path)
    _check_float_image(result, array.shape)


# --- load_image: EXIF orientation ------------------------------------------------------------

# EXIF orientation -> the stored pixels S of an upright picture U (EXIF 2.3, tag 0x0112):
# where S's row 0 and column 0 lie on the upright picture.
STORED = {
    1: lambda u: u,                                   # top, left
    2: lambda u: u[:, ::-1],                          # top, right
    3: lambda u: u[::-1, ::-1],                       # bottom, right
    4: lambda u: u[::-1, :],                          # bottom, left
    5: lambda u: u.swapaxes(0, 1),                    # left, top
    6: lambda u: np.rot90(u, 1),                      # right, top   (display: turn 90 deg clockwise)
    7: lambda u: u[::-1, ::-1].swapaxes(0, 1),        # right, bottom
    8: lambda u: np.rot90(u, -1),                     # left, bottom (display: turn 90 deg anticlockwise)
}


def _save_with_orientation(path, stored, orientation, **options):
    image = Image.fromarray(np.ascontiguousarray(stored))
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif, **options)
    with Image.open(path) as check:                   # the tag really is in the file
        assert check.getexif().get(0x0112) == orientation


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_exif_orientation_png_is_exact(tmp_path, orientation):
    upright = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    path = tmp_path / f"o{orientation}.png"
    _save_with_orientation(path, STORED[orientation](upright), orientation)
    np.testing.assert_array_equal(load_image(path), upright / 255)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_jpeg(tmp_path, orientation):
    upright = _blocks(2, 3, seed=orientation)         # 16 x 24, six distinct blocks
    stored = STORED[orientation](upright)
    assert stored.shape == (24, 16, 3)
    path = tmp_path / f"o{orientation}.jpg"
    _save_with_orientation(path, stored, orientation, quality=95, subsampling=0)
    result = load_image(path)
    assert result.shape == (16, 24, 3)                # transposed back to upright
    np.testing.assert_allclose(result, upright / 255, atol=8 / 255)
    # and not merely close to the stored (unrotated) layout read as if it were upright
    wrong = STORED[orientation](stored)
    assert wrong.shape == upright.shape and np.abs(wrong / 255 - result).max() > 0.1


# --- save_image ---------------------------------------------------------------------------

def _levels(path):
    with Image.open(path) as image:
        return image.mode, np.asarray(image)


def test_save_clips_out_of_range(tmp_path):
    path = tmp_path / "clip.png"
    save_image(path, np.array([[-1e300, -0.5, 0.0, 0.5, 1.0, 1.5, 1e300]]))
    mode, levels = _levels(path)
    assert mode == "L"
    np.testing.assert_array_equal(levels, [[0, 0, 0, 128, 255, 255, 255]])


def test_save_rounds_half_up_8bit(tmp_path):
    path = tmp_path / "half.png"
    values = np.array([[0.5, 1.5, 2.5, 127.5, 254.5, 0.4999, 1.4999, 0.5001]]) / 255
    save_image(path, values)
    np.testing.assert_array_equal(_levels(path)[1], [[1, 2, 3, 128, 255, 0, 1, 1]])


def test_save_rounds_half_up_every_8bit_level(tmp_path):
    path = tmp_path / "halves.png"
    save_image(path, (np.arange(255, dtype=np.float64).reshape(15, 17) + 0.5) / 255)
    np.testing.assert_array_equal(_levels(path)[1], np.arange(1, 256).reshape(15, 17))


def test_save_rounds_half_up_16bit(tmp_path):
    path = tmp_path / "half16.png"
    save_image(path, np.array([[0.5, 1.5, 65534.5, 0.49]]) / 65535, bits=16)
    np.testing.assert_array_equal(_levels(path)[1], [[1, 2, 65535, 0]])


@pytest.mark.parametrize("shape, bits, mode", [
    ((H, W), 8, "L"), ((H, W, 1), 8, "L"), ((H, W, 2), 8, "LA"), ((H, W, 3), 8, "RGB"),
    ((H, W, 4), 8, "RGBA"), ((H, W), 16, "I;16"), ((H, W, 1), 16, "I;16")])
def test_save_picks_the_pillow_mode(tmp_path, shape, bits, mode):
    top = 255 if bits == 8 else 65535
    levels = RNG.integers(0, top + 1, shape)
    path = tmp_path / "out.png"
    save_image(path, levels / top, bits=bits)
    saved_mode, saved = _levels(path)
    assert saved_mode == mode
    np.testing.assert_array_equal(saved, levels.reshape(saved.shape))
    result = load_image(path)
    assert result.shape == (shape[:2] if len(shape) == 3 and shape[2] == 1 else shape)
    np.testing.assert_array_equal(result, (levels / top).reshape(result.shape))


def test_save_16bit_grey_round_trips_every_level(tmp_path):
    levels = np.arange(65536, dtype=np.float64).reshape(256, 256)
    path = tmp_path / "all16.png"
    save_image(path, levels / 65535, bits=16)
    np.testing.assert_array_equal(load_image(path), levels / 65535)


def test_save_accepts_integer_bool_and_float32(tmp_path):
    save_image(tmp_path / "int.png", np.array([[0, 1, 2, -3]]))
    np.testing.assert_array_equal(_levels(tmp_path / "int.png")[1], [[0, 255, 255, 0]])
    save_image(tmp_path / "bool.png", np.array([[False, True]]))
    np.testing.assert_array_equal(_levels(tmp_path / "bool.png")[1], [[0, 255]])
    save_image(tmp_path / "f32.png", np.array([[0.25, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(_levels(tmp_path / "f32.png")[1], [[64, 255]])


@pytest.mark.parametrize("name, fmt", [("a.png", "PNG"), ("a.PNG", "PNG"), ("a.tif", "TIFF"),
                                       ("a.tiff", "TIFF"), ("a.bmp", "BMP"), ("a.jpg", "JPEG"),
                                       ("a.jpeg", "JPEG")])
def test_save_format_follows_extension(tmp_path, name, fmt):
    image = _blocks(2, 3, seed=3)[..., 0] / 255       # grey 8x8 blocks: JPEG keeps them closely
    save_image(tmp_path / name, image)
    with Image.open(tmp_path / name) as check:
        assert check.format == fmt
    tolerance = 6 / 255 if fmt == "JPEG" else 0
    np.testing.assert_allclose(load_image(tmp_path / name), image, atol=tolerance, rtol=0)
    assert _files(tmp_path) == [name]


def test_save_does_not_modify_input(tmp_path):
    for shape in [(H, W), (H, W, 1), (H, W, 3)]:
        for dtype in [np.float64, np.float32]:
            array = (RNG.random(shape) * 3 - 1).astype(dtype)   # many values out of range
            before = array.copy()
            save_image(tmp_path / "x.png", array)
            save_image(tmp_path / "x.png", array[..., 0] if array.ndim == 3 else array, bits=16)
            np.testing.assert_array_equal(array, before)
            assert array.dtype == dtype


def test_save_replaces_existing_file_whole(tmp_path):
    path = tmp_path / "over.png"
    save_image(path, RNG.random((64, 64, 4)))                   # big, noisy, RGBA
    big = path.stat().st_size
    small = np.array([[0.0, 1.0], [1.0, 0.0]])
    save_image(path, small)
    assert path.stat().st_size < big
    np.testing.assert_array_equal(load_image(path), small)
    save_image(tmp_path / "fresh.png", small)
    assert path.read_bytes() == (tmp_path / "fresh.png").read_bytes()
    path.write_text("not an image at all " * 100)               # replacing a non-image works too
    save_image(path, small)
    np.testing.assert_array_equal(load_image(path), small)
    assert _files(tmp_path) == ["fresh.png", "over.png"]


def test_save_accepts_relative_str_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_image("rel.png", np.zeros((2, 3)))
    assert _files(tmp_path) == ["rel.png"]
    np.testing.assert_array_equal(load_image("rel.png"), np.zeros((2, 3)))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_save_file_permissions_follow_umask(tmp_path):
    # A saved image should get the permissions any newly written file gets (0o666 & ~umask),
    # as Image.save(path) would give, not the 0o600 of a private temporary file.
    reference = tmp_path / "reference.bin"
    with open(reference, "wb"):
        pass
    path = tmp_path / "perm.png"
    save_image(path, np.zeros((2, 2)))
    assert oct(path.stat().st_mode & 0o777) == oct(reference.stat().st_mode & 0o777)


# --- save_image: bad input raises, and leaves nothing behind -------------------------------

SAVE_ERRORS = [
    ("nan", "x.png", np.array([[0.0, np.nan]]), {}, ValueError, "finite"),
    ("inf", "x.png", np.array([[0.0, np.inf]]), {}, ValueError, "finite"),
    ("-inf", "x.png", np.array([[-np.inf, 0.0]]), {}, ValueError, "finite"),
    ("nan-rgb", "x.png", np.full((2, 2, 3), np.nan), {}, ValueError, "finite"),
    ("bits16-rgb-jpeg", "x.jpg", np.zeros((2, 2, 3)), {"bits": 16}, OSError, "PNG or TIFF"),
    ("bits16-rgba-bmp", "x.bmp", np.zeros((2, 2, 4)), {"bits": 16}, OSError, "PNG or TIFF"),
    ("bits32-png", "x.png", np.zeros((2, 2)), {"bits": 32}, ValueError, "TIFF"),
    ("bits12", "x.png", np.zeros((2, 2)), {"bits": 12}, ValueError, "bits"),
    ("unknown-ext", "x.xyz", np.zeros((2, 2)), {}, ValueError, "format"),
    ("no-ext", "x", np.zeros((2, 2)), {}, ValueError, "format"),
    ("shape-1d", "x.png", np.zeros(4), {}, ValueError, "shape"),
    ("shape-0d", "x.png", np.float64(0.5), {}, ValueError, "shape"),
    ("shape-4d", "x.png", np.zeros((2, 2, 3, 1)), {}, ValueError, "shape"),
    ("shape-5ch", "x.png", np.zeros((2, 2, 5)), {}, ValueError, "shape"),
    ("shape-0ch", "x.png", np.zeros((2, 2, 0)), {}, ValueError, "shape"),
    ("empty", "x.png", np.zeros((0, 4)), {}, ValueError, "empty"),
    ("complex", "x.png", np.zeros((2, 2), dtype=complex), {}, TypeError, "real-valued"),
    ("strings", "x.png", np.array([["a", "b"]]), {}, TypeError, "real-valued"),
    ("rgba-as-jpeg", "x.jpg", np.zeros((2, 2, 4)), {}, OSError, None),        # Pillow refuses
    ("la-as-jpeg", "x.jpg", np.zeros((2, 2, 2)), {}, OSError, None),
    ("16bit-as-jpeg", "x.jpg", np.zeros((2, 2)), {"bits": 16}, OSError, None),
]


@pytest.mark.parametrize("name, array, kwargs, error, match",
                         [case[1:] for case in SAVE_ERRORS], ids=[case[0] for case in SAVE_ERRORS])
def test_save_bad_input_raises_and_leaves_no_file(tmp_path, name, array, kwargs, error, match):
    with pytest.raises(error, match=match):
        save_image(tmp_path / name, array, **kwargs)
    assert _files(tmp_path) == []                     # no file, no hidden temporary


def test_failed_save_keeps_existing_file(tmp_path):
    path = tmp_path / "keep.png"
    save_image(path, np.eye(3))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_image(path, np.zeros((3, 3, 3)), bits=32)
    with pytest.raises(ValueError):
        save_image(path, np.full((3, 3), np.nan))
    jpeg = tmp_path / "keep.jpg"
    save_image(jpeg, np.zeros((8, 8, 3)))
    jpeg_before = jpeg.read_bytes()
    with pytest.raises(OSError):
        save_image(jpeg, np.zeros((8, 8, 4)))         # fails inside Pillow, after the temporary exists
    assert path.read_bytes() == before and jpeg.read_bytes() == jpeg_before
    assert _files(tmp_path) == ["keep.jpg", "keep.png"]


def test_save_into_missing_directory_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        save_image(tmp_path / "no" / "such" / "dir" / "x.png", np.zeros((2, 2)))
    assert _files(tmp_path) == []


# --- load_image: bad files raise ImageReadError naming the file -----------------------------

def _real_png(folder):
    path = folder / "real.png"
    _pil(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB").save(path)
    return path.read_bytes()


def _real_jpeg(folder):
    path = folder / "real.jpg"
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
    return path.read_bytes()


def _real_tiff(folder):
    path = folder / "real.tif"
    _pil(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB").save(path)
    return path.read_bytes()


def _zeroed_middle(data):
    middle = len(data) // 2
    return data[:middle - 40] + bytes(80) + data[middle + 40:]


BAD_FILES = {
    "missing": ("missing.png", None),
    "directory": ("folder.png", "dir"),
    "empty": ("empty.png", lambda d: b""),
    "text-as-png": ("notes.png", lambda d: b"hello, this is plain text\n" * 10),
    "png-header-then-garbage": ("garbage.png", lambda d: b"\x89PNG\r\n\x1a\n"
                                + np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8).tobytes()),
    "png-truncated": ("half.png", lambda d: _real_png(d)[:len(_real_png(d)) // 2]),
    "png-zeroed-data": ("zeroed.png", lambda d: _zeroed_middle(_real_png(d))),
    "jpeg-truncated": ("half.jpg", lambda d: _real_jpeg(d)[:len(_real_jpeg(d)) // 2]),
    "jpeg-header-only": ("header.jpg", lambda d: _real_jpeg(d)[:20]),
    "tiff-truncated": ("half.tif", lambda d: _real_tiff(d)[:len(_real_tiff(d)) // 2]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_load_bad_file_raises_image_read_error(tmp_path, case):
    name, content = BAD_FILES[case]
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        source = tmp_path / "source"
        source.mkdir()
        path.write_bytes(content(source))
    for argument in (path, str(path)):
        with pytest.raises(ImageReadError) as info:
            load_image(argument)
        assert isinstance(info.value, OSError)
        assert str(path) in str(info.value)
        assert info.value.path == str(path)
        assert info.value.reason


def _png_claiming_size(path, width, height):
    """A valid 1x1 PNG whose IHDR (with a correct CRC) claims ``width`` x ``height``."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(bytes(data))


def test_load_decompression_bomb_raises_image_read_error(tmp_path):
    # The module docstring: "Every file that cannot be read raises ImageReadError".
    path = tmp_path / "bomb.png"
    _png_claiming_size(path, 20000, 20000)            # > 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert str(path) in str(info.value)


# --- property tests ---------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None)
SIDES = st.integers(1, 16)
SHAPES = st.one_of(st.tuples(SIDES, SIDES),
                   st.tuples(SIDES, SIDES, st.sampled_from([2, 3, 4])))


@PROPERTY_SETTINGS
@given(arrays(np.uint8, SHAPES))
def test_property_8bit_levels_round_trip_exactly(levels):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "p.png")
        save_image(path, levels / 255)
        result = load_image(path)
        assert os.listdir(folder) == ["p.png"]
    assert result.dtype == np.float64 and result.shape == levels.shape
    np.testing.assert_array_equal(result, levels.astype(np.float64) / 255)


@PROPERTY_SETTINGS
@given(arrays(np.float64, SHAPES, elements=st.floats(0, 1)))
def test_property_unit_floats_within_half_a_level(image):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "p.png")
        save_image(path, image)
        result = load_image(path)
    assert result.shape == image.shape
    assert np.abs(result - image).max() <= 0.5 / 255 + 1e-12


@PROPERTY_SETTINGS
@given(arrays(np.float64, st.tuples(SIDES, SIDES), elements=st.floats(-2, 3)))
def test_property_16bit_grey_clipped_within_half_a_level(image):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "p.png")
        save_image(path, image, bits=16)
        result = load_image(path)
    assert result.shape == image.shape
    assert np.abs(result - np.clip(image, 0, 1)).max() <= 0.5 / 65535 + 1e-12
