/* Portable f32 matrix-vector products (gemv_internal.h): the same maths as gemv_avx2.c, not
 * the same summation order (its lanes and FMA roundings). Eight partial sums per dot product
 * leave the compiler free to vectorize without -ffast-math. */
#include "gemv_internal.h"

#define HK_GEMV_LANES 8

void hk_gemv_rows_generic(const float *x, int64_t in, const float *w, int64_t ldw, float *y,
                          int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; o++) {
        const float *wr = w + o * ldw;
        float acc[HK_GEMV_LANES] = {0};
        int64_t i = 0;
        for (; i + HK_GEMV_LANES <= in; i += HK_GEMV_LANES)
            for (int l = 0; l < HK_GEMV_LANES; l++) acc[l] += wr[i + l] * x[i + l];
        float s = 0.0f;
        for (int l = 0; l < HK_GEMV_LANES; l++) s += acc[l];
        for (; i < in; i++) s += wr[i] * x[i];
        y[o] += s;
    }
}

void hk_gemv_cols_generic(const float *x, int64_t in, const float *w, int64_t ldw, float *y,
                          int64_t lo, int64_t hi) {
    for (int64_t i = 0; i < in; i++) {
        const float xi = x[i], *wr = w + i * ldw;
        for (int64_t o = lo; o < hi; o++) y[o] += xi * wr[o];
    }
}
