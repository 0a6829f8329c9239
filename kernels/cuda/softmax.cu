// Row softmax of materialized scores (hook_pattern): one block per row, the sum in double
// like the CPU kernel; rows without a finite score become zeros.
#include "common.cuh"

#define SM_THREADS 256

__global__ static void softmax_kernel(const float *scores, int64_t n, float *pattern) {
    __shared__ float shm[SM_THREADS / 32];
    __shared__ double shs[SM_THREADS / 32];
    const int64_t row = blockIdx.x;
    const float *s = scores + row * n;
    float *p = pattern + row * n;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, s[j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (lane == 0) shm[warp] = mx;
    __syncthreads();
    mx = shm[0];
    for (int w = 1; w < SM_THREADS / 32; w++) mx = fmaxf(mx, shm[w]);
    if (!isfinite(mx)) { // no finite score: zeros
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) p[j] = 0.0f;
        return;
    }
    double sum = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const float e = expf(s[j] - mx); // -inf -> 0
        p[j] = e;
        sum += e;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) shs[warp] = sum;
    __syncthreads();
    sum = 0.0;
    for (int w = 0; w < SM_THREADS / 32; w++) sum += shs[w];
    const float inv = (float)(1.0 / sum);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) p[j] *= inv;
}

extern "C" int hk_cu_softmax_rows(const float *scores, int64_t rows, int64_t n, float *pattern,
                                  void *stream) {
    if (rows <= 0 || n <= 0) return 0;
    if (rows > 0x7fffffff) return (int)cudaErrorInvalidValue;
    softmax_kernel<<<(unsigned)rows, SM_THREADS, 0, hk_cu_stream(stream)>>>(scores, n, pattern);
    return hk_cu_launch_status();
}
