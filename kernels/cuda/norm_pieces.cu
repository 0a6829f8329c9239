// The norms' pieces for hooked norms (hook_scale / hook_normalized fire between them) and
// RMSNorm with an offset on the weight (Gemma's (1 + w), for weights uploaded as stored).
// Row statistics in double, as the CPU computes them (core/forward.c norm_pieces).
#include "common.cuh"

#define NP_THREADS 256

// Sum of v over the block; every thread gets the result. sh holds NP_THREADS/32 doubles.
__device__ static double np_block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double t = 0.0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += sh[i];
    return t;
}

// y[row] = x[row] / sqrt(mean(x²) + eps) * (w + w_offset); scale_out[row] the divisor
__global__ static void rmsnorm_offset_kernel(const float *__restrict__ x, int64_t d,
                                             const float *__restrict__ w, float w_offset,
                                             float eps, float *y, float *scale_out) {
    __shared__ double sh[NP_THREADS / 32];
    const int64_t row = blockIdx.x;
    const float *xr = x + row * d;
    float *yr = y + row * d;
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ss += (double)xr[j] * (double)xr[j];
    const double scale = sqrt(np_block_sum(ss, sh) / (double)d + (double)eps);
    if (scale_out && threadIdx.x == 0) scale_out[row] = (float)scale;
    const double inv = 1.0 / scale;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
        yr[j] = (float)((double)xr[j] * inv) * (w[j] + w_offset);
}

extern "C" int hk_cu_rmsnorm_offset(const float *x, int64_t n, int64_t d, const float *w,
                                    float w_offset, float eps, float *y, float *scale_out,
                                    void *stream) {
    if (n <= 0 || d <= 0) return 0;
    if (n > 0x7fffffff) return (int)cudaErrorInvalidValue;
    rmsnorm_offset_kernel<<<(unsigned)n, NP_THREADS, 0, hk_cu_stream(stream)>>>(
        x, d, w, w_offset, eps, y, scale_out);
    return hk_cu_launch_status();
}

// mean[row] (0 unless center) and scale[row] = sqrt(mean((x - mean)²) + eps)
__global__ static void norm_stats_kernel(const float *__restrict__ x, int64_t d, int center,
                                         double eps, float *mean_out, float *scale_out) {
    __shared__ double sh[NP_THREADS / 32];
    const int64_t row = blockIdx.x;
    const float *xr = x + row * d;
    double mean = 0.0;
    if (center) {
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < d; j += blockDim.x) s += (double)xr[j];
        mean = np_block_sum(s, sh) / (double)d;
    }
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        const double c = (double)xr[j] - mean;
        ss += c * c;
    }
    const double scale = sqrt(np_block_sum(ss, sh) / (double)d + eps);
    if (threadIdx.x == 0) {
        mean_out[row] = (float)mean;
        scale_out[row] = (float)scale;
    }
}

extern "C" int hk_cu_norm_stats(const float *x, int64_t n, int64_t d, bool center, double eps,
                                float *mean_out, float *scale_out, void *stream) {
    if (n <= 0 || d <= 0) return 0;
    if (n > 0x7fffffff || !mean_out || !scale_out) return (int)cudaErrorInvalidValue;
    norm_stats_kernel<<<(unsigned)n, NP_THREADS, 0, hk_cu_stream(stream)>>>(
        x, d, center ? 1 : 0, eps, mean_out, scale_out);
    return hk_cu_launch_status();
}

// y = (x - mean[row]) * (1 / scale[row]), in double as the CPU pieces
__global__ static void norm_divide_kernel(const float *x, int64_t n, int64_t d,
                                          const float *mean, const float *scale, float *y) {
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n * d;
         idx += (int64_t)blockDim.x * gridDim.x) {
        const int64_t i = idx / d;
        const double inv = 1.0 / (double)scale[i];
        y[idx] = (float)(((double)x[idx] - (double)mean[i]) * inv);
    }
}

extern "C" int hk_cu_norm_divide(const float *x, int64_t n, int64_t d, const float *mean,
                                 const float *scale, float *y, void *stream) {
    if (n <= 0 || d <= 0) return 0;
    norm_divide_kernel<<<hk_cu_blocks(n * d), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(
        x, n, d, mean, scale, y);
    return hk_cu_launch_status();
}

// y[i, j] = y[i, j] * w[j] + (b ? b[j] : 0)
__global__ static void scale_bias_kernel(float *y, int64_t n, int64_t d, const float *w,
                                         const float *b) {
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n * d;
         idx += (int64_t)blockDim.x * gridDim.x) {
        const int64_t j = idx % d;
        y[idx] = __fadd_rn(__fmul_rn(y[idx], w[j]), b ? b[j] : 0.0f);
    }
}

extern "C" int hk_cu_scale_bias(float *y, int64_t n, int64_t d, const float *w, const float *b,
                                void *stream) {
    if (n <= 0 || d <= 0) return 0;
    if (!w) return (int)cudaErrorInvalidValue;
    scale_bias_kernel<<<hk_cu_blocks(n * d), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(y, n, d,
                                                                                       w, b);
    return hk_cu_launch_status();
}
