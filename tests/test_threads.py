"""Threads: OpenMP limits from outside, small work, and calls from several Python threads."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import revdeconv
from revdeconv import _backend, batch, filters

needs_openmp = pytest.mark.skipif(not _backend.openmp_enabled(),
                                  reason="the compiled extension is missing or serial")


@needs_openmp
def test_threadpoolctl_limits_the_extensions_openmp():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    # the compiled modules are imported: their OpenMP runtime is one threadpoolctl sees
    assert any(pool["user_api"] == "openmp" for pool in threadpoolctl.threadpool_info())
    default = _backend.effective_n_threads(None)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert _backend.effective_n_threads(None) == 1
        with _backend.thread_share(default) as granted:      # an explicit count still holds
            assert granted == default
    assert _backend.effective_n_threads(None) == default


def test_small_work_gets_one_thread():
    with _backend.thread_share(8, work=1000, work_per_thread=1000) as n:
        assert n == 1
    with _backend.thread_share(8, work=3500, work_per_thread=1000) as n:
        assert n == 3
    with _backend.thread_share(2) as n:                     # no work given: as asked
        assert n == 2


@needs_openmp
def test_concurrent_calls_share_the_cores():
    budget = _backend.effective_n_threads(None)
    holding, release = threading.Event(), threading.Event()
    granted = {}

    def hold():
        with _backend.thread_share(budget) as n:
            granted["first"] = n
            holding.set()
            release.wait(10)

    other = threading.Thread(target=hold)
    other.start()
    try:
        assert holding.wait(10)
        with _backend.thread_share(budget) as n:
            granted["second"] = n
    finally:
        release.set()
        other.join()
    assert granted["first"] == budget
    assert granted["second"] == max(1, budget - budget)    # what the first left over, >= 1
    with _backend.thread_share(budget) as n:               # all given back
        assert n == budget


@pytest.mark.parametrize("backend", ["compiled", "numpy"])
def test_calls_from_several_python_threads_give_the_serial_results(backend):
    if backend == "compiled" and not revdeconv.compiled_available():
        pytest.skip("compiled extension not available")
    rng = np.random.default_rng(3)
    stacks = [rng.random((4, 90, 120, 3), dtype=np.float32) for _ in range(6)]

    def work(stack):
        filtered = batch.convolve(stack, filters.SHARPEN, backend=backend)
        learned = batch.learn(stack, filtered, lr=0.05, backend=backend)
        restored = batch.deconvolve(filtered, learned, backend=backend)
        return filtered, restored, batch.mae(restored, stack, backend=backend)

    serial = [work(stack) for stack in stacks]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(work, stacks))
    for one, other in zip(serial, concurrent):
        for a, b in zip(one, other):
            np.testing.assert_array_equal(a, b)
