/* --device and --weights-dtype, parsed once in tools/device.c for every command that loads a
 * model: bad values are usage errors listing the valid ones; --device cuda without a CUDA
 * backend is a runtime error naming what is missing, which leaves no output file (estimate,
 * which plans a device run, needs none); the
 * test-only --device test prints what --device cpu prints; device indices (cuda:N, test:N):
 * malformed ones are usage errors, one past the devices a runtime error naming both numbers,
 * and the store records the device it ran on. */
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
#include <hdf5.h>

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
        cli_expect_contains(r.err, "--device 'gpu': expected cpu, cuda or cuda:N", commands[i]);
        cli_result_free(&r);
        /* device indices: a number >= 0 after the colon, none for the CPU */
        static const char *const bad[][2] = {
            {"cuda:", "--device 'cuda:': no index after ':' (expected cuda:N, N = 0, 1, ...)"},
            {"cuda:-1", "--device 'cuda:-1': the index '-1' is not a number >= 0"},
            {"cuda:x", "--device 'cuda:x': the index 'x' is not a number >= 0"},
            {"cuda:1x", "--device 'cuda:1x': the index '1x' is not a number >= 0"},
            {"test:", "--device 'test:': no index after ':' (expected test:N"},
            {"cpu:1", "--device 'cpu:1': the CPU is one device, without an index"},
            {"cuda:99999999999", "--device 'cuda:99999999999': index past 1023"},
            {"cuda0", "--device 'cuda0': expected cpu, cuda or cuda:N"},
        };
        for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
            r = cli_run(exe, commands[i], "--model", gpt2, "--device", bad[k][0], NULL);
            cli_expect_status(&r, 2, bad[k][0]);
            cli_expect_contains(r.err, bad[k][1], commands[i]);
            cli_result_free(&r);
        }
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

/* The store's root attribute `device` ("" when absent or unreadable). */
static void device_attr(const char *path, char *out, size_t n) {
    out[0] = '\0';
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return;
    if (H5Aexists(f, "device") > 0) {
        hid_t a = H5Aopen(f, "device", H5P_DEFAULT), t = H5Aget_type(a);
        char *v = NULL;
        if (H5Tis_variable_str(t) > 0 && H5Aread(a, t, &v) >= 0 && v) {
            snprintf(out, n, "%s", v);
            H5free_memory(v);
        }
        H5Tclose(t);
        H5Aclose(a);
    }
    H5Fclose(f);
}

/* --device test:N: the test backend's device N of HK_TEST_DEVICES (default 1). Past the last
 * one the load is refused naming the index and the count, before the checkpoint is read, and
 * nothing is written; below it the run prints what the CPU prints and the store records the
 * device in its `device` attribute. A bad HK_TEST_DEVICES is named. */
static void test_device_index(void **state) {
    (void)state;
    char gpt2[1024], dir[] = "/tmp/hk_cli_index_XXXXXX", out[1100];
    fixture_path("gpt2", gpt2, sizeof gpt2);
    assert_non_null(mkdtemp(dir));
    snprintf(out, sizeof out, "%s/acts.h5", dir);
    unsetenv("HK_TEST_DEVICES");
    cli_result r = cli_run(exe, "cache", "--model", gpt2, "--tokens", "1,2,3", "--hooks",
                           "hook_embed", "--out", out, "--device", "test:1", NULL);
    cli_expect_status(&r, 1, "cache --device test:1 (1 test device)");
    cli_expect_contains(r.err, "device test:1: index 1 is past the last test device: there is 1 "
                               "(test:0; HK_TEST_DEVICES=N makes N)",
                        "cache --device test:1");
    cli_result_free(&r);
    struct stat st;
    assert_int_not_equal(stat(out, &st), 0);
    /* said before the checkpoint is read: a model path that does not exist is not the error */
    setenv("HK_TEST_DEVICES", "2", 1);
    r = cli_run(exe, "run", "--model", "/nonexistent/model", "--tokens", "1", "--device",
                "test:2", NULL);
    cli_expect_status(&r, 1, "run --device test:2 (2 test devices)");
    cli_expect_contains(r.err, "device test:2: index 2 is past the last test device: "
                               "HK_TEST_DEVICES=2 makes 2 (test:0 to test:1)",
                        "run --device test:2");
    cli_result_free(&r);
    cli_result c = cli_run(exe, "run", "--model", gpt2, "--tokens", "5,1,9,3", NULL);
    cli_result t = cli_run(exe, "run", "--model", gpt2, "--tokens", "5,1,9,3", "--device",
                           "test:1", NULL);
    cli_expect_status(&c, 0, "run");
    cli_expect_status(&t, 0, "run --device test:1");
    assert_string_equal(c.out, t.out);
    cli_result_free(&c);
    cli_result_free(&t);
    /* the store says where it was made */
    const char *const devs[][2] = {{"test:1", "test:1"}, {"test", "test:0"}, {"test:0", "test:0"},
                                   {NULL, NULL}};
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) {
        const char *args[16] = {"cache", "--model", gpt2, "--tokens", "1,2,3", "--hooks",
                                "hook_embed", "--out", out, "--force"};
        size_t n = 10;
        if (devs[i][0]) {
            args[n++] = "--device";
            args[n++] = devs[i][0];
        }
        args[n] = NULL;
        r = cli_run_argv(exe, args);
        cli_expect_status(&r, 0, devs[i][0] ? devs[i][0] : "cache (default device)");
        cli_result_free(&r);
        /* the default is the CPU, or the devtest setup's HK_DEVICE=test */
        const char *env = getenv("HK_DEVICE");
        const char *want = devs[i][1] ? devs[i][1] : env && !strcmp(env, "test") ? "test:0" : "cpu";
        char got[64];
        device_attr(out, got, sizeof got);
        assert_string_equal(got, want);
    }
    /* the devtest setup's HK_DEVICE takes an index too: every CPU load on that test device */
    const char *saved = getenv("HK_DEVICE");
    char keep[64] = "";
    if (saved) snprintf(keep, sizeof keep, "%s", saved);
    setenv("HK_DEVICE", "test:1", 1);
    r = cli_run(exe, "cache", "--model", gpt2, "--tokens", "1,2,3", "--hooks", "hook_embed",
                "--out", out, "--force", NULL);
    cli_expect_status(&r, 0, "HK_DEVICE=test:1 cache");
    cli_result_free(&r);
    char got[64];
    device_attr(out, got, sizeof got);
    assert_string_equal(got, "test:1");
    if (saved) setenv("HK_DEVICE", keep, 1);
    else unsetenv("HK_DEVICE");
    unlink(out);
    setenv("HK_TEST_DEVICES", "two", 1);
    r = cli_run(exe, "run", "--model", gpt2, "--tokens", "1", "--device", "test", NULL);
    cli_expect_status(&r, 1, "HK_TEST_DEVICES=two");
    cli_expect_contains(r.err, "environment HK_TEST_DEVICES='two': expected a number of test "
                               "devices, 0 to 1024",
                        "HK_TEST_DEVICES=two");
    cli_result_free(&r);
    setenv("HK_TEST_DEVICES", "0", 1);
    r = cli_run(exe, "run", "--model", gpt2, "--tokens", "1", "--device", "test", NULL);
    cli_expect_status(&r, 1, "HK_TEST_DEVICES=0");
    cli_expect_contains(r.err, "device test: no test device (HK_TEST_DEVICES=0)",
                        "HK_TEST_DEVICES=0");
    cli_result_free(&r);
    unsetenv("HK_TEST_DEVICES");
    rmdir(dir);
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
        cmocka_unit_test(test_device_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
