/* CPU runs never load CUDA: `hookformer --help` and a fixture run peak under 32 MiB of
 * resident memory (getrusage of the child: ru_maxrss). Linking libcudart/libcublas put both
 * at ~210-230 MiB. Skips under AddressSanitizer (its shadow memory is counted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mem_util.h"

#define RSS_LIMIT_KIB (32 * 1024)

static const char *exe;

/* Peak RSS of the child running argv (stdout and stderr to /dev/null), in KiB; its exit
 * status in *rc. */
static long child_peak_kib(char *const argv[], int *rc) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    assert_int_equal(wait4(pid, &status, 0, &ru), pid);
    *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return ru.ru_maxrss;
}

static void expect_small(char *const argv[], const char *what) {
    if (MEM_UNDER_ASAN) skip();
    int rc = -1;
    long kib = child_peak_kib(argv, &rc);
    print_message("%s: peak RSS %.1f MiB\n", what, kib / 1024.0);
    assert_int_equal(rc, 0);
    if (kib >= RSS_LIMIT_KIB) {
        print_error("%s: peak RSS %ld KiB >= %d KiB\n", what, kib, RSS_LIMIT_KIB);
        fail();
    }
}

static void test_help(void **state) {
    (void)state;
    char *argv[] = {(char *)exe, "--help", NULL};
    expect_small(argv, "hookformer --help");
}

static void test_fixture_run(void **state) {
    (void)state;
    char model[1024];
    const char *fx = getenv("HK_FIXTURES");
    if (!fx) fx = "tests/fixtures";
    snprintf(model, sizeof model, "%s/gpt2", fx);
    char *argv[] = {(char *)exe, "run", "--model", model, "--tokens", "1,2,3", NULL};
    expect_small(argv, "hookformer run --model gpt2 --tokens 1,2,3");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_cpu_rss HOOKFORMER\n");
        return 2;
    }
    exe = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_fixture_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
