/* Output paths are checked before any work: --out, --svg and --save of every command that
 * writes files, into a folder that is missing or is a regular file, fail at once (nothing on
 * stdout: no sweep, no table) with the errno text; `cache --out` says why too, and so does
 * hk_store_create from C. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cli_run.h"
#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"

static const char *g_exe;
static char g_tmp[512], g_model[600];

typedef struct {
    const char *what;
    const char *args[16]; /* after the model; the bad path goes after the last one */
} command;

static void expect_refused(const command *c, const char *bad, const char *errno_text) {
    const char *argv[24];
    int n = 0;
    argv[n++] = c->args[0];
    argv[n++] = "--model";
    argv[n++] = g_model;
    for (int i = 1; c->args[i]; i++) argv[n++] = c->args[i];
    argv[n++] = bad;
    argv[n] = NULL;
    cli_result r = cli_run_argv(g_exe, argv);
    cli_expect_status(&r, 1, c->what);
    cli_expect_contains(r.err, errno_text, c->what);
    cli_expect_contains(r.err, bad, c->what);
    if (r.out[0]) fail_msg("%s: worked before refusing the output path: %s", c->what, r.out);
    cli_result_free(&r);
}

static void test_unwritable_outputs(void **state) {
    (void)state;
    char file[600], under_file[700], missing[700];
    snprintf(file, sizeof file, "%s/regular", g_tmp);
    write_text(file, "x");
    const command cmds[] = {
        {"cache --out", {"cache", "--tokens", "1,2,3", "--hooks", "blocks.0.hook_resid_post",
                         "--out", NULL}},
        {"patch --out", {"patch", "--clean", "1,2,3", "--corrupted", "1,5,3", "--answer", "4",
                         "--wrong", "6", "--sweep", "resid_pre", "--out", NULL}},
        {"patch --svg", {"patch", "--clean", "1,2,3", "--corrupted", "1,5,3", "--answer", "4",
                         "--wrong", "6", "--sweep", "resid_pre", "--svg", NULL}},
        {"ablate --out", {"ablate", "--tokens", "1,2,3", "--answer", "4", "--wrong", "6",
                          "--sweep", "head_out", "--out", NULL}},
        {"ablate --svg", {"ablate", "--tokens", "1,2,3", "--answer", "4", "--wrong", "6",
                          "--sweep", "head_out", "--svg", NULL}},
        {"lens --out", {"lens", "--tokens", "1,2,3", "--out", NULL}},
        {"lens --svg", {"lens", "--tokens", "1,2,3", "--svg", NULL}},
        {"steer --save", {"steer", "--tokens", "1,2,3", "--pos", "5", "--neg", "6", "--layer",
                          "0", "--save", NULL}},
        {"embed --out", {"embed", "--tokens", "1,2,3", "--out", NULL}},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        snprintf(under_file, sizeof under_file, "%s/out.h5", file);
        snprintf(missing, sizeof missing, "%s/missing/out.h5", g_tmp);
        expect_refused(&cmds[i], under_file, "Not a directory");
        expect_refused(&cmds[i], missing, "No such file or directory");
    }
    /* --append to a file that is not there */
    snprintf(missing, sizeof missing, "%s/none.h5", g_tmp);
    cli_result r = cli_run(g_exe, "cache", "--model", g_model, "--tokens", "1,2", "--hooks",
                           "blocks.0.hook_resid_post", "--out", missing, "--append", NULL);
    cli_expect_status(&r, 1, "cache --append to a missing file");
    cli_expect_contains(r.err, "No such file or directory", "cache --append to a missing file");
    cli_result_free(&r);
    /* the library says why as well */
    hk_model *m = fixture_model("gpt2");
    const char *h[] = {"blocks.0.hook_resid_post"};
    hk_store *s = NULL;
    snprintf(missing, sizeof missing, "%s/missing/out.h5", g_tmp);
    expect_error(hk_store_create(missing, m, h, 1, NULL, &s), HK_ERR_IO,
                 "No such file or directory", missing, NULL);
    assert_null(s);
    hk_model_free(m);
}

int main(int argc, char **argv) {
    g_exe = cli_exe_from_argv(argc, argv);
    if (!g_exe) return 2;
    make_tmpdir(g_tmp, sizeof g_tmp);
    fixture_path("gpt2", g_model, sizeof g_model);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unwritable_outputs)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed) remove_tree(g_tmp);
    return failed;
}
