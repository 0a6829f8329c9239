/* y[n, out] = x[n, in] · Wᵀ (+ b) through OpenBLAS (n > 1) or hookformer's own matrix-vector
 * kernels (n = 1, gemv_internal.h: OpenBLAS's sgemv streamed decode's weights at about half the
 * memory bandwidth one core has), split by output columns across the OpenMP team (prefill) or
 * the decode team of pool.h (up to HK_K_QLINEAR_MAX_ROWS rows); see blas_internal.h for why
 * hookformer does the threading, not OpenBLAS. */
#include "blas_internal.h"
#include "cpu_features.h"
#include "gemv_internal.h"
#include "kernels.h"
#include "pool.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* multiply-adds below which one thread does the whole product (a fork costs microseconds) */
#define HK_GEMM_PAR_MIN (1 << 20)
/* the same for decode and small batches (up to HK_K_QLINEAR_MAX_ROWS rows): their products
 * stream the whole weight matrix for few rows, so even a 576 x 576 f32 matrix (1.3 MB, ~0.1 ms
 * of memory traffic) pays a fork back many times over */
#define HK_GEMV_PAR_MIN (1 << 16)
/* column slices are multiples of this (a cache line of floats) */
#define HK_GEMM_COL_ALIGN 16

/* Threads for a product of `macs` multiply-adds over `cols` output columns: 1 when small,
 * inside a parallel region, or when there are too few columns to split. */
static int gemm_threads(int64_t macs, int64_t rows, int64_t cols) {
    const int nth = omp_get_max_threads();
    const int64_t min = rows <= HK_K_QLINEAR_MAX_ROWS ? HK_GEMV_PAR_MIN : HK_GEMM_PAR_MIN;
    if (nth < 2 || macs < min || omp_in_parallel()) return 1;
    const int64_t slices = cols / HK_GEMM_COL_ALIGN;
    if (slices < 2) return 1;
    return slices < nth ? (int)slices : nth;
}

/* [lo, hi) of `cols` for thread t of nt, in slices of HK_GEMM_COL_ALIGN columns */
static void col_range(int64_t cols, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t per = (cols + nt - 1) / nt;
    per = (per + HK_GEMM_COL_ALIGN - 1) / HK_GEMM_COL_ALIGN * HK_GEMM_COL_ALIGN;
    *lo = (int64_t)t * per < cols ? (int64_t)t * per : cols;
    *hi = *lo + per < cols ? *lo + per : cols;
}

static void sgemm_cols(bool b_trans, int64_t m, int64_t k, float alpha, const float *a,
                       int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                       int64_t ldc, int64_t lo, int64_t hi) {
    if (hi <= lo) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, (int)m,
                (int)(hi - lo), (int)k, alpha, a, (int)lda, b_trans ? b + lo * ldb : b + lo,
                (int)ldb, beta, c + lo, (int)ldc);
}

void hk_k_sgemm(bool b_trans, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    hk_k_blas_init();
    const int nt = gemm_threads(m * n * k, m, n);
    if (nt == 1) {
        sgemm_cols(b_trans, m, k, alpha, a, lda, b, ldb, beta, c, ldc, 0, n);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int64_t lo, hi;
        col_range(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        sgemm_cols(b_trans, m, k, alpha, a, lda, b, ldb, beta, c, ldc, lo, hi);
    }
}

static bool gemv_generic;

void hk_k_linear_force_generic(bool on) { gemv_generic = on; }

static bool gemv_avx2(void) {
#ifdef HK_GEMV_HAVE_AVX2
    return !gemv_generic && hk_k_cpu_avx2_fma(false);
#else
    return false;
#endif
}

const char *hk_k_linear_isa(void) { return gemv_avx2() ? "avx2+fma" : "generic"; }

/* y[lo, hi) += x · Wᵀ for one row x, in the layout's kernel */
static void gemv(const float *x, int64_t in, const float *w, int64_t ldw, bool in_out, float *y,
                 int64_t lo, int64_t hi) {
#ifdef HK_GEMV_HAVE_AVX2
    if (gemv_avx2()) {
        (in_out ? hk_gemv_cols_avx2 : hk_gemv_rows_avx2)(x, in, w, ldw, y, lo, hi);
        return;
    }
#endif
    (in_out ? hk_gemv_cols_generic : hk_gemv_rows_generic)(x, in, w, ldw, y, lo, hi);
}

/* Output columns [lo, hi) of y: the bias (or nothing), then the product. */
static void linear_cols(const float *x, int64_t n, int64_t in, const float *w, int64_t ldw,
                        bool in_out, const float *b, float *y, int64_t ldy, int64_t lo,
                        int64_t hi) {
    if (hi <= lo) return;
    const size_t bytes = (size_t)(hi - lo) * sizeof(float);
    /* Start from the bias (beta = 1) or from nothing (beta = 0). */
    float beta = 0.0f;
    if (b) {
        for (int64_t i = 0; i < n; i++) memcpy(y + i * ldy + lo, b + lo, bytes);
        beta = 1.0f;
    }
    if (in <= 0) {
        if (!b)
            for (int64_t i = 0; i < n; i++) memset(y + i * ldy + lo, 0, bytes);
        return;
    }
    if (n == 1) {
        /* [out, in]: y = W x (rows lo..hi of W).  [in, out]: y = Wᵀ x (columns lo..hi). */
        if (!b) memset(y + lo, 0, bytes);
        gemv(x, in, w, ldw, in_out, y, lo, hi);
        return;
    }
    sgemm_cols(!in_out, n, in, 1.0f, x, in, w, ldw, beta, y, ldy, lo, hi);
}

typedef struct {
    const float *x, *w, *b;
    int64_t n, in, ldw, ldy, out;
    bool in_out;
    float *y;
} linear_job;

static void linear_share(void *arg, int t, int nt) {
    const linear_job *j = arg;
    int64_t lo, hi;
    col_range(j->out, t, nt, &lo, &hi);
    linear_cols(j->x, j->n, j->in, j->w, j->ldw, j->in_out, j->b, j->y, j->ldy, lo, hi);
}

void hk_k_linear(const float *x, int64_t n, int64_t in, const float *w, int64_t ldw, bool in_out,
                 const float *b, int64_t out, float *y, int64_t ldy) {
    if (n <= 0 || out <= 0) return;
    hk_k_blas_init();
    const int nt = gemm_threads(n * out * (in > 0 ? in : 0), n, out);
    if (nt == 1) {
        linear_cols(x, n, in, w, ldw, in_out, b, y, ldy, 0, out);
        return;
    }
    linear_job j = {x, w, b, n, in, ldw, ldy, out, in_out, y};
    if (n <= HK_K_QLINEAR_MAX_ROWS) hk_k_parallel(nt, linear_share, &j); /* decode's team */
    else hk_k_omp_parallel(nt, linear_share, &j);
}
