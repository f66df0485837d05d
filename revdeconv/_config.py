"""``show_config()``: how this installation computes."""

import os
import platform
import sys

import numpy as np

from . import _backend, _threads
from ._version import __version__


def _build_info():
    """What setup.py recorded about OpenMP when the extensions were built."""
    try:
        from . import _build_info as info
    except ImportError:
        return None
    return {"openmp": info.OPENMP, "flags": info.OPENMP_FLAGS, "note": info.OPENMP_NOTE,
            "compiler": info.COMPILER, "debug": getattr(info, "DEBUG", False),
            "portable": getattr(info, "PORTABLE", False)}


def config():
    """The facts ``show_config`` prints, as a dict.

    Examples
    --------
    >>> import revdeconv
    >>> info = revdeconv.config()
    >>> info["backend"] in ("compiled", "numpy"), isinstance(info["openmp"], bool)
    (True, True)
    """
    return {
        "version": __version__,
        "backend": _backend.DEFAULT_BACKEND,
        "compiled": _backend.compiled_available(),
        "openmp": _threads.openmp_enabled(),
        "threads": _threads.effective_n_threads(None),
        "import_error": _backend.IMPORT_ERROR,
        "build": _build_info(),
        "env": {name: os.environ.get(name) for name in
                (_backend.ENV_VAR, "OMP_NUM_THREADS")},
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def _describe_build(build):
    if build is None:
        return "no build record (running from a source tree?)"
    flags = f" with {build['flags']}" if build["flags"] else ""
    return (f"{'OpenMP' + flags if build['openmp'] else 'serial'}"
            f"{', DEBUG (bounds checks, assertions, -O0)' if build['debug'] else ''}"
            f"{', PORTABLE (plain C loops, no vector types)' if build['portable'] else ''} "
            f"({build['note']}; compiler {build['compiler']})")


def show_config(file=None):
    """Print the backend in use, whether OpenMP was compiled in, the thread count
    and, if the compiled extension is missing, why.

    Examples
    --------
    >>> import revdeconv
    >>> revdeconv.show_config()  # doctest: +ELLIPSIS
    revdeconv ...
    backend: ...
    """
    info = config()
    env = ", ".join(f"{k}={v}" for k, v in info["env"].items() if v is not None) or "none set"
    lines = [
        f"revdeconv {info['version']}",
        f"backend: {info['backend']}",
        f"compiled extension: {'available' if info['compiled'] else 'NOT available'}",
        f"built with OpenMP: {'yes' if info['openmp'] else 'no'}",
        f"build: {_describe_build(info['build'])}",
        f"threads in use: {info['threads']}",
        f"environment: {env}",
        f"numpy {info['numpy']}, python {info['python']}, {info['platform']}",
    ]
    if info["import_error"]:
        lines.append(f"import error: {info['import_error']}")
    print("\n".join(lines), file=file)
