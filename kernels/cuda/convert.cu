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

// KV cache write: src row i (position pos0 + i) -> dst row (pos0 + i) [mod ring], converted
__global__ static void kv_write_kernel(void *dst, int dt, int64_t ldd, int64_t ring, int64_t pos0,
                                       const float *src, int64_t lds, int64_t n, int64_t width) {
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n * width;
         idx += (int64_t)blockDim.x * gridDim.x) {
        const int64_t i = idx / width, c = idx % width;
        int64_t row = pos0 + i;
        if (ring > 0) row %= ring;
        store_f(dst, dt, row * ldd + c, src[i * lds + c]);
    }
}

extern "C" int hk_cu_kv_write(void *dst, hk_cu_dtype dst_type, int64_t ldd, int64_t ring,
                              int64_t pos0, const float *src, int64_t lds, int64_t n,
                              int64_t width, void *stream) {
    if (n <= 0 || width <= 0) return 0;
    if ((unsigned)dst_type > HK_CU_BF16 || pos0 < 0 || ring < 0 || (ring > 0 && n > ring))
        return (int)cudaErrorInvalidValue;
    kv_write_kernel<<<hk_cu_blocks(n * width), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(
        dst, (int)dst_type, ldd, ring, pos0, src, lds, n, width);
    return hk_cu_launch_status();
}

// Weight upload converting on the device: host elements of src_type go up in pieces through
// one device staging buffer (at most HK_CU_UPLOAD_STAGE bytes) and are converted into dst.
// Synchronous (the host buffer may be freed on return).
extern "C" int hk_cu_upload_convert(void *dst_dev, hk_cu_dtype dst_type, const void *src_host,
                                    hk_cu_dtype src_type, int64_t n, void *stream) {
    if (n <= 0) return 0;
    if ((unsigned)dst_type > HK_CU_BF16 || (unsigned)src_type > HK_CU_BF16 || !dst_dev ||
        !src_host)
        return (int)cudaErrorInvalidValue;
    const cudaStream_t st = hk_cu_stream(stream);
    const size_t ss = hk_cu_dtype_size(src_type), ds = hk_cu_dtype_size(dst_type);
    if (src_type == dst_type) {
        cudaError_t e = cudaMemcpyAsync(dst_dev, src_host, (size_t)n * ss,
                                        cudaMemcpyHostToDevice, st);
        if (e == cudaSuccess) e = cudaStreamSynchronize(st);
        return (int)e;
    }
    const int64_t per = (int64_t)(HK_CU_UPLOAD_STAGE / ss);
    void *stage = NULL;
    cudaError_t e = cudaMalloc(&stage, (size_t)(n < per ? n : per) * ss);
    if (e != cudaSuccess) return (int)e;
    for (int64_t i0 = 0; i0 < n && e == cudaSuccess; i0 += per) {
        const int64_t m = n - i0 < per ? n - i0 : per;
        e = cudaMemcpyAsync(stage, (const char *)src_host + (size_t)i0 * ss, (size_t)m * ss,
                            cudaMemcpyHostToDevice, st);
        if (e != cudaSuccess) break;
        e = (cudaError_t)hk_cu_convert((char *)dst_dev + (size_t)i0 * ds, dst_type, stage,
                                       src_type, m, stream);
        // the stage is reused by the next piece: this one must be converted first
        if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    }
    const cudaError_t f = cudaFree(stage);
    return (int)(e != cudaSuccess ? e : f);
}
