/* OLMo 2 (model_type "olmo2"): a Llama block with the norms moved after the sub-blocks —
 *   resid_mid = resid_pre + ln1_post(attn(resid_pre)); resid_post = resid_mid + ln2_post(mlp(resid_mid))
 * (no norm before attention or the MLP) — and q/k RMSNorm over the whole projection
 * (q_norm [n_heads * d_head], k_norm [n_kv_heads * d_head]) before RoPE. */
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "bind.h"
#include "core/error.h"
#include "core/json.h"

static hk_status olmo2_config(const cJSON *j, const char *path, hk_config *c) {
    hk_status st = hk_llama_like_config(j, path, c);
    if (st != HK_OK) return st;
    bool attn_bias;
    if ((st = hk_json_bool_opt(j, "attention_bias", path, false, &attn_bias))) return st;
    c->qkv_bias = c->o_bias = attn_bias;
    c->window = 0; /* OLMo 2 has no sliding window */
    c->no_input_norms = true;
    c->attn_post_norm = c->mlp_post_norm = true;
    c->qk_norm = HK_QK_NORM_FULL;
    return HK_OK;
}

static hk_status olmo2_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    char name[256];
    int64_t d = c->d_model, dq = c->n_heads * c->d_head, dkv = c->n_kv_heads * c->d_head;
    hk_status st;
    int64_t emb_shape[2] = {c->d_vocab, d};
    if ((st = hk_ckpt_f32(ck, "model.embed_tokens.weight", 2, emb_shape, &w->tok_embed)))
        return st;
    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_block_weights *b = &w->blocks[l];
#define NAME(s) (snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, s), name)
        if ((st = hk_bind_linear(ck, NAME("self_attn.q_proj"), dq, d, c->qkv_bias, &b->q)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.k_proj"), dkv, d, c->qkv_bias, &b->k)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.v_proj"), dkv, d, c->qkv_bias, &b->v)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.o_proj"), d, dq, c->o_bias, &b->o)) ||
            (st = hk_bind_norm(ck, NAME("self_attn.q_norm"), dq, false, &b->q_norm)) ||
            (st = hk_bind_norm(ck, NAME("self_attn.k_norm"), dkv, false, &b->k_norm)) ||
            (st = hk_bind_norm(ck, NAME("post_attention_layernorm"), d, false, &b->ln1_post)) ||
            (st = hk_bind_norm(ck, NAME("post_feedforward_layernorm"), d, false, &b->ln2_post)) ||
            (st = hk_bind_linear(ck, NAME("mlp.gate_proj"), c->d_mlp, d, false, &b->mlp_gate)) ||
            (st = hk_bind_linear(ck, NAME("mlp.up_proj"), c->d_mlp, d, false, &b->mlp_in)) ||
            (st = hk_bind_linear(ck, NAME("mlp.down_proj"), d, c->d_mlp, false, &b->mlp_out)))
            return st;
#undef NAME
    }
    if ((st = hk_bind_norm(ck, "model.norm", d, false, &w->ln_final))) return st;
    return hk_bind_unembed(ck, "lm_head.weight", c, w->tok_embed, &w->unembed);
}

static const char *const olmo2_types[] = {"olmo2", NULL};
const hk_adapter hk_adapter_olmo2 = {"olmo2", olmo2_types, olmo2_config, olmo2_weights};
