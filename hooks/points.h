/* Hook points of a model: TransformerLens names and shapes, built once from the canonical
 * config, and an O(1) map (layer, kind) -> point index used by the forward. */
#ifndef HK_HOOKS_POINTS_H
#define HK_HOOKS_POINTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "hookformer.h"

/* Kinds of points, in execution order. Block kinds sit between HK_PT_BLOCK_FIRST and
 * HK_PT_BLOCK_LAST. */
typedef enum {
    HK_PT_EMBED = 0,
    HK_PT_POS_EMBED,
    HK_PT_TOKEN_TYPE_EMBED,    /* encoders with segment embeddings */
    HK_PT_EMBED_LN_SCALE,      /* embed_norm: the LayerNorm over the summed embeddings */
    HK_PT_EMBED_LN_NORMALIZED,
    HK_PT_FULL_EMBED,          /* embed_norm: the embedding's output */
    HK_PT_RESID_PRE,
    HK_PT_ATTN_IN,   /* optional: [batch, pos, head, d_model] */
    HK_PT_Q_INPUT,   /* optional */
    HK_PT_K_INPUT,   /* optional */
    HK_PT_V_INPUT,   /* optional */
    HK_PT_LN1_SCALE,
    HK_PT_LN1_NORMALIZED,
    HK_PT_Q,
    HK_PT_K,
    HK_PT_V,
    HK_PT_Q_NORM_SCALE,        /* qk_norm: attn.q_norm / attn.k_norm before RoPE */
    HK_PT_Q_NORM_NORMALIZED,
    HK_PT_K_NORM_SCALE,
    HK_PT_K_NORM_NORMALIZED,
    HK_PT_ROT_Q,
    HK_PT_ROT_K,
    HK_PT_ATTN_SCORES,
    HK_PT_PATTERN,
    HK_PT_Z,
    HK_PT_RESULT,    /* optional: [batch, pos, head, d_model] */
    HK_PT_LN1_POST_SCALE,      /* attn_post_norm: on the attention output (Gemma 2, OLMo 2) */
    HK_PT_LN1_POST_NORMALIZED,
    HK_PT_ATTN_OUT,
    HK_PT_RESID_MID,
    HK_PT_MLP_IN,    /* optional */
    HK_PT_POST_LN1_SCALE,      /* post_norm: ln1 after the attention's residual add */
    HK_PT_POST_LN1_NORMALIZED,
    HK_PT_LN2_SCALE,
    HK_PT_LN2_NORMALIZED,
    HK_PT_ROUTER_LOGITS,       /* mixture of experts: [batch, pos, n_experts] */
    HK_PT_EXPERT_WEIGHTS,      /* softmax of the router logits [batch, pos, n_experts] */
    HK_PT_EXPERT_INDICES,      /* chosen experts [batch, pos, experts_per_token] (as floats) */
    HK_PT_TOPK_WEIGHTS,        /* their mixing weights [batch, pos, experts_per_token] */
    HK_PT_EXPERT_POST,         /* chosen experts' activations [batch, pos, k, d_mlp] */
    HK_PT_SHARED_POST,         /* shared expert's activations [batch, pos, d_shared] */
    HK_PT_SHARED_GATE,         /* its sigmoid gate [batch, pos, 1] */
    HK_PT_MLP_PRE,
    HK_PT_MLP_PRE_LINEAR,
    HK_PT_MLP_POST,
    HK_PT_LN2_POST_SCALE,      /* mlp_post_norm: on the MLP output */
    HK_PT_LN2_POST_NORMALIZED,
    HK_PT_MLP_OUT,
    HK_PT_RESID_POST,
    HK_PT_POST_LN2_SCALE,      /* post_norm: ln2 after the MLP's residual add */
    HK_PT_POST_LN2_NORMALIZED,
    HK_PT_NORMALIZED_RESID_POST, /* post_norm: the block's output, ln2(resid_post) */
    HK_PT_LN_FINAL_SCALE,
    HK_PT_LN_FINAL_NORMALIZED,
    HK_PT_MLM_LN_SCALE,        /* HK_HEAD_MLM: the head's LayerNorm */
    HK_PT_MLM_LN_NORMALIZED,
    HK_PT_UNEMBED_IN,
    HK_PT_UNEMBED_OUT,
    HK_PT_COUNT
} hk_point_kind;

#define HK_PT_BLOCK_FIRST HK_PT_RESID_PRE
#define HK_PT_BLOCK_LAST HK_PT_NORMALIZED_RESID_POST

/* The split-input points (TransformerLens's use_split_qkv_input / use_attn_in): hooking one
 * makes its layer compute q/k/v from per-head copies of the residual stream, so ln1 then fires
 * per head. The forward (which path to take), the HDF5 store (ln1's shape) and the memory
 * estimate (the split path's buffers) ask this one question; a new split kind is added here
 * alone. */
static inline bool hk_point_kind_splits_inputs(hk_point_kind k) {
    return k == HK_PT_ATTN_IN || k == HK_PT_Q_INPUT || k == HK_PT_K_INPUT || k == HK_PT_V_INPUT;
}

typedef struct {
    hk_hook_point *points; /* [n] in execution order; names owned by `names` */
    size_t n;
    hk_point_kind *kinds;  /* [n] */
    int32_t *index;        /* [(n_layers + 1) * HK_PT_COUNT]: point index or -1 */
    char *names;           /* one block holding every name */
    int64_t n_layers;
} hk_points;

/* Build the table for a config. */
hk_status hk_points_build(const hk_config *c, hk_points *out);
void hk_points_free(hk_points *p);

/* Point index of (layer, kind); layer is ignored for non-block kinds. -1 if the model has no
 * such point. */
static inline int32_t hk_points_index(const hk_points *p, int64_t layer, hk_point_kind kind) {
    int64_t row = (kind >= HK_PT_BLOCK_FIRST && kind <= HK_PT_BLOCK_LAST) ? layer : p->n_layers;
    return p->index[row * HK_PT_COUNT + kind];
}

/* The name after "blocks.N." ("attn.hook_pattern") or the whole name for global points.
 * Models with an embedding LayerNorm (BERT) name their embedding points as
 * TransformerLens's HookedEncoder does ("embed.hook_embed"). */
const char *hk_point_suffix(const hk_config *c, hk_point_kind kind);

/* HK_ERR_NOT_FOUND for a name or glob that matches no point of pts: "[who: ]hook 'X' matches
 * no hook point of this <family> model (L layers): did you mean A or B? (...)", with the
 * nearest names (or the layer range, for blocks.N past the last layer). hooks/hook_suggest.c */
hk_status hk_hook_not_found(const hk_points *pts, const char *family, const char *pattern,
                            const char *who);

#endif
