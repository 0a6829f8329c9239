/* `cache --sae` against `cache` of the raw hook: one hook of a model over many prompts into
 * HDF5, once as the dense activation (hk_store, what `cache --hooks H` does) and once through
 * a random TopK SAE of d_sae = 16 x d_model stored sparsely (hk_sae_store, what `cache --sae`
 * does), in the same process; and the sparse file's size against the dense feature matrix.
 *
 *   bench_sae --model DIR --out DIR [--layer L] [--prompts N] [--len L] [--batch B]
 *             [--k K] [--threads T]
 *
 * Output lines (ms; each includes closing its file):
 *   raw      ms=... tok_per_s=... bytes=...     hk_store of blocks.L.hook_resid_post
 *   sae      ms=... tok_per_s=... bytes=... nnz=...   hk_sae_store of the SAE's features
 *   ratio    sae/raw time=... sparse/dense_features bytes=... sparse/raw bytes=... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "hookformer.h"
#include "hookformer_sae.h"

static int fail(const char *what, hk_status st) {
    fprintf(stderr, "bench_sae: %s: %s (%s)\n", what, hk_last_error(), hk_status_name(st));
    return 1;
}

static uint64_t rng = 88172645463325252ull;
static float gauss(void) { /* sum of 4 uniforms, centred: enough for random weights */
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        s += (float)(rng >> 40) / (float)(1 << 24);
    }
    return (s - 2.0f) * 1.7320508f;
}

/* A SAELens folder of a random TopK SAE: cfg.json + sae_weights.safetensors (F32). */
static int write_sae(const char *dir, const char *hook, int64_t d_in, int64_t d_sae, int64_t k) {
    char path[4400];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f, "{\"architecture\": \"topk\", \"d_in\": %lld, \"d_sae\": %lld, \"k\": %lld, "
               "\"apply_b_dec_to_input\": true, \"normalize_activations\": \"none\", "
               "\"metadata\": {\"hook_name\": \"%s\"}}\n",
            (long long)d_in, (long long)d_sae, (long long)k, hook);
    fclose(f);
    const int64_t n_enc = d_in * d_sae, n_b = d_sae, n_bd = d_in;
    const uint64_t o1 = (uint64_t)n_enc * 4, o2 = o1 + (uint64_t)n_enc * 4, o3 = o2 + (uint64_t)n_b * 4,
                   o4 = o3 + (uint64_t)n_bd * 4;
    char hdr[1024];
    int n = snprintf(hdr, sizeof hdr,
                     "{\"W_enc\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[0,%llu]},"
                     "\"W_dec\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]},"
                     "\"b_enc\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]},"
                     "\"b_dec\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}}",
                     (long long)d_in, (long long)d_sae, (unsigned long long)o1, (long long)d_sae,
                     (long long)d_in, (unsigned long long)o1, (unsigned long long)o2,
                     (long long)d_sae, (unsigned long long)o2, (unsigned long long)o3,
                     (long long)d_in, (unsigned long long)o3, (unsigned long long)o4);
    while (n % 8) hdr[n++] = ' ';
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    f = fopen(path, "wb");
    if (!f) return 1;
    uint64_t len = (uint64_t)n;
    fwrite(&len, 8, 1, f); /* little-endian hosts */
    fwrite(hdr, 1, (size_t)n, f);
    float *w = malloc((size_t)n_enc * sizeof *w);
    for (int64_t i = 0; i < n_enc; i++) w[i] = gauss() / 24.0f; /* W_enc ~ 1/sqrt(d_in) */
    fwrite(w, 4, (size_t)n_enc, f);
    for (int64_t i = 0; i < n_enc; i++) w[i] = gauss() / 96.0f; /* W_dec ~ 1/sqrt(d_sae) */
    fwrite(w, 4, (size_t)n_enc, f);
    for (int64_t i = 0; i < n_b + n_bd; i++) w[i] = 0.1f * gauss();
    fwrite(w, 4, (size_t)(n_b + n_bd), f);
    free(w);
    return fclose(f) != 0;
}

static long long file_bytes(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (long long)sb.st_size : -1;
}

int main(int argc, char **argv) {
    const char *model = NULL, *outdir = NULL;
    long prompts = 32, len = 128, batch = 8, threads = 2, layer = -1, k = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) outdir = v;
        else if (!strcmp(a, "--prompts")) prompts = atol(v);
        else if (!strcmp(a, "--len")) len = atol(v);
        else if (!strcmp(a, "--batch")) batch = atol(v);
        else if (!strcmp(a, "--threads")) threads = atol(v);
        else if (!strcmp(a, "--layer")) layer = atol(v);
        else if (!strcmp(a, "--k")) k = atol(v);
        else {
            fprintf(stderr, "bench_sae: unknown option %s\n", a);
            return 2;
        }
    }
    if (!model || !outdir || prompts < 1 || len < 1 || batch < 1 || threads < 1 || k < 1) {
        fprintf(stderr, "usage: bench_sae --model DIR --out DIR [--layer L] [--prompts N] "
                        "[--len L] [--batch B] [--k K] [--threads T]\n");
        return 2;
    }
    hk_set_num_threads((int)threads);
    hk_model *m = NULL;
    hk_status st = hk_model_load(model, &m);
    if (st != HK_OK) return fail(model, st);
    if (layer < 0) layer = hk_model_n_layers(m) / 2;
    const int64_t d = hk_model_d_model(m), d_sae = 16 * d, vocab = hk_model_vocab_size(m);
    char hook[96], sae_dir[4200], raw_path[4200], sae_path[4200];
    snprintf(hook, sizeof hook, "blocks.%ld.hook_resid_post", layer);
    snprintf(sae_dir, sizeof sae_dir, "%s/bench_sae_topk", outdir);
    snprintf(raw_path, sizeof raw_path, "%s/bench_sae_raw.h5", outdir);
    snprintf(sae_path, sizeof sae_path, "%s/bench_sae_features.h5", outdir);
    if (write_sae(sae_dir, hook, d, d_sae, k)) {
        fprintf(stderr, "bench_sae: cannot write %s\n", sae_dir);
        return 1;
    }
    hk_sae *sae = NULL;
    if ((st = hk_sae_load(sae_dir, NULL, &sae)) != HK_OK) return fail(sae_dir, st);
    int32_t *tokens = malloc((size_t)(prompts * len) * sizeof *tokens); /* [prompts, len] */
    int64_t *lengths = malloc((size_t)batch * sizeof *lengths);
    for (long i = 0; i < prompts * len; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        tokens[i] = (int32_t)(rng % (uint64_t)vocab);
    }
    for (long b = 0; b < batch; b++) lengths[b] = len;
    const double n_tok = (double)prompts * (double)len;
    double t_raw = 0, t_sae = 0;
    long long nnz = 0;
    for (int phase = 0; phase < 2; phase++) {
        remove(phase ? sae_path : raw_path);
        double t0 = bench_now_s();
        if (phase == 0) {
            hk_store *s = NULL;
            hk_store_opts o = hk_store_default_opts();
            o.expected_rows = (int64_t)n_tok;
            const char *pat = hook;
            if ((st = hk_store_create(raw_path, m, &pat, 1, &o, &s)) != HK_OK) return fail("store", st);
            for (long i = 0; i < prompts; i += batch) {
                long nb = prompts - i < batch ? prompts - i : batch;
                if ((st = hk_store_run(s, m, tokens + i * len, lengths, nb, len)) != HK_OK)
                    return fail("store run", st);
            }
            if ((st = hk_store_close(s)) != HK_OK) return fail("store close", st);
            t_raw = bench_now_s() - t0;
        } else {
            hk_hooks *h = NULL;
            hk_sae_store *s = NULL;
            const hk_sae *one = sae;
            if ((st = hk_hooks_new(m, &h)) != HK_OK) return fail("hooks", st);
            if ((st = hk_sae_store_create(sae_path, true, m, &one, 1, &s)) != HK_OK ||
                (st = hk_sae_store_attach(s, h)) != HK_OK)
                return fail("sae store", st);
            for (long i = 0; i < prompts; i += batch) {
                long nb = prompts - i < batch ? prompts - i : batch;
                if ((st = hk_sae_store_run(s, m, h, tokens + i * len, lengths, nb, len)) != HK_OK)
                    return fail("sae store run", st);
            }
            nnz = (long long)hk_sae_store_nnz(s, 0);
            if ((st = hk_sae_store_close(s)) != HK_OK) return fail("sae store close", st);
            hk_hooks_free(h);
            t_sae = bench_now_s() - t0;
        }
    }
    const long long raw_b = file_bytes(raw_path), sae_b = file_bytes(sae_path);
    const double dense_feat = n_tok * (double)d_sae * 4.0;
    printf("# model=%s hook=%s d_model=%lld d_sae=%lld topk k=%ld tokens=%.0f batch=%ld "
           "threads=%ld\n", model, hook, (long long)d, (long long)d_sae, k, n_tok, batch, threads);
    printf("raw      ms=%.1f tok_per_s=%.0f bytes=%lld\n", 1e3 * t_raw, n_tok / t_raw, raw_b);
    printf("sae      ms=%.1f tok_per_s=%.0f bytes=%lld nnz=%lld\n", 1e3 * t_sae, n_tok / t_sae,
           sae_b, nnz);
    printf("ratio    sae/raw time=%.2f sparse/dense_features bytes=%.4f sparse/raw bytes=%.2f\n",
           t_sae / t_raw, (double)sae_b / dense_feat, (double)sae_b / (double)raw_b);
    remove(raw_path);
    remove(sae_path);
    hk_sae_free(sae);
    hk_model_free(m);
    free(tokens);
    free(lengths);
    return 0;
}
