"""revdeconv.restore: against dense least squares, the adjoint, the backends, convergence."""

import itertools

import numpy as np
import pytest

import revdeconv
from revdeconv import _restore_numpy, restoration
from revdeconv._layout import output_size
from revdeconv.restoration import RestoreInfo, estimate_noise, restore

from conftest import require

STRIDES = [1, 2, 3, (2, 3), (5, 2)]
KERNEL_SHAPES = [(1, 1), (3, 3), (2, 5), (5, 5)]


def passes(backend):
    """The module of restore's passes for ``backend`` (the compiled one when built)."""
    require(backend)
    from revdeconv._backend import get_restore_backend
    return get_restore_backend(backend)


# ---------------------------------------------------------------------------------------
# Dense references written from SPEC section 2 and restore's docstring


def dense_forward(kernel, shape, stride):
    """The matrix of ``A`` for one channel: row ``p * Wo + q``, column ``r * W + c``."""
    kh, kw = kernel.shape
    (height, width), (sh, sw) = shape, stride
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    matrix = np.zeros((out_h * out_w, height * width))
    for p, q, i, j in itertools.product(range(out_h), range(out_w), range(kh), range(kw)):
        matrix[p * out_w + q, (p * sh + i) * width + q * sw + j] += kernel[i, j]
    return matrix


def dense_laplacian(shape):
    """The 4-neighbour graph Laplacian with a Neumann border (negative semi-definite)."""
    height, width = shape
    lap = np.zeros((height * width, height * width))
    for r, c in itertools.product(range(height), range(width)):
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            if 0 <= r + dr < height and 0 <= c + dc < width:
                lap[r * width + c, (r + dr) * width + c + dc] += 1
                lap[r * width + c, r * width + c] -= 1
    return lap


def dense_tikhonov(filtered, kernel, stride, shape, weight, order, bias=0.0):
    """Solve ``(A^T A + w L^T L) x = A^T (y - b)`` channel by channel with numpy.linalg."""
    lap = dense_laplacian(shape)
    prior = -lap if order == 1 else lap @ lap
    out = []
    for c in range(filtered.shape[2]):
        a = dense_forward(kernel[c], shape, stride)
        rhs = a.T @ (filtered[:, :, c].ravel() - bias)
        out.append(np.linalg.solve(a.T @ a + weight * prior, rhs).reshape(shape))
    return np.stack(out, axis=2)


def tv_objective(image, filtered, kernel, stride, weight):
    """``0.5 ||A x - y||^2 + lam TV(x)``, TV coupling the channels (restore's definition)."""
    residual = _restore_numpy.forward(image, kernel, stride) - filtered
    g0, g1 = np.zeros_like(image), np.zeros_like(image)
    g0[:-1] = image[1:] - image[:-1]
    g1[:, :-1] = image[:, 1:] - image[:, :-1]
    return 0.5 * np.sum(residual ** 2) + weight * np.sum(np.sqrt((g0 ** 2 + g1 ** 2).sum(2)))


def smooth_image(rng, shape, channels=3):
    """A smooth random image in (0.1, 0.9): no clipping and a well-posed problem."""
    image = rng.random(shape + (channels,))
    for axis in (0, 1):
        image = np.cumsum(image, axis=axis)
    image = image - image.min(axis=(0, 1))
    return 0.1 + 0.8 * image / image.max(axis=(0, 1))


# ---------------------------------------------------------------------------------------
# The operator and its adjoint


@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("kernel_shape", KERNEL_SHAPES)
def test_adjoint_identity(backend, stride, kernel_shape, rng):
    impl = passes(backend)
    stride = (stride, stride) if np.ndim(stride) == 0 else stride
    kernel = rng.normal(size=(2,) + kernel_shape)
    # one image the blocks cover exactly, one with a border (and gaps) they do not
    for shape in [(kernel_shape[0] + 2 * stride[0], kernel_shape[1] + 3 * stride[1]),
                  (kernel_shape[0] + 2 * stride[0] + 2, kernel_shape[1] + stride[1] + 4)]:
        x = rng.normal(size=shape + (2,))
        ax = impl.forward(x, kernel, stride)
        y = rng.normal(size=ax.shape)
        aty = impl.adjoint(y, kernel, stride, shape)
        assert aty.shape == x.shape
        left, right = np.vdot(ax, y), np.vdot(x, aty)
        assert left == pytest.approx(right, rel=1e-12, abs=1e-12)
        # and A^T is the transpose of the matrix written from the SPEC
        for c in range(2):
            matrix = dense_forward(kernel[c], shape, stride)
            np.testing.assert_allclose(ax[:, :, c].ravel(), matrix @ x[:, :, c].ravel(),
                                       rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(aty[:, :, c].ravel(), matrix.T @ y[:, :, c].ravel(),
                                       rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", STRIDES)
def test_compiled_passes_equal_numpy_bit_for_bit(stride, dtype, rng):
    compiled = passes("compiled")
    stride = (stride, stride) if np.ndim(stride) == 0 else stride
    for kernel_shape in KERNEL_SHAPES:
        kernel = rng.normal(size=(3,) + kernel_shape).astype(dtype)
        x = rng.random((kernel_shape[0] + 3 * stride[0] + 1, 17, 3)).astype(dtype)
        ax = _restore_numpy.forward(x, kernel, stride)
        np.testing.assert_array_equal(compiled.forward(x, kernel, stride, 2), ax)
        np.testing.assert_array_equal(compiled.adjoint(ax, kernel, stride, x.shape, 2),
                                      _restore_numpy.adjoint(ax, kernel, stride, x.shape))


@pytest.mark.parametrize("n_channels", [1, 3, 5, 17])   # 17: more than one group of 16
@pytest.mark.parametrize("width", [3, 9, 12])              # fewer than 4 pixels, remainders
@pytest.mark.parametrize("size, stride", [(2, 1), (3, 3)])  # 3 at 3: blocks that do not overlap
def test_compiled_sums_equal_numpy_bit_for_bit(n_channels, width, size, stride, rng):
    compiled = passes("compiled")
    kernel = rng.normal(size=(n_channels, size, size))
    x0 = [rng.random((5, width, n_channels)), rng.random((4, width + 1, n_channels))]
    data = [rng.random((output_size(x.shape[0], size, stride),
                        output_size(x.shape[1], size, stride), n_channels)) for x in x0]
    ours, theirs = (impl.workspace(data, x0, kernel, (stride, stride), "tikhonov", 2)
                    for impl in (compiled, _restore_numpy))
    for order in (1, 2):
        for a, b in zip(compiled.cg_forward(ours, True, order),
                        _restore_numpy.cg_forward(theirs, True, order)):
            np.testing.assert_array_equal(a, b)
    weight, step = rng.random((2, n_channels)), rng.random((2, n_channels))
    np.testing.assert_array_equal(compiled.cg_update(ours, weight, 2, step),
                                  _restore_numpy.cg_update(theirs, weight, 2, step))
    # the next forward pass, which first sets p = r + beta p
    for a, b in zip(compiled.cg_forward(ours, False, 2, step),
                    _restore_numpy.cg_forward(theirs, False, 2, step)):
        np.testing.assert_array_equal(a, b)
    for p_ours, p_theirs in zip(compiled._x_views(ours, ours.p), theirs.p):
        np.testing.assert_array_equal(p_ours, p_theirs)


# ---------------------------------------------------------------------------------------
# Tikhonov against dense least squares


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("stride, kernel_shape, shape", [
    ((2, 2), (3, 3), (11, 13)),
    ((1, 1), (3, 3), (9, 10)),
    ((2, 3), (2, 5), (10, 14)),
    ((3, 3), (3, 3), (12, 12)),           # output_shape larger than the blocks cover
])
def test_tikhonov_equals_dense_least_squares(backend, order, stride, kernel_shape, shape,
                                             rng):
    kernel = rng.normal(size=(2,) + kernel_shape) + 1.0
    original = smooth_image(rng, shape, channels=2)
    filtered = _restore_numpy.forward(original, kernel, stride) + 0.25
    weight = 0.05
    expected = dense_tikhonov(filtered, kernel, stride, shape, weight, order, bias=0.25)
    restored, info = restore(filtered, kernel, stride=stride, bias=0.25, method="tikhonov",
                             order=order, weight=weight, activation="identity", tol=1e-13,
                             max_iter=5000, output_shape=shape, init="zoom",
                             return_info=True, backend=backend)
    assert info.converged.all()
    np.testing.assert_allclose(restored, expected, rtol=0, atol=1e-8)


def test_tikhonov_projects_onto_the_valid_range(rng):
    kernel = np.ones((3, 3)) / 9
    filtered = rng.random((10, 13))          # no blurred image: its inverse is wild
    free = restore(filtered, kernel, stride=1, method="tikhonov", weight=1e-4,
                   activation="identity")
    kept = restore(filtered, kernel, stride=1, method="tikhonov", weight=1e-4)
    assert free.min() < 0 or free.max() > 1      # the problem does leave the range
    np.testing.assert_array_equal(kept, np.clip(free, 0, 1))


# ---------------------------------------------------------------------------------------
# Convergence


def test_cg_objective_falls_and_is_the_true_objective(backend, rng):
    kernel, stride, weight = np.ones((3, 3)) / 9, (1, 1), 1e-3
    original = smooth_image(rng, (20, 24))
    filtered = _restore_numpy.forward(original, np.stack([kernel] * 3), stride)
    lap = dense_laplacian((20, 24))
    true = []

    def measure(iteration, x, objective):
        values = []
        for c in range(3):
            v = x[:, :, c].ravel()
            residual = dense_forward(kernel, (20, 24), stride) @ v - filtered[:, :, c].ravel()
            values.append(0.5 * residual @ residual + 0.5 * weight * np.sum((lap @ v) ** 2))
        true.append((sum(values), objective))

    _, info = restore(filtered, kernel, stride=1, method="tikhonov", weight=weight,
                      activation="identity", callback=measure, return_info=True,
                      backend=backend)
    true_values = np.array([t for t, _ in true])
    reported = np.array([r for _, r in true])
    np.testing.assert_allclose(reported, true_values, rtol=1e-9)   # CG's recurrence holds
    assert np.all(np.diff(true_values) <= 1e-12 * true_values[0])  # and never rises
    assert info.residual[-1, 0] <= 1e-7 < info.residual[0, 0]
    assert info.residual[-1, 0] < 1e-4 * info.residual[0, 0]


def test_tv_gap_falls_and_objective_is_reported_true(backend, rng):
    kernel, weight = np.ones((3, 3)) / 9, 2e-3
    original = smooth_image(rng, (24, 30))
    filtered = np.clip(_restore_numpy.forward(original, np.stack([kernel] * 3), (1, 1))
                       + rng.normal(0, 0.01, (22, 28, 3)), 0, 1)
    restored, info = restore(filtered, kernel, stride=1, method="tv", weight=weight,
                             max_iter=400, tol=1e-4, return_info=True, backend=backend)
    every = restoration.TV_CHECK_EVERY
    measured = ~np.isnan(info.residual[:, 0])        # the sums are taken every few steps
    assert measured[0] and measured[every - 1] and not measured[1:every - 1].any()
    gap = info.residual[measured, 0]
    assert gap[-1] <= 1e-4 < gap[0]
    assert np.all(gap[10:] < gap[0] * 1e-2) and np.all(np.diff(gap[5:]) < 0)
    objective = info.objective[:, 0]
    assert np.isnan(objective[1:-1]).sum() == len(objective) - 2 - (measured[1:].sum())
    objective = objective[~np.isnan(objective)]
    assert objective[-1] < objective[0]
    assert objective[-1] <= objective[5:].min() * (1 + 1e-3)      # settled near the least
    expected = tv_objective(restored, filtered, np.stack([kernel] * 3), (1, 1), weight)
    assert objective[-1] == pytest.approx(expected, rel=1e-6)


def test_tv_with_a_callback_measures_every_iteration(rng):
    seen = []
    restore(rng.random((12, 12, 3)), np.ones((3, 3)) / 9, stride=1, max_iter=15, tol=0,
            callback=lambda it, x, objective: seen.append(objective))
    assert len(seen) == 15 and np.isfinite(seen).all()


# ---------------------------------------------------------------------------------------
# Backends, threads, dtypes, lists, FilterResults


@pytest.mark.parametrize("method", ["tikhonov", "tv"])
@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_compiled_agrees_with_numpy(method, dtype, atol, rng):
    require("compiled")
    kernel = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float)
    images = [rng.random((14, 17, 3)).astype(dtype), rng.random((11, 20, 3)).astype(dtype)]
    for stride in [1, 3]:
        filtered = [np.clip(_restore_numpy.forward(im, np.stack([kernel] * 3).astype(dtype),
                                                   (stride, stride)), 0, 1) for im in images]
        options = dict(stride=stride, method=method, max_iter=60)
        ours = restore(filtered, kernel, backend="compiled", **options)
        theirs = restore(filtered, kernel, backend="numpy", **options)
        for a, b in zip(ours, theirs):
            assert a.dtype == b.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=0, atol=atol)


@pytest.mark.parametrize("method, stride", [("tikhonov", 3), ("tv", 1), ("tv", 2)])
def test_results_do_not_depend_on_the_thread_count(method, stride, rng):
    require("compiled")
    kernel = rng.random((3, 3, 3))
    images = [rng.random((40, 52, 3)), rng.random((31, 45, 3))]
    filtered = [np.clip(_restore_numpy.forward(im, kernel, (stride, stride)), 0, 1)
                for im in images]
    one = restore(filtered, kernel, stride=stride, method=method, max_iter=40, n_threads=1,
                  backend="compiled")
    two = restore(filtered, kernel, stride=stride, method=method, max_iter=40, n_threads=2,
                  backend="compiled")
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_float32_stays_float32_and_integers_become_float64(backend, rng):
    kernel = np.ones((3, 3)) / 9
    filtered = rng.random((10, 12, 3))
    assert restore(filtered.astype(np.float32), kernel, stride=1, max_iter=5,
                   backend=backend).dtype == np.float32
    as_bytes = (filtered * 255).astype(np.uint8)
    assert restore(as_bytes, kernel, stride=1, max_iter=5, backend=backend).dtype == np.float64
    assert restore(filtered[:, :, 0], kernel, stride=1, max_iter=5,
                   backend=backend).shape == (12, 14)


@pytest.mark.parametrize("method", ["tikhonov", "tv"])
def test_a_list_restores_each_image_as_alone(backend, method, rng):
    kernel = rng.random((3, 2, 3))
    filtered = [rng.random((9, 13, 3)), rng.random((15, 8, 3)), rng.random((6, 6, 3))]
    together = restore(filtered, kernel, stride=1, method=method, max_iter=30,
                       backend=backend)
    assert isinstance(together, list) and len(together) == 3
    for image, result in zip(filtered, together):
        alone = restore(image, kernel, stride=1, method=method, max_iter=30, backend=backend)
        assert result.shape == (image.shape[0] + 1, image.shape[1] + 2, 3)
        np.testing.assert_array_equal(result, alone)


def test_a_filter_result_gives_kernel_bias_stride_and_activation(rng):
    original = smooth_image(rng, (18, 21))
    filtered = revdeconv.convolve(original, revdeconv.filters.SHARPEN, stride=3, bias=0.05)
    fit = revdeconv.learn_filter(original, filtered, kernel_size=(3, 3), method="lstsq",
                                 bias=True)
    assert fit.stride == (3, 3)
    expected = restore(filtered, fit.kernel, stride=fit.stride, bias=fit.bias,
                       activation=fit.activation, max_iter=50)
    np.testing.assert_array_equal(restore(filtered, fit, max_iter=50), expected)
    assert restore(filtered, fit, max_iter=50, return_info=True)[1].method == "tikhonov"


def test_default_method_follows_the_stride(rng):
    filtered = rng.random((12, 12))
    info = restore(filtered, np.ones((3, 3)) / 9, max_iter=2, return_info=True)[1]
    assert (info.method, info.order) == ("tikhonov", 2)
    info = restore(filtered, np.ones((3, 3)) / 9, stride=1, max_iter=2, return_info=True)[1]
    assert (info.method, info.order) == ("tv", None)
    assert isinstance(info, RestoreInfo) and info.objective.shape == (3, 1)


def test_callback_sees_each_iteration_and_can_stop(rng):
    seen = []

    def stop_at_three(iteration, x, objective):
        seen.append((iteration, x.shape, type(objective)))
        return iteration == 3

    _, info = restore(rng.random((10, 10)), np.ones((3, 3)) / 9, stride=1,
                      callback=stop_at_three, return_info=True)
    assert seen == [(1, (12, 12), float), (2, (12, 12), float), (3, (12, 12), float)]
    assert info.iterations == 3 and not info.converged.any()


# ---------------------------------------------------------------------------------------
# It restores


def test_restores_a_blur_better_than_the_blurred_image(backend):
    original = revdeconv.data.samples()[0][:60, :80]
    kernel = np.ones((3, 3)) / 9
    blurred = np.clip(revdeconv.convolve(original, kernel, stride=1), 0, 1)
    restored = restore(blurred, kernel, stride=1, backend=backend)
    assert (revdeconv.metrics.psnr(original, restored)
            > revdeconv.metrics.psnr(original[1:-1, 1:-1], blurred) + 2)


def test_restores_sharpening_at_stride_3_better_than_the_zoom(backend):
    original = revdeconv.data.samples()[1][:60, :81]
    filtered = np.clip(revdeconv.convolve(original, revdeconv.filters.SHARPEN), 0, 1)
    restored = restore(filtered, revdeconv.filters.SHARPEN, backend=backend)
    zoomed = revdeconv.zoom(filtered, 3, restored.shape[:2])
    assert revdeconv.metrics.mae(restored, original) < 0.75 * revdeconv.metrics.mae(zoomed,
                                                                                       original)


def test_noise_estimate(rng):
    noise = rng.normal(0, 0.03, (200, 160, 3))
    assert estimate_noise(0.5 + noise) == pytest.approx(0.03, rel=0.1)
    assert estimate_noise(np.full((40, 40), 0.5)) == restoration.QUANTIZATION_NOISE
    assert estimate_noise(np.zeros((1, 5))) == restoration.QUANTIZATION_NOISE


# ---------------------------------------------------------------------------------------
# Errors, raised before any pass runs


@pytest.mark.parametrize("options, error, words", [
    (dict(method="wiener"), ValueError, "method"),
    (dict(method="tv", order=2), ValueError, "order"),
    (dict(order=3), ValueError, "order"),
    (dict(weight=0), ValueError, "weight"),
    (dict(weight=-1.0), ValueError, "weight"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(max_iter=2.5), TypeError, "max_iter"),
    (dict(tol=-1e-3), ValueError, "tol"),
    (dict(init="bicubic"), ValueError, "init"),
    (dict(init=np.zeros((5, 5))), ValueError, "init"),
    (dict(output_shape=(4, 4)), ValueError, "output_shape"),
    (dict(callback=3), TypeError, "callback"),
    (dict(activation="tanh"), ValueError, "activation"),
    (dict(stride=0), ValueError, "stride"),
    (dict(backend="gpu"), ValueError, "backend"),
    (dict(n_threads=0), ValueError, "n_threads"),
])
def test_bad_arguments_are_named(options, error, words):
    with pytest.raises(error, match=words):
        restore(np.full((4, 4), 0.5), np.ones((3, 3)) / 9, **options)


def test_bad_kernels_and_images_are_named():
    with pytest.raises(ValueError, match="all zeros"):
        restore(np.full((4, 4), 0.5), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="kernel"):
        restore(np.full((4, 4, 3), 0.5), np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        restore(np.full((4, 4), np.nan), np.ones((3, 3)))
    diverged = revdeconv.FilterResult(np.full((1, 3, 3), np.inf), np.zeros(1), np.ones(1),
                                      True, "sgd", (3, 3), "clip")
    with pytest.raises(ValueError, match="diverged"):
        restore(np.full((4, 4), 0.5), diverged)
