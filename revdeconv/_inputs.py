"""The files a command runs over, found once, before anything is written.

Files, folders and glob patterns are expanded in natural order; a folder's
subfolders are entered with ``recursive`` (and counted when they are not), a
``**`` in a pattern matches any depth, and the output folder is never searched
for inputs. :func:`refuse_overwriting` refuses outputs that are inputs, by the
file they are (links, hard links and case-insensitive names included),
:func:`footprint` says from a file's header how much memory its pixels take,
and :func:`sigint_deferred` keeps a Ctrl-C from landing between an output
written and counted.
"""

import contextlib
import glob
import os
import re
import signal
import stat
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ._codecs import png_values, tiff_bytes

#: Bytes of one pixel value as the commands compute it (float64).
VALUE_BYTES = 8
#: Bytes counted per byte of a file whose headers do not say its pixels' size: an
#: 8-bit image compressed 4:1 (more than lossless compression gives a photograph).
UNKNOWN_BYTES = 4 * VALUE_BYTES


def natural(path):
    """Sort key: "2.png" before "10.png" (the order matters where a kernel carries over)."""
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", os.path.basename(path))]


def readable_extensions():
    """Extensions Pillow can open (not those it can only save), and .npy."""
    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items()
            if fmt in Image.OPEN} | {".npy"}


def _identity(path):
    """The file ``path`` is, whatever its name (links, case): (device, inode), or None."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _within(folder, target):
    """Whether ``folder`` is the folder ``target`` (an identity) or lies under it."""
    current = os.path.abspath(folder)
    while True:
        if _identity(current) == target:
            return True
        parent = os.path.dirname(current)
        if parent == current:
            return False
        current = parent


@dataclass
class Inputs:
    """What :func:`expand` found: the files, each with the folder its output mirrors
    (``rel``, "" for none), the specs that found nothing, and the subfolders not entered."""

    files: list = field(default_factory=list)
    rel: dict = field(default_factory=dict)
    unmatched: list = field(default_factory=list)      # (spec, reason, sentence)
    subfolders: int = 0

    def add(self, path, rel=""):
        self.files.append(path)
        inside = rel not in ("", ".") and not rel.startswith("..") and not os.path.isabs(rel)
        self.rel.setdefault(path, rel if inside else "")


def expand(specs, *, recursive=False, skip=None):
    """Expand files, folders and glob patterns (see the module doc); ``skip`` is the
    output folder, never searched for inputs. A file named twice counts once; a name
    that is not there stays, to be reported as missing when it is read."""
    readable = readable_extensions()
    skip = None if skip is None else _identity(skip)     # None too when not made yet
    found = Inputs()
    for spec in specs:
        if os.path.isdir(spec):
            _scan(spec, found, readable, recursive, skip)
        elif glob.has_magic(spec):
            base = _fixed_prefix(spec)
            search_out = skip is None or _within(base, skip)
            matches = sorted((path for path in glob.glob(spec, recursive=True)
                              if os.path.isfile(path)
                              and (search_out or not _within(os.path.dirname(path), skip))),
                             key=natural)
            if not matches:
                found.unmatched.append((spec, "no file matches this pattern",
                                        f"no file matches {spec!r}"))
            for path in matches:
                found.add(path, os.path.relpath(os.path.dirname(path) or ".", base))
        else:
            found.add(spec)
    seen = set()
    found.files = [f for f in found.files
                   if not (os.path.abspath(f) in seen or seen.add(os.path.abspath(f)))]
    return found


def _fixed_prefix(pattern):
    """The folder part of a glob pattern before its first wildcard ("." if none)."""
    parts = []
    for part in os.path.normpath(pattern).split(os.sep)[:-1]:
        if glob.has_magic(part):
            break
        parts.append(part)
    return os.sep.join(parts) or (os.sep if pattern.startswith(os.sep) else ".")


def _scan(folder, found, readable, recursive, skip):
    """The image files of ``folder`` (hidden ones left out), in natural order; with
    ``recursive`` those of its subfolders too, each after its parent's files."""
    before, others, left_out = len(found.files), 0, 0
    for current, subfolders, names in os.walk(folder):
        subfolders[:] = sorted((name for name in subfolders if not name.startswith(".")
                                and (skip is None
                                     or _identity(os.path.join(current, name)) != skip)),
                               key=natural)
        rel = os.path.relpath(current, folder)
        for name in sorted(names, key=natural):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in readable:
                found.add(os.path.join(current, name), rel)
            else:
                others += 1
        if not recursive:
            left_out = len(subfolders)
            found.subfolders += left_out
            break
    if len(found.files) == before:
        details = []
        if others:
            details.append(f"{others} file{'s' * (others != 1)} of other kinds")
        if left_out:
            details.append(f"{_subfolders(left_out)} not entered: --recursive enters "
                           f"{'them' if left_out != 1 else 'it'}")
        detail = f" ({', '.join(details)})" if details else ""
        found.unmatched.append((folder, f"no image files in this folder{detail}",
                                f"no image files in {folder!r}{detail}"))


def _subfolders(count):
    return f"{count} subfolder{'s' * (count != 1)}"


def subfolder_note(count):
    """The summary's words for subfolders not entered ("" when none)."""
    them = "them" if count != 1 else "it"
    return f"; {_subfolders(count)} not entered (--recursive enters {them})" if count else ""


def refuse_overwriting(outputs, inputs):
    """Raise ValueError when an output (``(input, output path)`` pairs) is the same
    file as one of ``inputs``: through a link, a hard link or a case-insensitive
    name, whatever the flags. Nothing has been written when this runs."""
    existing = {}
    for path in inputs:
        try:
            status = os.stat(path)
        except OSError:                 # missing: reported when it is read
            continue
        existing.setdefault((status.st_dev, status.st_ino), path)
    for source, target in outputs:
        try:
            status = os.stat(target)
        except OSError:                 # not there yet: not an input
            continue
        victim = existing.get((status.st_dev, status.st_ino))
        if victim is not None:
            if source is None:
                what = f"--out {target} would replace the input {victim}"
            elif victim == source:
                what = f"the output {target} would replace the input it is made from"
            else:
                what = f"the output {target} (of {source}) would replace the input {victim}"
            raise ValueError(f"{what}: nothing was written; give --out a place outside "
                             f"the inputs")


def resolved(target, folders):
    """``(real path, whether it exists)`` of the file ``target``, from one ``lstat``: its
    folder's real path (computed once, kept in ``folders``) and its name, unless the
    file is a link (then followed)."""
    try:
        link = stat.S_ISLNK(os.lstat(target).st_mode)
    except OSError:                     # not there (or not reachable): as realpath says
        link, exists = False, False
    else:
        exists = True
    if link:
        return os.path.realpath(target), os.path.exists(target)
    folder, name = os.path.split(target)
    if folder not in folders:
        folders[folder] = os.path.realpath(folder)
    return os.path.join(folders[folder], name), exists


def case_insensitive(folder):
    """Whether file names in ``folder`` ignore case (macOS, Windows): a probe file."""
    try:
        with tempfile.NamedTemporaryFile(prefix=".revdeconv-case-", dir=folder) as probe:
            return os.path.exists(os.path.join(folder, os.path.basename(probe.name).upper()))
    except OSError:
        return False


def expand_inputs(specs, *, recursive=False):
    """Files named by ``specs``: files, folders (their image files, hidden ones
    left out) and glob patterns, each in natural order; a name that is not there
    stays, to be reported as missing. (:func:`expand` says more.)"""
    return expand(specs, recursive=recursive).files


def footprint(path):
    """Bytes the pixels of the file at ``path`` take as the commands compute them
    (float64; float32 ``.npy`` and float TIFFs stay float32), from its headers (a
    TIFF's through tifffile, every page): nothing is decoded. When no header says
    (tifffile missing for a TIFF Pillow cannot open, a damaged file), the file's
    size times :data:`UNKNOWN_BYTES`; 0 for a missing file."""
    try:
        png = png_values(path)
        if png is not None:
            return png * VALUE_BYTES
        if path.lower().endswith(".npy"):
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            itemsize = 4 if array.dtype == np.float32 else VALUE_BYTES
            return int(array.size) * itemsize
        counted = tiff_bytes(path)
        if counted is not None:
            return counted
        with Image.open(path) as image:
            bands = 4 if image.mode in ("P", "PA") else len(image.getbands())
            pages = getattr(image, "n_frames", 1)
            return image.width * image.height * bands * VALUE_BYTES * pages
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        try:
            return os.path.getsize(path) * UNKNOWN_BYTES
        except OSError:
            return 0


def reason(exc):
    """An error in a user's words: an OSError's own (not the temporary file it names)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


@contextlib.contextmanager
def sigint_deferred():
    """Ctrl-C waits until the block is over (a file written and counted), then raises."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught = []
    signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt
