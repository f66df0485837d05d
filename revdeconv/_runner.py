"""Running a command over many files: inputs, chunks, failures, outputs.

Nothing is lost and nothing is half-written: a file that cannot be read (or
processed) is reported with its reason and skipped, every other file is still
processed, outputs are written to a temporary name and renamed (a Ctrl-C
waits for the file being written), existing outputs are skipped unless
``overwrite``, no output is ever written over an input, and the exit status
says whether anything failed. Files are loaded as many at a time as
``memory`` bytes hold (from their headers), so memory stays bounded by the
budget, not by the folder or the size of its images; with more than one
thread, chunks of files are done side by side (:mod:`revdeconv._pipeline`).

The chain for a command that writes one output per input is
:meth:`Run.process`; :meth:`Run.map_pairs` and :meth:`Run.fold_pairs` are the
same chain over (original, filtered) pairs for ``learn``. The command line
(``cli.py``) only parses arguments and says what to compute.
"""

import os
import threading
import time

from . import _pixels
from ._pipeline import CHUNK_BYTES, Deferred, Files
from ._tally import Interrupted, Tally  # noqa: F401 (Interrupted: the command line's)
from ._inputs import (case_insensitive, expand, expand_inputs, footprint,  # noqa: F401
                      reason, refuse_overwriting, resolved,  # (expand_inputs: cli's)
                      sigint_deferred)
from ._options import DEFAULT_MEMORY
from ._pixels import load_rgb  # noqa: F401 (the command line's)
from .io import (DEFAULT_PNG_COMPRESSION, ImageReadError, remove_stale_temporaries,
                 save_array, save_image)

FORMATS = {"png": ".png", "tiff": ".tiff", "npy": ".npy"}
DEFAULT_FORMAT = "png"


class Run(Tally):
    """One command over many files: inputs, chunks and outputs (the counts and reports:
    :class:`revdeconv._tally.Tally`).

    The inputs are expanded once, before anything is written (so no output of
    the run is one of its inputs), and an output that would replace an input
    is refused. Files are read a chunk at a time: as many as their pixels
    (float64, as read; the size comes from each file's header) and their
    outputs (``output_scale`` times as many bytes) fit in ``memory`` bytes, and
    at most ``chunk`` files when given; a file larger than ``memory`` goes alone.
    With ``n_threads`` above one, as many chunks as threads are done at once, each
    in its share of ``memory`` and of at most :data:`~revdeconv._pipeline.CHUNK_BYTES`.
    """

    def __init__(self, command, *, out=None, fmt=DEFAULT_FORMAT, overwrite=False, quiet=False,
                 chunk=None, memory=DEFAULT_MEMORY, output_scale=1.0, recursive=False,
                 out_file=None, alpha=_pixels.DEFAULT_ALPHA, bits=None, stream=None,
                 cluster=None, n_threads=None, png_compression=DEFAULT_PNG_COMPRESSION):
        super().__init__(command, quiet=quiet, stream=stream)
        self.files = Files(n_threads)              # where chunks of files are done
        self.png_compression = png_compression
        self.cluster = cluster                     # a _cluster.Cluster: files on its workers
        self.alpha, self.bits = alpha, bits        # see _pixels: --alpha, --bits
        self.out, self.fmt, self.overwrite = out, fmt, overwrite
        self.chunk, self.memory, self.output_scale = chunk, memory, output_scale
        self.recursive, self.out_file = recursive, out_file
        self._rel, self._claimed, self._folded = {}, {}, {}
        self._kept, self._carry = {}, None
        self._targets, self._folders = {}, set()      # output paths, folders made

    def __getstate__(self):     # to a cluster's worker (_cluster): absolute paths (it has
        # its own working folder), not the stream, the cluster or what this run claimed
        return dict(self.__dict__, stream=None, cluster=None, _claimed={}, _folded={}, _kept={},
                    _targets={}, _folders=set(),
                    files=Files(1), _stop=None,
                    out=self.out and os.path.abspath(self.out),
                    _rel={_pixels.absolute(path): rel for path, rel in self._rel.items()})

    _chunk_cap = CHUNK_BYTES        # see revdeconv._pipeline

    def compute_threads(self, n_threads):
        """Threads for a computation light next to its files' decoding and encoding
        (``filter``, ``deconvolve``): one where the pool does chunks side by side (README,
        "Speed over folders"); ``n_threads`` on one thread, or on a cluster."""
        return 1 if self.cluster is None and self.files.n_threads > 1 else n_threads

    def fail(self, path, reason):
        self._kept.pop(_pixels.key(path), None)
        super().fail(path, reason)

    # -- inputs and outputs --------------------------------------------------------
    def inputs(self, specs, skip=None):
        """The files ``specs`` name (:func:`revdeconv._inputs.expand`), found once; a spec
        that finds nothing fails, and when nothing at all is found, ValueError."""
        found = expand(specs, recursive=self.recursive, skip=skip)
        if not found.files:
            raise ValueError("; ".join(sentence for *_, sentence in found.unmatched)
                             or "no input files")
        self._rel.update(found.rel)
        self.subfolders += found.subfolders
        for spec, reason, _ in found.unmatched:
            self.fail(spec, reason)
        return _pixels.pages(found.files)          # a multi-page TIFF: one input per page

    def name(self, path):
        """The name an input goes by: its stem, after the folders it lies in under
        the folder searched (``sub/a``) with ``recursive``."""
        rel = self._rel.get(path, "")
        return "/".join([*rel.split(os.sep), _pixels.stem(path)]) if rel else _pixels.stem(path)

    def output_path(self, path):
        """Where the output for input ``path`` goes: OUT/<name>.<format>, inside OUT."""
        target = self._targets.get(_pixels.key(path))
        if target is None:
            target = self._targets[_pixels.key(path)] = os.path.join(
                self.out, self._rel.get(path, ""), _pixels.stem(path) + FORMATS[self.fmt])
        return target

    def pending(self, paths):
        """The inputs still to do: outputs that exist are skipped unless ``overwrite``;
        two inputs with one output (by the file it is) are an error for the second."""
        todo, folders = [], {}
        for path in paths:
            target = self.output_path(path)
            real, exists = resolved(target, folders)
            key = os.path.normcase(real)
            twin = self._folded.setdefault(key.casefold(), key)
            if key in self._claimed or (twin != key and case_insensitive(self.out)):
                self.fail(path, f"its output {target} is also the output of "
                                f"{self._claimed[key if key in self._claimed else twin]}")
                continue
            self._claimed[key] = path
            if exists and not self.overwrite:
                self.skipped += 1
                continue
            todo.append(path)
        return todo

    def write(self, path, array):
        """Write the output for input ``path`` (whole or not at all), and count it: done,
        or failed with the reason."""
        alpha, bits = self._kept.pop(_pixels.key(path), (None, None))
        target = self.output_path(path)
        try:
            self._save(target, array, None if alpha is None else (self._carry, path, alpha),
                       _pixels.output_bits(bits, self.fmt, self.bits))
        except (OSError, ValueError, ImportError) as exc:   # ImportError: what to install
            self.fail(path, f"cannot write {target}: {reason(exc)}")
        else:
            self.succeed()

    def _save(self, target, array, carried, bits):
        """Write one output: alpha carried to the output's geometry (``--alpha keep``),
        as ``.npy`` or an image file."""
        folder = os.path.dirname(target)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        if carried is not None:
            carry, path, alpha = carried
            array = _pixels.with_alpha(array, carry(path, alpha, array.shape[:2]))
        if self.fmt == "npy":
            save_array(target, array)
        else:
            save_image(target, array, bits=bits, png_compression=self.png_compression)

    # -- the chain -----------------------------------------------------------------
    def process(self, inputs, compute, *, attach=None, carry=None):
        """Every file named by ``inputs`` through ``compute``, its output written;
        the exit status.

        The files (see :meth:`inputs`) whose outputs exist are skipped (unless
        ``overwrite``), the rest are read a chunk at a time, and each chunk's
        files are computed in one call per channel layout, or each alone when
        that call raises ValueError, so the bad file is the one named. Each
        output is written whole or not at all. ``compute(arrays)`` returns one
        output per array (an exception in place of an output fails its file);
        with ``attach``, ``compute(arrays, values)`` gets the value
        ``attach(path)`` gave each file (a file for which it raises ValueError
        fails with that message). Nothing is written before every output is
        known not to replace an input. With ``alpha="keep"``, the images' alpha
        is left out of ``compute`` and ``carry(path, alpha, (rows, cols))`` gives
        the output's alpha.
        """
        self._carry = carry
        files = self.inputs(inputs, skip=self.out)
        refuse_overwriting([(path, self.output_path(path)) for path in files], files)
        try:
            os.makedirs(self.out, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"--out: cannot make the folder {self.out!r}: "
                             f"{reason(exc)}") from None
        # what a process killed while writing (an earlier run's) left behind
        remove_stale_temporaries([self.output_path(path) for path in files], time.time())
        self.total = len(files) + self.failed
        with self._interruptible():
            if self.cluster is not None:        # partitions of the files on its workers
                self.cluster.process(self, self.pending(files), compute, attach)
            else:
                with self.files.open(self.memory):
                    self.work(self.pending(files), compute, attach)
        return self.finish()

    def work(self, files, compute, attach=None):
        """:meth:`process`'s loop over ``files`` (the pending ones): chunks done by
        :meth:`_chunk` on the pool of :attr:`files` (as many at work as it has
        threads, as many more queued; one larger than its share of ``memory``
        alone) or in line, their lines in order. A Ctrl-C lets the chunks at work
        finish their group (files whole, counted) and drops the rest. A cluster's
        worker runs it on its partition."""
        running, last_fits, self._stop = [], True, threading.Event()
        ahead = 2 * self.files.n_threads if self.files.overlapped else 1   # (in line: lazy)
        try:
            for batch, fits in self._plan(files):
                if running and not (fits and last_fits):
                    self._finish(running, 0, line=True)
                running.append(self.files.submit(self._chunk, batch, compute, attach))
                last_fits = fits
                self._finish(running, ahead, line=True)
            self._finish(running, 1, line=True)     # (no line after the last chunk)
        except BaseException:                       # Ctrl-C: what was started is finished
            self._stop.set()
            while running and running[-1].cancel():
                running.pop()
            raise
        finally:
            self._finish(running, 0, quietly=True)

    def _finish(self, running, keep, line=False, quietly=False):
        """Take the oldest chunks' results (their reports) until ``keep`` are left; ``line``:
        a line after each; ``quietly``: whatever they raise (an error is on its way up)."""
        while len(running) > keep:
            try:
                running[0].result()         # (a Ctrl-C meanwhile: taken again, later)
            except Exception:
                running.pop(0)
                if not quietly:
                    raise
            else:
                running.pop(0)
            if line:
                self._chunk_line()

    def _chunk(self, batch, compute, attach):
        """One chunk of files read, computed a group at a time (:meth:`_grouped`) and
        written; a Ctrl-C waits for the group's files, and stops the chunk there."""
        reading = self._begin_reading(batch, Deferred)      # (this thread is the pool's)
        for group in self._grouped(self._load(batch, reading), attach):
            reading = None                      # (the inputs: in the groups only)
            if self._stop.is_set():
                return
            results = self._each_or_all(group, compute)
            group.clear()                       # the inputs go before the outputs are written
            with sigint_deferred():
                while results:
                    self.write(*results.pop(0))

    def pairs(self, originals, filtered):
        """(original, filtered) paths paired by name, in name order; a file without
        its partner, or with the name of another file on its side, is reported."""
        first, second = self.inputs(originals), self.inputs(filtered)
        if self.out_file is not None:
            refuse_overwriting([(None, self.out_file)], first + second)
        originals, filtered = self._by_name(first), self._by_name(second)
        pairs = [(originals[n], filtered[n]) for n in sorted(set(originals) & set(filtered))]
        if not pairs:
            raise ValueError("no original and filtered file share a name (files are paired "
                             "by name, without the extension)")
        for name in sorted(set(originals) ^ set(filtered)):     # not an error: left out
            side = "filtered" if name in originals else "original"
            self.skip(originals.get(name) or filtered.get(name), f"no {side} file named "
                      f"{name!r}", "no partner file")
        self.total = len(pairs) + self.failed
        return pairs

    def map_pairs(self, originals, filtered, compute, *, prepare=None):
        """``compute(originals, filtered)`` (arrays) on the :meth:`pairs`, as
        :meth:`process` does on files; the results by name. ``prepare(items)``
        turns each chunk's loaded (path, original, filtered) items before they are
        grouped (:func:`revdeconv._pixels.learning_channels`)."""
        pairs = self.pairs(originals, filtered)
        with self._interruptible():
            if self.cluster is not None:
                return self.cluster.map_pairs(self, pairs, compute, prepare)
            with self.files.open(self.memory):                 # the next chunk read meanwhile
                return self.map_work(pairs, compute, prepare)

    def map_work(self, pairs, compute, prepare=None):
        """:meth:`map_pairs`'s loop over ``pairs`` (a cluster's worker runs it on its part)."""
        results = {}
        for group in self._groups(pairs, prepare=prepare):
            found = self._each_or_all(group, compute)
            group.clear()
            for path, result in found:
                results[self.name(path)] = result
                self.succeed()
        return results

    def fold_pairs(self, originals, filtered, step, *, at_once=False, prepare=None,
                   parts=None):
        """``carried = step(originals, filtered, carried)`` on the :meth:`pairs`, one
        call per chunk and channel layout, in order; the last ``carried`` (None if
        no call succeeded). A call that raises ValueError fails all its pairs.
        ``at_once`` puts every pair in one chunk, whatever ``memory`` says;
        ``prepare`` as in :meth:`map_pairs`. On a cluster, ``step`` runs as a chain
        of tasks, unless ``parts = (part, result)``: ``part(originals, filtered)``
        on each partition, the parts added with ``+`` as a tree on the cluster,
        and ``result(total)`` (least squares is a sum: see ``_cluster``)."""
        pairs = self.pairs(originals, filtered)
        with self._interruptible():
            if self.cluster is not None:
                return self.cluster.fold_pairs(self, pairs, step, prepare, parts, at_once)
            if at_once:
                self.chunk, self.memory = None, float("inf")
            with self.files.open(self.memory):
                return self.fold_work(pairs, step, prepare)

    def fold_work(self, pairs, step, prepare=None, carried=None):
        """:meth:`fold_pairs`'s loop over ``pairs``, from ``carried``: the last one."""
        for group in self._groups(pairs, prepare=prepare):
            try:
                carried = step(*_pixels.columns(group), carried)
            except ValueError as exc:
                for path, *_ in group:
                    self.fail(path, str(exc))
                continue
            finally:
                count = len(group)
                group.clear()
            self.succeed(count)
        return carried

    def _by_name(self, files):
        """Input files by :meth:`name`; a second file with a name is reported, not used."""
        named = {}
        for path in files:
            if self.name(path) in named:
                self.fail(path, f"another input, {named[self.name(path)]}, has the name "
                                f"{self.name(path)!r}")
            else:
                named[self.name(path)] = path
        return named

    def _groups(self, items, attach=None, prepare=None):
        """The loaded :meth:`chunks` of ``items``, each split :meth:`_grouped`."""
        for loaded in self.chunks(items):
            yield from self._grouped(loaded, attach, prepare)

    def _grouped(self, loaded, attach=None, prepare=None):
        """A loaded chunk split by channel layout (:func:`revdeconv._pixels.by_channels`);
        ``attach(path)`` adds a value to each item (see :meth:`process`). A group the
        caller has cleared holds no image while the next one is computed."""
        if attach is not None:
            attached = []
            for path, *arrays in loaded:
                try:
                    attached.append((path, *arrays, attach(path)))
                except ValueError as exc:
                    self.fail(path, str(exc))
            loaded, attached = attached, None
        if prepare is not None:
            loaded = prepare(loaded)
        groups = _pixels.by_channels(loaded)
        del loaded
        while groups:
            yield groups.pop(0)

    def _each_or_all(self, items, compute):
        """``compute`` on the whole group; when that raises ValueError (one bad
        image), on each item alone, so only the bad ones fail. Returns (path, result);
        a result that is an exception fails its item."""
        try:
            results = list(zip((item[0] for item in items),
                               compute(*_pixels.columns(items))))
        except ValueError:
            results = []
            for item in items:
                try:
                    results.append((item[0], compute(*_pixels.columns([item]))[0]))
                except ValueError as exc:   # the item alone was "[0]" of its list
                    self.fail(item[0], str(exc).replace("[0]", "", 1))
        kept = []
        for path, result in results:
            if isinstance(result, Exception):
                self.fail(path, str(result))
            else:
                kept.append((path, result))
        return kept

    # -- reading -------------------------------------------------------------------
    def chunks(self, items):
        """Yield lists of (path, array, ...), as many items as ``memory`` and
        ``chunk`` allow (see the class doc). An item is a path, or a tuple of paths
        read together (a pair); an item with a file that cannot be read is
        reported and left out. With a pool, the next chunk is read meanwhile."""
        waiting, fits_before = [], True         # chunks whose reading has started
        for batch, fits in self._plan(items):
            if waiting and not (fits and fits_before):          # a large chunk alone
                yield self._load(*waiting.pop())
                self._chunk_line()
            waiting.append((batch, self._begin_reading(batch)))
            fits_before = fits
            if len(waiting) == 2:
                yield self._load(*waiting.pop(0))
                self._chunk_line()
        if waiting:
            yield self._load(*waiting.pop())

    def _plan(self, items):
        """The chunks of paths :meth:`chunks` reads, from the files' headers, each with
        whether it fits in its share of ``memory``."""
        self.total = self.total or len(items)
        # with a pool, a share each to the chunks at work and the one waiting
        share = self.memory / (self.files.n_threads + 1)
        budget = share if self.files.overlapped else self.memory
        cap = self._chunk_cap if self.chunk is None else float("inf")    # inputs and outputs
        batch, size, copies = [], 0, 0
        for item in items:
            paths = item if isinstance(item, tuple) else (item,)
            pixels = sum(footprint(path) / getattr(path, "pages", 1) for path in paths)
            need = pixels * (1 + self.output_scale)
            # and the copies made while one file is decoded (about half its pixels
            # more) or one output computed and encoded (about three times its own)
            largest = max(copies, pixels / 2, 3 * pixels * self.output_scale)
            if batch and (size + need + largest > budget or size + need > cap
                          or len(batch) == (self.chunk or -1)):
                yield batch, size + copies <= share
                batch, size, largest = [], 0, max(pixels / 2, 3 * pixels * self.output_scale)
            batch.append(paths)
            size, copies = size + need, largest
        if batch:
            yield batch, size + copies <= share

    def _begin_reading(self, batch, start=None):
        """Futures of a chunk's pictures: reading on the pool (``start``: another way)."""
        start = start or self.files.submit
        return [[start(_pixels.read, path, self.alpha) for path in paths] for paths in batch]

    def _load(self, batch, reading):
        loaded = []
        for paths, pictures in zip(batch, reading):
            try:
                arrays = [self._read(path, picture) for path, picture in zip(paths, pictures)]
            except _Unreadable:
                continue
            loaded.append((paths[0], *arrays))
        return loaded

    def _read(self, path, reading):
        try:
            picture = reading.result()
        except (ImageReadError, OSError, ValueError) as exc:
            self.fail(path, getattr(exc, "reason", None) or reason(exc))
            raise _Unreadable from None
        if self.out is not None:                   # what its output keeps: alpha, depth
            self._kept[_pixels.key(path)] = (picture.alpha, picture.bits)
        return picture.pixels


class _Unreadable(Exception):
    """A file of an item could not be read (already reported)."""
