/* Prefill throughput on a GPT-2-small shape (12 layers, d_model 768, 12 heads, d_mlp 3072,
 * vocab 50257, 1024 positions), random weights.
 *
 * The library loads models from files, so this writes a random-weight GPT-2 checkpoint
 * (config.json + model.safetensors, the Hugging Face tensor names, tied lm_head) into a temp
 * dir, loads it with hk_model_load, and times hk_model_forward on one sequence: one warm-up run,
 * then the median of --reps runs. hk_model_forward computes logits for every position, so the
 * unembedding [T,768]x[768,50257] is part of the work.
 *
 * The ceiling is the forward's big sgemm calls alone, through the same OpenBLAS:
 * per layer [T,768]x[768,2304], [T,768]x[768,768], [T,768]x[768,3072], [T,3072]x[3072,768],
 * x12 layers, plus the unembedding [T,768]x[50257,768]^T, as bare cblas_sgemm calls threaded
 * by OpenBLAS itself (openblas_set_num_threads). The forward threads its products its own way
 * (OpenBLAS single-threaded, each product split by output columns across the OpenMP team), so
 * at 2+ threads hookformer/ceiling also compares the two ways of threading.
 *
 *   bench_prefill [--threads 1,2] [--tokens 128,1024] [--reps 5] [--tmpdir DIR]
 *   bench_prefill --write-model DIR   (only write the checkpoint, for other benchmarks)
 *
 * Output, one line per case:
 *   hookformer threads=1 tokens=128 tok_per_s=1234.5 ms=103.7
 *   sgemm-ceiling threads=1 tokens=128 tok_per_s=1400.2 ms=91.4 */
#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "hookformer.h"

enum { N_LAYER = 12, D = 768, N_HEAD = 12, D_MLP = 4 * D, VOCAB = 50257, N_POS = 1024 };
#define MAX_LIST 16

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
/* uniform in [-a, a]; a = 0.02*sqrt(3) gives GPT-2's init std 0.02 */
static float rng_sym(float a) {
    return a * (2.0f * (float)(rng_next() >> 40) / (float)(1 << 24) - 1.0f);
}
static const float INIT_A = 0.0346410162f;

static void fill_random(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = rng_sym(INIT_A);
}

static int parse_list(const char *s, int *out, int *n, int lo, int hi, const char *flag) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < lo || v > hi || (*end && *end != ',') || *n >= MAX_LIST) {
            fprintf(stderr, "bench_prefill: %s: expected a comma-separated list of integers in "
                            "[%d, %d], got '%s'\n", flag, lo, hi, s);
            return -1;
        }
        out[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) {
        fprintf(stderr, "bench_prefill: %s: empty list\n", flag);
        return -1;
    }
    return 0;
}

/* ---- the random GPT-2 checkpoint ---------------------------------------------------------- */

/* DIR/NAME into out; -1 (with a message) when it does not fit. */
static int file_in(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "bench_prefill: path too long: %s/%s\n", dir, name);
        return -1;
    }
    return 0;
}

typedef enum { INIT_RANDOM, INIT_ONES, INIT_ZEROS } init_kind;

typedef struct {
    char name[64];
    int64_t shape[2];
    int ndim;
    init_kind init;
} tensor_spec;

#define MAX_TENSORS (4 + 12 * N_LAYER + 4)

static void add_tensor(tensor_spec *t, int *n, init_kind init, int64_t d0, int64_t d1,
                       const char *fmt, ...) {
    tensor_spec *s = &t[(*n)++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    s->shape[0] = d0;
    s->shape[1] = d1;
    s->ndim = d1 > 0 ? 2 : 1;
    s->init = init;
}

static int gpt2_tensors(tensor_spec *t) {
    int n = 0;
    add_tensor(t, &n, INIT_RANDOM, VOCAB, D, "transformer.wte.weight");
    add_tensor(t, &n, INIT_RANDOM, N_POS, D, "transformer.wpe.weight");
    for (int i = 0; i < N_LAYER; i++) {
        add_tensor(t, &n, INIT_ONES, D, 0, "transformer.h.%d.ln_1.weight", i);
        add_tensor(t, &n, INIT_ZEROS, D, 0, "transformer.h.%d.ln_1.bias", i);
        add_tensor(t, &n, INIT_RANDOM, D, 3 * D, "transformer.h.%d.attn.c_attn.weight", i);
        add_tensor(t, &n, INIT_RANDOM, 3 * D, 0, "transformer.h.%d.attn.c_attn.bias", i);
        add_tensor(t, &n, INIT_RANDOM, D, D, "transformer.h.%d.attn.c_proj.weight", i);
        add_tensor(t, &n, INIT_RANDOM, D, 0, "transformer.h.%d.attn.c_proj.bias", i);
        add_tensor(t, &n, INIT_ONES, D, 0, "transformer.h.%d.ln_2.weight", i);
        add_tensor(t, &n, INIT_ZEROS, D, 0, "transformer.h.%d.ln_2.bias", i);
        add_tensor(t, &n, INIT_RANDOM, D, D_MLP, "transformer.h.%d.mlp.c_fc.weight", i);
        add_tensor(t, &n, INIT_RANDOM, D_MLP, 0, "transformer.h.%d.mlp.c_fc.bias", i);
        add_tensor(t, &n, INIT_RANDOM, D_MLP, D, "transformer.h.%d.mlp.c_proj.weight", i);
        add_tensor(t, &n, INIT_RANDOM, D, 0, "transformer.h.%d.mlp.c_proj.bias", i);
    }
    add_tensor(t, &n, INIT_ONES, D, 0, "transformer.ln_f.weight");
    add_tensor(t, &n, INIT_ZEROS, D, 0, "transformer.ln_f.bias");
    return n;
}

static size_t numel(const tensor_spec *s) {
    return (size_t)s->shape[0] * (size_t)(s->ndim == 2 ? s->shape[1] : 1);
}

static int write_config(const char *dir) {
    char path[4096];
    if (file_in(path, sizeof path, dir, "config.json")) return -1;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_prefill: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "{\n"
            "  \"model_type\": \"gpt2\",\n"
            "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
            "  \"n_layer\": %d,\n"
            "  \"n_embd\": %d,\n"
            "  \"n_head\": %d,\n"
            "  \"n_positions\": %d,\n"
            "  \"n_ctx\": %d,\n"
            "  \"vocab_size\": %d,\n"
            "  \"layer_norm_epsilon\": 1e-05,\n"
            "  \"activation_function\": \"gelu_new\",\n"
            "  \"tie_word_embeddings\": true\n"
            "}\n",
            N_LAYER, D, N_HEAD, N_POS, N_POS, VOCAB);
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_prefill: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* safetensors: 8-byte little-endian header length, JSON header (padded with spaces to a multiple
 * of 8), then the tensors' bytes back to back in header order. */
static int write_safetensors(const char *dir) {
    tensor_spec t[MAX_TENSORS];
    const int n = gpt2_tensors(t);

    size_t cap = 256 + (size_t)n * 256, len = 0; /* an entry is < 200 bytes */
    char *hdr = malloc(cap);
    if (!hdr) return -1;
    len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = numel(&t[i]) * sizeof(float);
        if (t[i].ndim == 2)
            len += (size_t)snprintf(hdr + len, cap - len,
                                    ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%" PRId64 ",%" PRId64
                                    "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}",
                                    t[i].name, t[i].shape[0], t[i].shape[1], off, off + bytes);
        else
            len += (size_t)snprintf(hdr + len, cap - len,
                                    ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%" PRId64
                                    "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}",
                                    t[i].name, t[i].shape[0], off, off + bytes);
        off += bytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' ';

    char path[4096];
    if (file_in(path, sizeof path, dir, "model.safetensors")) {
        free(hdr);
        return -1;
    }
    FILE *f = fopen(path, "wb");
    enum { CHUNK = 1 << 20 };
    float *buf = malloc(CHUNK * sizeof *buf);
    int rc = -1;
    if (!f || !buf) goto done;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)len >> (8 * i));
    if (fwrite(le, 1, 8, f) != 8 || fwrite(hdr, 1, len, f) != len) goto done;
    for (int i = 0; i < n; i++) {
        size_t left = numel(&t[i]);
        while (left > 0) {
            size_t m = left < CHUNK ? left : CHUNK;
            for (size_t j = 0; j < m; j++)
                buf[j] = t[i].init == INIT_RANDOM ? rng_sym(INIT_A)
                                                  : (t[i].init == INIT_ONES ? 1.0f : 0.0f);
            if (fwrite(buf, sizeof *buf, m, f) != m) goto done;
            left -= m;
        }
    }
    if (fclose(f) != 0) {
        f = NULL;
        goto done;
    }
    f = NULL;
    rc = 0;
done:
    if (rc) fprintf(stderr, "bench_prefill: cannot write %s: %s\n", path, strerror(errno));
    if (f) fclose(f);
    free(buf);
    free(hdr);
    return rc;
}

/* ---- timings ------------------------------------------------------------------------------ */

static int time_forward(hk_model *m, int n_tok, int reps, double *ms_out) {
    int32_t *tokens = malloc((size_t)n_tok * sizeof *tokens);            /* [1, T] */
    float *logits = malloc((size_t)n_tok * VOCAB * sizeof *logits);      /* [1, T, V] */
    double *times = malloc((size_t)reps * sizeof *times);
    int rc = -1;
    if (!tokens || !logits || !times) {
        fprintf(stderr, "bench_prefill: out of memory\n");
        goto done;
    }
    for (int i = 0; i < n_tok; i++) tokens[i] = (int32_t)(rng_next() % VOCAB);
    for (int r = -1; r < reps; r++) { /* r == -1: warm-up */
        double t0 = bench_now_s();
        hk_status st = hk_model_forward(m, tokens, NULL, 1, n_tok, logits);
        double dt = bench_now_s() - t0;
        if (st != HK_OK) {
            fprintf(stderr, "bench_prefill: hk_model_forward: %s (%s)\n", hk_last_error(),
                    hk_status_name(st));
            goto done;
        }
        if (r >= 0) times[r] = dt;
    }
    const float *last = logits + (size_t)(n_tok - 1) * VOCAB;
    for (int v = 0; v < VOCAB; v++) {
        if (!isfinite(last[v])) {
            fprintf(stderr, "bench_prefill: logit %d of the last position is %g\n", v,
                    (double)last[v]);
            goto done;
        }
    }
    *ms_out = 1e3 * bench_median(times, reps);
    rc = 0;
done:
    free(times);
    free(logits);
    free(tokens);
    return rc;
}

typedef struct {
    float *w_qkv[N_LAYER], *w_o[N_LAYER], *w_in[N_LAYER], *w_out[N_LAYER]; /* Conv1D [in, out] */
    float *wte;                                                          /* [V, D] */
    float *x, *h, *out, *logits; /* [T, D], [T, D_MLP], [T, D_MLP], [T, V] */
} ceiling_bufs;

static void free_ceiling(ceiling_bufs *b) {
    for (int l = 0; l < N_LAYER; l++) {
        free(b->w_qkv[l]);
        free(b->w_o[l]);
        free(b->w_in[l]);
        free(b->w_out[l]);
    }
    free(b->wte);
    free(b->x);
    free(b->h);
    free(b->out);
    free(b->logits);
}

static float *alloc_random(size_t n) {
    float *p = malloc(n * sizeof *p);
    if (p) fill_random(p, n);
    return p;
}

static int alloc_ceiling(ceiling_bufs *b, int max_tok) {
    memset(b, 0, sizeof *b);
    bool ok = true;
    for (int l = 0; l < N_LAYER; l++) {
        ok &= (b->w_qkv[l] = alloc_random((size_t)D * 3 * D)) != NULL;
        ok &= (b->w_o[l] = alloc_random((size_t)D * D)) != NULL;
        ok &= (b->w_in[l] = alloc_random((size_t)D * D_MLP)) != NULL;
        ok &= (b->w_out[l] = alloc_random((size_t)D_MLP * D)) != NULL;
    }
    ok &= (b->wte = alloc_random((size_t)VOCAB * D)) != NULL;
    ok &= (b->x = alloc_random((size_t)max_tok * D)) != NULL;
    ok &= (b->h = alloc_random((size_t)max_tok * D_MLP)) != NULL;
    ok &= (b->out = alloc_random((size_t)max_tok * D_MLP)) != NULL;
    ok &= (b->logits = malloc((size_t)max_tok * VOCAB * sizeof(float))) != NULL;
    if (!ok) {
        fprintf(stderr, "bench_prefill: out of memory for the sgemm ceiling\n");
        free_ceiling(b);
        return -1;
    }
    return 0;
}

static void sgemm_nn(int m, int n, int k, const float *a, const float *b, float *c) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}

static double time_ceiling(const ceiling_bufs *b, int n_tok, int reps) {
    double times[256];
    for (int r = -1; r < reps; r++) {
        double t0 = bench_now_s();
        for (int l = 0; l < N_LAYER; l++) {
            sgemm_nn(n_tok, 3 * D, D, b->x, b->w_qkv[l], b->out);   /* qkv  [T,D]x[D,3D] */
            sgemm_nn(n_tok, D, D, b->x, b->w_o[l], b->out);         /* proj [T,D]x[D,D] */
            sgemm_nn(n_tok, D_MLP, D, b->x, b->w_in[l], b->h);      /* fc   [T,D]x[D,4D] */
            sgemm_nn(n_tok, D, D_MLP, b->h, b->w_out[l], b->out);   /* proj [T,4D]x[4D,D] */
        }
        /* unembedding [T,D] x [V,D]^T -> [T,V] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, VOCAB, D, 1.0f, b->x, D,
                    b->wte, D, 0.0f, b->logits, VOCAB);
        double dt = bench_now_s() - t0;
        if (r >= 0) times[r] = dt;
    }
    return 1e3 * bench_median(times, reps);
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f, "usage: bench_prefill [--threads 1,2] [--tokens 128,1024] [--reps N] "
               "[--tmpdir DIR] | --write-model DIR\n");
}

int main(int argc, char **argv) {
    int threads[MAX_LIST] = {1, 2}, n_threads = 2;
    int toks[MAX_LIST] = {128, 1024}, n_toks = 2;
    int reps = 5;
    const char *tmpdir = getenv("TMPDIR");
    if (!tmpdir || !*tmpdir) tmpdir = "/tmp";

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_prefill: %s: missing value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--threads")) {
            if (parse_list(v, threads, &n_threads, 1, 1024, a)) return 2;
        } else if (!strcmp(a, "--tokens")) {
            if (parse_list(v, toks, &n_toks, 1, N_POS, a)) return 2;
        } else if (!strcmp(a, "--reps")) {
            int one[MAX_LIST], n1;
            if (parse_list(v, one, &n1, 1, 256, a) || n1 != 1) return 2;
            reps = one[0];
        } else if (!strcmp(a, "--tmpdir")) {
            tmpdir = v;
        } else if (!strcmp(a, "--write-model")) {
            return write_config(v) || write_safetensors(v) ? 1 : 0;
        } else {
            fprintf(stderr, "bench_prefill: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    int max_tok = 0;
    for (int i = 0; i < n_toks; i++) max_tok = toks[i] > max_tok ? toks[i] : max_tok;

    char dir[4096];
    snprintf(dir, sizeof dir, "%s/hk-bench-prefill-XXXXXX", tmpdir);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_prefill: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int rc = 1;
    hk_model *m = NULL;
    ceiling_bufs cb;
    bool have_cb = false;

    double t0 = bench_now_s();
    if (write_config(dir) || write_safetensors(dir)) goto done;
    double t_write = bench_now_s() - t0;
    t0 = bench_now_s();
    hk_status st = hk_model_load(dir, &m);
    if (st != HK_OK) {
        fprintf(stderr, "bench_prefill: hk_model_load %s: %s (%s)\n", dir, hk_last_error(),
                hk_status_name(st));
        goto done;
    }
    printf("# bench_prefill: GPT-2-small shape (%d layers, d_model %d, %d heads, d_mlp %d, "
           "vocab %d), random weights, %" PRId64 " params; logits for all positions; "
           "median of %d reps after 1 warm-up; checkpoint written in %.1f s, loaded in %.1f s\n",
           N_LAYER, D, N_HEAD, D_MLP, VOCAB, hk_model_n_params(m), reps, t_write,
           bench_now_s() - t0);
    printf("# %s (openblas_get_parallel %d)\n", openblas_get_config(), openblas_get_parallel());
    fflush(stdout);

    if (alloc_ceiling(&cb, max_tok)) goto done;
    have_cb = true;
    for (int i = 0; i < n_threads; i++) {
        for (int j = 0; j < n_toks; j++) {
            double ms;
            hk_set_num_threads(threads[i]);
            if (time_forward(m, toks[j], reps, &ms)) goto done;
            printf("hookformer threads=%d tokens=%d tok_per_s=%.1f ms=%.2f\n", threads[i],
                   toks[j], toks[j] / (ms / 1e3), ms);
            fflush(stdout);
            openblas_set_num_threads(threads[i]);
            ms = time_ceiling(&cb, toks[j], reps);
            printf("sgemm-ceiling threads=%d tokens=%d tok_per_s=%.1f ms=%.2f\n", threads[i],
                   toks[j], toks[j] / (ms / 1e3), ms);
            fflush(stdout);
        }
    }
    rc = 0;
done:
    if (have_cb) free_ceiling(&cb);
    if (m) hk_model_free(m);
    char path[4096];
    if (!file_in(path, sizeof path, dir, "model.safetensors")) unlink(path);
    if (!file_in(path, sizeof path, dir, "config.json")) unlink(path);
    rmdir(dir);
    return rc;
}
