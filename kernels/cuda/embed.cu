// Embedding lookup: out[i, :] = table[ids[i], :] (f32 out), one thread per output element;
// tables in f32, f16 or bf16 (widened exactly).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common.cuh"

__device__ static inline float widen(float x) { return x; }
__device__ static inline float widen(__half x) { return __half2float(x); }
__device__ static inline float widen(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__global__ static void embed_kernel(const T *__restrict__ table, int64_t d,
                                    const int32_t *__restrict__ ids, int64_t n, float *out) {
    const int64_t total = n * d;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (int64_t)blockDim.x * gridDim.x) {
        const int64_t i = idx / d, c = idx % d;
        out[idx] = widen(table[(int64_t)ids[i] * d + c]);
    }
}

extern "C" int hk_cu_embed_typed(const void *table, hk_cu_dtype type, int64_t d,
                                 const int32_t *ids, int64_t n, float *out, void *stream) {
    if (n <= 0 || d <= 0) return 0;
    const unsigned blocks = hk_cu_blocks(n * d);
    const cudaStream_t st = hk_cu_stream(stream);
    switch (type) {
    case HK_CU_F32:
        embed_kernel<<<blocks, HK_CU_THREADS, 0, st>>>((const float *)table, d, ids, n, out);
        break;
    case HK_CU_F16:
        embed_kernel<<<blocks, HK_CU_THREADS, 0, st>>>((const __half *)table, d, ids, n, out);
        break;
    case HK_CU_BF16:
        embed_kernel<<<blocks, HK_CU_THREADS, 0, st>>>((const __nv_bfloat16 *)table, d, ids, n,
                                                       out);
        break;
    default: return (int)cudaErrorInvalidValue;
    }
    return hk_cu_launch_status();
}

extern "C" int hk_cu_embed(const float *table, int64_t d, const int32_t *ids, int64_t n,
                           float *out, void *stream) {
    return hk_cu_embed_typed(table, HK_CU_F32, d, ids, n, out, stream);
}
