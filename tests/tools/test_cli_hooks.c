/* `hookformer hooks`, run as a child process: help, usage and runtime errors, and the listing
 * of every fixture model against the library's own table of hook points.
 *
 * usage: test_cli_hooks PATH_TO_HOOKFORMER   (meson passes the built executable; HK_FIXTURES
 * is set by tests/meson.build). */
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

#include "hookformer.h"

extern char **environ;

static const char *g_exe;

typedef struct {
    int status; /* exit status, or -signal when killed by a signal */
    char *out;
    char *err;
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
    snprintf(path, sizeof path, "%s/hk-cli-hooks-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* Run `hookformer ARGS...` (NULL-terminated) with stdout and stderr captured. */
static cli_result run_cli(const char *arg0, ...) {
    const char *argv[32];
    int n = 0;
    argv[n++] = g_exe;
    va_list ap;
    va_start(ap, arg0);
    for (const char *s = arg0; s; s = va_arg(ap, const char *)) {
        assert_true(n < 31);
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
    int rc = posix_spawn(&pid, g_exe, &fa, NULL, (char *const *)argv, environ);
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

static void expect_contains(const char *hay, const char *needle, const char *what) {
    if (!strstr(hay, needle)) print_error("%s: '%s' not found in:\n%s\n", what, needle, hay);
    assert_non_null(strstr(hay, needle));
}

static void fixture_dir(const char *name, char *out, size_t cap) {
    const char *root = getenv("HK_FIXTURES");
    snprintf(out, cap, "%s/%s", root ? root : "tests/fixtures", name);
}

/* ---- help and errors ------------------------------------------------------------------- */

static void test_help(void **state) {
    (void)state;
    const char *forms[][3] = {{"hooks", "--help", NULL}, {"hooks", "-h", NULL},
                              {"help", "hooks", NULL}};
    for (size_t i = 0; i < 3; i++) {
        cli_result r = run_cli(forms[i][0], forms[i][1], NULL);
        expect_status(&r, 0, forms[i][1]);
        expect_contains(r.out, "usage: hookformer hooks --model DIR [--all]", forms[i][1]);
        expect_contains(r.out, "--all", forms[i][1]);
        expect_contains(r.out, "optional", forms[i][1]);
        assert_string_equal(r.err, "");
        free_result(&r);
    }
    cli_result r = run_cli("--help", NULL);
    expect_status(&r, 0, "--help");
    expect_contains(r.out, "hooks", "top-level help lists the command");
    free_result(&r);
}

static void test_usage_errors(void **state) {
    (void)state;
    char gpt2[1024];
    fixture_dir("gpt2", gpt2, sizeof gpt2);
    struct {
        const char *args[4];
        const char *message;
    } cases[] = {
        {{"hooks", NULL}, "hookformer hooks: missing required option --model"},
        {{"hooks", "--model", NULL}, "hookformer hooks: --model: missing value"},
        {{"hooks", "--model", gpt2, "--bogus"}, "hookformer hooks: unknown option '--bogus'"},
        {{"hooks", "--model", gpt2, "extra"}, "hookformer hooks: unexpected argument 'extra'"},
        {{"hooks", "--all=1", "--model", gpt2}, "hookformer hooks: --all: takes no value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result r = run_cli(cases[i].args[0], cases[i].args[1], cases[i].args[2],
                               cases[i].args[3], NULL);
        expect_status(&r, 2, cases[i].message);
        expect_contains(r.err, cases[i].message, cases[i].message);
        assert_string_equal(r.out, "");
        free_result(&r);
    }
}

static void test_bad_model(void **state) {
    (void)state;
    const char *bad = "/nonexistent/hookformer-test-model";
    cli_result r = run_cli("hooks", "--model", bad, NULL);
    expect_status(&r, 1, "missing model");
    expect_contains(r.err, "hookformer hooks: cannot load model '/nonexistent/hookformer-test-model'",
                    "missing model");
    expect_contains(r.err, "(HK_ERR_", "missing model");
    assert_string_equal(r.out, "");
    free_result(&r);
}

/* ---- listings ---------------------------------------------------------------------------- */

/* The expected line's shape and names for a point, built independently of cmd_hooks.c. */
static void expected_columns(const hk_hook_point *pt, char *shape, char *names) {
    strcpy(shape, "[");
    names[0] = '\0';
    const char *p = pt->dims;
    for (int d = 0; d < pt->ndim; d++) {
        char dim[32];
        size_t len = strcspn(p, " ");
        snprintf(dim, sizeof dim, "%.*s", (int)len, p);
        if (d) strcat(shape, ", ");
        if (pt->shape[d] < 0) {
            strcat(shape, dim);
        } else {
            char num[32];
            snprintf(num, sizeof num, "%lld", (long long)pt->shape[d]);
            strcat(shape, num);
            if (strcmp(dim, "1") != 0) {
                strcat(names, names[0] ? ", " : "(");
                strcat(names, dim);
            }
        }
        p += len;
        p += strspn(p, " ");
    }
    strcat(shape, "]");
    if (names[0]) strcat(names, ")");
}

/* Split "a   b   c" on runs of 3+ spaces into at most max fields. */
static int fields(char *line, char **out, int max) {
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        out[n++] = p;
        char *gap = strstr(p, "   ");
        if (!gap) break;
        *gap = '\0';
        p = gap + 3;
        while (*p == ' ') p++;
    }
    return n;
}

static void check_listing(const char *fixture, bool all) {
    char dir[1024];
    fixture_dir(fixture, dir, sizeof dir);
    hk_model *m = NULL;
    if (hk_model_load(dir, &m) != HK_OK) fail_msg("load %s: %s", dir, hk_last_error());
    cli_result r = all ? run_cli("hooks", "--model", dir, "--all", NULL)
                       : run_cli("hooks", "--model", dir, NULL);
    expect_status(&r, 0, fixture);
    assert_string_equal(r.err, "");
    char *save = NULL, *line = strtok_r(r.out, "\n", &save);
    size_t hidden = 0, listed = 0;
    for (size_t i = 0; i < hk_model_hook_count(m); i++) {
        const hk_hook_point *pt = hk_model_hook_at(m, i);
        if (pt->optional && !all) {
            hidden++;
            continue;
        }
        if (!line) fail_msg("%s: the listing ends before %s", fixture, pt->name);
        char shape[256], names[256];
        expected_columns(pt, shape, names);
        char *f[5];
        int nf = fields(line, f, 5);
        int want = 2 + (names[0] != '\0') + (pt->optional ? 1 : 0);
        if (nf != want || strcmp(f[0], pt->name) != 0 || strcmp(f[1], shape) != 0 ||
            (names[0] && strcmp(f[2], names) != 0) ||
            (pt->optional && strcmp(f[nf - 1], "optional") != 0))
            fail_msg("%s: line '%s', expected %s %s %s%s", fixture, line, pt->name, shape, names,
                     pt->optional ? " optional" : "");
        listed++;
        line = strtok_r(NULL, "\n", &save);
    }
    if (hidden) {
        if (!line) fail_msg("%s: no note on the %zu hidden optional points", fixture, hidden);
        char note[64];
        snprintf(note, sizeof note, "(%zu optional points not listed", hidden);
        expect_contains(line, note, fixture);
        expect_contains(line, "--all", fixture);
        line = strtok_r(NULL, "\n", &save);
    }
    if (line) fail_msg("%s: unexpected line '%s'", fixture, line);
    assert_true(listed > 0);
    free_result(&r);
    hk_model_free(m);
}

static void test_listings(void **state) {
    (void)state;
    const char *fixtures[] = {"gpt2", "llama", "mistral", "qwen2", "phi3", "neox"};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        check_listing(fixtures[i], false);
        check_listing(fixtures[i], true);
    }
}

/* The example of the brief, literally: gpt2 has 4 heads of 16. */
static void test_gpt2_lines(void **state) {
    (void)state;
    char dir[1024];
    fixture_dir("gpt2", dir, sizeof dir);
    cli_result r = run_cli("hooks", "--model", dir, "--all", NULL);
    expect_status(&r, 0, "gpt2 --all");
    const char *want[] = {
        "blocks.0.attn.hook_q",        "[batch, pos, 4, 16]",          "(head_index, d_head)",
        "blocks.1.attn.hook_pattern",  "[batch, 4, query_pos, key_pos]", "(head_index)",
        "blocks.0.ln1.hook_scale",     "[batch, pos, 1]",              NULL,
        "hook_pos_embed",              "[batch, pos, 64]",             "(d_model)",
        "unembed.hook_out",            "[batch, pos, 300]",            "(d_vocab)",
        "blocks.0.attn.hook_result",   "[batch, pos, 4, 64]",          "(head_index, d_model)",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i += 3) {
        char *at = strstr(r.out, want[i]);
        assert_non_null(at);
        size_t len = strcspn(at, "\n");
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)len, at);
        expect_contains(line, want[i + 1], want[i]);
        if (want[i + 2]) expect_contains(line, want[i + 2], want[i]);
    }
    expect_contains(r.out, "blocks.0.attn.hook_result", "--all");
    free_result(&r);
    r = run_cli("hooks", "--model", dir, NULL);
    expect_status(&r, 0, "gpt2");
    assert_null(strstr(r.out, "hook_result"));
    assert_null(strstr(r.out, "hook_q_input"));
    free_result(&r);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_HOOKFORMER\n", argv[0]);
        return 2;
    }
    g_exe = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_bad_model),
        cmocka_unit_test(test_listings),
        cmocka_unit_test(test_gpt2_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
