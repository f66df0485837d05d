"""Running a command over many files: inputs, chunks, failures, outputs.

Nothing is lost and nothing is half-written: a file that cannot be read (or
processed) is reported with its reason and skipped, every other file is still
processed, outputs are written to a temporary name and renamed, existing
outputs are skipped unless ``overwrite``, and the exit status says whether
anything failed. Files are loaded ``chunk`` at a time, so memory stays bounded
by the chunk, not by the folder.
"""

import glob
import os
import re
import sys

import numpy as np
from PIL import Image

from .io import ImageReadError, load_array, load_image, save_array, save_image

FORMATS = {"png": ".png", "tiff": ".tiff", "npy": ".npy"}
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


class Run:
    """One command over many files: counts, reports, progress and outputs."""

    def __init__(self, command, *, out=None, fmt="png", overwrite=False, quiet=False,
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


def each_or_all(run, items, compute):
    """``compute(items)`` on the whole group; when that raises ValueError (one bad
    image), on each item alone, so only the bad ones fail. Returns (item, result)."""
    try:
        return list(zip(items, compute(items)))
    except ValueError:
        results = []
        for item in items:
            try:
                results.append((item, compute([item])[0]))
            except ValueError as exc:   # the item alone was "[0]" of its list
                run.fail(item[0], str(exc).replace("[0]", "", 1))
        return results
