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

#include <dlfcn.h>
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>

#include "core/cuda_module.h"
#include "core/cuda_module_path.h"
#include "hookformer.h"

/* argv[1] of a copy of this program run as an "installed" binary: report what it loads */
#define REPORT_ARG "--report-cuda-module"

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

/* ---- where the module is looked for (core/cuda_module_path.c) ---- */

static const hk_cuda_module_layout fake = {
    .build_root = "/work/src/build",
    .build_module = "/work/src/build/libhookformer_cuda.so",
    .install_module = "/usr/local/lib/x86_64-linux-gnu/hookformer/libhookformer_cuda.so",
    .from_libdir = "hookformer/libhookformer_cuda.so",
    .from_bindir = "../lib/x86_64-linux-gnu/hookformer/libhookformer_cuda.so",
};

/* A program in the build tree takes the build tree's module first. */
static void test_order_in_build_tree(void **state) {
    (void)state;
    char out[HK_CUDA_MODULE_MAX_CANDIDATES][HK_CUDA_MODULE_PATH_MAX];
    int n = hk_cuda_module_candidates(&fake, "/work/src/build/tools/hookformer", true, out);
    assert_int_equal(n, 2);
    assert_string_equal(out[0], fake.build_module);
    assert_string_equal(out[1], fake.install_module);
    n = hk_cuda_module_candidates(&fake, "/work/src/build", true, out);
    assert_int_equal(n, 2);
    assert_string_equal(out[0], fake.build_module);
}

/* An installed program (libhookformer linked in) takes the module beside its bindir, then the
 * configured install path, and never the build tree's; a sibling of the build directory whose
 * name starts the same is not inside it. */
static void test_order_installed_exe(void **state) {
    (void)state;
    char out[HK_CUDA_MODULE_MAX_CANDIDATES][HK_CUDA_MODULE_PATH_MAX];
    const char *selves[] = {"/opt/hk/bin/hookformer", "/work/src/build2/hookformer"};
    const char *want[] = {"/opt/hk/bin/../lib/x86_64-linux-gnu/hookformer/libhookformer_cuda.so",
                          "/work/src/build2/../lib/x86_64-linux-gnu/hookformer/"
                          "libhookformer_cuda.so"};
    for (int i = 0; i < 2; i++) {
        int n = hk_cuda_module_candidates(&fake, selves[i], true, out);
        assert_int_equal(n, 2);
        assert_string_equal(out[0], want[i]);
        assert_string_equal(out[1], fake.install_module);
    }
}

/* An installed libhookformer.so: the module in its directory's hookformer/; another shared
 * object with libhookformer linked in (no relative rule): the install path only. */
static void test_order_installed_library(void **state) {
    (void)state;
    char out[HK_CUDA_MODULE_MAX_CANDIDATES][HK_CUDA_MODULE_PATH_MAX];
    int n = hk_cuda_module_candidates(&fake, "/opt/hk/lib64/libhookformer.so.0.1.0", false, out);
    assert_int_equal(n, 2);
    assert_string_equal(out[0], "/opt/hk/lib64/hookformer/libhookformer_cuda.so");
    assert_string_equal(out[1], fake.install_module);
    n = hk_cuda_module_candidates(&fake, "/opt/py/_hookformer.cpython-311.so", false, out);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], fake.install_module);
    /* the relative path names the install path itself: tried once */
    n = hk_cuda_module_candidates(&fake, "/usr/local/lib/x86_64-linux-gnu/libhookformer.so",
                                  false, out);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], fake.install_module);
    /* unknown self: the install path before the build tree's */
    n = hk_cuda_module_candidates(&fake, NULL, false, out);
    assert_int_equal(n, 2);
    assert_string_equal(out[0], fake.install_module);
    assert_string_equal(out[1], fake.build_module);
    /* a build without CUDA has no build module */
    hk_cuda_module_layout cpu = fake;
    cpu.build_module = NULL;
    n = hk_cuda_module_candidates(&cpu, "/work/src/build/tests/x", true, out);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], fake.install_module);
}

/* dladdr finds this (statically linked) test program, and libhookformer.so when the code
 * runs from there. */
static void test_self(void **state) {
    (void)state;
    char self[HK_CUDA_MODULE_PATH_MAX], exe[PATH_MAX];
    bool is_exe = false;
    assert_true(hk_cuda_module_self(self, &is_exe));
    assert_true(is_exe);
    assert_non_null(realpath("/proc/self/exe", exe));
    assert_string_equal(self, exe);
#ifdef HK_TEST_SHARED_LIB
    void *h = dlopen(HK_TEST_SHARED_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!h) fail_msg("dlopen %s: %s", HK_TEST_SHARED_LIB, dlerror());
    bool (*fn)(char *, bool *);
    void *sym = dlsym(h, "hk_cuda_module_self");
    assert_non_null(sym);
    memcpy(&fn, &sym, sizeof fn);
    char lib[PATH_MAX];
    assert_non_null(realpath(HK_TEST_SHARED_LIB, lib));
    assert_true(fn(self, &is_exe));
    assert_false(is_exe);
    assert_string_equal(self, lib);
    /* h stays open: after a dlclose LeakSanitizer counts the library's process-lifetime
     * allocations (8 bytes) as leaked */
#endif
}

/* ---- an installed copy of this program, with the build tree still there ---- */

static void mkdirs(const char *path) { /* mkdir -p of path's directory */
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        if (mkdir(p, 0755) != 0) assert_true(access(p, F_OK) == 0);
        *s = '/';
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void copy_file(const char *from, const char *to, mode_t mode) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(to, mode), 0);
}

/* Runs exe REPORT_ARG (HK_CUDA_MODULE unset); its report "status|path|message" into out. */
static int run_report(const char *exe, char *out, size_t cap) {
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 1);
        unsetenv(HK_CUDA_MODULE_ENV);
        execl(exe, exe, REPORT_ARG, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while (got < cap - 1 && (r = read(fd[0], out + got, cap - 1 - got)) > 0) got += (size_t)r;
    out[got] = '\0';
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return atoi(out);
}

/* A copy of this program outside the build tree is an installed binary: it looks for the
 * module installed beside it (<bindir>/../<libdir>/hookformer/), not in the build tree. */
static void test_installed_copy(void **state) {
    (void)state;
    const hk_cuda_module_layout *l = hk_cuda_module_layout_built();
    if (!l->from_bindir || l->from_bindir[0] == '/') skip(); /* an absolute libdir */
    char root[] = "/tmp/hk_installed_XXXXXX";
    assert_non_null(mkdtemp(root));
    char exe[PATH_MAX], module[PATH_MAX], report[8192];
    snprintf(exe, sizeof exe, "%s/bin/test_cuda_module", root);
    snprintf(module, sizeof module, "%s/bin/%s", root, l->from_bindir);
    mkdirs(exe);
    mkdirs(module);
    copy_file("/proc/self/exe", exe, 0755);

    /* no module installed: not found, naming the installed place; the build tree's module
     * (present in a CUDA build) is not taken */
    int st = run_report(exe, report, sizeof report);
    assert_int_equal(st, HK_ERR_NOT_FOUND);
    assert_non_null(strstr(report, module));
    if (l->build_module) assert_null(strstr(report, l->build_module));

    /* a broken file there: it is the one dlopen tries */
    FILE *f = fopen(module, "wb");
    assert_non_null(f);
    fputs("not an ELF file\n", f);
    fclose(f);
    st = run_report(exe, report, sizeof report);
    assert_int_equal(st, HK_ERR_IO);
    assert_non_null(strstr(report, module));
    assert_non_null(strstr(report, "dlopen failed"));

#ifdef HK_TEST_CUDA_MODULE
    /* the real module installed there loads from there */
    copy_file(HK_TEST_CUDA_MODULE, module, 0755);
    st = run_report(exe, report, sizeof report);
    if (st != HK_OK) print_error("%s\n", report);
    assert_int_equal(st, HK_OK);
    char *path = strchr(report, '|') + 1;
    *strchr(path, '|') = '\0';
    assert_string_equal(path, module);
#endif
    assert_int_equal(nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    assert_int_not_equal(access(root, F_OK), 0);
}

/* The copy's side of test_installed_copy. */
static int report(void) {
    const hk_cu_api *api = NULL;
    hk_status st = hk_cuda_module(&api);
    printf("%d|%s|%s", (int)st, hk_cuda_module_path(), st ? hk_last_error() : "");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], REPORT_ARG) == 0) return report();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_not_a_library),
        cmocka_unit_test(test_no_symbol),
        cmocka_unit_test(test_real_module),
        cmocka_unit_test(test_order_in_build_tree),
        cmocka_unit_test(test_order_installed_exe),
        cmocka_unit_test(test_order_installed_library),
        cmocka_unit_test(test_self),
        cmocka_unit_test(test_installed_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
