/* y[n, out] = x[n, in] · Wᵀ (+ b) through OpenBLAS. */
#include "kernels.h"

#include <cblas.h>
#include <string.h>

void hk_k_linear(const float *x, int64_t n, int64_t in, const float *w, int64_t ldw, bool in_out,
                 const float *b, int64_t out, float *y, int64_t ldy) {
    if (n <= 0 || out <= 0) return;
    /* Start from the bias (beta = 1) or from nothing (beta = 0). */
    float beta = 0.0f;
    if (b) {
        for (int64_t i = 0; i < n; i++) memcpy(y + i * ldy, b, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    if (in <= 0) {
        if (!b)
            for (int64_t i = 0; i < n; i++) memset(y + i * ldy, 0, (size_t)out * sizeof(float));
        return;
    }
    if (n == 1) {
        /* [out, in]: y = W x.  [in, out]: y = Wᵀ x. */
        if (!in_out)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)out, (int)in, 1.0f, w, (int)ldw, x, 1,
                        beta, y, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)in, (int)out, 1.0f, w, (int)ldw, x, 1,
                        beta, y, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, in_out ? CblasNoTrans : CblasTrans, (int)n, (int)out,
                (int)in, 1.0f, x, (int)in, w, (int)ldw, beta, y, (int)ldy);
}
