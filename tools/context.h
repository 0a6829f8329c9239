/* The context rule of `run` and `generate`: how many positions a run may use against the
 * model's max_position_embeddings.
 *
 *   learned positions (GPT-2)  past the table: always an error (there is nothing to read)
 *   rotary / no positions      past max_position_embeddings: runs, with one warning on stderr
 *                              naming the limit (those positions were never trained)
 *   --ctx N                    the run's context: anything longer is an error (the strict
 *                              form); N past max_position_embeddings warns once as above */
#ifndef HK_TOOLS_CONTEXT_H
#define HK_TOOLS_CONTEXT_H

#include <stdint.h>

#include "args.h"
#include "hookformer.h"

/* need: positions the run uses (the longest prompt, + --max-new for generate), described by
 * `what` ("the prompt's 300 tokens", plural); ctx: --ctx, 0 when not given. Returns 0 (after at most
 * one warning) or the exit status of the error it printed. */
int cli_check_context(const cli_args *a, const hk_model *m, const char *dir, int64_t ctx,
                      int64_t need, const char *what);

#endif
