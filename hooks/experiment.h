/* Internals shared by the patching experiments (hooks/metric.c, sweep.c, ablate.c, lens.c,
 * steer.c, results_h5.c): prompt-set checks, logit-difference directions and the metric
 * hook, point lookup, and the batched sweep engine. */
#ifndef HK_HOOKS_EXPERIMENT_H
#define HK_HOOKS_EXPERIMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/model.h"
#include "hookformer.h"

/* Check a prompt set against the model (sizes, ids in the vocabulary); `who` prefixes the
 * message. */
hk_status hk_xp_check_prompts(const hk_model *m, const hk_prompt_set *p, const char *who);

/* Row t of the unembedding as a d_model vector, and its bias (0 without one). */
void hk_xp_unembed_row(const hk_model *m, int32_t t, float *out, float *bias);

/* The logit difference of every batch row at the last position, from unembed.hook_in:
 * row b belongs to prompt b % n_prompts. */
typedef struct {
    int64_t n_prompts, d;
    float *dir;   /* [n_prompts, d_model] W_U[answer] - W_U[wrong] */
    float *bias;  /* [n_prompts] b_U[answer] - b_U[wrong] */
    float *rows;  /* [cap_rows] metric of each row of the last run */
    int64_t cap_rows;
} hk_xp_metric;

hk_status hk_xp_metric_init(hk_xp_metric *mt, const hk_model *m, const hk_prompt_set *p,
                            int64_t cap_rows);
void hk_xp_metric_free(hk_xp_metric *mt);
/* Register the metric hook on hooks (at unembed.hook_in). */
hk_status hk_xp_metric_attach(hk_xp_metric *mt, hk_hooks *h);
/* mean over prompts of the rows of item k (rows k*n_prompts .. +n_prompts-1) */
float hk_xp_metric_item(const hk_xp_metric *mt, int64_t k);

/* The hooks of one of an experiment's runs: the caller's (plugins: registered earlier, so
 * they fire first at every point), with what the run adds removed again at close; or, when
 * the caller gave none, a fresh set freed at close. */
typedef struct {
    hk_hooks *h;
    hk_hooks *own;
    size_t mark;
} hk_xp_hooks;
hk_status hk_xp_hooks_open(hk_model *m, hk_hooks *base, hk_xp_hooks *out);
void hk_xp_hooks_close(hk_xp_hooks *x);

/* hk_run_with_cache with `base` (may be NULL) firing before the cache's copies. */
hk_status hk_xp_run_with_cache(hk_model *m, hk_hooks *base, const int32_t *tokens,
                               const int64_t *lengths, int64_t batch, int64_t seq,
                               const char *const *patterns, size_t n, const char *positions,
                               float *logits, hk_cache **out);

/* The model's point "blocks.<layer>.<suffix>" (NULL when it has none). */
const hk_hook_point *hk_xp_block_point(const hk_model *m, int64_t layer, const char *suffix);

/* One patch: write the source's value over point `name` at position pos (-1: every position)
 * and head (-1: every head / the whole activation) in the rows of one batch item. */
typedef struct {
    const char *name; /* the model's full point name */
    int64_t layer, pos, head;
} hk_xp_item;

typedef struct {
    const hk_prompt_set *p;        /* the run that gets patched */
    const int64_t *pos_map;        /* [seq] or NULL (identity) */
    const hk_act_source *src;
    int64_t batch;                 /* items per forward */
    bool full_forward;             /* run every layer (else start at the batch's first patched
                                      layer from the unpatched run's cached resid_pre) */
    hk_hooks *hooks;               /* the caller's hooks, firing first in every run, or NULL */
    hk_sweep_part share;           /* the forwards to run ({0, 0}: all); the others' metric
                                      is NaN */
} hk_xp_engine;

/* Run every item, `batch` at a time, and write the metric of each into metric[n_items]. */
hk_status hk_xp_run_items(hk_model *m, const hk_xp_engine *e, const hk_xp_item *items,
                          int64_t n_items, float *metric, int64_t *forwards);

/* Items and result dims of a sweep spec; *items malloc'd. Checks the point. */
hk_status hk_xp_sweep_items(const hk_model *m, const hk_sweep_spec *spec, int64_t seq,
                            hk_xp_item **items, int64_t *n_items, hk_sweep_result *r);

/* Patches per forward: o_batch when > 0, else the largest count (<= 64, <= n_items, at most
 * ~4096 rows) whose estimated activations fit max_bytes (0: 512 MiB). */
int64_t hk_xp_choose_batch(const hk_model *m, int64_t o_batch, size_t max_bytes,
                           int64_t n_prompts, int64_t seq, int64_t n_items);

/* Fill r->change (and normalized when reference is finite and != baseline... see sweep.c). */
hk_status hk_xp_finish_result(hk_sweep_result *r, bool with_normalized);

#endif
