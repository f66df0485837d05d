"""Reliability: unusual but valid inputs, degenerate filters, non-finite pixels,
threads calling at once, and no memory growth over many calls."""

import gc
import os
import resource
import threading
import tracemalloc
import warnings

import numpy as np
import pytest

import revdeconv
from revdeconv import filters

RNG = np.random.default_rng(17)
IMAGE = RNG.random((24, 30, 3))


# --- non-finite pixels: an error by default, naming the argument -----------------------

@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call, name", [
    (lambda im: revdeconv.convolve(im, filters.BLUR), "image"),
    (lambda im: revdeconv.deconvolve(im, filters.BLUR), "filtered"),
    (lambda im: revdeconv.learn_filter(im, revdeconv.convolve(IMAGE, filters.BLUR)), "original"),
    (lambda im: revdeconv.learn_filter(IMAGE, im[:8, :10]), "filtered"),
    (lambda im: revdeconv.convolve([IMAGE, im], filters.BLUR), r"image\[1\]"),
])
def test_nonfinite_pixels_are_rejected(value, call, name, backend):
    image = IMAGE.copy()
    image[5, 6, 1] = value
    with pytest.raises(ValueError, match=f"{name} holds NaN or infinite pixels"):
        call(image)


@pytest.mark.parametrize("dtype, huge", [(np.float64, 1e308), (np.float32, 3e38)])
def test_huge_finite_pixels_are_not_mistaken_for_infinite(dtype, huge, backend):
    image = np.full((6, 6), huge, dtype=dtype)   # their sum overflows; each is finite
    out = revdeconv.convolve(image, np.full((3, 3), 1e-9), activation="identity",
                             backend=backend)
    assert np.isfinite(out).all()


# --- unusual but valid inputs give the plain results ------------------------------------

@pytest.mark.parametrize("variant", [
    lambda a: np.asfortranarray(a),
    lambda a: a[::-1, ::-1][::-1, ::-1],                  # negative strides, same values
    lambda a: np.ascontiguousarray(a[:, ::-1])[:, ::-1],   # a reversed view
    lambda a: a.astype(">f8"),
    lambda a: _readonly(a),
])
def test_unusual_layouts_match_plain(variant, backend):
    plain = IMAGE
    other = variant(IMAGE.copy())
    before = np.array(other, copy=True)
    for fn in (lambda x: revdeconv.convolve(x, filters.EDGE, stride=1, backend=backend),
               lambda x: revdeconv.deconvolve(x, filters.BLUR, backend=backend),
               lambda x: revdeconv.learn_filter(x, revdeconv.convolve(plain, filters.BLUR),
                                                lr=0.05, backend=backend).kernel):
        np.testing.assert_array_equal(fn(other), fn(plain))
    np.testing.assert_array_equal(other, before)          # never modified


def _readonly(array):
    array.setflags(write=False)
    return array


@pytest.mark.parametrize("shape, kernel, expected", [
    ((3, 3), np.ones((3, 3)), (1, 1)),            # a single-pixel output
    ((1, 9), np.ones((1, 3)), (1, 3)),            # a single row
    ((9, 1), np.ones((3, 1)), (3, 1)),            # a single column
])
def test_smallest_shapes(shape, kernel, expected, backend):
    image = RNG.random(shape)
    out = revdeconv.convolve(image, kernel / kernel.size, backend=backend)
    assert out.shape == expected
    restored = revdeconv.deconvolve(out, kernel / kernel.size, backend=backend)
    assert restored.shape == shape


@pytest.mark.parametrize("kernel", [np.ones(3), np.float64(2.0), np.ones((1, 1, 1, 3, 3))])
def test_kernels_of_the_wrong_dimensionality_are_rejected(kernel, backend):
    with pytest.raises(ValueError, match="kernel must have shape"):
        revdeconv.convolve(IMAGE, kernel, backend=backend)


def test_object_arrays_are_rejected(backend):
    with pytest.raises(TypeError, match="image must be a real-valued array"):
        revdeconv.convolve(np.empty((5, 5), dtype=object), filters.BLUR, backend=backend)


@pytest.mark.parametrize("stride", [2**40, -3, 0])
def test_absurd_strides_are_rejected(stride, backend):
    with pytest.raises(ValueError, match="stride must be"):
        revdeconv.convolve(IMAGE, filters.BLUR, stride=stride, backend=backend)


# --- degenerate filters never divide by zero -------------------------------------------

@pytest.mark.parametrize("kernel", [np.zeros((3, 3)), filters.SHARPEN * 0 + np.eye(3) * 1e-9])
def test_zero_weights_take_the_filtered_value(kernel, backend):
    filtered = revdeconv.convolve(IMAGE, filters.BLUR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # no division warnings either
        restored = revdeconv.deconvolve(filtered, kernel, backend=backend)
    np.testing.assert_array_equal(restored, revdeconv.zoom(filtered, 3))


def test_eps_is_inclusive(backend):
    filtered = revdeconv.convolve(IMAGE, filters.BLUR)
    kernel = np.full((3, 3), 0.25)
    at = revdeconv.deconvolve(filtered, kernel, eps=0.25, backend=backend)
    below = revdeconv.deconvolve(filtered, kernel, eps=np.nextafter(0.25, 0), backend=backend)
    np.testing.assert_array_equal(at, revdeconv.zoom(filtered, 3))
    assert not np.array_equal(below, at)


# --- threads: the GIL is released, so calls from Python threads run at once ------------

def test_calls_from_eight_threads_equal_serial_calls(backend):
    images = [RNG.random((60, 75, 3)) for _ in range(8)]

    def work(image):
        filtered = revdeconv.convolve(image, filters.EDGE, backend=backend)
        learned = revdeconv.learn_filter(image, filtered, lr=0.1, backend=backend)
        return filtered, learned.kernel, revdeconv.deconvolve(filtered, learned.kernel,
                                                              backend=backend)

    serial = [work(image) for image in images]
    results = [None] * len(images)
    errors = []

    def run(k):
        try:
            for _ in range(5):
                results[k] = work(images[k])
        except Exception as exc:                       # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for expected, got in zip(serial, results):
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)


# --- memory: 10,000 calls do not grow it -------------------------------------------------

def _rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def test_ten_thousand_calls_do_not_grow_memory(backend):
    image = RNG.random((18, 24, 3)).astype(np.float32)
    filtered = revdeconv.convolve(image, filters.BLUR)

    def calls(n):
        for _ in range(n):
            revdeconv.convolve(image, filters.EDGE, backend=backend)
            revdeconv.deconvolve(filtered, filters.BLUR, backend=backend)
            revdeconv.learn_filter(image, filtered, lr=0.1, backend=backend)

    calls(200)                                  # warm caches and allocators up
    gc.collect()
    tracemalloc.start()
    rss_before = _rss_kib()
    start, _ = tracemalloc.get_traced_memory()
    calls(10_000 if backend == "compiled" else 1_000)
    gc.collect()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = _rss_kib() - rss_before
    assert end - start < 256 * 1024, f"Python heap grew by {end - start} bytes"
    # AddressSanitizer keeps freed memory in quarantine on purpose (tools/sanitize.sh).
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert rss_growth < 16 * 1024, f"resident memory grew by {rss_growth} KiB"


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_the_finite_check_of_a_large_image_in_parts(n_threads):
    # Large enough to be summed in parts on several threads: a NaN in any part is
    # found, and huge finite values that overflow a part's sum are not mistaken.
    from revdeconv._images import check_finite
    image = np.zeros((1500, 2000, 3), dtype=np.float32)
    check_finite(image, "image", n_threads)
    image[-1, -1, -1] = np.nan
    with pytest.raises(ValueError, match="image holds NaN"):
        check_finite(image, "image", n_threads)
    image[...] = 3e38
    check_finite(image, "image", n_threads)
    image[700, 3, 1] = -np.inf
    with pytest.raises(ValueError, match="image holds NaN"):
        check_finite(image, "image", n_threads)
