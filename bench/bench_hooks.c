/* What hooks cost: the forward with (none) an empty hook set, (noop) a no-op callback on every
 * hook point of the forward (optional points excluded: they change the computation), (noop-
 * no-pattern) the same without attn.hook_attn_scores/hook_pattern, which switch attention to
 * the materialized path, and (cache) an in-memory cache of every layer's hook_resid_post.
 * Built twice: bench_hooks, and bench_hooks_nodispatch whose forward has hook dispatch
 * compiled out (-DHK_HOOK_DISPATCH=0); bench/run_hooks.sh runs both and prints ratios.
 *
 *   bench_hooks --model DIR [--tokens 128] [--reps 5] [--threads 1] [--cases none,noop,...]
 * Output: one line per case, `case=none ms=123.4 dispatch=1`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "hookformer.h"

#ifndef HK_HOOK_DISPATCH
#define HK_HOOK_DISPATCH 1
#endif

static hk_hook_result noop(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)t, (void)c, (void)u;
    return HK_HOOK_CONTINUE;
}

static const hk_model *model_for_filter;

static bool every_point(const char *name, void *u) {
    (void)u;
    for (size_t i = 0; i < hk_model_hook_count(model_for_filter); i++) {
        const hk_hook_point *p = hk_model_hook_at(model_for_filter, i);
        if (strcmp(p->name, name) == 0) return !p->optional;
    }
    return false;
}

static bool every_point_but_pattern(const char *name, void *u) {
    return every_point(name, u) && !strstr(name, "hook_pattern") &&
           !strstr(name, "hook_attn_scores");
}

/* Median ms of `reps` forwards after one warm-up. */
static double time_case(hk_model *m, hk_hooks *h, const int32_t *tok, int64_t T, int reps,
                        float *logits) {
    double *ms = malloc((size_t)reps * sizeof *ms);
    for (int r = -1; r < reps; r++) {
        double t0 = 1e3 * bench_now_s();
        hk_status st = hk_model_run(m, h, tok, NULL, 1, T, logits);
        if (st != HK_OK) {
            fprintf(stderr, "bench_hooks: %s\n", hk_last_error());
            exit(1);
        }
        if (r >= 0) ms[r] = 1e3 * bench_now_s() - t0;
    }
    qsort(ms, (size_t)reps, sizeof *ms, bench_cmp_double);
    double med = ms[reps / 2];
    free(ms);
    return med;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *cases = "none,noop,noop-no-pattern,cache";
    int64_t T = 128;
    int reps = 5, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: bench_hooks --model DIR [--tokens T] [--reps N] [--threads N] "
                 "[--cases none,noop,noop-no-pattern,cache]");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_hooks: %s: missing value\n", argv[i]);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(argv[i - 1], "--model")) dir = v;
        else if (!strcmp(argv[i - 1], "--tokens")) T = atoll(v);
        else if (!strcmp(argv[i - 1], "--reps")) reps = atoi(v);
        else if (!strcmp(argv[i - 1], "--threads")) threads = atoi(v);
        else if (!strcmp(argv[i - 1], "--cases")) cases = v;
        else {
            fprintf(stderr, "bench_hooks: unknown option %s\n", argv[i - 1]);
            return 2;
        }
    }
    if (!dir || T < 1 || reps < 1 || threads < 1) {
        fprintf(stderr, "bench_hooks: --model DIR is required; tokens, reps, threads >= 1\n");
        return 2;
    }
    hk_model *m;
    if (hk_model_load(dir, &m) != HK_OK) {
        fprintf(stderr, "bench_hooks: %s\n", hk_last_error());
        return 1;
    }
    hk_set_num_threads(threads);
    model_for_filter = m;
    int64_t V = hk_model_vocab_size(m);
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    float *logits = malloc((size_t)(T * V) * sizeof *logits);
    for (int64_t t = 0; t < T; t++) tok[t] = (int32_t)((t * 7919 + 13) % V);

    char list[256];
    snprintf(list, sizeof list, "%s", cases);
    for (char *c = strtok(list, ","); c; c = strtok(NULL, ",")) {
        hk_hooks *h;
        hk_cache *cache = NULL;
        hk_hooks_new(m, &h);
        hk_status st = HK_OK;
        if (!strcmp(c, "noop")) {
            st = hk_hooks_add_filter(h, every_point, NULL, noop, NULL, NULL);
        } else if (!strcmp(c, "noop-no-pattern")) {
            st = hk_hooks_add_filter(h, every_point_but_pattern, NULL, noop, NULL, NULL);
        } else if (!strcmp(c, "cache")) {
            const char *pat = "blocks.*.hook_resid_post";
            if ((st = hk_cache_new(m, &cache)) == HK_OK)
                st = hk_cache_attach(cache, h, &pat, 1, NULL);
        } else if (strcmp(c, "none") != 0) {
            fprintf(stderr, "bench_hooks: unknown case '%s'\n", c);
            return 2;
        }
        if (st != HK_OK) {
            fprintf(stderr, "bench_hooks: %s: %s\n", c, hk_last_error());
            return 1;
        }
        if (!HK_HOOK_DISPATCH && strcmp(c, "none") != 0) continue; /* nothing can fire */
        double ms = time_case(m, h, tok, T, reps, logits);
        printf("case=%s ms=%.2f dispatch=%d tokens=%lld threads=%d\n", c, ms, HK_HOOK_DISPATCH,
               (long long)T, threads);
        fflush(stdout);
        hk_cache_free(cache);
        hk_hooks_free(h);
    }
    free(tok);
    free(logits);
    hk_model_free(m);
    return 0;
}
