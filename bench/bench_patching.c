/* Patching-sweep benchmark: a resid_pre layer x position sweep and a head x layer sweep
 * (attn.hook_z, every position at once) for one clean/corrupted prompt pair, timed after a
 * warm-up forward; bench/run_patching.sh puts TransformerLens beside it.
 *
 *   bench_patching --model DIR --clean IDS --corrupted IDS --answer ID --wrong ID
 *                  [--threads N] [--reps R] [--out PREFIX] [--full]
 *
 * One line per sweep: "hookformer sweep=resid_pre patches=.. batch=.. forwards=.. s=.."
 * (median of R runs); --out writes PREFIX<sweep>.f32 (the raw values, layer-major) so the
 * script can compare them with TransformerLens's; --full also times the sweeps with every
 * layer run (hk_patch_opts.full_forward). */
#include <hookformer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int32_t *parse_ids(const char *s, int64_t *n) {
    int64_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    char *end;
    for (int64_t i = 0; i < cap; i++) {
        ids[i] = (int32_t)strtol(s, &end, 10);
        s = end + (*end == ',');
    }
    *n = cap;
    return ids;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *model = NULL, *clean_s = NULL, *bad_s = NULL, *out = NULL;
    int32_t answer = -1, wrong = -1;
    int threads = 0, reps = 1, full = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--full")) { full = 1; continue; }
        if (!v) { fprintf(stderr, "bench_patching: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--clean")) clean_s = v;
        else if (!strcmp(a, "--corrupted")) bad_s = v;
        else if (!strcmp(a, "--answer")) answer = atoi(v);
        else if (!strcmp(a, "--wrong")) wrong = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--out")) out = v;
        else { fprintf(stderr, "bench_patching: unknown option %s\n", a); return 2; }
        i++;
    }
    if (!model || !clean_s || !bad_s || answer < 0 || wrong < 0 || reps < 1) {
        fprintf(stderr, "usage: bench_patching --model DIR --clean IDS --corrupted IDS "
                        "--answer ID --wrong ID [--threads N] [--reps R] [--out PREFIX] [--full]\n");
        return 2;
    }
    if (threads) hk_set_num_threads(threads);
    int64_t n_clean, n_bad;
    int32_t *clean = parse_ids(clean_s, &n_clean), *bad = parse_ids(bad_s, &n_bad);
    hk_model *m;
    double t0 = now();
    if (hk_model_load(model, &m) != HK_OK) {
        fprintf(stderr, "bench_patching: %s\n", hk_last_error());
        return 1;
    }
    printf("# load %.2f s, %lld layers, %lld tokens\n", now() - t0,
           (long long)hk_model_n_layers(m), (long long)n_bad);
    hk_prompt_set set = {1, n_bad, bad, &answer, &wrong};
    float warm;
    hk_prompt_metric(m, NULL, &set, &warm); /* warm-up: pages in the weights */
    const struct {
        const char *name, *point;
        bool per_pos, per_head, full;
    } cases[4] = {
        {"resid_pre", "hook_resid_pre", true, false, false},
        {"head_out", "attn.hook_z", false, true, false},
        {"resid_pre_full", "hook_resid_pre", true, false, true},
        {"head_out_full", "attn.hook_z", false, true, true},
    };
    for (int c = 0; c < (full ? 4 : 2); c++) {
        hk_sweep_spec spec = {cases[c].point, cases[c].per_pos, cases[c].per_head, -1};
        hk_patch_opts o = {.clean = clean, .clean_seq = n_clean, .full_forward = cases[c].full};
        double *t = malloc((size_t)reps * sizeof *t);
        hk_sweep_result r = {0};
        for (int k = 0; k < reps; k++) {
            hk_sweep_result_free(&r);
            double s = now();
            if (hk_patch_sweep(m, &set, &o, &spec, &r) != HK_OK) {
                fprintf(stderr, "bench_patching: %s\n", hk_last_error());
                return 1;
            }
            t[k] = now() - s;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_d);
        printf("hookformer sweep=%s patches=%lld batch=%lld forwards=%lld s=%.3f clean=%.4f "
               "corrupted=%.4f\n", cases[c].name, (long long)r.patches, (long long)r.batch,
               (long long)r.forwards, t[reps / 2], r.reference, r.baseline);
        if (out) {
            char path[1024];
            snprintf(path, sizeof path, "%s%s.f32", out, cases[c].name);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(r.values, sizeof(float), (size_t)r.patches, f) != (size_t)r.patches) {
                fprintf(stderr, "bench_patching: cannot write %s\n", path);
                return 1;
            }
            fclose(f);
        }
        hk_sweep_result_free(&r);
        free(t);
        fflush(stdout);
    }
    hk_model_free(m);
    free(clean);
    free(bad);
    return 0;
}
