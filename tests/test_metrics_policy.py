"""The measures follow the package's dtype policy (integer images scaled by their dtype's
maximum, as ``convolve`` scales them), ``psnr`` takes ``data_range`` as
``skimage.metrics.peak_signal_noise_ratio`` does, and float images far outside ``[0, 1]``
are warned about."""

import warnings

import numpy as np
import pytest

import revdeconv
from revdeconv import batch, metrics


@pytest.fixture
def u8(rng):
    return (rng.random((20, 30, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32])
def test_integer_images_are_scaled_as_convolve_scales_them(dtype, rng):
    info = np.iinfo(dtype)
    image = rng.integers(0, info.max, size=(12, 15, 3), endpoint=True).astype(dtype)
    as_float = image / info.max
    # convolve sees the integer image as image / max: so do the measures
    np.testing.assert_array_equal(revdeconv.convolve(image, np.ones((1, 1))),
                                  revdeconv.convolve(as_float, np.ones((1, 1))))
    assert metrics.mae(image, as_float) == pytest.approx(0, abs=1e-15)
    assert metrics.psnr(image, as_float) == np.inf
    assert metrics.mae(image, np.zeros_like(image)) == pytest.approx(np.mean(as_float))


def test_the_issue_case_uint8_against_its_float_version(u8):
    assert metrics.mae(u8, u8 / 255) < 1e-12              # was 128.0
    assert metrics.psnr(u8, u8 / 255) > 200 or metrics.psnr(u8, u8 / 255) == np.inf
    noisy = np.clip(u8 / 255 + 0.01, 0, 1)
    assert metrics.mae(u8, noisy) == pytest.approx(metrics.mae(u8 / 255, noisy))
    assert metrics.psnr(u8, noisy) == pytest.approx(metrics.psnr(u8 / 255, noisy))


def test_batch_mae_follows_the_same_policy(u8, backend):
    other = u8[::-1].copy()
    expected = [metrics.mae(u8, u8 / 255), metrics.mae(u8, other)]
    got = batch.mae([u8, u8], [u8 / 255, other], backend=backend)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
    assert got[0] < 1e-12 and got[1] == pytest.approx(np.mean(np.abs(u8 / 255 - other / 255)))
    stack = np.stack([u8, other])
    np.testing.assert_allclose(batch.mae(stack, stack / 255, backend=backend), 0, atol=1e-15)


def test_plain_lists_of_numbers_are_taken_as_written():
    # A list has no image dtype: nothing to scale (metrics.mae([0, 1], [1, 1]) stays 0.5).
    assert metrics.mae([0, 1], [1, 1]) == 0.5
    assert metrics.psnr([0, 1], [0.1, 0.9]) == pytest.approx(20.0)


def _skimage_psnr():
    metrics_module = pytest.importorskip("skimage.metrics")
    return metrics_module.peak_signal_noise_ratio


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_psnr_data_range_as_skimage(dtype, rng):
    skimage_psnr = _skimage_psnr()
    top = np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 1.0
    reference = (rng.random((16, 16, 3)) * top).astype(dtype)
    test = np.clip(reference.astype(np.float64) + rng.normal(0, 0.05 * top, reference.shape),
                   0, top).astype(dtype)
    # the default: the dtype's range for integers, 1.0 for floats, as skimage
    assert metrics.psnr(reference, test) == pytest.approx(skimage_psnr(reference, test),
                                                          rel=1e-6)
    # an explicit data_range is in the reference's own units (255 for uint8), as skimage
    for data_range in (top / 2, 2 * top):
        assert metrics.psnr(reference, test, data_range=data_range) == pytest.approx(
            skimage_psnr(reference, test, data_range=data_range), rel=1e-6)


def test_psnr_data_range_default_is_none_and_checked():
    import inspect
    assert inspect.signature(metrics.psnr).parameters["data_range"].default is None
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="data_range must be > 0"):
            metrics.psnr([0.0, 1.0], [0.1, 0.9], data_range=bad)


@pytest.mark.parametrize("call", [
    lambda x: metrics.mae(x, x / 2),
    lambda x: metrics.psnr(x, x / 2),
    lambda x: metrics.mae(x / 255, x),          # the test side is checked too
])
def test_floats_far_outside_0_1_are_warned_about_with_their_range(call, u8):
    floats = u8.astype(np.float64)               # 0..255 levels as floats: a mistake
    with pytest.warns(RuntimeWarning, match=r"from 0 to 25\d.*outside \[0, 1\]"):
        call(floats)


def test_values_within_a_range_of_0_1_and_explicit_data_range_do_not_warn(u8):
    near = np.linspace(-0.9, 1.9, 50)            # identity/relu overshoot: no warning
    floats = u8.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.mae(near, near[::-1])
        metrics.psnr(near, near[::-1])
        metrics.mae(u8, u8)                      # integers are scaled, never far outside
        # the caller has said what the range is: as skimage, no range check then
        assert metrics.psnr(floats, floats + 1, data_range=255) == pytest.approx(
            20 * np.log10(255))
