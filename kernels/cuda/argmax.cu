// Greedy choice for a batch of rows: out[r] = the lowest index of the largest value of row r
// (hk_sample's greedy tie rule), -1 when the row holds a NaN. One block per row.
#include "common.cuh"

#define AM_THREADS 256

__global__ static void argmax_kernel(const float *x, int64_t n, int32_t *out) {
    __shared__ float shv[AM_THREADS];
    __shared__ int64_t shi[AM_THREADS];
    const float *xr = x + (int64_t)blockIdx.x * n;
    float bv = -INFINITY;
    int64_t bi = INT64_MAX;
    int nan = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const float v = xr[j];
        if (isnan(v)) nan = 1;
        else if (v > bv || (v == bv && j < bi)) {
            bv = v;
            bi = j;
        }
    }
    shv[threadIdx.x] = bv;
    shi[threadIdx.x] = bi;
    nan = __syncthreads_or(nan); // also the barrier before the reduction

    for (int s = AM_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            const float v = shv[threadIdx.x + s];
            const int64_t i = shi[threadIdx.x + s];
            if (v > shv[threadIdx.x] || (v == shv[threadIdx.x] && i < shi[threadIdx.x])) {
                shv[threadIdx.x] = v;
                shi[threadIdx.x] = i;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        // every value -inf: index 0, as a serial scan from -inf keeps the first
        const int64_t i = shi[0] == INT64_MAX ? 0 : shi[0];
        out[blockIdx.x] = nan ? -1 : (int32_t)i;
    }
}

extern "C" int hk_cu_argmax_rows(const float *x, int64_t rows, int64_t n, int32_t *out,
                                 void *stream) {
    if (rows <= 0) return 0;
    if (rows > 0x7fffffff || n <= 0 || n > 0x7fffffff) return (int)cudaErrorInvalidValue;
    argmax_kernel<<<(unsigned)rows, AM_THREADS, 0, hk_cu_stream(stream)>>>(x, n, out);
    return hk_cu_launch_status();
}
