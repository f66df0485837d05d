"""The compiled helpers of the file and memory layer, imported once: the PNG row
filters (``_png_filter``), the stored levels (``_levels``) and the cache of array
memory (``_block_cache``). Each is None when it could not be imported (no compiled
extension) or when ``REVDECONV_BACKEND=numpy`` asks for the NumPy fallback; the
code that uses them then does the same in NumPy (the same bytes and samples) or
without the cache. The kernels' own choice is :mod:`revdeconv._backend`'s.
"""

import importlib
import os

#: The environment variable that asks for the NumPy fallback (read once, at import).
ENV_VAR = "REVDECONV_BACKEND"


def numpy_requested():
    """Whether ``REVDECONV_BACKEND`` asks for the NumPy fallback."""
    return os.environ.get(ENV_VAR, "").strip().lower() == "numpy"


def _helper(name):
    if numpy_requested():
        return None
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None


png_filter = _helper("_png_filter")
levels = _helper("_levels")
block_cache = _helper("_block_cache")
