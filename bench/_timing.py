"""Timing shared by the benchmarks."""

import time


def best_time(fn, repeat):
    """The shortest of ``repeat`` wall-clock times of ``fn()``, in seconds (the least
    disturbed by whatever else the machine is doing)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
