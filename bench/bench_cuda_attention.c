/* CUDA attention kernel benchmark (issue 8, point 5): hk_cu_attention on a Mistral-7B layer's
 * shape (32 query heads, 8 KV heads, d_head 128), causal or with a sliding window, prefill of
 * n tokens in one call. Prints one line per case; bench/run_cuda_attention.sh runs the PyTorch
 * peers (SDPA flash, flex_attention) in the same run and prints the ratios.
 *
 * usage: bench_cuda_attention [n=4096] [window=0] [dtype=bf16|f16|f32] [reps=10]
 *                             [heads=32] [kv_heads=8] [d_head=128]
 * HK_CUDA_ATTN_SIMT=1 forces the f32 CUDA-core kernel for f16/bf16 too.
 * TFLOP/s count 4·d_head flops per visible (query, key) pair and head (QKᵀ and PV), the
 * convention FlashAttention's benchmarks use for causal masks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/common/mask_tile.h"
#include "core/cuda_module.h" /* the kernels come from the CUDA module (dlopen) */
#include "hookformer.h"

static const hk_cu_api *cu; /* the CUDA module's kernel table */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define CU(call)                                                                            \
    do {                                                                                    \
        const int e_ = (call);                                                              \
        if (e_) {                                                                           \
            fprintf(stderr, "%s: %s\n", #call, cu->error_string(e_));                     \
            return 1;                                                                       \
        }                                                                                   \
    } while (0)

int main(int argc, char **argv) {
    const int64_t n = argc > 1 ? atoll(argv[1]) : 4096;
    const int64_t window = argc > 2 ? atoll(argv[2]) : 0;
    const char *dts = argc > 3 ? argv[3] : "bf16";
    const int reps = argc > 4 ? atoi(argv[4]) : 10;
    const int64_t nh = argc > 5 ? atoll(argv[5]) : 32, nkv = argc > 6 ? atoll(argv[6]) : 8;
    const int64_t d = argc > 7 ? atoll(argv[7]) : 128;
    const hk_cu_dtype dt = strcmp(dts, "f32") == 0 ? HK_CU_F32
                           : strcmp(dts, "f16") == 0 ? HK_CU_F16 : HK_CU_BF16;
    if (n < 1 || reps < 1 || nh < 1 || nkv < 1 || nh % nkv || d < 1 || d > 256) {
        fprintf(stderr, "usage: bench_cuda_attention [n] [window] [bf16|f16|f32] [reps] "
                        "[heads] [kv_heads] [d_head]\n");
        return 2;
    }
    if (hk_cuda_module(&cu) != HK_OK) {
        fprintf(stderr, "bench_cuda_attention: %s\n", hk_last_error());
        return 1;
    }
    if (cu->device_count() == 0) {
        printf("bench_cuda_attention: no CUDA device; nothing measured\n");
        return 0;
    }
    if (getenv("HK_CUDA_ATTN_SIMT") && atoi(getenv("HK_CUDA_ATTN_SIMT")))
        cu->attention_force_simt(true);
    const size_t es = cu->dtype_size(dt);
    const int64_t nq = n * nh * d, nk = n * nkv * d;
    float *h = malloc((size_t)(nq > nk ? nq : nk) * sizeof *h);
    if (!h) return 1;
    uint64_t s = 42;
    for (int64_t i = 0; i < (nq > nk ? nq : nk); i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        h[i] = (float)((double)(s >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
    }
    void *q32, *k32, *q, *k, *v;
    float *o;
    CU(cu->malloc(&q32, (size_t)nq * 4));
    CU(cu->malloc(&k32, (size_t)nk * 4));
    CU(cu->malloc(&q, (size_t)nq * es));
    CU(cu->malloc(&k, (size_t)nk * es));
    CU(cu->malloc(&v, (size_t)nk * es));
    CU(cu->malloc((void **)&o, (size_t)nq * 4));
    CU(cu->upload(q32, h, (size_t)nq * 4));
    CU(cu->upload(k32, h, (size_t)nk * 4));
    CU(cu->convert(q, dt, q32, HK_CU_F32, nq, NULL));
    CU(cu->convert(k, dt, k32, HK_CU_F32, nk, NULL));
    CU(cu->convert(v, dt, k32, HK_CU_F32, nk, NULL));
    CU(cu->sync(NULL));

    hk_mask_desc m;
    memset(&m, 0, sizeof m);
    m.b.causal = true;
    m.b.window = window;
    m.b.k_len = n;
    double pairs = 0.0; /* visible (query, key) pairs */
    for (int64_t i = 0; i < n; i++) {
        int64_t lo, hi;
        hk_mask_row_range(&m.b, n, i, &lo, &hi);
        if (hi > lo) pairs += (double)(hi - lo);
    }
    const float scale = 1.0f / 11.313708498984761f; /* 1/sqrt(128) */
    for (int w = 0; w < 2; w++) /* warm-up */
        CU(cu->attention(dt, dt, q, nh * d, k, nkv * d, v, nkv * d, n, n, 0, nh, nkv, d, scale,
                           &m, o, nh * d, NULL));
    CU(cu->sync(NULL));
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = now();
        CU(cu->attention(dt, dt, q, nh * d, k, nkv * d, v, nkv * d, n, n, 0, nh, nkv, d, scale,
                           &m, o, nh * d, NULL));
        CU(cu->sync(NULL));
        const double t = now() - t0;
        if (t < best) best = t;
    }
    const double flops = 4.0 * (double)d * (double)nh * pairs;
    printf("impl=hookformer n=%lld window=%lld dtype=%s heads=%lld/%lld d=%lld ms=%.3f "
           "tflops=%.2f path=%s\n",
           (long long)n, (long long)window, dts, (long long)nh, (long long)nkv, (long long)d,
           best * 1e3, flops / best * 1e-12, cu->attention_path(dt, d));
    cu->free(q32);
    cu->free(k32);
    cu->free(q);
    cu->free(k);
    cu->free(v);
    cu->free(o);
    free(h);
    return 0;
}
