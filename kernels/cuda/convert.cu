// Element-type conversions of device tensors (f32 <-> f16 <-> bf16), round to nearest even.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common.cuh"

extern "C" size_t hk_cu_dtype_size(hk_cu_dtype t) { return t == HK_CU_F32 ? 4 : 2; }

__device__ static inline float load_f(const void *p, int t, int64_t i) {
    if (t == HK_CU_F32) return ((const float *)p)[i];
    if (t == HK_CU_F16) return __half2float(((const __half *)p)[i]);
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

__device__ static inline void store_f(void *p, int t, int64_t i, float x) {
    if (t == HK_CU_F32)
        ((float *)p)[i] = x;
    else if (t == HK_CU_F16)
        ((__half *)p)[i] = __float2half_rn(x);
    else
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(x);
}

__global__ static void convert_kernel(void *dst, int dt, const void *src, int s, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)blockDim.x * gridDim.x)
        store_f(dst, dt, i, load_f(src, s, i));
}

extern "C" int hk_cu_convert(void *dst, hk_cu_dtype dst_type, const void *src,
                             hk_cu_dtype src_type, int64_t n, void *stream) {
    if (n <= 0) return 0;
    if ((unsigned)dst_type > HK_CU_BF16 || (unsigned)src_type > HK_CU_BF16)
        return (int)cudaErrorInvalidValue;
    convert_kernel<<<hk_cu_blocks(n), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(
        dst, (int)dst_type, src, (int)src_type, n);
    return hk_cu_launch_status();
}
