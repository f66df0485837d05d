# cython: language_level=3, cdivision=True
"""The reverse solve (SPEC section 4, paper eq. 3 with the smoothing trick).

Which pixels of a block are still unsolved needs no mask: a pixel is solved
by the first block, in raster order, that covers it. In block ``(P, Q)`` the
new pixels are therefore the rectangle ``i >= first_row, j >= first_col`` with
``first_row = 0 if P == 0 else max(kh - stride_h, 0)`` (likewise for columns);
the others were solved by an earlier block. The caller has validated every
shape; nothing here checks its input.
"""

from cpython.mem cimport PyMem_Free
from libc.string cimport memcpy
from libc.math cimport fabs
from cython cimport floating
from cython.parallel cimport prange, threadid

from _simd cimport activate, block_totals, solve_step
from _batch cimport (FIELDS, FIRST_ROW, HEIGHT, WIDTH, batch_rows, image_of_row,
                     image_pointers, input_pointers)


cdef inline floating _solve_pixel(floating w, floating x, floating* total, double eps,
                                  int activation) noexcept nogil:
    """Eq. 3 for one pixel of weight ``w``; ``total`` is its block's running sum of
    ``w * v`` with this pixel still counted as ``x``, and is updated to its value."""
    cdef floating rest = total[0] - w * x
    cdef floating value
    if fabs(w) <= eps:
        value = x                 # not divided, as the author's code does
    else:
        value = (x - rest) / w
    value = activate(value, activation)
    total[0] = rest + w * value
    return value


cdef void _solve_block(const floating* weights, floating x, floating* y,
                       Py_ssize_t row_len, Py_ssize_t n_channels,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t first_row,
                       Py_ssize_t first_col, double eps, int activation) noexcept nogil:
    """Solve the new pixels of one block of one channel; ``y`` is its top-left pixel."""
    cdef Py_ssize_t i, j
    cdef floating value
    # Running sum of w * v over the block: unsolved pixels count as x.
    cdef floating total = 0
    for i in range(kh):
        for j in range(kw):
            if i >= first_row and j >= first_col:
                value = x
            else:
                value = y[i * row_len + j * n_channels]
            total = total + weights[i * kw + j] * value
    for i in range(first_row, kh):
        for j in range(first_col, kw):
            y[i * row_len + j * n_channels] = _solve_pixel(weights[i * kw + j], x, &total,
                                                           eps, activation)


cdef void _zoom_uncovered_row(const floating* x, Py_ssize_t in_h, Py_ssize_t in_w,
                              floating* y_row, Py_ssize_t r, Py_ssize_t out_w,
                              Py_ssize_t n_channels, Py_ssize_t kh, Py_ssize_t kw,
                              Py_ssize_t stride_h, Py_ssize_t stride_w) noexcept nogil:
    """Give the pixels of output row ``r`` that no block covers their zoom value."""
    cdef Py_ssize_t covered_h = (in_h - 1) * stride_h + kh
    cdef Py_ssize_t covered_w = (in_w - 1) * stride_w + kw
    cdef bint row_covered = r < covered_h and r % stride_h < kh
    cdef const floating* x_row = x + min(r // stride_h, in_h - 1) * in_w * n_channels
    cdef Py_ssize_t col = 0, src_col, phase, c
    if row_covered and stride_w <= kw:
        col = covered_w      # no gaps: only the right border is uncovered
    src_col = col // stride_w
    phase = col % stride_w
    while col < out_w:
        if not (row_covered and col < covered_w and phase < kw):
            for c in range(n_channels):
                y_row[col * n_channels + c] = x_row[min(src_col, in_w - 1) * n_channels + c]
        col += 1
        phase += 1
        if phase == stride_w:
            phase = 0
            src_col += 1


cdef void _solve_block_row(const floating* kernel, const floating* x_row, floating* y,
                           Py_ssize_t P, Py_ssize_t in_w, Py_ssize_t row_len,
                           Py_ssize_t n_channels, Py_ssize_t c_start, Py_ssize_t c_stop,
                           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride_h, Py_ssize_t stride_w,
                           double eps, int activation) noexcept nogil:
    """Solve block row ``P`` for channels ``c_start <= c < c_stop``."""
    cdef Py_ssize_t Q, c
    cdef Py_ssize_t first_row = 0 if P == 0 else max(kh - stride_h, 0)
    cdef Py_ssize_t overlap_w = max(kw - stride_w, 0)
    for Q in range(in_w):
        for c in range(c_start, c_stop):
            _solve_block(kernel + c * kh * kw, x_row[Q * n_channels + c],
                         y + P * stride_h * row_len + Q * stride_w * n_channels + c,
                         row_len, n_channels, kh, kw, first_row,
                         0 if Q == 0 else overlap_w, eps, activation)


cdef void _tile_kernel(const floating* kernel, floating* tiled, Py_ssize_t chunk,
                       Py_ssize_t n_channels, Py_ssize_t kk, double eps) noexcept nogil:
    """Lay out one image's kernel for ``_solve_disjoint_row``: for each tap, its
    weights repeated along ``chunk`` values (``tiled[tap, Q*C + c] = K[c, tap]``),
    then the divisors of eq. 3 likewise (the weight, or 0 where ``|w| <= eps``:
    that pixel keeps its filtered value, as ``_solve_pixel`` does)."""
    cdef Py_ssize_t tap, t
    cdef floating w
    for tap in range(kk):
        for t in range(chunk):
            w = kernel[(t % n_channels) * kk + tap]
            tiled[tap * chunk + t] = w
            tiled[(kk + tap) * chunk + t] = w if fabs(w) > eps else 0


cdef inline void _write_blocks(floating* row, const floating* values, Py_ssize_t chunk,
                               Py_ssize_t n_blocks, Py_ssize_t n_channels, Py_ssize_t kw,
                               Py_ssize_t stride_w) noexcept nogil:
    """Write one pixel row of ``n_blocks`` blocks from their solved values: value
    ``Q*C + c`` of ``values + j*chunk`` is channel ``c`` of pixel ``(Q*stride_w + j)``.

    Pixel by pixel in address order. Where the blocks tile the row (``stride_w
    == kw``) and C is 3, each pixel is copied as four values, one past its own:
    the next copy overwrites that one, and the last pixel is copied exactly, so
    nothing is written outside the blocks (a gap or the row's end keeps its value).
    """
    cdef Py_ssize_t Q, j, c, last
    cdef floating* pixel
    cdef const floating* value
    if n_channels == 3 and stride_w == kw:
        last = n_blocks * kw - 1                 # the last pixel, copied exactly
        for Q in range(n_blocks):
            for j in range(kw):
                if Q * kw + j == last:
                    break
                memcpy(row + (Q * kw + j) * 3, values + j * chunk + Q * 3,
                       4 * sizeof(floating))
        pixel = row + last * 3
        value = values + (kw - 1) * chunk + (n_blocks - 1) * 3
        pixel[0] = value[0]
        pixel[1] = value[1]
        pixel[2] = value[2]
        return
    for Q in range(n_blocks):
        for j in range(kw):
            pixel = row + (Q * stride_w + j) * n_channels
            value = values + j * chunk + Q * n_channels
            for c in range(n_channels):
                pixel[c] = value[c]


cdef void _solve_disjoint_row(const floating* tiled, const floating* x_row, floating* y,
                              floating* totals, floating* values, Py_ssize_t chunk,
                              Py_ssize_t in_w, Py_ssize_t row_len, Py_ssize_t n_channels,
                              Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride_w,
                              int activation) noexcept nogil:
    """Solve a row of blocks that share no pixel, all blocks one pixel at a time.

    The same operations as ``_solve_block`` on each block, in the same order,
    but across the row: value ``t = Q*C + c`` of a stretch is channel ``c`` of
    block ``Q``, so each step of eq. 3 is one call of ``solve_step``
    (``_simd.h``, vectorised, division included) over contiguous values with
    no dependence between them. The ``kw`` steps of a pixel row go to
    ``values + j*chunk``, then the row is written in address order
    (``_write_blocks``). ``tiled`` comes from ``_tile_kernel``; ``totals``
    holds ``chunk`` values and ``values`` ``kw * chunk``; ``y`` is the row's
    top-left pixel.
    """
    cdef Py_ssize_t i, j, tap, start = 0, n
    cdef Py_ssize_t kk = kh * kw
    cdef const floating* x
    while start < in_w * n_channels:          # chunk is a multiple of C
        n = min(chunk, in_w * n_channels - start)
        x = x_row + start
        block_totals(totals, x, tiled, chunk, kk, n)    # unsolved pixels count as x
        for i in range(kh):
            for j in range(kw):
                tap = i * kw + j
                solve_step(totals, values + j * chunk, x, tiled + tap * chunk,
                           tiled + (kk + tap) * chunk, n, activation)     # eq. 3
            _write_blocks(y + i * row_len + start // n_channels * stride_w * n_channels,
                          values, chunk, n // n_channels, n_channels, kw, stride_w)
        start += chunk


def deconvolve(list src not None, const Py_ssize_t[:, ::1] src_geom,
               const floating[:, :, ::1] kernel not None,
               list dst not None, const Py_ssize_t[:, ::1] dst_geom,
               floating[:, ::1] scratch, Py_ssize_t[::1] tiled_for, Py_ssize_t chunk,
               Py_ssize_t n_channels,
               Py_ssize_t stride_h, Py_ssize_t stride_w, double eps, int activation,
               int n_threads):
    """Reverse-solve a batch of channels-last filtered images into ``dst``.

    ``src_geom`` and ``dst_geom`` describe the batch (see ``_batch.pxd``);
    ``src`` holds one ``(H, W, C)`` array per image, read in place (writable
    or not), and ``dst`` one per image, the outputs. Block rows are
    independent when ``stride_h >= kh``: the block rows of all images are then
    shared out between the threads in one parallel loop; otherwise each
    thread takes whole (image, channel) planes. When blocks
    share no pixel at all, thread ``k`` works in ``scratch[k]``, ``(2*kh*kw +
    1 + kw) * chunk`` long (``chunk`` a multiple of C), and notes in ``tiled_for[k]``
    (-1 at first) whose kernel it has laid out there. ``kernel`` is ``(C, kh, kw)``, shared
    by all images, or ``(N * C, kh, kw)``, one ``(C, kh, kw)`` kernel per image.
    """
    cdef Py_ssize_t kh = kernel.shape[1], kw = kernel.shape[2]
    cdef Py_ssize_t kernel_step = 0 if kernel.shape[0] == n_channels else n_channels * kh * kw
    cdef const floating* weights = &kernel[0, 0, 0]
    cdef Py_ssize_t n_images = src_geom.shape[0], n_planes = n_images * n_channels
    cdef const Py_ssize_t* in_geom = &src_geom[0, 0]
    cdef const Py_ssize_t* out_geom = &dst_geom[0, 0]
    cdef Py_ssize_t row, n, r, P, plane, c, in_w, row_len, k
    assert src_geom.shape[1] == FIELDS and dst_geom.shape[1] == FIELDS
    assert dst_geom.shape[0] == n_images
    assert kernel.shape[0] in (n_channels, n_images * n_channels)
    cdef bint gaps = stride_h > kh or stride_w > kw
    cdef bint border = False
    for n in range(n_images):
        border = border or (dst_geom[n, HEIGHT] > (src_geom[n, HEIGHT] - 1) * stride_h + kh
                            or dst_geom[n, WIDTH] > (src_geom[n, WIDTH] - 1) * stride_w + kw)
    cdef const floating** inputs = NULL
    cdef floating** outputs = NULL
    try:
        input_pointers(src, src_geom, n_channels, &inputs)
        image_pointers(dst, dst_geom, n_channels, &outputs)
        with nogil:
            if gaps or border:     # pixels no block covers take their zoom value
                for row in prange(batch_rows(out_geom, n_images), num_threads=n_threads,
                                  schedule="static"):
                    n = image_of_row(out_geom, n_images, row)
                    r = row - dst_geom[n, FIRST_ROW]
                    row_len = dst_geom[n, WIDTH] * n_channels
                    _zoom_uncovered_row(inputs[n], src_geom[n, HEIGHT],
                                        src_geom[n, WIDTH], outputs[n] + r * row_len,
                                        r, dst_geom[n, WIDTH], n_channels, kh, kw,
                                        stride_h, stride_w)
            if stride_h >= kh:
                for row in prange(batch_rows(in_geom, n_images), num_threads=n_threads,
                                  schedule="static"):
                    n = image_of_row(in_geom, n_images, row)
                    P = row - src_geom[n, FIRST_ROW]
                    in_w = src_geom[n, WIDTH]
                    row_len = dst_geom[n, WIDTH] * n_channels
                    if stride_w >= kw:
                        k = threadid()
                        if tiled_for[k] != n * (kernel_step != 0):
                            _tile_kernel(weights + n * kernel_step, &scratch[k, 0], chunk,
                                         n_channels, kh * kw, eps)
                            tiled_for[k] = n * (kernel_step != 0)
                        _solve_disjoint_row(&scratch[k, 0], inputs[n] + P * in_w * n_channels,
                                            outputs[n] + P * stride_h * row_len,
                                            &scratch[k, 2 * kh * kw * chunk],
                                            &scratch[k, (2 * kh * kw + 1) * chunk], chunk,
                                            in_w, row_len, n_channels, kh, kw, stride_w,
                                            activation)
                    else:
                        _solve_block_row(weights + n * kernel_step,
                                         inputs[n] + P * in_w * n_channels,
                                         outputs[n], P, in_w, row_len, n_channels,
                                         0, n_channels, kh, kw, stride_h, stride_w, eps,
                                         activation)
            else:
                for plane in prange(n_planes, num_threads=n_threads, schedule="static",
                                    chunksize=1):
                    n = plane // n_channels
                    c = plane % n_channels
                    in_w = src_geom[n, WIDTH]
                    for P in range(src_geom[n, HEIGHT]):
                        _solve_block_row(weights + n * kernel_step,
                                         inputs[n] + P * in_w * n_channels,
                                         outputs[n], P, in_w,
                                         dst_geom[n, WIDTH] * n_channels, n_channels, c, c + 1,
                                         kh, kw, stride_h, stride_w, eps, activation)
    finally:
        PyMem_Free(inputs)
        PyMem_Free(outputs)
