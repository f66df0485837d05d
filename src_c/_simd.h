/* The kernels' activation and vectorised inner loops (the stride-1
 * convolution, a step of the reverse solve, the Gram update of lstsq), in C.
 *
 * The wheel stays portable (no -march flag) and still uses the CPU's vectors:
 * on x86-64 Linux with glibc, the loops are compiled twice, for AVX2 and for
 * the baseline, the right one picked once at load time (GCC / clang
 * target_clones), on 32-byte vectors. The stride-1 convolution's loop
 * (revdeconv_correlate_taps), the hot one, has an instance per vector width
 * instead, each on a vector type of its width (16 bytes for the baseline, 32
 * for AVX2), and each call takes the CPU's own (__builtin_cpu_supports): GCC
 * splits vectors wider than the target's into slow code (32-byte vectors on
 * the baseline ran that loop about ten times slower than 16-byte ones). There is
 * no AVX-512 instance: on 64-byte vectors that loop ran 10-20% slower than on
 * 32-byte ones (AMD Zen 5, 512-bit units), since most of its loads (each tap
 * but the first column's) and its stores are not 64-byte aligned, and every
 * unaligned 64-byte access spans two cache lines.
 * Elsewhere the baseline build is used. The results are the same bit for bit
 * either way: each sum is evaluated in the order written, and FMA contraction
 * is off (-ffp-contract=off in setup.py; no clone enables FMA either), so wider
 * vectors only do more of the same IEEE operations at once. Building with
 * REVDECONV_PORTABLE=1 (setup.py) compiles the plain C loops that compilers
 * without GCC vector types get instead (CI tests them).
 *
 * Declared for Cython in _simd.pxd. The loops for one float type are in
 * _simd_typed.h, included below once for float and once for double; the
 * convolution's loop for one width is in _simd_correlate.h.
 */
#ifndef REVDECONV_SIMD_H
#define REVDECONV_SIMD_H

#include <Python.h> /* Py_ssize_t; Python.h comes before the standard headers */
#include <string.h> /* memcpy */

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute) \
    && !defined(REVDECONV_PORTABLE)
#if __has_attribute(target_clones)
#define REVDECONV_CLONES __attribute__((target_clones("avx2", "default")))
#define REVDECONV_DISPATCH 1 /* an instance per vector width, picked per call */
#endif
#endif
#ifndef REVDECONV_CLONES
#define REVDECONV_CLONES
#endif
#ifndef REVDECONV_DISPATCH
#define REVDECONV_DISPATCH 0
#endif

/* GCC / clang vector types: 32 bytes of values per operation (in the
 * convolution's loop, the width of its instance). */
#if defined(__GNUC__) && !defined(REVDECONV_PORTABLE)
#define REVDECONV_VECTORS 1
#else
#define REVDECONV_VECTORS 0
#endif

/* The activations (SPEC section 2), by the codes the kernels take. Python
 * reads them from revdeconv._convolve.ACTIVATION_CODES. NaN passes through
 * each (comparisons with NaN are false), as np.clip / np.maximum pass it
 * in the NumPy fallback. */
enum revdeconv_activation {
    REVDECONV_IDENTITY = 0,
    REVDECONV_RELU = 1,
    REVDECONV_CLIP = 2
};

#if REVDECONV_VECTORS
/* The activation on a vector v of type vec (integer lanes: mask), by
 * bitwise selects between v and the vectors zero and one. */
#define REVDECONV_SELECT(M, A, B) (vec)(((mask)(A) & (M)) | ((mask)(B) & ~(M)))
#define REVDECONV_ACTIVATE_VECTOR(v)                 \
    do {                                             \
        if (activation != REVDECONV_IDENTITY)        \
            v = REVDECONV_SELECT(v < zero, zero, v); \
        if (activation == REVDECONV_CLIP)            \
            v = REVDECONV_SELECT(v > one, one, v);   \
    } while (0)
/* The end of revdeconv_correlate_taps's vector of sums v at t: + the bias, f, store. */
#define REVDECONV_FINISH_AT(v, t)               \
    do {                                        \
        memcpy(&w, bias + (t), sizeof w);       \
        v = v + w;                              \
        REVDECONV_ACTIVATE_VECTOR(v);           \
        memcpy(out + (t), &v, sizeof v);        \
    } while (0)
#endif

/* revdeconv_NAME_float and revdeconv_NAME_double, from the same source. */
#define REVDECONV_PASTE_(name, type) name##_##type
#define REVDECONV_PASTE(name, type) REVDECONV_PASTE_(name, type)
#define REVDECONV_TYPED(name) REVDECONV_PASTE(name, REVDECONV_T)
/* revdeconv_NAME16_float ...: one instance per vector width (REVDECONV_BYTES). */
#define REVDECONV_PASTE3_(name, bytes, type) name##bytes##_##type
#define REVDECONV_PASTE3(name, bytes, type) REVDECONV_PASTE3_(name, bytes, type)
#define REVDECONV_WIDE(name) REVDECONV_PASTE3(name, REVDECONV_BYTES, REVDECONV_T)

#define REVDECONV_T float
#define REVDECONV_MASK int /* an integer of the float's width */
#include "_simd_typed.h"
#undef REVDECONV_T
#undef REVDECONV_MASK

#define REVDECONV_T double
#define REVDECONV_MASK long long
#include "_simd_typed.h"
#undef REVDECONV_T
#undef REVDECONV_MASK

/* gram[a*ld + b] += sum over r < n of X[r*ld + a] * X[r*ld + b], on the 4x4
 * tiles on and above the diagonal (ld is a multiple of 4). Each sum runs
 * over r in order, tiles or not; the 16 sums of a tile, or the 32 of two
 * side by side (two tiles at once: twice the independent additions while
 * each waits on the one before, and a row's broadcasts serve both), stay in
 * registers while the rows go by. Not every module calls it: hence inline
 * (no warning). */
REVDECONV_CLONES static inline void revdeconv_gram_update(double *gram, const double *X,
                                                          Py_ssize_t n, Py_ssize_t ld) {
    Py_ssize_t a0, b0, r;
#if REVDECONV_VECTORS
    typedef double v4 __attribute__((vector_size(32)));
    for (a0 = 0; a0 < ld; a0 += 4) {
        for (b0 = a0; b0 + 4 < ld; b0 += 8) {
            v4 s0, s1, s2, s3, t0, t1, t2, t3, xb, xc;
            memcpy(&s0, gram + (a0 + 0) * ld + b0, 32);
            memcpy(&s1, gram + (a0 + 1) * ld + b0, 32);
            memcpy(&s2, gram + (a0 + 2) * ld + b0, 32);
            memcpy(&s3, gram + (a0 + 3) * ld + b0, 32);
            memcpy(&t0, gram + (a0 + 0) * ld + b0 + 4, 32);
            memcpy(&t1, gram + (a0 + 1) * ld + b0 + 4, 32);
            memcpy(&t2, gram + (a0 + 2) * ld + b0 + 4, 32);
            memcpy(&t3, gram + (a0 + 3) * ld + b0 + 4, 32);
            for (r = 0; r < n; r++) {
                const double *row = X + r * ld;
                memcpy(&xb, row + b0, 32);
                memcpy(&xc, row + b0 + 4, 32);
                v4 x0 = {row[a0], row[a0], row[a0], row[a0]};
                v4 x1 = {row[a0 + 1], row[a0 + 1], row[a0 + 1], row[a0 + 1]};
                v4 x2 = {row[a0 + 2], row[a0 + 2], row[a0 + 2], row[a0 + 2]};
                v4 x3 = {row[a0 + 3], row[a0 + 3], row[a0 + 3], row[a0 + 3]};
                s0 = s0 + x0 * xb;
                s1 = s1 + x1 * xb;
                s2 = s2 + x2 * xb;
                s3 = s3 + x3 * xb;
                t0 = t0 + x0 * xc;
                t1 = t1 + x1 * xc;
                t2 = t2 + x2 * xc;
                t3 = t3 + x3 * xc;
            }
            memcpy(gram + (a0 + 0) * ld + b0, &s0, 32);
            memcpy(gram + (a0 + 1) * ld + b0, &s1, 32);
            memcpy(gram + (a0 + 2) * ld + b0, &s2, 32);
            memcpy(gram + (a0 + 3) * ld + b0, &s3, 32);
            memcpy(gram + (a0 + 0) * ld + b0 + 4, &t0, 32);
            memcpy(gram + (a0 + 1) * ld + b0 + 4, &t1, 32);
            memcpy(gram + (a0 + 2) * ld + b0 + 4, &t2, 32);
            memcpy(gram + (a0 + 3) * ld + b0 + 4, &t3, 32);
        }
        if (b0 < ld) { /* the last tile of the strip, alone */
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

#endif /* REVDECONV_SIMD_H */
