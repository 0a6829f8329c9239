/* --mem-limit for the subcommands that run a model (estimate, run, generate): parse the
 * budget, estimate the run with hk_estimate_memory before anything is allocated, and refuse with
 * the estimate in the message when it is over. */
#ifndef HK_TOOLS_MEM_LIMIT_H
#define HK_TOOLS_MEM_LIMIT_H

#include <stddef.h>

#include "args.h"
#include "hookformer.h"

/* Help line for a command's options table. */
#define CLI_MEM_LIMIT_HELP \
    "refuse to run when the estimated memory exceeds this: BYTES, or NNNk/NNNm/NNNg (KiB/MiB/GiB)"

/* Parse "12345", "512m", "1.5g", "64k" (binary units; an optional trailing "b"/"ib", any case)
 * into bytes. false on anything else (empty, negative, junk, overflow). */
bool cli_parse_bytes(const char *s, size_t *out);

/* The value of --NAME as bytes; *out = 0 (no limit) when absent. Returns 0 or CLI_EXIT_USAGE. */
int cli_mem_limit(const cli_args *a, const char *name, size_t *out);

/* "12.3 MiB" */
void cli_format_mib(size_t bytes, char *buf, size_t cap);

/* One line: "total 1234.5 MiB (weights 12.3 MiB, KV cache 45.6 MiB [rolling W=4096], ...)" */
void cli_format_estimate(const hk_estimate *e, char *buf, size_t cap);

/* Estimate the run and compare with limit (0: no limit). Returns 0 when within, else prints
 * "hookformer CMD: refusing to run: the estimated memory, total ... exceeds --mem-limit ..."
 * (or the estimate's error) and returns CLI_EXIT_RUNTIME. The estimate goes to *out when not
 * NULL. */
int cli_check_mem_limit(const cli_args *a, const hk_model *m, const hk_estimate_opts *run,
                        size_t limit, hk_estimate *out);

#endif
