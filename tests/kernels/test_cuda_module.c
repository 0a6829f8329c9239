/* The CUDA module loader (core/cuda_module.c): a missing or broken module is a clean error
 * naming the file (and dlerror's text); the real module, where built, loads and gives its
 * table. Each case runs in a forked child: a load that succeeded stays for the process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/cuda_module.h"
#include "hookformer.h"

/* Loads with HK_CUDA_MODULE=path in a child; returns the status, message into msg. */
static hk_status load_with(const char *path, char *msg, size_t cap) {
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        setenv(HK_CUDA_MODULE_ENV, path, 1);
        const hk_cu_api *api = (const hk_cu_api *)1;
        int st = (int)hk_cuda_module(&api);
        char buf[2048];
        snprintf(buf, sizeof buf, "%d|%d|%s", st, api == NULL, st ? hk_last_error() : "");
        ssize_t w = write(fd[1], buf, strlen(buf) + 1);
        _exit(w > 0 ? 0 : 1);
    }
    close(fd[1]);
    char buf[2048] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fd[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int st = -1, null_out = 0;
    char *p1 = strchr(buf, '|');
    assert_non_null(p1);
    char *p2 = strchr(p1 + 1, '|');
    assert_non_null(p2);
    st = atoi(buf);
    null_out = atoi(p1 + 1);
    snprintf(msg, cap, "%s", p2 + 1);
    if (st != HK_OK) assert_int_equal(null_out, 1); /* *out is NULL on failure */
    return (hk_status)st;
}

static void test_missing_file(void **state) {
    (void)state;
    char msg[2048];
    hk_status s = load_with("/nonexistent/dir/libhookformer_cuda.so", msg, sizeof msg);
    assert_int_equal(s, HK_ERR_NOT_FOUND);
    assert_non_null(strstr(msg, "/nonexistent/dir/libhookformer_cuda.so"));
    assert_non_null(strstr(msg, HK_CUDA_MODULE_ENV));
}

/* A file that is there but no shared object: dlopen's own words come back with the path. */
static void test_not_a_library(void **state) {
    (void)state;
    char path[] = "/tmp/hk_cuda_module_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not an ELF file\n", 16), 16);
    close(fd);
    char msg[2048];
    hk_status s = load_with(path, msg, sizeof msg);
    unlink(path);
    assert_int_equal(s, HK_ERR_IO);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "dlopen failed"));
    /* dlerror's text follows: "file too short" (or "invalid ELF header" for longer files) */
    assert_true(strstr(msg, "too short") || strstr(msg, "header"));
}

/* A real shared object without the table symbol (libm, which every test links). */
static void test_no_symbol(void **state) {
    (void)state;
    const char *cands[] = {"/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                           "/lib64/libm.so.6"};
    const char *lib = NULL;
    for (size_t i = 0; i < sizeof cands / sizeof *cands && !lib; i++)
        if (access(cands[i], R_OK) == 0) lib = cands[i];
    if (!lib) skip();
    char msg[2048];
    hk_status s = load_with(lib, msg, sizeof msg);
    assert_int_equal(s, HK_ERR_FORMAT);
    assert_non_null(strstr(msg, lib));
    assert_non_null(strstr(msg, HK_CU_API_SYMBOL_NAME));
}

/* The module of this build (where nvcc built one) loads and its table is complete. */
static void test_real_module(void **state) {
    (void)state;
#ifdef HK_TEST_CUDA_MODULE
    char msg[2048];
    hk_status s = load_with(HK_TEST_CUDA_MODULE, msg, sizeof msg);
    if (s != HK_OK) print_error("%s\n", msg);
    assert_int_equal(s, HK_OK);
    const hk_cu_api *api = NULL;
    setenv(HK_CUDA_MODULE_ENV, HK_TEST_CUDA_MODULE, 1);
    assert_int_equal(hk_cuda_module(&api), HK_OK);
    assert_non_null(api);
    assert_int_equal(api->version, HK_CU_API_VERSION);
    assert_non_null(api->attention);
    assert_non_null(api->embed_typed);
    const hk_cu_api *again = NULL;
    assert_int_equal(hk_cuda_module(&again), HK_OK);
    assert_ptr_equal(api, again);
    assert_string_equal(hk_cuda_module_path(), HK_TEST_CUDA_MODULE);
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_not_a_library),
        cmocka_unit_test(test_no_symbol),
        cmocka_unit_test(test_real_module),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
