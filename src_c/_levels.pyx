# cython: language_level=3
"""Float images to the integer samples a file stores (``revdeconv.io.levels``):
``floor(clip(v, 0, 1) * (2**bits - 1) + 0.5)`` in double, as ``save_image``
computes it, with the check that every value is finite in the same pass, the GIL
released.
The NumPy expression in ``revdeconv.io`` gives the same samples.

The caller has checked the shapes; nothing here checks its input.
"""

from libc.math cimport floor, isfinite
from cython cimport floating

ctypedef fused sample:
    unsigned char
    unsigned short


def stored_levels(const floating[::1] values, sample[::1] out, double top):
    """``out`` = ``values`` at ``top + 1`` levels (255 or 65535), rounded half up
    after clipping to [0, 1]; whether every value was finite (when not, ``out``
    holds garbage and is not to be used)."""
    cdef Py_ssize_t i, n = values.shape[0]
    cdef double v
    cdef bint finite = True
    with nogil:
        for i in range(n):
            v = values[i]
            if not isfinite(v):
                finite = False
                v = 0
            v = 0 if v < 0 else (1 if v > 1 else v)
            v = v * top
            v = v + 0.5
            out[i] = <sample> floor(v)
    return finite
