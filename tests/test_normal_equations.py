"""learning.normal_equations: the least-squares sums as a public, picklable value that
adds with ``+`` and solves to what learn_filter(method="lstsq") finds."""

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import revdeconv
from revdeconv import filters, learning
from revdeconv.learning import NormalEquations, normal_equations


@pytest.fixture(scope="module")
def samples():
    """The paper's 180x250 RGB images, filtered by the blur filter through clip."""
    originals = revdeconv.data.samples()
    return originals, [revdeconv.convolve(image, filters.SHARPEN) for image in originals]


def _relative(a, b):
    return float(np.linalg.norm(np.asarray(a, float) - b) / np.linalg.norm(b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [dict(), dict(bias=True), dict(activation="identity"),
                                     dict(activation="relu", stride=2, kernel_size=3)])
def test_solve_gives_learn_filters_kernel_exactly(backend, dtype, options):
    rng = np.random.default_rng(1)
    original = rng.random((61, 47, 3)).astype(dtype)
    truth = rng.normal(size=(3, 3)) / 3
    stride = options.get("stride", 3)
    activation = options.get("activation", "clip")
    filtered = revdeconv.convolve(original, truth, stride=stride, bias=0.2,
                                  activation=activation)
    filtered = filtered + rng.normal(scale=0.01, size=filtered.shape).astype(dtype)
    expected = revdeconv.learn_filter(original, filtered, method="lstsq", backend=backend,
                                      **options)
    equations = normal_equations(original, filtered, backend=backend, **options)
    result = equations.solve()
    assert result.kernel.dtype == expected.kernel.dtype == dtype
    np.testing.assert_array_equal(result.kernel, expected.kernel)
    np.testing.assert_array_equal(result.bias, expected.bias)
    assert (result.method, result.stride, result.activation, result.diverged) == \
        (expected.method, expected.stride, expected.activation, expected.diverged)
    if activation == "identity":        # every block usable, no clipping: the same loss,
        # but for the rounding of learn_filter's second pass, in the images' dtype.
        np.testing.assert_allclose(result.loss, expected.loss,
                                   rtol=1e-9 if dtype == np.float64 else 1e-5)


def test_shared_pairs_solve_as_learn_filter_on_the_list(samples, backend):
    originals, filtered = samples
    expected = revdeconv.learn_filter(originals[:4], filtered[:4], method="lstsq",
                                      backend=backend)
    result = normal_equations(originals[:4], filtered[:4], backend=backend).solve()
    np.testing.assert_array_equal(result.kernel, expected.kernel)


def test_the_sum_of_partitions_solves_to_the_filter_of_the_whole(samples, backend):
    originals, filtered = samples
    whole = normal_equations(originals, filtered, backend=backend)
    parts = [normal_equations(originals[i:i + 3], filtered[i:i + 3], backend=backend)
             for i in range(0, len(originals), 3)]
    total = sum(parts)
    assert isinstance(total, NormalEquations)
    np.testing.assert_array_equal(total.count, whole.count)         # counts are exact
    np.testing.assert_allclose(total.gram, whole.gram, rtol=1e-13)
    expected, result = whole.solve(), total.solve()
    # What the docstring promises: about condition() * 1e-16, here well within 1e-9.
    bound = max(1e-15 * whole.condition().max(), 1e-14)
    assert _relative(result.kernel, expected.kernel) <= min(bound, 1e-9)
    assert _relative(result.kernel, filters.SHARPEN[None].repeat(3, 0)) < 1e-3


def test_row_bands_of_one_image_add_up_to_the_image(backend):
    # With stride = kernel size, bands of whole block rows partition the blocks.
    rng = np.random.default_rng(2)
    original = rng.random((90, 75, 2))
    filtered = revdeconv.convolve(original, filters.BLUR, activation="identity")
    bands = [normal_equations(original[a * 3:b * 3], filtered[a:b], kernel_size=3,
                              activation="identity", backend=backend)
             for a, b in [(0, 7), (7, 20), (20, 30)]]
    whole = normal_equations(original, filtered, activation="identity", backend=backend)
    total = bands[0] + bands[1] + bands[2]
    assert _relative(total.solve().kernel, whole.solve().kernel) < 1e-9


def test_pickle_round_trip_and_process_pool(samples):
    originals, filtered = samples
    equations = normal_equations(originals[:2], filtered[:2], bias=True)
    again = pickle.loads(pickle.dumps(equations))
    assert type(again) is NormalEquations and again == equations
    assert NormalEquations.__module__ == "revdeconv.learning"
    result = equations.solve()
    assert pickle.loads(pickle.dumps(result)).kernel.tolist() == result.kernel.tolist()
    # Across processes: each computes a partition, the client adds them up.
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(normal_equations, [originals[:2], originals[2:4]],
                              [filtered[:2], filtered[2:4]]))
    here = normal_equations(originals[:2], filtered[:2]) + normal_equations(originals[2:4],
                                                                            filtered[2:4])
    assert sum(parts) == here


def test_adding_other_geometries_raises():
    rng = np.random.default_rng(3)
    image = rng.random((36, 36, 3))
    base = normal_equations(image, revdeconv.convolve(image, filters.BLUR))
    others = {
        "kernel_size": normal_equations(image, revdeconv.convolve(image, np.ones((4, 4)) / 16)),
        "stride": normal_equations(image, revdeconv.convolve(image, filters.BLUR, stride=2),
                                   kernel_size=3, stride=2),
        "activation": normal_equations(image, revdeconv.convolve(image, filters.BLUR),
                                       activation="relu"),
        "with_bias": normal_equations(image, revdeconv.convolve(image, filters.BLUR),
                                      bias=True),
        "channels": normal_equations(image[..., :2], revdeconv.convolve(image[..., :2],
                                                                        filters.BLUR)),
    }
    for name, other in others.items():
        with pytest.raises(ValueError, match=f"another geometry: {name}"):
            base + other
    with pytest.raises(TypeError):
        base + 1
    assert sum([base]) == base and 0 + base == base


def test_dtypes_add_to_their_common_dtype_and_records_are_checked():
    rng = np.random.default_rng(4)
    image = rng.random((30, 30))
    single = normal_equations(image.astype(np.float32),
                              revdeconv.convolve(image.astype(np.float32), filters.BLUR))
    double = normal_equations(image, revdeconv.convolve(image, filters.BLUR))
    assert single.dtype == "float32" and (single + single).solve().kernel.dtype == np.float32
    assert (single + double).dtype == "float64"
    with pytest.raises(ValueError, match=r"gram must have shape \(1, 9, 9\)"):
        NormalEquations(np.zeros((1, 8, 8)), np.zeros((1, 9)), [1], [1.0], 3, 3, "clip",
                        False)
    with pytest.raises(ValueError, match="activation must be one of"):
        NormalEquations(double.gram, double.rhs, double.count, double.target_sq, 3, 3,
                        "tanh", False)


def test_loss_from_the_sums_and_its_limits():
    rng = np.random.default_rng(5)
    original = rng.random((60, 60, 1))
    exact = revdeconv.convolve(original, filters.SHARPEN, activation="identity")
    # A perfect fit: the second pass gives ~0; the sums cancel to ~1e-17, never below 0.
    equations = normal_equations(original, exact, activation="identity")
    assert 0 <= equations.solve().loss[0] < 1e-13
    assert revdeconv.learn_filter(original, exact, activation="identity",
                                  method="lstsq").loss[0] < 1e-20
    # With clip, only the blocks in (0, 1) count: the losses differ, the kernels do not.
    clipped = revdeconv.convolve(original, filters.SHARPEN * 1.5)
    result = normal_equations(original, clipped).solve()
    expected = revdeconv.learn_filter(original, clipped, method="lstsq")
    np.testing.assert_array_equal(result.kernel, expected.kernel)
    assert equations.condition().shape == (1,) and np.isfinite(equations.condition()).all()


def test_under_determined_and_non_finite(backend):
    flat = np.full((9, 9), 0.5)
    equations = normal_equations(flat, revdeconv.convolve(flat, filters.BLUR),
                                 backend=backend)
    with pytest.warns(RuntimeWarning, match="under-determined"):
        equations.solve()
    image = np.random.default_rng(6).random((12, 12))
    target = revdeconv.convolve(image, filters.BLUR)
    image[4, 4] = np.nan          # a usable block (its target is finite) holds a NaN
    with pytest.warns(RuntimeWarning, match="not finite"):
        result = normal_equations(image, target, nonfinite="propagate",
                                  backend=backend).solve()
    assert result.diverged
    with pytest.raises(ValueError, match="NaN"):
        normal_equations(image, target, backend=backend)


def test_learning_namespace():
    assert {"normal_equations", "NormalEquations"} <= set(learning.__all__)
