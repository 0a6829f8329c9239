/* --plugin on cache, patch, ablate, lens and embed (issue 12 point 6), run as child processes:
 * the plugins' hooks fire first, in the order given, in every forward of the command, so
 * that `cache` stores the values under the intervention and a sweep runs under it. A plugin
 * that fails to load leaves the store untouched. Stores are read back with hk_store_read.
 * Paths from the environment: HK_HOOKFORMER, HK_FIXTURES, HK_PLUGIN_<NAME>. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cli_run.h"
#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"

static const char *g_exe;
static char g_model[4096], g_dir[256];

#define T 5
static const char *TOKENS = "7,21,3,140,9";
#define D 64 /* the gpt2 fixture's d_model; 4 heads of 16 */

static void ablate_spec(char *buf, size_t cap, const char *heads) {
    snprintf(buf, cap, "%s:heads=%s", require_env("HK_PLUGIN_ABLATE_HEADS"), heads);
}

/* rows 0..T-1 of sequence 0 of `hook` in the store at path: out [T, row] */
static float *read_rows(const char *path, const char *hook) {
    hk_store *s;
    EXPECT_OK(hk_store_open(path, &s));
    const int64_t n = hk_store_row_elems(s, hook);
    assert_true(n > 0);
    int64_t seq[T] = {0}, pos[T];
    for (int i = 0; i < T; i++) pos[i] = i;
    float *out = malloc((size_t)(T * n) * sizeof *out);
    assert_non_null(out);
    EXPECT_OK(hk_store_read(s, hook, seq, pos, T, out));
    EXPECT_OK(hk_store_close(s));
    return out;
}

static void run_cache(const char *out, const char *p1, const char *p2, const char *hooks) {
    const char *args[24] = {"cache", "--model", g_model, "--tokens", TOKENS, "--hooks", hooks,
                            "--out", out, "--force"};
    int n = 10;
    if (p1) args[n++] = "--plugin", args[n++] = p1;
    if (p2) args[n++] = "--plugin", args[n++] = p2;
    args[n] = NULL;
    cli_result r = cli_run_argv(g_exe, args);
    cli_expect_status(&r, 0, "cache");
    cli_result_free(&r);
}

/* cache under ablate_heads stores the ablated z (head 1 of layer 0 zero) and the changed
 * downstream residual; the heads it leaves alone are stored as without the plugin. */
static void test_cache_stores_ablated(void **unused) {
    (void)unused;
    char a[512], b[512], spec[4096];
    snprintf(a, sizeof a, "%s/ablated.h5", g_dir);
    snprintf(b, sizeof b, "%s/plain.h5", g_dir);
    ablate_spec(spec, sizeof spec, "0.1");
    const char *hooks = "blocks.0.attn.hook_z,blocks.1.hook_resid_post";
    run_cache(a, spec, NULL, hooks);
    run_cache(b, NULL, NULL, hooks);
    float *za = read_rows(a, "blocks.0.attn.hook_z"), *zb = read_rows(b, "blocks.0.attn.hook_z");
    double head1_plain = 0;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < 4; h++)
            for (int d = 0; d < 16; d++) {
                float va = za[t * D + h * 16 + d], vb = zb[t * D + h * 16 + d];
                if (h == 1) {
                    assert_true(va == 0.0f);
                    head1_plain += fabs(vb);
                } else {
                    assert_true(va == vb);
                }
            }
    assert_true(head1_plain > 0);
    float *ra = read_rows(a, "blocks.1.hook_resid_post"), *rb = read_rows(b, "blocks.1.hook_resid_post");
    double diff = 0;
    for (int i = 0; i < T * D; i++) diff += fabs(ra[i] - rb[i]);
    assert_true(diff > 1e-3);
    free(za), free(zb), free(ra), free(rb);
}

/* The layer-0 line of resid_norms' table ("    0      6.436687 ..."). */
static void norms_line(const char *out, char *line, size_t cap) {
    const char *p = cli_expect_contains(out, "# resid_norms:", "resid_norms summary");
    p = strstr(p, "\n    0 ");
    assert_non_null(p);
    p++;
    size_t n = strcspn(p, "\n");
    snprintf(line, cap, "%.*s", (int)n, p);
}

static void cache_norms(const char *out_h5, const char *p1, const char *p2, char *line,
                        size_t cap) {
    const char *args[24] = {"cache", "--model", g_model, "--tokens", TOKENS, "--hooks",
                            "blocks.0.hook_resid_post", "--out", out_h5, "--force"};
    int n = 10;
    if (p1) args[n++] = "--plugin", args[n++] = p1;
    if (p2) args[n++] = "--plugin", args[n++] = p2;
    args[n] = NULL;
    cli_result r = cli_run_argv(g_exe, args);
    cli_expect_status(&r, 0, "cache with plugins");
    norms_line(r.out, line, cap);
    cli_result_free(&r);
}

/* Several plugins at one point fire in the order given, all before the store: steer then
 * resid_norms measures the steered residual, resid_norms then steer the plain one; the store
 * holds the steered residual either way. */
static void test_cache_plugin_order(void **unused) {
    (void)unused;
    char vec[512], steer[4096], norms[4096];
    snprintf(vec, sizeof vec, "%s/v.f32", g_dir);
    float v[D];
    for (int i = 0; i < D; i++) v[i] = (float)((i % 5) - 2) * 0.75f;
    write_bytes(vec, v, sizeof v);
    snprintf(steer, sizeof steer, "%s:vector=%s,coef=1,hook=blocks.0.hook_resid_post",
             require_env("HK_PLUGIN_STEER"), vec);
    snprintf(norms, sizeof norms, "%s", require_env("HK_PLUGIN_RESID_NORMS"));
    char plain[512], first[512], second[512], h_plain[512], h_first[512], h_second[512];
    snprintf(h_plain, sizeof h_plain, "%s/o_plain.h5", g_dir);
    snprintf(h_first, sizeof h_first, "%s/o_steer_first.h5", g_dir);
    snprintf(h_second, sizeof h_second, "%s/o_norms_first.h5", g_dir);
    cache_norms(h_plain, norms, NULL, plain, sizeof plain);
    cache_norms(h_first, steer, norms, first, sizeof first);
    cache_norms(h_second, norms, steer, second, sizeof second);
    assert_string_equal(second, plain); /* resid_norms fired before steer */
    assert_string_not_equal(first, plain);
    float *rp = read_rows(h_plain, "blocks.0.hook_resid_post");
    float *r1 = read_rows(h_first, "blocks.0.hook_resid_post");
    float *r2 = read_rows(h_second, "blocks.0.hook_resid_post");
    assert_memory_equal(r1, r2, (size_t)(T * D) * sizeof *r1);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++) assert_true(r1[t * D + i] == rp[t * D + i] + v[i]);
    free(rp), free(r1), free(r2);
}

/* A plugin that fails to load ends the command before the store is opened: an --append
 * target stays byte-identical (and keeps its mtime), a new path is not created. */
static void test_cache_bad_plugin_touches_nothing(void **unused) {
    (void)unused;
    char path[512], fresh[512], bad[4096];
    snprintf(path, sizeof path, "%s/keep.h5", g_dir);
    snprintf(fresh, sizeof fresh, "%s/never.h5", g_dir);
    run_cache(path, NULL, NULL, "blocks.0.hook_resid_post");
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *bytes = malloc((size_t)before.st_size);
    assert_int_equal(fread(bytes, 1, (size_t)before.st_size, f), (size_t)before.st_size);
    fclose(f);
    ablate_spec(bad, sizeof bad, "0.9"); /* head 9: an init error */
    cli_result r = cli_run(g_exe, "cache", "--model", g_model, "--tokens", TOKENS, "--hooks",
                           "blocks.0.hook_resid_post", "--out", path, "--append", "--plugin",
                           bad, NULL);
    cli_expect_status(&r, 1, "cache --append with a bad plugin");
    cli_expect_contains(r.err, "--plugin", "names the option");
    cli_expect_contains(r.err, "head 9", "says why");
    cli_result_free(&r);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
    f = fopen(path, "rb");
    char *now = malloc((size_t)after.st_size);
    assert_int_equal(fread(now, 1, (size_t)after.st_size, f), (size_t)after.st_size);
    fclose(f);
    assert_memory_equal(now, bytes, (size_t)before.st_size);
    r = cli_run(g_exe, "cache", "--model", g_model, "--tokens", TOKENS, "--hooks",
                "blocks.0.hook_resid_post", "--out", fresh, "--plugin", "/nonexistent/x.so",
                NULL);
    cli_expect_status(&r, 1, "cache with a missing plugin");
    cli_result_free(&r);
    assert_int_not_equal(access(fresh, F_OK), 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", fresh);
    assert_int_not_equal(access(tmp, F_OK), 0);
    free(bytes), free(now);
}

/* Value at (layer 0, head 1) of a sweep's printed grid: the row "     0   a   b   c   d". */
static double grid_l0_h1(const char *out) {
    const char *p = cli_expect_contains(out, " layer\n", "sweep grid");
    p = strchr(p, '\n') + 1;
    int layer;
    double h0, h1;
    assert_int_equal(sscanf(p, "%d %lf %lf", &layer, &h0, &h1), 3);
    assert_int_equal(layer, 0);
    return h1;
}

/* ablate and patch run every forward under the plugin: ablating (or patching) a head the
 * plugin already zeroed changes nothing, while without the plugin it does. */
static void test_sweeps_under_plugin(void **unused) {
    (void)unused;
    char spec[4096];
    ablate_spec(spec, sizeof spec, "0.1");
    const char *toks = "103,225,200,88,12,240,61,5";
    cli_result with = cli_run(g_exe, "ablate", "--model", g_model, "--tokens", toks, "--answer",
                              "68", "--wrong", "100", "--sweep", "head_out", "--plugin", spec,
                              NULL);
    cli_result without = cli_run(g_exe, "ablate", "--model", g_model, "--tokens", toks,
                                 "--answer", "68", "--wrong", "100", "--sweep", "head_out", NULL);
    cli_expect_status(&with, 0, "ablate --plugin");
    cli_expect_status(&without, 0, "ablate");
    assert_true(fabs(grid_l0_h1(with.out)) < 5e-4);
    assert_true(fabs(grid_l0_h1(without.out)) > 0.1);
    cli_expect_contains(with.out, "# ablate_heads: zeroed 1 head", "plugin summary");
    cli_result_free(&with), cli_result_free(&without);

    const char *clean = toks, *bad = "103,225,1,88,12,41,61,5";
    with = cli_run(g_exe, "patch", "--model", g_model, "--clean", clean, "--corrupted", bad,
                   "--answer", "68", "--wrong", "100", "--sweep", "head_out", "--plugin", spec,
                   NULL);
    without = cli_run(g_exe, "patch", "--model", g_model, "--clean", clean, "--corrupted", bad,
                      "--answer", "68", "--wrong", "100", "--sweep", "head_out", NULL);
    cli_expect_status(&with, 0, "patch --plugin");
    cli_expect_status(&without, 0, "patch");
    assert_true(fabs(grid_l0_h1(with.out)) < 5e-4);
    assert_true(fabs(grid_l0_h1(without.out)) > 0.05);
    /* the clean and corrupted metrics are those of the ablated model */
    const char *cw = cli_expect_contains(with.out, "# clean ", "metrics");
    const char *cn = cli_expect_contains(without.out, "# clean ", "metrics");
    assert_true(strncmp(cw, cn, strcspn(cn, "\n")) != 0);
    cli_result_free(&with), cli_result_free(&without);
}

/* The last line of `out` that starts with `prefix`. */
static const char *line_with(const char *out, const char *prefix) {
    return cli_expect_contains(out, prefix, prefix);
}

static void test_lens_and_embed_under_plugin(void **unused) {
    (void)unused;
    char spec[4096];
    ablate_spec(spec, sizeof spec, "0.0+0.1+0.2+0.3");
    cli_result with = cli_run(g_exe, "lens", "--model", g_model, "--tokens", TOKENS, "--answer",
                              "68", "--wrong", "100", "--plugin", spec, NULL);
    cli_result without = cli_run(g_exe, "lens", "--model", g_model, "--tokens", TOKENS,
                                 "--answer", "68", "--wrong", "100", NULL);
    cli_expect_status(&with, 0, "lens --plugin");
    cli_expect_status(&without, 0, "lens");
    /* the top-5 table (the lines after its heading, up to the attribution) differs */
    const char *a = line_with(with.out, "top-5 at the last position");
    const char *b = line_with(without.out, "top-5 at the last position");
    assert_true(strncmp(a, b, strcspn(a, "#")) != 0);
    /* every layer-0 head zeroed: their direct attributions are exactly 0 */
    cli_expect_contains(with.out, "# ablate_heads: zeroed 4 heads", "plugin summary");
    cli_result_free(&with), cli_result_free(&without);

    with = cli_run(g_exe, "embed", "--model", g_model, "--tokens", "1,2,3", "--pooling", "last",
                   "--plugin", spec, NULL);
    without = cli_run(g_exe, "embed", "--model", g_model, "--tokens", "1,2,3", "--pooling",
                      "last", NULL);
    cli_expect_status(&with, 0, "embed --plugin");
    cli_expect_status(&without, 0, "embed");
    a = line_with(with.out, "\n0 ");
    b = line_with(without.out, "\n0 ");
    assert_true(strncmp(a, b, strcspn(a + 1, "\n")) != 0);
    cli_expect_contains(with.out, "# ablate_heads: zeroed 4 heads", "plugin summary");
    cli_result_free(&with), cli_result_free(&without);
}

static int setup(void **state) {
    (void)state;
    make_tmpdir(g_dir, sizeof g_dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    remove_tree(g_dir);
    return 0;
}

int main(void) {
    g_exe = require_env("HK_HOOKFORMER");
    fixture_path("gpt2", g_model, sizeof g_model);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_stores_ablated),
        cmocka_unit_test(test_cache_plugin_order),
        cmocka_unit_test(test_cache_bad_plugin_touches_nothing),
        cmocka_unit_test(test_sweeps_under_plugin),
        cmocka_unit_test(test_lens_and_embed_under_plugin),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
