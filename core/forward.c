/* The generic forward pass: one code path for every family, driven by the canonical config.
 * Activations are kept in the padded layout [batch, pos, ...] (rows = batch*seq), which is the
 * layout hook points expose; padded rows are computed but never seen by valid queries. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels/cpu/kernels.h"
#include "model.h"
#include "rope.h"

typedef struct {
    int64_t batch, seq, rows;  /* rows = batch * seq */
    const int64_t *lengths;    /* [batch] */
    float *resid;    /* [rows, d_model] */
    float *normed;   /* [rows, d_model] */
    float *q;        /* [rows, n_heads * d_head] */
    float *k;        /* [rows, n_kv_heads * d_head] */
    float *v;        /* [rows, n_kv_heads * d_head] */
    float *z;        /* [rows, n_heads * d_head] */
    float *attn_out; /* [rows, d_model] */
    float *mlp_pre;  /* [rows, d_mlp] */
    float *mlp_lin;  /* [rows, d_mlp] (gated MLPs) */
    float *mlp_out;  /* [rows, d_model] */
    float *rope_cos; /* [seq, rot_dim/2] */
    float *rope_sin; /* [seq, rot_dim/2] */
    int64_t *pos;    /* [seq] absolute positions of the rows of one sequence */
    void *block;     /* one allocation behind all of the above */
} fwd_state;

static float *carve(char **p, size_t n_floats) {
    float *out = (float *)*p;
    *p += ((n_floats * sizeof(float) + 63) / 64) * 64; /* keep every buffer 64-byte aligned */
    return out;
}

static hk_status state_alloc(const hk_config *c, int64_t batch, int64_t seq, fwd_state *s) {
    memset(s, 0, sizeof *s);
    s->batch = batch;
    s->seq = seq;
    s->rows = batch * seq;
    size_t r = (size_t)s->rows;
    size_t dq = (size_t)(c->n_heads * c->d_head), dkv = (size_t)(c->n_kv_heads * c->d_head);
    size_t d = (size_t)c->d_model, dm = (size_t)c->d_mlp;
    size_t half = c->pos == HK_POS_ROTARY ? (size_t)(c->rope.rot_dim / 2) : 0;
    size_t sizes[] = {r * d, r * d, r * dq, r * dkv, r * dkv, r * dq, r * d,
                      r * dm, c->gated_mlp ? r * dm : 0, r * d, (size_t)seq * half,
                      (size_t)seq * half, (size_t)seq * 2 /* int64 positions */};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += ((sizes[i] * sizeof(float) + 63) / 64) * 64;
    s->block = aligned_alloc(64, total ? total : 64);
    if (!s->block)
        return hk_errorf(HK_ERR_NOMEM, "forward: cannot allocate %zu bytes of activations "
                                       "for batch %lld x seq %lld",
                         total, (long long)batch, (long long)seq);
    char *p = s->block;
    s->resid = carve(&p, sizes[0]);
    s->normed = carve(&p, sizes[1]);
    s->q = carve(&p, sizes[2]);
    s->k = carve(&p, sizes[3]);
    s->v = carve(&p, sizes[4]);
    s->z = carve(&p, sizes[5]);
    s->attn_out = carve(&p, sizes[6]);
    s->mlp_pre = carve(&p, sizes[7]);
    s->mlp_lin = c->gated_mlp ? carve(&p, sizes[8]) : NULL;
    s->mlp_out = carve(&p, sizes[9]);
    s->rope_cos = carve(&p, sizes[10]);
    s->rope_sin = carve(&p, sizes[11]);
    s->pos = (int64_t *)carve(&p, sizes[12]);
    return HK_OK;
}

static void linear(const hk_linear *l, const float *x, int64_t rows, float *y) {
    hk_k_linear(x, rows, l->n_in, l->w, l->ld, l->in_out, l->b, l->n_out, y, l->n_out);
}

static void norm(const hk_config *c, const hk_norm_weights *nw, const float *x, int64_t rows,
                 float *y) {
    if (c->norm == HK_NORM_LAYERNORM)
        hk_k_layernorm(x, rows, c->d_model, nw->w, nw->b, (float)c->norm_eps, y, NULL);
    else
        hk_k_rmsnorm(x, rows, c->d_model, nw->w, (float)c->norm_eps, y, NULL);
}

static void activation(hk_act_kind a, float *x, int64_t n) {
    switch (a) {
    case HK_ACT_GELU_NEW: hk_k_gelu_new(x, n); break;
    case HK_ACT_GELU: hk_k_gelu(x, n); break;
    case HK_ACT_SILU: hk_k_silu(x, n); break;
    case HK_ACT_RELU: hk_k_relu(x, n); break;
    }
}

/* embed: resid = W_E[tokens] (+ W_pos[pos]) */
static void embed(const hk_model *m, const int32_t *tokens, fwd_state *s) {
    const hk_config *c = &m->cfg;
    int64_t d = c->d_model;
    hk_k_embed(m->w.tok_embed, d, tokens, s->rows, s->resid);
    if (c->pos == HK_POS_LEARNED) {
        for (int64_t b = 0; b < s->batch; b++)
            for (int64_t t = 0; t < s->seq; t++)
                hk_k_add(s->resid + (b * s->seq + t) * d, m->w.pos_embed + t * d, d);
    }
}

/* Rotary tables for positions 0..seq-1; LongRoPE picks its factors from the longest sequence. */
static void rope_prepare(const hk_config *c, fwd_state *s) {
    if (c->pos != HK_POS_ROTARY) return;
    int64_t half = c->rope.rot_dim / 2;
    int64_t longest = 0;
    for (int64_t b = 0; b < s->batch; b++)
        if (s->lengths[b] > longest) longest = s->lengths[b];
    float inv_freq[HK_MAX_ROPE_FACTORS];
    float attn_factor;
    hk_rope_inv_freq(&c->rope, longest, inv_freq, &attn_factor);
    for (int64_t t = 0; t < s->seq; t++) s->pos[t] = t;
    hk_rope_table(inv_freq, half, attn_factor, s->pos, s->seq, s->rope_cos, s->rope_sin);
}

/* attention sub-block: normed [rows, d_model] -> attn_out [rows, d_model] */
static void attention(const hk_model *m, int64_t layer, fwd_state *s) {
    const hk_config *c = &m->cfg;
    const hk_block_weights *bw = &m->w.blocks[layer];
    int64_t dq = c->n_heads * c->d_head, dkv = c->n_kv_heads * c->d_head;
    linear(&bw->q, s->normed, s->rows, s->q); /* [rows, n_heads*d_head] */
    linear(&bw->k, s->normed, s->rows, s->k); /* [rows, n_kv_heads*d_head] */
    linear(&bw->v, s->normed, s->rows, s->v);
    if (c->pos == HK_POS_ROTARY) {
        for (int64_t b = 0; b < s->batch; b++) {
            hk_k_rope(s->q + b * s->seq * dq, s->seq, c->n_heads, c->d_head, dq, c->rope.rot_dim,
                      s->rope_cos, s->rope_sin);
            hk_k_rope(s->k + b * s->seq * dkv, s->seq, c->n_kv_heads, c->d_head, dkv,
                      c->rope.rot_dim, s->rope_cos, s->rope_sin);
        }
    }
    for (int64_t b = 0; b < s->batch; b++) {
        hk_k_mask mask = {
            .causal = c->causal,
            .window = c->layer_window[layer] ? c->window : 0,
            .q_pos0 = 0,
            .k_pos0 = 0,
            .k_len = s->lengths[b],
            .allowed = NULL,
            .user = NULL,
        };
        int64_t r0 = b * s->seq;
        hk_k_attention(s->q + r0 * dq, dq, s->k + r0 * dkv, dkv, s->v + r0 * dkv, dkv, s->seq,
                       s->seq, c->n_heads, c->n_kv_heads, c->d_head, (float)c->attn_scale, &mask,
                       s->z + r0 * dq, dq);
    }
    linear(&bw->o, s->z, s->rows, s->attn_out); /* [rows, d_model] */
}

/* MLP sub-block: normed [rows, d_model] -> mlp_out [rows, d_model] */
static void mlp(const hk_model *m, int64_t layer, fwd_state *s) {
    const hk_config *c = &m->cfg;
    const hk_block_weights *bw = &m->w.blocks[layer];
    int64_t n = s->rows * c->d_mlp;
    if (c->gated_mlp) {
        linear(&bw->mlp_gate, s->normed, s->rows, s->mlp_pre); /* [rows, d_mlp] */
        linear(&bw->mlp_in, s->normed, s->rows, s->mlp_lin);   /* [rows, d_mlp] */
        activation(c->act, s->mlp_pre, n);
        hk_k_mul(s->mlp_pre, s->mlp_lin, n);
    } else {
        linear(&bw->mlp_in, s->normed, s->rows, s->mlp_pre);
        activation(c->act, s->mlp_pre, n);
    }
    linear(&bw->mlp_out, s->mlp_pre, s->rows, s->mlp_out);
}

static void block(const hk_model *m, int64_t layer, fwd_state *s) {
    const hk_config *c = &m->cfg;
    const hk_block_weights *bw = &m->w.blocks[layer];
    int64_t n = s->rows * c->d_model;
    norm(c, &bw->ln1, s->resid, s->rows, s->normed);
    attention(m, layer, s);
    if (c->parallel_attn_mlp) {
        /* resid_post = resid_pre + attn(ln1(resid_pre)) + mlp(ln2(resid_pre)) */
        norm(c, &bw->ln2, s->resid, s->rows, s->normed);
        mlp(m, layer, s);
        hk_k_add(s->resid, s->attn_out, n);
        hk_k_add(s->resid, s->mlp_out, n);
    } else {
        hk_k_add(s->resid, s->attn_out, n); /* resid_mid */
        norm(c, &bw->ln2, s->resid, s->rows, s->normed);
        mlp(m, layer, s);
        hk_k_add(s->resid, s->mlp_out, n); /* resid_post */
    }
}

static hk_status check_inputs(const hk_model *m, const int32_t *tokens, const int64_t *lengths,
                              int64_t batch, int64_t seq, const float *logits) {
    if (!m || !tokens || !logits)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_forward: model, tokens and logits "
                                             "must not be NULL");
    if (batch <= 0 || seq <= 0)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_model_forward: batch (%lld) and seq (%lld) must be positive",
                         (long long)batch, (long long)seq);
    const hk_config *c = &m->cfg;
    for (int64_t b = 0; b < batch; b++) {
        int64_t len = lengths ? lengths[b] : seq;
        if (len < 1 || len > seq)
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "hk_model_forward: lengths[%lld] = %lld, expected 1..%lld",
                             (long long)b, (long long)len, (long long)seq);
        for (int64_t t = 0; t < len; t++) {
            int32_t id = tokens[b * seq + t];
            if (id < 0 || id >= c->d_vocab)
                return hk_errorf(HK_ERR_INVALID_ARG,
                                 "hk_model_forward: token %d at [%lld, %lld] is outside the "
                                 "vocabulary [0, %lld)",
                                 id, (long long)b, (long long)t, (long long)c->d_vocab);
        }
    }
    if (c->pos == HK_POS_LEARNED && seq > m->w.n_pos)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_model_forward: %lld positions requested but the model has "
                         "learned position embeddings for %lld",
                         (long long)seq, (long long)m->w.n_pos);
    return HK_OK;
}

hk_status hk_model_forward(hk_model *m, const int32_t *tokens, const int64_t *lengths,
                           int64_t batch, int64_t seq, float *logits) {
    hk_status st = check_inputs(m, tokens, lengths, batch, seq, logits);
    if (st != HK_OK) return st;
    const hk_config *c = &m->cfg;

    int64_t *lens = malloc((size_t)batch * sizeof *lens);
    /* Padding tokens may hold any id; embed a valid one (0) in their rows. */
    int32_t *ids = malloc((size_t)(batch * seq) * sizeof *ids);
    fwd_state s;
    st = state_alloc(c, batch, seq, &s);
    if (!lens || !ids || st != HK_OK) {
        free(lens);
        free(ids);
        if (st == HK_OK) free(s.block);
        return st != HK_OK ? st : hk_errorf(HK_ERR_NOMEM, "hk_model_forward: out of memory");
    }
    for (int64_t b = 0; b < batch; b++) {
        lens[b] = lengths ? lengths[b] : seq;
        for (int64_t t = 0; t < seq; t++)
            ids[b * seq + t] = t < lens[b] ? tokens[b * seq + t] : 0;
    }
    s.lengths = lens;

    embed(m, ids, &s);
    rope_prepare(c, &s);
    for (int64_t l = 0; l < c->n_layers; l++) block(m, l, &s);
    norm(c, &m->w.ln_final, s.resid, s.rows, s.normed);
    linear(&m->w.unembed, s.normed, s.rows, logits); /* [rows, d_vocab] */
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = lens[b]; t < seq; t++)
            memset(logits + (b * seq + t) * c->d_vocab, 0, (size_t)c->d_vocab * sizeof(float));

    free(s.block);
    free(ids);
    free(lens);
    return HK_OK;
}
