// Next-token choice on the device, the same choice as hk_sample (core/sampling.c) given the
// same uniform draw: greedy (ties: lowest id); else temperature, top-k (keep x >= the k-th
// largest), top-p (in descending order of (x, then ascending id), keep a token while the mass
// before it is < top_p) and a draw from what is left, walked in id order (no top-p) or in the
// sorted order (top-p), as the CPU walks its candidate list.
//
// Nothing is sorted: the k-th largest is a radix select over order-preserving integer keys of
// the logits, and both "mass before" questions are binary searches over 64-bit order keys
// (logit key << 32 | ~id), each step one pass over the vocabulary with a block reduction.
// One block of 1024 threads; weights exp((x - xmax) / T) in double in the workspace.
#include "../common/sample_keys.h"
#include "common.cuh"

#define SP_THREADS 1024
#define SP_WARPS (SP_THREADS / 32)

static __device__ inline uint32_t fkey(float x) { return hk_sample_fkey(x); }
static __device__ inline uint64_t okey(float x, int64_t id) { return hk_sample_okey(x, id); }

template <typename V> __device__ static V block_sum(V v, V *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    V t = 0;
    for (int i = 0; i < SP_WARPS; i++) t += sh[i];
    return t;
}

__device__ static uint64_t block_min_u64(uint64_t v, unsigned long long *sh) {
    for (int o = 16; o > 0; o >>= 1) {
        const uint64_t w = __shfl_xor_sync(0xffffffffu, (unsigned long long)v, o);
        v = w < v ? w : v;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    uint64_t t = sh[0];
    for (int i = 1; i < SP_WARPS; i++) t = sh[i] < t ? sh[i] : t;
    return t;
}

__device__ static inline double weight(float x, float xmax, double T) {
    return hk_sample_weight(x, xmax, T);
}

__global__ static void __launch_bounds__(SP_THREADS)
    sample_kernel(const float *x, int64_t n, float temperature, int top_k, float top_p,
                  double u01, double *w, int32_t *res) {
    __shared__ double shd[SP_WARPS];
    __shared__ int64_t shi[SP_WARPS];
    __shared__ float shf[SP_WARPS];
    __shared__ unsigned long long shu[SP_WARPS];
    const int t = threadIdx.x;

    // argmax (ties: lowest id) and NaN check
    float bx = -INFINITY;
    int64_t bi = INT64_MAX, nan = 0;
    for (int64_t j = t; j < n; j += SP_THREADS) {
        const float v = x[j];
        if (isnan(v))
            nan = 1;
        else if (v > bx || (v == bx && j < bi)) {
            bx = v;
            bi = j;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ox = __shfl_xor_sync(0xffffffffu, bx, o);
        const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ox > bx || (ox == bx && oi < bi)) {
            bx = ox;
            bi = oi;
        }
    }
    if ((t & 31) == 0) {
        shf[t >> 5] = bx;
        shi[t >> 5] = bi;
    }
    __syncthreads();
    bx = shf[0];
    bi = shi[0];
    for (int i = 1; i < SP_WARPS; i++)
        if (shf[i] > bx || (shf[i] == bx && shi[i] < bi)) {
            bx = shf[i];
            bi = shi[i];
        }
    nan = block_sum<int64_t>(nan, shi);
    if (nan) {
        if (t == 0) res[0] = 0, res[1] = 1;
        return;
    }
    if (bi == INT64_MAX) bi = 0; // cannot happen for n >= 1 without NaN
    if (temperature == 0.0f) {
        if (t == 0) res[0] = (int32_t)bi, res[1] = 0;
        return;
    }
    if (isinf(bx) && bx < 0) {
        if (t == 0) res[0] = 0, res[1] = 2;
        return;
    }
    const float xmax = bx;
    const double T = (double)temperature;

    // top-k: the key of the k-th largest logit, bit by bit from the top
    uint32_t thr = 0;
    if (top_k > 0 && top_k < n) {
        int64_t kk = top_k;
        uint32_t prefix = 0;
        for (int bit = 31; bit >= 0; bit--) {
            const uint32_t want = prefix | (1u << bit);
            const uint32_t hi = ~((1u << bit) - 1u); // bits >= bit
            int64_t c = 0;
            for (int64_t j = t; j < n; j += SP_THREADS) c += (fkey(x[j]) & hi) == want;
            c = block_sum<int64_t>(c, shi);
            if (c >= kk)
                prefix = want;
            else
                kk -= c;
        }
        thr = prefix;
    }
    for (int64_t j = t; j < n; j += SP_THREADS)
        w[j] = fkey(x[j]) >= thr ? weight(x[j], xmax, T) : 0.0;
    __syncthreads();

    // top-p: the smallest order key k0 whose mass strictly above is < top_p; keep keys >= k0
    if (top_p < 1.0f) {
        double z = 0.0;
        for (int64_t j = t; j < n; j += SP_THREADS) z += w[j];
        z = block_sum<double>(z, shd);
        uint64_t lo = 0, hi = ~(uint64_t)0;
        while (lo < hi) {
            const uint64_t mid = lo + (hi - lo) / 2;
            double m = 0.0;
            for (int64_t j = t; j < n; j += SP_THREADS)
                if (okey(x[j], j) > mid) m += w[j];
            m = block_sum<double>(m, shd);
            if (m / z < (double)top_p)
                hi = mid;
            else
                lo = mid + 1;
        }
        for (int64_t j = t; j < n; j += SP_THREADS)
            if (okey(x[j], j) < lo) w[j] = 0.0;
        __syncthreads();
    }

    double z = 0.0;
    for (int64_t j = t; j < n; j += SP_THREADS) z += w[j];
    z = block_sum<double>(z, shd);
    const double u = u01 * z;
    int64_t pick = -1;
    if (top_p < 1.0f) {
        // sorted order: the largest key k with mass(keys >= k) > u
        uint64_t lo = 0, hi = ~(uint64_t)0;
        while (lo < hi) {
            const uint64_t mid = lo + (hi - lo) / 2 + 1;
            double a = 0.0;
            for (int64_t j = t; j < n; j += SP_THREADS)
                if (okey(x[j], j) >= mid) a += w[j];
            a = block_sum<double>(a, shd);
            if (a > u)
                lo = mid;
            else
                hi = mid - 1;
        }
        double a = 0.0;
        for (int64_t j = t; j < n; j += SP_THREADS)
            if (okey(x[j], j) >= lo) a += w[j];
        a = block_sum<double>(a, shd);
        uint64_t key = lo;
        if (!(a > u)) { // rounding left u at the end: the last token of positive weight
            uint64_t mn = ~(uint64_t)0;
            for (int64_t j = t; j < n; j += SP_THREADS)
                if (w[j] > 0.0 && okey(x[j], j) < mn) mn = okey(x[j], j);
            key = block_min_u64(mn, shu);
        }
        pick = hk_sample_okey_id(key);
    } else {
        // id order: the smallest id with mass(ids <= id) > u
        int64_t lo = 0, hi = n - 1;
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            double b = 0.0;
            for (int64_t j = t; j <= mid && j < n; j += SP_THREADS) b += w[j];
            b = block_sum<double>(b, shd);
            if (b > u)
                hi = mid;
            else
                lo = mid + 1;
        }
        double b = 0.0;
        for (int64_t j = t; j <= lo; j += SP_THREADS) b += w[j];
        b = block_sum<double>(b, shd);
        pick = lo;
        if (!(b > u)) { // the last token of positive weight
            uint64_t mn = ~(uint64_t)0; // min of (n - 1 - id) = max id
            for (int64_t j = t; j < n; j += SP_THREADS)
                if (w[j] > 0.0 && (uint64_t)(n - 1 - j) < mn) mn = (uint64_t)(n - 1 - j);
            pick = n - 1 - (int64_t)block_min_u64(mn, shu);
        }
    }
    if (t == 0) res[0] = (int32_t)pick, res[1] = 0;
}

extern "C" size_t hk_cu_sample_ws_bytes(int64_t vocab) {
    return (size_t)(vocab > 0 ? vocab : 1) * sizeof(double);
}

extern "C" int hk_cu_sample(const float *logits, int64_t vocab, float temperature, int top_k,
                            float top_p, double u01, void *ws, int32_t *result, void *stream) {
    if (vocab < 1 || vocab > 0x7fffffff || !(temperature >= 0.0f) || top_k < 0 ||
        !(top_p > 0.0f && top_p <= 1.0f) || !(u01 >= 0.0 && u01 < 1.0))
        return (int)cudaErrorInvalidValue;
    sample_kernel<<<1, SP_THREADS, 0, hk_cu_stream(stream)>>>(logits, vocab, temperature, top_k,
                                                              top_p, u01, (double *)ws, result);
    return hk_cu_launch_status();
}
