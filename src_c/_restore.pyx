# cython: language_level=3, cdivision=True
"""The passes of ``revdeconv.restore``: the forward model ``A``, its adjoint,
the Laplacian, gradient and divergence, and the solvers' updates, fused so
that one pass over the rows does what one step needs.

Layout (``revdeconv._restore_compiled`` builds it):

- x-space (the restored images): flat channels-last buffers described by a
  geometry table ``xg`` (``_batch.pxd``).
- y-space (the filtered images): flat buffers in which each image has a border
  of zeros, ``pad_h`` rows above and ``pad_w`` columns to the left and enough
  below and to the right; ``yg[n, OFFSET]`` is the index of image n's pixel
  (0, 0), ``ypitch[n]`` the values per padded row. The adjoint reads those
  zeros instead of testing which blocks cover a pixel; only the interior is
  ever written.
- ``A`` is the valid, strided cross-correlation of SPEC section 2 without the
  bias or activation; its taps are summed in raster order from 0. The adjoint
  ``A^T`` gathers, for each pixel, the products of the blocks that cover it,
  taps in reverse raster order (the raster order of the flipped kernel, which
  makes it a correlation at stride 1): no atomics, and the NumPy fallback's
  scatter adds the same products in the same order.
- Sums (dot products, norms) are taken in double, row by row: ``sums[row]``
  receives the row's sums, which the caller adds up row by row in a fixed
  order, so no result depends on the number of threads.

Per-system scalars (one per image and channel, ``n * C + c``, or one per
image for the coupled TV) arrive in the images' float type. The caller has
validated every shape; nothing here checks its input.
"""

from libc.math cimport sqrt
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid

from _simd cimport correlate_taps, IDENTITY
from _batch cimport FIRST_ROW, HEIGHT, OFFSET, WIDTH, batch_rows, fits, image_of_row

cdef extern from *:
    """
    /* TV's projection: s[px] = 1 / max(1, sqrt(s[px]) / lam) (s[px] the squared norm of
     * the pixel's dual). Written with SSE2 where there is SSE2: GCC vectorises neither
     * sqrt nor a select under the default -fmath-errno -ftrapping-math, and the branch
     * it makes of the select mispredicts. MAXPD(one, v) is ``one > v ? one : v``, the
     * select below, NaN included; sqrt and the divisions round as the scalar ones. */
    #if defined(__SSE2__) && !defined(REVDECONV_PORTABLE)
    #include <emmintrin.h>
    #define REVDECONV_TV_SSE2 1
    #else
    #define REVDECONV_TV_SSE2 0
    #endif
    #include <math.h>
    static void revdeconv_tv_scales_double(double* s, Py_ssize_t n, double lam) {
        Py_ssize_t i = 0;
    #if REVDECONV_TV_SSE2
        const __m128d l = _mm_set1_pd(lam), one = _mm_set1_pd(1.0);
        for (; i + 2 <= n; i += 2) {
            __m128d v = _mm_div_pd(_mm_sqrt_pd(_mm_loadu_pd(s + i)), l);
            _mm_storeu_pd(s + i, _mm_div_pd(one, _mm_max_pd(one, v)));
        }
    #endif
        for (; i < n; i++) {
            double v = sqrt(s[i]) / lam;
            v = v < 1 ? 1 : v;
            s[i] = 1 / v;
        }
    }
    static void revdeconv_tv_scales_float(float* s, Py_ssize_t n, float lam) {
        Py_ssize_t i = 0;
    #if REVDECONV_TV_SSE2
        const __m128 l = _mm_set1_ps(lam), one = _mm_set1_ps(1.0f);
        for (; i + 4 <= n; i += 4) {
            __m128 v = _mm_div_ps(_mm_sqrt_ps(_mm_loadu_ps(s + i)), l);
            _mm_storeu_ps(s + i, _mm_div_ps(one, _mm_max_ps(one, v)));
        }
    #endif
        for (; i < n; i++) {
            float v = sqrtf(s[i]) / lam;
            v = v < 1 ? 1 : v;
            s[i] = 1 / v;
        }
    }
    """
    void tv_scales_d "revdeconv_tv_scales_double" (double*, Py_ssize_t, double) noexcept nogil
    void tv_scales_f "revdeconv_tv_scales_float" (float*, Py_ssize_t, float) noexcept nogil


cdef extern from *:
    """
    /* The row loops of the passes, compiled for AVX-512, AVX2 and the baseline, the
     * CPU's own picked at load time (as _simd.h's REVDECONV_CLONES, plus AVX-512:
     * these loops do a few operations per value, so the vector width sets their
     * speed; 64-byte vectors made the Tikhonov passes about 12% faster than 32-byte
     * ones on AMD Zen 5). The same IEEE operations in the same order on every
     * width (no FMA): the same results. */
    #include "_simd.h"
    #if REVDECONV_DISPATCH
    #define REVDECONV_RS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
    #else
    #define REVDECONV_RS_CLONES
    #endif
    /* Helpers inlined into each clone (so that they take its vector width), and
     * pointers to arrays that do not overlap (no checks before the vector loops). */
    #if defined(__GNUC__)
    #define REVDECONV_RS_INLINE static inline __attribute__((always_inline))
    #define REVDECONV_RS_RESTRICT __restrict__
    #else
    #define REVDECONV_RS_INLINE static inline
    #define REVDECONV_RS_RESTRICT __restrict
    #endif
    #define REVDECONV_RS_LAP(up, down, left, right)                        \\
        ((((T)0 + ((up) ? v[t - pitch] - v[t] : (T)0))                     \\
          + ((down) ? v[t + pitch] - v[t] : (T)0))                         \\
         + ((left) ? v[t - nc] - v[t] : (T)0))                             \\
        + ((right) ? v[t + nc] - v[t] : (T)0)
    /* TV's primal step at value t (selects, not branches: which way they go depends on
     * the data); tv_primal's measuring loop does the same operations. */
    #define REVDECONV_RS_PRIMAL(z)                                                      \\
        do {                                                                            \\
            T nw = x[t] - step * (z);                                                   \\
            nw = nw < lo ? lo : nw;                                                     \\
            nw = nw > hi ? hi : nw;                                                     \\
            xbar[t] = 2 * nw - x[t];                                                    \\
            x[t] = nw;                                                                  \\
        } while (0)
    #define REVDECONV_RS_ROWS(T)                                                        \\
    /* One row of the graph Laplacian (Neumann border): the differences to the          \\
     * neighbours inside the image, added up, down, left, right, from 0. */             \\
    REVDECONV_RS_CLONES static void revdeconv_rs_lap_##T(                               \\
            const T *v, T *out, Py_ssize_t pixels, Py_ssize_t nc, Py_ssize_t pitch,     \\
            int up, int down) {                                                         \\
        Py_ssize_t t, n = pixels * nc;                                                  \\
        if (pixels == 1) {                                                              \\
            for (t = 0; t < n; t++) out[t] = REVDECONV_RS_LAP(up, down, 0, 0);          \\
            return;                                                                     \\
        }                                                                               \\
        for (t = 0; t < nc; t++) out[t] = REVDECONV_RS_LAP(up, down, 0, 1);             \\
        if (up && down)                                                                 \\
            for (t = nc; t < n - nc; t++) out[t] = REVDECONV_RS_LAP(1, 1, 1, 1);        \\
        else if (up)                                                                    \\
            for (t = nc; t < n - nc; t++) out[t] = REVDECONV_RS_LAP(1, 0, 1, 1);        \\
        else if (down)                                                                  \\
            for (t = nc; t < n - nc; t++) out[t] = REVDECONV_RS_LAP(0, 1, 1, 1);        \\
        else                                                                            \\
            for (t = nc; t < n - nc; t++) out[t] = REVDECONV_RS_LAP(0, 0, 1, 1);        \\
        for (t = n - nc; t < n; t++) out[t] = REVDECONV_RS_LAP(up, down, 1, 0);         \\
    }                                                                                   \\
    /* out = b + w * v (sign > 0) or b - w * v. */                                      \\
    REVDECONV_RS_CLONES static void revdeconv_rs_mix_##T(                               \\
            T *out, const T *b, const T *w, const T *v, Py_ssize_t n, int sign) {       \\
        Py_ssize_t t;                                                                   \\
        if (sign > 0)                                                                   \\
            for (t = 0; t < n; t++) out[t] = b[t] + w[t] * v[t];                        \\
        else                                                                            \\
            for (t = 0; t < n; t++) out[t] = b[t] - w[t] * v[t];                        \\
    }                                                                                   \\
    /* One row of A at a stride > 1 along rows (see _forward_row): per output value     \\
     * the taps in raster order from 0, read where they lie. */                         \\
    REVDECONV_RS_INLINE void revdeconv_rs_fwd_##T(                                      \\
            const T *REVDECONV_RS_RESTRICT x, Py_ssize_t pitch,                         \\
            const T *REVDECONV_RS_RESTRICT kernel,                                      \\
            T *REVDECONV_RS_RESTRICT out, Py_ssize_t out_w, Py_ssize_t nc,              \\
            Py_ssize_t kh,                                                              \\
            Py_ssize_t kw, Py_ssize_t sw) {                                             \\
        Py_ssize_t q, c, i, j, n = kh * kw;                                             \\
        for (q = 0; q < out_w; q++)                                                     \\
            for (c = 0; c < nc; c++) {                                                  \\
                T total = 0;                                                            \\
                for (i = 0; i < kh; i++)                                                \\
                    for (j = 0; j < kw; j++)                                            \\
                        total = total + kernel[c * n + i * kw + j]                      \\
                                        * x[i * pitch + (q * sw + j) * nc + c];         \\
                out[q * nc + c] = total;                                                \\
            }                                                                           \\
    }                                                                                   \\
    /* The common shapes with constant sizes: the loops unrolled. */                    \\
    REVDECONV_RS_CLONES static void revdeconv_rs_forward_##T(                           \\
            const T *x, Py_ssize_t pitch, const T *kernel, T *out, Py_ssize_t out_w,    \\
            Py_ssize_t nc, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sw) {               \\
        if (nc == 3 && kh == 3 && kw == 3)                                              \\
            revdeconv_rs_fwd_##T(x, pitch, kernel, out, out_w, 3, 3, 3, sw);            \\
        else if (nc == 3)                                                               \\
            revdeconv_rs_fwd_##T(x, pitch, kernel, out, out_w, 3, kh, kw, sw);          \\
        else if (nc == 1)                                                               \\
            revdeconv_rs_fwd_##T(x, pitch, kernel, out, out_w, 1, kh, kw, sw);          \\
        else                                                                            \\
            revdeconv_rs_fwd_##T(x, pitch, kernel, out, out_w, nc, kh, kw, sw);         \\
    }                                                                                   \\
    /* One row of A^T where blocks do not overlap (see _adjoint_blocks): pixel          \\
     * (q * sw + j) gets 0 + K[c, i, j] * y[q, c], or 0 without a tap. */               \\
    REVDECONV_RS_INLINE void revdeconv_rs_blk_##T(                                      \\
            const T *REVDECONV_RS_RESTRICT y, const T *REVDECONV_RS_RESTRICT kernel,    \\
            T *REVDECONV_RS_RESTRICT out,                                               \\
            Py_ssize_t i, Py_ssize_t out_w, Py_ssize_t nc, Py_ssize_t kh,               \\
            Py_ssize_t kw, Py_ssize_t sw) {                                             \\
        Py_ssize_t col, q, j, c, n = kh * kw, full = out_w / sw;                        \\
        const T zero = 0;                                                               \\
        if (i >= kh) {                                                                  \\
            for (c = 0; c < out_w * nc; c++) out[c] = 0;                                \\
            return;                                                                     \\
        }                                                                               \\
        /* whole blocks first: no test of the row's end */                              \\
        for (q = 0; q < full; q++)                                                      \\
            for (j = 0; j < sw; j++)                                                    \\
                for (c = 0; c < nc; c++)                                                \\
                    out[(q * sw + j) * nc + c] =                                        \\
                        j < kw ? zero + kernel[c * n + i * kw + j] * y[q * nc + c] : (T)0; \\
        for (col = full * sw, j = 0; col < out_w; col++, j++)                           \\
            for (c = 0; c < nc; c++)                                                    \\
                out[col * nc + c] =                                                     \\
                    j < kw ? zero + kernel[c * n + i * kw + j] * y[full * nc + c] : (T)0; \\
    }                                                                                   \\
    REVDECONV_RS_CLONES static void revdeconv_rs_blocks_##T(                            \\
            const T *y, const T *kernel, T *out, Py_ssize_t i, Py_ssize_t out_w,        \\
            Py_ssize_t nc, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sw) {               \\
        if (nc == 3 && kh == 3 && kw == 3 && sw == 3)                                   \\
            revdeconv_rs_blk_##T(y, kernel, out, i, out_w, 3, 3, 3, 3);                 \\
        else if (nc == 3)                                                               \\
            revdeconv_rs_blk_##T(y, kernel, out, i, out_w, 3, kh, kw, sw);              \\
        else                                                                            \\
            revdeconv_rs_blk_##T(y, kernel, out, i, out_w, nc, kh, kw, sw);             \\
    }                                                                                   \\
    /* CG's update of x and r in one loop: q = aty + w * v (sign > 0) or aty - w * v,   \\
     * x += s * p, res -= s * q; the arrays do not overlap (restrict: no checks). */    \\
    REVDECONV_RS_CLONES static void revdeconv_rs_step_##T(                              \\
            T *REVDECONV_RS_RESTRICT x, T *REVDECONV_RS_RESTRICT res,                   \\
            const T *REVDECONV_RS_RESTRICT p, const T *REVDECONV_RS_RESTRICT aty,       \\
            const T *REVDECONV_RS_RESTRICT w, const T *REVDECONV_RS_RESTRICT v,         \\
            const T *REVDECONV_RS_RESTRICT s, Py_ssize_t n,                             \\
            int sign) {                                                                 \\
        Py_ssize_t t;                                                                   \\
        if (sign > 0)                                                                   \\
            for (t = 0; t < n; t++) {                                                   \\
                T q = aty[t] + w[t] * v[t];                                             \\
                x[t] = x[t] + s[t] * p[t];                                              \\
                res[t] = res[t] - s[t] * q;                                             \\
            }                                                                           \\
        else                                                                            \\
            for (t = 0; t < n; t++) {                                                   \\
                T q = aty[t] - w[t] * v[t];                                             \\
                x[t] = x[t] + s[t] * p[t];                                              \\
                res[t] = res[t] - s[t] * q;                                             \\
            }                                                                           \\
    }                                                                                   \\
    /* TV's loops over contiguous values (see _dual_data_row, _dual_tv_row, _primal_row). */ \\
    REVDECONV_RS_CLONES static void revdeconv_rs_dual_data_##T(                         \\
            const T *REVDECONV_RS_RESTRICT ax, T *REVDECONV_RS_RESTRICT aold,           \\
            T *REVDECONV_RS_RESTRICT dual, const T *REVDECONV_RS_RESTRICT data,         \\
            Py_ssize_t n, T s, int first) {                                             \\
        Py_ssize_t t;                                                                   \\
        T one_s = 1 + s;                                                                \\
        if (first)                                                                      \\
            for (t = 0; t < n; t++) {                                                   \\
                aold[t] = ax[t];                                                        \\
                dual[t] = (dual[t] + s * (ax[t] - data[t])) / one_s;                    \\
            }                                                                           \\
        else                                                                            \\
            for (t = 0; t < n; t++) {                                                   \\
                dual[t] = (dual[t] + s * ((2 * ax[t] - aold[t]) - data[t])) / one_s;    \\
                aold[t] = ax[t];                                                        \\
            }                                                                           \\
    }                                                                                   \\
    REVDECONV_RS_CLONES static void revdeconv_rs_dual_grad_##T(                         \\
            const T *REVDECONV_RS_RESTRICT xbar, T *REVDECONV_RS_RESTRICT q0,           \\
            T *REVDECONV_RS_RESTRICT q1, Py_ssize_t n,                                  \\
            Py_ssize_t nc, Py_ssize_t pitch, int last_row, T s) {                       \\
        Py_ssize_t t;                                                                   \\
        T zero = 0;                                                                     \\
        if (last_row)                                                                   \\
            for (t = 0; t < n; t++) q0[t] = q0[t] + s * zero;                           \\
        else                                                                            \\
            for (t = 0; t < n; t++) q0[t] = q0[t] + s * (xbar[t + pitch] - xbar[t]);    \\
        for (t = 0; t < n - nc; t++) q1[t] = q1[t] + s * (xbar[t + nc] - xbar[t]);      \\
        for (t = n - nc; t < n; t++) q1[t] = q1[t] + s * zero;                          \\
    }                                                                                   \\
    REVDECONV_RS_INLINE void revdeconv_rs_dual_scale_c_##T(                             \\
            T *REVDECONV_RS_RESTRICT q0, T *REVDECONV_RS_RESTRICT q1,                   \\
            const T *REVDECONV_RS_RESTRICT scales, Py_ssize_t pixels,                   \\
            Py_ssize_t nc) {                                                            \\
        Py_ssize_t px, c;                                                               \\
        for (px = 0; px < pixels; px++)                                                 \\
            for (c = px * nc; c < (px + 1) * nc; c++) {                                 \\
                q0[c] = q0[c] * scales[px];                                             \\
                q1[c] = q1[c] * scales[px];                                             \\
            }                                                                           \\
    }                                                                                   \\
    REVDECONV_RS_CLONES static void revdeconv_rs_dual_scale_##T(                        \\
            T *REVDECONV_RS_RESTRICT q0, T *REVDECONV_RS_RESTRICT q1,                   \\
            const T *REVDECONV_RS_RESTRICT scales, Py_ssize_t pixels,                   \\
            Py_ssize_t nc) {                                                            \\
        if (nc == 3) revdeconv_rs_dual_scale_c_##T(q0, q1, scales, pixels, 3);          \\
        else if (nc == 1) revdeconv_rs_dual_scale_c_##T(q0, q1, scales, pixels, 1);     \\
        else revdeconv_rs_dual_scale_c_##T(q0, q1, scales, pixels, nc);                 \\
    }                                                                                   \\
    REVDECONV_RS_CLONES static void revdeconv_rs_primal_##T(                            \\
            const T *REVDECONV_RS_RESTRICT aty, const T *REVDECONV_RS_RESTRICT q0,      \\
            const T *REVDECONV_RS_RESTRICT q0_up,                                       \\
            const T *REVDECONV_RS_RESTRICT q1, T *REVDECONV_RS_RESTRICT x,              \\
            T *REVDECONV_RS_RESTRICT xbar, Py_ssize_t n,                                \\
            Py_ssize_t nc, T step, T lo, T hi) {                                        \\
        Py_ssize_t t;                                                                   \\
        for (t = 0; t < nc; t++)                                                        \\
            REVDECONV_RS_PRIMAL(aty[t] - ((q0[t] - q0_up[t]) + q1[t]));                 \\
        for (t = nc; t < n; t++)                                                        \\
            REVDECONV_RS_PRIMAL(aty[t] - ((q0[t] - q0_up[t]) + (q1[t] - q1[t - nc])));  \\
    }                                                                                   \\
    /* scales[px] = the squared norm of the pixel's dual, over its channels, in order. */ \\
    REVDECONV_RS_INLINE void revdeconv_rs_dual_norms_c_##T(                             \\
            const T *REVDECONV_RS_RESTRICT q0, const T *REVDECONV_RS_RESTRICT q1,       \\
            T *REVDECONV_RS_RESTRICT scales,                                            \\
            Py_ssize_t pixels, Py_ssize_t nc) {                                         \\
        Py_ssize_t px, c;                                                               \\
        for (px = 0; px < pixels; px++) {                                               \\
            T norm2 = 0;                                                                \\
            for (c = px * nc; c < (px + 1) * nc; c++)                                   \\
                norm2 = norm2 + (q0[c] * q0[c] + q1[c] * q1[c]);                        \\
            scales[px] = norm2;                                                         \\
        }                                                                               \\
    }                                                                                   \\
    REVDECONV_RS_CLONES static void revdeconv_rs_dual_norms_##T(                        \\
            const T *REVDECONV_RS_RESTRICT q0, const T *REVDECONV_RS_RESTRICT q1,       \\
            T *REVDECONV_RS_RESTRICT scales,                                            \\
            Py_ssize_t pixels, Py_ssize_t nc) {                                         \\
        if (nc == 3) revdeconv_rs_dual_norms_c_##T(q0, q1, scales, pixels, 3);          \\
        else if (nc == 1) revdeconv_rs_dual_norms_c_##T(q0, q1, scales, pixels, 1);     \\
        else revdeconv_rs_dual_norms_c_##T(q0, q1, scales, pixels, nc);                 \\
    }                                                                                   \\
    /* Per channel (g of them, values contiguous), the sum over a row of a * b (a when  \\
     * b is NULL) in double: pixel px to lane px % 4, the lanes then added in order     \\
     * (the order of _lane_sums below; the lanes of a group of 4 pixels are 4 g         \\
     * contiguous running sums, a loop that vectorises). */                             \\
    REVDECONV_RS_INLINE void revdeconv_rs_sums_g_##T(                                   \\
            const T *a, const T *b, Py_ssize_t pixels, Py_ssize_t g, double *out) {     \\
        double acc[4 * 16];                                                             \\
        Py_ssize_t px, m, blocks = pixels / 4, n = 4 * g;                               \\
        for (m = 0; m < n; m++) acc[m] = 0;                                             \\
        if (b == NULL)                                                                  \\
            for (px = 0; px < blocks; px++)                                             \\
                for (m = 0; m < n; m++) acc[m] += a[px * n + m];                        \\
        else                                                                            \\
            for (px = 0; px < blocks; px++)                                             \\
                for (m = 0; m < n; m++) acc[m] += (double)a[px * n + m] * b[px * n + m]; \\
        for (m = blocks * n; m < pixels * g; m++)                                       \\
            acc[m - blocks * n] += b == NULL ? (double)a[m] : (double)a[m] * b[m];      \\
        for (m = 0; m < g; m++)                                                         \\
            out[m] = ((acc[m] + acc[g + m]) + acc[2 * g + m]) + acc[3 * g + m];         \\
    }                                                                                   \\
    /* The channel counts of images (3, 1) with a constant g: unrolled. */              \\
    REVDECONV_RS_CLONES static void revdeconv_rs_sums_##T(const T *a, const T *b,       \\
                                                       Py_ssize_t pixels, Py_ssize_t g, \\
                                                       double *out) {                   \\
        if (g == 3) revdeconv_rs_sums_g_##T(a, b, pixels, 3, out);                      \\
        else if (g == 1) revdeconv_rs_sums_g_##T(a, b, pixels, 1, out);                 \\
        else revdeconv_rs_sums_g_##T(a, b, pixels, g, out);                             \\
    }
    #define T double
    REVDECONV_RS_ROWS(double)
    #undef T
    #define T float
    REVDECONV_RS_ROWS(float)
    #undef T
    """
    void rs_lap_d "revdeconv_rs_lap_double" (const double*, double*, Py_ssize_t, Py_ssize_t,
                                             Py_ssize_t, int, int) noexcept nogil
    void rs_lap_f "revdeconv_rs_lap_float" (const float*, float*, Py_ssize_t, Py_ssize_t,
                                            Py_ssize_t, int, int) noexcept nogil
    void rs_sums_d "revdeconv_rs_sums_double" (const double*, const double*, Py_ssize_t,
                                               Py_ssize_t, double*) noexcept nogil
    void rs_sums_f "revdeconv_rs_sums_float" (const float*, const float*, Py_ssize_t,
                                              Py_ssize_t, double*) noexcept nogil
    void rs_forward_d "revdeconv_rs_forward_double" (
        const double*, Py_ssize_t, const double*, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
        Py_ssize_t, Py_ssize_t) noexcept nogil
    void rs_forward_f "revdeconv_rs_forward_float" (
        const float*, Py_ssize_t, const float*, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
        Py_ssize_t, Py_ssize_t) noexcept nogil
    void rs_blocks_d "revdeconv_rs_blocks_double" (
        const double*, const double*, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
        Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void rs_blocks_f "revdeconv_rs_blocks_float" (
        const float*, const float*, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
        Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void rs_step_d "revdeconv_rs_step_double" (
        double*, double*, const double*, const double*, const double*, const double*,
        const double*, Py_ssize_t, int) noexcept nogil
    void rs_step_f "revdeconv_rs_step_float" (
        float*, float*, const float*, const float*, const float*, const float*,
        const float*, Py_ssize_t, int) noexcept nogil
    void rs_dual_data_d "revdeconv_rs_dual_data_double" (
        const double*, double*, double*, const double*, Py_ssize_t, double, int) noexcept nogil
    void rs_dual_data_f "revdeconv_rs_dual_data_float" (
        const float*, float*, float*, const float*, Py_ssize_t, float, int) noexcept nogil
    void rs_dual_grad_d "revdeconv_rs_dual_grad_double" (
        const double*, double*, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, int,
        double) noexcept nogil
    void rs_dual_grad_f "revdeconv_rs_dual_grad_float" (
        const float*, float*, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, int,
        float) noexcept nogil
    void rs_dual_scale_d "revdeconv_rs_dual_scale_double" (
        double*, double*, const double*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void rs_dual_scale_f "revdeconv_rs_dual_scale_float" (
        float*, float*, const float*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void rs_primal_d "revdeconv_rs_primal_double" (
        const double*, const double*, const double*, const double*, double*, double*,
        Py_ssize_t, Py_ssize_t, double, double, double) noexcept nogil
    void rs_primal_f "revdeconv_rs_primal_float" (
        const float*, const float*, const float*, const float*, float*, float*,
        Py_ssize_t, Py_ssize_t, float, float, float) noexcept nogil
    void rs_dual_norms_d "revdeconv_rs_dual_norms_double" (
        const double*, const double*, double*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void rs_dual_norms_f "revdeconv_rs_dual_norms_float" (
        const float*, const float*, float*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void rs_mix_d "revdeconv_rs_mix_double" (double*, const double*, const double*,
                                             const double*, Py_ssize_t, int) noexcept nogil
    void rs_mix_f "revdeconv_rs_mix_float" (float*, const float*, const float*,
                                            const float*, Py_ssize_t, int) noexcept nogil


cdef inline void _mix(floating* out, const floating* b, const floating* w, const floating* v,
                      Py_ssize_t n, int sign) noexcept nogil:
    """``out = b + w * v`` (``sign`` > 0) or ``b - w * v``, value by value."""
    if floating is float:
        rs_mix_f(out, b, w, v, n, sign)
    else:
        rs_mix_d(out, b, w, v, n, sign)


cdef inline void _tv_scales(floating* s, Py_ssize_t n, floating lam) noexcept nogil:
    if floating is float:
        tv_scales_f(s, n, lam)
    else:
        tv_scales_d(s, n, lam)


# Sums over a row: pixel ``px`` adds to lane ``px % LANES`` (one running sum per lane
# and channel, from 0), then the lanes are added in order; independent sums, so the
# loop is not one chain of dependent additions. ``_restore_numpy._row_sums`` adds alike.
cdef enum:
    LANES = 4
    GROUP = 16                  # channels summed at once (any count, GROUP at a time)


cdef inline void _lane_sums(const floating* a, const floating* b, Py_ssize_t pixels,
                            Py_ssize_t pitch, Py_ssize_t g, double* out) noexcept nogil:
    """``out[c] = sum a[px * pitch + c] * b[...]`` (``a`` alone when ``b`` is NULL), in
    double, for ``c < g``: the sums of images of more than ``GROUP`` channels, ``GROUP``
    at a time (fewer: ``revdeconv_rs_sums``, the same order)."""
    cdef double acc[LANES * GROUP]
    cdef Py_ssize_t px, j, l, blocks = pixels // LANES
    cdef const floating* at
    for j in range(LANES * g):
        acc[j] = 0
    for px in range(blocks):
        at = a + px * LANES * pitch
        for l in range(LANES):
            for j in range(g):
                if b == NULL:
                    acc[l * g + j] += at[l * pitch + j]
                else:
                    acc[l * g + j] += <double>at[l * pitch + j] * b[(px * LANES + l) * pitch + j]
    for px in range(blocks * LANES, pixels):
        l = px - blocks * LANES
        for j in range(g):
            if b == NULL:
                acc[l * g + j] += a[px * pitch + j]
            else:
                acc[l * g + j] += <double>a[px * pitch + j] * b[px * pitch + j]
    for j in range(g):
        out[j] = ((acc[j] + acc[g + j]) + acc[2 * g + j]) + acc[3 * g + j]


cdef void _channel_sums(const floating* a, const floating* b, Py_ssize_t pixels,
                        Py_ssize_t n_channels, double* out) noexcept nogil:
    """Per channel, the sum over a row of ``a * b`` (``a`` when ``b`` is NULL), in lanes."""
    cdef Py_ssize_t c0
    if n_channels <= GROUP:
        if floating is float:
            rs_sums_f(a, b, pixels, n_channels, out)
        else:
            rs_sums_d(a, b, pixels, n_channels, out)
    else:
        c0 = 0
        while c0 < n_channels:
            _lane_sums(a + c0, NULL if b == NULL else b + c0, pixels, n_channels,
                       min(<Py_ssize_t>GROUP, n_channels - c0), out + c0)
            c0 += GROUP


cdef void _correlate_row(floating* out, const floating* src, const Py_ssize_t* offsets,
                         Py_ssize_t n_taps, const floating* tiled, Py_ssize_t chunk,
                         Py_ssize_t n) noexcept nogil:
    """``out[t] = sum_k tiled[k, t] * src[offsets[k] + t]`` for ``t < n``, taps in order
    from 0, by ``correlate_taps`` (``_simd.h``, vectorised), ``chunk`` values at a time;
    ``tiled`` row ``n_taps`` is zeros (the bias it adds)."""
    cdef Py_ssize_t start = 0
    while start < n:           # (a Cython range needs a constant step)
        correlate_taps(out + start, src + start, offsets, n_taps, tiled, chunk,
                       min(chunk, n - start), IDENTITY)
        start += chunk


cdef void _forward_row(const floating* x, Py_ssize_t x_pitch, const floating* kernel,
                       const floating* tiled, const Py_ssize_t* offsets, Py_ssize_t chunk,
                       floating* out, Py_ssize_t out_w, Py_ssize_t n_channels, Py_ssize_t kh,
                       Py_ssize_t kw, Py_ssize_t stride_w) noexcept nogil:
    """One row of ``A x``; ``x`` points at the first x row it reads. ``tiled``
    (stride 1 along rows, else NULL): the taps repeated along ``chunk`` values,
    then a row of zeros; tap ``i * kw + j`` reads ``x + offsets[i * kw + j]``."""
    if tiled != NULL:
        _correlate_row(out, x, offsets, kh * kw, tiled, chunk, out_w * n_channels)
        return
    if floating is float:
        rs_forward_f(x, x_pitch, kernel, out, out_w, n_channels, kh, kw, stride_w)
    else:
        rs_forward_d(x, x_pitch, kernel, out, out_w, n_channels, kh, kw, stride_w)


cdef void _adjoint_blocks(const floating* y, const floating* kernel, floating* out,
                          Py_ssize_t i, Py_ssize_t out_w, Py_ssize_t n_channels,
                          Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride_w) noexcept nogil:
    """``_adjoint_row`` where the blocks do not overlap (``kh <= sh``, ``kw <= sw``): a
    pixel has at most one tap, ``(i, j = col mod sw)`` of block ``col // sw`` of the y
    row ``y``: its value is ``0 + K[c, i, j] * y[...]`` (0 without a tap), written
    once, in order along the row (no zeros first, no reads of ``out``)."""
    if floating is float:
        rs_blocks_f(y, kernel, out, i, out_w, n_channels, kh, kw, stride_w)
    else:
        rs_blocks_d(y, kernel, out, i, out_w, n_channels, kh, kw, stride_w)


cdef void _adjoint_row(const floating* y, Py_ssize_t y_pitch, const floating* kernel,
                       const floating* tiled, const Py_ssize_t* offsets, Py_ssize_t chunk,
                       floating* out, Py_ssize_t r, Py_ssize_t out_w, Py_ssize_t n_channels,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t stride_h,
                       Py_ssize_t stride_w) noexcept nogil:
    """Row ``r`` of ``A^T y``; ``y`` points at the padded image's pixel (0, 0).

    Pixel ``(r, col)`` gathers ``K[i, j] * y[(r - i) / sh, (col - j) / sw]`` over
    the taps in its phase (``i = r mod sh``, ``j = col mod sw``), ``i`` then
    ``j`` descending, from 0; blocks outside the image read the zero border.
    The row is built tap by tap (each tap adds to the columns of its phase),
    which adds the same products in the same order per pixel as a loop over
    the pixels would, without its branches. At stride 1 that is a
    correlation with the flipped kernel (``tiled``, ``offsets``).
    """
    cdef Py_ssize_t col, c, i, j, m, phase, shift, n_cols
    cdef const floating* src
    cdef floating* dst
    cdef floating weight
    if tiled != NULL:
        _correlate_row(out, y + (r - (kh - 1)) * y_pitch - (kw - 1) * n_channels, offsets,
                       kh * kw, tiled, chunk, out_w * n_channels)
        return
    if kh <= stride_h and kw <= stride_w:
        _adjoint_blocks(y + r // stride_h * y_pitch, kernel, out, r % stride_h, out_w,
                        n_channels, kh, kw, stride_w)
        return
    for col in range(out_w * n_channels):
        out[col] = 0
    if r % stride_h >= kh:
        return                                   # a row in a gap between blocks
    i = r % stride_h + (kh - 1 - r % stride_h) // stride_h * stride_h
    while i >= 0:
        for j in range(kw - 1, -1, -1):
            phase = j % stride_w                 # the columns this tap reaches
            shift = j // stride_w                # ... from this many blocks back
            n_cols = (out_w - phase + stride_w - 1) // stride_w
            src = y + (r - i) // stride_h * y_pitch - shift * n_channels
            for c in range(n_channels):
                weight = kernel[(c * kh + i) * kw + j]
                dst = out + phase * n_channels + c
                for m in range(n_cols):
                    dst[m * stride_w * n_channels] = (dst[m * stride_w * n_channels]
                                                      + weight * src[m * n_channels + c])
        i -= stride_h


cdef inline void _laplacian_row(const floating* v, floating* out, Py_ssize_t pixels,
                                Py_ssize_t n_channels, Py_ssize_t pitch, bint up,
                                bint down) noexcept nogil:
    """One row of the graph Laplacian (Neumann border): the differences to the
    neighbours inside the image, added up, down, left, right, from 0."""
    if floating is float:
        rs_lap_f(v, out, pixels, n_channels, pitch, up, down)
    else:
        rs_lap_d(v, out, pixels, n_channels, pitch, up, down)


# --------------------------------------------------------------------------------------
# Tikhonov: conjugate gradients on (A^T A + w R) x = A^T y, R = -Lap (order 1) or Lap^2


def cg_forward(const floating[::1] p, floating[::1] u, const Py_ssize_t[:, ::1] xg,
               floating[::1] t, const floating[::1] data, const Py_ssize_t[:, ::1] yg,
               const Py_ssize_t[::1] ypitch, const floating[:, :, ::1] kernel not None,
               const floating[:, ::1] tiled, const Py_ssize_t[:, ::1] taps,
               Py_ssize_t stride_h, Py_ssize_t stride_w, bint start, int order,
               double[:, ::1] sums_y, double[:, ::1] sums_x, floating[::1] p_new,
               const floating[::1] res, const floating[:, ::1] scale, bint step,
               int n_threads):
    """``t = A p`` on the y rows and ``u = Lap p`` on the x rows; on the ``start``
    pass (``p = x0``), ``t = A p - data``. The sums: ``sums_y[row, c]``: ``t**2``;
    ``sums_x[row, c]``: ``u**2`` (``order`` 2) or ``p * u`` (order 1): with them
    ``p * M p`` is known before ``M p`` is, ``||A p||^2 + w ||L p||^2``.

    With ``step``, first CG's new direction ``p_new = res + a p_new`` (``a``:
    ``scale`` laid out as ``cg_adjoint``'s ``weight``; ``p_new`` is ``p``), in the
    same parallel region: one start of the threads less per iteration."""
    cdef Py_ssize_t n_channels = kernel.shape[0], kh = kernel.shape[1], kw = kernel.shape[2]
    cdef Py_ssize_t n_images = xg.shape[0], row, n, r, k, col, at, width, height
    cdef const floating* tiled_taps = &tiled[0, 0] if tiled.shape[0] > 0 else NULL
    cdef floating* out
    assert fits(xg, n_channels, p.shape[0]) and fits(xg, n_channels, u.shape[0])
    assert yg.shape[0] == n_images and ypitch.shape[0] == n_images
    assert p_new.shape[0] == p.shape[0] and res.shape[0] == p.shape[0]
    with nogil, parallel(num_threads=n_threads):
        for row in prange(batch_rows(&xg[0, 0], n_images) * step, schedule="static"):
            n = image_of_row(&xg[0, 0], n_images, row)
            width = xg[n, WIDTH] * n_channels
            k = xg[n, OFFSET] + (row - xg[n, FIRST_ROW]) * width
            _mix(&p_new[k], &res[k], &scale[n, 0], &p_new[k], width, 1)
        # (the loop's end waits for every row.) One loop over the x rows: the Laplacian
        # of row r, then the y row whose last block row r is, while the rows it reads
        # are still in the cache.
        for row in prange(batch_rows(&xg[0, 0], n_images), schedule="static"):
            n = image_of_row(&xg[0, 0], n_images, row)
            r = row - xg[n, FIRST_ROW]
            height = xg[n, HEIGHT]
            width = xg[n, WIDTH] * n_channels
            k = xg[n, OFFSET] + r * width
            _laplacian_row(&p[k], &u[k], xg[n, WIDTH], n_channels, width, r > 0,
                           r < height - 1)
            _channel_sums(&u[k] if order == 2 else &p[k], &u[k], xg[n, WIDTH], n_channels,
                          &sums_x[row, 0])
            at = r - (kh - 1)                    # y row at * sh ends on this row
            if at < 0 or at % stride_h != 0 or at // stride_h >= yg[n, HEIGHT]:
                continue
            at = at // stride_h
            out = &t[yg[n, OFFSET] + at * ypitch[n]]
            _forward_row(&p[k - (kh - 1) * width], width, &kernel[0, 0, 0], tiled_taps,
                         &taps[n, 0], tiled.shape[1], out, yg[n, WIDTH], n_channels, kh, kw,
                         stride_w)
            if start:
                for col in range(yg[n, WIDTH] * n_channels):
                    out[col] = out[col] - data[yg[n, OFFSET] + at * ypitch[n] + col]
            _channel_sums(out, out, yg[n, WIDTH], n_channels,
                          &sums_y[yg[n, FIRST_ROW] + at, 0])


def cg_adjoint(const floating[::1] t, const Py_ssize_t[:, ::1] yg,
               const Py_ssize_t[::1] ypitch, const floating[::1] p, const floating[::1] u,
               floating[::1] q, const Py_ssize_t[:, ::1] xg,
               const floating[:, :, ::1] kernel not None, const floating[:, ::1] tiled,
               const Py_ssize_t[:, ::1] taps, Py_ssize_t stride_h, Py_ssize_t stride_w,
               const floating[:, ::1] weight, int order, bint start, floating[:, ::1] scratch,
               double[:, ::1] sums, floating[::1] x, floating[::1] res,
               const floating[:, ::1] scale, bint update, int n_threads):
    """``q = A^T t + w R p``, ``R p = -u`` (order 1, ``u = Lap p``) or ``Lap u``
    (order 2), ``w = weight[n, col * C + c]``. ``sums[row, c]``: ``p * q``, and on the
    ``start`` pass ``sums[row, C + c]``: ``q**2``. ``scratch`` rows hold two x rows.

    With ``update``, ``q`` is not stored but used: ``x += a p``, ``res -= a q``
    (CG's step, in the same pass; ``a``: ``scale``, laid out as
    ``weight``), and ``sums[row, c]`` receives ``res**2``."""
    cdef Py_ssize_t n_channels = kernel.shape[0], kh = kernel.shape[1], kw = kernel.shape[2]
    cdef Py_ssize_t n_images = xg.shape[0], row, n, r, k, c, col, at, width, height
    cdef const floating* tiled_taps = &tiled[0, 0] if tiled.shape[0] > 0 else NULL
    cdef floating* aty
    cdef floating* regular
    cdef const floating* weights
    assert fits(xg, n_channels, q.shape[0]) and scratch.shape[0] >= n_threads
    assert fits(xg, n_channels, x.shape[0]) and res.shape[0] == x.shape[0]
    with nogil:
        for row in prange(batch_rows(&xg[0, 0], n_images), num_threads=n_threads,
                          schedule="static"):
            n = image_of_row(&xg[0, 0], n_images, row)
            r = row - xg[n, FIRST_ROW]
            height = xg[n, HEIGHT]
            width = xg[n, WIDTH] * n_channels
            aty = &scratch[threadid(), 0]
            _adjoint_row(&t[yg[n, OFFSET]], ypitch[n], &kernel[0, 0, 0], tiled_taps,
                         &taps[n, 0], tiled.shape[1], aty, r, xg[n, WIDTH], n_channels, kh,
                         kw, stride_h, stride_w)
            k = xg[n, OFFSET] + r * width
            regular = aty + width                # the second half of the scratch row
            if order == 2:
                _laplacian_row(&u[k], regular, xg[n, WIDTH], n_channels, width, r > 0,
                               r < height - 1)
            weights = &weight[n, 0]
            if update:                           # q used, not stored
                if floating is float:
                    rs_step_f(&x[k], &res[k], &p[k], aty, weights,
                              &u[k] if order == 1 else regular, &scale[n, 0], width,
                              -1 if order == 1 else 1)
                else:
                    rs_step_d(&x[k], &res[k], &p[k], aty, weights,
                              &u[k] if order == 1 else regular, &scale[n, 0], width,
                              -1 if order == 1 else 1)
                _channel_sums(&res[k], &res[k], xg[n, WIDTH], n_channels, &sums[row, 0])
                continue
            if order == 1:
                _mix(&q[k], aty, weights, &u[k], width, -1)
            else:
                _mix(&q[k], aty, weights, regular, width, 1)
            _channel_sums(&p[k], &q[k], xg[n, WIDTH], n_channels, &sums[row, 0])
            if start:
                _channel_sums(&q[k], &q[k], xg[n, WIDTH], n_channels,
                              &sums[row, n_channels])


def cg_start(floating[::1] p, floating[::1] r, const floating[::1] q,
             const Py_ssize_t[:, ::1] xg, Py_ssize_t n_channels, double[:, ::1] sums,
             int n_threads):
    """CG's first residual and direction: ``r = -q``, ``p = r``; ``sums[row, c]``
    receives ``r**2``. (The later updates are fused into ``cg_forward`` and
    ``cg_adjoint``.)"""
    cdef Py_ssize_t n_images = xg.shape[0], row, n, k, width, first
    assert fits(xg, n_channels, p.shape[0]) and fits(xg, n_channels, q.shape[0])
    with nogil:
        for row in prange(batch_rows(&xg[0, 0], n_images), num_threads=n_threads,
                          schedule="static"):
            n = image_of_row(&xg[0, 0], n_images, row)
            width = xg[n, WIDTH] * n_channels
            first = xg[n, OFFSET] + (row - xg[n, FIRST_ROW]) * width
            for k in range(first, first + width):
                r[k] = -q[k]
                p[k] = r[k]
            _channel_sums(&r[first], &r[first], xg[n, WIDTH], n_channels, &sums[row, 0])


# --------------------------------------------------------------------------------------
# TV: Chambolle-Pock on 0.5 ||A x - y||^2 + lam TV(x) over the valid range, A scaled to
# norm <= 1 by the caller; TV couples the channels of a pixel (vectorial TV).


cdef void _dual_data_row(const floating* ax, floating* aold, floating* dual,
                         const floating* data, Py_ssize_t n, floating s,
                         bint first) noexcept nogil:
    """``dual = (dual + s (a_bar - data)) / (1 + s)``, ``a_bar = ax`` on the first step,
    else ``2 ax - aold``; ``aold = ax``. One stretch of contiguous values, no
    sums: a loop the compiler vectorises."""
    if floating is float:
        rs_dual_data_f(ax, aold, dual, data, n, s, first)
    else:
        rs_dual_data_d(ax, aold, dual, data, n, s, first)


cdef void _dual_tv_row(const floating* xbar, floating* q0, floating* q1, floating* scales,
                       Py_ssize_t pixels, Py_ssize_t n_channels, Py_ssize_t pitch,
                       bint last_row, floating s, floating lam) noexcept nogil:
    """One row of ``(q0, q1) += s grad(xbar)``, then ``* (1 / max(1, |(q0, q1)| / lam))``
    per pixel (the norm over its channels); ``scales`` holds ``pixels`` values. The
    gradient is 0 on the last row and column, where ``q + s * 0`` is computed as
    elsewhere (the same operations as the NumPy fallback)."""
    cdef Py_ssize_t n = pixels * n_channels
    if floating is float:
        rs_dual_grad_f(xbar, q0, q1, n, n_channels, pitch, last_row, s)
    else:
        rs_dual_grad_d(xbar, q0, q1, n, n_channels, pitch, last_row, s)
    if floating is float:
        rs_dual_norms_f(q0, q1, scales, pixels, n_channels)
    else:
        rs_dual_norms_d(q0, q1, scales, pixels, n_channels)
    _tv_scales(scales, pixels, lam)     # 1 / max(1, sqrt(norm2) / lam), in the float type
    if floating is float:
        rs_dual_scale_f(q0, q1, scales, pixels, n_channels)
    else:
        rs_dual_scale_d(q0, q1, scales, pixels, n_channels)


def tv_dual(const floating[::1] x, const floating[::1] xbar, floating[::1] q0,
            floating[::1] q1, const Py_ssize_t[:, ::1] xg, floating[::1] aold,
            floating[::1] dual, const floating[::1] data, const Py_ssize_t[:, ::1] yg,
            const Py_ssize_t[::1] ypitch, const floating[:, :, ::1] kernel not None,
            const floating[:, ::1] tiled, const Py_ssize_t[:, ::1] taps, Py_ssize_t stride_h,
            Py_ssize_t stride_w, const floating[::1] sigma, const floating[::1] lam,
            bint first, bint update, bint measure, floating[:, ::1] scratch,
            double[:, ::1] sums_y, double[::1] sums_x, int n_threads):
    """The dual step (``update``) and the primal objective of ``x`` (``measure``),
    per image ``n``:

    - y rows: ``a = A x``; ``a_bar = a`` on the first step, else ``2 a - aold``
      (``= A xbar``); ``aold = a``; ``dual = (dual + s (a_bar - data)) / (1 + s)``,
      ``s = sigma[n]``. ``sums_y[row]``: ``(a - data)**2``, ``dual**2``,
      ``dual * data`` (``3 C`` values);
    - x rows: ``(q0, q1) += s grad(xbar)``, then divided by
      ``max(1, |(q0, q1)| / lam[n])``, the norm taken over the pixel's
      channels; ``sums_x[row]``: the TV of ``x`` (sum of the coupled norms of its
      gradient).

    The sums are taken only when ``measure``: without them the loops run over
    contiguous values and vectorise.
    """
    cdef Py_ssize_t n_channels = kernel.shape[0], kh = kernel.shape[1], kw = kernel.shape[2]
    cdef Py_ssize_t n_images = xg.shape[0], row, n, r, k, c, x_pitch, width, height, at, col
    cdef const floating* tiled_taps = &tiled[0, 0] if tiled.shape[0] > 0 else NULL
    cdef floating* ax
    cdef floating a, res, s, g0, g1, grad2, norm
    cdef double tv, total, other, third
    assert fits(xg, n_channels, x.shape[0]) and scratch.shape[0] >= n_threads
    with nogil:
        for row in prange(batch_rows(&yg[0, 0], n_images), num_threads=n_threads,
                          schedule="static"):
            n = image_of_row(&yg[0, 0], n_images, row)
            r = row - yg[n, FIRST_ROW]
            x_pitch = xg[n, WIDTH] * n_channels
            ax = &scratch[threadid(), 0]
            _forward_row(&x[xg[n, OFFSET] + r * stride_h * x_pitch], x_pitch,
                         &kernel[0, 0, 0], tiled_taps, &taps[n, 0], tiled.shape[1], ax,
                         yg[n, WIDTH], n_channels, kh, kw, stride_w)
            at = yg[n, OFFSET] + r * ypitch[n]
            if measure:
                for c in range(n_channels):
                    total = 0
                    for col in range(yg[n, WIDTH]):
                        res = ax[col * n_channels + c] - data[at + col * n_channels + c]
                        total = total + <double>res * res
                    sums_y[row, c] = total
            if update:
                _dual_data_row(ax, &aold[at], &dual[at], &data[at], yg[n, WIDTH] * n_channels,
                               sigma[n], first)
            if measure:
                for c in range(n_channels):
                    other = 0
                    third = 0
                    for col in range(yg[n, WIDTH]):
                        k = at + col * n_channels + c
                        other = other + <double>dual[k] * dual[k]
                        third = third + <double>dual[k] * data[k]
                    sums_y[row, n_channels + c] = other
                    sums_y[row, 2 * n_channels + c] = third
        for row in prange(batch_rows(&xg[0, 0], n_images), num_threads=n_threads,
                          schedule="static"):
            n = image_of_row(&xg[0, 0], n_images, row)
            r = row - xg[n, FIRST_ROW]
            height = xg[n, HEIGHT]
            width = xg[n, WIDTH] * n_channels
            at = xg[n, OFFSET] + r * width
            if measure:
                tv = 0
                for col in range(xg[n, WIDTH]):
                    grad2 = 0
                    for c in range(n_channels):
                        k = at + col * n_channels + c
                        g0 = x[k + width] - x[k] if r < height - 1 else 0
                        g1 = x[k + n_channels] - x[k] if col < xg[n, WIDTH] - 1 else 0
                        grad2 = grad2 + (g0 * g0 + g1 * g1)
                    norm = sqrt(grad2)           # rounded to the float type, as NumPy's
                    tv = tv + norm
                sums_x[row] = tv
            if update:
                _dual_tv_row(&xbar[at], &q0[at], &q1[at], &scratch[threadid(), 0],
                             xg[n, WIDTH], n_channels, width, r == height - 1, sigma[n],
                             lam[n])


cdef void _primal_row(const floating* aty, const floating* q0, const floating* q0_up,
                      const floating* q1, floating* x, floating* xbar, Py_ssize_t n,
                      Py_ssize_t n_channels, floating step, floating lo,
                      floating hi) noexcept nogil:
    """One row of the primal step without sums (a loop the compiler vectorises);
    ``q0_up``: the row above, zeros on the first row (``q - 0`` is ``q``). The
    first pixel's ``q1`` has no left neighbour."""
    if floating is float:
        rs_primal_f(aty, q0, q0_up, q1, x, xbar, n, n_channels, step, lo, hi)
    else:
        rs_primal_d(aty, q0, q0_up, q1, x, xbar, n, n_channels, step, lo, hi)


def tv_primal(floating[::1] x, floating[::1] xbar, const floating[::1] q0,
              const floating[::1] q1, const Py_ssize_t[:, ::1] xg, const floating[::1] dual,
              const Py_ssize_t[:, ::1] yg, const Py_ssize_t[::1] ypitch,
              const floating[:, :, ::1] kernel not None, const floating[:, ::1] tiled,
              const Py_ssize_t[:, ::1] taps, Py_ssize_t stride_h, Py_ssize_t stride_w,
              const floating[::1] tau, floating lo, floating hi, const floating[::1] zeros,
              bint measure, floating[:, ::1] scratch, double[:, ::1] sums, int n_threads):
    """The primal step: ``z = A^T dual - div(q0, q1)``; ``x_new = clamp(x - tau[n] z,
    lo, hi)``; ``xbar = 2 x_new - x``; ``x = x_new``. With ``measure``, ``sums[row]``:
    ``(x_new - x)**2``, ``max(-z, 0)`` and ``x_new**2`` (``3 C`` values).
    ``zeros``: at least a row of zeros (the row above the first)."""
    cdef Py_ssize_t n_channels = kernel.shape[0], kh = kernel.shape[1], kw = kernel.shape[2]
    cdef Py_ssize_t n_images = xg.shape[0], row, n, r, k, c, col, width, first
    cdef const floating* tiled_taps = &tiled[0, 0] if tiled.shape[0] > 0 else NULL
    cdef const floating* up
    cdef floating* aty
    cdef floating z, dv, dh, new, step, change
    cdef double total, other, third
    assert fits(xg, n_channels, x.shape[0]) and scratch.shape[0] >= n_threads
    with nogil:
        for row in prange(batch_rows(&xg[0, 0], n_images), num_threads=n_threads,
                          schedule="static"):
            n = image_of_row(&xg[0, 0], n_images, row)
            r = row - xg[n, FIRST_ROW]
            width = xg[n, WIDTH] * n_channels
            aty = &scratch[threadid(), 0]
            _adjoint_row(&dual[yg[n, OFFSET]], ypitch[n], &kernel[0, 0, 0], tiled_taps,
                         &taps[n, 0], tiled.shape[1], aty, r, xg[n, WIDTH], n_channels, kh,
                         kw, stride_h, stride_w)
            step = tau[n]
            first = xg[n, OFFSET] + r * width
            if not measure:
                up = &q0[first - width] if r > 0 else &zeros[0]
                _primal_row(aty, &q0[first], up, &q1[first], &x[first], &xbar[first], width,
                            n_channels, step, lo, hi)
            for c in range(n_channels * measure):
                total = 0
                other = 0
                third = 0
                for col in range(xg[n, WIDTH]):
                    k = first + col * n_channels + c
                    dv = q0[k] - q0[k - width] if r > 0 else q0[k]
                    dh = q1[k] - q1[k - n_channels] if col > 0 else q1[k]
                    z = aty[col * n_channels + c] - (dv + dh)
                    new = x[k] - step * z
                    new = lo if new < lo else new
                    new = hi if new > hi else new
                    xbar[k] = 2 * new - x[k]
                    change = new - x[k]
                    total = total + <double>change * change
                    z = -z if z < 0 else 0
                    other = other + z
                    third = third + <double>new * new
                    x[k] = new
                sums[row, c] = total
                sums[row, n_channels + c] = other
                sums[row, 2 * n_channels + c] = third
