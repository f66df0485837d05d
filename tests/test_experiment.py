"""The paper's experiment: the protocol against a direct re-computation, the quirks, the data."""

import os

import numpy as np
import pytest

import revdeconv
from revdeconv import data, filters
from revdeconv.experiment import PAPER_FILTERS, PAPER_RATES, run_experiment

from reference import ref_convolve, ref_deconvolve, ref_learn_sgd, ref_zoom

STRIDE = 3
RATES = (1.0, 0.3, 0.05)


def _images(height, width):
    """Two smooth synthetic RGB images with a little noise (cheap, deterministic)."""
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:height, 0:width]
    images = []
    for n in range(2):
        grey = 0.5 + 0.3 * np.sin(rows / (3 + n) + n) * np.cos(cols / (4 + n))
        grey = grey + 0.05 * rng.random((height, width))
        images.append(np.clip(grey[..., None] * np.array([1.0, 0.8, 0.6]), 0, 1))
    return images


def _stored(image):
    """8-bit storage, written out: round half up, back to [0, 1]."""
    return np.floor(np.clip(image, 0, 1) * 255 + 0.5) / 255


def _mean_abs(a, b):
    return float(np.mean(np.abs(a - b)))


def _expected_rows(images, quirks):
    """SPEC section 6 computed with the slow reference loops of tests/reference.py."""
    rows = {}
    for name, truth in PAPER_FILTERS.items():
        kernel = np.stack([truth] * 3)
        filtered = [_stored(ref_convolve(im, kernel, (STRIDE, STRIDE), np.zeros(3), "clip"))
                    for im in images]
        if quirks:
            regions = [im.shape[:2] for im in images]
            zoomed = []
            for f, (h, w) in zip(filtered, regions):   # nearest resize to the full size
                r = np.arange(h) * f.shape[0] // h
                c = np.arange(w) * f.shape[1] // w
                zoomed.append(f[r[:, None], c[None, :]])
            learn_from = [im[:(f.shape[0] - 2) * STRIDE + 3, :(f.shape[1] - 2) * STRIDE + 3]
                          for im, f in zip(images, filtered)]
            learn_to = [f[:-1, :-1] for f in filtered]
        else:
            regions = [((f.shape[0] - 1) * STRIDE + 3, (f.shape[1] - 1) * STRIDE + 3)
                       for f in filtered]
            zoomed = [ref_zoom(f, STRIDE, STRIDE, shape) for f, shape in zip(filtered, regions)]
            learn_from, learn_to = images, filtered
        targets = [im[:h, :w] for im, (h, w) in zip(images, regions)]
        mae0 = np.mean([_mean_abs(z, t) for z, t in zip(zoomed, targets)])
        for rate in RATES:
            learned, _, _ = ref_learn_sgd(learn_from, learn_to, 3, 3, STRIDE, STRIDE, rate, 1,
                                          None, False, "clip")
            restored = [ref_deconvolve(f, learned, STRIDE, STRIDE, "clip", 1e-6, shape)
                        for f, shape in zip(filtered, regions)]
            mae = np.mean([_mean_abs(r, t) for r, t in zip(restored, targets)])
            rows[rate, name] = (mae, mae0, abs(mae - mae0) / mae0, learned)
    return rows


@pytest.mark.parametrize("quirks", [False, True], ids=["spec", "author-quirks"])
def test_protocol_matches_direct_recomputation(quirks, backend):
    images = _images(16, 20)          # 5x6 blocks: a border column the blocks do not cover
    result = run_experiment(images, rates=RATES, author_quirks=quirks, backend=backend)
    expected = _expected_rows(images, quirks)
    assert len(result.rows) == len(RATES) * 3
    for (rate, name), (mae, mae0, ratio, kernel) in expected.items():
        row = result.row(rate, name)
        np.testing.assert_allclose(row.kernel, kernel, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose([row.mae, row.mae0, row.loss_ratio], [mae, mae0, ratio],
                                   rtol=1e-9)
        assert row.gain == pytest.approx(mae0 / mae)
        truth = np.stack([PAPER_FILTERS[name]] * 3)       # the true filter of every channel
        assert row.filter_error == pytest.approx(
            np.linalg.norm(kernel - truth) / np.linalg.norm(truth))


def test_author_quirks_change_exactly_the_baseline_and_the_learning_crop(backend):
    # Sizes that divide by 3: the author's resize is then aligned, so MAE0 must not move;
    # only the learning (last block row and column skipped) changes the kernel and MAE.
    images = _images(15, 18)
    plain = run_experiment(images, rates=RATES, backend=backend)
    quirky = run_experiment(images, rates=RATES, author_quirks=True, backend=backend)
    for a, b in zip(plain.rows, quirky.rows):
        assert a.mae0 == b.mae0
        assert not np.array_equal(a.kernel, b.kernel)
        cropped = revdeconv.learn_filter(
            [im[:12, :15] for im in images],
            [_stored(revdeconv.convolve(im, PAPER_FILTERS[a.filter]))[:4, :5] for im in images],
            lr=a.rate, backend=backend)
        np.testing.assert_array_equal(b.kernel, cropped.kernel)
    # Sizes that do not divide: the misaligned 83 -> 250 style resize moves MAE0.
    images = _images(16, 20)
    plain = run_experiment(images, rates=RATES, backend=backend)
    quirky = run_experiment(images, rates=RATES, author_quirks=True, backend=backend)
    assert all(a.mae0 != b.mae0 for a, b in zip(plain.rows, quirky.rows))


def test_default_runs_the_paper_protocol_on_the_bundled_samples():
    result = run_experiment()
    assert result.n_images == 10
    assert result.rates == PAPER_RATES and len(PAPER_RATES) == 19
    assert PAPER_RATES[:10] == (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
    assert PAPER_RATES[10:] == (0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01)
    assert len(result.rows) == 57
    assert {row.filter for row in result.rows} == {"blur", "sharpening", "edge-detection"}
    table2 = result.table2()
    assert [row["rates"] for row in table2] == [10, 10, 10]
    blur = [r for r in result.rows if r.filter == "blur"]
    assert table2[0]["loss_ratio"] == pytest.approx(np.mean([r.loss_ratio for r in blur[:10]]))
    for row in result.rows:
        assert np.isfinite([row.mae, row.mae0, row.loss_ratio]).all() and not row.diverged
    # The reverse solve with (nearly) the exact blur filter is the zoom: MAE -> MAE0.
    assert result.row(0.01, "blur").loss_ratio < 1e-3
    assert result.best("blur").filter_error < 0.01


def test_a_diverged_rate_is_a_row_not_a_crash(backend):
    # With clip the error stays in [-1, 1]: the weights only overflow at an absurd rate,
    # once enough blocks have pushed them the same way.
    images = _images(60, 90)
    result = run_experiment(images, rates=[1e308, 0.1], backend=backend)
    for name in PAPER_FILTERS:
        wild, tame = result.row(1e308, name), result.row(0.1, name)
        assert wild.diverged and np.isnan(wild.mae) and np.isnan(wild.loss_ratio)
        assert not tame.diverged and np.isfinite(tame.mae)
        assert result.best(name) is tame               # the example uses a converged filter
        np.testing.assert_array_equal(
            result.examples[name][2],
            revdeconv.deconvolve(_stored(revdeconv.convolve(images[0], PAPER_FILTERS[name])),
                                 tame.kernel, output_shape=(60, 90), backend=backend))
    assert all(np.isnan(row["loss_ratio"]) for row in result.table2(rates=[1e308, 0.1]))


def test_lstsq_method_is_solved_once_per_filter(backend):
    result = run_experiment(_images(16, 20), rates=RATES, method="lstsq", backend=backend)
    for name in PAPER_FILTERS:
        kernels = [result.row(rate, name).kernel for rate in RATES]
        assert all(np.array_equal(kernels[0], k) for k in kernels[1:])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(images=np.zeros((9, 9, 3))), TypeError, "images must be a list"),
    (dict(images=[np.zeros((9, 9, 3)), np.zeros((9, 9))]), ValueError, "must all be 2-D"),
    (dict(rates=[]), ValueError, "rates must not be empty"),
    (dict(rates=[0.1, -1.0]), ValueError, "rates must be > 0"),
    (dict(method="adam"), ValueError, "method must be one of"),
    (dict(author_quirks="yes"), TypeError, "author_quirks must be True or False"),
    (dict(filters={"odd": np.ones(3)}), ValueError, r"filters\['odd'\] must be a finite"),
    (dict(filters={}), TypeError, "filters must be a non-empty dict"),
])
def test_run_experiment_rejects(kwargs, error, match):
    args = dict(images=_images(9, 9)) | kwargs
    with pytest.raises(error, match=match):
        run_experiment(args.pop("images"), **args)


def test_bundled_samples_and_their_sources():
    images = data.samples()
    assert len(images) == 10
    for image in images:
        assert image.shape == (180, 250, 3) and image.dtype == np.float64
        assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.02
    with open(os.path.join(os.path.dirname(data.__file__), "samples", "SOURCES.md")) as f:
        sources = f.read()
    for name in data.sample_names():
        assert f"{name}.png" in sources
    assert sources.count("public domain") + sources.count("CC0") >= 10


def test_author_results_cover_all_rates_and_filters():
    rows = data.author_results()
    assert len(rows) == 57
    assert sorted({r["learning_rate"] for r in rows}, reverse=True) == list(PAPER_RATES)
    blur = {r["learning_rate"]: r for r in rows if r["filter"] == "blur"}
    assert blur[1.0]["MAE"] == 0.2881 and blur[1.0]["loss_ratio"] == pytest.approx(2.961781)


def test_filters_used_are_the_papers():
    np.testing.assert_array_equal(PAPER_FILTERS["blur"], filters.BLUR)
    np.testing.assert_array_equal(PAPER_FILTERS["sharpening"], filters.SHARPEN)
    np.testing.assert_array_equal(PAPER_FILTERS["edge-detection"], filters.EDGE)
