"""revdeconv.batch: one compiled call for many images, exactly the per-image results."""

import tracemalloc

import numpy as np
import pytest

import revdeconv
from revdeconv import batch, filters
from revdeconv._layout import back_to_back


@pytest.fixture
def stack():
    rng = np.random.default_rng(5)
    return rng.random((6, 21, 27, 3))


def _filtered(images, **options):
    return [revdeconv.convolve(image, filters.EDGE, **options) for image in images]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_convolve_stack_equals_per_image(stack, backend, dtype):
    stack = stack.astype(dtype)
    out = batch.convolve(stack, filters.SHARPEN, stride=2, backend=backend)
    assert out.shape == (6, 10, 13, 3) and out.dtype == dtype
    for image, result in zip(stack, out):
        np.testing.assert_array_equal(
            result, revdeconv.convolve(image, filters.SHARPEN, stride=2, backend=backend))


def test_lists_of_mixed_sizes_give_lists(backend):
    rng = np.random.default_rng(1)
    images = [rng.random((12, 15, 3)), rng.random((30, 9, 3)), rng.random((3, 3, 3))]
    out = batch.convolve(images, filters.BLUR, stride=1, backend=backend)
    assert isinstance(out, list)
    for image, result in zip(images, out):
        np.testing.assert_array_equal(
            result, revdeconv.convolve(image, filters.BLUR, stride=1, backend=backend))


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_learn_each_equals_per_image_calls(stack, backend, shuffle, bias):
    targets = batch.convolve(stack, filters.EDGE, backend=backend)
    options = dict(lr=0.05, epochs=2, shuffle=shuffle, seed=11, bias=bias, backend=backend)
    results = batch.learn(stack, targets, **options)
    assert len(results) == len(stack)
    for image, target, result in zip(stack, targets, results):
        alone = revdeconv.learn_filter(image, target, **options)
        np.testing.assert_array_equal(result.kernel, alone.kernel)
        np.testing.assert_array_equal(result.bias, alone.bias)
        np.testing.assert_array_equal(result.loss, alone.loss)


def test_learn_each_lstsq_and_shared(stack, backend):
    targets = batch.convolve(stack, filters.BLUR, activation="identity", backend=backend)
    fits = batch.learn(stack, targets, method="lstsq", activation="identity", backend=backend)
    for image, target, fit in zip(stack, targets, fits):
        alone = revdeconv.learn_filter(image, target, method="lstsq", activation="identity",
                                       backend=backend)
        np.testing.assert_array_equal(fit.kernel, alone.kernel)
    shared = batch.learn(stack, targets, shared=True, lr=0.05, backend=backend)
    paper = revdeconv.learn_filter(list(stack), list(targets), lr=0.05, backend=backend)
    np.testing.assert_array_equal(shared.kernel, paper.kernel)


def test_deconvolve_with_one_filter_per_image(stack, backend):
    targets = batch.convolve(stack, filters.EDGE, backend=backend)
    results = batch.learn(stack, targets, lr=0.1, backend=backend)
    restored = batch.deconvolve(targets, results, output_shape=stack.shape[1:3], backend=backend)
    assert restored.shape == stack.shape
    for target, result, out in zip(targets, results, restored):
        np.testing.assert_array_equal(out, revdeconv.deconvolve(
            target, result.kernel, output_shape=stack.shape[1:3], backend=backend))
    shared = batch.deconvolve(targets, filters.EDGE, backend=backend)
    for target, out in zip(targets, shared):
        np.testing.assert_array_equal(out, revdeconv.deconvolve(target, filters.EDGE,
                                                                backend=backend))


def test_threads_do_not_change_results(stack):
    if not revdeconv.compiled_available():
        pytest.skip("needs the compiled backend")
    runs = []
    for n_threads in (1, 2, 3):
        filtered = batch.convolve(stack, filters.EDGE, stride=1, n_threads=n_threads)
        learned = batch.learn(stack, batch.convolve(stack, filters.BLUR), lr=0.05,
                              n_threads=n_threads)
        restored = batch.deconvolve(batch.convolve(stack, filters.BLUR), learned,
                                    n_threads=n_threads)
        runs.append((filtered, np.stack([r.kernel for r in learned]), restored))
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            np.testing.assert_array_equal(a, b)


def test_contiguous_stack_is_not_copied(stack):
    images = list(stack)
    flat = back_to_back(images)
    assert flat is not None and np.shares_memory(flat, stack)
    assert back_to_back(list(stack[:, ::2])) is None          # not contiguous: no view
    out = batch.convolve(stack, filters.BLUR)
    assert out.flags.writeable and out.base is not None       # a view on one output buffer


def test_mae_matches_metrics(stack, backend):
    other = stack[::-1]
    np.testing.assert_allclose(batch.mae(stack, other, backend=backend),
                               [revdeconv.metrics.mae(a, b) for a, b in zip(stack, other)],
                               rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int16])
def test_mae_of_pairs_of_any_shape_and_dtype(dtype, backend, rng):
    # Pairs of different shapes and channel counts in one call; ints scaled by
    # their dtype's maximum, as metrics.mae scales them.
    shapes = [(5, 7, 3), (9, 4), (1, 1, 1), (6, 11, 2)]
    images = [(rng.random(s) * 200).astype(dtype) for s in shapes]
    references = [(rng.random(s) * 200).astype(dtype) for s in shapes]
    expected = [revdeconv.metrics.mae(a, b) for a, b in zip(images, references)]
    np.testing.assert_allclose(batch.mae(images, references, backend=backend), expected,
                               rtol=1e-14, atol=0)


def test_mae_propagates_nan_and_agrees_across_threads(backend, rng):
    images = rng.random((6, 20, 30, 3)).astype(np.float32)
    references = rng.random((6, 20, 30, 3)).astype(np.float32)
    images[2, 4, 5, 1] = np.nan
    one = batch.mae(images, references, backend=backend, n_threads=1)
    two = batch.mae(images, references, backend=backend, n_threads=2)
    np.testing.assert_array_equal(one, two)
    assert np.isnan(one[2]) and np.isfinite(np.delete(one, 2)).all()


@pytest.mark.parametrize("call, error, match", [
    (lambda s: batch.mae(s, s[:-1]), ValueError, "images but"),
    (lambda s: batch.mae(s, s[:, :-1]), ValueError, r"images\[0\] and references\[0\] must have one shape"),
    (lambda s: batch.mae(s, s.astype(complex)), TypeError, r"references\[0\] must be a real"),
    (lambda s: batch.mae(s[:, :0], s[:, :0]), ValueError, "must not be empty"),
    (lambda s: batch.mae(s, s, n_threads=0), ValueError, "n_threads"),
    (lambda s: batch.mae(s, s, backend="gpu"), ValueError, "backend"),
    (lambda s: batch.convolve(s[0, 0], filters.BLUR), ValueError, r"\(N, H, W\)"),
    (lambda s: batch.convolve([], filters.BLUR), ValueError, "at least one image"),
    (lambda s: batch.convolve(s[:0], filters.BLUR), ValueError, "at least one image"),
    (lambda s: batch.convolve("images", filters.BLUR), TypeError, "stack"),
    (lambda s: batch.convolve([s[0], s[0, :, :, 0, None, None]], filters.BLUR), ValueError,
     r"images\[1\]"),
    (lambda s: batch.learn(s, s[:2]), ValueError, "two lists of one length"),
    (lambda s: batch.learn(s, s, shared="yes"), TypeError, "shared must be True or False"),
    (lambda s: batch.learn(s, batch.convolve(s, filters.BLUR), speed=2), TypeError, "speed"),
    (lambda s: batch.deconvolve(s, [filters.BLUR] * 2), ValueError, "holds 2 filters"),
    (lambda s: batch.deconvolve(s, [filters.BLUR] * 2 + [np.full((3, 3), np.nan)] * 4),
     ValueError, r"kernels\[2\] must hold finite values"),
    (lambda s: batch.deconvolve(s, np.ones((6, 2, 3, 3))), ValueError,
     r"kernels?\[0\] must have shape \(kh, kw\) or \(3, kh, kw\)"),
    (lambda s: batch.deconvolve(s, [np.ones((3, 3), dtype=bool)] * 6), TypeError,
     r"kernels\[0\] must hold numbers"),
    (lambda s: batch.deconvolve(s, [np.ones((3, 3))] * 5 + [np.ones((2, 2))]), ValueError,
     "share one size"),
])
def test_batch_rejects(stack, call, error, match):
    with pytest.raises(error, match=match):
        call(stack)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_nonfinite_pixel_in_a_stack_names_its_image(stack, value, backend):
    # A contiguous stack is checked in one pass; the error still names the image.
    stack = stack.copy()
    stack[3, 1, 2, 0] = value
    with pytest.raises(ValueError, match=r"image\[3\] holds NaN or infinite pixels"):
        batch.convolve(stack, filters.BLUR, backend=backend)
    huge = np.full_like(stack, 3e38 if stack.dtype == np.float32 else 1e308)
    assert np.isfinite(batch.convolve(huge, np.full((3, 3), 1e-9), activation="identity",
                                      backend=backend)).all()   # the sum overflows; no pixel does


# A list of separately allocated images is read in place by the compiled
# convolution, reverse solve and measures (src_c/_batch.pxd, input_pointers).
_SIZES = {"one size": [(21, 27)] * 4, "mixed sizes": [(23, 31), (9, 70), (40, 17), (5, 5)]}
_CALLS = {
    "convolve stride 1, zero taps left out": lambda images, o: batch.convolve(
        images, filters.SHARPEN, stride=1, **o),
    "convolve stride 1, every tap": lambda images, o: batch.convolve(
        images, filters.EDGE, stride=1, nonfinite="propagate", **o),
    "convolve stride (2, 3), subsampled row": lambda images, o: batch.convolve(
        images, filters.SHARPEN, stride=(2, 3), **o),
    "convolve stride (1, 2), strided row": lambda images, o: batch.convolve(
        images, filters.EDGE, stride=(1, 2), **o),
    "deconvolve stride 1, overlap": lambda images, o: batch.deconvolve(
        images, filters.BLUR, stride=1, **o),
    "deconvolve stride (3, 2), block rows": lambda images, o: batch.deconvolve(
        images, filters.SHARPEN, stride=(3, 2), **o),
    "deconvolve stride 3, disjoint": lambda images, o: batch.deconvolve(
        images, filters.EDGE, stride=3, **o),
    "deconvolve stride (4, 5), gaps": lambda images, o: batch.deconvolve(
        images, filters.SHARPEN, stride=(4, 5), **o),
    "mae": lambda images, o: batch.mae(images, images[::-1] if len(
        {image.shape for image in images}) == 1 else images, **o),
    "lstsq loss (squared_error)": lambda images, o: batch.learn(
        images, batch.convolve(images, filters.BLUR, **o), shared=True, method="lstsq",
        activation="identity", **o).loss,
}


def _apart(images, tmp_path):
    """The same images as C-contiguous arrays in separate buffers, none back to back:
    each inside a larger buffer of NaN (a read off its ends shows), every other one
    read-only, the last a read-only memmap."""
    apart = []
    for n, image in enumerate(images):
        buffer = np.full(image.size + 16 + n, np.nan, dtype=image.dtype)
        view = buffer[8 + n:8 + n + image.size].reshape(image.shape)
        view[...] = image
        view.flags.writeable = n % 2 == 0
        apart.append(view)
    np.save(tmp_path / "last.npy", images[-1])
    apart[-1] = np.load(tmp_path / "last.npy", mmap_mode="r")
    assert back_to_back(apart) is None and not apart[-1].flags.writeable
    return apart


@pytest.mark.parametrize("sizes", _SIZES.values(), ids=list(_SIZES))
@pytest.mark.parametrize("call", _CALLS.values(), ids=list(_CALLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_separate_images_give_the_stacked_bits(sizes, call, dtype, tmp_path, monkeypatch):
    compiled = pytest.importorskip("revdeconv._compiled_backend")
    # Threads even for these small images, so that two threads share the rows.
    for name in ("_MIN_MACS_PER_THREAD", "_MIN_VALUES_PER_THREAD"):
        monkeypatch.setattr(compiled, name, 1)
    rng = np.random.default_rng(len(sizes))
    flat = rng.random(sum(h * w * 3 for h, w in sizes)).astype(dtype)
    # The same images back to back in one buffer: a stack, when they share a size.
    packed, start = [], 0
    for h, w in sizes:
        packed.append(flat[start:start + h * w * 3].reshape(h, w, 3))
        start += h * w * 3
    apart = _apart(packed, tmp_path)
    expected = call(packed, dict(backend="compiled", n_threads=1))
    if call is not _CALLS["lstsq loss (squared_error)"]:     # (sums in another order)
        for a, b in zip(call(packed, dict(backend="numpy")), expected):
            np.testing.assert_array_equal(a, b)
    for n_threads in (1, 2):
        for images in (packed, apart):
            got = call(images, dict(backend="compiled", n_threads=n_threads))
            for a, b in zip(expected, got):
                np.testing.assert_array_equal(a, b)


def test_separate_images_are_not_copied():
    pytest.importorskip("revdeconv._compiled_backend")
    # Four separate images with their outputs given: nothing of an image's size is
    # allocated (a copy of the inputs into one buffer would be four).
    rng = np.random.default_rng(3)
    images = [rng.random((100, 120, 3)) for _ in range(4)]
    outs = [np.empty((98, 118, 3)) for _ in range(4)]
    restored = [np.empty_like(image) for image in images]
    tracemalloc.start()
    try:
        revdeconv.convolve(images, filters.SHARPEN, stride=1, out=outs, backend="compiled",
                           n_threads=1)
        revdeconv.deconvolve(outs, filters.SHARPEN, stride=1, output_shape=(100, 120),
                             out=restored, backend="compiled", n_threads=1)
        batch.mae(images, restored, backend="compiled", n_threads=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < images[0].nbytes / 2


def test_an_input_of_the_wrong_shape_is_refused_in_every_build():
    # The compiled wrapper checks each input's shape against its geometry row.
    pytest.importorskip("revdeconv._compiled_backend")
    from revdeconv import _measure
    geometry = np.array([[0, 2, 3, 0]], dtype=np.intp)
    with pytest.raises(ValueError, match=r"input 0 must have shape \(2, 3, 1\)"):
        _measure.mean_abs_diff([np.zeros((3, 2, 1))], [np.zeros((2, 3, 1))], geometry,
                               np.empty(1), 1, 1)
