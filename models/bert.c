/* BERT encoders (BertModel, BertForMaskedLM, sentence-transformers checkpoints such as
 * all-MiniLM-L6-v2): post-LayerNorm blocks, bidirectional attention, learned absolute
 * positions, token-type embeddings, an embedding LayerNorm, biases everywhere, nn.Linear
 * weights. A checkpoint with cls.predictions.* (BertForMaskedLM, BertForPreTraining) gets the
 * masked-LM head; any other has none and its forward returns hidden states. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "bind.h"
#include "core/error.h"
#include "core/json.h"

/* Architectures whose checkpoints carry the masked-LM head (cls.predictions.*). */
static bool has_mlm_head(const char *arch) {
    return strcmp(arch, "BertForMaskedLM") == 0 || strcmp(arch, "BertForPreTraining") == 0;
}

static hk_status bert_config(const cJSON *j, const char *path, hk_config *c) {
    hk_status st;
    char act[32], pos_type[32];
    bool is_decoder;
    if ((st = hk_json_int(j, "num_hidden_layers", path, &c->n_layers)) ||
        (st = hk_json_int(j, "hidden_size", path, &c->d_model)) ||
        (st = hk_json_int(j, "num_attention_heads", path, &c->n_heads)) ||
        (st = hk_json_int(j, "intermediate_size", path, &c->d_mlp)) ||
        (st = hk_json_int(j, "vocab_size", path, &c->d_vocab)) ||
        (st = hk_json_int(j, "max_position_embeddings", path, &c->max_pos)) ||
        (st = hk_json_int_opt(j, "type_vocab_size", path, 2, &c->n_token_types)) ||
        (st = hk_json_num_opt(j, "layer_norm_eps", path, 1e-12, &c->norm_eps)) ||
        (st = hk_json_str_opt(j, "hidden_act", path, "gelu", act, sizeof act)) ||
        (st = hk_json_str_opt(j, "position_embedding_type", path, "absolute", pos_type,
                              sizeof pos_type)) ||
        (st = hk_json_bool_opt(j, "is_decoder", path, false, &is_decoder)) ||
        (st = hk_hf_act(act, path, "hidden_act", &c->act)))
        return st;
    if (strcmp(pos_type, "absolute") != 0)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: field 'position_embedding_type' is \"%s\", only \"absolute\" is "
                         "supported",
                         path, pos_type);
    if (is_decoder)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: field 'is_decoder' is true; BERT is supported as an encoder only",
                         path);
    if (c->n_heads <= 0 || c->d_model % c->n_heads != 0)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: hidden_size (%lld) must be a multiple of num_attention_heads (%lld)",
                         path, (long long)c->d_model, (long long)c->n_heads);
    c->n_kv_heads = c->n_heads;
    c->d_head = c->d_model / c->n_heads;
    c->norm = HK_NORM_LAYERNORM;
    c->norm_bias = true;
    c->pos = HK_POS_LEARNED;
    c->qkv_bias = c->o_bias = c->mlp_bias = true;
    c->causal = false;
    c->post_norm = true;
    c->embed_norm = true;
    c->attn_scale = 1.0 / sqrt((double)c->d_head);
    c->head = has_mlm_head(c->architecture) ? HK_HEAD_MLM : HK_HEAD_NONE;
    c->unembed_bias = c->head == HK_HEAD_MLM;
    c->tied_embeddings = c->head == HK_HEAD_MLM; /* BERT ties the decoder to the embeddings */
    return HK_OK;
}

/* BertForMaskedLM prefixes the body with "bert."; BertModel (and sentence-transformers'
 * exports) do not. */
static const char *bert_prefix(const hk_ckpt *ck) {
    return hk_ckpt_find(ck, "bert.embeddings.word_embeddings.weight") ? "bert." : "";
}

static hk_status bert_head(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    int64_t d = c->d_model, V = c->d_vocab;
    hk_status st;
    if ((st = hk_bind_linear(ck, "cls.predictions.transform.dense", d, d, true,
                             &w->head_dense)) ||
        (st = hk_bind_norm(ck, "cls.predictions.transform.LayerNorm", d, true, &w->head_ln)) ||
        (st = hk_bind_unembed(ck, "cls.predictions.decoder.weight", c, w->tok_embed,
                              &w->unembed)))
        return st;
    /* the decoder's bias is cls.predictions.bias (decoder.bias aliases it when saved) */
    const char *bias = hk_ckpt_find(ck, "cls.predictions.bias") ? "cls.predictions.bias"
                                                               : "cls.predictions.decoder.bias";
    return hk_ckpt_f32(ck, bias, 1, &V, &w->unembed.b);
}

static hk_status bert_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    const char *p = bert_prefix(ck);
    char name[256];
    int64_t d = c->d_model;
    hk_status st;
    int64_t emb_shape[2] = {c->d_vocab, d}, type_shape[2] = {c->n_token_types, d};
    snprintf(name, sizeof name, "%sembeddings.word_embeddings.weight", p);
    if ((st = hk_ckpt_f32(ck, name, 2, emb_shape, &w->tok_embed))) return st;
    snprintf(name, sizeof name, "%sembeddings.position_embeddings.weight", p);
    const hk_st_tensor *wpe = hk_ckpt_find(ck, name);
    if (!wpe) return hk_errorf(HK_ERR_NOT_FOUND, "checkpoint has no tensor '%s'", name);
    int64_t pos_shape[2] = {wpe->ndim == 2 ? wpe->shape[0] : -1, d};
    if ((st = hk_ckpt_f32(ck, name, 2, pos_shape, &w->pos_embed))) return st;
    w->n_pos = pos_shape[0];
    if (c->n_token_types > 0) {
        snprintf(name, sizeof name, "%sembeddings.token_type_embeddings.weight", p);
        if ((st = hk_ckpt_f32(ck, name, 2, type_shape, &w->type_embed))) return st;
    }
    snprintf(name, sizeof name, "%sembeddings.LayerNorm", p);
    if ((st = hk_bind_norm(ck, name, d, true, &w->embed_ln))) return st;

    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_block_weights *b = &w->blocks[l];
        char pre[200];
        snprintf(pre, sizeof pre, "%sencoder.layer.%lld", p, (long long)l);
#define NAME(s) (snprintf(name, sizeof name, "%s.%s", pre, s), name)
        /* post-norm: ln1 follows the attention's residual add, ln2 the MLP's */
        if ((st = hk_bind_linear(ck, NAME("attention.self.query"), d, d, true, &b->q)) ||
            (st = hk_bind_linear(ck, NAME("attention.self.key"), d, d, true, &b->k)) ||
            (st = hk_bind_linear(ck, NAME("attention.self.value"), d, d, true, &b->v)) ||
            (st = hk_bind_linear(ck, NAME("attention.output.dense"), d, d, true, &b->o)) ||
            (st = hk_bind_norm(ck, NAME("attention.output.LayerNorm"), d, true, &b->ln1)) ||
            (st = hk_bind_linear(ck, NAME("intermediate.dense"), c->d_mlp, d, true,
                                 &b->mlp_in)) ||
            (st = hk_bind_linear(ck, NAME("output.dense"), d, c->d_mlp, true, &b->mlp_out)) ||
            (st = hk_bind_norm(ck, NAME("output.LayerNorm"), d, true, &b->ln2)))
            return st;
#undef NAME
    }
    return c->head == HK_HEAD_MLM ? bert_head(ck, c, w) : HK_OK;
}

static const char *const bert_types[] = {"bert", NULL};
const hk_adapter hk_adapter_bert = {"bert", bert_types, bert_config, bert_weights};
