"""The command line's option types, checks and messages.

Every option is checked once, when the command line is read (an argparse
``type``), before any file is read, and a bad value is one line in a user's
words: ``argument --threads: expected ..., got '0'``. The places a command
writes to are checked before it reads anything (:func:`check_out_folder`,
:func:`check_out_file`).
"""

import argparse
import contextlib
import math
import os
import re
import sys
import warnings

from . import filters
from ._threads import MAX_THREADS

#: The default budget of pixels in flight (``--memory``): 1 GiB.
DEFAULT_MEMORY = 2**30

# --memory units: SI with B (kB, MB, GB: powers of 1000), IEC (KiB, MiB, GiB) and the
# bare letters of docker and java (k, m, g: powers of 1024).
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def _bad(expected, value):
    return argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")


def whole_number(value):
    """A whole number of at least 1 (``--epochs``, ``--chunk``)."""
    try:
        number = int(value)
    except ValueError:
        raise _bad("a whole number of at least 1", value) from None
    if number < 1:
        raise _bad("a whole number of at least 1", value)
    return number


def png_level(value):
    """``--png-compression``: zlib's level, 0 to 9."""
    if value.strip() not in [str(level) for level in range(10)]:
        raise _bad("a zlib level from 0 (no compression) to 9 (the smallest files)", value)
    return int(value)


def pair(value):
    """One whole number or two, ``3``, ``3x2`` or ``3,2`` (rows, columns): a stride
    or a kernel size, as the Python functions take it.

    Examples
    --------
    >>> pair("3"), pair("3x2"), pair("3,2")
    (3, (3, 2), (3, 2))
    """
    parts = re.split(r"\s*[x,]\s*", value.strip().lower())
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or min(numbers) < 1:
        raise _bad("a whole number of at least 1, or two as ROWSxCOLS (3x2 or 3,2)", value)
    return numbers[0] if len(numbers) == 1 else tuple(numbers)


def size(value):
    """``--output-size HxW``."""
    try:
        rows, cols = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise _bad("HxW, e.g. 180x250", value) from None
    if rows < 1 or cols < 1:
        raise _bad("HxW with both at least 1, e.g. 180x250", value)
    return rows, cols


def threads(value):
    """``--threads N``: 1 or more, or a negative count taken back from all cores."""
    expected = (f"a number of threads from 1 to {MAX_THREADS}, or -1 for all cores, "
                "-2 for all but one")
    try:
        number = int(value)
    except ValueError:
        raise _bad(expected, value) from None
    if number == 0 or number > MAX_THREADS:
        raise _bad(expected, value)
    return number


def _number(value, expected):
    try:
        number = float(value)
    except ValueError:
        raise _bad(expected, value) from None
    if not math.isfinite(number):
        raise _bad(expected, value)
    return number


def positive_number(value):
    """A finite number above 0 (``--lr``)."""
    number = _number(value, "a number above 0, e.g. 0.1")
    if number <= 0:
        raise _bad("a number above 0, e.g. 0.1", value)
    return number


def non_negative_number(value):
    """A finite number of at least 0 (``--eps``)."""
    number = _number(value, "a number of at least 0, e.g. 1e-6")
    if number < 0:
        raise _bad("a number of at least 0, e.g. 1e-6", value)
    return number


def memory(value):
    """``--memory``: bytes, as ``268435456``, ``256MB``, ``256MiB``, ``1GiB`` or ``1g``.

    Examples
    --------
    >>> memory("256MB"), memory("256MiB"), memory("1GiB")
    (256000000, 268435456, 1073741824)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", value.lower())
    if not match or match.group(2) not in _UNITS or float(match.group(1)) <= 0:
        raise _bad("an amount of memory above 0: bytes, or with a unit as in 256MB, "
                   "512MiB or 1GiB", value)
    return max(1, int(float(match.group(1)) * _UNITS[match.group(2)]))


def filter_name(value):
    """One of the paper's filters by name (``--compare``)."""
    try:
        filters.get(value)
    except ValueError:
        raise _bad(f"a filter name: {', '.join(filters.NAMES)}", value) from None
    return value


def human_bytes(count):
    """``1.5 GiB``, ``256 MiB``: a number of bytes as a user reads it."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.4g} {unit}"
    return f"{count} bytes"


def check_out_folder(path):
    """``--out DIR`` must be a folder or not exist yet (it is made); raises ValueError."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--out: {path!r} is a file, not a folder")


def check_out_file(path):
    """``--out FILE``: its folder must exist and it must not be a folder; raises ValueError."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"--out: {path!r} is a folder; give a file name, e.g. kernel.json")
    if not os.path.isdir(folder):
        raise ValueError(f"--out: there is no folder {os.path.dirname(path)!r} to write "
                         f"{os.path.basename(path)!r} into")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"--out: the folder {os.path.dirname(path) or '.'!r} is not writable")


def progress(stream):
    """``update(done, total, label)``: a one-line bar on a terminal; elsewhere (a pipe,
    a log) a line at each tenth of the way and at the end."""
    tty = stream.isatty()

    def update(done, total, label):
        if tty:
            filled = 30 * done // total
            stream.write(f"\r[{'#' * filled}{'-' * (30 - filled)}] {done}/{total} "
                         f"{label:<24}" + ("\n" if done == total else ""))
        elif done == total or done % max(1, total // 10) == 0:
            stream.write(f"{done}/{total} {label.strip()}\n")
        stream.flush()
    return update


@contextlib.contextmanager
def warnings_as_lines(command):
    """Within the block, a warning is one line, ``revdeconv COMMAND: warning: ...``,
    without the source line Python shows."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"revdeconv {command}: warning: {message}", file=file or sys.stderr)
    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
