"""Shared fixtures. The tests import the *installed* package (see README)."""

import numpy as np
import pytest

import revdeconv

BACKENDS = ["numpy"] + (["compiled"] if revdeconv.compiled_available() else [])


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every backend this installation has."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
