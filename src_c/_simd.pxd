# Multiply-add over a stretch of values, compiled twice where the compiler can:
# for AVX2 and for the baseline instruction set, the right one picked once at
# load time (GCC / clang ``target_clones`` on x86-64 Linux with glibc). The
# wheel thus stays portable (no -march flag) and still uses 256-bit vectors
# on CPUs that have them. Elsewhere the attribute is empty and the baseline
# build is used. The results are the same bit for bit either way: each sum
# is evaluated in the order written, and FMA contraction is off
# (-ffp-contract=off in setup.py), so wider vectors only do more of the same
# IEEE operations at once.

from cython cimport floating

cdef extern from *:
    """
    #include <string.h>
    #if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute)
    #  if __has_attribute(target_clones)
    #    define REVDECONV_CLONES __attribute__((target_clones("avx2", "default")))
    #  endif
    #endif
    #ifndef REVDECONV_CLONES
    #  define REVDECONV_CLONES
    #endif
    /* out[t] = sum over the taps (i, j), in raster order from 0, of           */
    /* weights[(i*kw + j)*chunk + t] * src[i*src_row_len + j*n_channels + t]     */
    /* for t < n. With GCC / clang vector types, four 32-byte vectors of outputs */
    /* are summed at a time in registers: four independent sums hide the        */
    /* latency of an addition, and each output is stored once.                  */
    #if defined(__GNUC__)
    #  define REVDECONV_STRIPS(T)                                                  \
        typedef T vec __attribute__((vector_size(32)));                           \
        const Py_ssize_t lanes = 32 / sizeof(T);                                   \
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
            memcpy(out + t0, &s0, 32); memcpy(out + t0 + lanes, &s1, 32);          \
            memcpy(out + t0 + 2 * lanes, &s2, 32);                                 \
            memcpy(out + t0 + 3 * lanes, &s3, 32);                                 \
        }
    #else
    #  define REVDECONV_STRIPS(T)
    #endif
    #define REVDECONV_CORRELATE(T)                                                     \
    REVDECONV_CLONES static void revdeconv_correlate_##T(                              \
            T *out, const T *src, Py_ssize_t src_row_len, const T *weights,            \
            Py_ssize_t chunk, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t n_channels,     \
            Py_ssize_t n) {                                                            \
        Py_ssize_t t0 = 0, t, i, j;                                                    \
        REVDECONV_STRIPS(T)                                                            \
        for (t = t0; t < n; t++) {                                                     \
            T sum = 0;                                                                 \
            for (i = 0; i < kh; i++) for (j = 0; j < kw; j++)                          \
                sum = sum + weights[(i * kw + j) * chunk + t]                          \
                          * src[i * src_row_len + j * n_channels + t];                 \
            out[t] = sum;                                                              \
        }                                                                              \
    }
    REVDECONV_CORRELATE(float)
    REVDECONV_CORRELATE(double)
    """
    void correlate_f "revdeconv_correlate_float" (
        float*, const float*, Py_ssize_t, const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
        Py_ssize_t, Py_ssize_t) noexcept nogil
    void correlate_d "revdeconv_correlate_double" (
        double*, const double*, Py_ssize_t, const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
        Py_ssize_t, Py_ssize_t) noexcept nogil


cdef inline void correlate(floating* out, const floating* src, Py_ssize_t src_row_len,
                           const floating* weights, Py_ssize_t chunk, Py_ssize_t kh,
                           Py_ssize_t kw, Py_ssize_t n_channels, Py_ssize_t n) noexcept nogil:
    """``out[t] = sum_(i, j) weights[(i*kw + j)*chunk + t] * src[i*src_row_len + j*C + t]``
    for ``t < n``, the taps summed in raster order from 0."""
    if floating is float:
        correlate_f(out, src, src_row_len, weights, chunk, kh, kw, n_channels, n)
    else:
        correlate_d(out, src, src_row_len, weights, chunk, kh, kw, n_channels, n)
