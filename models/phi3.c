/* Phi-3: a Llama-like decoder with fused qkv_proj ([q; k; v] rows) and gate_up_proj
 * ([gate; up] rows), LongRoPE scaling. */
#include <stdio.h>

#include "adapter.h"
#include "bind.h"
#include "core/error.h"
#include "core/json.h"


static hk_status phi3_config(const cJSON *j, const char *path, hk_config *c) {
    hk_status st = hk_llama_like_config(j, path, c);
    if (st != HK_OK) return st;
    c->qkv_bias = c->o_bias = c->mlp_bias = false;
    return HK_OK;
}

static hk_status phi3_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    static const hk_llama_block_names names = {"input_layernorm", "post_attention_layernorm",
                                               "self_attn.o_proj", "mlp.down_proj"};
    char name[256];
    int64_t d = c->d_model, dq = c->n_heads * c->d_head, dkv = c->n_kv_heads * c->d_head;
    hk_status st;
    int64_t emb_shape[2] = {c->d_vocab, d};
    if ((st = hk_ckpt_f32(ck, "model.embed_tokens.weight", 2, emb_shape, &w->tok_embed)))
        return st;
    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_block_weights *b = &w->blocks[l];
        hk_linear qkv, gate_up;
#define NAME(s) (snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, s), name)
        if ((st = hk_bind_llama_block_common(ck, c, "model.layers.%lld.", l, &names, b)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.qkv_proj"), dq + 2 * dkv, d, false, &qkv)) ||
            (st = hk_bind_linear(ck, NAME("mlp.gate_up_proj"), 2 * c->d_mlp, d, false,
                                 &gate_up)))
            return st;
#undef NAME
        b->q = hk_linear_slice(&qkv, 0, dq);
        b->k = hk_linear_slice(&qkv, dq, dkv);
        b->v = hk_linear_slice(&qkv, dq + dkv, dkv);
        b->mlp_gate = hk_linear_slice(&gate_up, 0, c->d_mlp);
        b->mlp_in = hk_linear_slice(&gate_up, c->d_mlp, c->d_mlp);
    }
    if ((st = hk_bind_norm(ck, "model.norm", d, false, &w->ln_final))) return st;
    return hk_bind_unembed(ck, "lm_head.weight", c, w->tok_embed, &w->unembed);
}

static const char *const phi3_types[] = {"phi3", NULL};
const hk_adapter hk_adapter_phi3 = {"phi3", phi3_types, phi3_config, phi3_weights};
