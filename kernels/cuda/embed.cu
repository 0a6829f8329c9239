// Embedding lookup: out[i, :] = table[ids[i], :], one thread per output element.
#include "common.cuh"

__global__ static void embed_kernel(const float *__restrict__ table, int64_t d,
                                    const int32_t *__restrict__ ids, int64_t n, float *out) {
    const int64_t total = n * d;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)blockDim.x * gridDim.x) {
        const int64_t i = idx / d, c = idx % d;
        out[idx] = table[(int64_t)ids[i] * d + c];
    }
}

extern "C" int hk_cu_embed(const float *table, int64_t d, const int32_t *ids, int64_t n,
                           float *out, void *stream) {
    if (n <= 0 || d <= 0) return 0;
    embed_kernel<<<hk_cu_blocks(n * d), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(table, d, ids,
                                                                                   n, out);
    return hk_cu_launch_status();
}
