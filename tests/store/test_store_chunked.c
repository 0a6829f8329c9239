/* hk_store_run_chunked (hookformer cache --chunk): a batch fed through a session in chunks
 * stores the rows one forward stores, within 1e-5 (the KV cache, rolling buffers on
 * sliding-window layers and the feeds' pos_offset), for token hooks, logits and attention
 * patterns, on sequences of different lengths; the refusals; the CLI option. argv[1] is the
 * hookformer executable. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_run.h"
#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"

static const char *g_exe;

#define SEQ 13
static const int64_t g_lengths[2] = {SEQ, 9};

static void tokens_for(int32_t *tok, int64_t vocab) {
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < SEQ; p++)
            tok[b * SEQ + p] = p < g_lengths[b] ? (int32_t)((7 * p + 3 * b + 1) % vocab) : 0;
}

static hk_store *store_of(hk_model *m, const char *path, int64_t chunk) {
    const char *hooks[] = {"blocks.*.hook_resid_post", "blocks.*.attn.hook_k",
                           "blocks.*.attn.hook_pattern", "unembed.hook_out"};
    hk_store_opts o = hk_store_default_opts();
    o.ctx = SEQ;
    o.commit_seconds = 0;
    hk_store *s = NULL;
    hk_status st = hk_store_create(path, m, hooks, 4, &o, &s);
    if (st != HK_OK) fail_msg("%s: %s", path, hk_last_error());
    int32_t tok[2 * SEQ];
    tokens_for(tok, hk_model_vocab_size(m));
    st = chunk ? hk_store_run_chunked(s, m, NULL, tok, g_lengths, 2, SEQ, chunk)
               : hk_store_run_hooks(s, m, NULL, tok, g_lengths, 2, SEQ);
    if (st != HK_OK) fail_msg("%s chunk %lld: %s", path, (long long)chunk, hk_last_error());
    if (hk_store_close(s) != HK_OK) fail_msg("%s: close: %s", path, hk_last_error());
    if (hk_store_open(path, &s) != HK_OK) fail_msg("%s: open: %s", path, hk_last_error());
    return s;
}

static void expect_close(const float *want, const float *got, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++) {
        const bool same_inf = isinf(want[i]) && want[i] == got[i];
        if (!same_inf && !(fabsf(want[i] - got[i]) <= 1e-5f))
            fail_msg("%s: element %lld: one forward %g, chunked %g", what, (long long)i,
                     (double)want[i], (double)got[i]);
    }
}

static void compare_family(const char *family, int64_t chunk) {
    char dir[256], a_path[300], b_path[300];
    make_tmpdir(dir, sizeof dir);
    snprintf(a_path, sizeof a_path, "%s/whole.h5", dir);
    snprintf(b_path, sizeof b_path, "%s/chunked.h5", dir);
    hk_model *m = fixture_model(family);
    hk_store *a = store_of(m, a_path, 0), *b = store_of(m, b_path, chunk);
    hk_store_info info;
    assert_int_equal(hk_store_get_info(a, &info), HK_OK);
    for (size_t i = 0; i < info.n_hooks; i++) {
        hk_store_hook_info hi;
        assert_int_equal(hk_store_hook_at(a, i, &hi), HK_OK);
        const int64_t elems = hk_store_row_elems(a, hi.name);
        assert_int_equal(elems, hk_store_row_elems(b, hi.name));
        float *x = malloc((size_t)elems * sizeof *x), *y = malloc((size_t)elems * sizeof *y);
        const bool pattern = strstr(hi.name, "hook_pattern") != NULL;
        char what[200];
        for (int64_t q = 0; q < 2; q++) {
            for (int64_t p = 0; p < (pattern ? 1 : g_lengths[q]); p++) {
                snprintf(what, sizeof what, "%s chunk %lld %s seq %lld pos %lld", family,
                         (long long)chunk, hi.name, (long long)q, (long long)p);
                if (hk_store_read(a, hi.name, &q, pattern ? NULL : &p, 1, x) != HK_OK)
                    fail_msg("%s: %s", what, hk_last_error());
                if (hk_store_read(b, hi.name, &q, pattern ? NULL : &p, 1, y) != HK_OK)
                    fail_msg("%s: %s", what, hk_last_error());
                expect_close(x, y, elems, what);
            }
        }
        free(x);
        free(y);
    }
    assert_int_equal(hk_store_close(a), HK_OK);
    assert_int_equal(hk_store_close(b), HK_OK);
    hk_model_free(m);
    remove_tree(dir);
}

static void test_same_rows(void **state) {
    (void)state;
    compare_family("mistral", 4); /* window 5: rolling buffers */
    compare_family("mistral", 1);
    compare_family("llama", 5);
    compare_family("gemma2", 3); /* per-layer windows */
    compare_family("gpt2", SEQ + 4); /* one feed */
}

static void test_refusals(void **state) {
    (void)state;
    char dir[256], path[300];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x.h5", dir);
    hk_model *m = fixture_model("llama");
    const char *hooks[] = {"blocks.0.hook_resid_post"};
    hk_store *s = NULL;
    assert_int_equal(hk_store_create(path, m, hooks, 1, NULL, &s), HK_OK);
    int32_t tok[2 * SEQ];
    tokens_for(tok, hk_model_vocab_size(m));
    expect_error(hk_store_run_chunked(s, m, NULL, tok, g_lengths, 2, SEQ, 0),
                 HK_ERR_INVALID_ARG, "chunk (0)", NULL, NULL);
    assert_int_equal(hk_store_close(s), HK_OK);
    hk_model_free(m);

    m = fixture_model("bert");
    const char *bh[] = {"blocks.0.hook_resid_post"};
    snprintf(path, sizeof path, "%s/bert.h5", dir);
    assert_int_equal(hk_store_create(path, m, bh, 1, NULL, &s), HK_OK);
    for (int i = 0; i < 2 * SEQ; i++) tok[i] = i % 50;
    expect_error(hk_store_run_chunked(s, m, NULL, tok, g_lengths, 2, SEQ, 4),
                 HK_ERR_INVALID_ARG, "bidirectional", NULL, NULL);
    assert_int_equal(hk_store_close(s), HK_OK);
    hk_model_free(m);
    remove_tree(dir);
}

static void test_cli(void **state) {
    (void)state;
    char dir[256], path[300], model[300];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/c.h5", dir);
    fixture_path("mistral", model, sizeof model);
    cli_result r = cli_run(g_exe, "cache", "--model", model, "--tokens", "1,2,3,4,5,6,7,8,9",
                           "--hooks", "blocks.*.hook_resid_post", "--chunk", "4", "--out", path,
                           NULL);
    cli_expect_status(&r, 0, "cache --chunk 4");
    cli_expect_contains(r.err, "wrote 1 sequences (9 tokens)", "cache --chunk summary");
    cli_result_free(&r);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    r = cli_run(g_exe, "cache", "--model", model, "--tokens", "1,2,3", "--hooks",
                "blocks.*.hook_resid_post", "--chunk", "0", "--out", path, "--force", NULL);
    cli_expect_status(&r, 2, "cache --chunk 0");
    cli_result_free(&r);
    struct stat st2;
    assert_int_equal(stat(path, &st2), 0); /* the refused command left the file as it was */
    assert_int_equal(st2.st_size, st.st_size);
    assert_int_equal(st2.st_mtim.tv_sec, st.st_mtim.tv_sec);
    assert_int_equal(st2.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
    remove_tree(dir);
}

int main(int argc, char **argv) {
    if (!(g_exe = cli_exe_from_argv(argc, argv))) return 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_rows),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
