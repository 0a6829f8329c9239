#include "points.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct {
    const char *suffix;
    const char *dims; /* names of the dims, in order */
    bool optional;
    const char *encoder_suffix; /* the name in HookedEncoder (embed_norm models) when it differs */
    const char *full_dims; /* dims under qk_norm == HK_QK_NORM_FULL when they differ */
} kind_info;

/* Dims spelled as TransformerLens's docstrings spell them. */
static const kind_info kinds[HK_PT_COUNT] = {
    [HK_PT_EMBED] = {"hook_embed", "batch pos d_model", false, "embed.hook_embed"},
    [HK_PT_POS_EMBED] = {"hook_pos_embed", "batch pos d_model", false, "embed.hook_pos_embed"},
    [HK_PT_TOKEN_TYPE_EMBED] = {"embed.hook_token_type_embed", "batch pos d_model", false},
    [HK_PT_EMBED_LN_SCALE] = {"embed.ln.hook_scale", "batch pos 1", false},
    [HK_PT_EMBED_LN_NORMALIZED] = {"embed.ln.hook_normalized", "batch pos d_model", false},
    [HK_PT_FULL_EMBED] = {"hook_full_embed", "batch pos d_model", false},
    [HK_PT_RESID_PRE] = {"hook_resid_pre", "batch pos d_model", false},
    [HK_PT_ATTN_IN] = {"hook_attn_in", "batch pos head_index d_model", true},
    [HK_PT_Q_INPUT] = {"hook_q_input", "batch pos head_index d_model", true},
    [HK_PT_K_INPUT] = {"hook_k_input", "batch pos kv_head_index d_model", true},
    [HK_PT_V_INPUT] = {"hook_v_input", "batch pos kv_head_index d_model", true},
    [HK_PT_LN1_SCALE] = {"ln1.hook_scale", "batch pos 1", false},
    [HK_PT_LN1_NORMALIZED] = {"ln1.hook_normalized", "batch pos d_model", false},
    [HK_PT_Q] = {"attn.hook_q", "batch pos head_index d_head", false},
    [HK_PT_K] = {"attn.hook_k", "batch pos kv_head_index d_head", false},
    [HK_PT_V] = {"attn.hook_v", "batch pos kv_head_index d_head", false},
    [HK_PT_Q_NORM_SCALE] = {"attn.q_norm.hook_scale", "batch pos head_index 1", false, NULL,
                            "batch pos 1"},
    [HK_PT_Q_NORM_NORMALIZED] = {"attn.q_norm.hook_normalized", "batch pos head_index d_head",
                                 false},
    [HK_PT_K_NORM_SCALE] = {"attn.k_norm.hook_scale", "batch pos kv_head_index 1", false, NULL,
                            "batch pos 1"},
    [HK_PT_K_NORM_NORMALIZED] = {"attn.k_norm.hook_normalized",
                                 "batch pos kv_head_index d_head", false},
    [HK_PT_ROT_Q] = {"attn.hook_rot_q", "batch pos head_index d_head", false},
    [HK_PT_ROT_K] = {"attn.hook_rot_k", "batch pos kv_head_index d_head", false},
    [HK_PT_ATTN_SCORES] = {"attn.hook_attn_scores", "batch head_index query_pos key_pos", false},
    [HK_PT_PATTERN] = {"attn.hook_pattern", "batch head_index query_pos key_pos", false},
    [HK_PT_Z] = {"attn.hook_z", "batch pos head_index d_head", false},
    [HK_PT_RESULT] = {"attn.hook_result", "batch pos head_index d_model", true},
    [HK_PT_LN1_POST_SCALE] = {"ln1_post.hook_scale", "batch pos 1", false},
    [HK_PT_LN1_POST_NORMALIZED] = {"ln1_post.hook_normalized", "batch pos d_model", false},
    [HK_PT_ATTN_OUT] = {"hook_attn_out", "batch pos d_model", false},
    [HK_PT_RESID_MID] = {"hook_resid_mid", "batch pos d_model", false},
    [HK_PT_MLP_IN] = {"hook_mlp_in", "batch pos d_model", true},
    [HK_PT_POST_LN1_SCALE] = {"ln1.hook_scale", "batch pos 1", false},
    [HK_PT_POST_LN1_NORMALIZED] = {"ln1.hook_normalized", "batch pos d_model", false},
    [HK_PT_LN2_SCALE] = {"ln2.hook_scale", "batch pos 1", false},
    [HK_PT_LN2_NORMALIZED] = {"ln2.hook_normalized", "batch pos d_model", false},
    [HK_PT_ROUTER_LOGITS] = {"mlp.hook_router_logits", "batch pos n_experts", false},
    [HK_PT_EXPERT_WEIGHTS] = {"mlp.hook_expert_weights", "batch pos n_experts", false},
    [HK_PT_EXPERT_INDICES] = {"mlp.hook_expert_indices", "batch pos experts_per_token", false},
    [HK_PT_TOPK_WEIGHTS] = {"mlp.hook_topk_weights", "batch pos experts_per_token", false},
    [HK_PT_EXPERT_POST] = {"mlp.hook_expert_post", "batch pos experts_per_token d_mlp", false},
    [HK_PT_SHARED_POST] = {"mlp.shared_expert.hook_post", "batch pos d_shared", false},
    [HK_PT_SHARED_GATE] = {"mlp.hook_shared_expert_gate", "batch pos 1", false},
    [HK_PT_MLP_PRE] = {"mlp.hook_pre", "batch pos d_mlp", false},
    [HK_PT_MLP_PRE_LINEAR] = {"mlp.hook_pre_linear", "batch pos d_mlp", false},
    [HK_PT_MLP_POST] = {"mlp.hook_post", "batch pos d_mlp", false},
    [HK_PT_LN2_POST_SCALE] = {"ln2_post.hook_scale", "batch pos 1", false},
    [HK_PT_LN2_POST_NORMALIZED] = {"ln2_post.hook_normalized", "batch pos d_model", false},
    [HK_PT_MLP_OUT] = {"hook_mlp_out", "batch pos d_model", false},
    [HK_PT_RESID_POST] = {"hook_resid_post", "batch pos d_model", false},
    [HK_PT_POST_LN2_SCALE] = {"ln2.hook_scale", "batch pos 1", false},
    [HK_PT_POST_LN2_NORMALIZED] = {"ln2.hook_normalized", "batch pos d_model", false},
    [HK_PT_NORMALIZED_RESID_POST] = {"hook_normalized_resid_post", "batch pos d_model", false},
    [HK_PT_LN_FINAL_SCALE] = {"ln_final.hook_scale", "batch pos 1", false},
    [HK_PT_LN_FINAL_NORMALIZED] = {"ln_final.hook_normalized", "batch pos d_model", false},
    [HK_PT_MLM_LN_SCALE] = {"mlm_head.ln.hook_scale", "batch pos 1", false},
    [HK_PT_MLM_LN_NORMALIZED] = {"mlm_head.ln.hook_normalized", "batch pos d_model", false},
    [HK_PT_UNEMBED_IN] = {"unembed.hook_in", "batch pos d_model", false},
    [HK_PT_UNEMBED_OUT] = {"unembed.hook_out", "batch pos d_vocab", false},
};

const char *hk_point_suffix(const hk_config *c, hk_point_kind kind) {
    if (kind >= HK_PT_COUNT) return "";
    if (c->embed_norm && kinds[kind].encoder_suffix) return kinds[kind].encoder_suffix;
    return kinds[kind].suffix;
}

/* Does this model have the point? */
static bool present(const hk_config *c, hk_point_kind k) {
    switch (k) {
    case HK_PT_POS_EMBED: return c->pos == HK_POS_LEARNED;
    case HK_PT_TOKEN_TYPE_EMBED: return c->n_token_types > 0;
    case HK_PT_EMBED_LN_SCALE:
    case HK_PT_EMBED_LN_NORMALIZED:
    case HK_PT_FULL_EMBED: return c->embed_norm;
    /* post-norm blocks: no norm before attention; ln1/ln2 sit after the residual adds */
    case HK_PT_LN1_SCALE:
    case HK_PT_LN1_NORMALIZED:
    case HK_PT_LN2_SCALE:
    case HK_PT_LN2_NORMALIZED: return !c->post_norm && !c->no_input_norms;
    case HK_PT_Q_NORM_SCALE:
    case HK_PT_Q_NORM_NORMALIZED:
    case HK_PT_K_NORM_SCALE:
    case HK_PT_K_NORM_NORMALIZED: return c->qk_norm != HK_QK_NORM_NONE;
    case HK_PT_LN1_POST_SCALE:
    case HK_PT_LN1_POST_NORMALIZED: return c->attn_post_norm;
    case HK_PT_LN2_POST_SCALE:
    case HK_PT_LN2_POST_NORMALIZED: return c->mlp_post_norm;
    case HK_PT_POST_LN1_SCALE:
    case HK_PT_POST_LN1_NORMALIZED:
    case HK_PT_POST_LN2_SCALE:
    case HK_PT_POST_LN2_NORMALIZED:
    case HK_PT_NORMALIZED_RESID_POST: return c->post_norm;
    case HK_PT_LN_FINAL_SCALE:
    case HK_PT_LN_FINAL_NORMALIZED: return c->head == HK_HEAD_LM;
    case HK_PT_MLM_LN_SCALE:
    case HK_PT_MLM_LN_NORMALIZED: return c->head == HK_HEAD_MLM;
    case HK_PT_UNEMBED_IN:
    case HK_PT_UNEMBED_OUT: return c->head != HK_HEAD_NONE;
    case HK_PT_ROT_Q:
    case HK_PT_ROT_K: return c->pos == HK_POS_ROTARY;
    case HK_PT_RESID_MID: return !c->parallel_attn_mlp;
    /* one input for q, k and v only works when they have the same number of heads */
    case HK_PT_ATTN_IN: return c->n_kv_heads == c->n_heads && !c->post_norm && !c->no_input_norms;
    case HK_PT_MLP_PRE_LINEAR: return c->gated_mlp && c->n_experts == 0;
    case HK_PT_MLP_PRE:
    case HK_PT_MLP_POST: return c->n_experts == 0;
    case HK_PT_ROUTER_LOGITS:
    case HK_PT_EXPERT_WEIGHTS:
    case HK_PT_EXPERT_INDICES:
    case HK_PT_TOPK_WEIGHTS:
    case HK_PT_EXPERT_POST: return c->n_experts > 0;
    case HK_PT_SHARED_POST:
    case HK_PT_SHARED_GATE: return c->d_shared_expert > 0;
    default: return true;
    }
}

static int64_t dim_size(const hk_config *c, const char *dim, size_t len) {
#define IS(s) (len == strlen(s) && strncmp(dim, s, len) == 0)
    if (IS("d_model")) return c->d_model;
    if (IS("d_head")) return c->d_head;
    if (IS("d_mlp")) return c->d_mlp;
    if (IS("d_vocab")) return c->d_vocab;
    if (IS("head_index")) return c->n_heads;
    if (IS("kv_head_index")) return c->n_kv_heads;
    if (IS("n_experts")) return c->n_experts;
    if (IS("d_shared")) return c->d_shared_expert;
    if (IS("experts_per_token")) return c->n_experts_used;
    if (IS("1")) return 1;
#undef IS
    return -1; /* batch, pos, query_pos, key_pos: set by the run */
}

static void fill_shape(const hk_config *c, const char *dims, hk_hook_point *pt) {
    pt->ndim = 0;
    for (const char *p = dims; *p;) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        pt->shape[pt->ndim++] = dim_size(c, p, len);
        p += len;
        while (*p == ' ') p++;
    }
}

hk_status hk_points_build(const hk_config *c, hk_points *out) {
    memset(out, 0, sizeof *out);
    out->n_layers = c->n_layers;
    size_t cap = (size_t)(c->n_layers + 1) * HK_PT_COUNT;
    out->points = calloc(cap, sizeof *out->points);
    out->kinds = calloc(cap, sizeof *out->kinds);
    out->index = malloc(cap * sizeof *out->index);
    out->names = malloc(cap * 48);
    if (!out->points || !out->kinds || !out->index || !out->names) {
        hk_points_free(out);
        return hk_errorf(HK_ERR_NOMEM, "hook points: out of memory");
    }
    for (size_t i = 0; i < cap; i++) out->index[i] = -1;
    char *name = out->names;
    /* global points before the blocks, the blocks, then global points after */
    for (int pass = 0; pass < 3; pass++) {
        int64_t layers = pass == 1 ? c->n_layers : 1;
        for (int64_t l = 0; l < layers; l++) {
            for (int k = 0; k < HK_PT_COUNT; k++) {
                bool block = k >= HK_PT_BLOCK_FIRST && k <= HK_PT_BLOCK_LAST;
                bool before = k < HK_PT_BLOCK_FIRST;
                if ((pass == 1) != block || (pass == 0 && !before) || (pass == 2 && before))
                    continue;
                if (!present(c, (hk_point_kind)k)) continue;
                hk_hook_point *pt = &out->points[out->n];
                const char *suffix = hk_point_suffix(c, (hk_point_kind)k);
                if (block)
                    snprintf(name, 48, "blocks.%lld.%s", (long long)l, suffix);
                else
                    snprintf(name, 48, "%s", suffix);
                pt->name = name;
                name += strlen(name) + 1;
                pt->layer = block ? l : -1;
                pt->dims = c->qk_norm == HK_QK_NORM_FULL && kinds[k].full_dims
                               ? kinds[k].full_dims
                               : kinds[k].dims;
                pt->optional = kinds[k].optional;
                fill_shape(c, pt->dims, pt);
                out->kinds[out->n] = (hk_point_kind)k;
                out->index[(block ? l : c->n_layers) * HK_PT_COUNT + k] = (int32_t)out->n;
                out->n++;
            }
        }
    }
    return HK_OK;
}

void hk_points_free(hk_points *p) {
    free(p->points);
    free(p->kinds);
    free(p->index);
    free(p->names);
    memset(p, 0, sizeof *p);
}
