"""Spreading a run's files over a pool of threads.

A folder run spends most of its time decoding and encoding files (PNG's zlib
above all), done with the GIL released (zlib, the compiled PNG row filters,
Pillow for other formats). With ``n_threads`` above
one, :class:`Files` runs the run's chunks of files on a pool of that many
threads, each chunk read, computed and written on one of them, while the run's
own thread plans the next ones. On one thread nothing is overlapped: a chunk is
done when its result is asked for, in order, as a plain loop would.

Every report (a file failed, done, skipped, a warning) made on the pool is kept
with its chunk's result and made again, in order, by the thread that takes the
result (:func:`reported_by_caller`), so what a run prints does not depend on
the number of threads.

While :class:`Files` is open, the arrays its calls make take their memory from
``_block_cache`` (when the extension is built): a freed image's block is kept for
the next chunk's, instead of going back to the operating system and being
faulted in again, page by page (0.4 ms per 180x250 RGB image where the
benchmark runs).
"""

import concurrent.futures
import contextlib
import functools
import threading
import warnings

from ._threads import pool_threads

from ._native import block_cache as _block_cache    # None: NumPy's own allocator

__all__ = ["Deferred", "Files", "CHUNK_BYTES", "reported_by_caller"]

#: The most bytes of pixels (as computed, float64; inputs and outputs) in one chunk of
#: files, whatever ``--memory`` allows (``--chunk`` or a smaller ``--memory`` take
#: fewer). Larger chunks share out a run's fixed costs per chunk over more files;
#: their memory comes back from ``_block_cache``. Over 1,000 PNG files of 180x250
#: (output in memory, shared 2-core machine), filter on two threads took 0.88 s in
#: chunks of 8 MiB, 0.80 s of 16 MiB and 0.76 s of 32 MiB (1.25, 1.22 and 1.20 s on
#: one thread).
CHUNK_BYTES = 1 << 25


class Deferred:
    """A call made when its result is first asked for (a future that runs in line)."""

    def __init__(self, function, *args):
        self._call = (function, args)
        self._value = self._error = None       # (a call cut short by Ctrl-C: nothing)

    def result(self):
        if self._call is not None:
            function, args = self._call
            self._call = None
            try:
                self._value, self._error = function(*args), None
            except Exception as exc:            # raised again to each caller of result
                self._value, self._error = None, exc
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self):
        """Drop the call if it has not been made; whether it was dropped."""
        if self._call is None:
            return False
        self._call, self._value, self._error = None, None, None
        return True


_pool_thread = threading.local()     # .caught: the reports of the call on this thread


def reported_by_caller(method):
    """A run's report (``fail``, ``skip``, ``succeed``) made on a pool thread is kept,
    and made by the thread that takes the result."""
    @functools.wraps(method)
    def report(self, *args):
        caught = getattr(_pool_thread, "caught", None)
        if caught is None:
            return method(self, *args)
        caught.append((functools.partial(report, self), args))
    return report


def _show_again(*args):
    warnings.showwarning(*args)


def _keeping_warnings(show):
    """``warnings.showwarning`` that keeps a pool thread's warnings for its caller."""
    def keep(message, category, filename, lineno, file=None, line=None):
        caught = getattr(_pool_thread, "caught", None)
        if caught is None:
            return show(message, category, filename, lineno, file, line)
        caught.append((_show_again, (message, category, filename, lineno)))
    keep.shows = show
    return keep


def _on_pool(function, *args):
    """``function(*args)`` on a pool thread: (value or exception, its reports)."""
    _pool_thread.caught = caught = []
    try:
        return function(*args), None, caught
    except BaseException as exc:            # (its reports are made all the same)
        return None, exc, caught
    finally:
        _pool_thread.caught = None


class _Pooled:
    """A pool's future whose result makes its reports (in the thread that asks)."""

    def __init__(self, future):
        self._future = future

    def result(self):
        value, error, caught = self._future.result()
        while caught:
            report, args = caught.pop(0)
            report(*args)
        if error is not None:
            raise error
        return value

    def cancel(self):
        """Drop the call if it has not started; whether it was dropped."""
        return self._future.cancel()


class Files:
    """Where a run's chunks of files are done: in line (``n_threads`` 1) or on a pool
    of threads, open while :meth:`open`'s block runs (at its end the calls not
    started are dropped and those started waited for).

    :meth:`submit` gives a future whose ``result()`` makes the reports of its call.
    """

    def __init__(self, n_threads=1):
        self.n_threads = pool_threads(n_threads)
        self._pool = None

    @property
    def overlapped(self):
        """Whether a pool is open."""
        return self._pool is not None

    @contextlib.contextmanager
    def open(self, memory=float("inf")):
        """The pool (and the cache of freed blocks: at most ``memory`` bytes, the run's
        budget) while the block runs."""
        with self._cache(memory):
            if self.n_threads == 1:
                yield self
                return
            with self._pooled():
                yield self

    @contextlib.contextmanager
    def _cache(self, memory):
        """Freed blocks kept, up to a chunk's bytes for each thread and one more, and
        never more than ``memory``."""
        if _block_cache is None:
            yield
            return
        _block_cache.open_cache(int(min(CHUNK_BYTES * (self.n_threads + 1), memory)))
        try:
            yield
        finally:
            _block_cache.close_cache()

    @contextlib.contextmanager
    def _pooled(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.n_threads, thread_name_prefix="revdeconv-files")
        warnings.showwarning = keep = _keeping_warnings(warnings.showwarning)
        try:
            yield self
        finally:
            pool, self._pool = self._pool, None
            try:
                pool.shutdown(wait=True, cancel_futures=True)    # (the run took its results)
            finally:
                if warnings.showwarning is keep:
                    warnings.showwarning = keep.shows

    def submit(self, function, *args):
        """A future of ``function(*args)``: on the pool, started now; in line, called
        when its result is asked for."""
        if self._pool is None:
            return Deferred(_cached, function, *args)
        return _Pooled(self._pool.submit(_on_pool, _cached, function, *args))


def _cached(function, *args):
    """``function(*args)``, the arrays it makes on this thread from ``_block_cache``."""
    if _block_cache is None:
        return function(*args)
    previous = _block_cache.use()
    try:
        return function(*args)
    finally:
        _block_cache.restore(previous)
