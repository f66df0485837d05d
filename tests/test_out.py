"""``out=`` on convolve, deconvolve and zoom, and the finite check that the stride-1
convolution makes itself.

With ``out=`` the result is written into the caller's array (or list of arrays),
which is returned, bit for bit what the call returns without it, on both
backends; a bad ``out`` is refused with an error that names it, before anything
runs. At stride 1 the convolution finds NaN and infinite pixels as it sums them
(and sums only the taps with a nonzero weight): a NaN anywhere, the corners
included, still raises the error of ``tests/test_reliability.py``, naming the
first image at fault, and the results where every pixel is finite are those of
the NumPy fallback, which sums every tap.
"""

import numpy as np
import pytest

import revdeconv
from revdeconv import filters

from conftest import require

DTYPES = [np.float32, np.float64]
RNG = np.random.default_rng(41)
#: A kernel with zero taps (its corners) and one without.
KERNELS = {"sharpen": filters.SHARPEN, "random": RNG.standard_normal((3, 3)) / 3}


def convolve(images, out=None, **options):
    return revdeconv.convolve(images, options.pop("kernel", filters.SHARPEN), out=out,
                              **options)


def deconvolve(images, out=None, **options):
    options.setdefault("kernel", filters.BLUR)
    return revdeconv.deconvolve(images, options.pop("kernel"), out=out, **options)


def zoom(images, out=None, **options):
    options.pop("backend", None)
    return revdeconv.zoom(images, options.pop("stride", 3), out=out, **options)


CALLS = {"convolve": convolve, "deconvolve": deconvolve, "zoom": zoom}
#: (call, options): strides with and without the vectorised paths, overlapping blocks.
VARIANTS = [
    ("convolve", dict(stride=1)),
    ("convolve", dict(stride=1, nonfinite="propagate")),
    ("convolve", dict(stride=3)),
    ("convolve", dict(stride=(2, 1), kernel=KERNELS["random"])),
    ("convolve", dict(stride=2, kernel=KERNELS["random"])),
    ("deconvolve", dict()),
    ("deconvolve", dict(stride=1, activation="identity")),
    ("deconvolve", dict(stride=(4, 5))),
    ("deconvolve", dict(output_shape=(50, 55))),
    ("zoom", dict()),
    ("zoom", dict(stride=(2, 3), output_shape=(17, 40))),
]
VARIANT_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items() if k != 'kernel')}"
               for name, options in VARIANTS]


def images_of(dtype, channels, n=None, rng=RNG):
    """One image, or a list of ``n`` of different sizes."""
    def one(height, width):
        shape = (height, width) if channels is None else (height, width, channels)
        return rng.random(shape).astype(dtype)
    return one(13, 17) if n is None else [one(13 + k, 17 - 2 * k) for k in range(n)]


def empty_like_result(result):
    """A fresh out of the result's shape and dtype, full of a value no result holds."""
    if isinstance(result, list):
        return [empty_like_result(r) for r in result]
    return np.full(result.shape, -7, dtype=result.dtype)


# --- the same results, written into out -------------------------------------------------

@pytest.mark.parametrize("name, options", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels, n_images", [(3, None), (None, None), (2, 3), (None, 2)])
def test_out_gets_the_result_bit_for_bit(name, options, dtype, channels, n_images, backend):
    images = images_of(dtype, channels, n_images)
    pristine = [np.copy(image) for image in (images if n_images else [images])]
    expected = CALLS[name](images, backend=backend, **options)
    out = empty_like_result(expected)
    result = CALLS[name](images, out=out, backend=backend, **options)
    assert result is out
    for got, want in zip(out if n_images else [out], expected if n_images else [expected]):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    for image, before in zip(images if n_images else [images], pristine):
        np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("name, options", [VARIANTS[0], VARIANTS[5]],
                         ids=[VARIANT_IDS[0], VARIANT_IDS[5]])
def test_out_on_both_backends_and_any_thread_count(name, options):
    require("compiled")
    images = images_of(np.float32, 3, 3)
    expected = CALLS[name](images, backend="numpy", **options)
    for n_threads in (1, 2, 3):
        out = empty_like_result(expected)
        CALLS[name](images, out=out, backend="compiled", n_threads=n_threads, **options)
        for got, want in zip(out, expected):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", CALLS)
def test_out_may_be_views_of_one_stack_or_a_tuple(name, backend):
    # The outputs of a stack: views that lie back to back, given as a tuple.
    images = [RNG.random((12, 15, 3)) for _ in range(4)]
    expected = CALLS[name](images, backend=backend)
    stack = np.full((4,) + expected[0].shape, -7.0)
    out = tuple(stack)
    assert CALLS[name](images, out=out, backend=backend) is out
    np.testing.assert_array_equal(stack, np.stack(expected))


def test_out_can_be_reused_call_after_call(backend):
    out = np.empty((11, 15, 3))
    for seed in range(3):
        image = np.random.default_rng(seed).random((13, 17, 3))
        revdeconv.convolve(image, filters.SHARPEN, stride=1, out=out, backend=backend)
        np.testing.assert_array_equal(out, revdeconv.convolve(image, filters.SHARPEN, stride=1,
                                                              backend=backend))


# --- a bad out is refused, before anything runs ------------------------------------------

def _shapes(name):
    """(one image, the result's shape) of each call on a 12x15 RGB float64 image."""
    image = RNG.random((12, 15, 3))
    return image, CALLS[name](image).shape


def _bad_outs(image, shape):
    """(out, error, message) for one image whose result has ``shape`` (float64)."""
    readonly = np.zeros(shape)
    readonly.flags.writeable = False
    wide = np.zeros(shape[:1] + (shape[1] * 2,) + shape[2:])
    expected = str(shape).replace("(", r"\(").replace(")", r"\)")
    return [
        ([np.zeros(shape)], TypeError, "out must be a NumPy array, got list"),
        (np.zeros(shape, np.float32), TypeError,
         r"out must have dtype float64 \(the result's\), got float32"),
        (np.zeros(shape, ">f8"), TypeError, "out must have dtype float64"),
        (np.zeros(shape[:2] + (4,)), ValueError, f"out must have shape {expected}"),
        (np.zeros(shape[:2]), ValueError, f"out must have shape {expected}"),
        (np.zeros((shape[0] + 1,) + shape[1:]), ValueError, "out must have shape"),
        (np.asfortranarray(np.zeros(shape)), ValueError, "out must be C-contiguous"),
        (wide[:, ::2], ValueError, "out must be C-contiguous"),
        (readonly, ValueError, "out must be writable"),
    ]


@pytest.mark.parametrize("name", CALLS)
def test_bad_out_is_refused_naming_it(name, backend):
    image, shape = _shapes(name)
    for out, error, message in _bad_outs(image, shape):
        before = np.copy(out[0] if isinstance(out, list) else out)
        with pytest.raises(error, match=message):
            CALLS[name](image, out=out, backend=backend)
        np.testing.assert_array_equal(out[0] if isinstance(out, list) else out, before)


@pytest.mark.parametrize("name", CALLS)
def test_out_of_a_2d_result_is_2d(name, backend):
    image = RNG.random((12, 15))
    shape = CALLS[name](image).shape
    with pytest.raises(ValueError, match=r"out must have shape \(\d+, \d+\) \(the result.s\), got"):
        CALLS[name](image, out=np.zeros(shape + (1,)), backend=backend)


@pytest.mark.parametrize("name", CALLS)
def test_bad_list_of_outs_is_refused_naming_the_item(name, backend):
    images = [RNG.random((12, 15, 3)), RNG.random((15, 12, 3))]
    first, second = (np.zeros(r.shape) for r in CALLS[name](images))
    cases = [
        (np.zeros(first.shape), TypeError, "out must be a list of 2 arrays"),
        ([first], ValueError, r"out must hold 2 arrays \(one per image\), got 1"),
        ([first, second, second], ValueError, "out must hold 2 arrays"),
        ([first, second.tolist()], TypeError, r"out\[1\] must be a NumPy array"),
        ([first, second.astype(np.float32)], TypeError, r"out\[1\] must have dtype float64"),
        ([second, first] if first.shape != second.shape else [first, second[:-1]], ValueError,
         r"out\[0\] must have shape"),
        ([first, images[1][:second.shape[0], :second.shape[1]]], ValueError,
         r"out\[1\] must be C-contiguous|out\[1\] must have shape"),
    ]
    for out, error, message in cases:
        with pytest.raises(error, match=message):
            CALLS[name](images, out=out, backend=backend)
    twins = [images[0], images[0] / 2]                  # one out for both: refused
    with pytest.raises(ValueError, match=r"out\[1\] shares memory with out\[0\]"):
        CALLS[name](twins, out=[first, first], backend=backend)


@pytest.mark.parametrize("name", CALLS)
def test_out_sharing_memory_with_an_image_is_refused(name, backend):
    # Stride 1 and a 1x1 kernel: the result has the image's shape and can lie over it.
    options = dict(stride=1) if name == "zoom" else dict(stride=1, kernel=np.ones((1, 1)))
    image = RNG.random((12, 15, 3))
    before = image.copy()
    shape = CALLS[name](image, **options).shape
    over = image.reshape(-1)[::-1].reshape(shape)[::-1, ::-1, ::-1]      # the same memory
    assert over.flags.c_contiguous
    with pytest.raises(ValueError, match="out shares memory with (image|filtered);"):
        CALLS[name](image, out=over, backend=backend, **options)
    images = [image, RNG.random(image.shape)]
    with pytest.raises(ValueError, match=r"out\[1\] shares memory with (image|filtered)\[0\]"):
        CALLS[name](images, out=[np.zeros(shape), over], backend=backend, **options)
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("name", CALLS)
def test_out_in_the_gap_of_a_strided_image_is_accepted(name, backend):
    # Within the image's memory bounds, yet sharing none of its values.
    options = dict(stride=1) if name == "zoom" else dict(stride=1, kernel=np.ones((1, 1)))
    image = RNG.random((12, 15, 3))
    buffer = np.zeros((12 * 13, 15, 3))
    strided = buffer[::13]
    strided[...] = image
    gap = buffer[1:13]
    assert np.may_share_memory(strided, gap) and not np.shares_memory(strided, gap)
    assert CALLS[name](strided, out=gap, backend=backend, **options) is gap
    np.testing.assert_array_equal(gap, CALLS[name](image, backend=backend, **options))


# --- the stride-1 convolution's own finite check -----------------------------------------

ZERO_CORNERS = filters.SHARPEN
CENTRE_ONLY = np.pad([[1.0]], 1)
ALL_ZERO = np.zeros((3, 3))


@pytest.mark.parametrize("kernel", [ZERO_CORNERS, CENTRE_ONLY, ALL_ZERO, np.ones((2, 4))],
                         ids=["zero-corners", "centre-only", "all-zero", "2x4"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_nonfinite_pixel_anywhere_raises_at_stride_1(kernel, value, backend):
    # Every pixel in turn, the corners (read through zero weights only) included.
    image = RNG.random((6, 7, 2)).astype(np.float32)
    kh, kw = np.shape(kernel)
    for r in range(image.shape[0]):
        for c in range(image.shape[1]):
            spoiled = image.copy()
            spoiled[r, c, (r + c) % 2] = value
            before = spoiled.copy()
            out = np.zeros((7 - kh, 8 - kw, 2), np.float32)
            with pytest.raises(ValueError, match="image holds NaN or infinite pixels"):
                revdeconv.convolve(spoiled, kernel, stride=1, backend=backend, out=out)
            np.testing.assert_array_equal(spoiled, before)


def test_the_error_names_the_first_image_at_fault(backend):
    # image[1]'s NaN is in a corner (not summed), image[2]'s in the middle.
    images = [RNG.random((9, 11, 3)) for _ in range(3)]
    images[1][0, 0, 0] = np.nan
    images[2][4, 5, 1] = np.inf
    with pytest.raises(ValueError, match=r"image\[1\] holds NaN or infinite pixels"):
        revdeconv.convolve(images, ZERO_CORNERS, stride=1, backend=backend)
    images[1][0, 0, 0] = 0.5
    with pytest.raises(ValueError, match=r"image\[2\] holds NaN or infinite pixels"):
        revdeconv.convolve(images, ZERO_CORNERS, stride=1, backend=backend)


@pytest.mark.parametrize("dtype, huge", [(np.float32, 3e38), (np.float64, 1e308)])
def test_sums_that_overflow_are_no_error(dtype, huge, backend):
    # Finite pixels whose sums overflow: the image is checked value by value and passes.
    image = np.full((8, 9, 3), huge, dtype=dtype)
    image[::2] *= -1
    options = dict(stride=1, activation="identity")
    got = revdeconv.convolve(image, np.full((3, 3), 4.0), backend=backend, **options)
    assert not np.isfinite(got).all()
    np.testing.assert_array_equal(
        got, revdeconv.convolve(image, np.full((3, 3), 4.0), backend="numpy", **options))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 3, (1, 2)])
def test_zero_taps_left_out_give_the_fallback_bits(dtype, stride):
    # The compiled kernel sums only the nonzero taps (nonfinite="raise"); the NumPy
    # fallback sums them all. Signed values, so that sums cancel and zeros arise.
    require("compiled")
    rng = np.random.default_rng(5)
    image = rng.standard_normal((40, 203, 3)).astype(dtype)
    image[5:9] = 0.0
    kernel = rng.standard_normal((3, 4, 5)).astype(dtype)
    kernel[:, 1] = 0.0
    kernel[0, 2, 3] = 0.0
    kernel[:, :, 0] = -0.0
    for activation in ("identity", "clip"):
        options = dict(stride=stride, bias=[0.0, -0.0, 0.25], activation=activation)
        compiled = revdeconv.convolve(image, kernel, backend="compiled", **options)
        fallback = revdeconv.convolve(image, kernel, backend="numpy", **options)
        np.testing.assert_array_equal(compiled, fallback)
        assert np.array_equal(np.signbit(compiled), np.signbit(fallback))


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_propagate_sums_the_zero_taps_too(value):
    # 0 * inf is NaN: with nonfinite="propagate" it spreads as in the fallback.
    require("compiled")
    image = RNG.random((20, 90, 3))
    image[0, 0, 0] = image[10, 40, 2] = value
    options = dict(stride=1, nonfinite="propagate")
    compiled = revdeconv.convolve(image, ZERO_CORNERS, backend="compiled", **options)
    fallback = revdeconv.convolve(image, ZERO_CORNERS, backend="numpy", **options)
    np.testing.assert_array_equal(compiled, fallback)
    assert np.isnan(compiled[0, 0, 0])
