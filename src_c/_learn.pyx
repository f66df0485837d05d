# cython: language_level=3, cdivision=True
"""Filter learning (SPEC section 3): SGD one update per block, and the
normal equations of the closed-form least-squares fit.

Channels are independent, so each thread owns whole channels. Per-channel
state lives in a row of a work array whose rows the caller pads past a cache
line, so the threads never write to a shared line. The caller has validated
every shape; nothing here checks its input.
"""

from libc.stdlib cimport free, malloc
from cython cimport floating
from cython.parallel cimport prange, threadid

from _batch cimport FIELDS, FIRST_ROW, HEIGHT, OFFSET, WIDTH, batch_rows, fits, image_of_row
from _simd cimport activate, gram_update, CLIP, RELU

# A hint to fetch a cache line ahead of use (no-op where GCC's builtin is missing);
# prefetching never faults, even past the end of an array.
cdef extern from *:
    """
    #if defined(__GNUC__)
    #define revdeconv_prefetch(p) __builtin_prefetch(p)
    #else
    #define revdeconv_prefetch(p) ((void)0)
    #endif
    """
    void prefetch "revdeconv_prefetch" (const void* p) noexcept nogil


cdef enum:
    ROWS = 64       # design rows gathered before they are added to the Gram matrix
    AHEAD = 256     # lstsq: values ahead of a block that are prefetched on each of its rows
    LANES = 4       # channels learned, or gathered for lstsq, side by side


cdef inline floating _error_step(floating z, floating* kernel, Py_ssize_t kk,
                                 floating target, double* sq_err, floating lr,
                                 bint learn_bias, int activation) noexcept nogil:
    """Eq. 1 for one channel given its block sum ``z``: add the squared error,
    update the bias when learned, and return the step ``lr * err`` (eq. 2)."""
    cdef floating err = activate(z + kernel[kk], activation) - target   # bias: fixed unless learned
    cdef floating step = lr * err
    sq_err[0] += <double>err * err
    if learn_bias:
        kernel[kk] = kernel[kk] - step
    return step


cdef inline void _learn_block(floating* weights, Py_ssize_t row_len, const floating* block,
                              const Py_ssize_t* taps, Py_ssize_t kk, Py_ssize_t lanes,
                              const floating* target, double* sq_err, Py_ssize_t sq_err_len,
                              floating lr, bint learn_bias, int activation) noexcept nogil:
    """One SGD update of ``lanes`` (1 to LANES) neighbouring channels, side by side.

    Channel ``l``'s kernel and bias are row ``l`` of ``weights`` (``row_len``
    apart); its pixel at tap ``k`` is ``block[taps[k] + l]``. Each channel's
    sums run exactly as alone (taps in raster order); the channels only go
    tap by tap together, in registers, so their independent chains overlap.
    """
    cdef floating* w0 = weights
    cdef floating* w1 = weights + row_len * (lanes > 1)
    cdef floating* w2 = weights + 2 * row_len * (lanes > 2)
    cdef floating* w3 = weights + 3 * row_len * (lanes > 3)
    cdef floating z0 = 0, z1 = 0, z2 = 0, z3 = 0
    cdef floating s0, s1 = 0, s2 = 0, s3 = 0
    cdef const floating* px
    cdef Py_ssize_t k
    for k in range(kk):
        px = block + taps[k]
        z0 = z0 + w0[k] * px[0]
        if lanes > 1:
            z1 = z1 + w1[k] * px[1]
        if lanes > 2:
            z2 = z2 + w2[k] * px[2]
        if lanes > 3:
            z3 = z3 + w3[k] * px[3]
    s0 = _error_step(z0, w0, kk, target[0], sq_err, lr, learn_bias, activation)
    if lanes > 1:
        s1 = _error_step(z1, w1, kk, target[1], sq_err + sq_err_len, lr, learn_bias,
                         activation)
    if lanes > 2:
        s2 = _error_step(z2, w2, kk, target[2], sq_err + 2 * sq_err_len, lr, learn_bias,
                         activation)
    if lanes > 3:
        s3 = _error_step(z3, w3, kk, target[3], sq_err + 3 * sq_err_len, lr, learn_bias,
                         activation)
    for k in range(kk):
        px = block + taps[k]
        w0[k] = w0[k] - s0 * px[0]
        if lanes > 1:
            w1[k] = w1[k] - s1 * px[1]
        if lanes > 2:
            w2[k] = w2[k] - s2 * px[2]
        if lanes > 3:
            w3[k] = w3[k] - s3 * px[3]


cdef void _sgd_channels(const floating* originals, const Py_ssize_t* orig_geom,
                        const floating* targets, const Py_ssize_t* target_geom,
                        Py_ssize_t n_pairs, Py_ssize_t n_channels,
                        Py_ssize_t c_start, Py_ssize_t c_stop,
                        floating* params, Py_ssize_t params_len,
                        double* sq_err, Py_ssize_t sq_err_len, const Py_ssize_t* order,
                        const Py_ssize_t* taps, Py_ssize_t kk,
                        Py_ssize_t stride_h, Py_ssize_t stride_w,
                        floating lr, Py_ssize_t epochs, bint learn_bias,
                        int activation) noexcept nogil:
    """Learn channels ``c_start <= c < c_stop`` in one sweep over the blocks.

    Row ``c`` of ``params`` (``params_len`` apart) holds channel ``c``'s kernel
    then its bias; row ``c`` of ``sq_err`` its sum of squared errors per epoch.
    The channels of a pixel share a cache line, so one sweep for several
    channels reads the image once instead of once per channel, and their
    update chains, which do not depend on one another, overlap. While
    learning, the weights live in memory of this call's own: the compiler
    then knows that no store to them changes a pixel, and keeps the loops
    tight (about a third faster). Should that allocation fail, the weights
    are updated where they are, in ``params``: the same operations, slower.
    """
    cdef Py_ssize_t epoch, n, t, b, p, q, g, c, k, width, out_width, n_blocks
    cdef Py_ssize_t order_start = 0
    cdef Py_ssize_t n_learned = c_stop - c_start
    cdef const floating* block
    cdef const floating* pixels
    cdef const floating* target
    cdef Py_ssize_t row_len = kk + 1
    cdef floating* weights = <floating*> malloc(n_learned * row_len * sizeof(floating))
    if weights == NULL:
        weights = params + c_start * params_len
        row_len = params_len
    else:
        for c in range(n_learned):
            for k in range(kk + 1):
                weights[c * row_len + k] = params[(c_start + c) * params_len + k]
    for epoch in range(epochs):
        for n in range(n_pairs):
            width = orig_geom[FIELDS * n + WIDTH]
            out_width = target_geom[FIELDS * n + WIDTH]
            n_blocks = target_geom[FIELDS * n + HEIGHT] * out_width
            pixels = originals + orig_geom[FIELDS * n + OFFSET]
            p = q = 0
            for t in range(n_blocks):
                if order != NULL:
                    b = order[order_start + t]
                    p = b // out_width
                    q = b - p * out_width
                else:
                    b = t
                block = pixels + (p * stride_h * width + q * stride_w) * n_channels
                target = targets + target_geom[FIELDS * n + OFFSET] + b * n_channels
                for g in range((n_learned + LANES - 1) // LANES):
                    c = c_start + g * LANES
                    _learn_block(weights + (c - c_start) * row_len, row_len, block + c,
                                 taps + n * kk, kk, min(LANES, c_stop - c), target + c,
                                 sq_err + c * sq_err_len + epoch, sq_err_len, lr,
                                 learn_bias, activation)
                q += 1                      # raster order: the next block
                if q == out_width:
                    q = 0
                    p += 1
            if order != NULL:
                order_start += n_blocks
    if row_len != params_len:
        for c in range(n_learned):
            for k in range(kk + 1):
                params[(c_start + c) * params_len + k] = weights[c * row_len + k]
        free(weights)


def sgd(const floating[::1] originals, const Py_ssize_t[:, ::1] orig_geom,
        const floating[::1] targets, const Py_ssize_t[:, ::1] target_geom,
        floating[:, ::1] params, double[:, ::1] sq_err, const Py_ssize_t[::1] order,
        const Py_ssize_t[:, ::1] taps, Py_ssize_t stride_h, Py_ssize_t stride_w,
        double lr, Py_ssize_t epochs, bint learn_bias, int activation, int n_threads):
    """SGD over all pairs in order, ``epochs`` times; threads take whole channels.

    ``params[c]`` holds the initial kernel and bias of channel ``c`` and
    receives the learned ones; ``sq_err[c, e]`` (zeroed by the caller) the sum
    of squared errors of epoch ``e``. ``order`` is empty for raster order,
    else the block indices of every (epoch, pair) one after the other.
    ``taps[n, k]`` is the offset of tap ``k`` (raster order) from a block's
    first value in pair ``n``'s original. The channels are split into at most ``n_threads`` contiguous groups, each
    learned by one thread in one sweep.
    """
    cdef Py_ssize_t n_channels = params.shape[0]
    cdef Py_ssize_t n_groups = min(n_threads, n_channels), g
    cdef const Py_ssize_t* order_ptr = &order[0] if order.shape[0] > 0 else NULL
    assert fits(orig_geom, n_channels, originals.shape[0])
    assert fits(target_geom, n_channels, targets.shape[0])
    cdef Py_ssize_t kk = taps.shape[1]
    assert params.shape[1] > kk and sq_err.shape[1] >= epochs
    assert taps.shape[0] == orig_geom.shape[0]
    with nogil:
        for g in prange(n_groups, num_threads=n_threads, schedule="static", chunksize=1):
            _sgd_channels(&originals[0], &orig_geom[0, 0], &targets[0], &target_geom[0, 0],
                          orig_geom.shape[0], n_channels,
                          g * n_channels // n_groups, (g + 1) * n_channels // n_groups,
                          &params[0, 0], params.shape[1], &sq_err[0, 0], sq_err.shape[1],
                          order_ptr, &taps[0, 0], kk, stride_h, stride_w, <floating>lr,
                          epochs, learn_bias, activation)


def sgd_each(const floating[::1] originals, const Py_ssize_t[:, ::1] orig_geom,
             const floating[::1] targets, const Py_ssize_t[:, ::1] target_geom,
             floating[:, ::1] params, double[:, ::1] sq_err, const Py_ssize_t[::1] order,
             const Py_ssize_t[::1] order_start, const Py_ssize_t[:, ::1] taps,
             Py_ssize_t stride_h, Py_ssize_t stride_w,
             double lr, Py_ssize_t epochs, bint learn_bias, int activation, int n_threads):
    """SGD on every pair on its own: pair ``n`` learns its own kernels, in rows
    ``n*C .. n*C + C - 1`` of ``params`` and ``sq_err``. ``order`` is empty,
    or every pair's block orders of each epoch, pair after pair, pair ``n``'s
    starting at ``order_start[n]``. ``taps`` as for ``sgd``.

    With at least as many pairs as threads, each thread takes whole pairs and
    learns their channels side by side (see ``_sgd_channels``). With fewer
    pairs, the (pair, channel) planes are shared out instead, so no thread idles.
    """
    cdef Py_ssize_t n_pairs = orig_geom.shape[0]
    cdef Py_ssize_t n_channels = params.shape[0] // n_pairs
    cdef Py_ssize_t per_item = n_channels if n_pairs >= n_threads else 1
    cdef Py_ssize_t n_items = params.shape[0] // per_item, item, n, c
    cdef const Py_ssize_t* order_ptr = &order[0] if order.shape[0] > 0 else NULL
    assert fits(orig_geom, n_channels, originals.shape[0])
    assert fits(target_geom, n_channels, targets.shape[0])
    cdef Py_ssize_t kk = taps.shape[1]
    assert params.shape[1] > kk and sq_err.shape[1] >= epochs
    assert order_start.shape[0] == n_pairs + 1 and taps.shape[0] == n_pairs
    with nogil:
        for item in prange(n_items, num_threads=n_threads, schedule="dynamic"):
            n = item * per_item // n_channels
            c = item * per_item % n_channels
            _sgd_channels(&originals[0], &orig_geom[n, 0], &targets[0], &target_geom[n, 0],
                          1, n_channels, c, c + per_item, &params[n * n_channels, 0],
                          params.shape[1], &sq_err[n * n_channels, 0], sq_err.shape[1],
                          order_ptr + order_start[n] if order_ptr != NULL else NULL,
                          &taps[n, 0], kk, stride_h, stride_w, <floating>lr, epochs,
                          learn_bias, activation)


cdef inline bint _in_linear_range(double target, int activation) noexcept nogil:
    """Whether a target can come from the activation's linear part."""
    if activation == CLIP:
        return 0 < target < 1
    if activation == RELU:
        return target > 0
    return True


cdef void _normal_channels(const floating* originals, const Py_ssize_t* orig_geom,
                           const floating* targets, const Py_ssize_t* target_geom,
                           Py_ssize_t n_pairs, Py_ssize_t n_channels, Py_ssize_t c_start,
                           Py_ssize_t lanes, Py_ssize_t row_start, Py_ssize_t row_stop,
                           double* acc, Py_ssize_t acc_len, double* rows, Py_ssize_t ld,
                           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride_h,
                           Py_ssize_t stride_w, bint with_bias, int activation) noexcept nogil:
    """Accumulate the Gram matrices of the design rows of channels ``c_start`` to
    ``c_start + lanes - 1`` (``lanes`` at most ``LANES``), each augmented by the
    target, over block rows ``row_start <= r < row_stop`` of the batch.

    A design row is a block's pixels (then 1 with a bias), then the target,
    then zeros up to ``ld``, a multiple of 4; ``rows`` holds ``ROWS`` of them
    per channel (lane ``l``'s from ``l * ROWS * ld``), zeroed by the caller.
    Lane ``l``'s sums are at ``acc + l * acc_len``: the ``ld x ld`` Gram matrix
    (the upper triangle is filled: ``X^T X``, then ``X^T t`` in column ``m``),
    then the number of rows. The channels of a pixel share a cache line, so
    one sweep gathers them all and reads the image once, not once per channel
    (memory, not arithmetic, bounded the sweep per channel). Each channel's
    rows are added by ``gram_update`` (``_simd.h``), ``ROWS`` at a time, in
    raster order as with one channel a sweep: the same sums.
    """
    cdef Py_ssize_t n, r, p, q, i, j, l, width, out_width, filled
    cdef Py_ssize_t n_rows[LANES]
    cdef Py_ssize_t kk = kh * kw
    cdef Py_ssize_t m = kk + with_bias
    cdef Py_ssize_t line
    cdef const floating* block
    cdef const floating* src
    cdef const floating* pixels
    cdef const floating* target_row
    cdef double* row
    cdef double target
    for l in range(lanes):
        n_rows[l] = 0
    for r in range(row_start, row_stop):
        n = image_of_row(target_geom, n_pairs, r)
        p = r - target_geom[FIELDS * n + FIRST_ROW]
        width = orig_geom[FIELDS * n + WIDTH]
        out_width = target_geom[FIELDS * n + WIDTH]
        line = width * n_channels
        pixels = originals + orig_geom[FIELDS * n + OFFSET] + p * stride_h * width * n_channels
        target_row = targets + target_geom[FIELDS * n + OFFSET] + p * out_width * n_channels
        for q in range(out_width):
            block = pixels + q * stride_w * n_channels + c_start
            # The hardware prefetcher alone left the sweep waiting on memory: in
            # the 4k benchmark (3x3, stride 3) this took it from 45 ms to 36 ms.
            for i in range(kh):
                prefetch(block + i * line + AHEAD)
            for l in range(lanes):
                target = target_row[q * n_channels + c_start + l]
                if not _in_linear_range(target, activation):
                    continue
                filled = n_rows[l]
                row = rows + (l * ROWS + filled) * ld
                src = block + l
                for i in range(kh):
                    for j in range(kw):
                        row[j] = src[j * n_channels]
                    src = src + line
                    row = row + kw
                row = rows + (l * ROWS + filled) * ld
                if with_bias:
                    row[kk] = 1
                row[m] = target
                filled = filled + 1
                if filled == ROWS:
                    gram_update(acc + l * acc_len, rows + l * ROWS * ld, filled, ld)
                    acc[l * acc_len + ld * ld] += filled
                    filled = 0
                n_rows[l] = filled
    for l in range(lanes):
        gram_update(acc + l * acc_len, rows + l * ROWS * ld, n_rows[l], ld)
        acc[l * acc_len + ld * ld] += n_rows[l]


def normal_equations(const floating[::1] originals, const Py_ssize_t[:, ::1] orig_geom,
                     const floating[::1] targets, const Py_ssize_t[:, ::1] target_geom,
                     double[:, ::1] acc, double[:, ::1] rows, Py_ssize_t n_channels,
                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride_h, Py_ssize_t stride_w,
                     bint with_bias, int activation, int n_threads):
    """Accumulate the least-squares normal equations into ``acc``, in parts.

    Row ``k`` of ``acc`` holds channel ``k % C`` over band ``k // C`` of the
    batch's block rows (``acc.shape[0] // C`` bands, an even split of them);
    see ``_normal_channels`` for its layout (``ld`` the least multiple of 4
    above ``kh*kw + with_bias``). ``acc`` is zeroed by the caller, who adds
    the bands up. A part is a band and up to ``DESIGN_LANES`` neighbouring
    channels; the parts are shared out between the threads, and a channel's
    sums over a band run in the same order on any number of threads. Thread
    ``k`` gathers design rows in ``rows[k]`` (``>= ROWS * ld`` values per
    channel of a part, zeroed).
    """
    cdef Py_ssize_t ld = (kh * kw + with_bias + 1 + 3) // 4 * 4
    cdef Py_ssize_t n_pairs = target_geom.shape[0], part, band, c
    cdef Py_ssize_t n_bands = acc.shape[0] // n_channels
    cdef Py_ssize_t n_groups = (n_channels + LANES - 1) // LANES
    cdef Py_ssize_t n_rows = batch_rows(&target_geom[0, 0], n_pairs)
    assert fits(orig_geom, n_channels, originals.shape[0])
    assert fits(target_geom, n_channels, targets.shape[0])
    assert acc.shape[0] == n_bands * n_channels and n_bands >= 1
    assert acc.shape[1] > ld * ld and rows.shape[0] >= n_threads
    assert rows.shape[1] >= min(LANES, n_channels) * ROWS * ld
    with nogil:
        for part in prange(n_bands * n_groups, num_threads=n_threads, schedule="dynamic"):
            band = part // n_groups
            c = part % n_groups * LANES
            _normal_channels(&originals[0], &orig_geom[0, 0], &targets[0], &target_geom[0, 0],
                             n_pairs, n_channels, c, min(LANES, n_channels - c),
                             band * n_rows // n_bands, (band + 1) * n_rows // n_bands,
                             &acc[band * n_channels + c, 0], acc.shape[1],
                             &rows[threadid(), 0], ld, kh, kw, stride_h, stride_w, with_bias,
                             activation)


#: Design rows each thread gathers per channel before adding them up, and the
#: most channels it gathers at once (for the caller's buffers).
DESIGN_ROWS = ROWS
DESIGN_LANES = LANES
