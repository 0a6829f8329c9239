// Internal to kernels/cuda: what the two attention kernels (attention.cu: f32 arithmetic on
// CUDA cores, any input type; attention_tc.cu: tensor cores for f16/bf16) share.
#ifndef HK_KERNELS_CUDA_ATTENTION_INTERNAL_CUH
#define HK_KERNELS_CUDA_ATTENTION_INTERNAL_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common.cuh"

struct attn_args {
    const void *q, *k, *v;
    float *out;
    int64_t ldq, ldk, ldv, ldo;
    int64_t sq, sk, ring, n_heads, n_kv_heads, d;
    int64_t group; // query heads per KV head
    int64_t gs;    // heads of a group per block (divides group)
    int64_t bq;    // queries per block
    float scale;
    int q_type; // hk_cu_dtype of q (k and v: the kernel's template type)
    int64_t n_split; // key-tile ranges per block row (gridDim.z); > 1: partial results
    float *part;     // n_split > 1: [n_split, gridDim.y, gridDim.x, 64, d + 2] (o/l, m, l)
    hk_mask_desc mask;
};

// Key tiles [*t0, *t1) (of 64 keys from jstart) of split z out of the n tiles of a block.
__device__ static inline void hk_cu_attn_split(int64_t ntiles, int64_t n_split, int64_t z,
                                               int64_t *t0, int64_t *t1) {
    *t0 = ntiles * z / n_split;
    *t1 = ntiles * (z + 1) / n_split;
}

// Where row r of this block puts its partial result (n_split > 1).
__device__ static inline float *hk_cu_attn_part_row(const attn_args &a, int r) {
    const int64_t blk = ((int64_t)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    return a.part + (blk * 64 + r) * (a.d + 2);
}

// Element idx of q, widened to f32 (q is read once per block: a runtime switch is cheap).
__device__ static inline float hk_cu_attn_load_q(const void *q, int t, int64_t idx) {
    if (t == HK_CU_F32) return ((const float *)q)[idx];
    if (t == HK_CU_F16) return __half2float(((const __half *)q)[idx]);
    return __bfloat162float(((const __nv_bfloat16 *)q)[idx]);
}

// Document id range of positions [p0, p0 + n) (n <= 64), for every thread of the block.
__device__ static inline void hk_cu_attn_doc_range(const hk_mask_desc &m, int64_t p0, int n,
                                                   int *sh, int32_t &mn, int32_t &mx,
                                                   bool &oor) {
    const int t = threadIdx.x;
    int32_t a = INT32_MAX, b = INT32_MIN;
    int o = 0;
    if (t < n) {
        const int64_t p = p0 + t;
        if (p < 0 || p >= m.doc_len)
            o = 1;
        else
            a = b = m.doc[p];
    }
    for (int off = 16; off > 0; off >>= 1) {
        a = min(a, __shfl_xor_sync(0xffffffffu, a, off));
        b = max(b, __shfl_xor_sync(0xffffffffu, b, off));
        o |= __shfl_xor_sync(0xffffffffu, o, off);
    }
    if (t < 64 && (t & 31) == 0) {
        sh[(t >> 5) * 3 + 0] = a;
        sh[(t >> 5) * 3 + 1] = b;
        sh[(t >> 5) * 3 + 2] = o;
    }
    __syncthreads();
    mn = min(sh[0], sh[3]);
    mx = max(sh[1], sh[4]);
    oor = (sh[2] | sh[5]) != 0;
    __syncthreads(); // sh is reused by the next call
}

// Combines the n_split partial results into out (flash-decoding's reduction).
int hk_cu_attn_combine(const attn_args &a, dim3 grid, cudaStream_t st);

// The tensor-core kernel takes this call (f16/bf16, d_head a multiple of 16 that fits).
bool hk_cu_attn_tc_fits(hk_cu_dtype dtype, int64_t d_head);
int hk_cu_attn_launch_tc(hk_cu_dtype dtype, const attn_args &a, dim3 grid, cudaStream_t st);

#endif
