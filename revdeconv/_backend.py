"""The one place that decides which implementation runs.

At import, the compiled extension is tried; if it cannot be imported the
package still works through the NumPy fallback and records why.
``REVDECONV_BACKEND=numpy`` (read once, at import) forces the fallback;
every public kernel function also takes ``backend=None | "compiled" | "numpy"``.
"""

import importlib
import os
import warnings

from . import _native, _numpy_backend, _restore_numpy

COMPILED_MODULES = ("_openmp_helpers", "_convolve", "_learn", "_reverse", "_measure",
                    "_restore")

try:
    # One by one, so that a missing module is named in the error.
    for _name in COMPILED_MODULES:
        importlib.import_module(f"{__package__}.{_name}")
    from . import _compiled_backend, _restore_compiled
except ImportError as exc:  # no compiled extension: fall back, remember why
    _compiled_backend = _restore_compiled = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
else:
    IMPORT_ERROR = None

BACKENDS = ("compiled", "numpy")
ENV_VAR = _native.ENV_VAR        # (the file and memory helpers follow it: _native)


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


def get_restore_backend(backend=None):
    """The passes of :func:`revdeconv.restore` for ``backend``, chosen as :func:`get_backend`
    chooses: ``revdeconv._restore_compiled`` or ``revdeconv._restore_numpy``."""
    return _restore_numpy if get_backend(backend) is _numpy_backend else _restore_compiled
