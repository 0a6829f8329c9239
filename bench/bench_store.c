/* Store throughput: caching hook_resid_post of every layer of a GPT-2-small-shaped model
 * (bench_prefill --write-model DIR) over many prompts into an HDF5 store, against the forward
 * alone, in the same process. bench/run_store.sh adds raw disk speed (dd with fsync) and the
 * TransformerLens peer (run_with_cache, then h5py / torch.save) and prints the ratios.
 *
 *   bench_store --model DIR --out DIR [--prompts N] [--len L] [--batch B] [--threads T]
 *               [--dtype f32|f16|bf16] [--commit-secs S]
 *
 * Output lines (times in ms; a store's time includes closing the file and an fsync of it):
 *   forward      ms=... tok_per_s=...      (mean of a run before and one after the stores)
 *   store        ms=... bytes=... write_ms=... fsync_ms=... MBps=... own_share=...
 *   store-fsync  the same with an fsync at every batch's commit (commit-secs 0)
 *   ratio        store/forward=... store_own_time/forward=...
 * MBps = bytes / (time inside the store: writes, commits, close + the final fsync); with
 * store-fsync every byte reaches the disk inside that time, so it compares with dd's. */
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
    hk_run_opts all = hk_run_default_opts();
    all.stop_at_layer = hk_model_n_layers(m); /* every block, as the store of every layer runs */

    /* phases: forward, store, store with an fsync at every batch's commit (the write path
     * bound by the disk, not by the page cache), forward */
    double t_fwd[2] = {0, 0}, t_store[2] = {0, 0}, t_fsync[2] = {0, 0};
    hk_store_stats stats[2] = {{0, 0, 0}, {0, 0, 0}};
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_store.h5", outdir);
    for (int phase = 0; phase < 4; phase++) {
        const bool storing = phase == 1 || phase == 2;
        const int k = phase == 2;
        hk_store *s = NULL;
        double t0 = bench_now_s();
        if (storing) {
            const char *hooks[] = {"blocks.*.hook_resid_post"};
            hk_store_opts o = hk_store_default_opts();
            o.force = true;
            o.commit_seconds = k ? 0 : commit_secs;
            o.fsync = k;
            o.dtype = !strcmp(dtype, "f16") ? HK_DTYPE_F16 : !strcmp(dtype, "bf16") ? HK_DTYPE_BF16
                                                                                   : HK_DTYPE_F32;
            if ((st = hk_store_create(path, m, hooks, 1, &o, &s)) != HK_OK) return fail(path, st);
        }
        for (long p = 0; p < prompts; p += batch) {
            long nb = prompts - p < batch ? prompts - p : batch;
            /* the forward alone: every block (no logits would stop it after the embeddings) */
            st = storing ? hk_store_run(s, m, tokens + p * len, NULL, nb, len)
                         : hk_model_run_opts(m, NULL, tokens + p * len, NULL, nb, len, &all, NULL);
            if (st != HK_OK) return fail("run", st);
        }
        if (storing) {
            stats[k] = hk_store_get_stats(s);
            double c0 = bench_now_s();
            if ((st = hk_store_close(s)) != HK_OK) return fail("close", st);
            stats[k].write_seconds += bench_now_s() - c0;
            double f0 = bench_now_s();
            int fd = open(path, O_RDONLY);
            if (fd < 0 || fsync(fd) != 0) {
                perror(path);
                return 1;
            }
            close(fd);
            t_fsync[k] = bench_now_s() - f0;
            t_store[k] = bench_now_s() - t0;
            unlink(path);
        } else {
            t_fwd[phase / 3] = bench_now_s() - t0;
        }
    }
    const double fwd = 0.5 * (t_fwd[0] + t_fwd[1]);
    printf("forward      ms=%.1f tok_per_s=%.1f runs_ms=%.1f,%.1f prompts=%ld len=%ld batch=%ld "
           "threads=%ld\n",
           1e3 * fwd, n_tok / fwd, 1e3 * t_fwd[0], 1e3 * t_fwd[1], prompts, len, batch, threads);
    const char *names[2] = {"store", "store-fsync"};
    for (int k = 0; k < 2; k++) {
        const double own = stats[k].write_seconds + t_fsync[k];
        printf("%-12s ms=%.1f tok_per_s=%.1f bytes=%llu write_ms=%.1f fsync_ms=%.1f commits=%lld "
               "dtype=%s MBps=%.1f own_share=%.4f\n",
               names[k], 1e3 * t_store[k], n_tok / t_store[k],
               (unsigned long long)stats[k].bytes_written, 1e3 * stats[k].write_seconds,
               1e3 * t_fsync[k], (long long)stats[k].commits, dtype,
               (double)stats[k].bytes_written / 1e6 / own, own / t_store[k]);
    }
    printf("ratio        store/forward=%.3f store_own_time/forward=%.4f\n", t_store[0] / fwd,
           (stats[0].write_seconds + t_fsync[0]) / fwd);
    unlink(path);
    free(tokens);
    hk_model_free(m);
    return 0;
}
