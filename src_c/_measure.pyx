# cython: language_level=3, cdivision=True
"""Mean absolute difference of pairs of images (the paper's MAE, SPEC section 5).

The caller (``revdeconv._compiled_backend``) has validated every shape; nothing
here checks its input.
"""

from cpython.mem cimport PyMem_Free
from libc.math cimport fabs
from cython cimport floating
from cython.parallel cimport prange

from _batch cimport FIELDS, HEIGHT, WIDTH, input_pointers


cdef double _mean_abs_diff(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    """Mean of ``|a - b|``, the difference taken in double as ``metrics.mae`` takes it.

    Four partial sums, so the additions do not wait on each other.
    """
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t t = 0
    while t + 4 <= n:
        s0 += fabs(<double>a[t] - <double>b[t])
        s1 += fabs(<double>a[t + 1] - <double>b[t + 1])
        s2 += fabs(<double>a[t + 2] - <double>b[t + 2])
        s3 += fabs(<double>a[t + 3] - <double>b[t + 3])
        t += 4
    while t < n:
        s0 += fabs(<double>a[t] - <double>b[t])
        t += 1
    return ((s0 + s1) + (s2 + s3)) / n


cdef int _mean_abs_diffs(list a, list b, const Py_ssize_t[:, ::1] geom, double[::1] out,
                         Py_ssize_t n_channels, int n_threads, floating kind) except -1:
    """``mean_abs_diff`` in one float type (``kind``'s; its value is not used)."""
    cdef Py_ssize_t n, n_images = geom.shape[0]
    cdef const Py_ssize_t* g = &geom[0, 0]
    cdef const floating** first = NULL
    cdef const floating** second = NULL
    try:
        input_pointers(a, geom, n_channels, &first)
        input_pointers(b, geom, n_channels, &second)
        with nogil:
            for n in prange(n_images, num_threads=n_threads, schedule="dynamic"):
                out[n] = _mean_abs_diff(first[n], second[n],
                                        g[n * FIELDS + HEIGHT] * g[n * FIELDS + WIDTH]
                                        * n_channels)
    finally:
        PyMem_Free(first)
        PyMem_Free(second)
    return 0


def mean_abs_diff(list a not None, list b not None, const Py_ssize_t[:, ::1] geom,
                  double[::1] out, Py_ssize_t n_channels, int n_threads):
    """``out[n]``: the MAE of image ``n`` of ``a`` against image ``n`` of ``b``.

    ``a`` and ``b`` hold one ``(H, W, C)`` float32 or float64 array per image,
    all of one dtype, read in place (writable or not), and share the geometry
    ``geom`` (see ``_batch.pxd``); the images are shared out between the threads.
    """
    assert geom.shape[1] == FIELDS and out.shape[0] == geom.shape[0] == len(a) > 0
    if a[0].itemsize == 4:          # the float type of the images (a mismatch raises)
        _mean_abs_diffs[float](a, b, geom, out, n_channels, n_threads, 0)
    else:
        _mean_abs_diffs[double](a, b, geom, out, n_channels, n_threads, 0)
