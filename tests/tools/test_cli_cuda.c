/* `--device cuda` through the CUDA backend (test_cli_device.c has the option's values and a
 * missing module): on a machine without a GPU every command that loads a model fails with exit
 * status 1 and a message naming what is missing — never a crash — and touches no file: an
 * existing `cache --out` file given with --force keeps its bytes and mtime. Over the CPU
 * stand-in of the module, `--device cuda` prints what the CPU prints (f32 weights; bf16 runs).
 * Where a GPU is present a run succeeds (the numeric comparison with the CPU is
 * scripts/gpu_check.sh's). */
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
#include "core/cuda_module.h"
#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"

static const char *g_exe;
static char g_tmp[512], g_model[600];
static int g_gpus; /* GPUs the build's module sees (0 without a module) */

/* The commands, each with what it needs after --model (a model load is their first work). */
static const char *const *commands(size_t *n) {
    static const char *const c[][16] = {
        {"run", "--tokens", "1,2,3", NULL},
        {"generate", "--tokens", "1,2,3", "--max-new", "2", NULL},
        {"cache", "--tokens", "1,2,3", "--hooks", "blocks.0.hook_resid_post", "--out", "@OUT", NULL},
        {"patch", "--clean", "1,2,3", "--corrupted", "1,5,3", "--answer", "4", "--wrong", "6",
         "--sweep", "resid_pre", NULL},
        {"ablate", "--tokens", "1,2,3", "--answer", "4", "--wrong", "6", "--sweep", "head_out",
         NULL},
        {"steer", "--tokens", "1,2,3", "--pos", "5", "--neg", "6", "--layer", "0", NULL},
        {"lens", "--tokens", "1,2,3", NULL},
        {"embed", "--tokens", "1,2,3", NULL},
    };
    *n = sizeof c / sizeof c[0];
    return &c[0][0];
}

static cli_result run_cmd(const char *const *cmd, const char *out, const char *const *extra) {
    const char *argv[40];
    int n = 0;
    argv[n++] = cmd[0];
    argv[n++] = "--model";
    argv[n++] = g_model;
    for (int i = 1; cmd[i]; i++) argv[n++] = strcmp(cmd[i], "@OUT") == 0 ? out : cmd[i];
    for (int i = 0; extra && extra[i]; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    return cli_run_argv(g_exe, argv);
}

static void test_no_gpu_every_command(void **state) {
    (void)state;
    if (g_gpus > 0) skip();
    size_t n;
    const char *const *c = commands(&n);
    char out[700];
    snprintf(out, sizeof out, "%s/never.h5", g_tmp);
    static const char *const dev[] = {"--device", "cuda", NULL};
    for (size_t i = 0; i < n; i++) {
        const char *const *cmd = c + i * 16;
        cli_result r = run_cmd(cmd, out, dev);
        cli_expect_status(&r, 1, cmd[0]);
        cli_expect_contains(r.err, "device cuda", cmd[0]);
        /* no GPU here: the module says so; no module: the loader names it */
        if (!strstr(r.err, "no CUDA device")) cli_expect_contains(r.err, "CUDA module", cmd[0]);
        cli_result_free(&r);
    }
    struct stat st;
    assert_int_not_equal(stat(out, &st), 0); /* cache made no file */
}

/* A refused cache --force keeps the file it would have replaced: bytes and mtime. */
static void test_refused_cache_keeps_file(void **state) {
    (void)state;
    if (g_gpus > 0) skip();
    char out[700];
    snprintf(out, sizeof out, "%s/keep.h5", g_tmp);
    write_text(out, "not replaced\n");
    struct stat before, after;
    assert_int_equal(stat(out, &before), 0);
    cli_result r = cli_run(g_exe, "cache", "--model", g_model, "--tokens", "1,2,3", "--hooks",
                           "blocks.0.hook_resid_post", "--out", out, "--force", "--device",
                           "cuda", NULL);
    cli_expect_status(&r, 1, "cache --force --device cuda");
    cli_result_free(&r);
    assert_int_equal(stat(out, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
    FILE *f = fopen(out, "r");
    char buf[64] = {0};
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "not replaced\n");
}

/* Over the CPU stand-in of the module (HK_CUDA_MODULE at libhookformer_cuda_fake.so): the
 * CUDA backend's runs print exactly what the CPU prints (f32 weights, the same kernels), and
 * bf16 weights run too. */
static void test_fake_module_matches_cpu(void **state) {
    (void)state;
    static const char *const cmds[][12] = {
        {"run", "--tokens", "1,2,3", NULL},
        {"generate", "--tokens", "1,2,3", "--max-new", "4", NULL},
        {"lens", "--tokens", "1,2,3", NULL},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        cli_result c = run_cmd(cmds[i], NULL, NULL);
        setenv("HK_CUDA_MODULE", HK_TEST_FAKE_MODULE, 1);
        static const char *const dev[] = {"--device", "cuda", NULL};
        cli_result g = run_cmd(cmds[i], NULL, dev);
        unsetenv("HK_CUDA_MODULE");
        cli_expect_status(&c, 0, cmds[i][0]);
        cli_expect_status(&g, 0, cmds[i][0]);
        assert_string_equal(g.out, c.out);
        cli_result_free(&c);
        cli_result_free(&g);
    }
    setenv("HK_CUDA_MODULE", HK_TEST_FAKE_MODULE, 1);
    cli_result r = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--device",
                           "cuda", "--weights-dtype", "bf16", NULL);
    unsetenv("HK_CUDA_MODULE");
    cli_expect_status(&r, 0, "run --device cuda --weights-dtype bf16 (stand-in module)");
    cli_result_free(&r);
}

/* --device cuda:N over the stand-in module with HK_TEST_DEVICES=2 "GPUs": cuda:1 prints what
 * the CPU prints (the backend made GPU 1 current for its stream and every op: the stand-in
 * fails an op queued on another device's stream); cuda:2 is refused naming the index and the
 * count, before the checkpoint is read, and a refused cache writes nothing. */
static void test_fake_module_device_index(void **state) {
    (void)state;
    static const char *const run[] = {"run", "--tokens", "1,2,3", NULL};
    cli_result c = run_cmd(run, NULL, NULL);
    cli_expect_status(&c, 0, "run (cpu)");
    setenv("HK_CUDA_MODULE", HK_TEST_FAKE_MODULE, 1);
    setenv("HK_TEST_DEVICES", "2", 1);
    static const char *const one[] = {"--device", "cuda:1", NULL};
    cli_result g = run_cmd(run, NULL, one);
    cli_expect_status(&g, 0, "run --device cuda:1 (stand-in module, 2 GPUs)");
    assert_string_equal(g.out, c.out);
    cli_result_free(&g);
    char out[700];
    snprintf(out, sizeof out, "%s/index.h5", g_tmp);
    static const char *const cache[] = {"cache", "--tokens", "1,2,3", "--hooks",
                                        "blocks.0.hook_resid_post", "--out", "@OUT", NULL};
    static const char *const two[] = {"--device", "cuda:2", NULL};
    cli_result r = run_cmd(cache, out, two);
    cli_expect_status(&r, 1, "cache --device cuda:2 (2 GPUs)");
    cli_expect_contains(r.err, "device cuda:2: index 2 is past the last GPU: the CUDA runtime "
                               "counts 2 (cuda:0 to cuda:1)",
                        "cache --device cuda:2");
    cli_result_free(&r);
    struct stat st;
    assert_int_not_equal(stat(out, &st), 0);
    setenv("HK_TEST_DEVICES", "1", 1);
    r = run_cmd(run, NULL, one);
    cli_expect_status(&r, 1, "run --device cuda:1 (1 GPU)");
    cli_expect_contains(r.err, "device cuda:1: index 1 is past the last GPU: the CUDA runtime "
                               "counts 1 (cuda:0)",
                        "run --device cuda:1");
    cli_result_free(&r);
    unsetenv("HK_TEST_DEVICES");
    unsetenv("HK_CUDA_MODULE");
    cli_result_free(&c);
}

/* With a GPU: the run succeeds on the device. */
static void test_gpu_runs(void **state) {
    (void)state;
    if (g_gpus == 0) skip();
    cli_result g = cli_run(g_exe, "run", "--model", g_model, "--tokens", "1,2,3", "--device",
                           "cuda", NULL);
    cli_expect_status(&g, 0, "run --device cuda");
    print_message("cuda:\n%s\n", g.out);
    cli_result_free(&g);
}

int main(int argc, char **argv) {
    g_exe = cli_exe_from_argv(argc, argv);
    if (!g_exe) return 2;
    make_tmpdir(g_tmp, sizeof g_tmp);
    fixture_path("gpt2", g_model, sizeof g_model);
    const hk_cu_api *cu = NULL;
    g_gpus = hk_cuda_module(&cu) == HK_OK ? cu->device_count() : 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_gpu_every_command),
        cmocka_unit_test(test_refused_cache_keeps_file),
        cmocka_unit_test(test_fake_module_matches_cpu),
        cmocka_unit_test(test_fake_module_device_index),
        cmocka_unit_test(test_gpu_runs),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed) remove_tree(g_tmp);
    return failed;
}
