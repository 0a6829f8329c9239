/* `hookformer run --plugin`, run as a child process: a probe's table after the top-k table,
 * several plugins in order, a plugin that stops the forward, and load errors (exit 1, the
 * message naming the path). Paths come from the environment: HK_HOOKFORMER, HK_FIXTURES,
 * HK_PLUGIN_<NAME> (tests/plugins/meson.build). */
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

static const char *env(const char *name) {
    const char *v = getenv(name);
    if (!v) fail_msg("%s is not set (run through meson test)", name);
    return v;
}

typedef struct {
    int status; /* exit status, or -signal */
    char *out, *err;
} cli_result;

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

static int temp_fd(void) {
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/hk-plugin-cli-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* Run `hookformer ARGS...` (NULL-terminated), capturing stdout and stderr. */
static cli_result run_cli(const char *arg0, ...) {
    const char *argv[64];
    int n = 0;
    argv[n++] = env("HK_HOOKFORMER");
    va_list ap;
    va_start(ap, arg0);
    for (const char *s = arg0; s; s = va_arg(ap, const char *)) {
        assert_true(n < 63);
        argv[n++] = s;
    }
    va_end(ap);
    argv[n] = NULL;

    int out_fd = temp_fd(), err_fd = temp_fd();
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO), 0);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    cli_result r = {.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -WTERMSIG(ws),
                    .out = slurp_fd(out_fd),
                    .err = slurp_fd(err_fd)};
    close(out_fd);
    close(err_fd);
    return r;
}

static void free_result(cli_result *r) {
    free(r->out);
    free(r->err);
}

static void expect_status(const cli_result *r, int want, const char *what) {
    if (r->status != want)
        print_error("%s: exit status %d, expected %d\n--- stdout:\n%s--- stderr:\n%s\n", what,
                    r->status, want, r->out, r->err);
    assert_int_equal(r->status, want);
}

static const char *expect_contains(const char *hay, const char *needle, const char *what) {
    const char *at = strstr(hay, needle);
    if (!at) print_error("%s: '%s' not found in:\n%s\n", what, needle, hay);
    assert_non_null(at);
    return at;
}

static char g_model[4096];

static void test_probe_table(void **unused) {
    (void)unused;
    const char *so = env("HK_PLUGIN_RESID_NORMS");
    cli_result r = run_cli("run", "--model", g_model, "--tokens", "1,2,3", "--top-k", "3",
                           "--plugin", so, NULL);
    expect_status(&r, 0, "run --plugin resid_norms");
    assert_string_equal(r.err, "");
    const char *table = expect_contains(r.out, "rank   token_id", "top-k table");
    const char *norms = expect_contains(r.out, "# resid_norms: L2 norm of "
                                               "blocks.*.hook_resid_post, mean over the valid "
                                               "positions", "norms");
    assert_true(norms > table); /* finish output comes after the table */
    expect_contains(norms, "layer", "norms header");
    expect_contains(norms, "seq 0", "norms header");
    /* one row per layer (the fixture has 2) with a positive norm */
    const char *row = strchr(norms, '\n') + 1;
    row = strchr(row, '\n') + 1;
    for (int l = 0; l < 2; l++) {
        int layer;
        double v;
        assert_int_equal(sscanf(row, "%d %lf", &layer, &v), 2);
        assert_int_equal(layer, l);
        assert_true(v > 0);
        row = strchr(row, '\n') + 1;
    }
    assert_string_equal(row, "");
    free_result(&r);
}

/* Several plugins, in order: the ablation changes the top-k, both summaries follow. */
static void test_plugins_in_order(void **unused) {
    (void)unused;
    cli_result plain = run_cli("run", "--model", g_model, "--tokens", "1,2,3", "--top-k", "3",
                               NULL);
    expect_status(&plain, 0, "plain run");
    char norms[4096], ablate[4096];
    snprintf(norms, sizeof norms, "%s:pos=last", env("HK_PLUGIN_RESID_NORMS"));
    snprintf(ablate, sizeof ablate, "%s:heads=0.0+0.1+0.2+0.3+1.0+1.1+1.2+1.3",
             env("HK_PLUGIN_ABLATE_HEADS"));
    cli_result r = run_cli("run", "--model", g_model, "--tokens", "1,2,3", "--top-k", "3",
                           "--plugin", norms, "--plugin", ablate, NULL);
    expect_status(&r, 0, "two plugins");
    const char *n = expect_contains(r.out, "# resid_norms:", "two plugins");
    expect_contains(n, "at the last valid position", "pos=last");
    const char *a = expect_contains(r.out, "# ablate_heads: zeroed 8 heads: 0.0 0.1", "ablate");
    assert_true(a > n);
    /* every head zeroed: the top-k is not the plain run's */
    const char *t1 = strstr(plain.out, "rank"), *t2 = strstr(r.out, "rank");
    assert_non_null(t1);
    assert_non_null(t2);
    size_t len1 = strcspn(t1, "#"), len2 = strcspn(t2, "#"); /* the tables only */
    assert_false(len1 == len2 && strncmp(t1, t2, len1) == 0);
    free_result(&r);
    free_result(&plain);
}

static void test_stopped(void **unused) {
    (void)unused;
    char spec[4096];
    snprintf(spec, sizeof spec, "%s:at=blocks.1.hook_resid_pre", env("HK_PLUGIN_STOP_AT"));
    cli_result r = run_cli("run", "--model", g_model, "--tokens", "1,2,3", "--plugin", spec,
                           NULL);
    expect_status(&r, 0, "stopped run");
    expect_contains(r.out, "stopped early, the hook at 'blocks.1.hook_resid_pre' stopped the "
                           "forward; no logits, no top-k", "stopped run");
    assert_null(strstr(r.out, "rank"));
    expect_contains(r.out, "# stop_at: finished", "stopped run");
    assert_string_equal(r.err, "");
    free_result(&r);
}

static void test_load_errors(void **unused) {
    (void)unused;
    cli_result r = run_cli("run", "--model", g_model, "--tokens", "1,2,3", "--plugin",
                           "/nonexistent.so", NULL);
    expect_status(&r, 1, "--plugin /nonexistent.so");
    expect_contains(r.err, "hookformer run: --plugin /nonexistent.so: cannot load plugin: "
                           "/nonexistent.so: ", "--plugin /nonexistent.so");
    assert_null(strstr(r.out, "rank"));
    free_result(&r);

    char spec[4096];
    snprintf(spec, sizeof spec, "%s:foo", env("HK_PLUGIN_RESID_NORMS"));
    r = run_cli("run", "--model", g_model, "--tokens", "1,2,3", "--plugin", spec, NULL);
    expect_status(&r, 1, "malformed spec");
    char want[4200];
    snprintf(want, sizeof want, "hookformer run: --plugin %s: argument 1, 'foo': expected "
                                "key=value", spec);
    expect_contains(r.err, want, "malformed spec");
    free_result(&r);

    snprintf(spec, sizeof spec, "%s:heads=7.0", env("HK_PLUGIN_ABLATE_HEADS"));
    r = run_cli("run", "--model", g_model, "--tokens", "1,2,3", "--plugin", spec, NULL);
    expect_status(&r, 1, "bad heads");
    expect_contains(r.err, "ablate_heads: head '7.0': layer 7 is out of range", "bad heads");
    free_result(&r);

    r = run_cli("run", "--model", g_model, "--tokens", "1,2,3", "--plugin",
                env("HK_PLUGIN_BAD_ABI"), NULL);
    expect_status(&r, 1, "bad abi");
    expect_contains(r.err, "built for plugin ABI 999, this hookformer speaks 1", "bad abi");
    free_result(&r);

    r = run_cli("run", "--model", g_model, "--tokens", "1,2,3", "--plugin", "", NULL);
    expect_status(&r, 2, "empty --plugin");
    expect_contains(r.err, "--plugin: expected PATH[:key=value,...], got ''", "empty --plugin");
    free_result(&r);
}

static void test_help(void **unused) {
    (void)unused;
    cli_result r = run_cli("run", "--help", NULL);
    expect_status(&r, 0, "run --help");
    expect_contains(r.out, "--plugin SPEC", "run --help");
    expect_contains(r.out, "docs/PLUGINS.md", "run --help");
    free_result(&r);
}

int main(void) {
    snprintf(g_model, sizeof g_model, "%s/gpt2", env("HK_FIXTURES"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_table),
        cmocka_unit_test(test_plugins_in_order),
        cmocka_unit_test(test_stopped),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
