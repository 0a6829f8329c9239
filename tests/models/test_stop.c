/* Stopping the forward after the last layer that is needed: hk_model_run with logits NULL
 * stops after the last hooked block on its own, hk_model_run_opts's stop_at_layer stops where
 * it is told (TransformerLens's stop_at_layer), and hk_store_run (hookformer cache) stops
 * after the last stored layer. The hooks that fire fire with the same values; hooks past the
 * stop never fire; and later layers are not computed, which a counting mask predicate shows
 * (it is evaluated once per attention tile, in every layer that runs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixtures.h"
#include "float_compare.h"
#include "hookformer.h"
#include "test_util.h"

#define B 2
#define T 9

static const int32_t tokens[B * T] = {5, 17, 3, 99, 42, 8, 1, 250, 7,
                                      9, 9, 120, 4, 33, 0, 0, 0, 0};
static const int64_t lengths[B] = {T, 5};

/* ---- a mask predicate that counts its calls: attention work per layer ---- */

static atomic_llong mask_calls;

static bool count_calls(void *user, int64_t b, int64_t h, int64_t q, int64_t k) {
    (void)user, (void)b, (void)h, (void)q, (void)k;
    atomic_fetch_add(&mask_calls, 1);
    return true; /* the model's own causal mask still applies */
}

static void set_counting_mask(hk_model *m) {
    hk_mask_spec spec = {.causal = -1, .window = -1, .allowed = count_calls};
    EXPECT_OK(hk_model_set_mask(m, &spec));
}

/* ---- a log of every fire: name and a checksum of the values ---- */

typedef struct {
    char names[512][64];
    double sums[512];
    int n;
} fire_log;

static hk_hook_result log_fire(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    fire_log *log = user;
    if (log->n >= 512) return HK_HOOK_CONTINUE;
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)((const float *)t->data)[i] * (double)(i % 7 + 1);
    snprintf(log->names[log->n], 64, "%s", ctx->name);
    log->sums[log->n++] = s;
    return HK_HOOK_CONTINUE;
}

static float *alloc_logits(const hk_model *m) {
    float *l = malloc((size_t)(B * T * hk_model_output_dim(m)) * sizeof *l);
    assert_non_null(l);
    return l;
}

/* Only layer-0 hooks and no logits: the same fires with the same values as the full forward,
 * and one layer's attention work instead of every layer's. */
static void check_auto_stop(const char *fixture, const char *pattern) {
    hk_model *m = fixture_model(fixture);
    const int64_t L = hk_model_n_layers(m);
    assert_true(L >= 2);
    set_counting_mask(m);
    hk_hooks *h;
    EXPECT_OK(hk_hooks_new(m, &h));
    fire_log *full = calloc(1, sizeof *full), *stop = calloc(1, sizeof *stop);
    assert_non_null(full);
    assert_non_null(stop);
    hk_hook_handle hh;
    EXPECT_OK(hk_hooks_add(h, pattern, log_fire, full, &hh));
    float *logits = alloc_logits(m);
    atomic_store(&mask_calls, 0);
    EXPECT_OK(hk_model_run(m, h, tokens, lengths, B, T, logits));
    const long long calls_full = atomic_load(&mask_calls);
    EXPECT_OK(hk_hooks_remove(h, hh));
    EXPECT_OK(hk_hooks_add(h, pattern, log_fire, stop, NULL));
    atomic_store(&mask_calls, 0);
    EXPECT_OK(hk_model_run(m, h, tokens, lengths, B, T, NULL));
    const long long calls_stop = atomic_load(&mask_calls);

    assert_true(full->n > 0);
    assert_int_equal(stop->n, full->n);
    for (int i = 0; i < full->n; i++) {
        assert_string_equal(stop->names[i], full->names[i]);
        assert_true(stop->sums[i] == full->sums[i]); /* bit-identical activations */
    }
    /* every layer evaluates the same tiles: the stopped run did layer 0's only */
    assert_true(calls_full > 0);
    assert_int_equal(calls_stop * L, calls_full);
    free(full);
    free(stop);
    free(logits);
    hk_hooks_free(h);
    hk_model_free(m);
}

static void test_auto_stop_llama(void **state) {
    (void)state;
    check_auto_stop("llama", "blocks.0.*");
}

static void test_auto_stop_gpt2(void **state) {
    (void)state;
    check_auto_stop("gpt2", "blocks.0.hook_resid_post");
}

/* A hook after the blocks (ln_final, unembed.hook_in) needs every layer: no stop. And no hook
 * at all with no logits computes no block. */
static void test_no_stop_when_head_hooked(void **state) {
    (void)state;
    hk_model *m = fixture_model("llama");
    const int64_t L = hk_model_n_layers(m);
    set_counting_mask(m);
    hk_hooks *h;
    EXPECT_OK(hk_hooks_new(m, &h));
    float *logits = alloc_logits(m);
    atomic_store(&mask_calls, 0);
    EXPECT_OK(hk_model_run(m, NULL, tokens, lengths, B, T, logits));
    const long long calls_full = atomic_load(&mask_calls);
    fire_log *log = calloc(1, sizeof *log);
    assert_non_null(log);
    EXPECT_OK(hk_hooks_add(h, "blocks.0.hook_resid_pre", log_fire, log, NULL));
    EXPECT_OK(hk_hooks_add(h, "ln_final.hook_normalized", log_fire, log, NULL));
    atomic_store(&mask_calls, 0);
    EXPECT_OK(hk_model_run(m, h, tokens, lengths, B, T, NULL));
    assert_int_equal(atomic_load(&mask_calls), calls_full);
    assert_int_equal(log->n, 2);
    assert_string_equal(log->names[1], "ln_final.hook_normalized");
    atomic_store(&mask_calls, 0);
    EXPECT_OK(hk_model_run(m, NULL, tokens, lengths, B, T, NULL));
    assert_int_equal(atomic_load(&mask_calls), 0);
    assert_true(calls_full > 0 && L > 0);
    free(log);
    free(logits);
    hk_hooks_free(h);
    hk_model_free(m);
}

/* ---- explicit stop_at_layer ---- */

/* The residual entering block `layer` of a full run (resid_pre), or after the last block. */
static float *full_resid(hk_model *m, int64_t layer) {
    const int64_t L = hk_model_n_layers(m), d = hk_model_d_model(m);
    char name[64];
    if (layer < L) snprintf(name, sizeof name, "blocks.%lld.hook_resid_pre", (long long)layer);
    else snprintf(name, sizeof name, "blocks.%lld.hook_resid_post", (long long)(L - 1));
    const char *pats[] = {name};
    hk_cache *c;
    float *logits = alloc_logits(m);
    EXPECT_OK(hk_run_with_cache(m, tokens, lengths, B, T, pats, 1, "all", logits, &c));
    const hk_tensor *t = hk_cache_get(c, name);
    assert_non_null(t);
    float *out = malloc((size_t)(B * T * d) * sizeof *out);
    assert_non_null(out);
    memcpy(out, t->data, (size_t)(B * T * d) * sizeof *out);
    for (int64_t b = 0; b < B; b++) /* padded rows: zero, as the run writes them */
        memset(out + (b * T + lengths[b]) * d, 0, (size_t)((T - lengths[b]) * d) * sizeof *out);
    hk_cache_free(c);
    free(logits);
    return out;
}

static void check_stop_at(const char *fixture, int64_t stop, int64_t layer) {
    hk_model *m = fixture_model(fixture);
    const int64_t L = hk_model_n_layers(m), d = hk_model_d_model(m);
    float *want = full_resid(m, layer);
    hk_hooks *h;
    EXPECT_OK(hk_hooks_new(m, &h));
    fire_log *log = calloc(1, sizeof *log);
    assert_non_null(log);
    EXPECT_OK(hk_hooks_add(h, "*", log_fire, log, NULL));
    float *out = malloc((size_t)(B * T * d) * sizeof *out);
    assert_non_null(out);
    hk_run_opts o = hk_run_default_opts();
    o.stop_at_layer = stop;
    EXPECT_OK(hk_model_run_opts(m, h, tokens, lengths, B, T, &o, out));
    /* every point hooked takes the materialized attention and per-head paths: not
     * bit-identical to the plain run, equal within the house tolerance */
    float diff = max_abs_diff(out, want, (size_t)(B * T * d));
    if (!(diff <= 1e-4f))
        fail_msg("%s stop_at_layer %lld: residual differs by %g", fixture, (long long)stop,
                 (double)diff);
    /* fires: everything up to block `layer`, nothing of it or after it */
    char later[32];
    snprintf(later, sizeof later, "blocks.%lld.", (long long)layer);
    bool saw_embed = false;
    for (int i = 0; i < log->n; i++) {
        const char *nm = log->names[i];
        saw_embed |= strcmp(nm, "hook_embed") == 0;
        assert_null(strstr(nm, "ln_final"));
        assert_null(strstr(nm, "unembed"));
        for (int64_t l = layer; l < L; l++) {
            snprintf(later, sizeof later, "blocks.%lld.", (long long)l);
            if (strncmp(nm, later, strlen(later)) == 0)
                fail_msg("%s fired past stop_at_layer %lld", nm, (long long)stop);
        }
    }
    assert_true(saw_embed);
    free(out);
    free(want);
    free(log);
    hk_hooks_free(h);
    hk_model_free(m);
}

static void test_stop_at_layer(void **state) {
    (void)state;
    check_stop_at("llama", 1, 1);
    check_stop_at("llama", -1, 1); /* every block but the last (2 layers) */
    check_stop_at("llama", 0, 0);  /* the embeddings */
    check_stop_at("llama", 2, 2);  /* every block, no ln_final / unembed */
    check_stop_at("gpt2", 0, 0);   /* embed + learned positions */
    check_stop_at("gpt2", 1, 1);
}

static void test_stop_at_layer_errors(void **state) {
    (void)state;
    hk_model *m = fixture_model("llama");
    hk_run_opts o = hk_run_default_opts();
    float *out = alloc_logits(m);
    o.stop_at_layer = 3;
    expect_error(hk_model_run_opts(m, NULL, tokens, lengths, B, T, &o, out), HK_ERR_INVALID_ARG,
                 "stop_at_layer 3", "-2..2", NULL);
    o.stop_at_layer = -3;
    expect_error(hk_model_run_opts(m, NULL, tokens, lengths, B, T, &o, out), HK_ERR_INVALID_ARG,
                 "stop_at_layer -3", NULL, NULL);
    /* the default is the whole forward: the logits of hk_model_run */
    float *want = alloc_logits(m);
    EXPECT_OK(hk_model_run(m, NULL, tokens, lengths, B, T, want));
    EXPECT_OK(hk_model_run_opts(m, NULL, tokens, lengths, B, T, NULL, out));
    assert_true(max_abs_diff(out, want, (size_t)(B * T * hk_model_output_dim(m))) == 0.0f);
    free(want);
    free(out);
    hk_model_free(m);
}

/* hk_store_run (what `hookformer cache` runs) with layer-0 hooks does layer 0's work only. */
static void test_store_run_stops(void **state) {
    (void)state;
    hk_model *m = fixture_model("llama");
    const int64_t L = hk_model_n_layers(m);
    set_counting_mask(m);
    float *logits = alloc_logits(m);
    atomic_store(&mask_calls, 0);
    EXPECT_OK(hk_model_run(m, NULL, tokens, lengths, B, T, logits));
    const long long calls_full = atomic_load(&mask_calls);
    char dir[256], path[300];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/acts.h5", dir);
    const char *pats[] = {"blocks.0.hook_resid_post"};
    hk_store *s;
    EXPECT_OK(hk_store_create(path, m, pats, 1, NULL, &s));
    atomic_store(&mask_calls, 0);
    EXPECT_OK(hk_store_run(s, m, tokens, lengths, B, T));
    assert_int_equal(atomic_load(&mask_calls) * L, calls_full);
    EXPECT_OK(hk_store_close(s));
    remove_tree(dir);
    free(logits);
    hk_model_free(m);
}

/* A patch sweep of layer 0 needs no cached residual (its forwards start at block 0), and a
 * sweep of one layer L caches only blocks.L.hook_resid_pre (its run stops after block L-1): the
 * attention work equals that of --full-forward for layer 0. */
static long long sweep_calls(hk_model *m, int64_t layer, bool full) {
    /* two prompts of T tokens, the first rows of `tokens` with a few ids changed */
    int32_t clean[2 * T], corrupted[2 * T];
    memcpy(clean, tokens, sizeof clean);
    memcpy(clean + T, tokens, T * sizeof *clean);
    memcpy(corrupted, clean, sizeof corrupted);
    corrupted[2] = 77, corrupted[T + 5] = 31;
    const int32_t answer[2] = {12, 40}, wrong[2] = {30, 2};
    hk_prompt_set set = {2, T, corrupted, answer, wrong};
    hk_patch_opts o = {.clean = clean, .clean_seq = T, .batch = 4, .full_forward = full};
    hk_sweep_spec spec = {.point = "hook_resid_pre", .per_position = true, .layer = layer};
    hk_sweep_result r;
    atomic_store(&mask_calls, 0);
    EXPECT_OK(hk_patch_sweep(m, &set, &o, &spec, &r));
    hk_sweep_result_free(&r);
    return atomic_load(&mask_calls);
}

static void test_patch_layer_stops(void **state) {
    (void)state;
    hk_model *m = fixture_model("llama");
    set_counting_mask(m);
    const long long skip0 = sweep_calls(m, 0, false), full0 = sweep_calls(m, 0, true);
    assert_true(full0 > 0);
    assert_int_equal(skip0, full0);
    /* layer 1: the cached run does block 0 only; forwards start at block 1 */
    const long long skip1 = sweep_calls(m, 1, false), full1 = sweep_calls(m, 1, true);
    assert_true(skip1 < full1);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_stop_llama),
        cmocka_unit_test(test_auto_stop_gpt2),
        cmocka_unit_test(test_no_stop_when_head_hooked),
        cmocka_unit_test(test_stop_at_layer),
        cmocka_unit_test(test_stop_at_layer_errors),
        cmocka_unit_test(test_store_run_stops),
        cmocka_unit_test(test_patch_layer_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
