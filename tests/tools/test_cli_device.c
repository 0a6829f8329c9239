/* --device and --weights-dtype, parsed once in tools/device.c for every command that loads a
 * model: bad values are usage errors listing the valid ones; --device cuda without a CUDA
 * backend is a runtime error naming what is missing, which leaves no output file (estimate,
 * which plans a device run, needs none); the
 * test-only --device test prints what --device cpu prints. */
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli_run.h"
#include "fixtures.h"

static const char *exe;

static const char *const commands[] = {"run",   "generate", "cache", "patch",   "ablate",
                                       "steer", "lens",     "embed", "estimate"};

static void test_bad_values(void **state) {
    (void)state;
    char gpt2[1024];
    fixture_path("gpt2", gpt2, sizeof gpt2);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        cli_result r = cli_run(exe, commands[i], "--model", gpt2, "--device", "gpu", NULL);
        cli_expect_status(&r, 2, commands[i]);
        cli_expect_contains(r.err, "--device 'gpu': expected cpu or cuda", commands[i]);
        cli_result_free(&r);
        r = cli_run(exe, commands[i], "--model", gpt2, "--weights-dtype", "f8", NULL);
        cli_expect_status(&r, 2, commands[i]);
        cli_expect_contains(r.err, "--weights-dtype 'f8': expected f32, f16 or bf16",
                            commands[i]);
        cli_result_free(&r);
    }
}

static void test_cuda_missing(void **state) {
    (void)state;
    char gpt2[1024], bert[1024], dir[] = "/tmp/hk_cli_device_XXXXXX", out[1100];
    fixture_path("gpt2", gpt2, sizeof gpt2);
    fixture_path("bert", bert, sizeof bert);
    assert_non_null(mkdtemp(dir));
    snprintf(out, sizeof out, "%s/acts.h5", dir);
    const char *const runs[][12] = {
        {"run", "--model", gpt2, "--tokens", "1,2,3", NULL},
        {"generate", "--model", gpt2, "--tokens", "1,2,3", "--max-new", "2", NULL},
        {"cache", "--model", gpt2, "--tokens", "1,2,3", "--hooks", "hook_embed", "--out", out,
         NULL},
        {"lens", "--model", gpt2, "--tokens", "1,2,3", NULL},
        {"embed", "--model", bert, "--tokens", "1,2,3", NULL},
    };
    /* the CUDA module missing where HK_CUDA_MODULE points (a build with a GPU machine's
     * module would run; test_cli_cuda.c covers the no-GPU case) */
    setenv("HK_CUDA_MODULE", "/nonexistent/libhookformer_cuda.so", 1);
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        const char *args[16];
        size_t n = 0;
        while (runs[i][n]) {
            args[n] = runs[i][n];
            n++;
        }
        args[n++] = "--device";
        args[n++] = "cuda";
        args[n] = NULL;
        cli_result r = cli_run_argv(exe, args);
        cli_expect_status(&r, 1, runs[i][0]);
        cli_expect_contains(r.err, "device cuda: CUDA module /nonexistent/libhookformer_cuda.so",
                            runs[i][0]);
        cli_result_free(&r);
    }
    unsetenv("HK_CUDA_MODULE");
    struct stat st;
    assert_int_not_equal(stat(out, &st), 0); /* the refused cache wrote nothing */
    /* estimate plans a GPU run from the checkpoint: it needs no GPU */
    cli_result e = cli_run(exe, "estimate", "--model", gpt2, "--ctx", "16", "--device", "cuda",
                           NULL);
    cli_expect_status(&e, 0, "estimate --device cuda");
    cli_expect_contains(e.out, "cuda", "estimate --device cuda");
    cli_result_free(&e);
    rmdir(dir);
    /* the CPU computes in f32 */
    cli_result r = cli_run(exe, "run", "--model", gpt2, "--tokens", "1,2,3", "--weights-dtype",
                           "bf16", NULL);
    cli_expect_status(&r, 1, "run --weights-dtype bf16");
    cli_expect_contains(r.err, "weights_dtype BF16", "run --weights-dtype bf16");
    cli_result_free(&r);
}

static void test_test_device_same_output(void **state) {
    (void)state;
    char gpt2[1024];
    fixture_path("gpt2", gpt2, sizeof gpt2);
    cli_result c = cli_run(exe, "run", "--model", gpt2, "--tokens", "5,1,9,3", "--device", "cpu",
                           NULL);
    cli_result t = cli_run(exe, "run", "--model", gpt2, "--tokens", "5,1,9,3", "--device", "test",
                           NULL);
    cli_expect_status(&c, 0, "run --device cpu");
    cli_expect_status(&t, 0, "run --device test");
    assert_string_equal(c.out, t.out);
    cli_result_free(&c);
    cli_result_free(&t);
}

int main(int argc, char **argv) {
    if (!(exe = cli_exe_from_argv(argc, argv))) return 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_cuda_missing),
        cmocka_unit_test(test_test_device_same_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
