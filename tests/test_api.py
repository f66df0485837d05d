"""The façade: validation, dtype policy, layouts, lists, defaults, warnings."""

import doctest
import importlib
import pkgutil
import warnings

import numpy as np
import pytest

import revdeconv
from revdeconv import filters, metrics

IMAGE = np.random.default_rng(7).random((12, 15, 3))
FILTERED = revdeconv.convolve(IMAGE, filters.BLUR, backend="numpy")


# --- bad input: a clear error naming the argument, before any kernel runs ---------------

CONVOLVE_ERRORS = [
    (dict(image=np.ones((4, 4, 3, 1))), ValueError, "image must have shape"),
    (dict(image=np.ones((0, 4))), ValueError, "image must not be empty"),
    (dict(image=np.ones((4, 4), dtype=complex)), TypeError, "image must be a real-valued"),
    (dict(image=np.array([["a"]])), TypeError, "image must be a real-valued"),
    (dict(image=np.ones((5, 5), dtype=bool)), TypeError, "image must hold numbers, got a boolean"),
    (dict(kernel=np.ones((3, 3), dtype=bool)), TypeError, "kernel must hold numbers"),
    (dict(image=[]), ValueError, "image must not be an empty list"),
    (dict(image=[np.ones((5, 5)), np.ones((5, 5, 2))]), ValueError, "must all be 2-D"),
    (dict(image=[np.ones((5, 5, 3)), np.ones((5, 5, 2))]), ValueError, r"image\[1\] has 2 channels"),
    (dict(image=np.ones((2, 9))), ValueError, "smaller than the 3x3 kernel"),
    (dict(kernel=np.ones(3)), ValueError, "kernel must have shape"),
    (dict(kernel=np.ones((2, 3, 3))), ValueError, r"kernel must have shape \(kh, kw\) or \(3,"),
    (dict(kernel=np.ones((0, 3))), ValueError, "kernel must not be empty"),
    (dict(kernel=np.full((3, 3), np.nan)), ValueError, "kernel must hold finite"),
    (dict(stride=0), ValueError, "stride must be >= 1"),
    (dict(stride=1.0), TypeError, "stride must be an integer"),
    (dict(stride=True), TypeError, "stride must be an integer"),
    (dict(stride=(1, 2, 3)), ValueError, "stride must be an integer or a pair"),
    (dict(bias=np.ones(2)), ValueError, r"bias must be a scalar or have shape \(3,\)"),
    (dict(bias=np.inf), ValueError, "bias must hold finite"),
    (dict(image=IMAGE.astype(np.float32), kernel=np.full((3, 3), 1e39)), ValueError,
     r"kernel must hold finite values \(in float32\)"),
    (dict(n_threads=2**40), ValueError, "n_threads must be at most"),
    (dict(activation="sigmoid"), ValueError, "activation must be one of"),
    (dict(activation=None), ValueError, "activation must be one of"),
    (dict(n_threads=0), ValueError, "n_threads"),
    (dict(n_threads=2.0), TypeError, "n_threads"),
    (dict(backend="cuda"), ValueError, "backend must be"),
]


@pytest.mark.parametrize("kwargs, error, match", CONVOLVE_ERRORS)
def test_convolve_rejects(kwargs, error, match):
    args = dict(image=IMAGE, kernel=filters.BLUR) | kwargs
    with pytest.raises(error, match=match):
        revdeconv.convolve(args.pop("image"), args.pop("kernel"), **args)


LEARN_ERRORS = [
    (dict(filtered=[FILTERED]), ValueError, "two arrays or two lists"),
    (dict(filtered=FILTERED[..., :2]), ValueError, "original has 3 channels, filtered has 2"),
    (dict(filtered=FILTERED[:3], kernel_size=3), ValueError, r"filtered\[0\] has shape \(3, 5\)"),
    (dict(filtered=np.ones((20, 20, 3))), ValueError, "must not be larger than"),
    (dict(original=IMAGE[:8, :8], filtered=FILTERED[:2, :2]), ValueError,
     r"kernel_size is ambiguous: \(8, 8\) -> \(2, 2\) fits kernel sizes \[3, 4\]"),
    (dict(shuffle="no"), TypeError, "shuffle must be True or False"),
    (dict(method="lstsq", init=np.ones((3, 3))), ValueError, "init and shuffle are for"),
    (dict(method="lstsq", lr=-5.0), ValueError, "lr must be > 0"),
    (dict(n_threads=10**6), ValueError, "n_threads must be at most 1024"),
    (dict(stride=2), ValueError, "kernel_size is required"),
    (dict(kernel_size=(3, 3), stride=2), ValueError, r"gives \(5, 7\)"),
    (dict(kernel_size=13), ValueError, "smaller than the 13x13 kernel"),
    (dict(lr=0), ValueError, "lr must be > 0"),
    (dict(lr=np.nan), ValueError, "lr must be finite"),
    (dict(lr="0.1"), TypeError, "lr must be a real number"),
    (dict(epochs=0), ValueError, "epochs must be >= 1"),
    (dict(epochs=1.5), TypeError, "epochs must be an integer"),
    (dict(bias=1), TypeError, "bias must be True or False"),
    (dict(init=np.ones((2, 2))), ValueError, "init has a 2x2 kernel, expected 3x3"),
    (dict(init=np.ones((2, 3, 3))), ValueError, "init must have shape"),
    (dict(method="adam"), ValueError, "method must be one of"),
    (dict(activation="tanh"), ValueError, "activation must be one of"),
]


@pytest.mark.parametrize("kwargs, error, match", LEARN_ERRORS)
def test_learn_filter_rejects(kwargs, error, match):
    args = dict(original=IMAGE, filtered=FILTERED) | kwargs
    with pytest.raises(error, match=match):
        revdeconv.learn_filter(args.pop("original"), args.pop("filtered"), **args)


DECONVOLVE_ERRORS = [
    (dict(eps=-1.0), ValueError, "eps must be >= 0"),
    (dict(eps=[1e-3]), TypeError, "eps must be a real number"),
    (dict(output_shape=(10, 20)), ValueError, r"output_shape \(10, 20\) for filtered is smaller"),
    (dict(output_shape=(12,)), ValueError, "output_shape must be an integer or a pair"),
    (dict(output_shape=[(12, 15), (12, 15)]), ValueError, "one per image"),
    (dict(output_shape=[(12, 15), (12, 15, 3, 1)]), ValueError, "one per image"),
    (dict(kernel=np.ones((3, 3)) * np.inf), ValueError, "kernel must hold finite"),
    (dict(activation="soft"), ValueError, "activation must be one of"),
]


@pytest.mark.parametrize("kwargs, error, match", DECONVOLVE_ERRORS)
def test_deconvolve_rejects(kwargs, error, match):
    args = dict(filtered=FILTERED, kernel=filters.BLUR) | kwargs
    with pytest.raises(error, match=match):
        revdeconv.deconvolve(args.pop("filtered"), args.pop("kernel"), **args)


def test_zoom_rejects():
    with pytest.raises(ValueError, match="stride must be >= 1"):
        revdeconv.zoom(FILTERED, 0)
    with pytest.raises(ValueError, match="output_shape must be >= 1"):
        revdeconv.zoom(FILTERED, 3, output_shape=(0, 4))


# --- dtype policy and layouts -------------------------------------------------------------

@pytest.mark.parametrize("dtype, expected", [
    (np.float16, np.float32), (np.float32, np.float32), (np.float64, np.float64),
    (np.uint8, np.float64), (np.uint16, np.float64), (np.int32, np.float64),
    (np.dtype(">f8"), np.float64), (np.dtype(">f4"), np.float32),
])
def test_dtype_policy(dtype, expected, backend):
    image = (IMAGE * 200).astype(dtype)
    assert revdeconv.convolve(image, filters.BLUR, backend=backend).dtype == expected
    assert revdeconv.deconvolve(image[:4, :5], filters.BLUR, backend=backend).dtype == expected
    assert revdeconv.zoom(image, 2).dtype == expected


def test_integer_images_are_scaled_by_their_range(backend):
    image = np.array([[0, 51, 255]], dtype=np.uint8)
    out = revdeconv.convolve(image, [[1.0]], activation="identity", backend=backend)
    np.testing.assert_allclose(out, [[0.0, 0.2, 1.0]])
    wide = np.array([[0, 65535]], dtype=np.uint16)
    np.testing.assert_allclose(revdeconv.zoom(wide, 1), [[0.0, 1.0]])


def test_big_endian_equals_native(backend):
    native = revdeconv.convolve(IMAGE, filters.SHARPEN, backend=backend)
    swapped = revdeconv.convolve(IMAGE.astype(">f8"), filters.SHARPEN, backend=backend)
    np.testing.assert_array_equal(native, swapped)


def test_list_input_returns_list_matching_single_calls(backend):
    images = [IMAGE, IMAGE[:9, :11], IMAGE[::-1]]
    batch = revdeconv.convolve(images, filters.SHARPEN, stride=2, backend=backend)
    assert isinstance(batch, list) and len(batch) == 3
    for image, out in zip(images, batch):
        np.testing.assert_array_equal(
            out, revdeconv.convolve(image, filters.SHARPEN, stride=2, backend=backend))
    filtered = [revdeconv.convolve(image, filters.BLUR, backend=backend) for image in images]
    restored = revdeconv.deconvolve(filtered, filters.BLUR, backend=backend,
                                    output_shape=[image.shape[:2] for image in images])
    for image, f, out in zip(images, filtered, restored):
        assert out.shape == image.shape
        np.testing.assert_array_equal(out, revdeconv.deconvolve(
            f, filters.BLUR, output_shape=image.shape[:2], backend=backend))


def test_2d_and_single_channel_agree(backend):
    gray = IMAGE[..., 0]
    out2d = revdeconv.convolve(gray, filters.EDGE, backend=backend)
    out3d = revdeconv.convolve(gray[..., None], filters.EDGE, backend=backend)
    assert out2d.shape == out3d.shape[:2]
    np.testing.assert_array_equal(out2d, out3d[..., 0])
    result = revdeconv.learn_filter(gray, revdeconv.convolve(gray, filters.BLUR), backend=backend)
    assert result.kernel.shape == (1, 3, 3) and result.bias.shape == (1,)


# --- defaults ---------------------------------------------------------------------------

def test_kernel_size_defaults_to_size_ratio(backend):
    image = np.random.default_rng(1).random((180, 250))
    filtered = revdeconv.convolve(image, filters.BLUR)
    assert filtered.shape == (60, 83)
    result = revdeconv.learn_filter(image, filtered, backend=backend)
    assert result.kernel.shape == (1, 3, 3) and result.stride == (3, 3)


def test_kernel_size_inferred_at_stride_one(backend):
    filtered = revdeconv.convolve(IMAGE, np.ones((2, 4)) / 8, stride=1)
    result = revdeconv.learn_filter(IMAGE, filtered, stride=1, backend=backend)
    assert result.kernel.shape == (3, 2, 4)


def test_stride_defaults_to_kernel_size_for_non_square_kernels(backend):
    out = revdeconv.convolve(IMAGE, np.ones((2, 3)), backend=backend)
    assert out.shape == (6, 5, 3)


def test_output_shape_accepts_an_image_shape(backend):
    restored = revdeconv.deconvolve(FILTERED, filters.BLUR, output_shape=IMAGE.shape,
                                    backend=backend)
    assert restored.shape == IMAGE.shape
    assert revdeconv.zoom(FILTERED, 3, output_shape=IMAGE.shape).shape == IMAGE.shape
    with pytest.raises(ValueError, match="has 4 channels, the images have 3"):
        revdeconv.deconvolve(FILTERED, filters.BLUR, output_shape=(12, 15, 4), backend=backend)


def test_zoom_default_shape_and_formula():
    x = np.arange(6.0).reshape(2, 3)
    out = revdeconv.zoom(x, (2, 3))
    assert out.shape == (4, 9)
    assert out[3, 8] == x[1, 2] and out[1, 2] == x[0, 0] and out[2, 3] == x[1, 1]


# --- learning outcomes the user sees --------------------------------------------------

def test_divergence_is_reported_not_raised(backend):
    # With clip the error stays in [-1, 1] and the weights grow only linearly;
    # without it every update multiplies them, until they overflow.
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = revdeconv.learn_filter(IMAGE, FILTERED, lr=10.0, epochs=60,
                                        activation="identity", backend=backend)
    assert result.diverged
    assert not np.isfinite(result.kernel).all()


def test_converging_run_is_not_flagged(backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = revdeconv.learn_filter(IMAGE, FILTERED, lr=0.05, backend=backend)
    assert not result.diverged and np.isfinite(result.loss).all()


def test_lstsq_warns_when_under_determined(backend):
    flat = np.full((9, 9), 0.5)
    target = revdeconv.convolve(flat, filters.BLUR)
    with pytest.warns(RuntimeWarning, match="under-determined"):
        result = revdeconv.learn_filter(flat, target, method="lstsq", backend=backend)
    np.testing.assert_allclose(revdeconv.convolve(flat, result.kernel[0]), target, atol=1e-12)


def test_nested_list_of_numbers_is_one_image(backend):
    nested = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]
    out = revdeconv.convolve(nested, np.ones((3, 3)) / 9, backend=backend)
    np.testing.assert_allclose(out, [[0.5]])


def test_kernel_size_from_one_unambiguous_axis(backend):
    # rows allow only 3 (180 -> 60), columns 3 or 4 (8 -> 2): 3x3 fits both.
    image = np.random.default_rng(2).random((180, 8))
    filtered = revdeconv.convolve(image, filters.BLUR)
    assert revdeconv.learn_filter(image, filtered, backend=backend).kernel.shape == (1, 3, 3)


def test_fixed_bias_is_used_but_not_learned(backend):
    """bias=False keeps the initial bias (SPEC: b is in the model, updated only when learned)."""
    first = revdeconv.learn_filter(IMAGE, FILTERED, bias=True, lr=0.05, backend=backend)
    fixed = revdeconv.learn_filter(IMAGE, FILTERED, bias=False, lr=0.05, init=first,
                                   backend=backend)
    np.testing.assert_array_equal(fixed.bias, first.bias)
    without = revdeconv.learn_filter(IMAGE, FILTERED, bias=False, lr=0.05, init=first.kernel,
                                     backend=backend)
    assert np.all(without.bias == 0)
    assert not np.allclose(fixed.kernel, without.kernel)      # the bias did take part


def test_init_accepts_a_previous_result_with_its_bias(backend):
    first = revdeconv.learn_filter(IMAGE, FILTERED, bias=True, lr=0.05, backend=backend)
    both = revdeconv.learn_filter([IMAGE, IMAGE], [FILTERED, FILTERED], bias=True, lr=0.05,
                                  backend=backend)
    chained = revdeconv.learn_filter(IMAGE, FILTERED, bias=True, lr=0.05, init=first,
                                     backend=backend)
    np.testing.assert_allclose(chained.kernel, both.kernel, rtol=1e-12)
    np.testing.assert_allclose(chained.bias, both.bias, rtol=1e-12)


# --- metrics and filters ----------------------------------------------------------------

def test_metrics_values():
    assert metrics.mae([0, 1], [1, 1]) == 0.5
    assert metrics.loss_ratio(0.2881, 0.0727) == pytest.approx((0.2881 - 0.0727) / 0.0727)
    assert metrics.gain(0.0707, 0.0727) == pytest.approx(0.0727 / 0.0707)
    assert metrics.psnr(np.zeros(4), np.full(4, 0.1)) == pytest.approx(20.0)
    assert metrics.psnr(np.ones(3), np.ones(3)) == np.inf
    assert metrics.filter_error(filters.EDGE * 3, filters.EDGE) == pytest.approx(2.0)
    assert metrics.filter_error(np.stack([filters.BLUR] * 3), filters.BLUR) == 0.0


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.mae(np.ones(3), np.ones(4)), "one shape"),
    (lambda: metrics.mae([], []), "must not be empty"),
    (lambda: metrics.loss_ratio(0.1, 0), "mae0 must be > 0"),
    (lambda: metrics.gain(0, 0.1), "mae must be > 0"),
    (lambda: metrics.filter_error(np.ones((3, 3)), np.zeros((3, 3))), "norm of truth"),
    (lambda: metrics.filter_error(np.ones((3, 3)), np.ones((2, 2))), "must have one shape"),
])
def test_metrics_reject(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_filters():
    assert filters.get("Sharpening") is filters.SHARPEN
    assert filters.get("edge detection") is filters.EDGE
    assert filters.BLUR.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown filter 'gauss'"):
        filters.get("gauss")
    with pytest.raises(ValueError):
        filters.BLUR[0, 0] = 1.0        # read-only: nobody changes the paper's filters


# --- every docstring example runs --------------------------------------------------------

def _modules():
    """Every module of the installed package, found by walking it (``__main__`` runs the
    command line on import, so it is left out)."""
    names = ["revdeconv"] + [info.name for info in pkgutil.walk_packages(
        revdeconv.__path__, prefix="revdeconv.") if not info.name.endswith("__main__")]
    return sorted(names)


def test_every_module_is_collected():
    # The walk must find the modules that have examples (a broken walk finds none).
    assert {"revdeconv.convolution", "revdeconv.batch", "revdeconv._threads",
            "revdeconv.io"} <= set(_modules())


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    if name == "revdeconv.chunked":         # the [dask] extra
        pytest.importorskip("dask.array")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
