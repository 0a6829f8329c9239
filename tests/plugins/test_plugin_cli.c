/* `hookformer run --plugin`, run as a child process: a probe's table after the top-k table,
 * several plugins in order, a plugin that stops the forward, and load errors (exit 1, the
 * message naming the path). Paths come from the environment: HK_HOOKFORMER, HK_FIXTURES,
 * HK_PLUGIN_<NAME> (tests/plugins/meson.build). */
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

static const char *g_exe; /* $HK_HOOKFORMER */
static char g_model[4096];

static void test_probe_table(void **unused) {
    (void)unused;
    const char *so = require_env("HK_PLUGIN_RESID_NORMS");
    cli_result r = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--top-k", "3",
                           "--plugin", so, NULL);
    cli_expect_status(&r, 0, "run --plugin resid_norms");
    assert_string_equal(r.err, "");
    const char *table = cli_expect_contains(r.out, "rank   token_id", "top-k table");
    const char *norms = cli_expect_contains(r.out, "# resid_norms: L2 norm of "
                                                   "blocks.*.hook_resid_post, mean over the valid "
                                                   "positions", "norms");
    assert_true(norms > table); /* finish output comes after the table */
    cli_expect_contains(norms, "layer", "norms header");
    cli_expect_contains(norms, "seq 0", "norms header");
    /* one row per layer (the fixture has 2) with a positive norm */
    const char *row = strchr(norms, '\n') + 1;
    row = strchr(row, '\n') + 1;
    for (int l = 0; l < 2; l++) {
        int layer;
        double v;
        assert_int_equal(sscanf(row, "%d %lf", &layer, &v), 2);
        assert_int_equal(layer, l);
        assert_true(v > 0);
        row = strchr(row, '\n') + 1;
    }
    assert_string_equal(row, "");
    cli_result_free(&r);
}

/* Several plugins, in order: the ablation changes the top-k, both summaries follow. */
static void test_plugins_in_order(void **unused) {
    (void)unused;
    cli_result plain = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--top-k",
                               "3", NULL);
    cli_expect_status(&plain, 0, "plain run");
    char norms[4096], ablate[4096];
    snprintf(norms, sizeof norms, "%s:pos=last", require_env("HK_PLUGIN_RESID_NORMS"));
    snprintf(ablate, sizeof ablate, "%s:heads=0.0+0.1+0.2+0.3+1.0+1.1+1.2+1.3",
             require_env("HK_PLUGIN_ABLATE_HEADS"));
    cli_result r = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--top-k", "3",
                           "--plugin", norms, "--plugin", ablate, NULL);
    cli_expect_status(&r, 0, "two plugins");
    const char *n = cli_expect_contains(r.out, "# resid_norms:", "two plugins");
    cli_expect_contains(n, "at the last valid position", "pos=last");
    const char *a = cli_expect_contains(r.out, "# ablate_heads: zeroed 8 heads: 0.0 0.1", "ablate");
    assert_true(a > n);
    /* every head zeroed: the top-k is not the plain run's */
    const char *t1 = strstr(plain.out, "rank"), *t2 = strstr(r.out, "rank");
    assert_non_null(t1);
    assert_non_null(t2);
    size_t len1 = strcspn(t1, "#"), len2 = strcspn(t2, "#"); /* the tables only */
    assert_false(len1 == len2 && strncmp(t1, t2, len1) == 0);
    cli_result_free(&r);
    cli_result_free(&plain);
}

static void test_stopped(void **unused) {
    (void)unused;
    char spec[4096];
    snprintf(spec, sizeof spec, "%s:at=blocks.1.hook_resid_pre", require_env("HK_PLUGIN_STOP_AT"));
    cli_result r = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--plugin", spec,
                           NULL);
    cli_expect_status(&r, 0, "stopped run");
    cli_expect_contains(r.out, "stopped early, the hook at 'blocks.1.hook_resid_pre' stopped the "
                               "forward; no logits, no top-k", "stopped run");
    assert_null(strstr(r.out, "rank"));
    cli_expect_contains(r.out, "# stop_at: finished", "stopped run");
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

static void test_load_errors(void **unused) {
    (void)unused;
    cli_result r = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--plugin",
                           "/nonexistent.so", NULL);
    cli_expect_status(&r, 1, "--plugin /nonexistent.so");
    cli_expect_contains(r.err, "hookformer run: --plugin /nonexistent.so: cannot load plugin: "
                               "/nonexistent.so: ", "--plugin /nonexistent.so");
    assert_null(strstr(r.out, "rank"));
    cli_result_free(&r);

    char spec[4096];
    snprintf(spec, sizeof spec, "%s:foo", require_env("HK_PLUGIN_RESID_NORMS"));
    r = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--plugin", spec, NULL);
    cli_expect_status(&r, 1, "malformed spec");
    char want[4200];
    snprintf(want, sizeof want, "hookformer run: --plugin %s: argument 1, 'foo': expected "
                                "key=value", spec);
    cli_expect_contains(r.err, want, "malformed spec");
    cli_result_free(&r);

    snprintf(spec, sizeof spec, "%s:heads=7.0", require_env("HK_PLUGIN_ABLATE_HEADS"));
    r = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--plugin", spec, NULL);
    cli_expect_status(&r, 1, "bad heads");
    cli_expect_contains(r.err, "ablate_heads: head '7.0': layer 7 is out of range", "bad heads");
    cli_result_free(&r);

    r = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--plugin",
                require_env("HK_PLUGIN_BAD_ABI"), NULL);
    cli_expect_status(&r, 1, "bad abi");
    cli_expect_contains(r.err, "built for plugin ABI 999, this hookformer speaks 1", "bad abi");
    cli_result_free(&r);

    r = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--plugin", "", NULL);
    cli_expect_status(&r, 2, "empty --plugin");
    cli_expect_contains(r.err, "--plugin: expected PATH[:key=value,...], got ''", "empty --plugin");
    cli_result_free(&r);
}

static void test_help(void **unused) {
    (void)unused;
    cli_result r = cli_run(g_exe, "run", "--help", NULL);
    cli_expect_status(&r, 0, "run --help");
    cli_expect_contains(r.out, "--plugin SPEC", "run --help");
    cli_expect_contains(r.out, "docs/PLUGINS.md", "run --help");
    cli_result_free(&r);
}

int main(void) {
    g_exe = require_env("HK_HOOKFORMER");
    snprintf(g_model, sizeof g_model, "%s/gpt2", require_env("HK_FIXTURES"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_table),
        cmocka_unit_test(test_plugins_in_order),
        cmocka_unit_test(test_stopped),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
