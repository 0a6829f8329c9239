// LayerNorm and RMSNorm: one block per row, row statistics accumulated in double (two passes
// for the variance) like the CPU kernels, so both backends agree to f32 rounding.
#include "common.cuh"

#define NORM_THREADS 256

// Sum of v over the block; every thread gets the result. sh holds NORM_THREADS/32 doubles.
__device__ static double block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads(); // sh may still be read by a previous call
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double t = 0.0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += sh[i];
    return t;
}

__global__ static void layernorm_kernel(const float *__restrict__ x, int64_t d,
                                        const float *__restrict__ w,
                                        const float *__restrict__ b, float eps, float *y,
                                        float *scale_out) {
    __shared__ double sh[NORM_THREADS / 32];
    const int64_t row = blockIdx.x;
    const float *xr = x + row * d;
    float *yr = y + row * d;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) s += (double)xr[j];
    const double mean = block_sum(s, sh) / (double)d;
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const double c = (double)xr[j] - mean;
        ss += c * c;
    }
    const double scale = sqrt(block_sum(ss, sh) / (double)d + (double)eps);
    if (scale_out && threadIdx.x == 0) scale_out[row] = (float)scale;
    const double inv = 1.0 / scale;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const float nrm = (float)(((double)xr[j] - mean) * inv);
        yr[j] = b ? nrm * w[j] + b[j] : nrm * w[j];
    }
}

__global__ static void rmsnorm_kernel(const float *__restrict__ x, int64_t d,
                                      const float *__restrict__ w, float eps, float *y,
                                      float *scale_out) {
    __shared__ double sh[NORM_THREADS / 32];
    const int64_t row = blockIdx.x;
    const float *xr = x + row * d;
    float *yr = y + row * d;
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ss += (double)xr[j] * (double)xr[j];
    const double scale = sqrt(block_sum(ss, sh) / (double)d + (double)eps);
    if (scale_out && threadIdx.x == 0) scale_out[row] = (float)scale;
    const double inv = 1.0 / scale;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
        yr[j] = (float)((double)xr[j] * inv) * w[j];
}

extern "C" int hk_cu_layernorm(const float *x, int64_t n, int64_t d, const float *w,
                               const float *b, float eps, float *y, float *scale_out,
                               void *stream) {
    if (n <= 0 || d <= 0) return 0;
    if (n > 0x7fffffff) return (int)cudaErrorInvalidValue;
    layernorm_kernel<<<(unsigned)n, NORM_THREADS, 0, hk_cu_stream(stream)>>>(x, d, w, b, eps, y,
                                                                             scale_out);
    return hk_cu_launch_status();
}

extern "C" int hk_cu_rmsnorm(const float *x, int64_t n, int64_t d, const float *w, float eps,
                             float *y, float *scale_out, void *stream) {
    if (n <= 0 || d <= 0) return 0;
    if (n > 0x7fffffff) return (int)cudaErrorInvalidValue;
    rmsnorm_kernel<<<(unsigned)n, NORM_THREADS, 0, hk_cu_stream(stream)>>>(x, d, w, eps, y,
                                                                           scale_out);
    return hk_cu_launch_status();
}
