"""Files written whole or not at all: :func:`write_atomically` writes to a temporary
name beside the file and renames it into place; :func:`remove_stale_temporaries`
removes what a process killed while writing left behind. Both are
:mod:`revdeconv.io`'s (they are used and documented from there).
"""

import os
import re
import secrets

__all__ = ["write_atomically", "remove_stale_temporaries"]


def write_atomically(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to
    ``path``: the file appears whole or not at all (an error or Ctrl-C midway
    leaves the old file, or none, and no temporary file).

    The temporary file, ``.<name>.revdeconv-<8 hex digits>``, is created with mode
    ``0o666`` and the operating system applies the umask, as for any new file: the
    umask is never read, so no process-wide state changes (threads write at once
    safely). A process killed midway leaves it behind; :func:`remove_stale_temporaries`
    removes it.
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    handle, temporary = _create_temporary(folder, name)
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


_TEMPORARY = re.compile(r"\.(.+)\.revdeconv-[0-9a-f]{8}\Z", re.DOTALL)


def _create_temporary(folder, name):
    """A new file ``.<name>.revdeconv-<random>`` in ``folder``: (descriptor, path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = os.path.join(folder, f".{name}.revdeconv-{secrets.token_hex(4)}")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:         # (one in 4 billion: draw again)
            continue
    raise FileExistsError(f"no free temporary name for {name!r} in {folder!r}")


def remove_stale_temporaries(paths, before):
    """Remove the temporary files :func:`write_atomically` left beside ``paths`` (a
    process killed while writing) last modified before ``before`` (``time.time()``):
    only those, never another file. Returns the paths removed.

    Examples
    --------
    >>> import os, tempfile, time
    >>> from revdeconv.io import remove_stale_temporaries
    >>> folder = tempfile.mkdtemp()
    >>> left = os.path.join(folder, ".a.png.revdeconv-0123abcd")
    >>> open(left, "wb").close()
    >>> [os.path.basename(p) for p in remove_stale_temporaries(
    ...     [os.path.join(folder, "a.png")], time.time() + 1)]
    ['.a.png.revdeconv-0123abcd']
    """
    names = {}
    for path in paths:
        folder, name = os.path.split(os.path.abspath(os.fspath(path)))
        names.setdefault(folder, set()).add(name)
    removed = []
    for folder, wanted in names.items():
        try:
            entries = os.listdir(folder)
        except OSError:                 # no folder yet: nothing was left there
            continue
        for entry in entries:
            match = _TEMPORARY.match(entry)
            if not match or match.group(1) not in wanted:
                continue
            temporary = os.path.join(folder, entry)
            try:
                if os.lstat(temporary).st_mtime < before:
                    os.unlink(temporary)
                    removed.append(temporary)
            except OSError:             # gone already, or not ours to remove
                continue
    return removed
