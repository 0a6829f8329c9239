/* Attention kernel benchmark: hk_k_attention (tiled, online softmax, mask on the fly) against
 * hk_k_attention_ref (materialized scores, OpenBLAS GEMMs) measured in the same run.
 * usage: bench_attention [seq=1024] [heads=12] [kv_heads=heads] [d_head=64] [threads=2]
 *                        [window=0] [reps=5]
 * GFLOP/s count 4·d_head flops per visible (query, key) pair and head. The sgemm line is the
 * peer for the arithmetic: OpenBLAS on the dense Q·Kᵀ product of every head. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "kernels/cpu/kernels.h"

/* HK_BENCH_CPU_TIME=1: process CPU time instead of wall time (single-thread runs on a busy
 * machine). */
static clockid_t g_clock = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef void (*attn_fn)(const float *, int64_t, const float *, int64_t, const float *, int64_t,
                        int64_t, int64_t, int64_t, int64_t, int64_t, float, const hk_k_mask *,
                        float *, int64_t);

static double best_of(attn_fn fn, int reps, const float *q, const float *k, const float *v,
                      int64_t n, int64_t nh, int64_t nkv, int64_t d, const hk_k_mask *m,
                      float *o) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = now();
        fn(q, nh * d, k, nkv * d, v, nkv * d, n, n, nh, nkv, d, 1.0f / 8.0f, m, o, nh * d);
        const double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    const int64_t n = argc > 1 ? atoll(argv[1]) : 1024;
    const int64_t nh = argc > 2 ? atoll(argv[2]) : 12;
    const int64_t nkv = argc > 3 ? atoll(argv[3]) : nh;
    const int64_t d = argc > 4 ? atoll(argv[4]) : 64;
    const int threads = argc > 5 ? atoi(argv[5]) : 2;
    const int64_t window = argc > 6 ? atoll(argv[6]) : 0;
    const int reps = argc > 7 ? atoi(argv[7]) : 5;
    if (n <= 0 || nh <= 0 || nkv <= 0 || nh % nkv || d <= 0 || reps <= 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    hk_k_set_threads(threads);
    if (getenv("HK_BENCH_CPU_TIME")) g_clock = CLOCK_PROCESS_CPUTIME_ID;
    float *q = malloc((size_t)(n * nh * d) * sizeof(float));
    float *k = malloc((size_t)(n * nkv * d) * sizeof(float));
    float *v = malloc((size_t)(n * nkv * d) * sizeof(float));
    float *o = malloc((size_t)(n * nh * d) * sizeof(float));
    float *o2 = malloc((size_t)(n * nh * d) * sizeof(float));
    if (!q || !k || !v || !o || !o2) return 1;
    uint64_t s = 1;
    for (int64_t i = 0; i < n * nh * d; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        q[i] = (float)((s >> 40) & 0xFFFF) / 32768.0f - 1.0f;
    }
    for (int64_t i = 0; i < n * nkv * d; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        k[i] = (float)((s >> 40) & 0xFFFF) / 32768.0f - 1.0f;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (float)((s >> 40) & 0xFFFF) / 32768.0f - 1.0f;
    }
    hk_k_mask m = {.causal = true, .window = window, .k_len = n};
    double pairs = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t lo, hi;
        hk_k_mask_row_range(&m, n, i, &lo, &hi);
        pairs += (double)(hi - lo);
    }
    const double flops = 4.0 * (double)d * pairs * (double)nh;

    printf("attention seq=%lld heads=%lld kv_heads=%lld d_head=%lld causal window=%lld "
           "threads=%d isa=%s\n",
           (long long)n, (long long)nh, (long long)nkv, (long long)d, (long long)window,
           hk_k_get_threads(), hk_k_attention_isa());
    const double t_fast = best_of(hk_k_attention, reps, q, k, v, n, nh, nkv, d, &m, o);
    hk_k_attention_force_path(HK_K_ATTN_GENERIC);
    const double t_gen = best_of(hk_k_attention, reps, q, k, v, n, nh, nkv, d, &m, o);
    hk_k_attention_force_path(HK_K_ATTN_AUTO);
    const double t_ref = best_of(hk_k_attention_ref, reps, q, k, v, n, nh, nkv, d, &m, o2);
    /* peer: dense scores Q·Kᵀ per head through OpenBLAS (2·n·n·d flops per head) */
    float *sc = malloc((size_t)(n * n) * sizeof(float));
    if (!sc) return 1;
    double t_gemm = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = now();
        for (int64_t h = 0; h < nh; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)d, 1.0f,
                        q + h * d, (int)(nh * d), k + (h / (nh / nkv)) * d, (int)(nkv * d), 0.0f,
                        sc, (int)n);
        const double t = now() - t0;
        if (t < t_gemm) t_gemm = t;
    }
    free(sc);
    const double gemm_flops = 2.0 * (double)n * (double)n * (double)d * (double)nh;
    double maxdiff = 0;
    for (int64_t i = 0; i < n * nh * d; i++) {
        const double df = o[i] > o2[i] ? o[i] - o2[i] : o2[i] - o[i];
        if (df > maxdiff) maxdiff = df;
    }
    printf("  hk_k_attention        %9.3f ms  %7.1f GFLOP/s\n", t_fast * 1e3, flops / t_fast * 1e-9);
    printf("  hk_k_attention generic%9.3f ms  %7.1f GFLOP/s\n", t_gen * 1e3, flops / t_gen * 1e-9);
    printf("  hk_k_attention_ref    %9.3f ms  %7.1f GFLOP/s\n", t_ref * 1e3, flops / t_ref * 1e-9);
    printf("  sgemm Q.K^T peer      %9.3f ms  %7.1f GFLOP/s\n", t_gemm * 1e3,
           gemm_flops / t_gemm * 1e-9);
    printf("  speedup vs ref %.2fx   vs sgemm rate %.2f   max |diff| %.2e\n", t_ref / t_fast,
           (flops / t_fast) / (gemm_flops / t_gemm), maxdiff);
    free(q);
    free(k);
    free(v);
    free(o);
    free(o2);
    return 0;
}
