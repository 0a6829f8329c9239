/* GPT-2: learned positions, LayerNorm with bias, Conv1D weights ([in, out]), gelu_new,
 * embeddings tied to the unembedding. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "bind.h"
#include "core/error.h"
#include "core/json.h"

static hk_status gpt2_config(const cJSON *j, const char *path, hk_config *c) {
    hk_status st;
    int64_t n_inner;
    char act[32];
    bool by_layer, scale_weights;
    if ((st = hk_json_int(j, "n_layer", path, &c->n_layers)) ||
        (st = hk_json_int(j, "n_embd", path, &c->d_model)) ||
        (st = hk_json_int(j, "n_head", path, &c->n_heads)) ||
        (st = hk_json_int(j, "vocab_size", path, &c->d_vocab)) ||
        (st = hk_json_int(j, "n_positions", path, &c->max_pos)) ||
        (st = hk_json_int_opt(j, "n_inner", path, 0, &n_inner)) ||
        (st = hk_json_num_opt(j, "layer_norm_epsilon", path, 1e-5, &c->norm_eps)) ||
        (st = hk_json_str_opt(j, "activation_function", path, "gelu_new", act, sizeof act)) ||
        (st = hk_json_bool_opt(j, "tie_word_embeddings", path, true, &c->tied_embeddings)) ||
        (st = hk_json_bool_opt(j, "scale_attn_by_inverse_layer_idx", path, false, &by_layer)) ||
        (st = hk_json_bool_opt(j, "scale_attn_weights", path, true, &scale_weights)) ||
        (st = hk_hf_act(act, path, "activation_function", &c->act)))
        return st;
    if (by_layer)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: scale_attn_by_inverse_layer_idx = true is not supported", path);
    c->n_kv_heads = c->n_heads;
    c->d_head = c->n_heads > 0 ? c->d_model / c->n_heads : 0;
    c->d_mlp = n_inner > 0 ? n_inner : 4 * c->d_model;
    c->norm = HK_NORM_LAYERNORM;
    c->norm_bias = true;
    c->pos = HK_POS_LEARNED;
    c->qkv_bias = c->o_bias = c->mlp_bias = true;
    c->causal = true;
    if (c->n_heads <= 0 || c->d_model % c->n_heads != 0)
        return hk_errorf(HK_ERR_FORMAT, "%s: n_embd (%lld) must be a multiple of n_head (%lld)",
                         path, (long long)c->d_model, (long long)c->n_heads);
    c->attn_scale = scale_weights ? 1.0 / sqrt((double)c->d_head) : 1.0;
    return HK_OK;
}

/* HF GPT2LMHeadModel prefixes "transformer."; the original OpenAI export does not. */
static const char *gpt2_prefix(const hk_ckpt *ck) {
    return hk_ckpt_find(ck, "transformer.wte.weight") ? "transformer." : "";
}

static hk_status gpt2_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    const char *p = gpt2_prefix(ck);
    char name[256];
    int64_t d = c->d_model;
    hk_status st;
    int64_t emb_shape[2] = {c->d_vocab, d};
    snprintf(name, sizeof name, "%swte.weight", p);
    if ((st = hk_ckpt_f32(ck, name, 2, emb_shape, &w->tok_embed))) return st;
    const hk_st_tensor *wpe;
    snprintf(name, sizeof name, "%swpe.weight", p);
    if (!(wpe = hk_ckpt_find(ck, name)))
        return hk_errorf(HK_ERR_NOT_FOUND, "checkpoint has no tensor '%s'", name);
    int64_t pos_shape[2] = {wpe->ndim == 2 ? wpe->shape[0] : -1, d};
    if ((st = hk_ckpt_f32(ck, name, 2, pos_shape, &w->pos_embed))) return st;
    w->n_pos = pos_shape[0];

    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_block_weights *b = &w->blocks[l];
        char pre[200];
        hk_linear qkv;
        snprintf(pre, sizeof pre, "%sh.%lld", p, (long long)l);
#define NAME(s) (snprintf(name, sizeof name, "%s.%s", pre, s), name)
        if ((st = hk_bind_norm(ck, NAME("ln_1"), d, true, &b->ln1)) ||
            (st = hk_bind_norm(ck, NAME("ln_2"), d, true, &b->ln2)) ||
            (st = hk_bind_conv1d(ck, NAME("attn.c_attn"), d, 3 * d, true, &qkv)) ||
            (st = hk_bind_conv1d(ck, NAME("attn.c_proj"), d, d, true, &b->o)) ||
            (st = hk_bind_conv1d(ck, NAME("mlp.c_fc"), d, c->d_mlp, true, &b->mlp_in)) ||
            (st = hk_bind_conv1d(ck, NAME("mlp.c_proj"), c->d_mlp, d, true, &b->mlp_out)))
            return st;
#undef NAME
        b->q = hk_linear_slice(&qkv, 0, d);
        b->k = hk_linear_slice(&qkv, d, d);
        b->v = hk_linear_slice(&qkv, 2 * d, d);
    }
    snprintf(name, sizeof name, "%sln_f", p);
    if ((st = hk_bind_norm(ck, name, d, true, &w->ln_final))) return st;
    return hk_bind_unembed(ck, "lm_head.weight", c, w->tok_embed, &w->unembed);
}

static const char *const gpt2_types[] = {"gpt2", NULL};
const hk_adapter hk_adapter_gpt2 = {"gpt2", gpt2_types, gpt2_config, gpt2_weights};
