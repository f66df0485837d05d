"""How many threads a compiled call may use: one count, one budget, for the whole package.

``n_threads=None`` means OpenMP's default (which honours ``OMP_NUM_THREADS``),
capped by the CPUs this process may actually run on: its CPU affinity and,
where readable, its cgroup CPU quota (a container limited to 2 CPUs on a
64-core host gets 2 threads, not 64), as scikit-learn does. Compiled calls
running at once from several Python threads share that many threads between
them (:func:`thread_share`), and so does the finite check of large images.
"""

import contextlib
import functools
import math
import os
import threading

from ._validation import as_int

try:
    from . import _openmp_helpers
except ImportError:         # no compiled extension: everything runs on one thread
    _openmp_helpers = None

__all__ = ["MAX_THREADS", "openmp_enabled", "available_cpus", "default_threads",
           "effective_n_threads", "thread_share"]

#: More threads than this is a mistake (OpenMP reserves a stack for each one).
MAX_THREADS = 1024

# cgroup v2 and v1 files that hold a CPU quota (quota and period, in microseconds).
_CGROUP_V2 = "/sys/fs/cgroup/cpu.max"
_CGROUP_V1 = ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def openmp_enabled():
    """Whether the compiled extension was built with OpenMP (False without the extension)."""
    return _openmp_helpers is not None and _openmp_helpers.OPENMP_ENABLED


def _read(path):
    with open(path) as file:
        return file.read()


@functools.lru_cache(maxsize=None)
def _cgroup_cpus():
    """CPUs allowed by this process's cgroup quota (rounded up), or None when unlimited
    or unreadable. Read once: the quota of a running container does not change, and
    reading it costs more than a small kernel call."""
    try:
        quota, period = _read(_CGROUP_V2).split()[:2]
    except (OSError, ValueError):
        try:
            quota, period = (_read(path).strip() for path in _CGROUP_V1)
        except (OSError, ValueError):
            return None
    if quota in ("max", "-1"):
        return None
    try:
        quota, period = int(quota), int(period)
    except ValueError:
        return None
    return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None


def available_cpus():
    """CPUs this process may use: its affinity mask, capped by its cgroup quota.

    Examples
    --------
    >>> from revdeconv._threads import available_cpus
    >>> available_cpus() >= 1
    True
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):       # not on Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(cpus, quota) if quota else cpus)


def default_threads():
    """Threads for ``n_threads=None``: OpenMP's default capped by :func:`available_cpus`,
    or exactly ``OMP_NUM_THREADS`` where it is set (a user's explicit choice may exceed
    the CPUs, as in scikit-learn); 1 for a serial build."""
    if not openmp_enabled():
        return 1
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return _openmp_helpers.max_threads()
    return max(1, min(_openmp_helpers.max_threads(), available_cpus()))


def effective_n_threads(n_threads=None):
    """Resolve ``n_threads`` to the number of OpenMP threads a kernel will use.

    ``None`` means :func:`default_threads` (OpenMP's default, which honours
    ``OMP_NUM_THREADS``, capped by the CPUs this process may use); a negative
    count is taken back from that default (``-1``: all of them, ``-2``: all
    but one, never fewer than one); 0 and more than ``MAX_THREADS`` are
    errors. A serial build (or the NumPy fallback) always runs on one thread.

    Examples
    --------
    >>> from revdeconv._threads import effective_n_threads
    >>> effective_n_threads(1)
    1
    """
    n_threads = _checked(n_threads)
    if not openmp_enabled():
        return 1
    return _resolved(n_threads, default_threads())


def pool_threads(n_threads=None):
    """Threads for work that Python spreads itself (a pool reading, computing and
    writing files): :func:`effective_n_threads`'s rule without OpenMP, so that a
    serial build spreads its files too (``None``: ``OMP_NUM_THREADS`` where set,
    else :func:`available_cpus`).

    Examples
    --------
    >>> from revdeconv._threads import pool_threads
    >>> pool_threads(3)
    3
    """
    n_threads = _checked(n_threads)
    omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    default = int(omp) if omp.isdigit() and int(omp) > 0 else available_cpus()
    return _resolved(n_threads, min(default, MAX_THREADS))


def _checked(n_threads):
    if n_threads is not None:
        n_threads = as_int(n_threads, "n_threads")
        if n_threads == 0:
            raise ValueError("n_threads must not be 0 (None means OpenMP's default)")
        if n_threads > MAX_THREADS:
            raise ValueError(f"n_threads must be at most {MAX_THREADS}, got {n_threads}")
    return n_threads


def _resolved(n_threads, default):
    """``n_threads`` given, or ``default`` (None), or taken back from it (negative)."""
    if n_threads is None:
        return default
    return n_threads if n_threads > 0 else max(default + 1 + n_threads, 1)


# Threads held by compiled calls (and finite checks) now running, from any Python thread.
_threads_in_use = 0
_threads_lock = threading.Lock()


@contextlib.contextmanager
def thread_share(n_threads, work=None, work_per_thread=1):
    """Hold threads for one compiled call: yields how many it may use.

    At most ``n_threads`` (from :func:`effective_n_threads`), and:

    - no more than ``work / work_per_thread`` (at least one), so that a small
      image does not pay for starting threads it cannot keep busy;
    - when calls run at once from several Python threads, no more than what
      :func:`default_threads` leaves over after the threads the others hold,
      and at least one: the calls share the cores instead of oversubscribing
      them.

    The kernels give the same results on any number of threads, so this
    changes only the time a call takes.

    Examples
    --------
    >>> from revdeconv._threads import thread_share
    >>> with thread_share(4, work=10, work_per_thread=100) as n:
    ...     n
    1
    """
    global _threads_in_use
    if work is not None:
        n_threads = min(n_threads, max(1, work // work_per_thread))
    with _threads_lock:
        if _threads_in_use:
            n_threads = max(1, min(n_threads, default_threads() - _threads_in_use))
        _threads_in_use += n_threads
    try:
        yield n_threads
    finally:
        with _threads_lock:
            _threads_in_use -= n_threads
