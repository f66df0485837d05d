"""A task of ``--scheduler`` (:mod:`revdeconv._cluster`): a partition's files through the
plain command's own loop on a worker, each input's outcome kept as a :class:`Record`.

:func:`partitions` cuts the files as the plain command reads them (its chunks, by
``--memory`` and ``--chunk``) into parts of :data:`MIN_FILES` to :data:`MAX_FILES`;
:class:`Worker` is the client's ``Run`` on a worker, its reports kept with the place
the plain command would print them (so that the client prints them in that order);
the ``*_part`` functions are the tasks. Nothing here imports dask.
"""

import contextlib
import math
import os
import threading
import warnings
from typing import Any, NamedTuple, Optional

from ._pixels import key
from ._runner import Run

#: Files per task: a plain chunk is cut into parts of this many (fewer when the
#: chunk holds fewer: large files go as the memory budget allows).
MIN_FILES, MAX_FILES = 20, 64


class Record(NamedTuple):
    """What a task says: of one input (for a pair, its original), or a warning it gave."""

    index: int                      # the input's, in the task's partition (-1: none)
    which: int = 0                  # the path that failed: 0, or a pair's filtered file 1
    reason: Optional[str] = None    # a failure's reason, a warning's message; None: done
    order: tuple = ()               # (phase, layout, sub): where the plain command says it
    layout: Any = None              # (extra shape, dtype) of the group it was computed in
    value: Any = None               # learn: the filter
    warning: Any = None             # a warning's category


class Part(NamedTuple):
    """A task's files: ``items[start:stop]``, within plain chunk ``chunk``."""

    chunk: int
    start: int
    stop: int


def partitions(run, items, slots):
    """The plain command's chunks of ``items`` (as ``Run.chunks`` forms them, from the
    headers), each cut into equal parts of :data:`MIN_FILES` to :data:`MAX_FILES`
    items (a smaller chunk: one part), two for each of the ``slots`` (tasks the
    cluster runs at once) where there are enough."""
    planner = _Planner(run)
    parts, start = [], 0
    for number, batch in enumerate(planner.chunks(list(items))):
        count = len(batch)
        size = min(MAX_FILES, max(MIN_FILES, math.ceil(count / (2 * slots))))
        pieces = max(1, count // size, math.ceil(count / MAX_FILES))
        bounds = [start + count * k // pieces for k in range(pieces + 1)]
        parts += [Part(number, a, b) for a, b in zip(bounds, bounds[1:])]
        start += count
    return parts


class _Planner(Run):
    """The chunks a run would read, without reading them."""

    def __init__(self, run):
        self.__dict__.update(run.__dict__)

    _chunk_cap = float("inf")       # the chunks by memory, as the cluster's tasks cut them

    def _load(self, batch, reading):
        return batch

    def _chunk_line(self):
        pass


def _layout(array):
    return array.shape[2:], array.dtype.str


class Worker(Run):
    """A partition's run on a worker: the client's run (settings, names, alpha and
    depth policy) with its failures and warnings kept as :class:`Record` s, each with
    the place the plain command would print it: a chunk's reads (phase 0) and attached
    values (1) first, then each group of one layout: its call's warnings, the files
    that fail computed alone (0) or return an error (1), and those that fail to be
    written (2)."""

    def __init__(self, run):
        self.__dict__.update(run.__dict__)
        self.stream, self.quiet, self.show_progress = _Null(), True, False
        self.done = self.failed = self.skipped = self.total = 0
        self._kept, self._skips, self._events, self._layouts = {}, {}, [], {}
        self._phase, self._group, self._returned, self._current = 0, None, set(), None

    def _order(self, path=None):
        if self._phase < 2:
            return self._phase, None, 0
        if path is None:                    # a warning of the group's call: first
            return 2, self._group, -1
        return 2, self._group, 2 if self._phase == 3 else int(key(path) in self._returned)

    def fail(self, path, reason):
        super().fail(path, reason)
        self._events.append((key(path), reason, self._order(path), None))

    def _warned(self, message, category, *_, **__):
        path = self._current if self._phase < 2 else None
        self._events.append((path and key(path), str(message), self._order(), category))

    @contextlib.contextmanager
    def capturing(self):
        """This thread's warnings kept as records while the task runs (a worker may run
        several tasks at once: ``warnings.catch_warnings`` is for one thread)."""
        _install()
        _task.worker = self
        try:
            yield
        finally:
            _task.worker = None

    def _read(self, path, reading):
        self._current = path
        return super()._read(path, reading)

    def _load(self, batch, reading):
        self._phase = 0
        loaded = super()._load(batch, reading)
        self._phase = 1
        return loaded

    _chunk_cap = float("inf")       # the partition's chunks are the plain run's, as planned

    def _grouped(self, loaded, attach=None, prepare=None):
        for group in super()._grouped(loaded, attach, prepare):
            self._group, self._phase = _layout(group[0][1]), 3
            self._layouts.update((key(item[0]), self._group) for item in group)
            yield group

    def _each_or_all(self, items, compute):
        first = {id(item[1]): key(item[0]) for item in items}

        def watched(*columns):          # which results are errors returned, not raised
            results = list(compute(*columns))
            self._returned.update(first[id(array)] for array, result
                                  in zip(columns[0], results) if isinstance(result, Exception))
            return results

        self._phase, self._returned = 2, set()
        try:
            return super()._each_or_all(items, watched)
        finally:
            self._phase = 3

    def records(self, items, value=None):
        """The failures and warnings as they came, then one record per input done."""
        where = {key(path): (n, which) for n, item in enumerate(items)
                 for which, path in enumerate(paths(item))}
        records, failed = [], set()
        for path, text, order, category in self._events:
            n, which = where.get(path, (-1, 0))
            layout = self._layouts.get(key(paths(items[n])[0])) if n >= 0 else None
            records.append(Record(n, which, text, order, layout, None, category))
            failed.add(n if category is None else -1)
        for n, item in enumerate(items):
            if n not in failed:
                first = paths(item)[0]
                records.append(Record(n, 0, None, (), self._layouts.get(key(first)),
                                      value(first) if value else None))
        return records


_task = threading.local()           # the Worker a thread of a worker process runs now
_installed = threading.Lock()


def _show(message, category, filename, lineno, file=None, line=None):
    """A worker process's ``showwarning``: a task's warnings to its records, others as
    before."""
    worker = getattr(_task, "worker", None)
    if worker is None:
        return _show.previous(message, category, filename, lineno, file, line)
    return worker._warned(message, category)


def _install():
    """Once per process: :func:`_show`, and every warning of the package shown each time
    (the client's filters decide what it prints, as for the plain command)."""
    with _installed:
        if warnings.showwarning is not _show:
            _show.previous = warnings.showwarning
            warnings.showwarning = _show
            warnings.filterwarnings("always", module="revdeconv")


class _Null:
    """A stream that keeps nothing (a worker's lines go back as records)."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def paths(item):
    return item if isinstance(item, tuple) else (item,)


# -- the tasks --------------------------------------------------------------------------

def unpack(blob):
    """The command's run and functions, sent once (see :meth:`Cluster._job`)."""
    import cloudpickle
    return cloudpickle.loads(blob)


def process_part(job, items):
    run, compute, attach = job
    worker = Worker(run)
    with worker.capturing():
        worker.work(items, compute, attach)
    return worker.records(items)


def map_part(job, items):
    run, compute, prepare = job
    worker = Worker(run)
    with worker.capturing():
        results = worker.map_work(items, compute, prepare)
    return worker.records(items, lambda path: results.get(worker.name(path)))


def sum_part(job, items):
    """A partition's parts by channel count: {channels: part}."""
    run, part, prepare = job

    def step(originals, filtered, sums):
        value = part(originals, filtered)
        channels = originals[0].shape[2] if originals[0].ndim == 3 else 1
        return added(sums, {channels: value})

    worker = Worker(run)
    with worker.capturing():
        sums = worker.fold_work(items, step, prepare)
    return worker.records(items), sums


def added(first, second):
    """Two {channels: part} sums added (either may be None): the tree's step."""
    if first is None or second is None:
        return first if second is None else second
    total = dict(first)
    for channels, value in second.items():
        total[channels] = total[channels] + value if channels in total else value
    return total


def fold_part(job, items, previous, at_once=False):
    """A link of the chain: ``previous`` is the last link's (records, carried, prepare)."""
    run, step, prepare = job
    carried = None
    if previous is not None:
        _, carried, prepare = previous
    worker = Worker(run)
    if at_once:
        worker.chunk, worker.memory = None, float("inf")
    with worker.capturing():
        carried = worker.fold_work(items, step, prepare, carried)
    return worker.records(items), carried, prepare


def nth(values, n):
    return values[n]


def worker_facts():
    """How this worker computes (``revdeconv info --scheduler``)."""
    import platform

    from . import _version, batch, config, kernel_file  # noqa: F401 (what tasks load: here)
    info = config()
    return {"version": _version.__version__, "backend": info["backend"],
            "openmp": info["openmp"], "threads": info["threads"], "pid": os.getpid(),
            "host": platform.node(), "python": info["python"]}


def channel_policy(total, records, colour):
    """The sums by channel count as one, and the records: grey pairs' sums count in
    each colour channel where ``colour`` (grey meets colour as three equal channels,
    as the plain command makes them); else the pairs of another channel count than
    the first pair's fail, as they do in the plain command."""
    if not total:
        return None, records
    if colour and set(total) == {1, 3}:
        from .learning import NormalEquations
        grey = total[1]
        spread = NormalEquations(*(getattr(grey, name).repeat(3, axis=0) for name in
                                   ("gram", "rhs", "count", "target_sq")),
                                 grey.kernel_size, grey.stride, grey.activation,
                                 grey.with_bias, grey.dtype)
        return total[3] + spread, records

    def channels(layout):
        return layout[0][0] if layout[0] else 1
    first = next((channels(r.layout) for found in records for r in found
                  if r.layout is not None and r.warning is None), next(iter(total)))
    kept = [[r._replace(reason=f"has {channels(r.layout)} channels; the shared filter, "
                               f"learned first, has {first}", order=(2, r.layout, 0))
             if r.reason is None and r.layout is not None and channels(r.layout) != first
             else r for r in found] for found in records]
    return total.get(first), kept
