/* Llama-style decoders: RMSNorm, RoPE, SwiGLU, grouped-query attention.
 * Covers llama (and SmolLM2), mistral (sliding window), qwen2 (q/k/v biases) and qwen3
 * (q_norm/k_norm: RMSNorm over each head's d_head before RoPE; sliding layers from
 * layer_types when use_sliding_window is set). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "bind.h"
#include "core/error.h"
#include "core/json.h"

/* Fields every Llama-like config spells the same way. */

hk_status hk_llama_like_config(const cJSON *j, const char *path, hk_config *c) {
    hk_status st;
    char act[32];
    if ((st = hk_json_int(j, "num_hidden_layers", path, &c->n_layers)) ||
        (st = hk_json_int(j, "hidden_size", path, &c->d_model)) ||
        (st = hk_json_int(j, "num_attention_heads", path, &c->n_heads)) ||
        (st = hk_json_int_opt(j, "num_key_value_heads", path, c->n_heads, &c->n_kv_heads)) ||
        (st = hk_json_int(j, "intermediate_size", path, &c->d_mlp)) ||
        (st = hk_json_int(j, "vocab_size", path, &c->d_vocab)) ||
        (st = hk_json_int_opt(j, "max_position_embeddings", path, 0, &c->max_pos)) ||
        (st = hk_json_num_opt(j, "rms_norm_eps", path, 1e-6, &c->norm_eps)) ||
        (st = hk_json_str_opt(j, "hidden_act", path, "silu", act, sizeof act)) ||
        (st = hk_hf_act(act, path, "hidden_act", &c->act)) ||
        (st = hk_json_bool_opt(j, "tie_word_embeddings", path, false, &c->tied_embeddings)))
        return st;
    if (c->n_heads <= 0)
        return hk_errorf(HK_ERR_FORMAT, "%s: num_attention_heads must be positive", path);
    if ((st = hk_json_int_opt(j, "head_dim", path, c->d_model / c->n_heads, &c->d_head)))
        return st;
    if (c->n_layers > HK_MAX_LAYERS)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: %lld layers (at most %d supported)", path,
                         (long long)c->n_layers, HK_MAX_LAYERS);
    c->norm = HK_NORM_RMSNORM;
    c->pos = HK_POS_ROTARY;
    c->gated_mlp = true;
    c->causal = true;
    c->attn_scale = 1.0 / sqrt((double)c->d_head);
    if ((st = hk_hf_rope(j, path, c, &c->rope))) return st;
    return hk_hf_windows(j, path, c);
}

static hk_status llama_config(const cJSON *j, const char *path, hk_config *c) {
    char type[32];
    hk_status st = hk_json_str(j, "model_type", path, type, sizeof type);
    if (st != HK_OK || (st = hk_llama_like_config(j, path, c))) return st;
    if (strcmp(type, "qwen2") == 0) {
        c->qkv_bias = true; /* Qwen2 always has q/k/v biases and no o/MLP biases */
    } else if (strcmp(type, "qwen3") == 0) {
        bool attn_bias; /* Qwen3: no MLP biases; q/k/v/o biases only with attention_bias */
        if ((st = hk_json_bool_opt(j, "attention_bias", path, false, &attn_bias))) return st;
        c->qkv_bias = c->o_bias = attn_bias;
        c->qk_norm = HK_QK_NORM_HEAD;
    } else {
        bool attn_bias;
        if ((st = hk_json_bool_opt(j, "attention_bias", path, false, &attn_bias)) ||
            (st = hk_json_bool_opt(j, "mlp_bias", path, false, &c->mlp_bias)))
            return st;
        c->qkv_bias = c->o_bias = attn_bias;
    }
    if (strcmp(type, "llama") == 0) c->window = 0; /* Llama has no sliding window */
    return HK_OK;
}

static hk_status llama_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
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
#define NAME(s) (snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, s), name)
        if ((st = hk_bind_llama_block_common(ck, c, "model.layers.%lld.", l, &names, b)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.q_proj"), dq, d, c->qkv_bias, &b->q)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.k_proj"), dkv, d, c->qkv_bias, &b->k)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.v_proj"), dkv, d, c->qkv_bias, &b->v)) ||
            (st = hk_bind_linear(ck, NAME("mlp.gate_proj"), c->d_mlp, d, c->mlp_bias,
                                 &b->mlp_gate)) ||
            (st = hk_bind_linear(ck, NAME("mlp.up_proj"), c->d_mlp, d, c->mlp_bias,
                                 &b->mlp_in)))
            return st;
        if (c->qk_norm == HK_QK_NORM_HEAD &&
            ((st = hk_bind_norm(ck, NAME("self_attn.q_norm"), c->d_head, false, &b->q_norm)) ||
             (st = hk_bind_norm(ck, NAME("self_attn.k_norm"), c->d_head, false, &b->k_norm))))
            return st;
#undef NAME
    }
    if ((st = hk_bind_norm(ck, "model.norm", d, false, &w->ln_final))) return st;
    return hk_bind_unembed(ck, "lm_head.weight", c, w->tok_embed, &w->unembed);
}

static const char *const llama_types[] = {"llama", "mistral", "qwen2", "qwen3", NULL};
const hk_adapter hk_adapter_llama = {"llama", llama_types, llama_config, llama_weights};
