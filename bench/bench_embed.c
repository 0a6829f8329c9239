/* Sentence-embedding throughput: hk_model_embed (the folder's pooling and normalization) over
 * batches of token-id sequences read from a file, one per line (the format of `hookformer
 * embed --tokens-file`). bench/run_embed.sh writes the file and runs the sentence-transformers
 * peer (bench/peer_embed.py) on the same ids.
 *
 *   bench_embed --model DIR --ids FILE [--batch 32] [--threads 1] [--reps 5]
 *
 * Each rep embeds every sequence, in batches of --batch consecutive lines (right-padded to the
 * longest of the batch); one warm-up pass, then the median. Output:
 *   hookformer threads=1 batch=32 sequences=256 tokens=4096 ms=123.4 seq_per_s=2074.6 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "hookformer.h"

static int die(const char *msg, const char *arg) {
    fprintf(stderr, "bench_embed: %s%s\n", msg, arg ? arg : "");
    return 1;
}

/* ids file -> flat ids, per-line offsets [n + 1] */
static int read_ids(const char *path, int32_t **ids, int64_t **off, int64_t *n) {
    FILE *f = fopen(path, "r");
    if (!f) return die("cannot open ", path);
    size_t cap_i = 1024, cap_o = 64, ni = 0;
    *ids = malloc(cap_i * sizeof **ids);
    *off = malloc(cap_o * sizeof **off);
    *n = 0;
    (*off)[0] = 0;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) >= 0) {
        char *p = line, *end;
        size_t before = ni;
        for (;;) {
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            if (errno || v < 0 || v > INT32_MAX) return die("bad id in ", path);
            if (ni == cap_i) *ids = realloc(*ids, (cap_i *= 2) * sizeof **ids);
            (*ids)[ni++] = (int32_t)v;
            p = end + strspn(end, " ,");
        }
        if (ni == before) continue;
        if ((size_t)*n + 2 > cap_o) *off = realloc(*off, (cap_o *= 2) * sizeof **off);
        (*off)[++*n] = (int64_t)ni;
    }
    free(line);
    fclose(f);
    return *n > 0 ? 0 : die("no sequences in ", path);
}

int main(int argc, char **argv) {
    const char *model = NULL, *ids_path = NULL;
    int batch = 32, threads = 1, reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--ids")) ids_path = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else return die("unknown option ", argv[i]);
    }
    if (!model || !ids_path || batch < 1 || threads < 1 || reps < 1 || reps > 100)
        return die("usage: bench_embed --model DIR --ids FILE [--batch N] [--threads N] "
                   "[--reps N]", NULL);
    int32_t *ids;
    int64_t *off, n;
    if (read_ids(ids_path, &ids, &off, &n)) return 1;
    hk_set_num_threads(threads);
    hk_model *m;
    if (hk_model_load(model, &m) != HK_OK) return die(hk_last_error(), NULL);
    int64_t d = hk_model_d_model(m), longest = 0;
    for (int64_t i = 0; i < n; i++)
        if (off[i + 1] - off[i] > longest) longest = off[i + 1] - off[i];
    int32_t *tok = malloc((size_t)(batch * longest) * sizeof *tok); /* [batch, T] */
    int64_t *len = malloc((size_t)batch * sizeof *len);
    float *out = malloc((size_t)(n * d) * sizeof *out); /* [n, d_model] */
    double times[100];
    for (int r = -1; r < reps; r++) {
        double t0 = bench_now_s();
        for (int64_t s0 = 0; s0 < n; s0 += batch) {
            int64_t B = n - s0 < batch ? n - s0 : batch, T = 0;
            for (int64_t b = 0; b < B; b++) {
                len[b] = off[s0 + b + 1] - off[s0 + b];
                if (len[b] > T) T = len[b];
            }
            memset(tok, 0, (size_t)(B * T) * sizeof *tok);
            for (int64_t b = 0; b < B; b++)
                memcpy(tok + b * T, ids + off[s0 + b], (size_t)len[b] * sizeof *tok);
            if (hk_model_embed(m, NULL, tok, NULL, len, B, T, HK_POOL_MODEL, -1,
                               out + s0 * d) != HK_OK)
                return die(hk_last_error(), NULL);
        }
        if (r >= 0) times[r] = bench_now_s() - t0;
    }
    double ms = 1e3 * bench_median(times, reps);
    printf("hookformer threads=%d batch=%d sequences=%lld tokens=%lld ms=%.1f seq_per_s=%.1f\n",
           threads, batch, (long long)n, (long long)off[n], ms, 1e3 * (double)n / ms);
    free(out), free(len), free(tok), free(ids), free(off);
    hk_model_free(m);
    return 0;
}
