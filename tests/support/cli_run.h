/* Run an executable (the hookformer CLI) as a child process with stdout and stderr captured,
 * and check what it did. Every failure is a cmocka failure of the running test.
 *
 * Needs only libc and cmocka: tests that do not link libhookformer may use it. */
#ifndef HK_TESTS_SUPPORT_CLI_RUN_H
#define HK_TESTS_SUPPORT_CLI_RUN_H

/* Arguments after argv[0] that one run takes at the most. */
#define CLI_MAX_ARGS 62

typedef struct {
    int status; /* exit status, or -signal when killed by a signal */
    char *out;  /* stdout, NUL-terminated */
    char *err;  /* stderr, NUL-terminated */
} cli_result;

#if defined(__GNUC__)
#define CLI_SENTINEL __attribute__((sentinel))
#else
#define CLI_SENTINEL
#endif

/* The executable a test was given as its one argument (meson passes the built hookformer:
 * `test(..., args: [hookformer_exe])`); NULL, after a usage line on stderr, otherwise. */
const char *cli_exe_from_argv(int argc, char **argv);

/* Run `exe ARGS...`, the arguments after argv[0] given NULL-terminated, in the test's
 * environment, with stdout and stderr in unlinked files under $TMPDIR (or /tmp); wait for it.
 * cli_run(exe, NULL) runs it without arguments. Free the result with cli_result_free. */
cli_result cli_run(const char *exe, ...) CLI_SENTINEL;
/* The same with the arguments as a NULL-terminated array. */
cli_result cli_run_argv(const char *exe, const char *const *args);
void cli_result_free(cli_result *r);

/* Assert the exit status; on a mismatch print `what`, both statuses and the output. */
void cli_expect_status(const cli_result *r, int want, const char *what);
/* Assert that `needle` occurs in `hay` (printing `what` and `hay` when not); return where. */
const char *cli_expect_contains(const char *hay, const char *needle, const char *what);

#endif
