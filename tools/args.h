/* A small long-option parser shared by the hookformer subcommands.
 *
 * Accepted forms: `--name value`, `--name=value`, flags (`--json`), and `-h`/`--help` anywhere.
 * Every error is printed to stderr as `hookformer CMD: --flag: what was expected, got 'x'`, and
 * the functions return CLI_EXIT_USAGE so a command can `return` the status straight away. */
#ifndef HK_TOOLS_ARGS_H
#define HK_TOOLS_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_RUNTIME = 1, /* the command was well formed but failed (bad model dir, ...) */
    CLI_EXIT_USAGE = 2    /* the command line itself is wrong */
};

#define CLI_MAX_OPTS 32
#define CLI_MAX_VALUES 64 /* option values on one command line */

typedef struct {
    const char *name;    /* long name without the leading "--"; NULL ends a table */
    const char *metavar; /* "DIR", "K", ...; NULL for a flag that takes no value */
    const char *help;    /* one line */
} cli_opt;

typedef struct cli_command cli_command;
struct cli_command {
    const char *name;        /* "run" */
    const char *summary;     /* one line for `hookformer --help` */
    const char *usage;       /* "--model DIR --tokens IDS [--top-k K]" */
    const char *description; /* a paragraph for `hookformer help CMD`, or NULL */
    const cli_opt *opts;     /* terminated by an entry with name == NULL */
    int (*main)(const cli_command *cmd, int argc, char **argv); /* argv[0] is the command name */
};

typedef struct {
    const cli_command *cmd;
    char prog[64];                    /* "hookformer run", the prefix of every message */
    const char *value[CLI_MAX_OPTS];  /* value of option i, NULL when absent or a flag */
    bool seen[CLI_MAX_OPTS];
    /* Every value given, in command-line order, for options that may repeat (--plugin). */
    int occ_opt[CLI_MAX_VALUES];
    const char *occ_value[CLI_MAX_VALUES];
    size_t n_occ;
} cli_args;

/* Parse argv[1..argc-1] against cmd->opts. Returns true when the command should go on; false
 * when it should return *exit_code at once (help was printed: 0; a usage error was printed: 2). */
bool cli_parse(cli_args *a, const cli_command *cmd, int argc, char **argv, int *exit_code);

/* Print the command's help (usage line, description, options) to f. */
void cli_print_help(const cli_command *cmd, FILE *f);

/* Print "hookformer CMD: <message>\n" to stderr and return CLI_EXIT_USAGE. */
int cli_usage_error(const cli_args *a, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Print "hookformer CMD: <message>\n" to stderr and return CLI_EXIT_RUNTIME. */
int cli_runtime_error(const cli_args *a, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

bool cli_has(const cli_args *a, const char *name);
/* The option's value, or NULL when it was not given (or is a flag). */
const char *cli_str(const cli_args *a, const char *name);
/* The value of a required option; prints "missing required option --name" and returns
 * CLI_EXIT_USAGE when absent. */
int cli_require_str(const cli_args *a, const char *name, const char **out);

/* Every value of a repeatable option (`--plugin a --plugin b`), in command-line order: stores
 * up to cap of them in out and returns how many were given (0 when absent). */
size_t cli_strs(const cli_args *a, const char *name, const char **out, size_t cap);

/* Parse one integer in [lo, hi] (no spaces, no sign other than a leading '-', no trailing
 * characters). *out = def when the option is absent. Returns 0 or CLI_EXIT_USAGE. */
int cli_int(const cli_args *a, const char *name, int64_t lo, int64_t hi, int64_t def,
            int64_t *out);

/* Parse a comma-separated list of integers in [lo, hi] ("1,2,3"); empty items are errors.
 * *out is malloc'ed (free it); *n_out >= 1. Returns 0, CLI_EXIT_USAGE, or CLI_EXIT_RUNTIME
 * when out of memory. */
int cli_int_list(const cli_args *a, const char *name, int64_t lo, int64_t hi, int64_t **out,
                 size_t *n_out);

/* Parse one decimal integer; true when s is exactly an integer that fits in int64_t. */
bool cli_parse_int64(const char *s, int64_t *out);

#endif
