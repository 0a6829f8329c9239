/* Output paths checked before any work: every command that writes files (--out, --svg,
 * --save) calls cli_check_output first, so an unwritable folder fails at once, with the
 * reason, and not after minutes of computing. */
#ifndef HK_TOOLS_OUT_PATH_H
#define HK_TOOLS_OUT_PATH_H

#include <stdbool.h>

#include "args.h"

typedef enum {
    CLI_OUT_NEW,      /* a file to create: its folder must take a new file; an existing file
                         needs force */
    CLI_OUT_EXISTING, /* a file to add to (cache --append): it must exist and open for writing */
    CLI_OUT_PREFIX    /* --svg PREFIX: files PREFIX<name>.svg; PREFIX's folder must take them */
} cli_out_kind;

/* When --opt was given: check its value as `kind` says. 0 when fine (or not given), else the
 * error is printed ("--out x/y.h5: cannot create a file in 'x': Not a directory") and
 * CLI_EXIT_RUNTIME returned. Nothing is left behind: the folder is probed with a file that is
 * removed at once, an existing file is opened without being changed. */
int cli_check_output(const cli_args *a, const char *opt, cli_out_kind kind, bool force);
/* The usual outputs of a command, those it has: --out and --save (new files), --svg PREFIX,
 * with --force. The experiment commands, embed and steer call it right after parsing. */
int cli_check_outputs(const cli_args *a);

#endif
