/* Internal to kernels/cpu: the f32 matrix-vector product of decode, y[lo, hi) += x · Wᵀ for one
 * activation row, in a portable version (gemv_generic.c) and an AVX2+FMA one (gemv_avx2.c);
 * linear.c picks one at run time and splits [0, out) across the decode team.
 * Both layouts of core/weights.h: rows (W [out, in], y[o] += W[o, :] · x, a dot product per
 * output) and cols (W [in, out], y[lo:hi] += Σ_i x[i] · W[i, lo:hi], rows of W streamed in
 * order). y holds the bias or zeros on entry. Each output's sum runs over the inputs in one
 * fixed order whatever [lo, hi) is, so a split across threads changes no bit of the result. */
#ifndef HK_KERNELS_GEMV_INTERNAL_H
#define HK_KERNELS_GEMV_INTERNAL_H

#include <stdint.h>

typedef void (*hk_gemv_fn)(const float *x, int64_t in, const float *w, int64_t ldw, float *y,
                           int64_t lo, int64_t hi);

void hk_gemv_rows_generic(const float *x, int64_t in, const float *w, int64_t ldw, float *y,
                          int64_t lo, int64_t hi);
void hk_gemv_cols_generic(const float *x, int64_t in, const float *w, int64_t ldw, float *y,
                          int64_t lo, int64_t hi);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HK_GEMV_HAVE_AVX2 1
void hk_gemv_rows_avx2(const float *x, int64_t in, const float *w, int64_t ldw, float *y,
                       int64_t lo, int64_t hi);
void hk_gemv_cols_avx2(const float *x, int64_t in, const float *w, int64_t ldw, float *y,
                       int64_t lo, int64_t hi);
#endif

#endif
