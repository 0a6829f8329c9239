// Row scatters (the experts' dispatch: a routed slot's activation back to its place, and the
// weighted sum of the experts' outputs into each token's row). Gathers are hk_cu_embed.
#include "common.cuh"

// dst[idx[i], :] = src[i, :]
__global__ static void scatter_rows_kernel(float *dst, const float *src, int64_t d,
                                           const int32_t *idx, int64_t n) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n * d;
         e += (int64_t)blockDim.x * gridDim.x) {
        const int64_t i = e / d, c = e % d;
        dst[(int64_t)idx[i] * d + c] = src[e];
    }
}

extern "C" int hk_cu_scatter_rows(float *dst, const float *src, int64_t d, const int32_t *idx,
                                  int64_t n, void *stream) {
    if (n <= 0 || d <= 0) return 0;
    if (!idx) return (int)cudaErrorInvalidValue;
    scatter_rows_kernel<<<hk_cu_blocks(n * d), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(
        dst, src, d, idx, n);
    return hk_cu_launch_status();
}

// dst[idx[i], c] += w[i] * src[i, c], i in order per column c: one thread per column walks
// the rows, so rows sharing a destination add in index order (deterministic, no atomics).
__global__ static void scatter_add_rows_kernel(float *dst, const float *src, int64_t d,
                                               const int32_t *idx, const float *w, int64_t n) {
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < d;
         c += (int64_t)blockDim.x * gridDim.x)
        for (int64_t i = 0; i < n; i++) {
            const int64_t r = idx ? (int64_t)idx[i] : i;
            const float v = w ? __fmul_rn(w[i], src[i * d + c]) : src[i * d + c];
            dst[r * d + c] = __fadd_rn(dst[r * d + c], v);
        }
}

extern "C" int hk_cu_scatter_add_rows(float *dst, const float *src, int64_t d,
                                      const int32_t *idx, const float *w, int64_t n,
                                      void *stream) {
    if (n <= 0 || d <= 0) return 0;
    scatter_add_rows_kernel<<<hk_cu_blocks(d), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(
        dst, src, d, idx, w, n);
    return hk_cu_launch_status();
}
