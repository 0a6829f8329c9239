/* What the experiment commands (patch, ablate, steer, lens) share: prompt options, token
 * labels, the named sweeps, printing a sweep. */
#ifndef HK_TOOLS_XP_COMMON_H
#define HK_TOOLS_XP_COMMON_H

#include <stdio.h>

#include "args.h"
#include "hookformer.h"

typedef struct {
    int64_t n, seq;
    int32_t *ids; /* [n, seq] */
} xp_prompts;

/* Every occurrence of --opt (comma-separated ids) as one prompt; all of one length. */
int xp_parse_prompts(const cli_args *a, const char *opt, xp_prompts *out);
/* --opt as exactly `n` ids (or one id, used for all n). */
int xp_parse_ids(const cli_args *a, const char *opt, int64_t n, int32_t **out);
/* A comma-separated list of ids in a string (flag named in errors). */
int xp_parse_id_list(const cli_args *a, const char *opt, const char *s, int32_t **out,
                     int64_t *n);

/* Labels of token ids, for result files and heatmaps: the one place that turns ids into
 * strings: the token's text quoted (' Mary') when the model has a tokenizer, else the id. */
char **xp_token_labels(const hk_model *m, const int32_t *ids, int64_t n);
void xp_free_labels(char **labels, int64_t n);

/* A named sweep: resid_pre, resid_mid, resid_post, attn_out, mlp_out ([layer, pos]),
 * head_out / head_q / head_k / head_v ([layer, head], every position at once),
 * head_out_by_pos / head_q_by_pos / ... ([layer, pos, head]). false if unknown. */
bool xp_sweep_by_name(const char *name, hk_sweep_spec *out);
/* the names, comma-separated, for help and errors */
extern const char *const XP_SWEEP_NAMES;

/* A sweep in a few lines: its shape and cost, then a layer x position (or head) grid of the
 * normalized values (else the change) when it fits, else the 10 largest. */
void xp_print_sweep(FILE *f, const char *name, const hk_sweep_result *r,
                    char *const *pos_labels);

#endif
