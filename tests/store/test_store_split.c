/* The store and ln1 under split inputs (docs/HOOKS.md): when a layer's hook_q/k/v_input or
 * hook_attn_in is stored, ln1 runs per head and its points fire once for q, k and v; the store
 * keeps v's firing, [kv_heads, 1] / [kv_heads, d_model] per row, which (v_input being
 * resid_pre per head) is the plain run's row in every head. One forward and chunked feeds,
 * GQA (llama: 4 query / 2 KV heads) and not (gpt2); `--hooks '*'` stores every point; a plugin's
 * split-input hook under a store of ln1 alone is a clear error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"

#define SEQ 7
static const int64_t g_lengths[2] = {SEQ, 5};

static void tokens_for(int32_t *tok, int64_t vocab) {
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < SEQ; p++)
            tok[b * SEQ + p] = p < g_lengths[b] ? (int32_t)((5 * p + 3 * b + 2) % vocab) : 0;
}

static hk_store *run_store(hk_model *m, const char *path, const char *const *hooks, size_t n,
                           int64_t chunk) {
    hk_store_opts o = hk_store_default_opts();
    o.ctx = SEQ;
    o.commit_seconds = 0;
    hk_store *s = NULL;
    if (hk_store_create(path, m, hooks, n, &o, &s) != HK_OK) fail_msg("%s: %s", path, hk_last_error());
    int32_t tok[2 * SEQ];
    tokens_for(tok, hk_model_vocab_size(m));
    hk_status st = chunk ? hk_store_run_chunked(s, m, NULL, tok, g_lengths, 2, SEQ, chunk)
                         : hk_store_run_hooks(s, m, NULL, tok, g_lengths, 2, SEQ);
    if (st != HK_OK) fail_msg("%s: run: %s", path, hk_last_error());
    if (hk_store_close(s) != HK_OK) fail_msg("%s: close: %s", path, hk_last_error());
    if (hk_store_open(path, &s) != HK_OK) fail_msg("%s: open: %s", path, hk_last_error());
    return s;
}

static int64_t kv_heads(const hk_model *m) {
    for (size_t i = 0; i < hk_model_hook_count(m); i++) {
        const hk_hook_point *p = hk_model_hook_at(m, i);
        if (strcmp(p->name, "blocks.0.hook_v_input") == 0) return p->shape[2];
    }
    fail_msg("no blocks.0.hook_v_input");
    return 0;
}

/* Every head of the split store's row equals the plain store's row. */
static void expect_per_head(hk_store *plain, hk_store *split, const char *name, int64_t heads) {
    const int64_t d = hk_store_row_elems(plain, name);
    assert_true(d > 0);
    assert_int_equal(hk_store_row_elems(split, name), heads * d);
    float *x = malloc((size_t)d * sizeof *x), *y = malloc((size_t)(heads * d) * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int64_t q = 0; q < 2; q++)
        for (int64_t p = 0; p < g_lengths[q]; p++) {
            if (hk_store_read(plain, name, &q, &p, 1, x) != HK_OK ||
                hk_store_read(split, name, &q, &p, 1, y) != HK_OK)
                fail_msg("%s seq %lld pos %lld: %s", name, (long long)q, (long long)p,
                         hk_last_error());
            for (int64_t h = 0; h < heads; h++)
                for (int64_t i = 0; i < d; i++)
                    if (!(fabsf(x[i] - y[h * d + i]) <= 1e-5f * (1.0f + fabsf(x[i]))))
                        fail_msg("%s seq %lld pos %lld head %lld [%lld]: plain %g, split %g",
                                 name, (long long)q, (long long)p, (long long)h, (long long)i,
                                 (double)x[i], (double)y[h * d + i]);
        }
    free(x);
    free(y);
}

static void check_family(const char *family, const char *split_point, int64_t chunk) {
    char dir[256], a[300], b[300];
    make_tmpdir(dir, sizeof dir);
    snprintf(a, sizeof a, "%s/plain.h5", dir);
    snprintf(b, sizeof b, "%s/split.h5", dir);
    hk_model *m = fixture_model(family);
    const char *plain_hooks[] = {"blocks.0.ln1.hook_scale", "blocks.0.ln1.hook_normalized"};
    const char *split_hooks[] = {"blocks.0.ln1.hook_scale", "blocks.0.ln1.hook_normalized",
                                 split_point};
    hk_store *p = run_store(m, a, plain_hooks, 2, chunk);
    hk_store *s = run_store(m, b, split_hooks, 3, chunk);
    const int64_t heads = kv_heads(m);
    expect_per_head(p, s, "blocks.0.ln1.hook_scale", heads);
    expect_per_head(p, s, "blocks.0.ln1.hook_normalized", heads);
    assert_int_equal(hk_store_close(p), HK_OK);
    assert_int_equal(hk_store_close(s), HK_OK);
    hk_model_free(m);
    remove_tree(dir);
}

static void test_split_ln1_rows(void **state) {
    (void)state;
    check_family("llama", "blocks.0.hook_q_input", 0); /* GQA: q's firing has 4 heads, v's 2 */
    check_family("llama", "blocks.0.hook_v_input", 3);
    check_family("gpt2", "blocks.0.hook_k_input", 0);
    check_family("gpt2", "blocks.0.hook_attn_in", 2);
}

/* `--hooks '*'`: every point of the model stored, ln1 per head at every layer. */
static void test_every_point(void **state) {
    (void)state;
    const char *families[] = {"llama", "gpt2", "gemma2", "mixtral"};
    for (size_t f = 0; f < sizeof families / sizeof *families; f++) {
        char dir[256], a[300], b[300];
        make_tmpdir(dir, sizeof dir);
        snprintf(a, sizeof a, "%s/all.h5", dir);
        snprintf(b, sizeof b, "%s/plain.h5", dir);
        hk_model *m = fixture_model(families[f]);
        const char *all[] = {"*"}, *plain[] = {"blocks.*.ln1.hook_scale"};
        hk_store *s = run_store(m, a, all, 1, 0);
        hk_store_info info;
        assert_int_equal(hk_store_get_info(s, &info), HK_OK);
        assert_int_equal(info.n_hooks, hk_model_hook_count(m));
        hk_store *p = run_store(m, b, plain, 1, 0);
        expect_per_head(p, s, "blocks.1.ln1.hook_scale", kv_heads(m));
        assert_int_equal(hk_store_close(s), HK_OK);
        assert_int_equal(hk_store_close(p), HK_OK);
        hk_model_free(m);
        remove_tree(dir);
    }
}

static hk_hook_result keep(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    (void)act;
    (void)ctx;
    (void)user;
    return HK_HOOK_CONTINUE;
}

/* Someone else (a plugin) hooks the split inputs: ln1 arrives per head at a store that
 * expected [batch, pos, 1]; the error says why and what to do. */
static void test_foreign_split_hook(void **state) {
    (void)state;
    char dir[256], path[300];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x.h5", dir);
    hk_model *m = fixture_model("llama");
    const char *hooks[] = {"blocks.0.ln1.hook_scale"};
    hk_store *s = NULL;
    assert_int_equal(hk_store_create(path, m, hooks, 1, NULL, &s), HK_OK);
    hk_hooks *hk = NULL;
    assert_int_equal(hk_hooks_new(m, &hk), HK_OK);
    assert_int_equal(hk_hooks_add(hk, "blocks.0.hook_v_input", keep, NULL, NULL), HK_OK);
    assert_int_equal(hk_store_attach(s, hk), HK_OK);
    int32_t tok[2 * SEQ];
    tokens_for(tok, hk_model_vocab_size(m));
    expect_error(hk_store_run_hooks(s, m, hk, tok, g_lengths, 2, SEQ), HK_ERR_HOOK,
                 "split inputs", "hook_v_input", NULL);
    hk_store_close(s);
    hk_hooks_free(hk);
    hk_model_free(m);
    remove_tree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_ln1_rows),
        cmocka_unit_test(test_every_point),
        cmocka_unit_test(test_foreign_split_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
