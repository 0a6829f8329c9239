/* The stop after the last hooked layer (issue 12, point 5): `hookformer cache` of layer 0 only
 * against the same cache with every block run (as before the stop), and against caching the
 * last layer, in one process on the same tokens.
 *
 *   bench_stop --model M [--out DIR] [--prompts N] [--len L] [--batch B] [--threads T]
 *
 * Each case streams blocks.K.hook_resid_post of N random sequences of L tokens to an HDF5 store
 * in DIR (default /tmp) in batches of B, as `hookformer cache` does (hk_store_run); the
 * "layer0-full" case runs the same store with hk_model_run_opts(stop_at_layer = n_layers).
 * Output lines (ms: the median of --reps runs; tok_per_s over that median):
 *   layer0       ms=... tok_per_s=...   blocks.0 stored, the forward stops after block 0
 *   layer0-full  ms=... tok_per_s=...   blocks.0 stored, every block run
 *   last         ms=... tok_per_s=...   blocks.(L-1) stored (every block is needed)
 *   ratio layer0-full/layer0=... last/layer0=... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "hookformer.h"

static void die(const char *what) {
    fprintf(stderr, "bench_stop: %s: %s\n", what, hk_last_error());
    exit(1);
}

typedef struct {
    hk_model *m;
    const int32_t *tokens; /* [prompts, len] */
    long prompts, len, batch;
    const char *path;
} bench_case;

/* One store of `hook` over every sequence; full: every block, else hk_store_run's stop. */
static double run_case(const bench_case *c, const char *hook, bool full) {
    const char *pats[] = {hook};
    hk_store_opts o = hk_store_default_opts();
    o.force = true;
    hk_store *s;
    hk_hooks *h = NULL;
    if (hk_store_create(c->path, c->m, pats, 1, &o, &s) != HK_OK) die(c->path);
    hk_run_opts all = hk_run_default_opts();
    all.stop_at_layer = hk_model_n_layers(c->m);
    if (full && (hk_hooks_new(c->m, &h) != HK_OK || hk_store_attach(s, h) != HK_OK)) die("attach");
    double t0 = bench_now_s();
    for (long p = 0; p < c->prompts; p += c->batch) {
        long nb = c->prompts - p < c->batch ? c->prompts - p : c->batch;
        const int32_t *tok = c->tokens + p * c->len;
        if (!full) {
            if (hk_store_run(s, c->m, tok, NULL, nb, c->len) != HK_OK) die("store run");
            continue;
        }
        if (hk_store_begin_batch(s, tok, NULL, nb, c->len) != HK_OK ||
            hk_model_run_opts(c->m, h, tok, NULL, nb, c->len, &all, NULL) != HK_OK ||
            hk_store_end_batch(s) != HK_OK)
            die("full run");
    }
    if (hk_store_close(s) != HK_OK) die("close");
    double t = bench_now_s() - t0;
    hk_hooks_free(h);
    unlink(c->path);
    return t;
}

int main(int argc, char **argv) {
    const char *model = NULL, *outdir = "/tmp";
    long prompts = 8, len = 64, batch = 4, threads = 2, reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) outdir = v;
        else if (!strcmp(a, "--prompts")) prompts = atol(v);
        else if (!strcmp(a, "--len")) len = atol(v);
        else if (!strcmp(a, "--batch")) batch = atol(v);
        else if (!strcmp(a, "--threads")) threads = atol(v);
        else if (!strcmp(a, "--reps")) reps = atol(v);
        else {
            fprintf(stderr, "bench_stop: unknown option %s\n", a);
            return 2;
        }
    }
    if (!model || prompts < 1 || len < 1 || batch < 1 || threads < 1 || reps < 1 || reps > 15) {
        fprintf(stderr, "usage: bench_stop --model M [--out DIR] [--prompts N] [--len L] "
                        "[--batch B] [--threads T] [--reps R (1..15)]\n");
        return 2;
    }
    hk_set_num_threads((int)threads);
    hk_model *m;
    if (hk_model_load(model, &m) != HK_OK) die(model);
    const int64_t vocab = hk_model_vocab_size(m), L = hk_model_n_layers(m);
    int32_t *tokens = malloc((size_t)(prompts * len) * sizeof *tokens);
    if (!tokens) die("out of memory");
    uint64_t x = 88172645463325252ull;
    for (long i = 0; i < prompts * len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tokens[i] = (int32_t)(x % (uint64_t)vocab);
    }
    char path[4096], last[64];
    snprintf(path, sizeof path, "%s/bench_stop_%ld.h5", outdir, (long)getpid());
    snprintf(last, sizeof last, "blocks.%lld.hook_resid_post", (long long)(L - 1));
    bench_case c = {m, tokens, prompts, len, batch, path};
    double t0[15], tf[15], tl[15];
    for (long r = 0; r < reps; r++) { /* interleaved, so that load drifts hit all three */
        t0[r] = run_case(&c, "blocks.0.hook_resid_post", false);
        tf[r] = run_case(&c, "blocks.0.hook_resid_post", true);
        tl[r] = run_case(&c, last, false);
    }
    double a = bench_median(t0, (int)reps), b = bench_median(tf, (int)reps),
           l = bench_median(tl, (int)reps), n_tok = (double)(prompts * len);
    printf("# model=%s layers=%lld prompts=%ld len=%ld batch=%ld threads=%ld reps=%ld\n", model,
           (long long)L, prompts, len, batch, threads, reps);
    printf("layer0       ms=%.1f tok_per_s=%.0f\n", 1e3 * a, n_tok / a);
    printf("layer0-full  ms=%.1f tok_per_s=%.0f\n", 1e3 * b, n_tok / b);
    printf("last         ms=%.1f tok_per_s=%.0f\n", 1e3 * l, n_tok / l);
    printf("ratio layer0-full/layer0=%.2f last/layer0=%.2f (speed-up of the stop; ideal ~%lld)\n",
           b / a, l / a, (long long)L);
    free(tokens);
    hk_model_free(m);
    return 0;
}
