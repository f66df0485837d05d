"""revdeconv.batch: one compiled call for many images, exactly the per-image results."""

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
