# cython: language_level=3, cdivision=True
"""Mean absolute difference of pairs of images (the paper's MAE, SPEC section 5).

The caller (``revdeconv._compiled_backend``) has validated every shape; nothing
here checks its input.
"""

from libc.math cimport fabs
from cython cimport floating
from cython.parallel cimport prange

from _batch cimport FIELDS, HEIGHT, OFFSET, WIDTH, fits


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


def mean_abs_diff(const floating[::1] a, const floating[::1] b,
                  const Py_ssize_t[:, ::1] geom, double[::1] out, Py_ssize_t n_channels,
                  int n_threads):
    """``out[n]``: the MAE of image ``n`` of ``a`` against image ``n`` of ``b``.

    Both batches share the geometry ``geom`` (see ``_batch.pxd``); the images
    are shared out between the threads.
    """
    cdef Py_ssize_t n_images = geom.shape[0], n
    cdef const Py_ssize_t* g = &geom[0, 0]
    assert fits(geom, n_channels, a.shape[0]) and fits(geom, n_channels, b.shape[0])
    assert out.shape[0] == n_images
    with nogil:
        for n in prange(n_images, num_threads=n_threads, schedule="dynamic"):
            out[n] = _mean_abs_diff(&a[g[n * FIELDS + OFFSET]], &b[g[n * FIELDS + OFFSET]],
                                    g[n * FIELDS + HEIGHT] * g[n * FIELDS + WIDTH] * n_channels)
