#include "args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int find_opt(const cli_command *cmd, const char *name, size_t len) {
    for (int i = 0; cmd->opts[i].name; i++) {
        if (strlen(cmd->opts[i].name) == len && strncmp(cmd->opts[i].name, name, len) == 0)
            return i;
    }
    return -1;
}

static int vreport(const cli_args *a, int code, const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", a->prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    return code;
}

int cli_usage_error(const cli_args *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vreport(a, CLI_EXIT_USAGE, fmt, ap);
    va_end(ap);
    return rc;
}

int cli_runtime_error(const cli_args *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vreport(a, CLI_EXIT_RUNTIME, fmt, ap);
    va_end(ap);
    return rc;
}

void cli_print_help(const cli_command *cmd, FILE *f) {
    fprintf(f, "usage: hookformer %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->description) fprintf(f, "\n%s\n", cmd->description);
    fprintf(f, "\noptions:\n");
    for (int i = 0; cmd->opts[i].name; i++) {
        char left[64];
        if (cmd->opts[i].metavar)
            snprintf(left, sizeof left, "--%s %s", cmd->opts[i].name, cmd->opts[i].metavar);
        else
            snprintf(left, sizeof left, "--%s", cmd->opts[i].name);
        fprintf(f, "  %-22s %s\n", left, cmd->opts[i].help);
    }
    fprintf(f, "  %-22s %s\n", "-h, --help", "show this help and exit");
}

bool cli_parse(cli_args *a, const cli_command *cmd, int argc, char **argv, int *exit_code) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    snprintf(a->prog, sizeof a->prog, "hookformer %s", cmd->name);
    *exit_code = CLI_EXIT_OK;

    /* --help wins over everything else on the line, as in git and most CLIs. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_print_help(cmd, stdout);
            return false;
        }
    }

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            *exit_code = cli_usage_error(a, "unexpected argument '%s' (see 'hookformer %s --help')",
                                         arg, cmd->name);
            return false;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = find_opt(cmd, name, len);
        if (k < 0) {
            *exit_code = cli_usage_error(a, "unknown option '--%.*s' (see 'hookformer %s --help')",
                                         (int)len, name, cmd->name);
            return false;
        }
        const cli_opt *o = &cmd->opts[k];
        if (!o->metavar) {
            if (eq) {
                *exit_code = cli_usage_error(a, "--%s: takes no value, got '%s'", o->name, eq + 1);
                return false;
            }
            a->seen[k] = true;
            continue;
        }
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            val = argv[++i];
        } else {
            *exit_code = cli_usage_error(a, "--%s: missing value (expected %s)", o->name, o->metavar);
            return false;
        }
        if (a->n_occ == CLI_MAX_VALUES) {
            *exit_code = cli_usage_error(a, "too many options (at most %d values on one command "
                                            "line)", CLI_MAX_VALUES);
            return false;
        }
        a->occ_opt[a->n_occ] = k;
        a->occ_value[a->n_occ++] = val;
        a->seen[k] = true;
        a->value[k] = val; /* the last occurrence wins (cli_strs has them all) */
    }
    return true;
}

static int opt_index(const cli_args *a, const char *name) {
    return find_opt(a->cmd, name, strlen(name));
}

bool cli_has(const cli_args *a, const char *name) {
    int k = opt_index(a, name);
    return k >= 0 && a->seen[k];
}

const char *cli_str(const cli_args *a, const char *name) {
    int k = opt_index(a, name);
    return k >= 0 ? a->value[k] : NULL;
}

size_t cli_strs(const cli_args *a, const char *name, const char **out, size_t cap) {
    int k = opt_index(a, name);
    size_t n = 0;
    for (size_t i = 0; k >= 0 && i < a->n_occ; i++)
        if (a->occ_opt[i] == k) {
            if (n < cap) out[n] = a->occ_value[i];
            n++;
        }
    return n;
}

int cli_require_str(const cli_args *a, const char *name, const char **out) {
    const char *v = cli_str(a, name);
    if (!v) return cli_usage_error(a, "missing required option --%s", name);
    if (!*v) return cli_usage_error(a, "--%s: expected a value, got ''", name);
    *out = v;
    return 0;
}

bool cli_parse_int64(const char *s, int64_t *out) {
    const char *p = s;
    if (*p == '-') p++;
    if (*p < '0' || *p > '9') return false; /* no spaces, no '+', no empty string */
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') return false;
    *out = (int64_t)v;
    return true;
}

/* "a positive integer", "a non-negative integer" or "an integer in [lo, hi]". */
static void describe_range(int64_t lo, int64_t hi, char *buf, size_t cap, bool plural) {
    if (hi == INT64_MAX && (lo == 0 || lo == 1))
        snprintf(buf, cap, "%s%s integer%s", plural ? "" : "a ",
                 lo == 1 ? "positive" : "non-negative", plural ? "s" : "");
    else
        snprintf(buf, cap, "%sinteger%s in [%lld, %lld]", plural ? "" : "an ", plural ? "s" : "",
                 (long long)lo, (long long)hi);
}

int cli_int(const cli_args *a, const char *name, int64_t lo, int64_t hi, int64_t def,
            int64_t *out) {
    const char *v = cli_str(a, name);
    if (!v) {
        *out = def;
        return 0;
    }
    int64_t x;
    if (!cli_parse_int64(v, &x) || x < lo || x > hi) {
        char want[96];
        describe_range(lo, hi, want, sizeof want, false);
        return cli_usage_error(a, "--%s: expected %s, got '%s'", name, want, v);
    }
    *out = x;
    return 0;
}

int cli_int_list(const cli_args *a, const char *name, int64_t lo, int64_t hi, int64_t **out,
                 size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    const char *v = cli_str(a, name);
    if (!v) return cli_usage_error(a, "missing required option --%s", name);

    char want[96];
    describe_range(lo, hi, want, sizeof want, true);
    size_t n = 1;
    for (const char *p = v; *p; p++) n += (*p == ',');
    int64_t *xs = malloc(n * sizeof *xs);
    if (!xs) return cli_runtime_error(a, "--%s: out of memory for %zu items", name, n);

    const char *p = v;
    for (size_t i = 0; i < n; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        int rc = 0;
        if (len == 0) {
            rc = cli_usage_error(a, "--%s: expected a comma-separated list of %s, got '%s' "
                                    "(item %zu is empty)", name, want, v, i + 1);
        } else if (len >= sizeof item) {
            rc = cli_usage_error(a, "--%s: expected a comma-separated list of %s, got '%s' "
                                    "(item %zu is too long)", name, want, v, i + 1);
        } else {
            memcpy(item, p, len);
            item[len] = '\0';
            if (!cli_parse_int64(item, &xs[i]))
                rc = cli_usage_error(a, "--%s: expected a comma-separated list of %s, got '%s' "
                                        "(item %zu, '%s', is not an integer)",
                                     name, want, v, i + 1, item);
            else if (xs[i] < lo || xs[i] > hi)
                rc = cli_usage_error(a, "--%s: expected a comma-separated list of %s, got '%s' "
                                        "(item %zu, '%s', is out of range)",
                                     name, want, v, i + 1, item);
        }
        if (rc) {
            free(xs);
            return rc;
        }
        p = comma ? comma + 1 : p + len;
    }
    *out = xs;
    *n_out = n;
    return 0;
}
