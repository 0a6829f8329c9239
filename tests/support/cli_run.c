/* tests/support/cli_run.h: posix_spawn with stdout/stderr dup'ed onto temp files. */
#include "cli_run.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *cli_exe_from_argv(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_HOOKFORMER\n", argv[0]);
        return NULL;
    }
    return argv[1];
}

/* The whole of a temp file, from its start, NUL-terminated. */
static char *slurp_fd(int fd) {
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    buf[got] = '\0';
    return buf;
}

/* An open, already unlinked temp file under $TMPDIR (or /tmp). */
static int temp_fd(void) {
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/hk-cli-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

cli_result cli_run_argv(const char *exe, const char *const *args) {
    const char *argv[CLI_MAX_ARGS + 2];
    int n = 0;
    argv[n++] = exe;
    for (; *args; args++) {
        assert_true(n <= CLI_MAX_ARGS);
        argv[n++] = *args;
    }
    argv[n] = NULL;

    int out_fd = temp_fd(), err_fd = temp_fd();
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO), 0);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);

    cli_result r;
    r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -WTERMSIG(ws);
    r.out = slurp_fd(out_fd);
    r.err = slurp_fd(err_fd);
    close(out_fd);
    close(err_fd);
    return r;
}

cli_result cli_run(const char *exe, ...) {
    const char *args[CLI_MAX_ARGS + 1];
    int n = 0;
    va_list ap;
    va_start(ap, exe);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
        assert_true(n < CLI_MAX_ARGS);
        args[n++] = s;
    }
    va_end(ap);
    args[n] = NULL;
    return cli_run_argv(exe, args);
}

void cli_result_free(cli_result *r) {
    free(r->out);
    free(r->err);
}

void cli_expect_status(const cli_result *r, int want, const char *what) {
    if (r->status != want)
        print_error("%s: exit status %d, expected %d\n--- stdout:\n%s--- stderr:\n%s\n", what,
                    r->status, want, r->out, r->err);
    assert_int_equal(r->status, want);
}

const char *cli_expect_contains(const char *hay, const char *needle, const char *what) {
    const char *at = strstr(hay, needle);
    if (!at) print_error("%s: '%s' not found in:\n%s\n", what, needle, hay);
    assert_non_null(at);
    return at;
}
