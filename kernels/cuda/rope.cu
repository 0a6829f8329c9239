// Rotary embeddings, rotate-half convention: one thread per (token, head, pair).
#include "common.cuh"

__global__ static void rope_kernel(float *x, int64_t n, int64_t heads, int64_t d_head,
                                   int64_t ld_row, int64_t half, const float *__restrict__ cs,
                                   const float *__restrict__ sn) {
    const int64_t total = n * heads * half;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)blockDim.x * gridDim.x) {
        const int64_t j = idx % half;
        const int64_t h = (idx / half) % heads;
        const int64_t t = idx / (half * heads);
        float *x1 = x + t * ld_row + h * d_head + j;
        float *x2 = x1 + half;
        const float c = cs[t * half + j], s = sn[t * half + j];
        const float a = *x1, b = *x2;
        *x1 = a * c - b * s;
        *x2 = b * c + a * s;
    }
}

extern "C" int hk_cu_rope(float *x, int64_t n, int64_t heads, int64_t d_head, int64_t ld_row,
                          int64_t rot_dim, const float *cos, const float *sin, void *stream) {
    const int64_t half = rot_dim / 2;
    if (n <= 0 || heads <= 0 || half <= 0) return 0;
    rope_kernel<<<hk_cu_blocks(n * heads * half), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(
        x, n, heads, d_head, ld_row, half, cos, sin);
    return hk_cu_launch_status();
}
