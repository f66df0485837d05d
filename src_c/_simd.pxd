# The kernels' vectorised inner loops (the stride-1 convolution, a step of the
# reverse solve, the Gram update of lstsq), in C, compiled twice where the
# compiler can: for AVX2 and for the baseline instruction set, the right one picked once at
# load time (GCC / clang ``target_clones`` on x86-64 Linux with glibc). The
# wheel thus stays portable (no -march flag) and still uses 256-bit vectors
# on CPUs that have them. Elsewhere the attribute is empty and the baseline
# build is used. The results are the same bit for bit either way: each sum
# is evaluated in the order written, and FMA contraction is off
# (-ffp-contract=off in setup.py), so wider vectors only do more of the same
# IEEE operations at once. Building with REVDECONV_PORTABLE=1 (setup.py)
# compiles the plain C loops that other compilers get instead (CI tests them).

from cython cimport floating

cdef extern from *:
    """
    #include <string.h>
    #if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute) \
        && !defined(REVDECONV_PORTABLE)
    #  if __has_attribute(target_clones)
    #    define REVDECONV_CLONES __attribute__((target_clones("avx2", "default")))
    #  endif
    #endif
    #ifndef REVDECONV_CLONES
    #  define REVDECONV_CLONES
    #endif
    /* The activations of _activation.pxd (0 identity, 1 relu, 2 clip), on a */
    /* scalar and, with GCC / clang vector types, on a vector by bitwise      */
    /* selects; NaN passes through both, as it does in _activation.pxd.       */
    #define REVDECONV_ACTIVATE(v)                                                      \
        if (activation != 0 && v < 0) v = 0;                                           \
        if (activation == 2 && v > 1) v = 1;
    #if defined(__GNUC__) && !defined(REVDECONV_PORTABLE)
    #  define REVDECONV_SELECT(M, A, B) (vec)(((mask)(A) & (M)) | ((mask)(B) & ~(M)))
    #  define REVDECONV_ACTIVATE_VECTOR(v)                                         \
        if (activation != 0) v = REVDECONV_SELECT(v < zero, zero, v);              \
        if (activation == 2) v = REVDECONV_SELECT(v > one, one, v);
    #endif

    /* out[t] = f(sum over the taps (i, j), in raster order from 0, of          */
    /* weights[(i*kw + j)*chunk + t] * src[i*src_row_len + j*n_channels + t],    */
    /* then + weights[kh*kw*chunk + t] (the bias)) for t < n, f the activation. */
    /* With GCC / clang vector types, four 32-byte vectors of outputs are       */
    /* summed at a time in registers: four independent sums hide the latency   */
    /* of an addition, and each output is stored once.                          */
    #if defined(__GNUC__) && !defined(REVDECONV_PORTABLE)
    #  define REVDECONV_FINISH(v, k)                   /* + bias, f, store */      \
        memcpy(&w, bias + t0 + (k) * lanes, 32); v = v + w;                        \
        REVDECONV_ACTIVATE_VECTOR(v)                                               \
        memcpy(out + t0 + (k) * lanes, &v, 32);
    #  define REVDECONV_STRIPS(T, I)                                               \
        typedef T vec __attribute__((vector_size(32)));                           \
        typedef I mask __attribute__((vector_size(32)));                          \
        const Py_ssize_t lanes = 32 / sizeof(T);                                   \
        const vec zero = {0}, one = zero + 1;                                      \
        const T *bias = weights + kh * kw * chunk;                                 \
        for (; t0 + 4 * lanes <= n; t0 += 4 * lanes) {                             \
            vec s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, w, a;                      \
            for (i = 0; i < kh; i++) for (j = 0; j < kw; j++) {                    \
                const T *wt = weights + (i * kw + j) * chunk + t0;                 \
                const T *at = src + i * src_row_len + j * n_channels + t0;         \
                memcpy(&w, wt, 32); memcpy(&a, at, 32); s0 = s0 + w * a;          \
                memcpy(&w, wt + lanes, 32); memcpy(&a, at + lanes, 32);            \
                s1 = s1 + w * a;                                                   \
                memcpy(&w, wt + 2 * lanes, 32); memcpy(&a, at + 2 * lanes, 32);    \
                s2 = s2 + w * a;                                                   \
                memcpy(&w, wt + 3 * lanes, 32); memcpy(&a, at + 3 * lanes, 32);    \
                s3 = s3 + w * a;                                                   \
            }                                                                      \
            REVDECONV_FINISH(s0, 0) REVDECONV_FINISH(s1, 1)                        \
            REVDECONV_FINISH(s2, 2) REVDECONV_FINISH(s3, 3)                        \
        }
    #else
    #  define REVDECONV_STRIPS(T, I)
    #endif
    #define REVDECONV_CORRELATE(T, I)                                                  \
    REVDECONV_CLONES static void revdeconv_correlate_##T(                              \
            T *out, const T *src, Py_ssize_t src_row_len, const T *weights,            \
            Py_ssize_t chunk, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t n_channels,     \
            Py_ssize_t n, int activation) {                                            \
        Py_ssize_t t0 = 0, t, i, j;                                                    \
        REVDECONV_STRIPS(T, I)                                                         \
        for (t = t0; t < n; t++) {                                                     \
            T sum = 0;                                                                 \
            for (i = 0; i < kh; i++) for (j = 0; j < kw; j++)                          \
                sum = sum + weights[(i * kw + j) * chunk + t]                          \
                          * src[i * src_row_len + j * n_channels + t];                 \
            sum = sum + weights[kh * kw * chunk + t];                                  \
            REVDECONV_ACTIVATE(sum)                                                    \
            out[t] = sum;                                                              \
        }                                                                              \
    }
    REVDECONV_CORRELATE(float, int)
    REVDECONV_CORRELATE(double, long long)

    /* One step of eq. 3 (SPEC section 4) for n independent pixels, one per   */
    /* block: see _reverse.pyx. With GCC / clang vector types, 32 bytes of    */
    /* pixels at a time, every choice a bitwise select (NaN passes through    */
    /* each, as in _activation.pxd); the scalar loop does the rest the same. */
    #define REVDECONV_SOLVE_SCALAR(T)                                                  \
        for (; t < n; t++) {                                                           \
            T rest = totals[t] - w[t] * x[t];                                          \
            T v = (x[t] - rest) / d[t];                                                \
            v = d[t] == 0 ? x[t] : v;                                                  \
            REVDECONV_ACTIVATE(v)                                                      \
            totals[t] = rest + w[t] * v;                                               \
            values[t] = v;                                                             \
        }
    #if defined(__GNUC__) && !defined(REVDECONV_PORTABLE)
    #  define REVDECONV_SOLVE_VECTORS(T, I)                                        \
        typedef T vec __attribute__((vector_size(32)));                           \
        typedef I mask __attribute__((vector_size(32)));                          \
        const Py_ssize_t lanes = 32 / sizeof(T);                                   \
        const vec zero = {0}, one = zero + 1;                                      \
        for (; t + lanes <= n; t += lanes) {                                       \
            vec xv, wv, dv, tv, rest, v;                                           \
            memcpy(&xv, x + t, 32); memcpy(&wv, w + t, 32);                        \
            memcpy(&dv, d + t, 32); memcpy(&tv, totals + t, 32);                   \
            rest = tv - wv * xv;                                                   \
            v = (xv - rest) / dv;                                                  \
            v = REVDECONV_SELECT(dv == zero, xv, v);                               \
            REVDECONV_ACTIVATE_VECTOR(v)                                           \
            tv = rest + wv * v;                                                    \
            memcpy(totals + t, &tv, 32); memcpy(values + t, &v, 32);               \
        }
    #else
    #  define REVDECONV_SOLVE_VECTORS(T, I)
    #endif
    #define REVDECONV_SOLVE(T, I)                                                      \
    REVDECONV_CLONES static void revdeconv_solve_step_##T(                             \
            T *totals, T *values, const T *x, const T *w, const T *d, Py_ssize_t n,    \
            int activation) {                                                          \
        Py_ssize_t t = 0;                                                              \
        REVDECONV_SOLVE_VECTORS(T, I)                                                  \
        REVDECONV_SOLVE_SCALAR(T)                                                      \
    }
    REVDECONV_SOLVE(float, int)
    REVDECONV_SOLVE(double, long long)

    /* gram[a*ld + b] += sum over r < n of X[r*ld + a] * X[r*ld + b], on the */
    /* 4x4 tiles on and above the diagonal (ld is a multiple of 4). Each sum  */
    /* runs over r in order, tiles or not; a tile's 16 sums stay in registers */
    /* while the rows go by.                                                  */
    REVDECONV_CLONES static void revdeconv_gram_update(
            double *gram, const double *X, Py_ssize_t n, Py_ssize_t ld) {
        Py_ssize_t a0, b0, r;
    #if defined(__GNUC__) && !defined(REVDECONV_PORTABLE)
        typedef double v4 __attribute__((vector_size(32)));
        for (a0 = 0; a0 < ld; a0 += 4) {
            for (b0 = a0; b0 < ld; b0 += 4) {
                v4 s0, s1, s2, s3, xb;
                memcpy(&s0, gram + (a0 + 0) * ld + b0, 32);
                memcpy(&s1, gram + (a0 + 1) * ld + b0, 32);
                memcpy(&s2, gram + (a0 + 2) * ld + b0, 32);
                memcpy(&s3, gram + (a0 + 3) * ld + b0, 32);
                for (r = 0; r < n; r++) {
                    const double *row = X + r * ld;
                    memcpy(&xb, row + b0, 32);
                    v4 x0 = {row[a0], row[a0], row[a0], row[a0]};
                    v4 x1 = {row[a0 + 1], row[a0 + 1], row[a0 + 1], row[a0 + 1]};
                    v4 x2 = {row[a0 + 2], row[a0 + 2], row[a0 + 2], row[a0 + 2]};
                    v4 x3 = {row[a0 + 3], row[a0 + 3], row[a0 + 3], row[a0 + 3]};
                    s0 = s0 + x0 * xb;
                    s1 = s1 + x1 * xb;
                    s2 = s2 + x2 * xb;
                    s3 = s3 + x3 * xb;
                }
                memcpy(gram + (a0 + 0) * ld + b0, &s0, 32);
                memcpy(gram + (a0 + 1) * ld + b0, &s1, 32);
                memcpy(gram + (a0 + 2) * ld + b0, &s2, 32);
                memcpy(gram + (a0 + 3) * ld + b0, &s3, 32);
            }
        }
    #else
        for (r = 0; r < n; r++)
            for (a0 = 0; a0 < ld; a0++)
                for (b0 = a0 / 4 * 4; b0 < ld; b0++)
                    gram[a0 * ld + b0] += X[r * ld + a0] * X[r * ld + b0];
    #endif
    }
    """
    void gram_update "revdeconv_gram_update" (
        double* gram, const double* X, Py_ssize_t n, Py_ssize_t ld) noexcept nogil
    void solve_step_f "revdeconv_solve_step_float" (
        float*, float*, const float*, const float*, const float*, Py_ssize_t, int) noexcept nogil
    void solve_step_d "revdeconv_solve_step_double" (
        double*, double*, const double*, const double*, const double*, Py_ssize_t,
        int) noexcept nogil
    void correlate_f "revdeconv_correlate_float" (
        float*, const float*, Py_ssize_t, const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
        Py_ssize_t, Py_ssize_t, int) noexcept nogil
    void correlate_d "revdeconv_correlate_double" (
        double*, const double*, Py_ssize_t, const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
        Py_ssize_t, Py_ssize_t, int) noexcept nogil


cdef inline void correlate(floating* out, const floating* src, Py_ssize_t src_row_len,
                           const floating* weights, Py_ssize_t chunk, Py_ssize_t kh,
                           Py_ssize_t kw, Py_ssize_t n_channels, Py_ssize_t n,
                           int activation) noexcept nogil:
    """``out[t] = f(sum_(i, j) weights[(i*kw + j)*chunk + t] * src[i*src_row_len + j*C + t]
    + weights[kh*kw*chunk + t])`` for ``t < n``: the taps summed in raster order from 0,
    then the bias, then the activation ``f`` (codes of ``_activation.pxd``)."""
    if floating is float:
        correlate_f(out, src, src_row_len, weights, chunk, kh, kw, n_channels, n, activation)
    else:
        correlate_d(out, src, src_row_len, weights, chunk, kh, kw, n_channels, n, activation)


cdef inline void solve_step(floating* totals, floating* values, const floating* x,
                            const floating* w, const floating* d, Py_ssize_t n,
                            int activation) noexcept nogil:
    """Eq. 3 for ``n`` pixels of weights ``w`` and divisors ``d`` (0: keep ``x``),
    one per block: ``totals`` are the blocks' running sums, updated; ``values``
    receives the solved pixels. The activation codes are ``_activation.pxd``'s."""
    if floating is float:
        solve_step_f(totals, values, x, w, d, n, activation)
    else:
        solve_step_d(totals, values, x, w, d, n, activation)
