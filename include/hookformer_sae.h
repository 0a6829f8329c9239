/* hookformer — sparse autoencoders (SAEs) and transcoders at hook points. Plain C11, on top of
 * hookformer.h. docs/SAE.md describes the formats, the maths and the hook points. */
#ifndef HOOKFORMER_SAE_H
#define HOOKFORMER_SAE_H

#include "hookformer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hk_sae hk_sae;

typedef enum {
    HK_SAE_STANDARD = 0, /* acts = relu(pre) */
    HK_SAE_JUMPRELU,     /* acts = pre * (pre > threshold), relu'd */
    HK_SAE_TOPK,         /* the k largest pre-activations, relu'd; the rest 0 */
    HK_SAE_GATED         /* (x W_enc + b_gate > 0) * relu(x (W_enc * exp(r_mag)) + b_mag) */
} hk_sae_arch;

typedef enum {
    HK_SAE_NORM_NONE = 0,
    HK_SAE_NORM_CONSTANT_NORM_RESCALE, /* x * sqrt(d_in) / ||x||, undone on the output */
    HK_SAE_NORM_LAYER_NORM             /* (x - mean) / std (eps 1e-5), undone on the output */
} hk_sae_norm;

/* Options of hk_sae_load (NULL: the defaults, all zero). */
typedef struct {
    const char *hook; /* the hook point the SAE reads (a params.npz has none; for a SAELens
                         folder this overrides cfg.json's metadata.hook_name) */
} hk_sae_load_opts;

/* Load an SAE from
 *  - a SAELens folder: cfg.json (d_in, d_sae, architecture "standard" | "jumprelu" | "topk" |
 *    "gated" | "transcoder" | "jumprelu_transcoder", apply_b_dec_to_input,
 *    normalize_activations, k for topk, d_out for transcoders, metadata.hook_name and
 *    metadata.hook_name_out, or the older top-level hook_name / hook_name_out) and
 *    sae_weights.safetensors (W_enc [d_in, d_sae], W_dec [d_sae, d_out], b_enc [d_sae],
 *    b_dec [d_out], threshold [d_sae] for jumprelu, b_gate, b_mag, r_mag [d_sae] for gated);
 *  - a Gemma Scope params.npz (a zip of .npy members, stored or deflated: W_enc, W_dec,
 *    b_enc, b_dec, threshold; JumpReLU, no b_dec on the input), or a folder holding one;
 *    its hook comes from opts->hook.
 * F32, F16 and BF16 weights (npy: <f4, <f2) are converted to f32. Errors name the file and
 * the field or tensor (HK_ERR_FORMAT, HK_ERR_NOT_FOUND, HK_ERR_SHAPE, HK_ERR_UNSUPPORTED). */
hk_status hk_sae_load(const char *path, const hk_sae_load_opts *opts, hk_sae **out);
void hk_sae_free(hk_sae *s);

typedef struct {
    hk_sae_arch arch;
    bool transcoder;         /* output at hook_out, of width d_out */
    int64_t d_in, d_sae, d_out; /* d_out == d_in for an SAE */
    int64_t k;               /* topk only, else 0 */
    bool apply_b_dec_to_input;
    hk_sae_norm norm;
    const char *hook;        /* the point it reads ("blocks.0.hook_resid_post") */
    const char *hook_out;    /* where it writes: hook for an SAE, hook_name_out for a
                                transcoder */
    const char *path;        /* what was loaded */
    const char *format;      /* "saelens" or "gemma-scope-npz" */
} hk_sae_info;

/* Valid while the SAE lives. */
hk_status hk_sae_get_info(const hk_sae *s, hk_sae_info *out);
const char *hk_sae_arch_name(hk_sae_arch a); /* "standard", "jumprelu", "topk", "gated" */

/* Weights, f32 row-major: "W_enc" [d_in, d_sae], "W_dec" [d_sae, d_out], "b_enc" [d_sae],
 * "b_dec" [d_out], "threshold" [d_sae] (jumprelu), "b_gate", "b_mag", "r_mag" [d_sae]
 * (gated). *out is owned by the SAE and writable: editing a weight changes later encodes. */
hk_status hk_sae_weight(hk_sae *s, const char *name, hk_tensor *out);

/* Encode and decode rows outside any model (SAELens's sae.encode / sae.decode without hooks):
 *   x     [n, d_in]   acts [n, d_sae]   recons [n, d_out] = acts W_dec + b_dec
 * (decode cannot undo an input normalization: it has no input; the spliced SAE does). */
hk_status hk_sae_encode(const hk_sae *s, const float *x, int64_t n, float *acts);
hk_status hk_sae_decode(const hk_sae *s, const float *acts, int64_t n, float *recons);

typedef enum {
    HK_SAE_OBSERVE = 0,      /* run the SAE and fire its points; the model's activation is
                                unchanged */
    HK_SAE_REPLACE,          /* the activation := the SAE's output (hook_sae_output) */
    HK_SAE_REPLACE_WITH_ERROR /* := output + (x - clean reconstruction) (use_error_term): the
                                model's own activation until a hook edits a feature */
} hk_sae_mode;

const char *hk_sae_mode_name(hk_sae_mode m); /* "observe", "replace", "replace_error" */

/* An SAE spliced into a model's hooks. */
typedef struct hk_sae_attachment hk_sae_attachment;

/* Attach s at its hook point on `hooks` (after what is already registered there) and add
 * its points to `hooks`, named as SAELens's HookedSAETransformer names them:
 *   <hook>.hook_sae_input     [batch, pos, d_in]   the input, before normalization
 *   <hook>.hook_sae_acts_pre  [batch, pos, d_sae]  pre-activations
 *   <hook>.hook_sae_acts_post [batch, pos, d_sae]  feature activations
 *   <hook>.hook_sae_recons    [batch, pos, d_out]  the decoder output (before un-normalizing)
 *   <hook>.hook_sae_error     [batch, pos, d_out]  x - clean output (HK_SAE_REPLACE_WITH_ERROR)
 *   <hook>.hook_sae_output    [batch, pos, d_out]  what replaces the activation
 * Register ordinary hooks on these names (hk_hooks_add, globs included) after the attach: a
 * hook that edits acts_post patches, ablates or steers features. A transcoder reads at its
 * hook and writes at hook_out (a later point). The SAE's d_in must equal the width of the
 * hook (its inner dims, flattened: attn.hook_z is n_heads * d_head): HK_ERR_SHAPE otherwise.
 * The SAE and the hooks must outlive the attachment: hk_sae_detach before freeing either. */
hk_status hk_sae_attach(hk_hooks *hooks, const hk_sae *s, hk_sae_mode mode,
                        hk_sae_attachment **out);
/* Remove the SAE's registrations and free a; its points stay in `hooks` (never firing) so that a later
 * attach of an SAE at the same hook reuses them. NULL: nothing. */
void hk_sae_detach(hk_sae_attachment *a);

/* ---- evaluation (hookformer sae eval), as SAELens's evals.py reports it ---- */

typedef struct {
    int64_t tokens;            /* valid tokens seen */
    int64_t d_sae;
    double mse;                /* mean over tokens of sum_d (y - y_hat)^2 */
    double explained_variance; /* 1 - mse / (E||y||^2 - ||E y||^2) */
    double l0;                 /* mean over tokens of the features != 0 */
    double l1;                 /* mean over tokens of sum |acts| */
    int64_t dead;              /* features that never fired */
    double ce_without;         /* next-token cross-entropy of the model */
    double ce_with;            /* with the SAE spliced (replace, no error term) */
    double ce_ablation;        /* with the hook's output zeroed */
    double ce_delta;           /* ce_with - ce_without */
    double ce_score;           /* (ce_ablation - ce_with) / (ce_ablation - ce_without) */
} hk_sae_metrics;
/* y is the activation the SAE reconstructs: its hook's (hook_out's for a transcoder); y_hat
 * the SAE's output. CE losses average over every position that has a next token. */

typedef struct hk_sae_eval hk_sae_eval;
hk_status hk_sae_eval_new(hk_model *m, const hk_sae *s, hk_sae_eval **out);
/* Three forwards of a right-padded batch: observed (MSE, variance, L0, density, CE without),
 * spliced (CE with), zero-ablated (CE ablation). */
hk_status hk_sae_eval_add(hk_sae_eval *e, const int32_t *tokens, const int64_t *lengths,
                          int64_t batch, int64_t seq);
hk_status hk_sae_eval_metrics(const hk_sae_eval *e, hk_sae_metrics *out);
void hk_sae_eval_free(hk_sae_eval *e);

/* ---- top-activating contexts (hookformer features) ---- */

/* Per feature, the `top` sequences where it fires most (one entry per sequence: its maximum
 * over positions), and the token window around that maximum with the feature's activation at
 * each window token. Entries past the ones found have value 0 and seq -1. */
typedef struct {
    int64_t d_sae, top, window; /* window: tokens on each side of the maximum */
    int64_t tokens;             /* valid tokens seen */
    int64_t *active;            /* [d_sae] tokens where the feature was != 0 */
    float *max_act;             /* [d_sae] its largest activation */
    float *top_values;          /* [d_sae, top] the maxima, descending */
    int64_t *top_seq, *top_pos; /* [d_sae, top] where (sequence index, position) */
    int32_t *win_tokens;        /* [d_sae, top, 2 window + 1] token ids, -1 outside the sequence */
    float *win_values;          /* [d_sae, top, 2 window + 1] the feature's activation there */
} hk_sae_top;

/* Run the sequences (seqs[i] of lens[i] tokens) through the SAE (observing) in batches of
 * `batch`, keep each feature's top contexts, then rerun the sequences that made a top list to
 * fill the windows. */
hk_status hk_sae_top_contexts(hk_model *m, const hk_sae *s, const int32_t *const *seqs,
                              const int64_t *lens, int64_t n_seqs, int64_t top, int64_t window,
                              int64_t batch, hk_sae_top *out);
void hk_sae_top_free(hk_sae_top *t);
/* HDF5 (docs/FORMAT.md, kind "sae_top_contexts"), written to PATH.tmp and renamed; an
 * existing PATH is an error unless force. */
hk_status hk_sae_top_save(const hk_sae_top *t, const hk_sae *s, const hk_model *m,
                          const char *path, bool force);
/* A static HTML page (no scripts, no external resources): for each of the n features, its
 * top contexts with every token's background shaded by the feature's activation (relative
 * to the feature's maximum) and the value in its title. Token texts come from the model's
 * tokenizer (ids without one). Written to PATH.tmp and renamed; existing PATH unless force. */
hk_status hk_sae_top_html(const hk_sae_top *t, const hk_sae *s, const hk_model *m,
                          const int64_t *features, size_t n, const char *path, bool force);

/* ---- sparse feature files (hookformer cache --sae; docs/FORMAT.md) ---- */

/* An HDF5 file of SAE feature activations stored sparsely: rows are the valid tokens of the
 * sequences run (seq_id, position, token_id [n_rows]); per SAE a group
 * "<hook>.hook_sae_acts_post" holding CSR datasets indices (int32 [nnz]), values (f32 [nnz])
 * and row_ptr (int64 [n_rows + 1]): row r's features are indices[row_ptr[r]:row_ptr[r+1]].
 * Written to PATH.tmp and renamed onto PATH at hk_sae_store_close (a failed or interrupted
 * run leaves no PATH and never clobbers one); an existing PATH is an error unless force.
 * At most one SAE per hook. */
typedef struct hk_sae_store hk_sae_store;

hk_status hk_sae_store_create(const char *path, bool force, const hk_model *m,
                              const hk_sae *const *saes, size_t n, hk_sae_store **out);
/* Attach every SAE (observe mode) and the store's readers on `hooks` (the model's; after
 * plugins, whose edits the SAEs then see). The hooks must outlive the store. */
hk_status hk_sae_store_attach(hk_sae_store *s, hk_hooks *hooks);
/* One forward over a right-padded batch (logits not computed: the forward stops after the
 * last SAE's layer); stores the rows of the valid positions. */
hk_status hk_sae_store_run(hk_sae_store *s, hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                           const int64_t *lengths, int64_t batch, int64_t seq);
/* Entries stored so far for SAE i. */
int64_t hk_sae_store_nnz(const hk_sae_store *s, size_t i);
/* Finish (attributes n_rows, each group's shape [n_rows, d_sae] and nnz), close, rename into
 * place; detaches the SAEs. Frees s. */
hk_status hk_sae_store_close(hk_sae_store *s);
/* Give up: remove the temporary file. Frees s. */
void hk_sae_store_discard(hk_sae_store *s);

#ifdef __cplusplus
}
#endif
#endif /* HOOKFORMER_SAE_H */
