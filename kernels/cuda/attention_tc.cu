// Flash attention on tensor cores for f16/bf16 inputs (WMMA 16x16x16, f32 accumulators):
// the tile loop of attention.cu (same rows, same 64-aligned key tiles, same classification
// by hk_mask_desc_classify, pair checks only in partial tiles), with S = Q·Kᵀ and O += P·V on
// tensor cores. P is rounded to the input type before P·V, as FlashAttention does; scores,
// softmax statistics and O stay f32.
//
// 128 threads = 4 warps; warp w owns rows 16w..16w+15 of the block's 64 rows (head-of-group,
// query pairs as in attention.cu). Shared memory: Q, K, V tiles [64][d + 8] in T; S [64][68]
// f32; P [64][72] in T; O [64][d + 4] f32. Only the K/V loads are block-wide; the rest is
// warp-local.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#include <string.h>

#include "attention_internal.cuh"

using namespace nvcuda;

#define TC_THREADS 128
#define TC_ROWS 64
#define TC_KEYS 64
#define TC_LDS 68 // S row stride (f32)
#define TC_LDP 72 // P row stride (T)

__device__ static inline float tc_to_f(__half x) { return __half2float(x); }
__device__ static inline float tc_to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ static inline T tc_from_f(float x);
template <> __device__ inline __half tc_from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ inline __nv_bfloat16 tc_from_f<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

template <typename T>
__global__ static void __launch_bounds__(TC_THREADS) attention_tc_kernel(const attn_args a) {
    extern __shared__ __align__(32) unsigned char tc_smem[];
    const int d = (int)a.d, ldt = d + 8, ldo = d + 4;
    T *Qs = (T *)tc_smem;                             // [64][ldt]
    T *Ks = Qs + TC_ROWS * ldt;                       // [64][ldt]
    T *Vs = Ks + TC_KEYS * ldt;                       // [64][ldt]
    T *Ps = Vs + TC_KEYS * ldt;                       // [64][TC_LDP]
    float *Ss = (float *)(Ps + TC_ROWS * TC_LDP);     // [64][TC_LDS]
    float *Os = Ss + TC_ROWS * TC_LDS;                // [64][ldo]
    int *sh = (int *)(Os + TC_ROWS * ldo);            // [8]

    const T *k = (const T *)a.k, *v = (const T *)a.v;
    const hk_mask_desc &mask = a.mask;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int64_t qb = (int64_t)gridDim.x - 1 - blockIdx.x;
    const int64_t i0 = qb * a.bq;
    const int64_t nq = a.sq - i0 < a.bq ? a.sq - i0 : a.bq;
    const int64_t n_sub = a.group / a.gs;
    const int64_t kvh = blockIdx.y / n_sub;
    const int64_t h0 = kvh * a.group + (blockIdx.y % n_sub) * a.gs;

    // this lane's row (two lanes per row: halves of the 64 keys)
    const int rloc = 16 * warp + (lane >> 1), half = lane & 1;
    const int64_t rg = rloc / a.bq, rii = rloc % a.bq;
    const bool rvalid = rg < a.gs && rii < nq;
    const int64_t ri = i0 + rii, rh = h0 + rg;

    for (int idx = tid; idx < TC_ROWS * d; idx += TC_THREADS) {
        const int r = idx / d, c = idx % d;
        const int64_t g = r / a.bq, ii = r % a.bq;
        T x = tc_from_f<T>(0.0f);
        if (g < a.gs && ii < nq) // rounded to T (exact when q is already T)
            x = tc_from_f<T>(hk_cu_attn_load_q(a.q, a.q_type, (i0 + ii) * a.ldq + (h0 + g) * a.d + c));
        Qs[r * ldt + c] = x;
    }
    for (int idx = tid; idx < TC_ROWS * ldo; idx += TC_THREADS) Os[idx] = 0.0f;

    int64_t jstart, jend, unused;
    hk_mask_row_range(&mask.b, a.sk, i0, &jstart, &unused);
    hk_mask_row_range(&mask.b, a.sk, i0 + nq - 1, &unused, &jend);
    if (jstart < 0) jstart = 0;
    jstart = jstart / TC_KEYS * TC_KEYS;
    int32_t qmin = 0, qmax = 0, kmin = 0, kmax = 0;
    bool qoor = false, koor = false;
    if (mask.doc) hk_cu_attn_doc_range(mask, mask.b.q_pos0 + i0, (int)nq, sh, qmin, qmax, qoor);
    __syncthreads();

    float m = -INFINITY, l = 0.0f; // this row's statistics (both lanes of the row hold them)
    int64_t t0, t1; // this split's key tiles
    hk_cu_attn_split(jend > jstart ? (jend - jstart + TC_KEYS - 1) / TC_KEYS : 0, a.n_split,
                     blockIdx.z, &t0, &t1);
    const int64_t jlast = jstart + t1 * TC_KEYS < jend ? jstart + t1 * TC_KEYS : jend;
    for (int64_t j0 = jstart + t0 * TC_KEYS; j0 < jlast; j0 += TC_KEYS) {
        const int64_t nk = jend - j0 < TC_KEYS ? jend - j0 : TC_KEYS;
        if (mask.doc) hk_cu_attn_doc_range(mask, mask.b.k_pos0 + j0, (int)nk, sh, kmin, kmax, koor);
        const int cls = hk_mask_desc_classify(&mask, a.sk, h0, h0 + a.gs, i0, i0 + nq, j0,
                                              j0 + nk, qmin, qmax, qoor, kmin, kmax, koor);
        if (cls == HK_MT_SKIP) continue;

        for (int idx = tid; idx < TC_KEYS * d; idx += TC_THREADS) {
            const int j = idx / d, c = idx % d;
            T kx = tc_from_f<T>(0.0f), vx = kx;
            if (j < nk) {
                int64_t row = j0 + j;
                if (a.ring > 0) row = ((mask.b.k_pos0 + row) % a.ring + a.ring) % a.ring;
                kx = k[row * a.ldk + kvh * a.d + c];
                vx = v[row * a.ldv + kvh * a.d + c];
            }
            Ks[j * ldt + c] = kx;
            Vs[j * ldt + c] = vx;
        }
        __syncthreads();

        // S[16w.., 0..64) = Q · Kᵀ
        {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4];
            for (int n = 0; n < 4; n++) wmma::fill_fragment(acc[n], 0.0f);
            for (int kk = 0; kk < d; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
                wmma::load_matrix_sync(fa, Qs + 16 * warp * ldt + kk, ldt);
                for (int n = 0; n < 4; n++) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;
                    wmma::load_matrix_sync(fb, Ks + 16 * n * ldt + kk, ldt);
                    wmma::mma_sync(acc[n], fa, fb, acc[n]);
                }
            }
            for (int n = 0; n < 4; n++)
                wmma::store_matrix_sync(Ss + 16 * warp * TC_LDS + 16 * n, acc[n], TC_LDS,
                                        wmma::mem_row_major);
        }
        __syncwarp();

        // online softmax: this lane's 32 keys of its row
        float *srow = Ss + rloc * TC_LDS + 32 * half;
        float mx = -INFINITY;
        for (int c = 0; c < 32; c++) {
            const int64_t jl = 32 * half + c;
            bool vis = jl < nk;
            if (vis && cls == HK_MT_PARTIAL)
                vis = rvalid && hk_mask_desc_visible(&mask, a.sk, rh, ri, j0 + jl);
            const float s = vis ? hk_softcap(srow[c] * a.scale, mask.softcap) : -INFINITY;
            srow[c] = s;
            mx = fmaxf(mx, s);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float mnew = fmaxf(m, mx);
        const float muse = mnew == -INFINITY ? 0.0f : mnew;
        float sum = 0.0f;
        T *prow = Ps + rloc * TC_LDP + 32 * half;
        for (int c = 0; c < 32; c++) {
            const T p = tc_from_f<T>(expf(srow[c] - muse));
            prow[c] = p;
            sum += tc_to_f(p); // the rounded P that P·V uses
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        const float alpha = expf(m - muse);
        l = l * alpha + sum;
        m = mnew;
        // rescale this row's O (each lane of the pair one half of the columns)
        float *orow = Os + rloc * ldo;
        for (int c = half; c < d; c += 2) orow[c] *= alpha;
        __syncwarp();

        // O[16w.., :] += P · V
        for (int cc = 0; cc < d; cc += 16) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, Os + 16 * warp * ldo + cc, ldo, wmma::mem_row_major);
            for (int kk = 0; kk < TC_KEYS; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, Ps + 16 * warp * TC_LDP + kk, TC_LDP);
                wmma::load_matrix_sync(fb, Vs + kk * ldt + cc, ldt);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Os + 16 * warp * ldo + cc, acc, ldo, wmma::mem_row_major);
        }
        __syncthreads(); // K/V tiles are refilled next
    }

    __syncwarp();
    if (a.n_split > 1) { // partial result: o / l, m, l per row
        float *pr = hk_cu_attn_part_row(a, rloc);
        const float *orow = Os + rloc * ldo;
        for (int c = half; c < d; c += 2) pr[c] = l > 0.0f ? orow[c] / l : 0.0f;
        if (half == 0) {
            pr[d] = m;
            pr[d + 1] = l;
        }
        return;
    }
    if (rvalid) {
        float *dst = a.out + ri * a.ldo + rh * a.d;
        const float *orow = Os + rloc * ldo;
        for (int c = half; c < d; c += 2) dst[c] = l > 0.0f ? orow[c] / l : 0.0f;
    }
}

static size_t tc_smem_bytes(int64_t d) {
    const int64_t ldt = d + 8, ldo = d + 4;
    return (size_t)(3 * 64 * ldt + 64 * TC_LDP) * 2 + (size_t)(64 * TC_LDS + 64 * ldo) * 4 +
           8 * sizeof(int);
}

template <typename T> static int launch_tc(const attn_args &a, dim3 grid, cudaStream_t st) {
    const size_t smem = tc_smem_bytes(a.d);
    const cudaError_t e = cudaFuncSetAttribute(attention_tc_kernel<T>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)smem);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return (int)e;
    }
    attention_tc_kernel<T><<<grid, TC_THREADS, smem, st>>>(a);
    return hk_cu_launch_status();
}

bool hk_cu_attn_tc_fits(hk_cu_dtype dtype, int64_t d) {
    return dtype != HK_CU_F32 && d % 16 == 0 && d >= 16 && d <= 256 &&
           tc_smem_bytes(d) <= 227 * 1024;
}

int hk_cu_attn_launch_tc(hk_cu_dtype dtype, const attn_args &a, dim3 grid, cudaStream_t st) {
    if (dtype == HK_CU_F16) return launch_tc<__half>(a, grid, st);
    return launch_tc<__nv_bfloat16>(a, grid, st);
}
