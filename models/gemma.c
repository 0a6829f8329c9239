/* Gemma 2 ("gemma2") and Gemma 3 ("gemma3_text", and the text tower of "gemma3" checkpoints:
 * config.json's text_config, weights under model.language_model. or language_model.model.).
 *
 * Both: RMSNorm multiplying by (1 + w) in f32 (bound as 1 + w), four norms per block (ln1 =
 * input_layernorm, ln1_post = post_attention_layernorm on the attention output, ln2 =
 * pre_feedforward_layernorm, ln2_post = post_feedforward_layernorm on the MLP output), GeGLU
 * with gelu-tanh, attention scale query_pre_attn_scalar^-0.5, embeddings times sqrt(d_model)
 * (rounded to f32), tied embeddings, sliding windows on some layers.
 * Gemma 2: attention-logit and final-logit soft-caps; sliding on even layers unless
 * layer_types says otherwise. Gemma 3: q/k RMSNorm over d_head before RoPE; layer_types (or
 * sliding_window_pattern: every pattern-th layer global); sliding layers rotate with the
 * local base (rope_local_base_freq, or rope_parameters.sliding_attention), global layers with
 * rope_theta and its scaling (rope_scaling, or rope_parameters.full_attention). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "bind.h"
#include "core/error.h"
#include "core/json.h"

/* Sliding layers: layer_types, else every `pattern`-th layer (1-based) global. */
static hk_status gemma_windows(const cJSON *j, const char *path, int64_t pattern, hk_config *c) {
    hk_status st;
    if ((st = hk_json_int_opt(j, "sliding_window", path, 4096, &c->window))) return st;
    if (c->window <= 0)
        return hk_errorf(HK_ERR_FORMAT, "%s: field 'sliding_window' must be positive", path);
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    if (types && !cJSON_IsNull(types)) return hk_hf_windows(j, path, c);
    if ((st = hk_json_int_opt(j, "sliding_window_pattern", path, pattern, &pattern))) return st;
    if (pattern <= 0)
        return hk_errorf(HK_ERR_FORMAT, "%s: field 'sliding_window_pattern' must be positive",
                         path);
    for (int64_t l = 0; l < c->n_layers; l++) c->layer_window[l] = (l + 1) % pattern != 0;
    return HK_OK;
}

/* Gemma 3's two RoPEs: transformers 5's per-layer-type rope_parameters, or the older
 * rope_theta + rope_scaling (global) and rope_local_base_freq (local). */
static hk_status gemma3_rope(const cJSON *j, const char *path, hk_config *c) {
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    const cJSON *full = cJSON_IsObject(rp) ? cJSON_GetObjectItemCaseSensitive(rp, "full_attention")
                                           : NULL;
    const cJSON *local = cJSON_IsObject(rp)
                             ? cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention")
                             : NULL;
    hk_status st;
    c->has_rope_local = true;
    if (cJSON_IsObject(full) && cJSON_IsObject(local)) {
        if ((st = hk_hf_rope_from(j, full, path, c, &c->rope))) return st;
        return hk_hf_rope_from(j, local, path, c, &c->rope_local);
    }
    if ((st = hk_hf_rope(j, path, c, &c->rope))) return st;
    double base;
    if ((st = hk_json_num_opt(j, "rope_local_base_freq", path, 10000.0, &base))) return st;
    c->rope_local = (hk_rope_config){.kind = HK_ROPE_DEFAULT, .theta = base,
                                     .rot_dim = c->rope.rot_dim, .attention_factor = 1.0,
                                     .original_max_pos = c->rope.original_max_pos};
    return HK_OK;
}

static hk_status gemma_config(const cJSON *top, const char *path, hk_config *c) {
    char type[32], act[32];
    hk_status st = hk_json_str(top, "model_type", path, type, sizeof type);
    if (st != HK_OK) return st;
    const cJSON *j = top;
    if (strcmp(type, "gemma3") == 0) { /* the multimodal wrapper: its text tower */
        j = cJSON_GetObjectItemCaseSensitive(top, "text_config");
        if (!cJSON_IsObject(j))
            return hk_errorf(HK_ERR_FORMAT, "%s: a gemma3 config needs a 'text_config' object",
                             path);
    }
    const bool g3 = strcmp(type, "gemma2") != 0;
    /* missing fields take transformers' defaults (Gemma 3 text_configs often omit them) */
    if ((st = hk_json_int_opt(j, "num_hidden_layers", path, 26, &c->n_layers)) ||
        (st = hk_json_int_opt(j, "hidden_size", path, 2304, &c->d_model)) ||
        (st = hk_json_int_opt(j, "num_attention_heads", path, 8, &c->n_heads)) ||
        (st = hk_json_int_opt(j, "num_key_value_heads", path, 4, &c->n_kv_heads)) ||
        (st = hk_json_int_opt(j, "head_dim", path, 256, &c->d_head)) ||
        (st = hk_json_int_opt(j, "intermediate_size", path, 9216, &c->d_mlp)) ||
        (st = hk_json_int_opt(j, "vocab_size", path, g3 ? 262208 : 256000, &c->d_vocab)) ||
        (st = hk_json_int_opt(j, "max_position_embeddings", path, g3 ? 131072 : 8192,
                              &c->max_pos)) ||
        (st = hk_json_num_opt(j, "rms_norm_eps", path, 1e-6, &c->norm_eps)) ||
        (st = hk_json_str_opt(j, "hidden_activation", path, "gelu_pytorch_tanh", act,
                              sizeof act)) ||
        (st = hk_hf_act(act, path, "hidden_activation", &c->act)) ||
        (st = hk_json_bool_opt(j, "tie_word_embeddings", path, true, &c->tied_embeddings)))
        return st;
    if (c->n_layers > HK_MAX_LAYERS)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: %lld layers (at most %d supported)", path,
                         (long long)c->n_layers, HK_MAX_LAYERS);
    double qpas, attn_cap, final_cap;
    bool attn_bias;
    if ((st = hk_json_num_opt(j, "query_pre_attn_scalar", path, 256, &qpas)) ||
        (st = hk_json_num_opt(j, "attn_logit_softcapping", path, g3 ? 0 : 50.0, &attn_cap)) ||
        (st = hk_json_num_opt(j, "final_logit_softcapping", path, g3 ? 0 : 30.0, &final_cap)) ||
        (st = hk_json_bool_opt(j, "attention_bias", path, false, &attn_bias)))
        return st;
    if (!(qpas > 0))
        return hk_errorf(HK_ERR_FORMAT, "%s: field 'query_pre_attn_scalar' must be positive",
                         path);
    if (!(attn_cap >= 0) || !(final_cap >= 0))
        return hk_errorf(HK_ERR_FORMAT, "%s: soft-capping values must be positive or null", path);
    c->norm = HK_NORM_RMSNORM;
    c->pos = HK_POS_ROTARY;
    c->gated_mlp = true;
    c->causal = true;
    c->qkv_bias = c->o_bias = attn_bias;
    c->attn_scale = 1.0 / sqrt(qpas);
    c->attn_softcap = attn_cap;
    c->final_softcap = final_cap;
    c->attn_post_norm = c->mlp_post_norm = true;
    c->embed_scale = (double)(float)sqrt((double)c->d_model); /* torch.tensor(d**0.5, f32) */
    if (g3) c->qk_norm = HK_QK_NORM_HEAD;
    if ((st = gemma_windows(j, path, g3 ? 6 : 2, c))) return st;
    return g3 ? gemma3_rope(j, path, c) : hk_hf_rope(j, path, c, &c->rope);
}

/* Where the text model's tensors live: "model." (gemma2, gemma3_text), or the text tower of
 * a gemma3 checkpoint (transformers 5: "model.language_model.", older: "language_model.model."). */
static const char *text_prefix(hk_ckpt *ck) {
    static const char *const prefixes[] = {"model.", "model.language_model.",
                                           "language_model.model."};
    char name[128];
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        snprintf(name, sizeof name, "%sembed_tokens.weight", prefixes[i]);
        if (hk_ckpt_find(ck, name)) return prefixes[i];
    }
    return "model.";
}

static hk_status gemma_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    const char *pre = text_prefix(ck);
    char name[256];
    int64_t d = c->d_model, dq = c->n_heads * c->d_head, dkv = c->n_kv_heads * c->d_head;
    hk_status st;
    int64_t emb_shape[2] = {c->d_vocab, d};
    snprintf(name, sizeof name, "%sembed_tokens.weight", pre);
    if ((st = hk_ckpt_f32(ck, name, 2, emb_shape, &w->tok_embed))) return st;
    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_block_weights *b = &w->blocks[l];
#define NAME(s) (snprintf(name, sizeof name, "%slayers.%lld.%s", pre, (long long)l, s), name)
        if ((st = hk_bind_linear(ck, NAME("self_attn.q_proj"), dq, d, c->qkv_bias, &b->q)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.k_proj"), dkv, d, c->qkv_bias, &b->k)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.v_proj"), dkv, d, c->qkv_bias, &b->v)) ||
            (st = hk_bind_linear(ck, NAME("self_attn.o_proj"), d, dq, c->o_bias, &b->o)) ||
            (st = hk_bind_norm_plus1(ck, NAME("input_layernorm"), d, &b->ln1)) ||
            (st = hk_bind_norm_plus1(ck, NAME("post_attention_layernorm"), d, &b->ln1_post)) ||
            (st = hk_bind_norm_plus1(ck, NAME("pre_feedforward_layernorm"), d, &b->ln2)) ||
            (st = hk_bind_norm_plus1(ck, NAME("post_feedforward_layernorm"), d, &b->ln2_post)) ||
            (st = hk_bind_linear(ck, NAME("mlp.gate_proj"), c->d_mlp, d, false, &b->mlp_gate)) ||
            (st = hk_bind_linear(ck, NAME("mlp.up_proj"), c->d_mlp, d, false, &b->mlp_in)) ||
            (st = hk_bind_linear(ck, NAME("mlp.down_proj"), d, c->d_mlp, false, &b->mlp_out)))
            return st;
        if (c->qk_norm == HK_QK_NORM_HEAD &&
            ((st = hk_bind_norm_plus1(ck, NAME("self_attn.q_norm"), c->d_head, &b->q_norm)) ||
             (st = hk_bind_norm_plus1(ck, NAME("self_attn.k_norm"), c->d_head, &b->k_norm))))
            return st;
#undef NAME
    }
    snprintf(name, sizeof name, "%snorm", pre);
    if ((st = hk_bind_norm_plus1(ck, name, d, &w->ln_final))) return st;
    return hk_bind_unembed(ck, "lm_head.weight", c, w->tok_embed, &w->unembed);
}

static const char *const gemma_types[] = {"gemma2", "gemma3_text", "gemma3", NULL};
const hk_adapter hk_adapter_gemma = {"gemma", gemma_types, gemma_config, gemma_weights};
