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
from importlib.util import find_spec as _find_spec
from typing import TYPE_CHECKING as _TYPE_CHECKING

from . import filters, metrics
from ._backend import compiled_available
from ._config import config, show_config
from ._version import __version__
from .convolution import convolve
from .learning import FilterResult, learn_filter
from .reverse import DEFAULT_EPS, deconvolve, zoom

__all__ = [
    "convolve", "learn_filter", "FilterResult", "deconvolve", "zoom", "DEFAULT_EPS",
    "filters", "metrics", "compiled_available", "config", "show_config", "__version__",
]

#: Submodules imported on first use, as ``revdeconv.<name>``. (``restoration`` is
#: listed ahead of its module: a name whose module is absent is no attribute.)
_LAZY_SUBMODULES = ("batch", "bench_report", "benchmark", "cli", "data", "experiment", "io",
                    "kernel_file", "report", "restoration")

if _TYPE_CHECKING:      # what type checkers and IDEs see; nothing is imported at run time
    from . import (batch, bench_report, benchmark, cli, data, experiment, io,  # noqa: F401
                   kernel_file, report)


def __getattr__(name):
    """``revdeconv.<submodule>``, imported on first use (PEP 562)."""
    if name in _LAZY_SUBMODULES:
        try:
            return _import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":    # the module is there, its import failed
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    present = [name for name in _LAZY_SUBMODULES
               if _find_spec(f"{__name__}.{name}") is not None]
    return sorted(set(globals()) | set(present))
