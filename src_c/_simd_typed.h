/* The activation and the loops of _simd.h for one float type. _simd.h
 * includes this file twice, with REVDECONV_T defined as float, then as double
 * (and REVDECONV_MASK as an integer type of its width); REVDECONV_TYPED(name)
 * gives name_float, then name_double. No include guard: that is the point.
 * Functions some modules do not call are static inline: no warning there.
 */

/* f(z), the activation of enum revdeconv_activation. */
static inline REVDECONV_T REVDECONV_TYPED(revdeconv_activate)(REVDECONV_T z, int activation) {
    if (activation != REVDECONV_IDENTITY && z < 0)
        return 0;
    if (activation == REVDECONV_CLIP && z > 1)
        return 1;
    return z;
}

/* out[t] = f(sum over the taps k < n_taps, in order, of
 * weights[k*chunk + t] * src[offsets[k] + t], then + weights[n_taps*chunk + t]
 * (the bias)) for the t from t up to n, f the activation; returns nonzero when
 * one of those sums (before the bias) was not finite. The plain loop of
 * revdeconv_correlate_taps, and the end of its vector loops. */
static inline int
REVDECONV_TYPED(revdeconv_correlate_taps_from)(REVDECONV_T *out, const REVDECONV_T *src,
                                               const Py_ssize_t *offsets, Py_ssize_t n_taps,
                                               const REVDECONV_T *weights, Py_ssize_t chunk,
                                               Py_ssize_t t, Py_ssize_t n, int activation) {
    Py_ssize_t k;
    int found = 0;
    for (; t < n; t++) {
        REVDECONV_T sum = 0;
        for (k = 0; k < n_taps; k++)
            sum = sum + weights[k * chunk + t] * src[offsets[k] + t];
        found |= !(sum - sum == 0); /* NaN or infinite */
        sum = sum + weights[n_taps * chunk + t];
        out[t] = REVDECONV_TYPED(revdeconv_activate)(sum, activation);
    }
    return found;
}

/* Its vector loop, one instance per width (see _simd.h). */
#if REVDECONV_VECTORS
#define REVDECONV_BYTES 16
#define REVDECONV_TARGET
#include "_simd_correlate.h"
#undef REVDECONV_BYTES
#undef REVDECONV_TARGET
#endif
#if REVDECONV_DISPATCH
#define REVDECONV_BYTES 32
#define REVDECONV_TARGET __attribute__((target("avx2")))
#include "_simd_correlate.h"
#undef REVDECONV_BYTES
#undef REVDECONV_TARGET
#endif

/* out[t] = f(sum over the taps k < n_taps, in order from 0, of
 * weights[k*chunk + t] * src[offsets[k] + t], then + weights[n_taps*chunk + t]
 * (the bias)) for t < n, f the activation: a stretch of a row of a correlation
 * that sums the taps chosen (those with a nonzero weight, say), offsets[k]
 * being where tap k reads from the first value (i*row_len + j*C for tap
 * (i, j)) and weights[k*chunk + t] its weight for value t's channel. Returns
 * nonzero when one of the sums (before the bias) was not finite, which a NaN or
 * an infinity among the values read makes it. With vector types, on the CPU's
 * own vector width (see _simd.h). */
static inline int
REVDECONV_TYPED(revdeconv_correlate_taps)(REVDECONV_T *out, const REVDECONV_T *src,
                                          const Py_ssize_t *offsets, Py_ssize_t n_taps,
                                          const REVDECONV_T *weights, Py_ssize_t chunk,
                                          Py_ssize_t n, int activation) {
#if REVDECONV_DISPATCH
    if (__builtin_cpu_supports("avx2"))
        return REVDECONV_TYPED(revdeconv_correlate_taps32)(out, src, offsets, n_taps, weights,
                                                           chunk, n, activation);
#endif
#if REVDECONV_VECTORS
    return REVDECONV_TYPED(revdeconv_correlate_taps16)(out, src, offsets, n_taps, weights, chunk,
                                                       n, activation);
#else
    return REVDECONV_TYPED(revdeconv_correlate_taps_from)(out, src, offsets, n_taps, weights,
                                                          chunk, 0, n, activation);
#endif
}

/* One step of eq. 3 (SPEC section 4) for n independent pixels, one per block
 * (see _reverse.pyx): rest = totals[t] - w[t]*x[t], the pixel
 * v = f((x[t] - rest) / d[t]), or f(x[t]) where d[t] == 0, then
 * totals[t] = rest + w[t]*v and values[t] = v. With vector types, 32 bytes of
 * pixels at a time, every choice a bitwise select (NaN passes through each);
 * the scalar loop does the rest the same. */
REVDECONV_CLONES static inline void
REVDECONV_TYPED(revdeconv_solve_step)(REVDECONV_T *totals, REVDECONV_T *values,
                                      const REVDECONV_T *x, const REVDECONV_T *w,
                                      const REVDECONV_T *d, Py_ssize_t n, int activation) {
    Py_ssize_t t = 0;
#if REVDECONV_VECTORS
    typedef REVDECONV_T vec __attribute__((vector_size(32)));
    typedef REVDECONV_MASK mask __attribute__((vector_size(32)));
    const Py_ssize_t lanes = 32 / sizeof(REVDECONV_T);
    const vec zero = {0}, one = zero + 1;
    for (; t + lanes <= n; t += lanes) {
        vec xv, wv, dv, tv, rest, v;
        memcpy(&xv, x + t, 32);
        memcpy(&wv, w + t, 32);
        memcpy(&dv, d + t, 32);
        memcpy(&tv, totals + t, 32);
        rest = tv - wv * xv;
        v = (xv - rest) / dv;
        v = REVDECONV_SELECT(dv == zero, xv, v);
        REVDECONV_ACTIVATE_VECTOR(v);
        tv = rest + wv * v;
        memcpy(totals + t, &tv, 32);
        memcpy(values + t, &v, 32);
    }
#endif
    for (; t < n; t++) {
        REVDECONV_T rest = totals[t] - w[t] * x[t];
        REVDECONV_T v = (x[t] - rest) / d[t];
        v = d[t] == 0 ? x[t] : v;
        v = REVDECONV_TYPED(revdeconv_activate)(v, activation);
        totals[t] = rest + w[t] * v;
        values[t] = v;
    }
}

/* totals[t] = the sum over the taps k < n_taps, in order from 0, of
 * w[k*chunk + t] * x[t], for t < n: the running sums of eq. 3 (SPEC section 4)
 * of n blocks that share no pixel, before their first step (each unsolved
 * pixel counts as its block's filtered value x[t]; see _reverse.pyx). With
 * vector types, 32 bytes at a time; the scalar loop does the rest the same. */
REVDECONV_CLONES static inline void
REVDECONV_TYPED(revdeconv_block_totals)(REVDECONV_T *totals, const REVDECONV_T *x,
                                        const REVDECONV_T *w, Py_ssize_t chunk,
                                        Py_ssize_t n_taps, Py_ssize_t n) {
    Py_ssize_t t = 0, k;
#if REVDECONV_VECTORS
    typedef REVDECONV_T vec __attribute__((vector_size(32)));
    const Py_ssize_t lanes = 32 / sizeof(REVDECONV_T);
    for (; t + lanes <= n; t += lanes) {
        vec xv, wv, s = {0};
        memcpy(&xv, x + t, 32);
        for (k = 0; k < n_taps; k++) {
            memcpy(&wv, w + k * chunk + t, 32);
            s = s + wv * xv;
        }
        memcpy(totals + t, &s, 32);
    }
#endif
    for (; t < n; t++) {
        REVDECONV_T s = 0;
        for (k = 0; k < n_taps; k++)
            s = s + w[k * chunk + t] * x[t];
        totals[t] = s;
    }
}
