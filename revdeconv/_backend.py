"""The one place that decides which implementation runs, and with how many threads.

At import, the compiled extension is tried; if it cannot be imported the
package still works through the NumPy fallback and records why.
``REVDECONV_BACKEND=numpy`` (read once, at import) forces the fallback;
every public kernel function also takes ``backend=None | "compiled" | "numpy"``.
"""

import contextlib
import importlib
import os
import threading
import warnings

from . import _numpy_backend
from ._validation import as_int

COMPILED_MODULES = ("_openmp_helpers", "_convolve", "_learn", "_reverse", "_measure")

try:
    # One by one, so that a missing module is named in the error.
    for _name in COMPILED_MODULES:
        importlib.import_module(f"{__package__}.{_name}")
    from . import _compiled_backend, _openmp_helpers
except ImportError as exc:  # no compiled extension: fall back, remember why
    _compiled_backend = _openmp_helpers = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
else:
    IMPORT_ERROR = None

BACKENDS = ("compiled", "numpy")
#: More threads than this is a mistake (OpenMP reserves a stack for each one).
MAX_THREADS = 1024
ENV_VAR = "REVDECONV_BACKEND"


def _default_backend():
    requested = os.environ.get(ENV_VAR, "").strip().lower()
    if requested not in ("",) + BACKENDS:
        warnings.warn(f"{ENV_VAR}={requested!r} is not one of {BACKENDS}; ignoring it",
                      RuntimeWarning, stacklevel=3)
        requested = ""
    if requested == "numpy":
        return "numpy"
    if IMPORT_ERROR is not None:
        warnings.warn(f"revdeconv: the compiled extension could not be imported "
                      f"({IMPORT_ERROR}); using the slower NumPy fallback. "
                      f"revdeconv.show_config() says more.", RuntimeWarning, stacklevel=3)
        return "numpy"
    return "compiled"


DEFAULT_BACKEND = _default_backend()


def compiled_available():
    """Whether the compiled extension was imported.

    Returns
    -------
    bool
        True when ``backend="compiled"`` can be used.

    Examples
    --------
    >>> import revdeconv
    >>> isinstance(revdeconv.compiled_available(), bool)
    True
    """
    return IMPORT_ERROR is None


def openmp_enabled():
    """Whether the compiled extension was built with OpenMP (False without the extension)."""
    return _openmp_helpers is not None and _openmp_helpers.OPENMP_ENABLED


def get_backend(backend=None):
    """Return the implementation module for ``backend`` (None: the default).

    Raises ValueError for an unknown name and RuntimeError when the compiled
    backend is asked for but could not be imported.
    """
    if backend is None:
        backend = DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise ValueError(f"backend must be None, 'compiled' or 'numpy', got {backend!r}")
    if backend == "numpy":
        return _numpy_backend
    if _compiled_backend is None:
        raise RuntimeError(f"backend='compiled' was asked for but the compiled extension "
                           f"could not be imported: {IMPORT_ERROR}")
    return _compiled_backend


def effective_n_threads(n_threads=None):
    """Resolve ``n_threads`` to the number of OpenMP threads a kernel will use.

    ``None`` means OpenMP's default, which honours ``OMP_NUM_THREADS``;
    a negative count is taken back from that default (``-1``: all of them,
    ``-2``: all but one, never fewer than one); 0 and more than
    ``MAX_THREADS`` are errors. A serial build
    (or the NumPy fallback) always runs on one thread.

    Examples
    --------
    >>> from revdeconv._backend import effective_n_threads
    >>> effective_n_threads(1)
    1
    """
    if n_threads is not None:
        n_threads = as_int(n_threads, "n_threads")
        if n_threads == 0:
            raise ValueError("n_threads must not be 0 (None means OpenMP's default)")
        if n_threads > MAX_THREADS:
            raise ValueError(f"n_threads must be at most {MAX_THREADS}, got {n_threads}")
    if not openmp_enabled():
        return 1
    default = _openmp_helpers.max_threads()
    if n_threads is None:
        return default
    n_threads = int(n_threads)
    return n_threads if n_threads > 0 else max(default + 1 + n_threads, 1)



# Threads held by compiled calls now running, from any Python thread.
_threads_in_use = 0
_threads_lock = threading.Lock()


@contextlib.contextmanager
def thread_share(n_threads, work=None, work_per_thread=1):
    """Hold threads for one compiled call: yields how many it may use.

    At most ``n_threads`` (from :func:`effective_n_threads`), and:

    - no more than ``work / work_per_thread`` (at least one), so that a small
      image does not pay for starting threads it cannot keep busy;
    - when compiled calls run at once from several Python threads, no more
      than what OpenMP's default count (the cores, or ``OMP_NUM_THREADS``)
      leaves over after the threads the others hold, and at least one: the
      calls share the cores instead of oversubscribing them.

    The kernels give the same results on any number of threads, so this
    changes only the time a call takes.

    Examples
    --------
    >>> from revdeconv._backend import thread_share
    >>> with thread_share(4, work=10, work_per_thread=100) as n:
    ...     n
    1
    """
    global _threads_in_use
    if work is not None:
        n_threads = min(n_threads, max(1, work // work_per_thread))
    with _threads_lock:
        budget = _openmp_helpers.max_threads() if openmp_enabled() else 1
        if _threads_in_use:
            n_threads = max(1, min(n_threads, budget - _threads_in_use))
        _threads_in_use += n_threads
    try:
        yield n_threads
    finally:
        with _threads_lock:
            _threads_in_use -= n_threads
