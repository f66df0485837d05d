"""revdeconv: learn a convolution filter from an image pair, and undo it.

Implements Loc Nguyen's "Simple image deconvolution based on reverse image
convolution and backpropagation algorithm": :func:`convolve` filters an
image (stride = kernel size by default), :func:`learn_filter` learns the
filter back by SGD (or least squares), :func:`deconvolve` undoes it by the
paper's reverse solve, and :mod:`revdeconv.metrics` measures it.

Conventions: images are ``(H, W)`` or ``(H, W, C)`` (channels last), float32
stays float32, float64 stays float64; kernels are ``(kh, kw)`` or
``(C, kh, kw)``; the default activation is ``"clip"`` (to ``[0, 1]``).

Every public submodule is an attribute after ``import revdeconv``
(``revdeconv.batch``, ``.io``, ``.data``, ``.experiment``, ``.report``,
``.kernel_file``, ``.benchmark``, ...); those not needed by the functions above
are imported on first use (PEP 562, as scikit-image does), so that
``import revdeconv`` stays fast.

Examples
--------
>>> import revdeconv
>>> len(revdeconv.data.samples())      # revdeconv.data is imported here
10
"""

from importlib import import_module as _import_module
from typing import TYPE_CHECKING as _TYPE_CHECKING

from . import filters, metrics
from ._backend import compiled_available
from ._config import config, show_config
from ._version import __version__
from .convolution import convolve
from .learning import FilterResult, learn_filter
from .restoration import restore
from .reverse import DEFAULT_EPS, deconvolve, zoom

__all__ = [
    "convolve", "learn_filter", "FilterResult", "deconvolve", "zoom", "DEFAULT_EPS", "restore",
    "filters", "metrics", "compiled_available", "config", "show_config", "__version__",
]

if _TYPE_CHECKING:      # what type checkers and IDEs see; nothing is imported at run time
    from . import (batch, bench_report, benchmark, cli, data, experiment, io,  # noqa: F401
                   kernel_file, report)


def __getattr__(name):
    """``revdeconv.<submodule>``: any public submodule, imported on first use (PEP 562)."""
    if not name.startswith("_"):        # never __main__ (the command) or private modules
        try:
            return _import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":    # the module is there, its import failed
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    from pkgutil import iter_modules        # (here: pkgutil takes a while to import)
    public = [module.name for module in iter_modules(__path__)
              if not module.name.startswith("_")]
    return sorted(set(globals()) | set(public))
