# cython: language_level=3, cdivision=True
"""Strided valid cross-correlation with an activation (SPEC section 2).

The caller (``revdeconv._compiled_backend``) has validated every shape and
allocated the output; nothing here checks its input.
"""

from cython cimport floating
from cython.parallel cimport prange

from _activation cimport activate
from _batch cimport FIRST_ROW, OFFSET, WIDTH, batch_rows, fits, image_of_row


cdef void _convolve_row(const floating* src, Py_ssize_t src_row_len,
                        const floating* kernel, const floating* bias,
                        floating* dst, Py_ssize_t out_width, Py_ssize_t n_channels,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride_w,
                        const floating* tiled, Py_ssize_t tiled_len,
                        int activation) noexcept nogil:
    """One output row; ``src`` points at the first input row the row reads.

    The row is accumulated one kernel tap ``(i, j)`` at a time, in raster
    order, over all its pixels: every output pixel still sums its products
    in raster order (as the NumPy fallback does, so both round alike), but
    consecutive additions go to different pixels instead of forming one
    long dependency chain. At stride 1 (``tiled`` not NULL) the pixels a tap
    reads are contiguous, channels included, and ``tiled`` holds each tap's
    weights repeated along a row (``tiled[tap * tiled_len + q*C + c] =
    K[c, i, j]``), so the tap loop is a plain, vectorisable multiply-add.
    """
    cdef Py_ssize_t q, c, i, j, t
    cdef Py_ssize_t row_len = out_width * n_channels
    cdef Py_ssize_t step = stride_w * n_channels
    cdef const floating* taps
    cdef floating* out
    cdef floating weight
    cdef const floating* weights
    for t in range(row_len):
        dst[t] = 0
    if tiled != NULL:
        for i in range(kh):
            for j in range(kw):
                taps = src + i * src_row_len + j * n_channels
                weights = tiled + (i * kw + j) * tiled_len
                for t in range(row_len):
                    dst[t] += weights[t] * taps[t]
    else:
        for i in range(kh):
            for j in range(kw):
                for c in range(n_channels):
                    weight = kernel[(c * kh + i) * kw + j]
                    taps = src + i * src_row_len + j * n_channels + c
                    out = dst + c
                    for q in range(out_width):
                        out[q * n_channels] += weight * taps[q * step]
    for q in range(out_width):
        for c in range(n_channels):
            dst[q * n_channels + c] = activate(dst[q * n_channels + c] + bias[c], activation)


def convolve(const floating[::1] src, const Py_ssize_t[:, ::1] src_geom,
             const floating[:, :, ::1] kernel not None, const floating[::1] bias not None,
             floating[::1] dst, const Py_ssize_t[:, ::1] dst_geom,
             const floating[:, ::1] tiled, Py_ssize_t stride_h, Py_ssize_t stride_w,
             int activation, int n_threads):
    """Convolve a batch of channels-last images packed in ``src`` into ``dst``.

    ``src_geom`` and ``dst_geom`` describe the batch (see ``_batch.pxd``). The
    output rows of all images are shared out between the threads in one
    parallel loop. ``tiled`` is empty, or at stride 1 the kernel's taps
    repeated along the widest output row (see ``_convolve_row``).
    """
    cdef Py_ssize_t n_channels = kernel.shape[0], kh = kernel.shape[1], kw = kernel.shape[2]
    cdef Py_ssize_t n_images = dst_geom.shape[0]
    cdef const Py_ssize_t* out_geom = &dst_geom[0, 0]
    cdef Py_ssize_t row, n, p, src_row_len, dst_row_len
    cdef const floating* tiled_taps = &tiled[0, 0] if tiled.shape[0] > 0 else NULL
    assert fits(src_geom, n_channels, src.shape[0]) and fits(dst_geom, n_channels, dst.shape[0])
    assert bias.shape[0] == n_channels and src_geom.shape[0] == n_images
    with nogil:
        for row in prange(batch_rows(out_geom, n_images), num_threads=n_threads,
                          schedule="static"):
            n = image_of_row(out_geom, n_images, row)
            p = row - dst_geom[n, FIRST_ROW]
            src_row_len = src_geom[n, WIDTH] * n_channels
            dst_row_len = dst_geom[n, WIDTH] * n_channels
            _convolve_row(&src[src_geom[n, OFFSET] + p * stride_h * src_row_len], src_row_len,
                          &kernel[0, 0, 0], &bias[0],
                          &dst[dst_geom[n, OFFSET] + p * dst_row_len],
                          dst_geom[n, WIDTH], n_channels, kh, kw, stride_w,
                          tiled_taps, tiled.shape[1], activation)
