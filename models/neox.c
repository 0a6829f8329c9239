/* GPT-NeoX / Pythia: LayerNorm with bias, partial rotary, parallel attention and MLP, exact
 * gelu, untied embed_out. query_key_value interleaves per head: output row
 * h*3*d_head + {0: q, 1: k, 2: v}*d_head + i, so q/k/v are gathered into owned buffers. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "bind.h"
#include "core/error.h"
#include "core/json.h"

static hk_status neox_config(const cJSON *j, const char *path, hk_config *c) {
    hk_status st;
    char act[32];
    bool attn_bias;
    if ((st = hk_json_int(j, "num_hidden_layers", path, &c->n_layers)) ||
        (st = hk_json_int(j, "hidden_size", path, &c->d_model)) ||
        (st = hk_json_int(j, "num_attention_heads", path, &c->n_heads)) ||
        (st = hk_json_int(j, "intermediate_size", path, &c->d_mlp)) ||
        (st = hk_json_int(j, "vocab_size", path, &c->d_vocab)) ||
        (st = hk_json_int_opt(j, "max_position_embeddings", path, 0, &c->max_pos)) ||
        (st = hk_json_num_opt(j, "layer_norm_eps", path, 1e-5, &c->norm_eps)) ||
        (st = hk_json_str_opt(j, "hidden_act", path, "gelu", act, sizeof act)) ||
        (st = hk_hf_act(act, path, "hidden_act", &c->act)) ||
        (st = hk_json_bool_opt(j, "use_parallel_residual", path, true,
                               &c->parallel_attn_mlp)) ||
        (st = hk_json_bool_opt(j, "attention_bias", path, true, &attn_bias)) ||
        (st = hk_json_bool_opt(j, "tie_word_embeddings", path, false, &c->tied_embeddings)))
        return st;
    if (c->n_heads <= 0 || c->d_model % c->n_heads != 0)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: hidden_size (%lld) must be a multiple of num_attention_heads (%lld)",
                         path, (long long)c->d_model, (long long)c->n_heads);
    c->n_kv_heads = c->n_heads;
    c->d_head = c->d_model / c->n_heads;
    c->norm = HK_NORM_LAYERNORM;
    c->norm_bias = true;
    c->pos = HK_POS_ROTARY;
    c->qkv_bias = c->o_bias = attn_bias;
    c->mlp_bias = true;
    c->causal = true;
    c->attn_scale = 1.0 / sqrt((double)c->d_head);
    return hk_hf_rope(j, path, c, &c->rope);
}

/* Gather the q, k or v rows (part 0, 1, 2) of the interleaved fused projection. */
static hk_status neox_split(hk_ckpt *ck, const hk_linear *fused, const hk_config *c, int part,
                            hk_linear *out) {
    int64_t dh = c->d_head, d = c->d_model, nh = c->n_heads;
    float *w = hk_ckpt_alloc_f32(ck, (size_t)(nh * dh * d)); /* [nh*dh, d] */
    float *b = fused->b ? hk_ckpt_alloc_f32(ck, (size_t)(nh * dh)) : NULL;
    if (!w || (fused->b && !b))
        return hk_errorf(HK_ERR_NOMEM, "gpt_neox: out of memory splitting query_key_value");
    for (int64_t h = 0; h < nh; h++) {
        int64_t src = h * 3 * dh + part * dh;
        memcpy(w + h * dh * d, fused->w + src * d, (size_t)(dh * d) * sizeof(float));
        if (b) memcpy(b + h * dh, fused->b + src, (size_t)dh * sizeof(float));
    }
    *out = (hk_linear){.w = w, .b = b, .n_in = d, .n_out = nh * dh, .ld = d, .in_out = false};
    return HK_OK;
}

static hk_status neox_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    char name[256];
    int64_t d = c->d_model;
    hk_status st;
    int64_t emb_shape[2] = {c->d_vocab, d};
    if ((st = hk_ckpt_f32(ck, "gpt_neox.embed_in.weight", 2, emb_shape, &w->tok_embed)))
        return st;
    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_block_weights *b = &w->blocks[l];
        hk_linear qkv;
#define NAME(s) (snprintf(name, sizeof name, "gpt_neox.layers.%lld.%s", (long long)l, s), name)
        if ((st = hk_bind_norm(ck, NAME("input_layernorm"), d, true, &b->ln1)) ||
            (st = hk_bind_norm(ck, NAME("post_attention_layernorm"), d, true, &b->ln2)) ||
            (st = hk_bind_linear(ck, NAME("attention.query_key_value"), 3 * d, d, c->qkv_bias,
                                 &qkv)) ||
            (st = hk_bind_linear(ck, NAME("attention.dense"), d, d, c->o_bias, &b->o)) ||
            (st = hk_bind_linear(ck, NAME("mlp.dense_h_to_4h"), c->d_mlp, d, true,
                                 &b->mlp_in)) ||
            (st = hk_bind_linear(ck, NAME("mlp.dense_4h_to_h"), d, c->d_mlp, true,
                                 &b->mlp_out)))
            return st;
#undef NAME
        if ((st = neox_split(ck, &qkv, c, 0, &b->q)) || (st = neox_split(ck, &qkv, c, 1, &b->k)) ||
            (st = neox_split(ck, &qkv, c, 2, &b->v)))
            return st;
    }
    if ((st = hk_bind_norm(ck, "gpt_neox.final_layer_norm", d, true, &w->ln_final))) return st;
    return hk_bind_unembed(ck, "embed_out.weight", c, w->tok_embed, &w->unembed);
}

static const char *const neox_types[] = {"gpt_neox", NULL};
const hk_adapter hk_adapter_neox = {"gpt_neox", neox_types, neox_config, neox_weights};
