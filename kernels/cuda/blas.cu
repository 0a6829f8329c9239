// Matrix products through cuBLAS: nn.Linear / Conv1D products with f32, f16 or bf16 weights
// (f32 accumulation) and the per-head products of the materialized attention path.
// Row-major [r, c] with row stride ld is column-major (c x r) with leading dimension ld, so
// Y = X·Wᵀ (row-major) is Yᶜ = op(W)ᶜ·Xᶜ (column-major): cuBLAS's A is the weight.
#include <cublas_v2.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

struct hk_cu_blas {
    cublasHandle_t h;
    cudaStream_t stream;
};

static int blas_err(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS ? 0 : HK_CU_BLAS_ERR + (int)s; }

extern "C" const char *hk_cu_blas_status_string(int status) {
    if (status >= HK_CU_BLAS_ERR) return cublasGetStatusString((cublasStatus_t)(status - HK_CU_BLAS_ERR));
    return cudaGetErrorString((cudaError_t)status);
}

extern "C" int hk_cu_blas_new(void *stream, hk_cu_blas **out) {
    *out = NULL;
    hk_cu_blas *b = (hk_cu_blas *)calloc(1, sizeof *b);
    if (!b) return (int)cudaErrorMemoryAllocation;
    cublasStatus_t s = cublasCreate(&b->h);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(b->h, hk_cu_stream(stream));
    // Default math keeps at least the requested precision: f32 products stay f32 (TF32 only
    // when asked for), f16/bf16 products run on tensor cores with f32 accumulation.
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(b->h, CUBLAS_DEFAULT_MATH);
    if (s != CUBLAS_STATUS_SUCCESS) {
        if (b->h) cublasDestroy(b->h);
        free(b);
        return blas_err(s);
    }
    b->stream = hk_cu_stream(stream);
    *out = b;
    return 0;
}

extern "C" void hk_cu_blas_free(hk_cu_blas *b) {
    if (!b) return;
    cublasDestroy(b->h);
    free(b);
}

extern "C" int hk_cu_blas_allow_tf32(hk_cu_blas *b, bool on) {
    return blas_err(cublasSetMathMode(b->h, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

// y[i, :] = bias (or zeros), rows n of out columns, row stride ldy
__global__ static void fill_rows_kernel(float *y, const float *b, int64_t n, int64_t out,
                                        int64_t ldy) {
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n * out;
         idx += (int64_t)blockDim.x * gridDim.x) {
        const int64_t i = idx / out, c = idx % out;
        y[i * ldy + c] = b ? b[c] : 0.0f;
    }
}

static bool fits_int(int64_t v) { return v >= 0 && v <= 0x7fffffff; }

static cudaDataType_t cuda_type(hk_cu_dtype t) {
    return t == HK_CU_F16 ? CUDA_R_16F : t == HK_CU_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

extern "C" int hk_cu_linear(hk_cu_blas *h, const float *x, int64_t n, int64_t in, const void *w,
                            hk_cu_dtype wtype, int64_t ldw, bool in_out, const float *b,
                            int64_t out, float *y, int64_t ldy, void *x_ws) {
    if (n <= 0 || out <= 0) return 0;
    if (!fits_int(n) || !fits_int(in) || !fits_int(out) || !fits_int(ldw) || !fits_int(ldy) ||
        (unsigned)wtype > HK_CU_BF16 || (wtype != HK_CU_F32 && !x_ws))
        return (int)cudaErrorInvalidValue;
    float beta = 0.0f;
    if (b || in == 0) {
        fill_rows_kernel<<<hk_cu_blocks(n * out), HK_CU_THREADS, 0, h->stream>>>(y, b, n, out, ldy);
        const int e = hk_cu_launch_status();
        if (e) return e;
        beta = 1.0f;
    }
    if (in == 0) return 0;
    const float alpha = 1.0f;
    // [out, in] weights: A = W (in x out column-major) transposed; [in, out]: A = W as is
    const cublasOperation_t opa = in_out ? CUBLAS_OP_N : CUBLAS_OP_T;
    if (wtype == HK_CU_F32)
        return blas_err(cublasSgemm(h->h, opa, CUBLAS_OP_N, (int)out, (int)n, (int)in, &alpha,
                                    (const float *)w, (int)ldw, x, (int)in, &beta, y, (int)ldy));
    const int e = hk_cu_convert(x_ws, wtype, x, HK_CU_F32, n * in, h->stream);
    if (e) return e;
    return blas_err(cublasGemmEx(h->h, opa, CUBLAS_OP_N, (int)out, (int)n, (int)in, &alpha, w,
                                 cuda_type(wtype), (int)ldw, x_ws, cuda_type(wtype), (int)in,
                                 &beta, y, CUDA_R_32F, (int)ldy, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
}

// scores[h, i, j] = -inf where the mask hides (i, j) from head h
__global__ static void mask_scores_kernel(float *scores, int64_t n_heads, int64_t sq, int64_t sk,
                                          const hk_mask_desc m) {
    const int64_t total = n_heads * sq * sk;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)blockDim.x * gridDim.x) {
        const int64_t j = idx % sk, i = (idx / sk) % sq, h = idx / (sq * sk);
        if (!hk_mask_desc_visible(&m, sk, h, i, j))
            scores[idx] = -INFINITY;
        else
            scores[idx] = hk_softcap(scores[idx], m.softcap);
    }
}

extern "C" int hk_cu_attention_scores(hk_cu_blas *h, const float *q, int64_t ldq, const float *k,
                                      int64_t ldk, int64_t sq, int64_t sk, int64_t n_heads,
                                      int64_t n_kv_heads, int64_t d_head, float scale,
                                      const hk_mask_desc *mask, float *scores) {
    if (sq <= 0 || sk <= 0 || n_heads <= 0) return 0;
    if (n_kv_heads <= 0 || n_heads % n_kv_heads || !fits_int(sq) || !fits_int(sk) ||
        !fits_int(d_head) || !fits_int(ldq) || !fits_int(ldk) || !fits_int(sq * sk))
        return (int)cudaErrorInvalidValue;
    const int64_t group = n_heads / n_kv_heads;
    const float beta = 0.0f;
    if (d_head == 0) {
        const cudaError_t e = cudaMemsetAsync(scores, 0, (size_t)(n_heads * sq * sk) * 4, h->stream);
        if (e != cudaSuccess) return (int)e;
    }
    // per KV head: the group's query heads as a strided batch against the same keys
    for (int64_t kvh = 0; kvh < n_kv_heads && d_head > 0; kvh++) {
        const int e = blas_err(cublasSgemmStridedBatched(
            h->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)sk, (int)sq, (int)d_head, &scale,
            k + kvh * d_head, (int)ldk, 0, q + kvh * group * d_head, (int)ldq, d_head, &beta,
            scores + kvh * group * sq * sk, (int)sk, sq * sk, (int)group));
        if (e) return e;
    }
    hk_mask_desc m;
    if (mask) {
        m = *mask;
    } else {
        memset(&m, 0, sizeof m);
        m.b = hk_mask_bounds_all(sk);
    }
    mask_scores_kernel<<<hk_cu_blocks(n_heads * sq * sk), HK_CU_THREADS, 0, h->stream>>>(
        scores, n_heads, sq, sk, m);
    return hk_cu_launch_status();
}

extern "C" int hk_cu_attention_apply(hk_cu_blas *h, const float *pattern, const float *v,
                                     int64_t ldv, int64_t sq, int64_t sk, int64_t n_heads,
                                     int64_t n_kv_heads, int64_t d_head, float *out,
                                     int64_t ldo) {
    if (sq <= 0 || n_heads <= 0 || d_head <= 0) return 0;
    if (n_kv_heads <= 0 || n_heads % n_kv_heads || !fits_int(sq) || !fits_int(sk) ||
        !fits_int(d_head) || !fits_int(ldv) || !fits_int(ldo) || !fits_int(sq * sk))
        return (int)cudaErrorInvalidValue;
    const int64_t group = n_heads / n_kv_heads;
    if (sk == 0) {
        fill_rows_kernel<<<hk_cu_blocks(sq * n_heads * d_head), HK_CU_THREADS, 0, h->stream>>>(
            out, NULL, sq, n_heads * d_head, ldo);
        return hk_cu_launch_status();
    }
    const float alpha = 1.0f, beta = 0.0f;
    for (int64_t kvh = 0; kvh < n_kv_heads; kvh++) {
        const int e = blas_err(cublasSgemmStridedBatched(
            h->h, CUBLAS_OP_N, CUBLAS_OP_N, (int)d_head, (int)sq, (int)sk, &alpha,
            v + kvh * d_head, (int)ldv, 0, pattern + kvh * group * sq * sk, (int)sk, sq * sk,
            &beta, out + kvh * group * d_head, (int)ldo, d_head, (int)group));
        if (e) return e;
    }
    return 0;
}
