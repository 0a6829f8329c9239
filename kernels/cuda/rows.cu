// Row gathers and scatters of the experts' dispatch (core/backend.h's gather_rows,
// scatter_rows, combine_rows): a routed slot's input row, its activation back to its place,
// and the weighted sum of the experts' outputs into each token's row. idx: int64 slots.
#include "common.cuh"

// dst[i, :] = src[idx[i] / div, :]
__global__ static void gather_rows_kernel(float *dst, const float *src, int64_t d,
                                          const int64_t *idx, int64_t div, int64_t n) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * d;
         e += (int64_t)blockDim.x * gridDim.x) {
        const int64_t i = e / d, c = e % d;
        dst[e] = src[(idx[i] / div) * d + c];
    }
}

extern "C" int hk_cu_gather_rows(float *dst, const float *src, int64_t d, const int64_t *idx,
                                 int64_t div, int64_t n, void *stream) {
    if (n <= 0 || d <= 0) return 0;
    if (!idx || div <= 0) return (int)cudaErrorInvalidValue;
    gather_rows_kernel<<<hk_cu_blocks(n * d), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(
        dst, src, d, idx, div, n);
    return hk_cu_launch_status();
}

// dst[idx[i], :] = src[i, :]
__global__ static void scatter_rows_kernel(float *dst, const float *src, int64_t d,
                                           const int64_t *idx, int64_t n) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * d;
         e += (int64_t)blockDim.x * gridDim.x) {
        const int64_t i = e / d, c = e % d;
        dst[idx[i] * d + c] = src[e];
    }
}

extern "C" int hk_cu_scatter_rows(float *dst, const float *src, int64_t d, const int64_t *idx,
                                  int64_t n, void *stream) {
    if (n <= 0 || d <= 0) return 0;
    if (!idx) return (int)cudaErrorInvalidValue;
    scatter_rows_kernel<<<hk_cu_blocks(n * d), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(
        dst, src, d, idx, n);
    return hk_cu_launch_status();
}

// y[a / div, c] += w[a] * x[i, c] with a = idx[i] (idx NULL: a = i, row i), i in order per
// column c: one thread per column walks the rows, so rows sharing a destination add in index
// order (deterministic, no atomics), the products and sums rounded as the CPU's.
__global__ static void combine_rows_kernel(float *y, const float *x, int64_t d,
                                           const int64_t *idx, int64_t div, const float *w,
                                           int64_t n) {
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < d;
         c += (int64_t)blockDim.x * gridDim.x)
        for (int64_t i = 0; i < n; i++) {
            const int64_t a = idx ? idx[i] : i, r = idx ? a / div : i;
            y[r * d + c] = __fadd_rn(y[r * d + c], __fmul_rn(w[a], x[i * d + c]));
        }
}

extern "C" int hk_cu_combine_rows(float *y, const float *x, int64_t d, const int64_t *idx,
                                  int64_t div, const float *w, int64_t n, void *stream) {
    if (n <= 0 || d <= 0) return 0;
    if (!w || (idx && div <= 0)) return (int)cudaErrorInvalidValue;
    combine_rows_kernel<<<hk_cu_blocks(d), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(
        y, x, d, idx, div, w, n);
    return hk_cu_launch_status();
}
