#include "bind.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "core/json.h"

static hk_status bind_2d(hk_ckpt *ck, const char *prefix, int64_t rows, int64_t cols,
                         const float **w) {
    char name[512];
    snprintf(name, sizeof name, "%s.weight", prefix);
    int64_t shape[2] = {rows, cols};
    return hk_ckpt_f32(ck, name, 2, shape, w);
}

static hk_status bind_bias(hk_ckpt *ck, const char *prefix, int64_t n, bool bias,
                           const float **b) {
    *b = NULL;
    if (!bias) return HK_OK;
    char name[512];
    snprintf(name, sizeof name, "%s.bias", prefix);
    return hk_ckpt_f32(ck, name, 1, &n, b);
}

void hk_bind_blocks(const hk_ckpt *ck, hk_linear *l) {
    uint32_t type;
    const void *data;
    size_t row_bytes;
    l->qw = NULL;
    if (!hk_ckpt_keep_blocks(ck) || l->in_out || l->ld != l->n_in ||
        !hk_ckpt_blocks_of(ck, l->w, &type, &data, &row_bytes) ||
        !hk_k_qlinear_supports(type, l->n_in))
        return;
    l->qw = data;
    l->q_ld = row_bytes;
    l->qtype = type;
}

hk_status hk_bind_linear(hk_ckpt *ck, const char *prefix, int64_t n_out, int64_t n_in, bool bias,
                         hk_linear *out) {
    *out = (hk_linear){.n_in = n_in, .n_out = n_out, .ld = n_in, .in_out = false};
    hk_status st = bind_2d(ck, prefix, n_out, n_in, &out->w);
    if (st != HK_OK) return st;
    hk_bind_blocks(ck, out);
    return bind_bias(ck, prefix, n_out, bias, &out->b);
}

hk_status hk_bind_conv1d(hk_ckpt *ck, const char *prefix, int64_t n_in, int64_t n_out, bool bias,
                         hk_linear *out) {
    *out = (hk_linear){.n_in = n_in, .n_out = n_out, .ld = n_out, .in_out = true};
    hk_status st = bind_2d(ck, prefix, n_in, n_out, &out->w);
    return st != HK_OK ? st : bind_bias(ck, prefix, n_out, bias, &out->b);
}

hk_status hk_bind_norm(hk_ckpt *ck, const char *prefix, int64_t d, bool bias,
                       hk_norm_weights *out) {
    char name[512];
    snprintf(name, sizeof name, "%s.weight", prefix);
    hk_status st = hk_ckpt_f32(ck, name, 1, &d, &out->w);
    return st != HK_OK ? st : bind_bias(ck, prefix, d, bias, &out->b);
}

hk_status hk_bind_norm_plus1(hk_ckpt *ck, const char *prefix, int64_t d, hk_norm_weights *out) {
    char name[512];
    snprintf(name, sizeof name, "%s.weight", prefix);
    const float *w;
    hk_status st = hk_ckpt_f32(ck, name, 1, &d, &w);
    if (st != HK_OK) return st;
    float *plus1 = hk_ckpt_alloc_f32(ck, (size_t)d); /* [d] */
    if (!plus1) return HK_ERR_NOMEM;
    for (int64_t i = 0; i < d; i++) plus1[i] = 1.0f + w[i];
    *out = (hk_norm_weights){.w = plus1, .b = NULL};
    return HK_OK;
}

hk_linear hk_linear_slice(const hk_linear *fused, int64_t first, int64_t n) {
    hk_linear l = *fused;
    l.n_out = n;
    /* [out, in]: rows first..first+n; [in, out]: columns first..first+n (same ld) */
    l.w = fused->in_out ? fused->w + first : fused->w + first * fused->ld;
    l.b = fused->b ? fused->b + first : NULL;
    if (fused->qw) l.qw = (const uint8_t *)fused->qw + (size_t)first * fused->q_ld;
    return l;
}

hk_status hk_bind_unembed(hk_ckpt *ck, const char *name, const hk_config *cfg,
                          const float *tok_embed, hk_linear *out) {
    int64_t shape[2] = {cfg->d_vocab, cfg->d_model};
    *out = (hk_linear){.n_in = cfg->d_model, .n_out = cfg->d_vocab, .ld = cfg->d_model};
    if (hk_ckpt_find(ck, name)) {
        hk_status st = hk_ckpt_f32(ck, name, 2, shape, &out->w);
        if (st == HK_OK) hk_bind_blocks(ck, out);
        return st;
    }
    if (!cfg->tied_embeddings)
        return hk_errorf(HK_ERR_NOT_FOUND,
                         "checkpoint has no tensor '%s' and the config does not tie the "
                         "embeddings (tie_word_embeddings is false)",
                         name);
    out->w = tok_embed;
    hk_bind_blocks(ck, out); /* the embedding's blocks, when it was dequantized from some */
    return HK_OK;
}

hk_status hk_bind_llama_block_common(hk_ckpt *ck, const hk_config *c, const char *layer_prefix,
                                     int64_t layer, const hk_llama_block_names *names,
                                     hk_block_weights *b) {
    char prefix[128], name[256];
    snprintf(prefix, sizeof prefix, layer_prefix, (long long)layer);
    const int64_t d = c->d_model, dq = c->n_heads * c->d_head;
    hk_status st;
#define NAME(s) (snprintf(name, sizeof name, "%s%s", prefix, s), name)
    if ((st = hk_bind_norm(ck, NAME(names->ln1), d, false, &b->ln1)) ||
        (st = hk_bind_norm(ck, NAME(names->ln2), d, false, &b->ln2)) ||
        (st = hk_bind_linear(ck, NAME(names->o), d, dq, c->o_bias, &b->o)))
        return st;
    return hk_bind_linear(ck, NAME(names->down), d, c->d_mlp, c->mlp_bias, &b->mlp_out);
#undef NAME
}

/* ---- config helpers ---- */

hk_status hk_hf_act(const char *name, const char *path, const char *field, hk_act_kind *out) {
    static const struct { const char *name; hk_act_kind kind; } table[] = {
        {"gelu_new", HK_ACT_GELU_NEW},   {"gelu_pytorch_tanh", HK_ACT_GELU_NEW},
        {"gelu_fast", HK_ACT_GELU_NEW},  {"gelu", HK_ACT_GELU},
        {"silu", HK_ACT_SILU},           {"swish", HK_ACT_SILU},
        {"relu", HK_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0) {
            *out = table[i].kind;
            return HK_OK;
        }
    return hk_errorf(HK_ERR_UNSUPPORTED,
                     "%s: field '%s' is \"%s\", expected one of gelu_new, gelu_pytorch_tanh, "
                     "gelu_fast, gelu, silu, swish, relu",
                     path, field, name);
}

/* A number field looked up first in the rope dict, then at the top level. */
static hk_status rope_num(const cJSON *params, const cJSON *json, const char *key,
                          const char *path, double dflt, double *out) {
    if (params && cJSON_GetObjectItemCaseSensitive(params, key))
        return hk_json_num_opt(params, key, path, dflt, out);
    return hk_json_num_opt(json, key, path, dflt, out);
}

static hk_status rope_factors(const cJSON *params, const char *key, const char *path,
                              int64_t n, double *out) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(params, key);
    if (!arr) return hk_errorf(HK_ERR_NOT_FOUND, "%s: longrope field '%s' is missing", path, key);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: longrope field '%s' must be an array of %lld numbers "
                         "(rotary dims / 2), got %d entries",
                         path, key, (long long)n, cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1);
    int64_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble > 0))
            return hk_errorf(HK_ERR_FORMAT, "%s: longrope '%s'[%lld] must be a positive number",
                             path, key, (long long)i);
        out[i++] = e->valuedouble;
    }
    return HK_OK;
}

hk_status hk_hf_rope(const cJSON *json, const char *path, const hk_config *cfg,
                     hk_rope_config *rope) {
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(json, "rope_parameters");
    if (!cJSON_IsObject(params)) params = cJSON_GetObjectItemCaseSensitive(json, "rope_scaling");
    if (!cJSON_IsObject(params)) params = NULL;
    return hk_hf_rope_from(json, params, path, cfg, rope);
}

hk_status hk_hf_rope_from(const cJSON *json, const cJSON *params, const char *path,
                          const hk_config *cfg, hk_rope_config *rope) {
    hk_status st;
    double theta, partial;
    memset(rope, 0, sizeof *rope);
    if ((st = rope_num(params, json, "rope_theta", path, NAN, &theta)) != HK_OK) return st;
    if (isnan(theta) && (st = hk_json_num_opt(json, "rotary_emb_base", path, 10000.0, &theta)))
        return st;
    if ((st = rope_num(params, json, "partial_rotary_factor", path, NAN, &partial))) return st;
    if (isnan(partial) && (st = hk_json_num_opt(json, "rotary_pct", path, 1.0, &partial)))
        return st;
    rope->theta = theta;
    rope->rot_dim = (int64_t)((double)cfg->d_head * partial);
    rope->attention_factor = 1.0;

    char type[32] = "default";
    if (params) {
        if (cJSON_GetObjectItemCaseSensitive(params, "rope_type"))
            st = hk_json_str_opt(params, "rope_type", path, "default", type, sizeof type);
        else
            st = hk_json_str_opt(params, "type", path, "default", type, sizeof type);
        if (st != HK_OK) return st;
    }
    int64_t orig;
    if ((st = hk_json_int_opt(json, "original_max_position_embeddings", path, -1, &orig)))
        return st;
    if (orig < 0 && params &&
        (st = hk_json_int_opt(params, "original_max_position_embeddings", path, -1, &orig)))
        return st;
    if (orig < 0) orig = cfg->max_pos;
    rope->original_max_pos = orig;

    if (strcmp(type, "default") == 0) {
        rope->kind = HK_ROPE_DEFAULT;
    } else if (strcmp(type, "linear") == 0) {
        rope->kind = HK_ROPE_LINEAR;
        if ((st = hk_json_num(params, "factor", path, &rope->factor))) return st;
    } else if (strcmp(type, "llama3") == 0) {
        rope->kind = HK_ROPE_LLAMA3;
        if ((st = hk_json_num(params, "factor", path, &rope->factor)) ||
            (st = hk_json_num(params, "low_freq_factor", path, &rope->low_freq_factor)) ||
            (st = hk_json_num(params, "high_freq_factor", path, &rope->high_freq_factor)))
            return st;
        if (!(rope->high_freq_factor > rope->low_freq_factor))
            return hk_errorf(HK_ERR_FORMAT, "%s: llama3 rope: high_freq_factor must exceed "
                                            "low_freq_factor", path);
    } else if (strcmp(type, "longrope") == 0 || strcmp(type, "su") == 0) {
        rope->kind = HK_ROPE_LONGROPE;
        rope->n_factors = rope->rot_dim / 2;
        if (rope->n_factors <= 0 || rope->n_factors > HK_MAX_ROPE_FACTORS)
            return hk_errorf(HK_ERR_UNSUPPORTED, "%s: longrope with %lld rotary dims is not "
                                                 "supported", path, (long long)rope->rot_dim);
        if ((st = rope_factors(params, "short_factor", path, rope->n_factors,
                               rope->short_factor)) ||
            (st = rope_factors(params, "long_factor", path, rope->n_factors, rope->long_factor)))
            return st;
        /* transformers: factor = max_pos / original unless given; attention factor
         * sqrt(1 + ln(factor) / ln(original)) unless given, 1 when factor <= 1. */
        double factor, attn;
        if ((st = hk_json_num_opt(params, "factor", path, NAN, &factor)) ||
            (st = hk_json_num_opt(params, "attention_factor", path, NAN, &attn)))
            return st;
        if (isnan(factor)) factor = (double)cfg->max_pos / (double)orig;
        if (isnan(attn))
            attn = factor <= 1.0 ? 1.0 : sqrt(1.0 + log(factor) / log((double)orig));
        rope->factor = factor;
        rope->attention_factor = attn;
    } else {
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: rope type \"%s\" is not supported (expected default, linear, "
                         "llama3 or longrope)",
                         path, type);
    }
    return HK_OK;
}

hk_status hk_hf_windows(const cJSON *json, const char *path, hk_config *cfg) {
    hk_status st;
    int64_t window;
    bool use_sliding;
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(json, "sliding_window");
    if ((st = hk_json_int_opt(json, "sliding_window", path, 0, &window))) return st;
    if ((st = hk_json_bool_opt(json, "use_sliding_window", path, true, &use_sliding))) return st;
    /* use_sliding_window false: the value is not used (transformers writes 0 for Qwen2-MoE) */
    if (use_sliding && sw && !cJSON_IsNull(sw) && window <= 0)
        return hk_errorf(HK_ERR_FORMAT, "%s: field 'sliding_window' must be positive or null",
                         path);
    cfg->window = use_sliding ? window : 0;
    if (cfg->window == 0) return HK_OK;

    const cJSON *types = cJSON_GetObjectItemCaseSensitive(json, "layer_types");
    int64_t first_sliding = 0;
    if (cJSON_GetObjectItemCaseSensitive(json, "use_sliding_window") &&
        (st = hk_json_int_opt(json, "max_window_layers", path, 0, &first_sliding)))
        return st;
    if (types && !cJSON_IsNull(types)) {
        if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != cfg->n_layers)
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: field 'layer_types' must be an array of %lld strings", path,
                             (long long)cfg->n_layers);
        for (int64_t l = 0; l < cfg->n_layers; l++) {
            const cJSON *t = cJSON_GetArrayItem(types, (int)l);
            if (!cJSON_IsString(t))
                return hk_errorf(HK_ERR_FORMAT, "%s: layer_types[%lld] must be a string", path,
                                 (long long)l);
            cfg->layer_window[l] = strcmp(t->valuestring, "sliding_attention") == 0;
        }
        return HK_OK;
    }
    for (int64_t l = 0; l < cfg->n_layers && l < HK_MAX_LAYERS; l++)
        cfg->layer_window[l] = l >= first_sliding;
    return HK_OK;
}
