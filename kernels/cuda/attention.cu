// Flash-style attention: one block per (64 rows, KV head group slice); key tiles of 64 with
// an online softmax, the mask evaluated per tile with kernels/common/mask_tile.h (the same
// classification as the CPU kernel), per pair only inside partial tiles.
//
// Rows of a block are (query head g of the slice, query i) pairs, r = g * bq + (i - i0): with
// many queries a block holds 64 queries of one head; when decoding (few queries) it holds the
// heads of a GQA group, so the K/V tile is read once for all of them.
//
// Thread layout (256 threads): tx = tid % 16, ty = tid / 16. Thread (ty, tx) owns rows
// 4ty..4ty+3; in the score tile the keys tx + 16jj (jj < 4), in the output the columns
// tx + 16c (c < DC). The 16 threads of a row are one half-warp: row reductions are shuffles.
//
// Shared memory (floats): Qs [d][65] scaled queries transposed, Ks [d][65] keys transposed,
// Vs [64][16 DC] values (zero past d), Ps [64][65] probabilities transposed; the padding keeps
// the transposed stores free of bank conflicts.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string.h>

#include "attention_internal.cuh"

#define AT_ROWS 64
#define AT_KEYS 64
#define AT_THREADS 256
#define AT_LD 65

__device__ static inline float to_f(float x) { return x; }
__device__ static inline float to_f(__half x) { return __half2float(x); }
__device__ static inline float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T, int DC>
__global__ static void __launch_bounds__(AT_THREADS)
    attention_kernel(const attn_args a) {
    extern __shared__ float smem[];
    const int64_t d = a.d, dv = 16 * DC;
    float *Qs = smem;                  // [d][AT_LD]
    float *Ks = Qs + d * AT_LD;        // [d][AT_LD]
    float *Vs = Ks + d * AT_LD;        // [AT_KEYS][dv]
    float *Ps = Vs + AT_KEYS * dv;     // [AT_KEYS][AT_LD]
    int *sh = (int *)(Ps + AT_KEYS * AT_LD); // [8] reduction scratch

    const T *k = (const T *)a.k, *v = (const T *)a.v;
    const hk_mask_desc &mask = a.mask;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    // heavy (late, under a causal mask) query blocks first
    const int64_t qb = (int64_t)gridDim.x - 1 - blockIdx.x;
    const int64_t i0 = qb * a.bq;
    const int64_t nq = a.sq - i0 < a.bq ? a.sq - i0 : a.bq; // queries of this block
    const int64_t n_sub = a.group / a.gs;
    const int64_t kvh = blockIdx.y / n_sub;
    const int64_t h0 = kvh * a.group + (blockIdx.y % n_sub) * a.gs; // first query head

    // this thread's rows
    int64_t ri[4], rh[4];
    bool rv[4];
    for (int u = 0; u < 4; u++) {
        const int r = 4 * ty + u;
        const int64_t g = r / a.bq, ii = r % a.bq;
        rv[u] = g < a.gs && ii < nq;
        ri[u] = i0 + ii;
        rh[u] = h0 + g;
    }

    // scaled queries, transposed; zero rows past the block's
    for (int64_t idx = tid; idx < AT_ROWS * d; idx += AT_THREADS) {
        const int64_t r = idx / d, c = idx % d;
        const int64_t g = r / a.bq, ii = r % a.bq;
        float x = 0.0f;
        if (g < a.gs && ii < nq)
            x = hk_cu_attn_load_q(a.q, a.q_type, (i0 + ii) * a.ldq + (h0 + g) * d + c) * a.scale;
        Qs[c * AT_LD + r] = x;
    }

    // keys any row may see, key tiles aligned to 64 (the block mask's tiles)
    int64_t jstart, jend, unused;
    hk_mask_row_range(&mask.b, a.sk, i0, &jstart, &unused);
    hk_mask_row_range(&mask.b, a.sk, i0 + nq - 1, &unused, &jend);
    if (jstart < 0) jstart = 0;
    jstart = jstart / AT_KEYS * AT_KEYS;

    int32_t qmin = 0, qmax = 0, kmin = 0, kmax = 0;
    bool qoor = false, koor = false;
    if (mask.doc) hk_cu_attn_doc_range(mask, mask.b.q_pos0 + i0, (int)nq, sh, qmin, qmax, qoor);
    __syncthreads();

    float o[4][DC], m[4], l[4];
    for (int u = 0; u < 4; u++) {
        m[u] = -INFINITY;
        l[u] = 0.0f;
#pragma unroll
        for (int c = 0; c < DC; c++) o[u][c] = 0.0f;
    }

    int64_t t0, t1; // this split's key tiles
    hk_cu_attn_split(jend > jstart ? (jend - jstart + AT_KEYS - 1) / AT_KEYS : 0, a.n_split,
                     blockIdx.z, &t0, &t1);
    const int64_t jlast = jstart + t1 * AT_KEYS < jend ? jstart + t1 * AT_KEYS : jend;
    for (int64_t j0 = jstart + t0 * AT_KEYS; j0 < jlast; j0 += AT_KEYS) {
        const int64_t nk = jend - j0 < AT_KEYS ? jend - j0 : AT_KEYS;
        if (mask.doc) hk_cu_attn_doc_range(mask, mask.b.k_pos0 + j0, (int)nk, sh, kmin, kmax, koor);
        const int cls = hk_mask_desc_classify(&mask, a.sk, h0, h0 + a.gs, i0, i0 + nq, j0,
                                              j0 + nk, qmin, qmax, qoor, kmin, kmax, koor);
        if (cls == HK_MT_SKIP) continue; // uniform across the block

        // K tile transposed, V tile row-major; zeros past nk and d
        for (int64_t idx = tid; idx < AT_KEYS * d; idx += AT_THREADS) {
            const int64_t j = idx / d, c = idx % d;
            float x = 0.0f;
            if (j < nk) {
                int64_t row = j0 + j;
                if (a.ring > 0) row = ((mask.b.k_pos0 + row) % a.ring + a.ring) % a.ring;
                x = to_f(k[row * a.ldk + kvh * d + c]);
            }
            Ks[c * AT_LD + j] = x;
        }
        for (int64_t idx = tid; idx < AT_KEYS * dv; idx += AT_THREADS) {
            const int64_t j = idx / dv, c = idx % dv;
            float x = 0.0f;
            if (j < nk && c < d) {
                int64_t row = j0 + j;
                if (a.ring > 0) row = ((mask.b.k_pos0 + row) % a.ring + a.ring) % a.ring;
                x = to_f(v[row * a.ldv + kvh * d + c]);
            }
            Vs[j * dv + c] = x;
        }
        __syncthreads();

        float s[4][4];
#pragma unroll
        for (int u = 0; u < 4; u++)
#pragma unroll
            for (int jj = 0; jj < 4; jj++) s[u][jj] = 0.0f;
        for (int64_t c = 0; c < d; c++) {
            const float *qc = Qs + c * AT_LD + 4 * ty, *kc = Ks + c * AT_LD + tx;
            const float q0 = qc[0], q1 = qc[1], q2 = qc[2], q3 = qc[3];
#pragma unroll
            for (int jj = 0; jj < 4; jj++) {
                const float kv = kc[16 * jj];
                s[0][jj] = fmaf(q0, kv, s[0][jj]);
                s[1][jj] = fmaf(q1, kv, s[1][jj]);
                s[2][jj] = fmaf(q2, kv, s[2][jj]);
                s[3][jj] = fmaf(q3, kv, s[3][jj]);
            }
        }

        // mask: keys past the tile always; pairs of partial tiles one by one
#pragma unroll
        for (int u = 0; u < 4; u++)
#pragma unroll
            for (int jj = 0; jj < 4; jj++) {
                const int64_t jl = tx + 16 * jj;
                bool vis = jl < nk;
                if (vis && cls == HK_MT_PARTIAL)
                    vis = rv[u] && hk_mask_desc_visible(&mask, a.sk, rh[u], ri[u], j0 + jl);
                s[u][jj] = vis ? hk_softcap(s[u][jj], mask.softcap) : -INFINITY;
            }

        // online softmax per row (16 lanes of a half-warp hold one row)
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float mx = fmaxf(fmaxf(s[u][0], s[u][1]), fmaxf(s[u][2], s[u][3]));
            for (int off = 8; off > 0; off >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            const float mnew = fmaxf(m[u], mx);
            const float muse = mnew == -INFINITY ? 0.0f : mnew; // nothing visible yet
            float sum = 0.0f;
#pragma unroll
            for (int jj = 0; jj < 4; jj++) {
                s[u][jj] = expf(s[u][jj] - muse); // -inf -> 0
                sum += s[u][jj];
            }
            for (int off = 8; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            const float alpha = expf(m[u] - muse);
            l[u] = l[u] * alpha + sum;
            m[u] = mnew;
#pragma unroll
            for (int c = 0; c < DC; c++) o[u][c] *= alpha;
#pragma unroll
            for (int jj = 0; jj < 4; jj++) Ps[(tx + 16 * jj) * AT_LD + 4 * ty + u] = s[u][jj];
        }
        __syncthreads();

        // O += P V
        for (int j = 0; j < AT_KEYS; j++) {
            const float *pj = Ps + j * AT_LD + 4 * ty;
            const float p0 = pj[0], p1 = pj[1], p2 = pj[2], p3 = pj[3];
            const float *vj = Vs + j * dv + tx;
#pragma unroll
            for (int c = 0; c < DC; c++) {
                const float vv = vj[16 * c];
                o[0][c] = fmaf(p0, vv, o[0][c]);
                o[1][c] = fmaf(p1, vv, o[1][c]);
                o[2][c] = fmaf(p2, vv, o[2][c]);
                o[3][c] = fmaf(p3, vv, o[3][c]);
            }
        }
        __syncthreads(); // Ks, Vs, Ps are refilled by the next tile
    }

    if (a.n_split > 1) { // partial result: o / l, m, l per row
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float *pr = hk_cu_attn_part_row(a, 4 * ty + u);
            const float inv = l[u] > 0.0f ? 1.0f / l[u] : 0.0f;
#pragma unroll
            for (int c = 0; c < DC; c++) {
                const int64_t col = tx + 16 * c;
                if (col < d) pr[col] = o[u][c] * inv;
            }
            if (tx == 0) {
                pr[d] = m[u];
                pr[d + 1] = l[u];
            }
        }
        return;
    }

    // normalize; rows that saw no key are zeros
#pragma unroll
    for (int u = 0; u < 4; u++) {
        if (!rv[u]) continue;
        float *dst = a.out + ri[u] * a.ldo + rh[u] * d;
        const float inv = l[u] > 0.0f ? 1.0f / l[u] : 0.0f;
#pragma unroll
        for (int c = 0; c < DC; c++) {
            const int64_t col = tx + 16 * c;
            if (col < d) dst[col] = l[u] > 0.0f ? o[u][c] * inv : 0.0f;
        }
    }
}

static size_t attn_smem_bytes(int64_t d, int dc) {
    return (size_t)(2 * d * AT_LD + AT_KEYS * 16 * dc + AT_KEYS * AT_LD) * sizeof(float) +
           8 * sizeof(int);
}

template <typename T, int DC>
static int launch(const attn_args &a, dim3 grid, cudaStream_t st) {
    const size_t smem = attn_smem_bytes(a.d, DC);
    cudaError_t e = cudaFuncSetAttribute(attention_kernel<T, DC>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return (int)e;
    }
    attention_kernel<T, DC><<<grid, AT_THREADS, smem, st>>>(a);
    return hk_cu_launch_status();
}

template <typename T>
static int launch_type(const attn_args &a, dim3 grid, cudaStream_t st) {
    if (a.d <= 32) return launch<T, 2>(a, grid, st);
    if (a.d <= 64) return launch<T, 4>(a, grid, st);
    if (a.d <= 96) return launch<T, 6>(a, grid, st);
    if (a.d <= 128) return launch<T, 8>(a, grid, st);
    return launch<T, 16>(a, grid, st);
}

static bool g_force_simt;
static int g_force_splits;

extern "C" void hk_cu_attention_force_splits(int n) { g_force_splits = n < 0 ? 0 : n; }

// Partial results of the split blocks -> out.
__global__ static void combine_kernel(const attn_args a) {
    const int64_t qb = (int64_t)gridDim.x - 1 - blockIdx.x;
    const int64_t i0 = qb * a.bq;
    const int64_t nq = a.sq - i0 < a.bq ? a.sq - i0 : a.bq;
    const int64_t n_sub = a.group / a.gs;
    const int64_t h0 = (blockIdx.y / n_sub) * a.group + (blockIdx.y % n_sub) * a.gs;
    const int64_t d = a.d, blk_stride = (int64_t)gridDim.y * gridDim.x;
    const int64_t blk0 = (int64_t)blockIdx.y * gridDim.x + blockIdx.x;
    for (int64_t idx = threadIdx.x; idx < 64 * d; idx += blockDim.x) {
        const int64_t r = idx / d, c = idx % d;
        const int64_t g = r / a.bq, ii = r % a.bq;
        if (g >= a.gs || ii >= nq) continue;
        float mx = -INFINITY;
        for (int64_t z = 0; z < a.n_split; z++) {
            const float *pr = a.part + ((z * blk_stride + blk0) * 64 + r) * (d + 2);
            if (pr[d + 1] > 0.0f) mx = fmaxf(mx, pr[d]);
        }
        float num = 0.0f, den = 0.0f;
        if (mx != -INFINITY)
            for (int64_t z = 0; z < a.n_split; z++) {
                const float *pr = a.part + ((z * blk_stride + blk0) * 64 + r) * (d + 2);
                if (!(pr[d + 1] > 0.0f)) continue;
                const float w = pr[d + 1] * expf(pr[d] - mx);
                num += w * pr[c];
                den += w;
            }
        a.out[(i0 + ii) * a.ldo + (h0 + g) * d + c] = den > 0.0f ? num / den : 0.0f;
    }
}

int hk_cu_attn_combine(const attn_args &a, dim3 grid, cudaStream_t st) {
    combine_kernel<<<dim3(grid.x, grid.y), 256, 0, st>>>(a);
    return hk_cu_launch_status();
}

static int sm_count(void) {
    static int n;
    if (n == 0) {
        int dev = 0, v = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
            (void)cudaGetLastError();
            v = 1;
        }
        n = v > 0 ? v : 1;
    }
    return n;
}

// Splits of the key range per block: enough blocks for two waves over the SMs when there are
// few blocks and many key tiles (decoding a long context), at least 4 tiles per split.
static int64_t pick_splits(int64_t blocks, int64_t tiles) {
    if (g_force_splits > 0) return g_force_splits;
    const int64_t sms = sm_count();
    if (blocks >= sms || tiles < 8) return 1;
    int64_t ns = (2 * sms + blocks - 1) / blocks;
    if (ns > tiles / 4) ns = tiles / 4;
    if (ns > 32) ns = 32;
    return ns < 1 ? 1 : ns;
}

extern "C" void hk_cu_attention_force_simt(bool on) { g_force_simt = on; }

extern "C" const char *hk_cu_attention_path(hk_cu_dtype kv_type, int64_t d_head) {
    return !g_force_simt && hk_cu_attn_tc_fits(kv_type, d_head) ? "tensor-core" : "simt-f32";
}

extern "C" int hk_cu_attention(hk_cu_dtype q_type, hk_cu_dtype dtype, const void *q, int64_t ldq,
                               const void *k,
                               int64_t ldk, const void *v, int64_t ldv, int64_t sq, int64_t sk,
                               int64_t ring, int64_t n_heads, int64_t n_kv_heads, int64_t d_head,
                               float scale, const hk_mask_desc *mask, float *out, int64_t ldo,
                               void *stream) {
    if (sq <= 0 || n_heads <= 0 || d_head <= 0) return 0;
    if ((unsigned)q_type > HK_CU_BF16 || d_head > 256 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || ring < 0 ||
        (ring > 0 && sk > ring))
        return (int)cudaErrorInvalidValue;
    attn_args a;
    a.q = q;
    a.k = k;
    a.v = v;
    a.out = out;
    a.ldq = ldq;
    a.ldk = ldk;
    a.ldv = ldv;
    a.ldo = ldo;
    a.sq = sq;
    a.sk = sk < 0 ? 0 : sk;
    a.ring = ring;
    a.n_heads = n_heads;
    a.n_kv_heads = n_kv_heads;
    a.d = d_head;
    a.group = n_heads / n_kv_heads;
    a.scale = scale;
    a.q_type = (int)q_type;
    if (mask) {
        a.mask = *mask;
    } else {
        memset(&a.mask, 0, sizeof a.mask);
        a.mask.b = hk_mask_bounds_all(a.sk);
    }
    // Many queries: 64 of one head per block. Few (decoding): the heads of a group share it.
    a.bq = sq < AT_ROWS ? sq : AT_ROWS;
    a.gs = 1;
    for (int64_t g = a.group; g >= 1; g--)
        if (a.group % g == 0 && g * a.bq <= AT_ROWS) {
            a.gs = g;
            break;
        }
    const int64_t nqb = (sq + a.bq - 1) / a.bq;
    const int64_t ny = n_kv_heads * (a.group / a.gs);
    if (nqb > 0x7fffffff || ny > 65535) return (int)cudaErrorInvalidValue;
    const cudaStream_t st = hk_cu_stream(stream);
    // key tiles of the widest block (an upper bound for every block)
    a.n_split = pick_splits(nqb * ny, (a.sk + AT_KEYS - 1) / AT_KEYS + 1);
    a.part = NULL;
    if (a.n_split > 1) {
        const size_t bytes = (size_t)(a.n_split * ny * nqb * 64 * (d_head + 2)) * sizeof(float);
        const cudaError_t e = cudaMallocAsync((void **)&a.part, bytes, st);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            a.n_split = 1; // no workspace: one pass per block, slower but the same result
            a.part = NULL;
        }
    }
    const dim3 grid((unsigned)nqb, (unsigned)ny, (unsigned)a.n_split);
    int err;
    if (!g_force_simt && hk_cu_attn_tc_fits(dtype, d_head)) {
        err = hk_cu_attn_launch_tc(dtype, a, grid, st);
    } else {
        switch (dtype) {
        case HK_CU_F32: err = launch_type<float>(a, grid, st); break;
        case HK_CU_F16: err = launch_type<__half>(a, grid, st); break;
        case HK_CU_BF16: err = launch_type<__nv_bfloat16>(a, grid, st); break;
        default: err = (int)cudaErrorInvalidValue;
        }
    }
    if (a.n_split > 1) {
        if (!err) err = hk_cu_attn_combine(a, grid, st);
        const cudaError_t e = cudaFreeAsync(a.part, st);
        if (!err && e != cudaSuccess) err = (int)e;
    }
    return err;
}

// ---- block masks on the device ----

extern "C" int hk_cu_block_mask_upload(const hk_block_mask *host, hk_block_mask *dev) {
    memset(dev, 0, sizeof *dev);
    const size_t tiles = (size_t)(host->heads * host->nqt * host->nkt);
    const size_t nbits = (size_t)host->n_partial * HK_MT_BQ;
    void *cls = NULL, *slot = NULL, *bits = NULL;
    cudaError_t e = cudaMalloc(&cls, tiles ? tiles : 1);
    if (e == cudaSuccess) e = cudaMalloc(&slot, (tiles ? tiles : 1) * sizeof(int32_t));
    if (e == cudaSuccess) e = cudaMalloc(&bits, (nbits ? nbits : 1) * sizeof(uint64_t));
    if (e == cudaSuccess && tiles) e = cudaMemcpy(cls, host->cls, tiles, cudaMemcpyHostToDevice);
    if (e == cudaSuccess && tiles)
        e = cudaMemcpy(slot, host->slot, tiles * sizeof(int32_t), cudaMemcpyHostToDevice);
    if (e == cudaSuccess && nbits)
        e = cudaMemcpy(bits, host->bits, nbits * sizeof(uint64_t), cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        cudaFree(cls);
        cudaFree(slot);
        cudaFree(bits);
        return (int)e;
    }
    *dev = *host;
    dev->cls = (const uint8_t *)cls;
    dev->slot = (const int32_t *)slot;
    dev->bits = (const uint64_t *)bits;
    return 0;
}

extern "C" void hk_cu_block_mask_free(hk_block_mask *dev) {
    if (!dev) return;
    cudaFree((void *)dev->cls);
    cudaFree((void *)dev->slot);
    cudaFree((void *)dev->bits);
    memset(dev, 0, sizeof *dev);
}
