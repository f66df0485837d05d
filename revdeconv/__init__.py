"""revdeconv: learn a convolution filter from an image pair, and undo it.

Implements Loc Nguyen's "Simple image deconvolution based on reverse image
convolution and backpropagation algorithm": :func:`convolve` filters an
image (stride = kernel size by default), :func:`learn_filter` learns the
filter back by SGD (or least squares), :func:`deconvolve` undoes it by the
paper's reverse solve, and :mod:`revdeconv.metrics` measures it.

Conventions: images are ``(H, W)`` or ``(H, W, C)`` (channels last), float32
stays float32, float64 stays float64; kernels are ``(kh, kw)`` or
``(C, kh, kw)``; the default activation is ``"clip"`` (to ``[0, 1]``).
"""

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
