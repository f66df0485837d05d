# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Filter learning (SPEC section 3): SGD one update per block, and the
normal equations of the closed-form least-squares fit.

Channels are independent, so each thread owns whole channels. Per-channel
state lives in a row of a work array whose rows the caller pads past a cache
line, so the threads never write to a shared line. The caller has validated
every shape; nothing here checks its input.
"""

from cython cimport floating
from cython.parallel cimport prange

from _activation cimport activate, IDENTITY, RELU, CLIP


cdef void _sgd_channel(const floating* originals, const Py_ssize_t* orig_geom,
                       const floating* targets, const Py_ssize_t* target_geom,
                       Py_ssize_t n_pairs, Py_ssize_t n_channels, Py_ssize_t channel,
                       floating* params, double* sq_err,
                       const Py_ssize_t* order,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride_h, Py_ssize_t stride_w,
                       floating lr, Py_ssize_t epochs, bint learn_bias,
                       int activation) noexcept nogil:
    """Learn one channel: ``params[:kh*kw]`` is its kernel, ``params[kh*kw]`` its bias."""
    cdef Py_ssize_t epoch, n, t, b, p, q, i, j, width, out_width, n_blocks
    cdef Py_ssize_t order_start = 0
    cdef Py_ssize_t kk = kh * kw
    cdef const floating* block
    cdef floating z, err, step
    cdef double sse
    for epoch in range(epochs):
        sse = 0
        for n in range(n_pairs):
            width = orig_geom[3 * n + 2]
            out_width = target_geom[3 * n + 2]
            n_blocks = target_geom[3 * n + 1] * out_width
            for t in range(n_blocks):
                b = order[order_start + t] if order != NULL else t
                p = b // out_width
                q = b % out_width
                block = (originals + orig_geom[3 * n]
                         + (p * stride_h * width + q * stride_w) * n_channels + channel)
                z = 0
                for i in range(kh):
                    for j in range(kw):
                        z = z + params[i * kw + j] * block[(i * width + j) * n_channels]
                if learn_bias:
                    z = z + params[kk]
                err = activate(z, activation) - targets[target_geom[3 * n] + b * n_channels + channel]
                sse += <double>err * err
                step = lr * err
                for i in range(kh):
                    for j in range(kw):
                        params[i * kw + j] = params[i * kw + j] - step * block[(i * width + j) * n_channels]
                if learn_bias:
                    params[kk] = params[kk] - step
            if order != NULL:
                order_start += n_blocks
        sq_err[epoch] = sse


def sgd(const floating[::1] originals, const Py_ssize_t[:, ::1] orig_geom,
        const floating[::1] targets, const Py_ssize_t[:, ::1] target_geom,
        floating[:, ::1] params, double[:, ::1] sq_err, const Py_ssize_t[::1] order,
        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride_h, Py_ssize_t stride_w,
        double lr, Py_ssize_t epochs, bint learn_bias, int activation, int n_threads):
    """SGD over all pairs in order, ``epochs`` times, one thread per channel.

    ``params[c]`` holds the initial kernel and bias of channel ``c`` and
    receives the learned ones; ``sq_err[c, e]`` the sum of squared errors of
    epoch ``e``. ``order`` is empty for raster order, else the block indices
    of every (epoch, pair) one after the other.
    """
    cdef Py_ssize_t n_channels = params.shape[0], c
    cdef const Py_ssize_t* order_ptr = &order[0] if order.shape[0] > 0 else NULL
    with nogil:
        for c in prange(n_channels, num_threads=n_threads, schedule="static", chunksize=1):
            _sgd_channel(&originals[0], &orig_geom[0, 0], &targets[0], &target_geom[0, 0],
                         orig_geom.shape[0], n_channels, c, &params[c, 0], &sq_err[c, 0],
                         order_ptr, kh, kw, stride_h, stride_w,
                         <floating>lr, epochs, learn_bias, activation)


cdef inline bint _in_linear_range(double target, int activation) noexcept nogil:
    """Whether a target can come from the activation's linear part."""
    if activation == CLIP:
        return 0 < target < 1
    if activation == RELU:
        return target > 0
    return True


cdef void _normal_channel(const floating* originals, const Py_ssize_t* orig_geom,
                          const floating* targets, const Py_ssize_t* target_geom,
                          Py_ssize_t n_pairs, Py_ssize_t n_channels, Py_ssize_t channel,
                          double* acc, Py_ssize_t kh, Py_ssize_t kw,
                          Py_ssize_t stride_h, Py_ssize_t stride_w, bint with_bias,
                          int activation) noexcept nogil:
    """Accumulate ``X^T X`` (upper triangle), ``X^T t`` and the row count.

    ``acc`` holds the ``m x m`` Gram matrix, then ``m`` right-hand sides, then
    the count, where ``m = kh*kw (+1 with a bias column of ones)``.
    """
    cdef Py_ssize_t n, p, q, a, b, i, j, width, out_width
    cdef Py_ssize_t kk = kh * kw
    cdef Py_ssize_t m = kk + with_bias
    cdef double* gram = acc
    cdef double* rhs = acc + m * m
    cdef const floating* block
    cdef double target, va
    cdef double row[1024]   # never overflows: the caller caps kh*kw at 1023
    for n in range(n_pairs):
        width = orig_geom[3 * n + 2]
        out_width = target_geom[3 * n + 2]
        for p in range(target_geom[3 * n + 1]):
            for q in range(out_width):
                target = targets[target_geom[3 * n] + (p * out_width + q) * n_channels + channel]
                if not _in_linear_range(target, activation):
                    continue
                block = (originals + orig_geom[3 * n]
                         + (p * stride_h * width + q * stride_w) * n_channels + channel)
                for i in range(kh):
                    for j in range(kw):
                        row[i * kw + j] = block[(i * width + j) * n_channels]
                if with_bias:
                    row[kk] = 1
                for a in range(m):
                    va = row[a]
                    rhs[a] += va * target
                    for b in range(a, m):
                        gram[a * m + b] += va * row[b]
                acc[m * m + m] += 1


def normal_equations(const floating[::1] originals, const Py_ssize_t[:, ::1] orig_geom,
                     const floating[::1] targets, const Py_ssize_t[:, ::1] target_geom,
                     double[:, ::1] acc, Py_ssize_t kh, Py_ssize_t kw,
                     Py_ssize_t stride_h, Py_ssize_t stride_w, bint with_bias,
                     int activation, int n_threads):
    """Accumulate the least-squares normal equations of every channel into ``acc[c]``.

    ``acc`` must be zeroed by the caller; see ``_normal_channel`` for its layout.
    """
    cdef Py_ssize_t n_channels = acc.shape[0], c
    with nogil:
        for c in prange(n_channels, num_threads=n_threads, schedule="static", chunksize=1):
            _normal_channel(&originals[0], &orig_geom[0, 0], &targets[0], &target_geom[0, 0],
                            orig_geom.shape[0], n_channels, c, &acc[c, 0], kh, kw,
                            stride_h, stride_w, with_bias, activation)
