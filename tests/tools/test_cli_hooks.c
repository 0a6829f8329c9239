/* `hookformer hooks`, run as a child process: help, usage and runtime errors, and the listing
 * of every fixture model against the library's own table of hook points.
 *
 * usage: test_cli_hooks PATH_TO_HOOKFORMER   (meson passes the built executable; HK_FIXTURES
 * is set by tests/meson.build). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli_run.h"
#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"

static const char *g_exe;

/* ---- help and errors ------------------------------------------------------------------- */

static void test_help(void **state) {
    (void)state;
    const char *forms[][3] = {{"hooks", "--help", NULL}, {"hooks", "-h", NULL},
                              {"help", "hooks", NULL}};
    for (size_t i = 0; i < 3; i++) {
        cli_result r = cli_run(g_exe, forms[i][0], forms[i][1], NULL);
        cli_expect_status(&r, 0, forms[i][1]);
        cli_expect_contains(r.out, "usage: hookformer hooks --model DIR [--all]", forms[i][1]);
        cli_expect_contains(r.out, "--all", forms[i][1]);
        cli_expect_contains(r.out, "optional", forms[i][1]);
        assert_string_equal(r.err, "");
        cli_result_free(&r);
    }
    cli_result r = cli_run(g_exe, "--help", NULL);
    cli_expect_status(&r, 0, "--help");
    cli_expect_contains(r.out, "hooks", "top-level help lists the command");
    cli_result_free(&r);
}

static void test_usage_errors(void **state) {
    (void)state;
    char gpt2[1024];
    fixture_path("gpt2", gpt2, sizeof gpt2);
    struct {
        const char *args[4];
        const char *message;
    } cases[] = {
        {{"hooks", NULL}, "hookformer hooks: missing required option --model"},
        {{"hooks", "--model", NULL}, "hookformer hooks: --model: missing value"},
        {{"hooks", "--model", gpt2, "--bogus"}, "hookformer hooks: unknown option '--bogus'"},
        {{"hooks", "--model", gpt2, "extra"}, "hookformer hooks: unexpected argument 'extra'"},
        {{"hooks", "--all=1", "--model", gpt2}, "hookformer hooks: --all: takes no value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result r = cli_run(g_exe, cases[i].args[0], cases[i].args[1], cases[i].args[2],
                               cases[i].args[3], NULL);
        cli_expect_status(&r, 2, cases[i].message);
        cli_expect_contains(r.err, cases[i].message, cases[i].message);
        assert_string_equal(r.out, "");
        cli_result_free(&r);
    }
}

static void test_bad_model(void **state) {
    (void)state;
    const char *bad = "/nonexistent/hookformer-test-model";
    cli_result r = cli_run(g_exe, "hooks", "--model", bad, NULL);
    cli_expect_status(&r, 1, "missing model");
    cli_expect_contains(r.err,
                        "hookformer hooks: cannot load model "
                        "'/nonexistent/hookformer-test-model'",
                        "missing model");
    cli_expect_contains(r.err, "(HK_ERR_", "missing model");
    assert_string_equal(r.out, "");
    cli_result_free(&r);
}

/* ---- listings ---------------------------------------------------------------------------- */

/* The expected line's shape and names for a point, built independently of cmd_hooks.c. */
static void expected_columns(const hk_hook_point *pt, char *shape, char *names) {
    strcpy(shape, "[");
    names[0] = '\0';
    const char *p = pt->dims;
    for (int d = 0; d < pt->ndim; d++) {
        char dim[32];
        size_t len = strcspn(p, " ");
        snprintf(dim, sizeof dim, "%.*s", (int)len, p);
        if (d) strcat(shape, ", ");
        if (pt->shape[d] < 0) {
            strcat(shape, dim);
        } else {
            char num[32];
            snprintf(num, sizeof num, "%lld", (long long)pt->shape[d]);
            strcat(shape, num);
            if (strcmp(dim, "1") != 0) {
                strcat(names, names[0] ? ", " : "(");
                strcat(names, dim);
            }
        }
        p += len;
        p += strspn(p, " ");
    }
    strcat(shape, "]");
    if (names[0]) strcat(names, ")");
}

/* Split "a   b   c" on runs of 3+ spaces into at most max fields. */
static int fields(char *line, char **out, int max) {
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        out[n++] = p;
        char *gap = strstr(p, "   ");
        if (!gap) break;
        *gap = '\0';
        p = gap + 3;
        while (*p == ' ') p++;
    }
    return n;
}

static void check_listing(const char *fixture, bool all) {
    char dir[1024];
    fixture_path(fixture, dir, sizeof dir);
    hk_model *m = fixture_model(fixture);
    cli_result r = all ? cli_run(g_exe, "hooks", "--model", dir, "--all", NULL)
                       : cli_run(g_exe, "hooks", "--model", dir, NULL);
    cli_expect_status(&r, 0, fixture);
    assert_string_equal(r.err, "");
    char *save = NULL, *line = strtok_r(r.out, "\n", &save);
    size_t hidden = 0, listed = 0;
    for (size_t i = 0; i < hk_model_hook_count(m); i++) {
        const hk_hook_point *pt = hk_model_hook_at(m, i);
        if (pt->optional && !all) {
            hidden++;
            continue;
        }
        if (!line) fail_msg("%s: the listing ends before %s", fixture, pt->name);
        char shape[256], names[256];
        expected_columns(pt, shape, names);
        char *f[5];
        int nf = fields(line, f, 5);
        int want = 2 + (names[0] != '\0') + (pt->optional ? 1 : 0);
        if (nf != want || strcmp(f[0], pt->name) != 0 || strcmp(f[1], shape) != 0 ||
            (names[0] && strcmp(f[2], names) != 0) ||
            (pt->optional && strcmp(f[nf - 1], "optional") != 0))
            fail_msg("%s: line '%s', expected %s %s %s%s", fixture, line, pt->name, shape, names,
                     pt->optional ? " optional" : "");
        listed++;
        line = strtok_r(NULL, "\n", &save);
    }
    if (hidden) {
        if (!line) fail_msg("%s: no note on the %zu hidden optional points", fixture, hidden);
        char note[64];
        snprintf(note, sizeof note, "(%zu optional points not listed", hidden);
        cli_expect_contains(line, note, fixture);
        cli_expect_contains(line, "--all", fixture);
        line = strtok_r(NULL, "\n", &save);
    }
    if (line) fail_msg("%s: unexpected line '%s'", fixture, line);
    assert_true(listed > 0);
    cli_result_free(&r);
    hk_model_free(m);
}

static void test_listings(void **state) {
    (void)state;
    const char *fixtures[] = {"gpt2", "llama", "mistral", "qwen2", "phi3", "neox"};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        check_listing(fixtures[i], false);
        check_listing(fixtures[i], true);
    }
}

/* The example of the brief, literally: gpt2 has 4 heads of 16. */
static void test_gpt2_lines(void **state) {
    (void)state;
    char dir[1024];
    fixture_path("gpt2", dir, sizeof dir);
    cli_result r = cli_run(g_exe, "hooks", "--model", dir, "--all", NULL);
    cli_expect_status(&r, 0, "gpt2 --all");
    const char *want[] = {
        "blocks.0.attn.hook_q",        "[batch, pos, 4, 16]",          "(head_index, d_head)",
        "blocks.1.attn.hook_pattern",  "[batch, 4, query_pos, key_pos]", "(head_index)",
        "blocks.0.ln1.hook_scale",     "[batch, pos, 1]",              NULL,
        "hook_pos_embed",              "[batch, pos, 64]",             "(d_model)",
        "unembed.hook_out",            "[batch, pos, 300]",            "(d_vocab)",
        "blocks.0.attn.hook_result",   "[batch, pos, 4, 64]",          "(head_index, d_model)",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i += 3) {
        char *at = strstr(r.out, want[i]);
        assert_non_null(at);
        size_t len = strcspn(at, "\n");
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)len, at);
        cli_expect_contains(line, want[i + 1], want[i]);
        if (want[i + 2]) cli_expect_contains(line, want[i + 2], want[i]);
    }
    cli_expect_contains(r.out, "blocks.0.attn.hook_result", "--all");
    cli_result_free(&r);
    r = cli_run(g_exe, "hooks", "--model", dir, NULL);
    cli_expect_status(&r, 0, "gpt2");
    assert_null(strstr(r.out, "hook_result"));
    assert_null(strstr(r.out, "hook_q_input"));
    cli_result_free(&r);
}

/* A name or glob that matches no point: the message offers the nearest names, the layer
 * range for a layer past the last, blocks.*.X for a bare block suffix; the CLI's message has
 * no output-file prefix and the refused cache leaves no file. */
static void test_unknown_hook_suggestions(void **state) {
    (void)state;
    char gpt2[1024];
    fixture_path("gpt2", gpt2, sizeof gpt2);
    hk_model *m;
    EXPECT_OK(hk_model_load(gpt2, &m));
    hk_hooks *h;
    EXPECT_OK(hk_hooks_new(m, &h));
    struct {
        const char *pattern, *want;
    } cases[] = {
        {"blocks.1.hook_resid_pots", "did you mean blocks.1.hook_resid_post? ("},
        {"blocks.*.attn.hook_patern", "did you mean blocks.*.attn.hook_pattern? ("},
        {"hook_resid_post", "did you mean blocks.*.hook_resid_post? ("},
        {"blocks.7.hook_resid_post", "(2 layers): its layers are 0..1"},
        {"hook_embd", "did you mean hook_embed? ("},
        {"blocks.0.attn.hook_x", "did you mean blocks.0.attn.hook_q, blocks.0.attn.hook_k or "
                                 "blocks.0.attn.hook_v? ("},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_error(hk_hooks_add(h, cases[i].pattern, NULL, NULL, NULL), HK_ERR_INVALID_ARG,
                     NULL, NULL, NULL); /* no callback: refused first */
        hk_status st = hk_hooks_add(h, cases[i].pattern, (hk_hook_fn)(void (*)(void))hk_free,
                                    NULL, NULL);
        expect_error(st, HK_ERR_NOT_FOUND, cases[i].pattern, cases[i].want, "hookformer hooks");
    }
    /* far from every name: no guess */
    expect_error(hk_hooks_add(h, "zzz", (hk_hook_fn)(void (*)(void))hk_free, NULL, NULL),
                 HK_ERR_NOT_FOUND, "'zzz' matches no hook point", NULL, NULL);
    assert_null(strstr(hk_last_error(), "did you mean"));
    hk_cache *c;
    EXPECT_OK(hk_cache_new(m, &c));
    const char *pats[] = {"blocks.0.ln1.hook_scal"};
    expect_error(hk_cache_attach(c, h, pats, 1, "all"), HK_ERR_NOT_FOUND,
                 "did you mean blocks.0.ln1.hook_scale?", NULL, NULL);
    hk_cache_free(c);
    hk_hooks_free(h);
    hk_model_free(m);
    /* the CLI: the message names the hook, not the output file */
    char dir[256], out[300];
    make_tmpdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/acts.h5", dir);
    cli_result r = cli_run(g_exe, "cache", "--model", gpt2, "--tokens", "1,2,3", "--hooks",
                           "blocks.0.hook_mlp_ot", "--out", out, NULL);
    cli_expect_status(&r, 1, "cache with a misspelt hook");
    cli_expect_contains(r.err, "hookformer cache: hook 'blocks.0.hook_mlp_ot' matches no hook "
                               "point", "cache with a misspelt hook");
    cli_expect_contains(r.err, "did you mean blocks.0.hook_mlp_out?", "the suggestion");
    assert_null(strstr(r.err, out));
    assert_int_not_equal(access(out, F_OK), 0);
    cli_result_free(&r);
    remove_tree(dir);
}

int main(int argc, char **argv) {
    g_exe = cli_exe_from_argv(argc, argv);
    if (!g_exe) return 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_bad_model),
        cmocka_unit_test(test_listings),
        cmocka_unit_test(test_gpt2_lines),
        cmocka_unit_test(test_unknown_hook_suggestions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
