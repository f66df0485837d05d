# The activation (SPEC section 2) and the kernels' vectorised inner loops (the
# stride-1 convolution, a step of the reverse solve, the Gram update of lstsq):
# C in _simd.h, which says how they are vectorised and kept bit for bit equal
# to the plain loops. Here: their declarations, and fused wrappers that pick
# the float or double version.

from cython cimport floating

cdef extern from "_simd.h" nogil:
    # The activation codes every kernel takes; _convolve.ACTIVATION_CODES
    # gives them to Python.
    enum revdeconv_activation:
        IDENTITY "REVDECONV_IDENTITY"
        RELU "REVDECONV_RELU"
        CLIP "REVDECONV_CLIP"

    float activate_f "revdeconv_activate_float" (float z, int activation) noexcept
    double activate_d "revdeconv_activate_double" (double z, int activation) noexcept
    void gram_update "revdeconv_gram_update" (
        double* gram, const double* X, Py_ssize_t n, Py_ssize_t ld) noexcept
    void solve_step_f "revdeconv_solve_step_float" (
        float*, float*, const float*, const float*, const float*, Py_ssize_t, int) noexcept
    void solve_step_d "revdeconv_solve_step_double" (
        double*, double*, const double*, const double*, const double*, Py_ssize_t,
        int) noexcept
    void block_totals_f "revdeconv_block_totals_float" (
        float*, const float*, const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept
    void block_totals_d "revdeconv_block_totals_double" (
        double*, const double*, const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept

    int correlate_taps_f "revdeconv_correlate_taps_float" (
        float*, const float*, const Py_ssize_t*, Py_ssize_t, const float*, Py_ssize_t,
        Py_ssize_t, int) noexcept
    int correlate_taps_d "revdeconv_correlate_taps_double" (
        double*, const double*, const Py_ssize_t*, Py_ssize_t, const double*, Py_ssize_t,
        Py_ssize_t, int) noexcept

cdef inline floating activate(floating z, int activation) noexcept nogil:
    """``f(z)`` for the activation code ``activation``; NaN passes through."""
    if floating is float:
        return activate_f(z, activation)
    else:
        return activate_d(z, activation)


cdef inline bint correlate_taps(floating* out, const floating* src, const Py_ssize_t* offsets,
                                Py_ssize_t n_taps, const floating* weights, Py_ssize_t chunk,
                                Py_ssize_t n, int activation) noexcept nogil:
    """``out[t] = f(sum_k weights[k*chunk + t] * src[offsets[k] + t] + weights[n_taps*chunk
    + t])`` for ``t < n``: the taps ``k < n_taps`` summed in order from 0, then the bias,
    then the activation ``f``. True when one of the sums (before the bias) was not
    finite, as a NaN or an infinity among the values read makes it."""
    if floating is float:
        return correlate_taps_f(out, src, offsets, n_taps, weights, chunk, n, activation)
    else:
        return correlate_taps_d(out, src, offsets, n_taps, weights, chunk, n, activation)


cdef inline void solve_step(floating* totals, floating* values, const floating* x,
                            const floating* w, const floating* d, Py_ssize_t n,
                            int activation) noexcept nogil:
    """Eq. 3 for ``n`` pixels of weights ``w`` and divisors ``d`` (0: keep ``x``),
    one per block: ``totals`` are the blocks' running sums, updated; ``values``
    receives the solved pixels, through the activation."""
    if floating is float:
        solve_step_f(totals, values, x, w, d, n, activation)
    else:
        solve_step_d(totals, values, x, w, d, n, activation)


cdef inline void block_totals(floating* totals, const floating* x, const floating* w,
                              Py_ssize_t chunk, Py_ssize_t n_taps, Py_ssize_t n) noexcept nogil:
    """``totals[t] = sum_k w[k*chunk + t] * x[t]`` for ``t < n``, the taps ``k < n_taps``
    summed in order from 0: the running sums of eq. 3 of blocks sharing no pixel,
    before their first step."""
    if floating is float:
        block_totals_f(totals, x, w, chunk, n_taps, n)
    else:
        block_totals_d(totals, x, w, chunk, n_taps, n)
