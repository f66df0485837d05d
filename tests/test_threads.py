"""Threads: OpenMP limits from outside, small work, and calls from several Python threads."""

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import revdeconv
from revdeconv import _images, _threads, batch, filters

needs_openmp = pytest.mark.skipif(not _threads.openmp_enabled(),
                                  reason="the compiled extension is missing or serial")


@needs_openmp
def test_threadpoolctl_limits_the_extensions_openmp():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    # the compiled modules are imported: their OpenMP runtime is one threadpoolctl sees
    assert any(pool["user_api"] == "openmp" for pool in threadpoolctl.threadpool_info())
    default = _threads.effective_n_threads(None)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert _threads.effective_n_threads(None) == 1
        with _threads.thread_share(default) as granted:      # an explicit count still holds
            assert granted == default
    assert _threads.effective_n_threads(None) == default


def test_small_work_gets_one_thread():
    with _threads.thread_share(8, work=1000, work_per_thread=1000) as n:
        assert n == 1
    with _threads.thread_share(8, work=3500, work_per_thread=1000) as n:
        assert n == 3
    with _threads.thread_share(2) as n:                     # no work given: as asked
        assert n == 2


@needs_openmp
def test_concurrent_calls_share_the_cores():
    budget = _threads.effective_n_threads(None)
    holding, release = threading.Event(), threading.Event()
    granted = {}

    def hold():
        with _threads.thread_share(budget) as n:
            granted["first"] = n
            holding.set()
            release.wait(10)

    other = threading.Thread(target=hold)
    other.start()
    try:
        assert holding.wait(10)
        with _threads.thread_share(budget) as n:
            granted["second"] = n
    finally:
        release.set()
        other.join()
    assert granted["first"] == budget
    assert granted["second"] == max(1, budget - budget)    # what the first left over, >= 1
    with _threads.thread_share(budget) as n:               # all given back
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


@needs_openmp
def test_default_threads_are_capped_by_the_cpus_this_process_may_use(tmp_path):
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    # The OpenMP runtime reads the affinity once, when it loads: restrict it afterwards.
    code = ("import os, revdeconv; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "print(revdeconv.config()['threads'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"
    # An explicit OMP_NUM_THREADS is the user's choice and is kept (as scikit-learn does).
    out = subprocess.run([sys.executable, "-c", code], env=env | {"OMP_NUM_THREADS": "2"},
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2"


@pytest.mark.parametrize("v2, v1, expected", [
    ("max 100000\n", None, None),
    ("150000 100000\n", None, 2),           # 1.5 CPUs: rounded up
    ("50000 100000\n", None, 1),
    (None, ("-1", "100000"), None),
    (None, ("400000", "100000"), 4),
    (None, None, None),                      # nothing readable: no cap
])
def test_cgroup_quota_is_read(tmp_path, monkeypatch, v2, v1, expected):
    def place(name, text):
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        return str(path)
    monkeypatch.setattr(_threads, "_CGROUP_V2", place("cpu.max", v2))
    monkeypatch.setattr(_threads, "_CGROUP_V1", (place("quota", v1 and v1[0]),
                                                 place("period", v1 and v1[1])))
    _threads._cgroup_cpus.cache_clear()
    try:
        assert _threads._cgroup_cpus() == expected
    finally:
        _threads._cgroup_cpus.cache_clear()


@needs_openmp
def test_finite_check_takes_its_threads_from_the_shared_budget(monkeypatch):
    """A large image's finite check sums in parts on threads; when another call holds
    every thread, it gets what is left over (one), not threads of its own."""
    budget = _threads.effective_n_threads(None)
    if budget < 2:
        pytest.skip("needs 2 threads")
    workers = []

    class Recording(ThreadPoolExecutor):
        def __init__(self, max_workers):
            workers.append(max_workers)
            super().__init__(max_workers)

    monkeypatch.setattr(_images, "ThreadPoolExecutor", Recording)
    image = np.zeros(4 * _images._PARALLEL_CHECK_VALUES, dtype=np.float32)
    assert _images._surely_finite(image, budget)
    assert workers == [budget]
    with _threads.thread_share(budget):
        assert _images._surely_finite(image, budget)
    assert workers == [budget]                   # one part: no pool at all
