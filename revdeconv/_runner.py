"""Running a command over many files: inputs, chunks, failures, outputs.

Nothing is lost and nothing is half-written: a file that cannot be read (or
processed) is reported with its reason and skipped, every other file is still
processed, outputs are written to a temporary name and renamed, existing
outputs are skipped unless ``overwrite``, and the exit status says whether
anything failed. Files are loaded ``chunk`` at a time, so memory stays bounded
by the chunk, not by the folder.

The chain for a command that writes one output per input is
:meth:`Run.process`; :meth:`Run.map_pairs` and :meth:`Run.fold_pairs` are the
same chain over (original, filtered) pairs for ``learn``. The command line
(``cli.py``) only parses arguments and says what to compute.
"""

import glob
import os
import re
import sys

import numpy as np
from PIL import Image

from .io import ImageReadError, load_array, load_image, save_array, save_image

FORMATS = {"png": ".png", "tiff": ".tiff", "npy": ".npy"}
DEFAULT_FORMAT = "png"
DEFAULT_CHUNK = 64


def _natural(path):
    """Sort key: "2.png" before "10.png" (the order matters where a kernel carries over)."""
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", os.path.basename(path))]


def _readable_extensions():
    """Extensions Pillow can open (not those it can only save), and .npy."""
    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items()
            if fmt in Image.OPEN} | {".npy"}


def expand_inputs(specs):
    """Files named by ``specs``: files, folders (their image files, hidden ones
    left out) and glob patterns, each in natural order; a name that matches
    nothing stays, to be reported as missing."""
    readable = _readable_extensions()
    files = []
    for spec in specs:
        if os.path.isdir(spec):
            files += sorted((os.path.join(spec, name) for name in os.listdir(spec)
                             if not name.startswith(".")
                             and os.path.splitext(name)[1].lower() in readable
                             and os.path.isfile(os.path.join(spec, name))), key=_natural)
        elif glob.has_magic(spec):
            files += sorted((path for path in glob.glob(spec) if os.path.isfile(path)),
                            key=_natural)
        else:
            files.append(spec)
    seen = set()
    return [f for f in files if not (os.path.abspath(f) in seen or seen.add(os.path.abspath(f)))]


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def read(path):
    """An input file as a float array: ``.npy`` as stored, images in [0, 1]."""
    if path.lower().endswith(".npy"):
        array = load_array(path)
        return array if array.dtype.kind == "f" else array.astype(np.float64)
    return load_image(path)


def _as_rgb(image):
    """Grey becomes three equal channels; alpha is dropped."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] in (1, 2):
        return np.repeat(image[:, :, :1], 3, axis=2)
    return image[:, :, :3]


def load_rgb(paths):
    """The images at ``paths``, each with three channels (for ``experiment``); the
    first that cannot be read raises."""
    return [_as_rgb(load_image(path)) for path in paths]


class Run:
    """One command over many files: counts, reports, progress and outputs."""

    def __init__(self, command, *, out=None, fmt=DEFAULT_FORMAT, overwrite=False, quiet=False,
                 chunk=DEFAULT_CHUNK, stream=None):
        self.command = command
        self.out, self.fmt, self.overwrite, self.quiet = out, fmt, overwrite, quiet
        self.chunk = chunk
        self.stream = stream or sys.stderr
        self.done = self.failed = self.skipped = 0
        self.total = 0
        self.show_progress = not quiet and self.stream.isatty()
        self._claimed = {}
        if out is not None:
            os.makedirs(out, exist_ok=True)

    # -- reporting -----------------------------------------------------------------
    def fail(self, path, reason):
        self.failed += 1
        self._clear_progress()
        print(f"revdeconv {self.command}: {path}: {reason}", file=self.stream)
        self._progress()

    def succeed(self, count=1):
        self.done += count
        self._progress()

    def _progress(self):
        if self.show_progress and self.total:
            finished = self.done + self.failed + self.skipped
            filled = 30 * finished // self.total
            self.stream.write(f"\r[{'#' * filled}{'-' * (30 - filled)}] {finished}/{self.total}")
            self.stream.flush()

    def _clear_progress(self):
        if self.show_progress:
            self.stream.write("\r" + " " * 50 + "\r")

    def finish(self):
        """Print the summary line; the exit status: 1 when anything failed."""
        self._clear_progress()
        skipped = f", {self.skipped} skipped (output exists; --overwrite to redo)" \
            if self.skipped else ""
        if not self.quiet or self.failed:
            print(f"revdeconv {self.command}: {self.done} done, {self.failed} failed{skipped}",
                  file=self.stream)
        return 1 if self.failed else 0

    # -- outputs -------------------------------------------------------------------
    def output_path(self, path):
        """Where the output for input ``path`` goes: OUT/<stem>.<format>, inside OUT."""
        return os.path.join(self.out, stem(path) + FORMATS[self.fmt])

    def pending(self, paths):
        """The inputs still to do: outputs that exist are skipped unless ``overwrite``;
        two inputs with one output name are an error for the second."""
        todo = []
        for path in paths:
            target = self.output_path(path)
            if target in self._claimed:
                self.fail(path, f"its output {target} is also the output of "
                                f"{self._claimed[target]}")
                continue
            self._claimed[target] = path
            if os.path.exists(target) and not self.overwrite:
                self.skipped += 1
                continue
            todo.append(path)
        return todo

    def write(self, path, array):
        """Write the output for input ``path`` (whole or not at all)."""
        target = self.output_path(path)
        try:
            if self.fmt == "npy":
                save_array(target, array)
            else:
                save_image(target, array)
        except (OSError, ValueError) as exc:
            self.fail(path, f"cannot write {target}: {exc}")
            return
        self.succeed()

    # -- the chain -----------------------------------------------------------------
    def process(self, inputs, compute, *, attach=None):
        """Every file named by ``inputs`` through ``compute``, its output written;
        the exit status.

        The files (see :func:`expand_inputs`) whose outputs exist are skipped
        (unless ``overwrite``), the rest are read ``chunk`` at a time, and each
        chunk's files are computed in one call per channel layout, or each alone
        when that call raises ValueError, so the bad file is the one named. Each
        output is written whole or not at all. ``compute(arrays)`` returns one
        output per array; with ``attach``, ``compute(arrays, values)`` gets the
        value ``attach(path)`` gave each file (a file for which it raises
        ValueError fails with that message).
        """
        for group in self._groups(self.pending(expand_inputs(inputs)), attach):
            for path, output in self._each_or_all(group, compute):
                self.write(path, output)
        return self.finish()

    def pairs(self, originals, filtered):
        """(original, filtered) paths paired by name, in name order; a file without
        its partner, or with the name of another file on its side, is reported."""
        originals, filtered = self._by_stem(originals), self._by_stem(filtered)
        for name in sorted(set(originals) ^ set(filtered)):
            side = "filtered" if name in originals else "original"
            self.fail(originals.get(name) or filtered.get(name), f"no {side} file named {name!r}")
        return [(originals[n], filtered[n]) for n in sorted(set(originals) & set(filtered))]

    def map_pairs(self, originals, filtered, compute):
        """``compute(originals, filtered)`` (arrays) on the :meth:`pairs`, as
        :meth:`process` does on files; the results by name."""
        results = {}
        for group in self._groups(self.pairs(originals, filtered)):
            for path, result in self._each_or_all(group, compute):
                results[stem(path)] = result
                self.succeed()
        return results

    def fold_pairs(self, originals, filtered, step, *, at_once=False):
        """``carried = step(originals, filtered, carried)`` on the :meth:`pairs`, one
        call per chunk and channel layout, in order; the last ``carried`` (None if
        no call succeeded). A call that raises ValueError fails all its pairs.
        ``at_once`` puts every pair in one chunk."""
        pairs = self.pairs(originals, filtered)
        if at_once:
            self.chunk = max(len(pairs), 1)
        carried = None
        for group in self._groups(pairs):
            try:
                carried = step(*_columns(group), carried)
            except ValueError as exc:
                for path, *_ in group:
                    self.fail(path, str(exc))
                continue
            self.succeed(len(group))
        return carried

    def _by_stem(self, specs):
        """Input files by name (stem); a second file with a name is reported, not used."""
        files = {}
        for path in expand_inputs(specs):
            if stem(path) in files:
                self.fail(path, f"another input, {files[stem(path)]}, has the name "
                                f"{stem(path)!r}")
            else:
                files[stem(path)] = path
        return files

    def _groups(self, items, attach=None):
        """The loaded :meth:`chunks` of ``items``, each split :func:`by_channels`;
        ``attach(path)`` adds a value to each item (see :meth:`process`)."""
        for loaded in self.chunks(items):
            if attach is not None:
                attached = []
                for path, *arrays in loaded:
                    try:
                        attached.append((path, *arrays, attach(path)))
                    except ValueError as exc:
                        self.fail(path, str(exc))
                loaded = attached
            yield from by_channels(loaded)

    def _each_or_all(self, items, compute):
        """``compute`` on the whole group; when that raises ValueError (one bad
        image), on each item alone, so only the bad ones fail. Returns (path, result)."""
        try:
            return list(zip((item[0] for item in items), compute(*_columns(items))))
        except ValueError:
            results = []
            for item in items:
                try:
                    results.append((item[0], compute(*_columns([item]))[0]))
                except ValueError as exc:   # the item alone was "[0]" of its list
                    self.fail(item[0], str(exc).replace("[0]", "", 1))
            return results

    # -- inputs --------------------------------------------------------------------
    def chunks(self, items):
        """Yield lists of (path, array, ...), ``chunk`` items at a time. An item is a
        path, or a tuple of paths read together (a pair); an item with a file that
        cannot be read is reported and left out."""
        self.total = max(self.total, len(items) + self.skipped + self.failed)
        for start in range(0, len(items), self.chunk):
            loaded = []
            for item in items[start:start + self.chunk]:
                paths = item if isinstance(item, tuple) else (item,)
                try:
                    arrays = [self._read(path) for path in paths]
                except _Unreadable:
                    continue
                loaded.append((paths[0], *arrays))
            yield loaded

    def _read(self, path):
        try:
            return read(path)
        except (ImageReadError, OSError, ValueError) as exc:
            self.fail(path, getattr(exc, "reason", str(exc)))
            raise _Unreadable from None


class _Unreadable(Exception):
    """A file of an item could not be read (already reported)."""


def by_channels(items):
    """Group (path, array, ...) items by layout, channel count and dtype: one compiled
    call each, and every image computed in its own dtype whatever else the chunk holds."""
    groups = {}
    for item in items:
        array = item[1]
        groups.setdefault((array.shape[2:], array.dtype), []).append(item)
    return list(groups.values())


def _columns(items):
    """(path, a, b, ...) items as the lists [a, ...], [b, ...]: what ``compute`` takes."""
    return [list(column) for column in zip(*items)][1:]
