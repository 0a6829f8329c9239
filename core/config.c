/* Canonical config: consistency checks and JSON rendering. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "error.h"

/* ---- validation --------------------------------------------------------- */

static const char *O(const char *origin) { return origin ? origin : "config"; }

static hk_status bad(const char *origin, const char *field, const char *expected, double v) {
    return hk_errorf(HK_ERR_FORMAT, "%s: canonical config field '%s' is %.15g, expected %s",
                     O(origin), field, v, expected);
}

#define POSITIVE(f) \
    if (!(c->f > 0)) return bad(origin, #f, "a positive value", (double)c->f)

static hk_status check_sizes(const hk_config *c, const char *origin) {
    POSITIVE(n_layers);
    POSITIVE(d_model);
    POSITIVE(n_heads);
    POSITIVE(n_kv_heads);
    POSITIVE(d_head);
    POSITIVE(d_mlp);
    POSITIVE(d_vocab);
    if (c->n_layers > HK_MAX_LAYERS)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: %lld layers, at most %d are supported",
                         O(origin), (long long)c->n_layers, HK_MAX_LAYERS);
    if (c->n_heads % c->n_kv_heads != 0)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: n_heads (%lld) is not a multiple of n_kv_heads (%lld)", O(origin),
                         (long long)c->n_heads, (long long)c->n_kv_heads);
    if (c->max_pos < 0) return bad(origin, "max_pos", "0 or more", (double)c->max_pos);
    if (c->window < 0) return bad(origin, "window", "0 (none) or more", (double)c->window);
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return bad(origin, "norm_eps", "a positive number", c->norm_eps);
    if (!(c->attn_scale > 0) || !isfinite(c->attn_scale))
        return bad(origin, "attn_scale", "a positive number", c->attn_scale);
    return HK_OK;
}

static hk_status check_enums(const hk_config *c, const char *origin) {
    if ((unsigned)c->norm > HK_NORM_RMSNORM) return bad(origin, "norm", "a hk_norm_kind", c->norm);
    if ((unsigned)c->pos > HK_POS_NONE) return bad(origin, "pos", "a hk_pos_kind", c->pos);
    if ((unsigned)c->act > HK_ACT_RELU) return bad(origin, "act", "a hk_act_kind", c->act);
    if ((unsigned)c->head > HK_HEAD_MLM) return bad(origin, "head", "a hk_head_kind", c->head);
    if (memchr(c->family, '\0', sizeof c->family) == NULL ||
        memchr(c->architecture, '\0', sizeof c->architecture) == NULL)
        return hk_errorf(HK_ERR_FORMAT, "%s: family/architecture is not NUL-terminated", O(origin));
    return HK_OK;
}

static hk_status check_factors(const double *f, int64_t n, const char *origin,
                               const char *field) {
    for (int64_t i = 0; i < n; i++)
        if (!(f[i] > 0) || !isfinite(f[i]))
            return hk_errorf(HK_ERR_FORMAT, "%s: canonical config field 'rope.%s[%lld]' is %.15g, "
                             "expected a positive number", O(origin), field, (long long)i, f[i]);
    return HK_OK;
}

static hk_status check_rope(const hk_config *c, const hk_rope_config *r, const char *origin) {
    if ((unsigned)r->kind > HK_ROPE_LONGROPE) return bad(origin, "rope.kind", "a hk_rope_kind", r->kind);
    if (!(r->rot_dim > 0 && r->rot_dim <= c->d_head))
        return hk_errorf(HK_ERR_FORMAT, "%s: canonical config field 'rope.rot_dim' is %lld, "
                         "expected 0 < rot_dim <= d_head (%lld)", O(origin),
                         (long long)r->rot_dim, (long long)c->d_head);
    if (r->rot_dim % 2 != 0) return bad(origin, "rope.rot_dim", "an even number", (double)r->rot_dim);
    if (!(r->theta > 0) || !isfinite(r->theta))
        return bad(origin, "rope.theta", "a positive number", r->theta);
    if (r->kind == HK_ROPE_LINEAR || r->kind == HK_ROPE_LLAMA3)
        if (!(r->factor > 0) || !isfinite(r->factor))
            return bad(origin, "rope.factor", "a positive number", r->factor);
    if (r->kind == HK_ROPE_LLAMA3) {
        /* HF divides by (high_freq_factor - low_freq_factor) */
        if (!(r->low_freq_factor > 0))
            return bad(origin, "rope.low_freq_factor", "a positive number", r->low_freq_factor);
        if (!(r->high_freq_factor > r->low_freq_factor))
            return bad(origin, "rope.high_freq_factor", "a number above low_freq_factor",
                       r->high_freq_factor);
    }
    if (r->kind == HK_ROPE_LLAMA3 || r->kind == HK_ROPE_LONGROPE)
        if (!(r->original_max_pos > 0))
            return bad(origin, "rope.original_max_pos", "a positive value",
                       (double)r->original_max_pos);
    if (r->kind == HK_ROPE_LONGROPE) {
        if (r->n_factors != r->rot_dim / 2 || r->n_factors > HK_MAX_ROPE_FACTORS)
            return hk_errorf(HK_ERR_FORMAT, "%s: canonical config field 'rope.n_factors' is %lld, "
                             "expected rot_dim/2 = %lld (at most %d)", O(origin),
                             (long long)r->n_factors, (long long)(r->rot_dim / 2),
                             HK_MAX_ROPE_FACTORS);
        hk_status st;
        if ((st = check_factors(r->short_factor, r->n_factors, origin, "short_factor")) ||
            (st = check_factors(r->long_factor, r->n_factors, origin, "long_factor")))
            return st;
        if (!(r->attention_factor > 0) || !isfinite(r->attention_factor))
            return bad(origin, "rope.attention_factor", "a positive number", r->attention_factor);
    }
    return HK_OK;
}

hk_status hk_config_validate(const hk_config *c, const char *origin) {
    if (!c) return hk_errorf(HK_ERR_INVALID_ARG, "%s: NULL config", O(origin));
    hk_status st;
    if ((st = check_enums(c, origin)) || (st = check_sizes(c, origin))) return st;
    if (c->n_token_types < 0)
        return bad(origin, "n_token_types", "0 (none) or more", (double)c->n_token_types);
    if (c->post_norm && c->parallel_attn_mlp)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: post-norm blocks with parallel attention and "
                                             "MLP are not supported", O(origin));
    if ((unsigned)c->qk_norm > HK_QK_NORM_FULL)
        return bad(origin, "qk_norm", "a hk_qk_norm_kind", c->qk_norm);
    if (!(c->embed_scale >= 0) || !isfinite(c->embed_scale))
        return bad(origin, "embed_scale", "0 (none) or a positive number", c->embed_scale);
    if (!(c->attn_softcap >= 0) || !isfinite(c->attn_softcap))
        return bad(origin, "attn_softcap", "0 (off) or a positive number", c->attn_softcap);
    if (!(c->final_softcap >= 0) || !isfinite(c->final_softcap))
        return bad(origin, "final_softcap", "0 (off) or a positive number", c->final_softcap);
    if (c->n_experts < 0 || c->n_experts > HK_MAX_EXPERTS)
        return bad(origin, "n_experts", "0 (dense) .. " HK_STR(HK_MAX_EXPERTS), (double)c->n_experts);
    if (c->n_experts > 0 && !(c->n_experts_used >= 1 && c->n_experts_used <= c->n_experts))
        return bad(origin, "n_experts_used", "1 .. n_experts", (double)c->n_experts_used);
    if (c->d_shared_expert < 0 || (c->d_shared_expert > 0 && c->n_experts == 0))
        return bad(origin, "d_shared_expert", "0, or positive with n_experts > 0",
                   (double)c->d_shared_expert);
    if (c->n_experts > 0 && !c->gated_mlp)
        return bad(origin, "gated_mlp", "true for mixture-of-experts layers", 0);
    if (c->pos != HK_POS_ROTARY) return HK_OK;
    if ((st = check_rope(c, &c->rope, origin))) return st;
    if (c->has_rope_local) {
        if (c->rope_local.rot_dim != c->rope.rot_dim)
            return bad(origin, "rope_local.rot_dim", "rope.rot_dim", (double)c->rope_local.rot_dim);
        return check_rope(c, &c->rope_local, origin);
    }
    return HK_OK;
}

/* ---- JSON --------------------------------------------------------------- */

static const char *norm_name(hk_norm_kind k) {
    switch (k) {
    case HK_NORM_LAYERNORM: return "layernorm";
    case HK_NORM_RMSNORM: return "rmsnorm";
    }
    return "unknown";
}

static const char *pos_name(hk_pos_kind k) {
    switch (k) {
    case HK_POS_LEARNED: return "learned";
    case HK_POS_ROTARY: return "rotary";
    case HK_POS_NONE: return "none";
    }
    return "unknown";
}

static const char *act_name(hk_act_kind k) {
    switch (k) {
    case HK_ACT_GELU_NEW: return "gelu_new";
    case HK_ACT_GELU: return "gelu";
    case HK_ACT_SILU: return "silu";
    case HK_ACT_RELU: return "relu";
    }
    return "unknown";
}

static const char *head_name(hk_head_kind k) {
    switch (k) {
    case HK_HEAD_LM: return "lm";
    case HK_HEAD_NONE: return "none";
    case HK_HEAD_MLM: return "mlm";
    }
    return "unknown";
}

static const char *rope_name(hk_rope_kind k) {
    switch (k) {
    case HK_ROPE_DEFAULT: return "default";
    case HK_ROPE_LINEAR: return "linear";
    case HK_ROPE_LLAMA3: return "llama3";
    case HK_ROPE_LONGROPE: return "longrope";
    }
    return "unknown";
}

/* cJSON_Add* return NULL on failure; `ok` collects that so the builders stay flat. */
static void add_num(cJSON *o, const char *k, double v, bool *ok) {
    if (!cJSON_AddNumberToObject(o, k, v)) *ok = false;
}
static void add_str(cJSON *o, const char *k, const char *v, bool *ok) {
    if (!cJSON_AddStringToObject(o, k, v)) *ok = false;
}
static void add_bool(cJSON *o, const char *k, bool v, bool *ok) {
    if (!cJSON_AddBoolToObject(o, k, v)) *ok = false;
}

static void add_factors(cJSON *o, const char *k, const double *f, int64_t n, bool *ok) {
    if (n < 0 || n > HK_MAX_ROPE_FACTORS) n = 0;
    cJSON *a = cJSON_CreateDoubleArray(f, (int)n);
    if (!a || !cJSON_AddItemToObject(o, k, a)) {
        cJSON_Delete(a);
        *ok = false;
    }
}

static void add_rope(cJSON *root, const char *key, const hk_rope_config *r, bool *ok) {
    cJSON *o = cJSON_AddObjectToObject(root, key);
    if (!o) {
        *ok = false;
        return;
    }
    add_str(o, "kind", rope_name(r->kind), ok);
    add_num(o, "theta", r->theta, ok);
    add_num(o, "rot_dim", (double)r->rot_dim, ok);
    add_num(o, "factor", r->factor, ok);
    add_num(o, "low_freq_factor", r->low_freq_factor, ok);
    add_num(o, "high_freq_factor", r->high_freq_factor, ok);
    add_num(o, "original_max_pos", (double)r->original_max_pos, ok);
    add_num(o, "attention_factor", r->attention_factor, ok);
    if (r->kind == HK_ROPE_LONGROPE) {
        add_factors(o, "short_factor", r->short_factor, r->n_factors, ok);
        add_factors(o, "long_factor", r->long_factor, r->n_factors, ok);
    }
}

/* Per-layer sliding-window flags, only meaningful when a window is set. */
static void add_layer_window(cJSON *root, const hk_config *c, bool *ok) {
    cJSON *a = cJSON_AddArrayToObject(root, "layer_window");
    if (!a) {
        *ok = false;
        return;
    }
    const int64_t n = c->n_layers < HK_MAX_LAYERS ? c->n_layers : HK_MAX_LAYERS;
    for (int64_t l = 0; l < n && *ok; l++) {
        cJSON *b = cJSON_CreateBool(c->layer_window[l]);
        if (!b || !cJSON_AddItemToArray(a, b)) {
            cJSON_Delete(b);
            *ok = false;
        }
    }
}

char *hk_config_to_json(const hk_config *c) {
    if (!c) return NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    bool ok = true;
    char family[sizeof c->family + 1], arch[sizeof c->architecture + 1];
    snprintf(family, sizeof family, "%.*s", (int)sizeof c->family, c->family);
    snprintf(arch, sizeof arch, "%.*s", (int)sizeof c->architecture, c->architecture);
    add_str(root, "family", family, &ok);
    add_str(root, "architecture", arch, &ok);
    add_num(root, "n_layers", (double)c->n_layers, &ok);
    add_num(root, "d_model", (double)c->d_model, &ok);
    add_num(root, "n_heads", (double)c->n_heads, &ok);
    add_num(root, "n_kv_heads", (double)c->n_kv_heads, &ok);
    add_num(root, "d_head", (double)c->d_head, &ok);
    add_num(root, "d_mlp", (double)c->d_mlp, &ok);
    add_num(root, "d_vocab", (double)c->d_vocab, &ok);
    add_num(root, "max_pos", (double)c->max_pos, &ok);
    add_str(root, "norm", norm_name(c->norm), &ok);
    add_num(root, "norm_eps", c->norm_eps, &ok);
    add_str(root, "pos", pos_name(c->pos), &ok);
    if (c->pos == HK_POS_ROTARY) add_rope(root, "rope", &c->rope, &ok);
    if (c->pos == HK_POS_ROTARY && c->has_rope_local)
        add_rope(root, "rope_local", &c->rope_local, &ok);
    add_str(root, "act", act_name(c->act), &ok);
    add_bool(root, "gated_mlp", c->gated_mlp, &ok);
    add_bool(root, "parallel_attn_mlp", c->parallel_attn_mlp, &ok);
    add_bool(root, "qkv_bias", c->qkv_bias, &ok);
    add_bool(root, "o_bias", c->o_bias, &ok);
    add_bool(root, "mlp_bias", c->mlp_bias, &ok);
    add_bool(root, "norm_bias", c->norm_bias, &ok);
    add_bool(root, "unembed_bias", c->unembed_bias, &ok);
    add_bool(root, "tied_embeddings", c->tied_embeddings, &ok);
    add_bool(root, "causal", c->causal, &ok);
    add_num(root, "window", (double)c->window, &ok);
    if (c->window > 0) add_layer_window(root, c, &ok);
    add_num(root, "attn_scale", c->attn_scale, &ok);
    add_bool(root, "post_norm", c->post_norm, &ok);
    add_bool(root, "embed_norm", c->embed_norm, &ok);
    add_num(root, "n_token_types", (double)c->n_token_types, &ok);
    add_str(root, "head", head_name(c->head), &ok);
    /* family flags: written only when set, so older families' JSON is unchanged */
    if (c->no_input_norms) add_bool(root, "no_input_norms", true, &ok);
    if (c->attn_post_norm) add_bool(root, "attn_post_norm", true, &ok);
    if (c->mlp_post_norm) add_bool(root, "mlp_post_norm", true, &ok);
    if (c->qk_norm) add_str(root, "qk_norm", c->qk_norm == HK_QK_NORM_HEAD ? "head" : "full", &ok);
    if (c->embed_scale > 0) add_num(root, "embed_scale", c->embed_scale, &ok);
    if (c->attn_softcap > 0) add_num(root, "attn_softcap", c->attn_softcap, &ok);
    if (c->final_softcap > 0) add_num(root, "final_softcap", c->final_softcap, &ok);
    if (c->n_experts > 0) {
        add_num(root, "n_experts", (double)c->n_experts, &ok);
        add_num(root, "n_experts_used", (double)c->n_experts_used, &ok);
        add_bool(root, "moe_norm_topk", c->moe_norm_topk, &ok);
        if (c->d_shared_expert > 0) add_num(root, "d_shared_expert", (double)c->d_shared_expert, &ok);
    }
    char *s = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    return s;
}
