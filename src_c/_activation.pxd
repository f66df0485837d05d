# Activations shared by the three kernels (SPEC section 2).
#
# The codes match ``revdeconv._validation.ACTIVATIONS``.  NaN passes through
# every activation unchanged (comparisons with NaN are false), exactly as
# ``np.clip`` / ``np.maximum`` do in the NumPy fallback.

from cython cimport floating

cdef enum:
    IDENTITY = 0
    RELU = 1
    CLIP = 2


cdef inline floating activate(floating z, int activation) noexcept nogil:
    if activation != IDENTITY and z < 0:
        return 0
    if activation == CLIP and z > 1:
        return 1
    return z
