/* Long-context prefill: one case per process, so that its peak RSS is its own.
 *
 *   bench_longctx --model DIR --tokens N [--chunk C] [--threads T] [--reps R] [--mem-cap-gib G]
 *
 * Loads DIR, warms up with a 64-token feed, then prefills N tokens through a session
 * (hk_session_new(1, N): KV cache sized by the run, a rolling buffer of W slots on
 * sliding-window layers) in feeds of C positions, logits for the last position only, --reps
 * times; prints the median and the process's peak RSS (VmHWM) in one line:
 *
 *   hookformer tokens=4096 window=1024 chunk=2048 threads=2 status=ok ms=512.3 \
 *       peak_rss_mib=60.1 base_rss_mib=30.2 load_delta_mib=31.0 est_mib=39.4 top1=417 reps=1
 *
 * base_rss_mib: VmRSS before the first timed prefill; load_delta_mib: peak minus the VmRSS
 * before hk_model_load, beside est_mib, hk_estimate_run's total for the same run less its
 * runtime part (the process before hk_model_load), so that both count from the same point.
 * Token ids are (7919*i + 13) % vocab, as bench/peer_longctx.py uses. The address space is
 * capped at its size after setup + G GiB (RLIMIT_AS; 0: none): an allocation that fails
 * there is reported as status=oom. bench/run_longctx.sh runs the cases and the peers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "hookformer.h"

static int64_t int_arg(const char *flag, const char *v) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < 0) {
        fprintf(stderr, "bench_longctx: %s: expected a non-negative integer, got '%s'\n", flag,
                v);
        exit(2);
    }
    return (int64_t)x;
}

/* Prefill tokens[0..n) through a fresh session in feeds of `chunk`; logits: [vocab]. */
static hk_status prefill(hk_model *m, const int32_t *tokens, int64_t n, int64_t chunk,
                         float *logits) {
    hk_session *s = NULL;
    hk_status st = hk_session_new(m, 1, n, &s);
    for (int64_t p = 0; st == HK_OK && p < n; p += chunk) {
        int64_t k = n - p < chunk ? n - p : chunk;
        bool last = p + k == n;
        st = hk_session_feed(s, NULL, tokens + p, k, true, last ? logits : NULL);
    }
    hk_session_free(s);
    return st;
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    int64_t n = 4096, chunk = 2048, threads = 2, reps = 1;
    double cap_gib = 12.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_longctx: %s needs a value (see the comment at the top of "
                            "bench/bench_longctx.c)\n", a);
            return 2;
        }
        if (strcmp(a, "--model") == 0) dir = v;
        else if (strcmp(a, "--tokens") == 0) n = int_arg(a, v);
        else if (strcmp(a, "--chunk") == 0) chunk = int_arg(a, v);
        else if (strcmp(a, "--threads") == 0) threads = int_arg(a, v);
        else if (strcmp(a, "--reps") == 0) reps = int_arg(a, v);
        else if (strcmp(a, "--mem-cap-gib") == 0) cap_gib = atof(v);
        else {
            fprintf(stderr, "bench_longctx: unknown option '%s'\n", a);
            return 2;
        }
        i++;
    }
    if (!dir || n < 1 || chunk < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_longctx --model DIR --tokens N [--chunk C] [--threads T] "
                        "[--reps R] [--mem-cap-gib G]\n");
        return 2;
    }
    hk_set_num_threads((int)threads);
    size_t before_load = bench_status_kib("VmRSS:");
    hk_model *m = NULL;
    hk_status st = hk_model_load(dir, &m);
    if (st != HK_OK) {
        fprintf(stderr, "bench_longctx: %s: %s\n", dir, hk_last_error());
        return 1;
    }
    int64_t vocab = hk_model_vocab_size(m), window = 0;
    char *cfg = NULL;
    if (hk_model_config_json(m, &cfg) == HK_OK) { /* the config's sliding window, 0: none */
        const char *w = strstr(cfg, "\"window\":");
        if (w) window = strtoll(w + strlen("\"window\":"), NULL, 10);
        hk_free(cfg);
    }
    hk_estimate est;
    st = hk_estimate_run(m, 1, n, chunk, NULL, 0, true, &est);
    if (st != HK_OK) {
        fprintf(stderr, "bench_longctx: estimate: %s\n", hk_last_error());
        return 1;
    }
    int32_t *tokens = malloc((size_t)n * sizeof *tokens); /* [n] */
    float *logits = malloc((size_t)vocab * sizeof *logits); /* [vocab] */
    double *ms = malloc((size_t)reps * sizeof *ms);
    if (!tokens || !logits || !ms) return 1;
    for (int64_t i = 0; i < n; i++) tokens[i] = (int32_t)((7919 * i + 13) % vocab);
    st = prefill(m, tokens, n < 64 ? n : 64, chunk, logits); /* warm-up */
    if (st != HK_OK) {
        fprintf(stderr, "bench_longctx: warm-up: %s\n", hk_last_error());
        return 1;
    }
    if (cap_gib > 0) {
        rlim_t cap = (rlim_t)bench_status_kib("VmSize:") * 1024 + (rlim_t)(cap_gib * (1u << 30));
        struct rlimit rl = {cap, cap};
        setrlimit(RLIMIT_AS, &rl);
    }
    size_t base = bench_status_kib("VmRSS:");
    char head[160];
    snprintf(head, sizeof head, "hookformer tokens=%lld window=%lld chunk=%lld threads=%lld",
             (long long)n, (long long)window, (long long)chunk, (long long)threads);
    for (int64_t r = 0; r < reps && st == HK_OK; r++) {
        double t0 = bench_now_s();
        st = prefill(m, tokens, n, chunk, logits);
        ms[r] = (bench_now_s() - t0) * 1e3;
    }
    double peak = (double)bench_status_kib("VmHWM:") / 1024.0;
    if (st != HK_OK) {
        printf("%s status=%s peak_rss_mib=%.1f base_rss_mib=%.1f error=\"%s\"\n", head,
               st == HK_ERR_NOMEM ? "oom" : "error", peak, (double)base / 1024.0,
               hk_last_error());
        return st == HK_ERR_NOMEM ? 0 : 1;
    }
    qsort(ms, (size_t)reps, sizeof *ms, bench_cmp_double);
    int64_t top1 = 0;
    for (int64_t v = 1; v < vocab; v++)
        if (logits[v] > logits[top1]) top1 = v;
    printf("%s status=ok ms=%.1f peak_rss_mib=%.1f base_rss_mib=%.1f load_delta_mib=%.1f "
           "est_mib=%.1f top1=%lld reps=%lld\n",
           head, ms[reps / 2], peak, (double)base / 1024.0,
           peak - (double)before_load / 1024.0, (double)(est.total - est.runtime) / (1024.0 * 1024.0),
           (long long)top1, (long long)reps);
    free(ms);
    free(logits);
    free(tokens);
    hk_model_free(m);
    return 0;
}
