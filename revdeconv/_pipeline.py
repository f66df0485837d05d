"""Overlapping a run's reading, computing and writing over a pool of threads.

A folder run spends most of its time decoding and encoding files (PNG's zlib
above all), which Pillow does with the GIL released. With ``n_threads`` above
one, :class:`Files` decodes the next chunk's files on a pool of that many
threads while the current chunk is computed, and encodes and writes each
chunk's outputs there while the next one is computed. On one thread nothing
is overlapped: a file is read when its chunk is taken, and written when its
output is ready, in order, as a plain loop would.

Only the files' bytes move between threads; every report (a file failed,
done, skipped, a warning while it was read) is made by the run's own thread, in
the files' order, so the output of a run does not depend on the number of
threads: a warning raised on the pool is kept with its file's result and shown
when the run takes that result.
"""

import concurrent.futures
import contextlib
import threading
import warnings

from ._threads import effective_n_threads

__all__ = ["Deferred", "Files", "CHUNK_BYTES"]

#: The most bytes of pixels (as computed, float64) in one chunk of files, whatever
#: ``--memory`` allows: a chunk this size and its outputs stay in the processor's
#: caches, where one of the memory's size is copied through fresh pages
#: (``--chunk`` or a smaller ``--memory`` take fewer).
CHUNK_BYTES = 1 << 24


class Deferred:
    """A call made when its result is first asked for (a future that runs in line)."""

    def __init__(self, function, *args):
        self._call = (function, args)

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
        self._call, self._value, self._error = None, None, None


_pool_thread = threading.local()     # .caught: the warnings of the call on this thread


def _keeping_warnings(show):
    """``warnings.showwarning`` that keeps a pool thread's warnings for its caller."""
    def keep(message, category, filename, lineno, file=None, line=None):
        caught = getattr(_pool_thread, "caught", None)
        if caught is None:
            return show(message, category, filename, lineno, file, line)
        caught.append((message, category, filename, lineno))
    keep.shows = show
    return keep


def _on_pool(function, *args):
    """``function(*args)`` on a pool thread: (value or exception, its warnings)."""
    _pool_thread.caught = caught = []
    try:
        return function(*args), None, caught
    except Exception as exc:
        return None, exc, caught
    finally:
        _pool_thread.caught = None


class _Pooled:
    """A pool's future whose result shows its warnings (in the thread that asks)."""

    def __init__(self, future):
        self._future = future

    def result(self):
        value, error, caught = self._future.result()
        while caught:
            warnings.showwarning(*caught.pop(0))
        if error is not None:
            raise error
        return value

    def cancel(self):
        self._future.cancel()


class Files:
    """Where a run's files are decoded and encoded: in line (``n_threads`` 1) or on a
    pool of threads (:meth:`open` makes the pool, :meth:`close` waits for the files
    being written and drops the reads not started).

    ``read(function, path)`` returns a future of ``function(path)``: on the pool, it
    starts now; in line, when its result is asked for. ``write(function, *args)``
    returns a future of ``function(*args)``: on the pool, started now; in line, done
    already.
    """

    def __init__(self, n_threads=1):
        self.n_threads = effective_n_threads(n_threads)
        self._pool = None

    @property
    def overlapped(self):
        """Whether reading and writing overlap the computing (a pool is open)."""
        return self._pool is not None

    @contextlib.contextmanager
    def open(self):
        if self.n_threads == 1:
            yield self
            return
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.n_threads, thread_name_prefix="revdeconv-files")
        warnings.showwarning = keep = _keeping_warnings(warnings.showwarning)
        try:
            yield self
        finally:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)    # (the run waited for its writes)
            if warnings.showwarning is keep:
                warnings.showwarning = keep.shows

    def read(self, function, path):
        if self._pool is None:
            return Deferred(function, path)
        return _Pooled(self._pool.submit(_on_pool, function, path))

    def write(self, function, *args):
        if self._pool is None:
            done = Deferred(function, *args)
            with contextlib.suppress(Exception):    # (kept for result() to raise)
                done.result()
            return done
        return _Pooled(self._pool.submit(_on_pool, function, *args))
