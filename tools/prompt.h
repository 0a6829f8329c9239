/* Prompts of the model-running subcommands: --tokens IDS, --prompt TEXT or --prompts FILE
 * (tools/cli_opts.h declares the options), encoded with the model's tokenizer and BOS rule. */
#ifndef HK_TOOLS_PROMPT_H
#define HK_TOOLS_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "args.h"
#include "hookformer.h"

typedef struct {
    char *text;   /* the text (NUL-terminated, may hold NULs up to len); NULL for --tokens */
    size_t len;
    int32_t *ids; /* [n]: after cli_prompts_encode */
    size_t n;
} cli_prompt;

typedef struct {
    cli_prompt *v;
    size_t n;
    bool text; /* prompts came as text (a tokenizer is needed) */
} cli_prompts;

/* Before the model loads: exactly one of --tokens/--prompt/--prompts, not both BOS flags;
 * parse the ids or read the file. Returns 0, CLI_EXIT_USAGE or CLI_EXIT_RUNTIME (unreadable
 * file); messages name the option. */
int cli_prompts_read(const cli_args *a, cli_prompts *out);
/* Append the non-empty lines of the file at `path` ('-': stdin) to out as text prompts
 * (messages name --prompts). */
int cli_prompts_read_file(const cli_args *a, const char *path, cli_prompts *out);
/* After: encode text prompts with the model's tokenizer (hk_model_encode and the BOS flags),
 * and check every id is below the model's vocab size. A model without a tokenizer, or a prompt
 * that encodes to nothing, is an error naming the folder / the prompt. */
int cli_prompts_encode(const cli_args *a, const hk_model *m, const char *dir, cli_prompts *p);
/* The BOS mode the flags ask for. */
hk_bos_mode cli_bos_mode(const cli_args *a);
/* The longest prompt's length. */
size_t cli_prompts_max_len(const cli_prompts *p);
void cli_prompts_free(cli_prompts *p);

/* Display of token id for tables: the tokenizer's repr-style string, or "" without one. */
const char *cli_token_display(const hk_model *m, int32_t id, char *buf, size_t cap);

#endif
