/* SmolLM2 (or any model) throughput: load time and RSS, prefill tokens/s (one sequence of N
 * tokens through a session, last-position logits, as a generation prefill) and decode tokens/s
 * (greedy, one token per feed after a short prompt). Also times what dequantizing every
 * quantized tensor of a GGUF once costs — the price a keep-quantized, dequantize-per-use design
 * would pay on every forward, decode steps included. One line per measurement:
 *
 *   hookformer case=prefill threads=2 tokens=128 tok_per_s=812.3 ms=157.6 reps=3
 *
 *   bench_smollm2 --model M.gguf [--prefill 128,512] [--decode 64] [--prompt 8] [--threads 1]
 *                 [--reps 3] [--weights blocks|f32] [--cache resid]
 *
 * --weights: how GGUF blocks are held (hk_load_opts; default blocks). --cache resid: decode
 * also once more with every layer's blocks.*.hook_resid_post copied into an in-memory cache
 * at each step (case=decode-cached), to price the hooks against the plain decode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "core/checkpoint.h"
#include "core/model.h"
#include "core/quant.h"
#include "hookformer.h"

/* Process CPU time: with one thread, the compute time, unaffected by other jobs taking the
 * core away (the machine the figures come from is shared). */
static double cpu_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_list(const char *s, int64_t *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        out[n++] = strtoll(s, (char **)&s, 10);
        if (*s == ',') s++;
    }
    return n;
}

static int32_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

static void die(const char *what) {
    fprintf(stderr, "bench_smollm2: %s: %s\n", what, hk_last_error());
    exit(1);
}

/* Greedy decode of `decode` tokens after a `prompt`-token prefill, median of reps (after a
 * warm-up); cached: with every layer's hook_resid_post copied into an in-memory cache at each
 * step. */
static void decode_case(hk_model *m, const int32_t *tokens, float *logits, int64_t prompt,
                        int64_t decode, int threads, int reps, const char *wname, int cached) {
    const int64_t V = hk_model_vocab_size(m);
    hk_hooks *h = NULL;
    hk_cache *c = NULL;
    if (cached) {
        const char *pat[] = {"blocks.*.hook_resid_post"};
        if (hk_hooks_new(m, &h) != HK_OK || hk_cache_new(m, &c) != HK_OK ||
            hk_cache_attach(c, h, pat, 1, "all") != HK_OK)
            die("cache");
    }
    double ms[64], cpu[64];
    for (int r = 0; r <= reps; r++) {
        hk_session *s = NULL;
        if (hk_session_new(m, 1, prompt + decode, &s) != HK_OK) die("session");
        if (hk_session_feed(s, h, tokens, prompt, true, logits) != HK_OK) die("feed");
        const double t0 = bench_now_s(), c0 = cpu_now_s();
        for (int64_t k = 0; k < decode; k++) {
            const int32_t next = argmax(logits, V);
            if (hk_session_feed(s, h, &next, 1, true, logits) != HK_OK) die("decode");
        }
        if (r) {
            ms[r - 1] = 1e3 * (bench_now_s() - t0);
            cpu[r - 1] = 1e3 * (cpu_now_s() - c0);
        }
        hk_session_free(s);
    }
    const double med = bench_median(ms, reps), cmed = bench_median(cpu, reps);
    printf("hookformer case=%s threads=%d weights=%s tokens=%lld prompt=%lld tok_per_s=%.1f "
           "ms=%.1f tok_per_cpu_s=%.1f cpu_ms=%.1f reps=%d\n",
           cached ? "decode-cached" : "decode", threads, wname, (long long)decode,
           (long long)prompt, 1e3 * (double)decode / med, med, 1e3 * (double)decode / cmed,
           cmed, reps);
    hk_hooks_free(h);
    hk_cache_free(c);
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int64_t prefill[8] = {128, 512}, decode = 64, prompt = 8;
    int n_prefill = 2, threads = 1, reps = 3;
    hk_load_opts lo = hk_load_default_opts();
    bool cache_resid = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--prefill")) n_prefill = parse_list(argv[i + 1], prefill, 8);
        else if (!strcmp(argv[i], "--decode")) decode = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--prompt")) prompt = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--weights") && !strcmp(argv[i + 1], "blocks"))
            lo.weights = HK_WEIGHTS_BLOCKS;
        else if (!strcmp(argv[i], "--weights") && !strcmp(argv[i + 1], "f32"))
            lo.weights = HK_WEIGHTS_F32;
        else if (!strcmp(argv[i], "--cache") && !strcmp(argv[i + 1], "resid"))
            cache_resid = true;
        else {
            fprintf(stderr, "bench_smollm2: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!model || reps < 1 || reps > 64 || decode < 1 || prompt < 1) {
        fprintf(stderr, "usage: bench_smollm2 --model PATH [--prefill N,N] [--decode N] "
                        "[--prompt N] [--threads T] [--reps R] [--weights blocks|f32] "
                        "[--cache resid]\n");
        return 2;
    }
    hk_set_num_threads(threads);
    const size_t rss0 = bench_status_kib("VmRSS:");
    double t0 = bench_now_s();
    hk_model *m = NULL;
    if (hk_model_load_opts(model, &lo, &m) != HK_OK) die("load");
    const double load_ms = 1e3 * (bench_now_s() - t0);
    const size_t rss1 = bench_status_kib("VmRSS:");
    const int64_t V = hk_model_vocab_size(m);
    const char *wname = lo.weights == HK_WEIGHTS_F32 ? "f32" : "blocks";
    printf("hookformer case=load threads=%d weights=%s ms=%.1f rss_mib=%.1f owned_f32_mib=%.1f\n",
           threads, wname, load_ms, (double)(rss1 - rss0) / 1024.0,
           (double)hk_ckpt_owned_bytes(m->ckpt) / 1048576.0);

    /* dequantizing every quantized tensor once, into one scratch buffer */
    size_t q_bytes = 0, max_n = 0, n_q = 0;
    for (size_t i = 0; i < hk_ckpt_count(m->ckpt); i++) {
        const hk_st_tensor *t = hk_ckpt_at(m->ckpt, i);
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
        if (t->quantized) {
            q_bytes += t->nbytes;
            n_q++;
            if (n > max_n) max_n = n;
        }
    }
    if (n_q) {
        float *scratch = malloc(max_n * sizeof *scratch); /* [largest tensor] */
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            t0 = bench_now_s();
            for (size_t i = 0; i < hk_ckpt_count(m->ckpt); i++) {
                const hk_st_tensor *t = hk_ckpt_at(m->ckpt, i);
                if (!t->quantized) continue;
                size_t n = 1;
                for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
                hk_dequantize(t->ggml_type, t->data, scratch, (int64_t)n);
            }
            const double ms = 1e3 * (bench_now_s() - t0);
            if (ms < best) best = ms;
        }
        printf("hookformer case=dequantize-all threads=1 tensors=%zu quantized_mib=%.1f ms=%.1f\n",
               n_q, (double)q_bytes / 1048576.0, best);
        free(scratch);
    }

    int64_t max_tok = prompt + decode;
    for (int i = 0; i < n_prefill; i++)
        if (prefill[i] > max_tok) max_tok = prefill[i];
    int32_t *tokens = malloc((size_t)max_tok * sizeof *tokens); /* [max_tok] */
    float *logits = malloc((size_t)V * sizeof *logits);         /* [vocab] */
    uint64_t rng = 42;
    for (int64_t i = 0; i < max_tok; i++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        tokens[i] = (int32_t)(100 + (rng >> 33) % (uint64_t)(V - 100));
    }
    for (int i = 0; i < n_prefill; i++) {
        double ms[64], cpu[64];
        for (int r = 0; r <= reps; r++) { /* the first run warms up */
            hk_session *s = NULL;
            if (hk_session_new(m, 1, prefill[i], &s) != HK_OK) die("session");
            t0 = bench_now_s();
            const double c0 = cpu_now_s();
            if (hk_session_feed(s, NULL, tokens, prefill[i], true, logits) != HK_OK) die("feed");
            if (r) {
                ms[r - 1] = 1e3 * (bench_now_s() - t0);
                cpu[r - 1] = 1e3 * (cpu_now_s() - c0);
            }
            hk_session_free(s);
        }
        const double med = bench_median(ms, reps), cmed = bench_median(cpu, reps);
        printf("hookformer case=prefill threads=%d weights=%s tokens=%lld tok_per_s=%.1f "
               "ms=%.1f tok_per_cpu_s=%.1f cpu_ms=%.1f reps=%d\n", threads, wname,
               (long long)prefill[i],
               1e3 * (double)prefill[i] / med, med, 1e3 * (double)prefill[i] / cmed, cmed, reps);
    }
    for (int cached = 0; cached <= (int)cache_resid; cached++)
        decode_case(m, tokens, logits, prompt, decode, threads, reps, wname, cached);
    free(tokens);
    free(logits);
    hk_model_free(m);
    return 0;
}
