"""Property tests (hypothesis): on any valid shapes the two backends round alike,
and agree with the SPEC reference loops.

The compiled kernels and the NumPy fallback perform the same floating-point
operations in the same order, so their results are compared bit for bit
(``assert_array_equal``), which is stronger than the 1e-12 / 1e-5 contract.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import revdeconv

from reference import ref_convolve, ref_deconvolve

pytestmark = pytest.mark.skipif(not revdeconv.compiled_available(),
                                reason="needs the compiled backend to compare with")

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
ACTIVATIONS = st.sampled_from(["clip", "relu", "identity"])
DTYPES = st.sampled_from([np.float32, np.float64])


@st.composite
def problems(draw):
    """An image, a kernel that fits it, a stride and a seed for the values."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    height, width = draw(st.integers(kh, 20)), draw(st.integers(kw, 20))
    channels = draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(DTYPES)
    image = rng.random((height, width, channels)).astype(dtype)
    # Positive weights near 1/(kh*kw): the reverse solve stays bounded, and zero
    # weights (not divided by) appear now and then.
    kernel = rng.uniform(0.7, 1.3, (channels, kh, kw)) / (kh * kw)
    kernel[rng.random(kernel.shape) < 0.1] = 0.0
    return image, kernel, stride


@SETTINGS
@given(problems(), ACTIVATIONS, st.integers(1, 3))
def test_convolve_backends_identical_and_match_reference(problem, activation, n_threads):
    image, kernel, stride = problem
    compiled = revdeconv.convolve(image, kernel, stride=stride, activation=activation,
                                  n_threads=n_threads, backend="compiled")
    fallback = revdeconv.convolve(image, kernel, stride=stride, activation=activation,
                                  backend="numpy")
    np.testing.assert_array_equal(compiled, fallback)
    expected = ref_convolve(image, kernel, stride, np.zeros(kernel.shape[0]), activation)
    np.testing.assert_allclose(compiled, expected, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(problems(), ACTIVATIONS, st.integers(0, 3), st.integers(1, 3))
def test_deconvolve_backends_identical_and_match_reference(problem, activation, extra, n_threads):
    image, kernel, stride = problem
    filtered = revdeconv.convolve(image, kernel, stride=stride, activation="clip")
    _, kh, kw = kernel.shape
    shape = ((filtered.shape[0] - 1) * stride[0] + kh + extra,
             (filtered.shape[1] - 1) * stride[1] + kw + extra)
    compiled = revdeconv.deconvolve(filtered, kernel, stride=stride, activation=activation,
                                    output_shape=shape, n_threads=n_threads, backend="compiled")
    fallback = revdeconv.deconvolve(filtered, kernel, stride=stride, activation=activation,
                                    output_shape=shape, backend="numpy")
    np.testing.assert_array_equal(compiled, fallback)
    if activation == "clip":       # bounded values: a tolerance means something
        expected = ref_deconvolve(filtered, kernel.astype(filtered.dtype), stride[0], stride[1],
                                  activation, revdeconv.DEFAULT_EPS, shape)
        tol = 1e-4 if filtered.dtype == np.float32 else 1e-9
        np.testing.assert_allclose(compiled, expected, rtol=tol, atol=tol)


@SETTINGS
@given(problems(), ACTIVATIONS, st.booleans(), st.booleans(), st.integers(1, 3))
def test_sgd_backends_identical(problem, activation, bias, shuffle, n_threads):
    image, kernel, stride = problem
    filtered = revdeconv.convolve(image, kernel, stride=stride, activation=activation)
    args = dict(kernel_size=kernel.shape[1:], stride=stride, lr=0.05, epochs=2, bias=bias,
                activation=activation, shuffle=shuffle, seed=7)
    compiled = revdeconv.learn_filter(image, filtered, n_threads=n_threads, backend="compiled",
                                      **args)
    fallback = revdeconv.learn_filter(image, filtered, backend="numpy", **args)
    np.testing.assert_array_equal(compiled.kernel, fallback.kernel)
    np.testing.assert_array_equal(compiled.bias, fallback.bias)
    np.testing.assert_array_equal(compiled.loss, fallback.loss)
