/* GGUF adapters for Llama-style decoders: "llama" (Llama, SmolLM2, Mistral as llama.cpp
 * converts them), "qwen2", "phi3" (below), "qwen3" (plus blk.N.attn_q_norm / attn_k_norm over d_head), and
 * "gemma2" / "gemma3" (llama.cpp's conventions: norm weights stored as 1 + w already, norms
 * attn_norm / post_attention_norm / ffn_norm / post_ffw_norm, gelu-tanh GeGLU, tied embeddings
 * times sqrt(d_model); sliding layers every 2nd (gemma2: even layers) or all but every 6th
 * (gemma3), `<arch>.attention.sliding_window`; the attention scale 1/sqrt(key_length), as
 * llama.cpp uses for every size but the 27B; gemma2's `attn_logit_softcapping` /
 * `final_logit_softcapping`; gemma3's local RoPE base 10000 on sliding layers). Metadata keys are "<arch>.block_count", "<arch>.attention.*",
 * "<arch>.rope.*"; tensors are token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v,
 * attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm and output (absent when the
 * embeddings are tied).
 *
 * llama.cpp's converter reorders the rows of attn_q/attn_k of "llama" models within each head
 * (HF's rotate-half pairs (i, i + d/2) become adjacent rows (2i, 2i + 1), for ggml's
 * interleaved rope); they are put back in HF order here, so the generic forward's rope and the
 * attn.hook_q/hook_k values match transformers. Qwen2 is converted without that reordering. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "bind.h"
#include "core/error.h"
#include "core/gguf.h"

static hk_status key_int(const hk_gguf *g, const char *arch, const char *key, bool required,
                         int64_t *out) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    return hk_gguf_get_int(g, full, required, out);
}

static hk_status key_num(const hk_gguf *g, const char *arch, const char *key, double *out) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    return hk_gguf_get_num(g, full, false, out);
}

/* rope.freq_base, rope.dimension_count, rope.scaling.{type, factor,
 * original_context_length} (or the older rope.scale_linear), and a rope_freqs tensor (Llama
 * 3.x: per-frequency divisors) read as factors. */
static hk_status read_rope(const hk_ckpt *ck, const hk_gguf *g, const char *arch,
                           hk_config *c) {
    hk_rope_config *r = &c->rope;
    hk_status st;
    char full[128], type[32] = "none";
    r->theta = 10000.0;
    r->rot_dim = c->d_head;
    r->attention_factor = 1.0;
    r->original_max_pos = c->max_pos;
    double linear = 0.0;
    snprintf(full, sizeof full, "%s.rope.scaling.type", arch);
    if ((st = key_num(g, arch, "rope.freq_base", &r->theta)) ||
        (st = key_int(g, arch, "rope.dimension_count", false, &r->rot_dim)) ||
        (st = hk_gguf_get_str(g, full, false, type, sizeof type)) ||
        (st = key_num(g, arch, "rope.scale_linear", &linear)) ||
        (st = key_num(g, arch, "rope.scaling.factor", &r->factor)) ||
        (st = key_int(g, arch, "rope.scaling.original_context_length", false,
                      &r->original_max_pos)))
        return st;
    r->kind = HK_ROPE_DEFAULT;
    if (linear > 0 && linear != 1.0) {
        r->kind = HK_ROPE_LINEAR;
        r->factor = linear;
    }
    if (strcmp(type, "linear") == 0) {
        r->kind = HK_ROPE_LINEAR;
    } else if (strcmp(type, "none") != 0) {
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: rope scaling type \"%s\" (key '%s') is not supported (none or "
                         "linear)", g->path, type, full);
    }
    if (r->kind == HK_ROPE_LINEAR && !(r->factor > 0))
        return hk_errorf(HK_ERR_FORMAT, "%s: linear rope scaling needs a positive factor",
                         g->path);
    const hk_st_tensor *freqs = hk_ckpt_find(ck, "rope_freqs.weight");
    if (freqs) {
        const int64_t half = r->rot_dim / 2;
        if (freqs->ndim != 1 || freqs->shape[0] != half || freqs->dtype != HK_DTYPE_F32 ||
            half > HK_MAX_ROPE_FACTORS)
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: tensor 'rope_freqs.weight' must be F32 [%lld] (rotary dims "
                             "/ 2)", g->path, (long long)half);
        /* inv_freq[i] = theta^(-2i/d) / factor[i]: the longrope formula with one factor set */
        r->kind = HK_ROPE_LONGROPE;
        r->n_factors = half;
        for (int64_t i = 0; i < half; i++) {
            float f;
            memcpy(&f, (const uint8_t *)freqs->data + 4 * i, 4);
            if (!(f > 0))
                return hk_errorf(HK_ERR_FORMAT, "%s: rope_freqs.weight[%lld] must be positive",
                                 g->path, (long long)i);
            r->short_factor[i] = r->long_factor[i] = f;
        }
        r->original_max_pos = INT64_MAX;
    }
    return HK_OK;
}

static hk_status llama_like_config(const hk_ckpt *ck, const char *arch, hk_config *c) {
    const hk_gguf *g = hk_ckpt_gguf(ck);
    hk_status st;
    c->n_heads = 0;
    if ((st = key_int(g, arch, "block_count", true, &c->n_layers)) ||
        (st = key_int(g, arch, "embedding_length", true, &c->d_model)) ||
        (st = key_int(g, arch, "feed_forward_length", true, &c->d_mlp)) ||
        (st = key_int(g, arch, "attention.head_count", true, &c->n_heads)))
        return st;
    c->n_kv_heads = c->n_heads;
    c->norm_eps = 1e-5;
    if (c->n_heads <= 0)
        return hk_errorf(HK_ERR_FORMAT, "%s: %s.attention.head_count must be positive", g->path,
                         arch);
    c->d_head = c->d_model / c->n_heads;
    if ((st = key_int(g, arch, "attention.head_count_kv", false, &c->n_kv_heads)) ||
        (st = key_int(g, arch, "attention.key_length", false, &c->d_head)) ||
        (st = key_int(g, arch, "context_length", false, &c->max_pos)) ||
        (st = key_num(g, arch, "attention.layer_norm_rms_epsilon", &c->norm_eps)))
        return st;
    if (c->n_layers > HK_MAX_LAYERS)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: %lld layers (at most %d supported)", g->path,
                         (long long)c->n_layers, HK_MAX_LAYERS);
    /* The vocabulary is the embedding's row count (the token list, when present, must agree). */
    const hk_st_tensor *emb = hk_ckpt_find(ck, "token_embd.weight");
    if (!emb || emb->ndim != 2)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: tensor 'token_embd.weight' (2-D) is missing",
                         g->path);
    c->d_vocab = emb->shape[0];
    const hk_gguf_kv *tokens = hk_gguf_find(g, "tokenizer.ggml.tokens");
    if (tokens && tokens->n != (uint64_t)c->d_vocab)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: tokenizer.ggml.tokens has %llu entries but token_embd.weight has "
                         "%lld rows", g->path, (unsigned long long)tokens->n,
                         (long long)c->d_vocab);
    c->norm = HK_NORM_RMSNORM;
    c->pos = HK_POS_ROTARY;
    c->act = HK_ACT_SILU;
    c->gated_mlp = true;
    c->causal = true;
    c->attn_scale = 1.0 / sqrt((double)c->d_head);
    c->tied_embeddings = hk_ckpt_find(ck, "output.weight") == NULL;
    c->qkv_bias = hk_ckpt_find(ck, "blk.0.attn_q.bias") != NULL;
    c->o_bias = hk_ckpt_find(ck, "blk.0.attn_output.bias") != NULL;
    c->mlp_bias = hk_ckpt_find(ck, "blk.0.ffn_up.bias") != NULL;
    snprintf(c->family, sizeof c->family, "%s", arch);
    snprintf(c->architecture, sizeof c->architecture, "gguf:%s", arch);
    return read_rope(ck, g, arch, c);
}

static hk_status llama_config(const hk_ckpt *ck, hk_config *c) {
    return llama_like_config(ck, "llama", c);
}

static hk_status qwen2_config(const hk_ckpt *ck, hk_config *c) {
    return llama_like_config(ck, "qwen2", c);
}

/* Undo llama.cpp's row order in each head of n_heads: GGUF row 2i + j holds HF row
 * j * d_head/2 + i. rows: [n_heads * d_head] rows of row_bytes bytes (f32 values or ggml
 * blocks alike: a row's bytes move as a whole). */
static hk_status unpermute_heads(void *rows, int64_t n_heads, int64_t d_head, size_t row_bytes) {
    uint8_t *tmp = malloc((size_t)d_head * row_bytes); /* [d_head rows] */
    if (!tmp) return hk_errorf(HK_ERR_NOMEM, "out of memory un-permuting attention rows");
    const int64_t half = d_head / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        uint8_t *head = (uint8_t *)rows + (size_t)(h * d_head) * row_bytes;
        memcpy(tmp, head, (size_t)d_head * row_bytes);
        for (int64_t i = 0; i < half; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(head + (size_t)(j * half + i) * row_bytes,
                       tmp + (size_t)(2 * i + j) * row_bytes, row_bytes);
    }
    free(tmp);
    return HK_OK;
}

/* The blocks of a permuted projection, un-permuted into a copy the checkpoint owns. */
static hk_status unpermute_blocks(hk_ckpt *ck, int64_t n_heads, int64_t d_head, hk_linear *l) {
    if (!l->qw) return HK_OK;
    const size_t bytes = (size_t)l->n_out * l->q_ld;
    void *copy = hk_ckpt_alloc_f32(ck, (bytes + sizeof(float) - 1) / sizeof(float));
    if (!copy) return HK_ERR_NOMEM;
    memcpy(copy, l->qw, bytes);
    l->qw = copy;
    return unpermute_heads(copy, n_heads, d_head, l->q_ld);
}

static hk_status bind_rope_proj(hk_ckpt *ck, const char *prefix, int64_t n_heads,
                                const hk_config *c, bool permuted, hk_linear *out) {
    const int64_t n_out = n_heads * c->d_head;
    hk_status st = hk_bind_linear(ck, prefix, n_out, c->d_model, c->qkv_bias, out);
    if (st || !permuted) return st;
    char name[256];
    float *w, *b;
    int64_t shape[2] = {n_out, c->d_model};
    snprintf(name, sizeof name, "%s.weight", prefix);
    if ((st = hk_ckpt_f32_mut(ck, name, 2, shape, &w)) ||
        (st = unpermute_heads(w, n_heads, c->d_head, (size_t)c->d_model * sizeof *w)) ||
        (st = unpermute_blocks(ck, n_heads, c->d_head, out)))
        return st;
    out->w = w;
    if (!c->qkv_bias) return HK_OK;
    snprintf(name, sizeof name, "%s.bias", prefix);
    if ((st = hk_ckpt_f32_mut(ck, name, 1, &n_out, &b)) ||
        (st = unpermute_heads(b, n_heads, c->d_head, sizeof *b)))
        return st;
    out->b = b;
    return HK_OK;
}

static hk_status bind(hk_ckpt *ck, const hk_config *c, hk_weights *w, bool permuted) {
    static const hk_llama_block_names names = {"attn_norm", "ffn_norm", "attn_output",
                                               "ffn_down"};
    char name[128];
    const int64_t d = c->d_model;
    int64_t emb_shape[2] = {c->d_vocab, d};
    hk_status st;
    if ((st = hk_ckpt_f32(ck, "token_embd.weight", 2, emb_shape, &w->tok_embed))) return st;
    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_block_weights *b = &w->blocks[l];
#define NAME(s) (snprintf(name, sizeof name, "blk.%lld.%s", (long long)l, s), name)
        if ((st = hk_bind_llama_block_common(ck, c, "blk.%lld.", l, &names, b)) ||
            (st = bind_rope_proj(ck, NAME("attn_q"), c->n_heads, c, permuted, &b->q)) ||
            (st = bind_rope_proj(ck, NAME("attn_k"), c->n_kv_heads, c, permuted, &b->k)) ||
            (st = hk_bind_linear(ck, NAME("attn_v"), c->n_kv_heads * c->d_head, d, c->qkv_bias,
                                 &b->v)) ||
            (st = hk_bind_linear(ck, NAME("ffn_gate"), c->d_mlp, d, c->mlp_bias,
                                 &b->mlp_gate)) ||
            (st = hk_bind_linear(ck, NAME("ffn_up"), c->d_mlp, d, c->mlp_bias, &b->mlp_in)))
            return st;
#undef NAME
    }
    if ((st = hk_bind_norm(ck, "output_norm", d, false, &w->ln_final))) return st;
    return hk_bind_unembed(ck, "output.weight", c, w->tok_embed, &w->unembed);
}

static hk_status llama_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    return bind(ck, c, w, true);
}

static hk_status qwen2_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    return bind(ck, c, w, false);
}

/* ---- qwen3, gemma2, gemma3 ---- */

static hk_status qwen3_config(const hk_ckpt *ck, hk_config *c) {
    hk_status st = llama_like_config(ck, "qwen3", c);
    c->qk_norm = HK_QK_NORM_HEAD;
    return st;
}

static hk_status gemma_config(const hk_ckpt *ck, hk_config *c, const char *arch) {
    const hk_gguf *g = hk_ckpt_gguf(ck);
    hk_status st = llama_like_config(ck, arch, c);
    if (st != HK_OK) return st;
    const bool g3 = strcmp(arch, "gemma3") == 0;
    c->act = HK_ACT_GELU_NEW;
    c->attn_post_norm = c->mlp_post_norm = true;
    c->embed_scale = (double)(float)sqrt((double)c->d_model);
    c->qkv_bias = c->o_bias = c->mlp_bias = false;
    if (!c->tied_embeddings)
        return hk_errorf(HK_ERR_FORMAT, "%s: %s files tie the output to token_embd (found an "
                                        "'output.weight' tensor)", g->path, arch);
    if ((st = key_int(g, arch, "attention.sliding_window", true, &c->window))) return st;
    if (c->window <= 0)
        return hk_errorf(HK_ERR_FORMAT, "%s: %s.attention.sliding_window must be positive",
                         g->path, arch);
    for (int64_t l = 0; l < c->n_layers; l++)
        c->layer_window[l] = g3 ? (l + 1) % 6 != 0 : l % 2 == 0;
    c->final_softcap = 0;
    if ((st = key_num(g, arch, "final_logit_softcapping", &c->final_softcap)) ||
        (st = key_num(g, arch, "attn_logit_softcapping", &c->attn_softcap)))
        return st;
    if (g3) {
        c->qk_norm = HK_QK_NORM_HEAD;
        c->has_rope_local = true;
        c->rope_local = (hk_rope_config){.kind = HK_ROPE_DEFAULT, .theta = 10000.0,
                                         .rot_dim = c->rope.rot_dim, .attention_factor = 1.0,
                                         .original_max_pos = c->rope.original_max_pos};
    }
    return HK_OK;
}

static hk_status gemma2_config(const hk_ckpt *ck, hk_config *c) {
    return gemma_config(ck, c, "gemma2");
}

static hk_status gemma3_config(const hk_ckpt *ck, hk_config *c) {
    return gemma_config(ck, c, "gemma3");
}

static hk_status qk_norms(hk_ckpt *ck, const hk_config *c, int64_t l, hk_block_weights *b) {
    char name[128];
    hk_status st;
    snprintf(name, sizeof name, "blk.%lld.attn_q_norm", (long long)l);
    if ((st = hk_bind_norm(ck, name, c->d_head, false, &b->q_norm))) return st;
    snprintf(name, sizeof name, "blk.%lld.attn_k_norm", (long long)l);
    return hk_bind_norm(ck, name, c->d_head, false, &b->k_norm);
}

static hk_status qwen3_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    hk_status st = bind(ck, c, w, false);
    for (int64_t l = 0; l < c->n_layers && st == HK_OK; l++)
        st = qk_norms(ck, c, l, &w->blocks[l]);
    return st;
}

static hk_status gemma_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    hk_status st = bind(ck, c, w, false); /* attn_norm -> ln1, ffn_norm -> ln2 */
    char name[128];
    for (int64_t l = 0; l < c->n_layers && st == HK_OK; l++) {
        hk_block_weights *b = &w->blocks[l];
        snprintf(name, sizeof name, "blk.%lld.post_attention_norm", (long long)l);
        if ((st = hk_bind_norm(ck, name, c->d_model, false, &b->ln1_post))) break;
        snprintf(name, sizeof name, "blk.%lld.post_ffw_norm", (long long)l);
        if ((st = hk_bind_norm(ck, name, c->d_model, false, &b->ln2_post))) break;
        if (c->qk_norm == HK_QK_NORM_HEAD) st = qk_norms(ck, c, l, b);
    }
    return st;
}

/* ---- phi3: fused attn_qkv ([q | k | v] rows) and ffn_up ([gate | up] rows), LongRoPE from
 * rope_factors_short / rope_factors_long [rot_dim/2] with rope.scaling.original_context_length
 * and rope.scaling.attn_factor (the converter's keys; 4k models have neither). ---- */

static hk_status rope_factor_tensor(const hk_ckpt *ck, const char *name, int64_t half,
                                    double *out) {
    const hk_st_tensor *t = hk_ckpt_find(ck, name);
    const hk_gguf *g = hk_ckpt_gguf(ck);
    if (!t || t->ndim != 1 || t->shape[0] != half || t->dtype != HK_DTYPE_F32)
        return hk_errorf(HK_ERR_FORMAT, "%s: tensor '%s' must be F32 [%lld] (rotary dims / 2)",
                         g->path, name, (long long)half);
    for (int64_t i = 0; i < half; i++) {
        float f;
        memcpy(&f, (const uint8_t *)t->data + 4 * i, 4);
        if (!(f > 0))
            return hk_errorf(HK_ERR_FORMAT, "%s: %s[%lld] must be positive", g->path, name,
                             (long long)i);
        out[i] = f;
    }
    return HK_OK;
}

static hk_status phi3_config(const hk_ckpt *ck, hk_config *c) {
    hk_status st = llama_like_config(ck, "phi3", c);
    if (st != HK_OK) return st;
    const hk_gguf *g = hk_ckpt_gguf(ck);
    c->qkv_bias = c->o_bias = c->mlp_bias = false;
    int64_t window = 0;
    if ((st = key_int(g, "phi3", "attention.sliding_window", false, &window))) return st;
    c->window = window > 0 && window < c->max_pos ? window : 0;
    for (int64_t l = 0; l < c->n_layers; l++) c->layer_window[l] = c->window > 0;
    if (!hk_ckpt_find(ck, "rope_factors_long.weight")) return HK_OK;
    hk_rope_config *r = &c->rope;
    const int64_t half = r->rot_dim / 2;
    if (half > HK_MAX_ROPE_FACTORS)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: longrope with %lld rotary dims", g->path,
                         (long long)r->rot_dim);
    r->kind = HK_ROPE_LONGROPE;
    r->n_factors = half;
    if ((st = rope_factor_tensor(ck, "rope_factors_short.weight", half, r->short_factor)) ||
        (st = rope_factor_tensor(ck, "rope_factors_long.weight", half, r->long_factor)))
        return st;
    double attn = NAN;
    if ((st = key_num(g, "phi3", "rope.scaling.attn_factor", &attn))) return st;
    if (!(r->original_max_pos > 0) || r->original_max_pos > c->max_pos)
        return hk_errorf(HK_ERR_FORMAT, "%s: phi3.rope.scaling.original_context_length must be "
                                        "in 1..context_length", g->path);
    r->factor = (double)c->max_pos / (double)r->original_max_pos;
    if (isnan(attn))
        attn = r->factor <= 1.0 ? 1.0
                                : sqrt(1.0 + log(r->factor) / log((double)r->original_max_pos));
    r->attention_factor = attn;
    return HK_OK;
}

static hk_status phi3_weights(hk_ckpt *ck, const hk_config *c, hk_weights *w) {
    static const hk_llama_block_names names = {"attn_norm", "ffn_norm", "attn_output",
                                               "ffn_down"};
    char name[128];
    const int64_t d = c->d_model, dq = c->n_heads * c->d_head, dkv = c->n_kv_heads * c->d_head;
    int64_t emb_shape[2] = {c->d_vocab, d};
    hk_status st;
    if ((st = hk_ckpt_f32(ck, "token_embd.weight", 2, emb_shape, &w->tok_embed))) return st;
    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_block_weights *b = &w->blocks[l];
        hk_linear qkv, gate_up;
#define NAME(s) (snprintf(name, sizeof name, "blk.%lld.%s", (long long)l, s), name)
        if ((st = hk_bind_llama_block_common(ck, c, "blk.%lld.", l, &names, b)) ||
            (st = hk_bind_linear(ck, NAME("attn_qkv"), dq + 2 * dkv, d, false, &qkv)) ||
            (st = hk_bind_linear(ck, NAME("ffn_up"), 2 * c->d_mlp, d, false, &gate_up)))
            return st;
#undef NAME
        b->q = hk_linear_slice(&qkv, 0, dq);
        b->k = hk_linear_slice(&qkv, dq, dkv);
        b->v = hk_linear_slice(&qkv, dq + dkv, dkv);
        b->mlp_gate = hk_linear_slice(&gate_up, 0, c->d_mlp);
        b->mlp_in = hk_linear_slice(&gate_up, c->d_mlp, c->d_mlp);
    }
    if ((st = hk_bind_norm(ck, "output_norm", d, false, &w->ln_final))) return st;
    return hk_bind_unembed(ck, "output.weight", c, w->tok_embed, &w->unembed);
}

const hk_gguf_adapter hk_gguf_adapter_phi3 = {"phi3", phi3_config, phi3_weights};
const hk_gguf_adapter hk_gguf_adapter_qwen3 = {"qwen3", qwen3_config, qwen3_weights};
const hk_gguf_adapter hk_gguf_adapter_gemma2 = {"gemma2", gemma2_config, gemma_weights};
const hk_gguf_adapter hk_gguf_adapter_gemma3 = {"gemma3", gemma3_config, gemma_weights};
const hk_gguf_adapter hk_gguf_adapter_llama = {"llama", llama_config, llama_weights};
const hk_gguf_adapter hk_gguf_adapter_qwen2 = {"qwen2", qwen2_config, qwen2_weights};
