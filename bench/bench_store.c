/* Store throughput: caching hook_resid_post of every layer of a GPT-2-small-shaped model
 * (bench_prefill --write-model DIR) over many prompts into an HDF5 store, against the forward
 * alone, in the same process. bench/run_store.sh adds raw disk speed (dd with fsync) and the
 * TransformerLens peer (run_with_cache, then h5py / torch.save) and prints the ratios.
 *
 *   bench_store --model DIR --out DIR [--prompts N] [--len L] [--batch B] [--threads T]
 *               [--dtype f32|f16|bf16] [--commit-secs S]
 *
 * Output lines (times in ms; the store's time includes closing the file and an fsync of it):
 *   forward      ms=... tok_per_s=...            (mean of a run before and one after the store)
 *   store        ms=... tok_per_s=... bytes=... write_ms=... fsync_ms=... commits=...
 *   store-write  MBps=...    bytes / (time in the store's writes and commits + the fsync)
 *   ratio        store/forward=... */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "hookformer.h"

static int fail(const char *what, hk_status st) {
    fprintf(stderr, "bench_store: %s: %s (%s)\n", what, hk_last_error(), hk_status_name(st));
    return 1;
}

int main(int argc, char **argv) {
    const char *model = NULL, *outdir = NULL, *dtype = "f32";
    long prompts = 64, len = 128, batch = 8, threads = 2;
    double commit_secs = 1.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) outdir = v;
        else if (!strcmp(a, "--prompts")) prompts = atol(v);
        else if (!strcmp(a, "--len")) len = atol(v);
        else if (!strcmp(a, "--batch")) batch = atol(v);
        else if (!strcmp(a, "--threads")) threads = atol(v);
        else if (!strcmp(a, "--dtype")) dtype = v;
        else if (!strcmp(a, "--commit-secs")) commit_secs = atof(v);
        else {
            fprintf(stderr, "bench_store: unknown option %s\n", a);
            return 2;
        }
    }
    if (!model || !outdir || prompts < 1 || len < 1 || batch < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_store --model DIR --out DIR [--prompts N] [--len L] "
                        "[--batch B] [--threads T] [--dtype f32|f16|bf16] [--commit-secs S]\n");
        return 2;
    }
    hk_set_num_threads((int)threads);
    hk_model *m = NULL;
    hk_status st = hk_model_load(model, &m);
    if (st != HK_OK) return fail(model, st);
    const int64_t vocab = hk_model_vocab_size(m);
    int32_t *tokens = malloc((size_t)(prompts * len) * sizeof *tokens); /* [prompts, len] */
    uint64_t x = 88172645463325252ull;
    for (long i = 0; i < prompts * len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tokens[i] = (int32_t)(x % (uint64_t)vocab);
    }
    const double n_tok = (double)prompts * (double)len;

    double t_fwd[2];
    hk_store *s = NULL;
    hk_store_stats stats = {0, 0, 0};
    double t_store = 0, t_fsync = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_store.h5", outdir);
    for (int phase = 0; phase < 3; phase++) {
        double t0 = bench_now_s();
        if (phase == 1) {
            const char *hooks[] = {"blocks.*.hook_resid_post"};
            hk_store_opts o = hk_store_default_opts();
            o.force = true;
            o.commit_seconds = commit_secs;
            o.dtype = !strcmp(dtype, "f16") ? HK_DTYPE_F16 : !strcmp(dtype, "bf16") ? HK_DTYPE_BF16
                                                                                   : HK_DTYPE_F32;
            if ((st = hk_store_create(path, m, hooks, 1, &o, &s)) != HK_OK) return fail(path, st);
        }
        for (long p = 0; p < prompts; p += batch) {
            long nb = prompts - p < batch ? prompts - p : batch;
            st = phase == 1 ? hk_store_run(s, m, tokens + p * len, NULL, nb, len)
                            : hk_model_run(m, NULL, tokens + p * len, NULL, nb, len, NULL);
            if (st != HK_OK) return fail("run", st);
        }
        if (phase == 1) {
            stats = hk_store_get_stats(s);
            double c0 = bench_now_s();
            if ((st = hk_store_close(s)) != HK_OK) return fail("close", st);
            stats.write_seconds += bench_now_s() - c0;
            double f0 = bench_now_s();
            int fd = open(path, O_RDONLY);
            if (fd < 0 || fsync(fd) != 0) {
                perror(path);
                return 1;
            }
            close(fd);
            t_fsync = bench_now_s() - f0;
            t_store = bench_now_s() - t0;
        } else {
            t_fwd[phase / 2] = bench_now_s() - t0;
        }
    }
    const double fwd = 0.5 * (t_fwd[0] + t_fwd[1]);
    printf("forward      ms=%.1f tok_per_s=%.1f runs_ms=%.1f,%.1f prompts=%ld len=%ld batch=%ld "
           "threads=%ld\n",
           1e3 * fwd, n_tok / fwd, 1e3 * t_fwd[0], 1e3 * t_fwd[1], prompts, len, batch, threads);
    printf("store        ms=%.1f tok_per_s=%.1f bytes=%llu write_ms=%.1f fsync_ms=%.1f "
           "commits=%lld dtype=%s\n",
           1e3 * t_store, n_tok / t_store, (unsigned long long)stats.bytes_written,
           1e3 * stats.write_seconds, 1e3 * t_fsync, (long long)stats.commits, dtype);
    printf("store-write  MBps=%.1f\n",
           (double)stats.bytes_written / 1e6 / (stats.write_seconds + t_fsync));
    printf("ratio        store/forward=%.3f\n", t_store / fwd);
    unlink(path);
    free(tokens);
    hk_model_free(m);
    return 0;
}
