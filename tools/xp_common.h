/* What the experiment commands (patch, ablate, steer, lens) share: prompt options, token
 * labels, the named sweeps, printing a sweep. */
#ifndef HK_TOOLS_XP_COMMON_H
#define HK_TOOLS_XP_COMMON_H

#include <stdio.h>

#include "args.h"
#include "hookformer.h"
#include "prompt.h"

typedef struct {
    int64_t n, seq;
    int32_t *ids;     /* [n, seq]; NULL until xp_prompts_encode when the prompts are text */
    cli_prompts text; /* text prompts waiting for the model's tokenizer */
    const char *opt;  /* the option they came from, for messages */
} xp_prompts;

/* Prompts as ids (--ids_opt IDS, repeatable) or as text (--text_opt TEXT, repeatable, and
 * --file_opt FILE, one per line; either name may be NULL), before the model loads: the ids
 * are parsed, the texts kept (n is known, seq not yet). Both forms, or none when `required`,
 * are usage errors naming the options; so are --prepend-bos with --no-prepend-bos. */
int xp_prompts_read(const cli_args *a, const char *ids_opt, const char *text_opt,
                    const char *file_opt, bool required, xp_prompts *out);
/* After hk_model_load: encode text prompts with the model's tokenizer and the BOS flags
 * (tools/cli_opts.h CLI_OPTS_TEXT); all must give the same number of tokens. A model without
 * a tokenizer is an error naming the folder. Nothing to do for ids. */
int xp_prompts_encode(const cli_args *a, const hk_model *m, xp_prompts *p);
void xp_prompts_free(xp_prompts *p);

/* Answer tokens: --ids_opt IDS (one per prompt or one for all) or --text_opt TEXT (repeated:
 * one per prompt or one for all), each text exactly one token without BOS or special tokens. */
typedef struct {
    int64_t n;
    int32_t *ids; /* [n]; NULL until xp_answers_encode for text */
    const char *ids_opt, *text_opt;
} xp_answers;
/* Before the model loads (ids parsed, texts counted); usage errors name the options. */
int xp_answers_read(const cli_args *a, const char *ids_opt, const char *text_opt, int64_t n,
                    xp_answers *out);
/* After: encode the texts; one that is not exactly one token is an error naming the option,
 * the text and the ids it gave. */
int xp_answers_encode(const cli_args *a, const hk_model *m, xp_answers *ans);

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
/* Column labels of a patching heatmap, one per corrupted position t: the corrupted token
 * where clean and corrupted agree, else "clean/corrupted" (' John'/' Mary'); the clean token
 * is clean[map[t]] with a --pos-map (none: "-/corrupted"), else clean[t]. */
char **xp_pair_labels(const hk_model *m, const int32_t *clean, const int32_t *bad, int64_t seq,
                      const int64_t *map);
/* A prompt for titles: its decoded text, quoted and escaped ('When Mary and', \n for a newline),
 * cut with an ellipsis to fit cap bytes; its ids when the model has no tokenizer. */
void xp_prompt_summary(const hk_model *m, const int32_t *ids, int64_t n, char *buf, size_t cap);
/* The logit-difference metric for titles: "logit[' Mary'] - logit[' John'] at the last
 * position" (answer and wrong [n], one per prompt). */
void xp_metric_summary(const hk_model *m, const int32_t *answer, const int32_t *wrong,
                       int64_t n, char *buf, size_t cap);
/* The tokens' texts (as run's token column shows them), space-separated, then a newline;
 * nothing when the model has no tokenizer. */
void xp_print_token_texts(FILE *f, const char *indent, const hk_model *m, const int32_t *ids,
                          int64_t n);

/* A named sweep: resid_pre, resid_mid, resid_post, attn_out, mlp_out ([layer, pos]),
 * head_out / head_q / head_k / head_v ([layer, head], every position at once),
 * head_out_by_pos / head_q_by_pos / ... ([layer, pos, head]). false if unknown. */
bool xp_sweep_by_name(const char *name, hk_sweep_spec *out);
/* the names, comma-separated, for help and errors */
#define XP_SWEEP_NAMES hk_sweep_names()

/* A sweep in a few lines: its shape and cost, then a layer x position (or head) grid of the
 * normalized values (else the change) when it fits, else the 10 largest. */
void xp_print_sweep(FILE *f, const char *name, const hk_sweep_result *r,
                    char *const *pos_labels);

/* One sweep's outputs: the table on stdout (positions labelled `labels`), the sweep in the
 * results file when `res` is open, and with --svg PREFIX the heatmap PREFIX<name>.svg of
 * `shown` (r itself, or r with other values to colour), titled `title` (lines split at '\n'),
 * its positions labelled svg_labels (NULL: labels). */
hk_status xp_sweep_outputs(const cli_args *a, const char *name, const hk_sweep_result *r,
                           const hk_sweep_result *shown, char *const *labels,
                           char *const *svg_labels, bool normalized, const char *title,
                           hk_results *res, bool force);
/* Ends a results file: closes it (printing "wrote PATH") when st is HK_OK, else discards it.
 * *res is NULL afterwards; returns the status of the whole. */
hk_status xp_results_finish(hk_results **res, hk_status st, const char *path);

#endif
