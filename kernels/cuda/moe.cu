// Mixture-of-experts routing on the device: the router's softmax (exp and sum in double, as
// core/forward.c softmax_rows_f32) and the top-k choice (ties: the lower expert id first),
// optionally renormalized over the chosen k. One thread per token row: E and k are small.
#include "common.cuh"

__global__ static void softmax_f64_kernel(const float *x, int64_t rows, int64_t n, float *y) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < rows;
         i += (int64_t)blockDim.x * gridDim.x) {
        const float *xi = x + i * n;
        float *yi = y + i * n;
        float mx = -INFINITY;
        for (int64_t j = 0; j < n; j++) mx = xi[j] > mx ? xi[j] : mx;
        double sum = 0.0;
        for (int64_t j = 0; j < n; j++) sum += exp((double)xi[j] - mx);
        for (int64_t j = 0; j < n; j++)
            yi[j] = mx == -INFINITY ? 0.0f : (float)(exp((double)xi[j] - mx) / sum);
    }
}

extern "C" int hk_cu_softmax_rows_f64(const float *x, int64_t rows, int64_t n, float *y,
                                      void *stream) {
    if (rows <= 0 || n <= 0) return 0;
    softmax_f64_kernel<<<hk_cu_blocks(rows), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(x, rows,
                                                                                        n, y);
    return hk_cu_launch_status();
}

__global__ static void moe_route_kernel(const float *probs, int64_t rows, int64_t E, int64_t k,
                                        int norm_topk, float *ids, float *mix) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < rows;
         i += (int64_t)blockDim.x * gridDim.x) {
        const float *p = probs + i * E;
        float *id = ids + i * k, *mx = mix + i * k;
        uint32_t taken[HK_CU_MOE_MAX_EXPERTS / 32] = {0};
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++) {
            int64_t best = -1;
            for (int64_t e = 0; e < E; e++)
                if (!(taken[e >> 5] >> (e & 31) & 1u) && (best < 0 || p[e] > p[best])) best = e;
            taken[best >> 5] |= 1u << (best & 31);
            id[j] = (float)best;
            mx[j] = p[best];
            sum += p[best];
        }
        if (norm_topk && sum > 0)
            for (int64_t j = 0; j < k; j++) mx[j] = (float)((double)mx[j] / sum);
    }
}

extern "C" int hk_cu_moe_route(const float *probs, int64_t rows, int64_t n_experts,
                               int64_t k, bool norm_topk, float *ids, float *mix, void *stream) {
    if (rows <= 0) return 0;
    if (n_experts <= 0 || n_experts > HK_CU_MOE_MAX_EXPERTS || k <= 0 || k > n_experts)
        return (int)cudaErrorInvalidValue;
    moe_route_kernel<<<hk_cu_blocks(rows), HK_CU_THREADS, 0, hk_cu_stream(stream)>>>(
        probs, rows, n_experts, k, norm_topk ? 1 : 0, ids, mix);
    return hk_cu_launch_status();
}
