"""The PNG writer (``revdeconv._png_encoder``): its compiled Paeth filter against the
NumPy one and against the filter written straight from the PNG specification, and
its files read back exactly by Pillow (and OpenCV where installed)."""

import io

import numpy as np
import pytest
from PIL import Image

from revdeconv import _png_encoder
from revdeconv._png_encoder import paeth_numpy, png_bytes
from revdeconv.io import read_image, save_image


def paeth_reference(raw, step):
    """The filter as the specification states it, one byte at a time."""
    out = []
    for r, row in enumerate(raw.astype(int)):
        above = raw[r - 1].astype(int) if r else np.zeros_like(row)
        filtered = [4]
        for i, x in enumerate(row):
            a = row[i - step] if i >= step else 0
            b = above[i]
            c = above[i - step] if i >= step else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            filtered.append((x - predictor) % 256)
        out.append(filtered)
    return np.array(out, dtype=np.uint8)


@pytest.mark.parametrize("shape, step", [((1, 1), 1), ((3, 9), 3), ((7, 24), 6),
                                          ((5, 16), 8), ((4, 10), 2), ((6, 12), 4)])
def test_paeth_filter_is_the_specifications(shape, step, rng):
    raw = rng.integers(0, 256, shape, dtype=np.uint8)
    expected = paeth_reference(raw, step)
    above = np.vstack([np.zeros_like(raw[:1]), raw[:-1]])
    np.testing.assert_array_equal(paeth_numpy(raw, above, step), expected)
    if _png_encoder._png_filter is None:
        pytest.skip("compiled extension not built")
    for start, stop in ((0, shape[0]), (shape[0] // 2, shape[0])):      # a band
        out = np.empty((stop - start, shape[1] + 1), dtype=np.uint8)
        _png_encoder._png_filter.paeth_rows(raw, start, stop, step, out)
        np.testing.assert_array_equal(out, expected[start:stop])


@pytest.mark.parametrize("compiled", [True, False])
def test_the_two_filters_write_the_same_bytes(compiled, rng, monkeypatch):
    values = rng.integers(0, 256, (300, 70, 3), dtype=np.uint8)      # two bands of rows
    values[100:200] = values[100]                                     # long runs
    if not compiled:
        monkeypatch.setattr(_png_encoder, "_png_filter", None)
    elif _png_encoder._png_filter is None:
        pytest.skip("compiled extension not built")
    data = png_bytes(values)
    monkeypatch.setattr(_png_encoder, "_png_filter", None)
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

