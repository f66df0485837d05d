/* The vector loop of revdeconv_correlate_taps for one float type and one vector
 * width. _simd_typed.h includes this file once per width, with REVDECONV_BYTES
 * (16 or 32) and REVDECONV_TARGET (the target attribute the width needs)
 * defined; REVDECONV_WIDE(name) gives name16_float and so on. No include
 * guard: that is the point.
 *
 * Four vectors of outputs are summed at a time in registers: four independent
 * sums hide the latency of an addition, and each output is stored once; then
 * one vector at a time; the last values go through the plain loop. Returns
 * nonzero when a sum (before the bias) was not finite: every sum s adds s - s
 * to bad, 0 while every s is finite and NaN from the first that is not. Four
 * sums are checked as one, (s0 + s1) + (s2 + s3), which is not finite when one
 * of them is not, or (huge values) when it overflows: then the caller checks
 * the input value by value, as it would after a NaN. */
REVDECONV_TARGET static inline int
REVDECONV_WIDE(revdeconv_correlate_taps)(REVDECONV_T *out, const REVDECONV_T *src,
                                    const Py_ssize_t *offsets, Py_ssize_t n_taps,
                                    const REVDECONV_T *weights, Py_ssize_t chunk, Py_ssize_t n,
                                    int activation) {
    typedef REVDECONV_T vec __attribute__((vector_size(REVDECONV_BYTES)));
    typedef REVDECONV_MASK mask __attribute__((vector_size(REVDECONV_BYTES)));
    const Py_ssize_t lanes = REVDECONV_BYTES / sizeof(REVDECONV_T);
    const vec zero = {0}, one = zero + 1;
    const REVDECONV_T *bias = weights + n_taps * chunk;
    vec bad = zero, w, a;
    Py_ssize_t t0 = 0, k;
    int found = 0;
    for (; t0 + 4 * lanes <= n; t0 += 4 * lanes) {
        vec s0 = zero, s1 = zero, s2 = zero, s3 = zero, check;
        for (k = 0; k < n_taps; k++) {
            const REVDECONV_T *wt = weights + k * chunk + t0;
            const REVDECONV_T *at = src + offsets[k] + t0;
            memcpy(&w, wt, sizeof w);
            memcpy(&a, at, sizeof a);
            s0 = s0 + w * a;
            memcpy(&w, wt + lanes, sizeof w);
            memcpy(&a, at + lanes, sizeof a);
            s1 = s1 + w * a;
            memcpy(&w, wt + 2 * lanes, sizeof w);
            memcpy(&a, at + 2 * lanes, sizeof a);
            s2 = s2 + w * a;
            memcpy(&w, wt + 3 * lanes, sizeof w);
            memcpy(&a, at + 3 * lanes, sizeof a);
            s3 = s3 + w * a;
        }
        check = (s0 + s1) + (s2 + s3);
        bad = bad + (check - check);
        REVDECONV_FINISH_AT(s0, t0);
        REVDECONV_FINISH_AT(s1, t0 + lanes);
        REVDECONV_FINISH_AT(s2, t0 + 2 * lanes);
        REVDECONV_FINISH_AT(s3, t0 + 3 * lanes);
    }
    for (; t0 + lanes <= n; t0 += lanes) {
        vec s = zero;
        for (k = 0; k < n_taps; k++) {
            memcpy(&w, weights + k * chunk + t0, sizeof w);
            memcpy(&a, src + offsets[k] + t0, sizeof a);
            s = s + w * a;
        }
        bad = bad + (s - s);
        REVDECONV_FINISH_AT(s, t0);
    }
    for (k = 0; k < lanes; k++)
        found |= bad[k] != 0;
    return found | REVDECONV_TYPED(revdeconv_correlate_taps_from)(out, src, offsets, n_taps, weights,
                                                             chunk, t0, n, activation);
}
