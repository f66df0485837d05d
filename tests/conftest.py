"""Shared fixtures. The tests import the *installed* package (see README)."""

import numpy as np
import pytest

import revdeconv

#: Every backend; a test of the compiled one is skipped (and says so) where it is missing.
BACKENDS = ("numpy", "compiled")


def require(backend):
    if backend == "compiled" and not revdeconv.compiled_available():
        pytest.skip("compiled extension not available: compiled-backend test not run")


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend in turn."""
    require(request.param)
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
