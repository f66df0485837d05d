# cython: language_level=3, cdivision=True
"""Strided valid cross-correlation with an activation (SPEC section 2).

The caller (``revdeconv._compiled_backend``) has validated every shape and
allocated the output; nothing here checks its input.
"""

from cpython.mem cimport PyMem_Free
from cython cimport floating
from cython.parallel cimport prange, threadid

from _simd cimport activate, correlate_taps, CLIP, IDENTITY, RELU
from _batch cimport (FIELDS, FIRST_ROW, WIDTH, batch_rows, image_of_row, image_pointers,
                     input_pointers)

# A hint to fetch a cache line ahead of its use (for writing when ``write``), where
# the compiler has one; nothing elsewhere.
cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define revdeconv_prefetch(p, write) __builtin_prefetch((p), (write), 3)
    #else
    #define revdeconv_prefetch(p, write) ((void)0)
    #endif
    """
    void prefetch "revdeconv_prefetch" (const void* p, int write) noexcept nogil

cdef enum:
    STRIDED_CHUNK = 64
    # The stride-1 row prefetches its input and output this many stretches ahead:
    # the hardware prefetcher alone left the loop waiting on memory (4k RGB float32,
    # SHARPEN, 1 thread, out=: 12.2 ms without, 8.8 ms with; 2 to 8 stretches ahead
    # measured alike).
    PREFETCH_AHEAD = 4

#: The code every kernel takes for each activation name (``_validation.ACTIVATIONS``):
#: the C enum of ``_simd.h``.
ACTIVATION_CODES = {"identity": IDENTITY, "relu": RELU, "clip": CLIP}


cdef bint _convolve_row(const floating* src, Py_ssize_t src_row_len,
                        const floating* kernel, const floating* bias,
                        floating* dst, Py_ssize_t out_width, Py_ssize_t n_channels,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride_w,
                        int activation) noexcept nogil:
    """One output row at any stride; ``src`` points at the first input row it reads.

    The row is accumulated one kernel tap ``(i, j)`` at a time, in raster
    order, over all its pixels: every output pixel sums its products in raster
    order (as the NumPy fallback does, so both round alike), and consecutive
    additions go to different pixels instead of forming one dependency chain.
    True when one of the sums (before the bias) was not finite.
    """
    cdef Py_ssize_t q, c, i, j, t, first = 0, n
    cdef Py_ssize_t row_len = out_width * n_channels
    cdef Py_ssize_t step = stride_w * n_channels
    cdef const floating* taps
    cdef floating* out
    cdef floating weight, z
    cdef bint found = False
    for t in range(row_len):
        dst[t] = 0
    # A stretch of STRIDED_CHUNK output pixels at a time, so that the input
    # it reads stays in the first-level cache across the kh * kw * C passes.
    while first < out_width:
        n = min(STRIDED_CHUNK, out_width - first)
        for i in range(kh):
            for j in range(kw):
                for c in range(n_channels):
                    weight = kernel[(c * kh + i) * kw + j]
                    taps = src + i * src_row_len + (first * stride_w + j) * n_channels + c
                    out = dst + first * n_channels + c
                    for q in range(n):
                        out[q * n_channels] += weight * taps[q * step]
        first += STRIDED_CHUNK
    for q in range(out_width):
        for c in range(n_channels):
            z = dst[q * n_channels + c]
            found = found or not (z - z == 0)       # NaN or infinite
            dst[q * n_channels + c] = activate(z + bias[c], activation)
    return found


cdef bint _convolve_row_dense(const floating* src, const Py_ssize_t* offsets, Py_ssize_t n_taps,
                              const floating* tiled, Py_ssize_t chunk, floating* dst,
                              Py_ssize_t row_len, int activation) noexcept nogil:
    """One output row at stride 1, in the same order of operations as ``_convolve_row``.

    At stride 1 the values a tap reads are contiguous, channels included, so
    the row is a sum of weighted, shifted stretches of the input rows, which
    ``correlate_taps`` (``_simd.h``) vectorises. Tap ``k`` reads ``src + offsets[k]``
    on; ``tiled`` row ``k`` holds its weights repeated along ``chunk`` values
    (``tiled[k, q*C + c] = K[c, i, j]``) and row ``n_taps`` the bias, likewise.
    The row goes ``chunk`` values at a time so that the weights stay in the
    first-level cache. Of the input, only the row of the last tap is prefetched:
    the rows of the other taps were read by the output rows before (in raster
    order, its taps read the newest row). True when one of the sums was not finite.
    """
    cdef Py_ssize_t start = 0, ahead, line = 64 // sizeof(floating)
    cdef bint found = False
    while start < row_len:           # (a Cython range needs a constant step)
        ahead = start + PREFETCH_AHEAD * chunk
        while ahead < min(start + (PREFETCH_AHEAD + 1) * chunk, row_len):
            prefetch(dst + ahead, 1)
            prefetch(src + offsets[n_taps - 1] + ahead, 0)
            ahead += line
        if correlate_taps(dst + start, src + start, offsets, n_taps, tiled, chunk,
                          min(chunk, row_len - start), activation):
            found = True
        start += chunk
    return found


cdef bint _convolve_row_subsampled(const floating* src, const Py_ssize_t* offsets,
                                   Py_ssize_t n_taps, const floating* tiled, Py_ssize_t chunk,
                                   floating* full, floating* dst, Py_ssize_t out_width,
                                   Py_ssize_t n_channels, Py_ssize_t stride_w,
                                   int activation) noexcept nogil:
    """One output row at a small stride: the stride-1 row, every ``stride_w``-th pixel.

    A pixel of the stride-1 row is the same sum, in the same order, as the
    output pixel at its place, so computing the stride-1 row with the
    vectorised ``correlate_taps`` and keeping one pixel in ``stride_w`` gives the
    same values as ``_convolve_row``; at a small stride it is much faster,
    although it computes the pixels in between too. ``offsets`` and
    ``tiled`` are as for ``_convolve_row_dense``; ``full`` holds ``chunk``
    values. True when one of the sums was not finite.
    """
    cdef Py_ssize_t first = 0, n, q, c, step = stride_w * n_channels
    cdef Py_ssize_t pixels = chunk // step        # output pixels per stretch
    cdef bint found = False
    while first < out_width:
        n = min(pixels, out_width - first)
        if correlate_taps(full, src + first * step, offsets, n_taps, tiled, chunk,
                          (n - 1) * step + n_channels, activation):
            found = True
        for q in range(n):
            for c in range(n_channels):
                dst[(first + q) * n_channels + c] = full[q * step + c]
        first += n
    return found


def convolve(list src not None, const Py_ssize_t[:, ::1] src_geom,
             const floating[:, :, ::1] kernel not None, const floating[::1] bias not None,
             list dst not None, const Py_ssize_t[:, ::1] dst_geom,
             const floating[:, ::1] tiled, const Py_ssize_t[:, ::1] taps,
             floating[:, ::1] scratch, unsigned char[::1] nonfinite_rows not None,
             Py_ssize_t stride_h, Py_ssize_t stride_w, int activation, int n_threads):
    """Convolve a batch of channels-last images ``src`` into ``dst``.

    ``src_geom`` and ``dst_geom`` describe the batch (see ``_batch.pxd``);
    ``src`` holds one ``(H, W, C)`` array per image, read in place (writable
    or not), and ``dst`` one per image, the outputs. The output rows of all
    images are shared out between the threads in one parallel loop.
    ``tiled`` is empty (``_convolve_row``, any stride, every tap), or the
    weights of the taps to sum and the bias, repeated along a chunk of a row
    (``tiled.shape[1]`` values), with ``taps[n, k]``, where tap ``k`` reads
    image ``n`` from a pixel (``i * W * C + j * C`` for tap ``(i, j)``): at
    stride 1 for ``_convolve_row_dense``, at a larger stride (at least one
    pixel per chunk) for ``_convolve_row_subsampled``, whose stride-1 rows
    thread ``k`` computes in ``scratch[k]`` (``tiled.shape[1]`` long).
    ``nonfinite_rows[row]`` receives 1 where a sum of that output row of the
    batch (before the bias) was not finite, else 0.
    """
    cdef Py_ssize_t n_channels = kernel.shape[0], kh = kernel.shape[1], kw = kernel.shape[2]
    cdef Py_ssize_t n_images = dst_geom.shape[0]
    cdef const Py_ssize_t* out_geom = &dst_geom[0, 0]
    cdef Py_ssize_t row, n, p, src_row_len, dst_row_len
    cdef const floating* tiled_taps = &tiled[0, 0] if tiled.shape[0] > 0 else NULL
    cdef Py_ssize_t n_taps = tiled.shape[0] - 1
    cdef const floating* row_in
    cdef floating* row_out
    cdef bint found
    assert src_geom.shape[1] == FIELDS and dst_geom.shape[1] == FIELDS
    assert bias.shape[0] == n_channels and src_geom.shape[0] == n_images
    assert nonfinite_rows.shape[0] == batch_rows(out_geom, n_images)
    assert tiled_taps == NULL or (n_taps >= 1 and tiled.shape[1] % n_channels == 0
                                  and taps.shape[0] == n_images and taps.shape[1] == n_taps)
    assert tiled_taps == NULL or stride_w == 1 or (
        tiled.shape[1] >= stride_w * n_channels and scratch.shape[0] >= n_threads
        and scratch.shape[1] >= tiled.shape[1])
    cdef const floating** inputs = NULL
    cdef floating** outputs = NULL
    try:
        input_pointers(src, src_geom, n_channels, &inputs)
        image_pointers(dst, dst_geom, n_channels, &outputs)
        with nogil:
            for row in prange(batch_rows(out_geom, n_images), num_threads=n_threads,
                              schedule="static"):
                n = image_of_row(out_geom, n_images, row)
                p = row - dst_geom[n, FIRST_ROW]
                src_row_len = src_geom[n, WIDTH] * n_channels
                dst_row_len = dst_geom[n, WIDTH] * n_channels
                row_in = inputs[n] + p * stride_h * src_row_len
                row_out = outputs[n] + p * dst_row_len
                if tiled_taps != NULL and stride_w > 1:
                    found = _convolve_row_subsampled(
                        row_in, &taps[n, 0], n_taps, tiled_taps, tiled.shape[1],
                        &scratch[threadid(), 0], row_out, dst_geom[n, WIDTH], n_channels,
                        stride_w, activation)
                elif tiled_taps != NULL:
                    found = _convolve_row_dense(row_in, &taps[n, 0], n_taps, tiled_taps,
                                                tiled.shape[1], row_out, dst_row_len,
                                                activation)
                else:
                    found = _convolve_row(row_in, src_row_len, &kernel[0, 0, 0], &bias[0],
                                          row_out, dst_geom[n, WIDTH], n_channels, kh, kw,
                                          stride_w, activation)
                nonfinite_rows[row] = found
    finally:
        PyMem_Free(inputs)
        PyMem_Free(outputs)


cdef double _sum_of_squares(const floating* fitted, const floating* target,
                            Py_ssize_t n) noexcept nogil:
    """Sum of ``(fitted - target)**2``, each difference taken in double."""
    cdef double total = 0, d
    cdef Py_ssize_t t
    for t in range(n):
        d = <double>fitted[t] - <double>target[t]
        total += d * d
    return total


def squared_error(list src not None, const Py_ssize_t[:, ::1] src_geom,
                  const floating[:, :, ::1] kernel not None, const floating[::1] bias not None,
                  list targets not None, const Py_ssize_t[:, ::1] target_geom,
                  floating[:, ::1] scratch, double[::1] row_sums, Py_ssize_t stride_h,
                  Py_ssize_t stride_w, int activation, int n_threads):
    """How far the convolution of ``src`` is from ``targets``: ``row_sums[r]``
    receives the sum of squared differences over output row ``r`` of the batch.

    ``src`` and ``targets`` hold one ``(H, W, C)`` array per image, read in
    place. Each output row is computed as ``convolve`` computes it, in
    ``scratch[k]`` (thread ``k``'s row, at least the widest output row long),
    and compared there: nothing of the output's size is ever allocated.
    """
    cdef Py_ssize_t n_channels = kernel.shape[0], kh = kernel.shape[1], kw = kernel.shape[2]
    cdef Py_ssize_t n_images = target_geom.shape[0]
    cdef const Py_ssize_t* out_geom = &target_geom[0, 0]
    cdef Py_ssize_t row, n, p, src_row_len, dst_row_len
    cdef floating* fitted
    assert src_geom.shape[1] == FIELDS and target_geom.shape[1] == FIELDS
    assert bias.shape[0] == n_channels and src_geom.shape[0] == n_images
    assert row_sums.shape[0] == batch_rows(out_geom, n_images)
    assert scratch.shape[0] >= n_threads
    cdef const floating** inputs = NULL
    cdef const floating** wanted = NULL
    try:
        input_pointers(src, src_geom, n_channels, &inputs)
        input_pointers(targets, target_geom, n_channels, &wanted)
        with nogil:
            for row in prange(batch_rows(out_geom, n_images), num_threads=n_threads,
                              schedule="static"):
                n = image_of_row(out_geom, n_images, row)
                p = row - target_geom[n, FIRST_ROW]
                src_row_len = src_geom[n, WIDTH] * n_channels
                dst_row_len = target_geom[n, WIDTH] * n_channels
                fitted = &scratch[threadid(), 0]
                _convolve_row(inputs[n] + p * stride_h * src_row_len, src_row_len,
                              &kernel[0, 0, 0], &bias[0], fitted, target_geom[n, WIDTH],
                              n_channels, kh, kw, stride_w, activation)
                row_sums[row] = _sum_of_squares(fitted, wanted[n] + p * dst_row_len,
                                                dst_row_len)
    finally:
        PyMem_Free(inputs)
        PyMem_Free(wanted)
