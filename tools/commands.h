/* The hookformer subcommands, one file each (cmd_*.c); main.c dispatches on them. */
#ifndef HK_TOOLS_COMMANDS_H
#define HK_TOOLS_COMMANDS_H

#include "args.h"

extern const cli_command cmd_run;
extern const cli_command cmd_info;
extern const cli_command cmd_generate;
extern const cli_command cmd_hooks;
extern const cli_command cmd_estimate;
extern const cli_command cmd_embed;
extern const cli_command cmd_patch;
extern const cli_command cmd_ablate;
extern const cli_command cmd_steer;
extern const cli_command cmd_lens;
extern const cli_command cmd_cache;
extern const cli_command cmd_inspect;
extern const cli_command cmd_tokenize;
extern const cli_command cmd_sae;
extern const cli_command cmd_features;

#endif
