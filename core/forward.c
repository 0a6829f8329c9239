/* The generic forward pass: one code path for every family, driven by the canonical config.
 * Activations are kept in the padded layout [batch, pos, ...] (rows = batch*seq), which is the
 * layout hook points expose; padded rows are computed but never seen by valid queries.
 *
 * Hooks: every point asks HOOKED() first — one branch when nothing is registered there — and
 * only hooked points pay for views, copies or the materialized attention path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "error.h"
#include "forward.h"
#include "hooks/registry.h"
#include "kernels/cpu/kernels.h"
#include "model.h"
#include "rope.h"
#include "session.h"

#ifndef HK_HOOK_DISPATCH
#define HK_HOOK_DISPATCH 1
#endif

typedef struct {
    int64_t batch, seq, rows;  /* rows = batch * seq (seq: positions in this call) */
    const int64_t *lengths;    /* [batch] valid positions of each sequence in this call */
    int64_t pos0;              /* absolute position of row 0 of every sequence */
    int64_t rope_len;          /* length that picks LongRoPE's factors */
    struct hk_session *sess;   /* KV cache, or NULL for a one-shot forward */
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
    float *scale;    /* [rows, n_heads] norm divisors (hooked norms only) */
    float *mean;     /* [rows, n_heads] row means (hooked LayerNorms only) */
    float *rope_cos; /* [seq, rot_dim/2] */
    float *rope_sin; /* [seq, rot_dim/2] */
    float *rope_cos_local; /* [seq, rot_dim/2] has_rope_local: sliding layers' tables */
    float *rope_sin_local; /* [seq, rot_dim/2] */
    int64_t *pos;    /* [seq] absolute positions of the rows of one sequence */
    void *block;     /* one allocation behind all of the above */
    size_t block_bytes;
    bool block_mapped; /* block came from mmap (see state_alloc) */
} fwd_state;

typedef struct {
    hk_model *m;
    hk_hooks *hooks;
    fwd_state *s;
    int64_t layer0;       /* first block run (hk_forward_from_layer; else 0) */
    const float *resid0;  /* [rows, d_model] its hook_resid_pre, or NULL: embed the tokens */
    int64_t layer_end;    /* blocks [layer0, layer_end) run (n_layers unless stopped) */
    bool head;            /* the final norm and head run after the blocks */
} fwd_run;

#if HK_HOOK_DISPATCH
#define HOOKED(run, layer, kind) \
    hk_hooks_active((run)->hooks, hk_points_index(&(run)->m->points, (layer), (kind)))
#else
#define HOOKED(run, layer, kind) ((void)(run), (void)(layer), false)
#endif

#define TRY(expr)                            \
    do {                                     \
        hk_status st_ = (expr);              \
        if (st_ != HK_OK) return st_;        \
    } while (0)

/* ---- hook plumbing ---- */

/* Fire point (layer, kind) on a contiguous tensor of the given shape. */
static hk_status fire(fwd_run *r, int64_t layer, hk_point_kind kind, float *data, int ndim,
                      const int64_t *shape, int64_t batch_offset, int64_t pos_offset,
                      int64_t key_offset) {
#if HK_HOOK_DISPATCH
    int32_t point = hk_points_index(&r->m->points, layer, kind);
    if (!hk_hooks_active(r->hooks, point)) return HK_OK;
    hk_tensor t = {.data = data, .dtype = HK_DTYPE_F32, .device = HK_DEVICE_CPU, .ndim = ndim};
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        t.shape[d] = shape[d];
        t.stride[d] = stride;
        stride *= shape[d];
    }
    hk_hook_ctx ctx = {
        .name = r->m->points.points[point].name,
        .layer = r->m->points.points[point].layer,
        .batch_offset = batch_offset,
        .pos_offset = pos_offset,
        .key_offset = key_offset,
        .run_batch = r->s->batch,
        .run_seq = r->s->seq,
        .model = r->m,
    };
    return hk_hooks_fire(r->hooks, point, &t, &ctx);
#else
    (void)r, (void)layer, (void)kind, (void)data, (void)ndim, (void)shape;
    (void)batch_offset, (void)pos_offset, (void)key_offset;
    return HK_OK;
#endif
}

/* [batch, pos, inner] */
static hk_status fire3(fwd_run *r, int64_t layer, hk_point_kind kind, float *data,
                       int64_t inner) {
    int64_t shape[3] = {r->s->batch, r->s->seq, inner};
    return fire(r, layer, kind, data, 3, shape, 0, r->s->pos0, 0);
}

/* [batch, pos, heads, d] */
static hk_status fire4(fwd_run *r, int64_t layer, hk_point_kind kind, float *data,
                       int64_t heads, int64_t d) {
    int64_t shape[4] = {r->s->batch, r->s->seq, heads, d};
    return fire(r, layer, kind, data, 4, shape, 0, r->s->pos0, 0);
}

/* ---- state ---- */

static float *carve(char **p, size_t n_floats) {
    float *out = (float *)*p;
    *p += ((n_floats * sizeof(float) + 63) / 64) * 64; /* keep every buffer 64-byte aligned */
    return out;
}

#define STATE_BUFFERS 17
#define HK_STATE_MMAP_MIN ((size_t)1 << 20) /* blocks from this size on are mapped */

/* Floats of each buffer of fwd_state, in carve order. */
static void state_sizes(const hk_config *c, int64_t batch, int64_t seq,
                        size_t sizes[STATE_BUFFERS]) {
    size_t r = (size_t)(batch * seq);
    size_t dq = (size_t)(c->n_heads * c->d_head), dkv = (size_t)(c->n_kv_heads * c->d_head);
    size_t d = (size_t)c->d_model, dm = (size_t)c->d_mlp;
    size_t half = c->pos == HK_POS_ROTARY ? (size_t)(c->rope.rot_dim / 2) : 0;
    size_t s[STATE_BUFFERS] = {r * d,  r * d,  r * dq, r * dkv, r * dkv, r * dq, r * d,
                               r * dm, c->gated_mlp ? r * dm : 0, r * d, r * (size_t)c->n_heads,
                               (size_t)seq * half,
                               (size_t)seq * half, (size_t)seq * 2 /* int64 positions */,
                               r * (size_t)c->n_heads,
                               c->has_rope_local ? (size_t)seq * half : 0,
                               c->has_rope_local ? (size_t)seq * half : 0};
    memcpy(sizes, s, sizeof s);
}

size_t hk_forward_state_bytes(const hk_config *c, int64_t batch, int64_t seq) {
    size_t sizes[STATE_BUFFERS], total = 0;
    state_sizes(c, batch, seq, sizes);
    for (size_t i = 0; i < STATE_BUFFERS; i++)
        total += ((sizes[i] * sizeof(float) + 63) / 64) * 64; /* carve() keeps 64-byte steps */
    return total;
}

static hk_status state_alloc(const hk_config *c, int64_t batch, int64_t seq, fwd_state *s) {
    memset(s, 0, sizeof *s);
    s->batch = batch;
    s->seq = seq;
    s->rows = batch * seq;
    size_t sizes[STATE_BUFFERS];
    state_sizes(c, batch, seq, sizes);
    size_t total = hk_forward_state_bytes(c, batch, seq);
    /* A large block is mapped and unmapped per call rather than malloc'ed: freed, it would
     * raise glibc's mmap threshold and land in the heap, where the next feed's block (behind
     * a few small allocations) often no longer fits the hole it left, so the heap, whose freed
     * pages stay resident, grew by one block per feed. Mapped, peak RSS is what the estimate
     * (hk_forward_state_bytes) says. */
    s->block_bytes = total ? total : 64;
    s->block_mapped = total >= HK_STATE_MMAP_MIN;
    if (s->block_mapped) {
        s->block = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (s->block == MAP_FAILED) s->block = NULL;
    } else {
        s->block = aligned_alloc(64, s->block_bytes);
    }
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
    s->scale = carve(&p, sizes[10]);
    s->rope_cos = carve(&p, sizes[11]);
    s->rope_sin = carve(&p, sizes[12]);
    s->pos = (int64_t *)carve(&p, sizes[13]);
    s->mean = carve(&p, sizes[14]);
    s->rope_cos_local = carve(&p, sizes[15]);
    s->rope_sin_local = carve(&p, sizes[16]);
    return HK_OK;
}

static void state_free(fwd_state *s) {
    if (s->block_mapped)
        munmap(s->block, s->block_bytes);
    else
        free(s->block);
    s->block = NULL;
}

/* ---- layer pieces ---- */

static void linear(const hk_linear *l, const float *x, int64_t rows, float *y) {
    hk_k_linear_q(x, rows, l->n_in, l->w, l->ld, l->in_out, l->qtype, l->qw, l->q_ld, l->b,
                  l->n_out, y, l->n_out);
}

static void activation(hk_act_kind a, float *x, int64_t n) {
    switch (a) {
    case HK_ACT_GELU_NEW: hk_k_gelu_new(x, n); break;
    case HK_ACT_GELU: hk_k_gelu(x, n); break;
    case HK_ACT_SILU: hk_k_silu(x, n); break;
    case HK_ACT_RELU: hk_k_relu(x, n); break;
    }
}

/* A norm whose hook_scale or hook_normalized is hooked: the pieces one at a time, so that a
 * modified scale or normalized value flows on (TransformerLens order: scale, x/scale, then
 * weight and bias). heads > 0: x is [batch, pos, heads, d_model] (split attention inputs). */
/* The pieces of a norm over n rows of d (n <= rows * n_heads), firing hook_scale with shape
 * sshape and hook_normalized with nshape. y may alias x. */
static hk_status norm_pieces(fwd_run *r, int64_t layer, hk_point_kind k_scale,
                             hk_point_kind k_norm, const hk_norm_weights *nw, const float *x,
                             float *y, int64_t n, int64_t d, int sndim, const int64_t *sshape,
                             int nndim, const int64_t *nshape) {
    const hk_config *c = &r->m->cfg;
    fwd_state *s = r->s;
    const bool center = c->norm == HK_NORM_LAYERNORM;
    /* row statistics in double, as the kernels compute them */
#pragma omp parallel for schedule(static) if (n * d >= 32768)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        double mean = 0, sq = 0;
        if (center) {
            for (int64_t j = 0; j < d; j++) mean += xi[j];
            mean /= (double)d;
        }
        for (int64_t j = 0; j < d; j++) sq += ((double)xi[j] - mean) * ((double)xi[j] - mean);
        s->mean[i] = (float)mean;
        s->scale[i] = (float)sqrt(sq / (double)d + c->norm_eps);
    }
    TRY(fire(r, layer, k_scale, s->scale, sndim, sshape, 0, s->pos0, 0));
#pragma omp parallel for schedule(static) if (n * d >= 32768)
    for (int64_t i = 0; i < n; i++) {
        const double inv = 1.0 / (double)s->scale[i], mean = (double)s->mean[i];
        for (int64_t j = 0; j < d; j++) y[i * d + j] = (float)(((double)x[i * d + j] - mean) * inv);
    }
    TRY(fire(r, layer, k_norm, y, nndim, nshape, 0, s->pos0, 0));
#pragma omp parallel for schedule(static) if (n * d >= 32768)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            y[i * d + j] = y[i * d + j] * nw->w[j] + (nw->b ? nw->b[j] : 0.0f);
    return HK_OK;
}

static hk_status norm_hooked(fwd_run *r, int64_t layer, hk_point_kind k_scale,
                             hk_point_kind k_norm, const hk_norm_weights *nw, const float *x,
                             float *y, int64_t heads) {
    const fwd_state *s = r->s;
    const int64_t d = r->m->cfg.d_model;
    if (heads > 0) {
        int64_t ss[4] = {s->batch, s->seq, heads, 1}, ns[4] = {s->batch, s->seq, heads, d};
        return norm_pieces(r, layer, k_scale, k_norm, nw, x, y, s->rows * heads, d, 4, ss, 4,
                           ns);
    }
    int64_t ss[3] = {s->batch, s->seq, 1}, ns[3] = {s->batch, s->seq, d};
    return norm_pieces(r, layer, k_scale, k_norm, nw, x, y, s->rows, d, 3, ss, 3, ns);
}

static hk_status norm(fwd_run *r, int64_t layer, hk_point_kind k_scale, hk_point_kind k_norm,
                      const hk_norm_weights *nw, const float *x, float *y) {
    const hk_config *c = &r->m->cfg;
    if (HOOKED(r, layer, k_scale) || HOOKED(r, layer, k_norm))
        return norm_hooked(r, layer, k_scale, k_norm, nw, x, y, 0);
    if (c->norm == HK_NORM_LAYERNORM)
        hk_k_layernorm(x, r->s->rows, c->d_model, nw->w, nw->b, (float)c->norm_eps, y, NULL);
    else
        hk_k_rmsnorm(x, r->s->rows, c->d_model, nw->w, (float)c->norm_eps, y, NULL);
    return HK_OK;
}

/* Post-norm and embedding norms write into `normed`; the residual stream then continues from
 * there. Both buffers are [rows, d_model], so the two are swapped rather than copied. */
static void swap_resid(fwd_state *s) {
    float *t = s->resid;
    s->resid = s->normed;
    s->normed = t;
}

/* embed: resid = W_E[tokens] (+ W_pos[pos]) (+ W_type[types]), then the embedding LayerNorm
 * of encoders. types: [rows] or NULL (every position type 0). */
static hk_status embed(fwd_run *r, const int32_t *tokens, const int32_t *types) {
    const hk_model *m = r->m;
    const hk_config *c = &m->cfg;
    fwd_state *s = r->s;
    int64_t d = c->d_model;
    hk_k_embed(m->w.tok_embed, d, tokens, s->rows, s->resid);
    if (c->embed_scale > 0) { /* Gemma: W_E[t] * sqrt(d_model), the factor rounded to f32 */
        const float f = (float)c->embed_scale;
        for (int64_t i = 0; i < s->rows * d; i++) s->resid[i] *= f;
    }
    TRY(fire3(r, -1, HK_PT_EMBED, s->resid, d));
    float *scratch = s->normed; /* [rows, d_model] scratch until the first norm */
    if (c->pos == HK_POS_LEARNED) {
        for (int64_t b = 0; b < s->batch; b++)
            memcpy(scratch + b * s->seq * d, m->w.pos_embed + s->pos0 * d,
                   (size_t)(s->seq * d) * sizeof(float));
        TRY(fire3(r, -1, HK_PT_POS_EMBED, scratch, d));
        hk_k_add(s->resid, scratch, s->rows * d);
    }
    if (c->n_token_types > 0) {
        for (int64_t i = 0; i < s->rows; i++)
            memcpy(scratch + i * d, m->w.type_embed + (types ? types[i] : 0) * d,
                   (size_t)d * sizeof(float));
        TRY(fire3(r, -1, HK_PT_TOKEN_TYPE_EMBED, scratch, d));
        hk_k_add(s->resid, scratch, s->rows * d);
    }
    if (c->embed_norm) {
        TRY(norm(r, -1, HK_PT_EMBED_LN_SCALE, HK_PT_EMBED_LN_NORMALIZED, &m->w.embed_ln, s->resid,
                 s->normed));
        swap_resid(s);
        TRY(fire3(r, -1, HK_PT_FULL_EMBED, s->resid, d));
    }
    return HK_OK;
}

/* Rotary tables for positions pos0..pos0+seq-1; LongRoPE picks its factors from rope_len. */
static void rope_prepare(const hk_config *c, fwd_state *s) {
    if (c->pos != HK_POS_ROTARY) return;
    int64_t half = c->rope.rot_dim / 2;
    float inv_freq[HK_MAX_ROPE_FACTORS];
    float attn_factor;
    hk_rope_inv_freq(&c->rope, s->rope_len, inv_freq, &attn_factor);
    for (int64_t t = 0; t < s->seq; t++) s->pos[t] = s->pos0 + t;
    hk_rope_table(inv_freq, half, attn_factor, s->pos, s->seq, s->rope_cos, s->rope_sin);
    if (c->has_rope_local) { /* Gemma 3: sliding layers rotate with their own base */
        hk_rope_inv_freq(&c->rope_local, s->rope_len, inv_freq, &attn_factor);
        hk_rope_table(inv_freq, half, attn_factor, s->pos, s->seq, s->rope_cos_local,
                      s->rope_sin_local);
    }
}

/* The keys one sequence's queries attend to: this call's own rows, or the session's cache
 * (a slice of it, or the rolling buffer's live slots gathered in position order). */
typedef struct {
    const float *k, *v; /* [sk, n_kv_heads * d_head] with row stride ld */
    int64_t ld, sk;
    int64_t k_pos0;     /* absolute position of key 0 */
    int64_t k_len;      /* valid keys */
} key_view;

/* A user mask seen by the kernel's per-sequence predicate: documents, then the user's fn. */
typedef struct {
    const hk_mask_spec *spec;
    int64_t batch;
} seq_mask;

static bool seq_allowed(void *user, int64_t head, int64_t q_pos, int64_t k_pos) {
    const seq_mask *sm = user;
    const hk_mask_spec *spec = sm->spec;
    if (spec->doc_ids) {
        const int32_t *row = spec->doc_ids + sm->batch * spec->doc_stride;
        if (q_pos >= spec->doc_stride || k_pos >= spec->doc_stride || row[q_pos] != row[k_pos])
            return false;
    }
    return !spec->allowed || spec->allowed(spec->user, sm->batch, head, q_pos, k_pos);
}

static hk_k_mask layer_mask(const hk_model *m, int64_t layer, int64_t q_pos0,
                            const key_view *kv, seq_mask *sm) {
    const hk_config *c = &m->cfg;
    hk_k_mask mask = {
        .causal = c->causal,
        .window = c->layer_window[layer] ? c->window : 0,
        .q_pos0 = q_pos0,
        .k_pos0 = kv->k_pos0,
        .k_len = kv->k_len,
        .softcap = (float)c->attn_softcap,
    };
    if (m->has_mask) {
        if (m->mask.causal >= 0) mask.causal = m->mask.causal == 1;
        if (m->mask.window >= 0) mask.window = m->mask.window;
        if (m->mask.doc_ids || m->mask.allowed) {
            sm->spec = &m->mask;
            mask.allowed = seq_allowed;
            mask.user = sm;
        }
    }
    return mask;
}

/* Scores and pattern hooked: materialize them per sequence and query chunk, hand each chunk
 * [1, n_heads, q_chunk, sk] to the hooks, and compute z from the (possibly modified) pattern. */
static hk_status attention_materialized(fwd_run *r, int64_t layer, int64_t b,
                                        const key_view *kv) {
    const hk_config *c = &r->m->cfg;
    fwd_state *s = r->s;
    int64_t nh = c->n_heads, dq = nh * c->d_head;
    int64_t sk = kv->sk, r0 = b * s->seq;
    int64_t chunk = (int64_t)(HK_PATTERN_CHUNK_BYTES / ((size_t)(nh * sk) * sizeof(float)));
    if (chunk < 1) chunk = 1;
    if (chunk > s->seq) chunk = s->seq;
    float *scores = malloc((size_t)(nh * chunk * sk) * sizeof *scores); /* [nh, chunk, sk] */
    if (!scores)
        return hk_errorf(HK_ERR_NOMEM, "forward: no memory for a %lld x %lld attention chunk",
                         (long long)chunk, (long long)sk);
    hk_status st = HK_OK;
    for (int64_t q0 = 0; q0 < s->seq && st == HK_OK; q0 += chunk) {
        int64_t qc = s->seq - q0 < chunk ? s->seq - q0 : chunk;
        seq_mask sm = {.batch = b};
        hk_k_mask mask = layer_mask(r->m, layer, s->pos0 + q0, kv, &sm);
        hk_k_attention_scores(s->q + (r0 + q0) * dq, dq, kv->k, kv->ld, qc, sk, nh,
                              c->n_kv_heads, c->d_head, (float)c->attn_scale, &mask, scores);
        int64_t shape[4] = {1, nh, qc, sk};
        st = fire(r, layer, HK_PT_ATTN_SCORES, scores, 4, shape, b, s->pos0 + q0, kv->k_pos0);
        if (st != HK_OK) break;
        hk_k_softmax_rows(scores, nh * qc, sk, scores);
        st = fire(r, layer, HK_PT_PATTERN, scores, 4, shape, b, s->pos0 + q0, kv->k_pos0);
        if (st != HK_OK) break;
        hk_k_attention_apply(scores, kv->v, kv->ld, qc, sk, nh, c->n_kv_heads, c->d_head,
                             s->z + (r0 + q0) * dq, dq);
    }
    free(scores);
    return st;
}

/* attn.hook_result is hooked: per-head outputs [batch, pos, head, d_model], then their sum. */
static hk_status attn_out_per_head(fwd_run *r, int64_t layer) {
    const hk_config *c = &r->m->cfg;
    const hk_linear *o = &r->m->w.blocks[layer].o;
    fwd_state *s = r->s;
    int64_t nh = c->n_heads, dh = c->d_head, d = c->d_model, dq = nh * dh;
    float *result = malloc((size_t)(s->rows * nh * d) * sizeof *result); /* [rows, nh, d] */
    float *zh = malloc((size_t)(s->rows * dh) * sizeof *zh);             /* [rows, dh] */
    if (!result || !zh) {
        free(result);
        free(zh);
        return hk_errorf(HK_ERR_NOMEM, "forward: no memory for attn.hook_result");
    }
    for (int64_t h = 0; h < nh; h++) {
        for (int64_t i = 0; i < s->rows; i++)
            memcpy(zh + i * dh, s->z + i * dq + h * dh, (size_t)dh * sizeof(float));
        /* W_O columns of head h: [out, in] -> column offset; [in, out] -> row offset */
        const float *w = o->in_out ? o->w + h * dh * o->ld : o->w + h * dh;
        hk_k_linear(zh, s->rows, dh, w, o->ld, o->in_out, NULL, d, result + h * d, nh * d);
    }
    hk_status st = fire4(r, layer, HK_PT_RESULT, result, nh, d);
    if (st == HK_OK) {
        for (int64_t i = 0; i < s->rows; i++) {
            float *out = s->attn_out + i * d;
            for (int64_t j = 0; j < d; j++) out[j] = o->b ? o->b[j] : 0.0f;
            for (int64_t h = 0; h < nh; h++) hk_k_add(out, result + (i * nh + h) * d, d);
        }
    }
    free(result);
    free(zh);
    return st;
}

static bool split_inputs_hooked(fwd_run *r, int64_t layer) {
    return HOOKED(r, layer, HK_PT_ATTN_IN) || HOOKED(r, layer, HK_PT_Q_INPUT) ||
           HOOKED(r, layer, HK_PT_K_INPUT) || HOOKED(r, layer, HK_PT_V_INPUT);
}

/* One of q/k/v from per-head inputs, TransformerLens's split-input path:
 * in [rows, heads, d_model] --hook--> ln1 per head --> out[:, h, :] = ln1(in_h) W_h. */
static hk_status split_projection(fwd_run *r, int64_t layer, hk_point_kind k_in, float *in,
                                  int64_t heads, const hk_linear *w, float *out, float *tmp) {
    const hk_config *c = &r->m->cfg;
    fwd_state *s = r->s;
    int64_t d = c->d_model, dh = c->d_head;
    if (k_in != HK_PT_COUNT) TRY(fire4(r, layer, k_in, in, heads, d));
    if (!c->post_norm && !c->no_input_norms) /* else attention reads the residual stream */
        TRY(norm_hooked(r, layer, HK_PT_LN1_SCALE, HK_PT_LN1_NORMALIZED,
                        &r->m->w.blocks[layer].ln1, in, in, heads));
    for (int64_t h = 0; h < heads; h++) {
        for (int64_t i = 0; i < s->rows; i++)
            memcpy(tmp + i * d, in + (i * heads + h) * d, (size_t)d * sizeof(float));
        hk_linear wh = *w;
        wh.n_out = dh;
        wh.w = w->in_out ? w->w + h * dh : w->w + h * dh * w->ld;
        wh.b = w->b ? w->b + h * dh : NULL;
        hk_k_linear(tmp, s->rows, d, wh.w, wh.ld, wh.in_out, wh.b, dh, out + h * dh, heads * dh);
    }
    return HK_OK;
}

/* resid_pre repeated along a head dimension: [rows, heads, d_model] */
static void repeat_heads(const float *x, int64_t rows, int64_t heads, int64_t d, float *out) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t h = 0; h < heads; h++)
            memcpy(out + (i * heads + h) * d, x + i * d, (size_t)d * sizeof(float));
}

/* q, k, v through hook_attn_in / hook_{q,k,v}_input (requested at this layer). */
static hk_status qkv_split(fwd_run *r, int64_t layer) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->m->w.blocks[layer];
    fwd_state *s = r->s;
    int64_t nh = c->n_heads, nkv = c->n_kv_heads, d = c->d_model;
    bool split = HOOKED(r, layer, HK_PT_Q_INPUT) || HOOKED(r, layer, HK_PT_K_INPUT) ||
                 HOOKED(r, layer, HK_PT_V_INPUT);
    float *in = malloc((size_t)(s->rows * nh * d) * sizeof *in); /* [rows, heads, d_model] */
    float *tmp = malloc((size_t)(s->rows * d) * sizeof *tmp);    /* [rows, d_model] */
    hk_status st = HK_OK;
    if (!in || !tmp) {
        st = hk_errorf(HK_ERR_NOMEM, "forward: no memory for split attention inputs");
        goto done;
    }
    if (!split) { /* hook_attn_in only: one [rows, n_heads, d_model] input feeds q, k and v */
        repeat_heads(s->resid, s->rows, nh, d, in);
        if ((st = fire4(r, layer, HK_PT_ATTN_IN, in, nh, d))) goto done;
        float *attn_in = malloc((size_t)(s->rows * nh * d) * sizeof *attn_in);
        if (!attn_in) {
            st = hk_errorf(HK_ERR_NOMEM, "forward: no memory for hook_attn_in");
            goto done;
        }
        const hk_linear *w[3] = {&bw->q, &bw->k, &bw->v};
        float *out[3] = {s->q, s->k, s->v};
        for (int p = 0; p < 3 && st == HK_OK; p++) {
            memcpy(attn_in, in, (size_t)(s->rows * nh * d) * sizeof(float));
            st = split_projection(r, layer, HK_PT_COUNT, attn_in, nh, w[p], out[p], tmp);
        }
        free(attn_in);
        goto done;
    }
    if (HOOKED(r, layer, HK_PT_ATTN_IN)) { /* fired, but split inputs come from resid_pre */
        repeat_heads(s->resid, s->rows, nh, d, in);
        if ((st = fire4(r, layer, HK_PT_ATTN_IN, in, nh, d))) goto done;
    }
    repeat_heads(s->resid, s->rows, nh, d, in);
    if ((st = split_projection(r, layer, HK_PT_Q_INPUT, in, nh, &bw->q, s->q, tmp))) goto done;
    repeat_heads(s->resid, s->rows, nkv, d, in);
    if ((st = split_projection(r, layer, HK_PT_K_INPUT, in, nkv, &bw->k, s->k, tmp))) goto done;
    repeat_heads(s->resid, s->rows, nkv, d, in);
    st = split_projection(r, layer, HK_PT_V_INPUT, in, nkv, &bw->v, s->v, tmp);
done:
    free(in);
    free(tmp);
    return st;
}

/* Keys of sequence b for this layer (see key_view). A full-attention cache gets this chunk's
 * keys written first, then is read in place; a rolling buffer's live slots (positions
 * pos0-W+1 .. pos0-1) are gathered in position order, followed by the chunk's own keys. */
static void keys_for(fwd_run *r, int64_t layer, int64_t b, float *gather, key_view *kv) {
    const hk_config *c = &r->m->cfg;
    fwd_state *s = r->s;
    int64_t dkv = c->n_kv_heads * c->d_head, r0 = b * s->seq;
    size_t row = (size_t)dkv * sizeof(float);
    if (!s->sess) {
        *kv = (key_view){s->k + r0 * dkv, s->v + r0 * dkv, dkv, s->seq, s->pos0, s->lengths[b]};
        return;
    }
    const hk_kv_layer *L = &s->sess->layers[layer];
    float *ck = L->k + b * L->slots * dkv, *cv = L->v + b * L->slots * dkv;
    if (!L->rolling) {
        memcpy(ck + s->pos0 * dkv, s->k + r0 * dkv, (size_t)s->seq * row);
        memcpy(cv + s->pos0 * dkv, s->v + r0 * dkv, (size_t)s->seq * row);
        int64_t n = s->pos0 + s->seq;
        *kv = (key_view){ck, cv, dkv, n, 0, n};
        return;
    }
    int64_t W = L->slots, lo = s->pos0 - (W - 1) > 0 ? s->pos0 - (W - 1) : 0;
    int64_t n_old = s->pos0 - lo, sk = n_old + s->seq;
    float *gk = gather, *gv = gather + (W + s->seq) * dkv;
    for (int64_t p = lo; p < s->pos0; p++) {
        memcpy(gk + (p - lo) * dkv, ck + (p % W) * dkv, row);
        memcpy(gv + (p - lo) * dkv, cv + (p % W) * dkv, row);
    }
    memcpy(gk + n_old * dkv, s->k + r0 * dkv, (size_t)s->seq * row);
    memcpy(gv + n_old * dkv, s->v + r0 * dkv, (size_t)s->seq * row);
    *kv = (key_view){gk, gv, dkv, sk, lo, sk};
}

/* After attention: a rolling buffer keeps the chunk's last W positions (slot = pos mod W). */
static void cache_store(fwd_run *r, int64_t layer, int64_t b) {
    const hk_config *c = &r->m->cfg;
    fwd_state *s = r->s;
    const hk_kv_layer *L = &s->sess->layers[layer];
    if (!L->rolling) return; /* written before attention */
    int64_t dkv = c->n_kv_heads * c->d_head, r0 = b * s->seq, W = L->slots;
    float *ck = L->k + b * W * dkv, *cv = L->v + b * W * dkv;
    int64_t first = s->seq > W ? s->seq - W : 0;
    for (int64_t t = first; t < s->seq; t++) {
        int64_t slot = (s->pos0 + t) % W;
        memcpy(ck + slot * dkv, s->k + (r0 + t) * dkv, (size_t)dkv * sizeof(float));
        memcpy(cv + slot * dkv, s->v + (r0 + t) * dkv, (size_t)dkv * sizeof(float));
    }
}

/* q/k RMSNorm in place (qk_norm): x [rows, heads * d_head], over each head's d_head (HEAD) or
 * the whole row (FULL); hook_scale [batch, pos, heads, 1] or [batch, pos, 1], hook_normalized
 * [batch, pos, heads, d_head]. */
static hk_status qk_norm(fwd_run *r, int64_t layer, hk_point_kind k_scale, hk_point_kind k_norm,
                         const hk_norm_weights *nw, float *x, int64_t heads) {
    const hk_config *c = &r->m->cfg;
    const fwd_state *s = r->s;
    const bool full = c->qk_norm == HK_QK_NORM_FULL;
    const int64_t dh = c->d_head, n = full ? s->rows : s->rows * heads;
    const int64_t d = full ? heads * dh : dh;
    if (HOOKED(r, layer, k_scale) || HOOKED(r, layer, k_norm)) {
        int64_t ss[4] = {s->batch, s->seq, full ? 1 : heads, 1};
        int64_t ns[4] = {s->batch, s->seq, heads, dh};
        return norm_pieces(r, layer, k_scale, k_norm, nw, x, x, n, d, full ? 3 : 4, ss, 4, ns);
    }
    hk_k_rmsnorm(x, n, d, nw->w, (float)c->norm_eps, x, NULL);
    return HK_OK;
}

/* A post-norm on a sub-block's output (Gemma 2's ln1_post/ln2_post, OLMo 2): *out (rows x
 * d_model) is normalized into `normed`, and the two buffers are swapped. */
static hk_status output_norm(fwd_run *r, int64_t layer, hk_point_kind k_scale,
                             hk_point_kind k_norm, const hk_norm_weights *nw, float **out) {
    fwd_state *s = r->s;
    TRY(norm(r, layer, k_scale, k_norm, nw, *out, s->normed));
    float *t = *out;
    *out = s->normed;
    s->normed = t;
    return HK_OK;
}

/* attention sub-block: resid [rows, d_model] -> attn_out [rows, d_model] */
static hk_status attention(fwd_run *r, int64_t layer) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->m->w.blocks[layer];
    fwd_state *s = r->s;
    int64_t nh = c->n_heads, nkv = c->n_kv_heads, dh = c->d_head;
    int64_t dq = nh * dh, dkv = nkv * dh;
    if (split_inputs_hooked(r, layer)) {
        TRY(qkv_split(r, layer));
    } else {
        const float *in = s->resid; /* post-norm, OLMo 2: attention reads the residual stream */
        if (!c->post_norm && !c->no_input_norms) {
            TRY(norm(r, layer, HK_PT_LN1_SCALE, HK_PT_LN1_NORMALIZED, &bw->ln1, s->resid,
                     s->normed));
            in = s->normed;
        }
        linear(&bw->q, in, s->rows, s->q); /* [rows, n_heads*d_head] */
        linear(&bw->k, in, s->rows, s->k); /* [rows, n_kv_heads*d_head] */
        linear(&bw->v, in, s->rows, s->v);
    }
    TRY(fire4(r, layer, HK_PT_Q, s->q, nh, dh));
    TRY(fire4(r, layer, HK_PT_K, s->k, nkv, dh));
    TRY(fire4(r, layer, HK_PT_V, s->v, nkv, dh));
    if (c->qk_norm != HK_QK_NORM_NONE) {
        TRY(qk_norm(r, layer, HK_PT_Q_NORM_SCALE, HK_PT_Q_NORM_NORMALIZED, &bw->q_norm, s->q, nh));
        TRY(qk_norm(r, layer, HK_PT_K_NORM_SCALE, HK_PT_K_NORM_NORMALIZED, &bw->k_norm, s->k,
                    nkv));
    }
    if (c->pos == HK_POS_ROTARY) {
        const bool local = c->has_rope_local && c->layer_window[layer];
        const float *cs = local ? s->rope_cos_local : s->rope_cos;
        const float *sn = local ? s->rope_sin_local : s->rope_sin;
        for (int64_t b = 0; b < s->batch; b++) {
            hk_k_rope(s->q + b * s->seq * dq, s->seq, nh, dh, dq, c->rope.rot_dim, cs, sn);
            hk_k_rope(s->k + b * s->seq * dkv, s->seq, nkv, dh, dkv, c->rope.rot_dim, cs, sn);
        }
        TRY(fire4(r, layer, HK_PT_ROT_Q, s->q, nh, dh));
        TRY(fire4(r, layer, HK_PT_ROT_K, s->k, nkv, dh));
    }
    bool materialize = HOOKED(r, layer, HK_PT_ATTN_SCORES) || HOOKED(r, layer, HK_PT_PATTERN);
    float *gather = NULL;
    if (s->sess && s->sess->layers[layer].rolling) {
        int64_t cap = (s->sess->layers[layer].slots + s->seq) * dkv;
        gather = malloc((size_t)(2 * cap) * sizeof *gather); /* [W - 1 + seq, dkv] x {k, v} */
        if (!gather) return hk_errorf(HK_ERR_NOMEM, "forward: no memory to gather the cache");
    }
    hk_status st = HK_OK;
    for (int64_t b = 0; b < s->batch && st == HK_OK; b++) {
        key_view kv;
        keys_for(r, layer, b, gather, &kv);
        if (materialize) {
            st = attention_materialized(r, layer, b, &kv);
        } else {
            seq_mask sm = {.batch = b};
            hk_k_mask mask = layer_mask(r->m, layer, s->pos0, &kv, &sm);
            int64_t r0 = b * s->seq;
            hk_k_attention(s->q + r0 * dq, dq, kv.k, kv.ld, kv.v, kv.ld, s->seq, kv.sk, nh, nkv,
                           dh, (float)c->attn_scale, &mask, s->z + r0 * dq, dq);
        }
        if (s->sess) cache_store(r, layer, b);
    }
    free(gather);
    TRY(st);
    TRY(fire4(r, layer, HK_PT_Z, s->z, nh, dh));
    if (HOOKED(r, layer, HK_PT_RESULT))
        TRY(attn_out_per_head(r, layer));
    else
        linear(&bw->o, s->z, s->rows, s->attn_out); /* [rows, d_model] */
    if (c->attn_post_norm)
        TRY(output_norm(r, layer, HK_PT_LN1_POST_SCALE, HK_PT_LN1_POST_NORMALIZED, &bw->ln1_post,
                        &s->attn_out));
    return fire3(r, layer, HK_PT_ATTN_OUT, s->attn_out, c->d_model);
}

/* MLP sub-block: x [rows, d_model] (already normalized) -> mlp_out [rows, d_model] */
/* ---- mixture of experts ----
 * Per token: router logits -> softmax over the experts -> the top k (ties: the lower expert
 * id first) -> optionally renormalized. Then per expert, only on the rows routed to it (a
 * counting sort of the rows*k assignments by expert, gathered into contiguous blocks): the
 * gated MLP, its output added to the token's row with the mixing weight, experts in
 * increasing id order (transformers' index_add_ order). Every routing step is a hook point a
 * callback may modify: logits (ban an expert with -inf), softmax weights, the chosen ids
 * (force an expert), the mixing weights, the chosen experts' activations. */
typedef struct {
    float *logits;  /* [rows, E] */
    float *probs;   /* [rows, E] */
    float *ids;     /* [rows, k] chosen expert ids, as floats (the hook's view) */
    float *mix;     /* [rows, k] */
    float *act;     /* [rows * k, d_mlp] chosen experts' activations, slot a = row * k + j */
    float *xg;      /* [rows * k, max(d_model, d_mlp)] gathered inputs of one expert */
    float *g, *u;   /* [rows * k, d_mlp] */
    float *o;       /* [rows * k, d_model] */
    int64_t *order; /* [rows * k] slots sorted by expert */
    int64_t *start; /* [E + 1] first entry of each expert in order */
} moe_ws;

static void moe_route(const hk_config *c, int64_t rows, moe_ws *w) {
    const int64_t E = c->n_experts, k = c->n_experts_used;
    for (int64_t i = 0; i < rows; i++) {
        const float *p = w->probs + i * E;
        float *ids = w->ids + i * k, *mix = w->mix + i * k;
        bool taken[HK_MAX_EXPERTS];
        memset(taken, 0, (size_t)E * sizeof *taken);
        double sum = 0;
        for (int64_t j = 0; j < k; j++) {
            int64_t best = -1;
            for (int64_t e = 0; e < E; e++)
                if (!taken[e] && (best < 0 || p[e] > p[best])) best = e;
            taken[best] = true;
            ids[j] = (float)best;
            mix[j] = p[best];
            sum += p[best];
        }
        if (c->moe_norm_topk && sum > 0) /* every expert banned (all weights 0): no mixing */
            for (int64_t j = 0; j < k; j++) mix[j] = (float)((double)mix[j] / sum);
    }
}

static void softmax_rows_f32(const float *x, int64_t rows, int64_t n, float *y) {
    for (int64_t i = 0; i < rows; i++) {
        const float *xi = x + i * n;
        float *yi = y + i * n;
        float mx = -INFINITY;
        for (int64_t j = 0; j < n; j++) mx = xi[j] > mx ? xi[j] : mx;
        double sum = 0;
        for (int64_t j = 0; j < n; j++) sum += exp((double)xi[j] - mx);
        for (int64_t j = 0; j < n; j++)
            yi[j] = mx == -INFINITY ? 0.0f : (float)(exp((double)xi[j] - mx) / sum);
    }
}

static hk_status moe_mlp(fwd_run *r, int64_t layer, const float *x, moe_ws *w) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->m->w.blocks[layer];
    fwd_state *s = r->s;
    const int64_t E = c->n_experts, k = c->n_experts_used, d = c->d_model, dm = c->d_mlp;
    const int64_t rows = s->rows, slots = rows * k;
    linear(&bw->router, x, rows, w->logits); /* [rows, E] */
    TRY(fire3(r, layer, HK_PT_ROUTER_LOGITS, w->logits, E));
    softmax_rows_f32(w->logits, rows, E, w->probs);
    TRY(fire3(r, layer, HK_PT_EXPERT_WEIGHTS, w->probs, E));
    moe_route(c, rows, w);
    TRY(fire3(r, layer, HK_PT_EXPERT_INDICES, w->ids, k));
    TRY(fire3(r, layer, HK_PT_TOPK_WEIGHTS, w->mix, k));
    /* counting sort of the slots by expert (ids may have been rewritten by a hook) */
    memset(w->start, 0, (size_t)(E + 1) * sizeof *w->start);
    for (int64_t a = 0; a < slots; a++) {
        const float id = w->ids[a];
        if (!(id >= 0 && id < (float)E && id == floorf(id)))
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "blocks.%lld.mlp.hook_expert_indices: entry %lld is %g, expected "
                             "an expert id 0..%lld",
                             (long long)layer, (long long)a, (double)id, (long long)(E - 1));
        w->start[(int64_t)id + 1]++;
    }
    for (int64_t e = 0; e < E; e++) w->start[e + 1] += w->start[e];
    {
        int64_t *fill = w->order + slots; /* [E] cursors, behind order's slots */
        for (int64_t e = 0; e < E; e++) fill[e] = w->start[e];
        for (int64_t a = 0; a < slots; a++) w->order[fill[(int64_t)w->ids[a]]++] = a;
    }
    /* the chosen experts' activations, expert by expert on their rows only */
    for (int64_t e = 0; e < E; e++) {
        const int64_t n = w->start[e + 1] - w->start[e];
        if (n == 0) continue;
        const int64_t *sl = w->order + w->start[e];
        for (int64_t i = 0; i < n; i++)
            memcpy(w->xg + i * d, x + (sl[i] / k) * d, (size_t)d * sizeof(float));
        const hk_linear *ex = bw->experts + 3 * e;
        linear(&ex[0], w->xg, n, w->g); /* [n, d_mlp] gate */
        linear(&ex[1], w->xg, n, w->u); /* [n, d_mlp] up */
        activation(c->act, w->g, n * dm);
        hk_k_mul(w->g, w->u, n * dm);
        for (int64_t i = 0; i < n; i++)
            memcpy(w->act + sl[i] * dm, w->g + i * dm, (size_t)dm * sizeof(float));
    }
    TRY(fire4(r, layer, HK_PT_EXPERT_POST, w->act, k, dm));
    memset(s->mlp_out, 0, (size_t)(rows * d) * sizeof(float));
    for (int64_t e = 0; e < E; e++) {
        const int64_t n = w->start[e + 1] - w->start[e];
        if (n == 0) continue;
        const int64_t *sl = w->order + w->start[e];
        for (int64_t i = 0; i < n; i++)
            memcpy(w->xg + i * dm, w->act + sl[i] * dm, (size_t)dm * sizeof(float));
        linear(&bw->experts[3 * e + 2], w->xg, n, w->o); /* [n, d_model] down */
        for (int64_t i = 0; i < n; i++) {
            float *dst = s->mlp_out + (sl[i] / k) * d;
            const float m = w->mix[sl[i]];
            const float *src = w->o + i * d;
            for (int64_t j = 0; j < d; j++) dst[j] += m * src[j];
        }
    }
    return HK_OK;
}

/* Bytes of the routed experts' workspace for `rows` tokens: router logits and probabilities
 * [rows, E], chosen ids and weights [rows * k], the experts' activations, gathered inputs,
 * gate/up and outputs per slot, and the slot order and expert starts. */
static size_t routed_ws_bytes(const hk_config *c, int64_t rows) {
    const int64_t E = c->n_experts, k = c->n_experts_used, d = c->d_model, dm = c->d_mlp;
    const int64_t slots = rows * k, wide = d > dm ? d : dm;
    const size_t floats = (size_t)(2 * rows * E + 2 * slots + slots * dm + slots * wide +
                                   2 * slots * dm + slots * d);
    const size_t ints = (size_t)(slots + E + E + 1);
    return floats * sizeof(float) + ints * sizeof(int64_t);
}

/* Bytes of the shared expert's workspace: gate and up [rows, d_shared], output [rows,
 * d_model], its sigmoid gate [rows]. */
static size_t shared_ws_bytes(const hk_config *c, int64_t rows) {
    return (size_t)(rows * (2 * c->d_shared_expert + c->d_model + 1)) * sizeof(float);
}

size_t hk_forward_moe_bytes(const hk_config *c, int64_t rows) {
    if (c->n_experts <= 0) return 0;
    const size_t routed = routed_ws_bytes(c, rows);
    const size_t shared = c->d_shared_expert > 0 ? shared_ws_bytes(c, rows) : 0;
    return routed > shared ? routed : shared; /* one is freed before the other is taken */
}

/* Qwen2-MoE's shared expert on every row, added to mlp_out after the routed experts:
 * mlp_out += sigmoid(x . w_gate) * down(act(x W_gate) * (x W_up)). */
static hk_status shared_expert(fwd_run *r, int64_t layer, const float *x) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->m->w.blocks[layer];
    fwd_state *s = r->s;
    const int64_t rows = s->rows, d = c->d_model, ds = c->d_shared_expert;
    float *buf = malloc(shared_ws_bytes(c, rows));
    if (!buf) return hk_errorf(HK_ERR_NOMEM, "forward: no memory for the shared expert");
    float *g = buf, *u = g + rows * ds, *o = u + rows * ds, *gate = o + rows * d;
    linear(&bw->shared[0], x, rows, g); /* [rows, d_shared] */
    linear(&bw->shared[1], x, rows, u); /* [rows, d_shared] */
    activation(c->act, g, rows * ds);
    hk_k_mul(g, u, rows * ds);
    hk_status st = fire3(r, layer, HK_PT_SHARED_POST, g, ds);
    if (st == HK_OK) {
        linear(&bw->shared[2], g, rows, o);       /* [rows, d_model] */
        linear(&bw->shared_gate, x, rows, gate);  /* [rows, 1] */
        for (int64_t i = 0; i < rows; i++) gate[i] = 1.0f / (1.0f + expf(-gate[i]));
        st = fire3(r, layer, HK_PT_SHARED_GATE, gate, 1);
    }
    if (st == HK_OK)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < d; j++) s->mlp_out[i * d + j] += gate[i] * o[i * d + j];
    free(buf);
    return st;
}

/* Workspace of moe_mlp for this call, one allocation (routed_ws_bytes). */
static hk_status moe(fwd_run *r, int64_t layer, const float *x) {
    const hk_config *c = &r->m->cfg;
    const int64_t E = c->n_experts, k = c->n_experts_used, d = c->d_model, dm = c->d_mlp;
    const int64_t rows = r->s->rows, slots = rows * k, wide = d > dm ? d : dm;
    float *buf = malloc(routed_ws_bytes(c, rows));
    if (!buf)
        return hk_errorf(HK_ERR_NOMEM, "forward: no memory for the experts of %lld rows",
                         (long long)rows);
    moe_ws w;
    w.logits = buf;
    w.probs = w.logits + rows * E;
    w.ids = w.probs + rows * E;
    w.mix = w.ids + slots;
    w.act = w.mix + slots;
    w.xg = w.act + slots * dm;
    w.g = w.xg + slots * wide;
    w.u = w.g + slots * dm;
    w.o = w.u + slots * dm;
    w.order = (int64_t *)(void *)(w.o + slots * d);
    w.start = w.order + slots + E;
    hk_status st = moe_mlp(r, layer, x, &w);
    free(buf);
    if (st == HK_OK && c->d_shared_expert > 0) st = shared_expert(r, layer, x);
    return st;
}

static hk_status mlp(fwd_run *r, int64_t layer, const float *x) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->m->w.blocks[layer];
    fwd_state *s = r->s;
    int64_t n = s->rows * c->d_mlp;
    if (c->n_experts > 0) {
        TRY(moe(r, layer, x));
    } else if (c->gated_mlp) {
        linear(&bw->mlp_gate, x, s->rows, s->mlp_pre); /* [rows, d_mlp] */
        TRY(fire3(r, layer, HK_PT_MLP_PRE, s->mlp_pre, c->d_mlp));
        linear(&bw->mlp_in, x, s->rows, s->mlp_lin); /* [rows, d_mlp] */
        TRY(fire3(r, layer, HK_PT_MLP_PRE_LINEAR, s->mlp_lin, c->d_mlp));
        activation(c->act, s->mlp_pre, n);
        hk_k_mul(s->mlp_pre, s->mlp_lin, n);
    } else {
        linear(&bw->mlp_in, x, s->rows, s->mlp_pre);
        TRY(fire3(r, layer, HK_PT_MLP_PRE, s->mlp_pre, c->d_mlp));
        activation(c->act, s->mlp_pre, n);
    }
    if (c->n_experts == 0) {
        TRY(fire3(r, layer, HK_PT_MLP_POST, s->mlp_pre, c->d_mlp));
        linear(&bw->mlp_out, s->mlp_pre, s->rows, s->mlp_out);
    }
    if (c->mlp_post_norm) /* x (the MLP's input) may be `normed`: it is consumed by now */
        TRY(output_norm(r, layer, HK_PT_LN2_POST_SCALE, HK_PT_LN2_POST_NORMALIZED, &bw->ln2_post,
                        &s->mlp_out));
    return fire3(r, layer, HK_PT_MLP_OUT, s->mlp_out, c->d_model);
}

/* Pre-norm MLP: ln2 of the input, then the MLP. */
static hk_status mlp_prenorm(fwd_run *r, int64_t layer, const float *input) {
    if (r->m->cfg.no_input_norms) return mlp(r, layer, input); /* OLMo 2 */
    TRY(norm(r, layer, HK_PT_LN2_SCALE, HK_PT_LN2_NORMALIZED, &r->m->w.blocks[layer].ln2, input,
             r->s->normed));
    return mlp(r, layer, r->s->normed);
}

/* hook_mlp_in sees a copy of the MLP's input, which then feeds ln2 in its place. */
static const float *mlp_input(fwd_run *r, int64_t layer, const float *x, float *scratch,
                              hk_status *st) {
    *st = HK_OK;
    if (!HOOKED(r, layer, HK_PT_MLP_IN)) return x;
    int64_t d = r->m->cfg.d_model;
    memcpy(scratch, x, (size_t)(r->s->rows * d) * sizeof(float));
    *st = fire3(r, layer, HK_PT_MLP_IN, scratch, d);
    return scratch;
}

/* Post-norm block (BERT, TransformerLens's BertBlock):
 *   resid_mid = resid_pre + attn(resid_pre); x = ln1(mlp_in = resid_mid);
 *   resid_post = x + mlp(x); normalized_resid_post = ln2(resid_post) -> the next block. */
static hk_status block_post_norm(fwd_run *r, int64_t layer) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->m->w.blocks[layer];
    fwd_state *s = r->s;
    int64_t d = c->d_model, n = s->rows * d;
    hk_status st;
    hk_k_add(s->resid, s->attn_out, n);
    TRY(fire3(r, layer, HK_PT_RESID_MID, s->resid, d));
    const float *in = mlp_input(r, layer, s->resid, s->attn_out, &st);
    TRY(st);
    TRY(norm(r, layer, HK_PT_POST_LN1_SCALE, HK_PT_POST_LN1_NORMALIZED, &bw->ln1, in,
             s->normed));
    swap_resid(s); /* resid = ln1(mlp_in): the MLP's input and the residual stream */
    TRY(mlp(r, layer, s->resid));
    hk_k_add(s->resid, s->mlp_out, n);
    TRY(fire3(r, layer, HK_PT_RESID_POST, s->resid, d));
    TRY(norm(r, layer, HK_PT_POST_LN2_SCALE, HK_PT_POST_LN2_NORMALIZED, &bw->ln2, s->resid,
             s->normed));
    swap_resid(s);
    return fire3(r, layer, HK_PT_NORMALIZED_RESID_POST, s->resid, d);
}

static hk_status block(fwd_run *r, int64_t layer) {
    const hk_config *c = &r->m->cfg;
    fwd_state *s = r->s;
    int64_t d = c->d_model, n = s->rows * d;
    hk_status st;
    TRY(fire3(r, layer, HK_PT_RESID_PRE, s->resid, d));
    TRY(attention(r, layer));
    if (c->post_norm) return block_post_norm(r, layer);
    if (c->parallel_attn_mlp) {
        /* resid_post = resid_pre + attn(ln1(resid_pre)) + mlp(ln2(resid_pre)) */
        const float *in = mlp_input(r, layer, s->resid, s->mlp_out, &st);
        TRY(st);
        TRY(mlp_prenorm(r, layer, in));
        hk_k_add(s->resid, s->attn_out, n);
        hk_k_add(s->resid, s->mlp_out, n);
    } else {
        hk_k_add(s->resid, s->attn_out, n);
        TRY(fire3(r, layer, HK_PT_RESID_MID, s->resid, d));
        const float *in = mlp_input(r, layer, s->resid, s->attn_out, &st);
        TRY(st);
        TRY(mlp_prenorm(r, layer, in));
        hk_k_add(s->resid, s->mlp_out, n);
    }
    return fire3(r, layer, HK_PT_RESID_POST, s->resid, d);
}

static hk_status check_inputs(const hk_model *m, const int32_t *tokens, const int32_t *types,
                              const int64_t *lengths, int64_t batch, int64_t seq, int64_t pos0) {
    if (!m || !tokens)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_forward: model and tokens must not be "
                                             "NULL");
    if (batch <= 0 || seq <= 0)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_model_forward: batch (%lld) and seq (%lld) must be positive",
                         (long long)batch, (long long)seq);
    const hk_config *c = &m->cfg;
    if (types && c->n_token_types == 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_forward: token types given, but this %s "
                                             "model has no token-type embeddings",
                         c->family);
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
            int32_t ty = types ? types[b * seq + t] : 0;
            if (ty < 0 || ty >= c->n_token_types) {
                if (!types) continue; /* no types given: every position is type 0 */
                return hk_errorf(HK_ERR_INVALID_ARG,
                                 "hk_model_forward: token type %d at [%lld, %lld] is outside "
                                 "[0, %lld)",
                                 ty, (long long)b, (long long)t, (long long)c->n_token_types);
            }
        }
    }
    if (c->pos == HK_POS_LEARNED && pos0 + seq > m->w.n_pos)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_model_forward: %lld positions requested but the model has "
                         "learned position embeddings for %lld",
                         (long long)(pos0 + seq), (long long)m->w.n_pos);
    return HK_OK;
}

/* What a call writes: the head's output (logits; an encoder without a head: its final hidden
 * states), or the final hidden states whatever the head. */
typedef enum { OUT_HEAD = 0, OUT_HIDDEN } out_kind;

/* x [rows, dim] -> out: every row, padded rows zeroed ([rows, dim]), or the last valid row of
 * each sequence ([batch, dim]). */
static void write_rows(const fwd_state *s, const float *x, int64_t dim, bool last_only,
                       float *out) {
    if (last_only) {
        for (int64_t b = 0; b < s->batch; b++)
            memcpy(out + b * dim, x + (b * s->seq + s->lengths[b] - 1) * dim,
                   (size_t)dim * sizeof(float));
        return;
    }
    if (x != out) memcpy(out, x, (size_t)(s->rows * dim) * sizeof(float));
    for (int64_t b = 0; b < s->batch; b++)
        for (int64_t t = s->lengths[b]; t < s->seq; t++)
            memset(out + (b * s->seq + t) * dim, 0, (size_t)dim * sizeof(float));
}

/* Final-logit soft-capping (Gemma 2), after unembed.hook_out as in TransformerLens. */
static void softcap_logits(const hk_config *c, float *logits, int64_t n) {
    if (c->final_softcap <= 0) return;
    const float cap = (float)c->final_softcap;
    for (int64_t i = 0; i < n; i++) logits[i] = hk_softcap(logits[i], cap);
}

/* Embed, blocks, then the head: final norm + unembed (decoders), the masked-LM head, or none.
 * out: [rows, dim], or [batch, dim] for the last row of each sequence when last_only; dim is
 * d_vocab for a head's logits, d_model for hidden states. */
static hk_status run_layers(fwd_run *r, const int32_t *ids, const int32_t *types,
                            bool last_only, out_kind kind, float *out) {
    const hk_config *c = &r->m->cfg;
    const hk_weights *w = &r->m->w;
    fwd_state *s = r->s;
    int64_t d = c->d_model, V = c->d_vocab;
    if (r->resid0)
        memcpy(s->resid, r->resid0, (size_t)(s->rows * d) * sizeof(float));
    else
        TRY(embed(r, ids, types));
    rope_prepare(c, s);
    for (int64_t l = r->layer0; l < r->layer_end; l++) TRY(block(r, l));
    if (!r->head) { /* stopped: the residual entering block layer_end (stop_at_layer) */
        if (out) write_rows(s, s->resid, d, last_only, out);
        return HK_OK;
    }
    if (c->head == HK_HEAD_LM) {
        TRY(norm(r, -1, HK_PT_LN_FINAL_SCALE, HK_PT_LN_FINAL_NORMALIZED, &w->ln_final, s->resid,
                 s->normed));
        swap_resid(s); /* resid = the final norm's output */
        TRY(fire3(r, -1, HK_PT_UNEMBED_IN, s->resid, d));
    }
    if (kind == OUT_HIDDEN || c->head == HK_HEAD_NONE) {
        if (out) write_rows(s, s->resid, d, last_only, out);
        return HK_OK;
    }
    if (c->head == HK_HEAD_MLM) { /* dense + act + LayerNorm, then the unembedding */
        linear(&w->head_dense, s->resid, s->rows, s->attn_out); /* [rows, d_model] */
        activation(c->act, s->attn_out, s->rows * d);
        TRY(norm(r, -1, HK_PT_MLM_LN_SCALE, HK_PT_MLM_LN_NORMALIZED, &w->head_ln, s->attn_out,
                 s->resid));
        TRY(fire3(r, -1, HK_PT_UNEMBED_IN, s->resid, d));
    }
    if (!out) return HK_OK;
    if (last_only) {
        for (int64_t b = 0; b < s->batch; b++) /* rows [batch, d_model] packed into normed */
            memcpy(s->normed + b * d, s->resid + (b * s->seq + s->lengths[b] - 1) * d,
                   (size_t)d * sizeof(float));
        linear(&w->unembed, s->normed, s->batch, out); /* [batch, d_vocab] */
        int64_t shape[3] = {s->batch, 1, V};
        TRY(fire(r, -1, HK_PT_UNEMBED_OUT, out, 3, shape, 0, s->pos0 + s->seq - 1, 0));
        softcap_logits(c, out, s->batch * V);
        return HK_OK;
    }
    linear(&w->unembed, s->resid, s->rows, out); /* [rows, d_vocab] */
    write_rows(s, out, V, false, out);
    TRY(fire3(r, -1, HK_PT_UNEMBED_OUT, out, V));
    softcap_logits(c, out, s->rows * V); /* padded rows stay 0 */
    return HK_OK;
}

/* One call of the forward over tokens [batch, seq] at positions pos0.. with the given state. */
static hk_status forward_call(hk_model *m, hk_hooks *hooks, struct hk_session *sess,
                              const int32_t *tokens, const int32_t *types,
                              const int64_t *lengths, int64_t batch, int64_t seq, int64_t pos0,
                              int64_t rope_len, bool last_only, out_kind kind, float *out,
                              int64_t layer0, const float *resid0, int64_t layer_end) {
    const hk_config *c = &m->cfg;
    int64_t *lens = malloc((size_t)batch * sizeof *lens);
    /* Padding tokens may hold any id; embed a valid one (0) in their rows, type 0 likewise. */
    int32_t *ids = malloc((size_t)(batch * seq) * sizeof *ids);
    int32_t *tys = types ? malloc((size_t)(batch * seq) * sizeof *tys) : NULL;
    fwd_state s;
    hk_status st = state_alloc(c, batch, seq, &s);
    if (!lens || !ids || (types && !tys) || st != HK_OK) {
        free(lens);
        free(ids);
        free(tys);
        if (st == HK_OK) state_free(&s);
        return st != HK_OK ? st : hk_errorf(HK_ERR_NOMEM, "hk_model_forward: out of memory");
    }
    for (int64_t b = 0; b < batch; b++) {
        lens[b] = lengths ? lengths[b] : seq;
        for (int64_t t = 0; t < seq; t++) {
            ids[b * seq + t] = t < lens[b] ? tokens[b * seq + t] : 0;
            if (tys) tys[b * seq + t] = t < lens[b] ? types[b * seq + t] : 0;
        }
    }
    s.lengths = lens;
    s.pos0 = pos0;
    s.rope_len = rope_len;
    s.sess = sess;
    fwd_run r = {.m = m, .hooks = hooks, .s = &s, .layer0 = layer0, .resid0 = resid0,
                 .layer_end = layer_end < c->n_layers ? layer_end : c->n_layers,
                 .head = layer_end > c->n_layers};
    st = run_layers(&r, ids, tys, last_only, kind, out);
    state_free(&s);
    free(tys);
    free(ids);
    free(lens);
    return st;
}

/* Where a one-shot forward may stop when nothing of its output is wanted (out NULL): after
 * the last block any registered hook sits in (0: the embeddings only), or, when a hook sits
 * after the blocks (ln_final, unembed), nowhere: HK_RUN_ALL_LAYERS. The hooks then fire
 * exactly as in the full forward; nothing later can be observed. Sessions never stop early:
 * the KV cache of every layer must be written for the next feed. */
static int64_t hooked_layer_end(const hk_model *m, const hk_hooks *hooks) {
    int64_t end = 0;
    if (!hooks) return end;
    for (size_t i = 0; i < m->points.n; i++) {
        if (!hk_hooks_active(hooks, (int32_t)i)) continue;
        hk_point_kind k = m->points.kinds[i];
        if (k > HK_PT_BLOCK_LAST) return HK_RUN_ALL_LAYERS;
        if (k >= HK_PT_BLOCK_FIRST && m->points.points[i].layer + 1 > end)
            end = m->points.points[i].layer + 1;
    }
    return end;
}

/* A one-shot forward over a right-padded batch; blocks [0, layer_end) (HK_RUN_ALL_LAYERS:
 * every block and the head). */
static hk_status run_batch(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                           const int32_t *types, const int64_t *lengths, int64_t batch,
                           int64_t seq, bool last_only, out_kind kind, float *out,
                           int64_t layer_end) {
    hk_status st = check_inputs(m, tokens, types, lengths, batch, seq, 0);
    if (st != HK_OK) return st;
    if (hooks && hooks->model != m)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_run: the hooks were made for another "
                                             "model");
    int64_t longest = 0;
    for (int64_t b = 0; b < batch; b++) {
        int64_t len = lengths ? lengths[b] : seq;
        if (len > longest) longest = len;
    }
    if (!out && layer_end == HK_RUN_ALL_LAYERS) layer_end = hooked_layer_end(m, hooks);
    return forward_call(m, hooks, NULL, tokens, types, lengths, batch, seq, 0, longest,
                        last_only, kind, out, 0, NULL, layer_end);
}

hk_status hk_forward_from_layer(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                                int64_t batch, int64_t seq, int64_t layer0, const float *resid0,
                                float *logits) {
    hk_status st = check_inputs(m, tokens, NULL, NULL, batch, seq, 0);
    if (st != HK_OK) return st;
    if (layer0 < 0 || layer0 >= m->cfg.n_layers || !resid0)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_forward_from_layer: layer %lld (expected "
                                             "0..%lld) and a residual are required",
                         (long long)layer0, (long long)(m->cfg.n_layers - 1));
    if (hooks && hooks->model != m)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_forward_from_layer: the hooks were made for "
                                             "another model");
    int64_t end = logits ? HK_RUN_ALL_LAYERS : hooked_layer_end(m, hooks);
    if (end < layer0) end = layer0; /* nothing hooked from layer0 on: no block need run */
    return forward_call(m, hooks, NULL, tokens, NULL, NULL, batch, seq, 0, seq, false, OUT_HEAD,
                        logits, layer0, resid0, end);
}

hk_status hk_model_run(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                       const int64_t *lengths, int64_t batch, int64_t seq, float *logits) {
    return run_batch(m, hooks, tokens, NULL, lengths, batch, seq, false, OUT_HEAD, logits,
                     HK_RUN_ALL_LAYERS);
}

hk_run_opts hk_run_default_opts(void) {
    return (hk_run_opts){.stop_at_layer = HK_RUN_ALL_LAYERS};
}

hk_status hk_model_run_opts(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                            const int64_t *lengths, int64_t batch, int64_t seq,
                            const hk_run_opts *o, float *out) {
    hk_run_opts d = hk_run_default_opts();
    if (!o) o = &d;
    if (!m) return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_run_opts: NULL model");
    const int64_t L = m->cfg.n_layers;
    int64_t end = o->stop_at_layer;
    if (end != HK_RUN_ALL_LAYERS) {
        if (end < -L || end > L)
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "hk_model_run_opts: stop_at_layer %lld: expected -%lld..%lld (this "
                             "%s model has %lld blocks) or HK_RUN_ALL_LAYERS",
                             (long long)end, (long long)L, (long long)L, m->cfg.family,
                             (long long)L);
        if (end < 0) end += L;
    }
    return run_batch(m, hooks, tokens, o->token_types, lengths, batch, seq, false, OUT_HEAD, out,
                     end);
}

hk_status hk_model_run_last(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                            const int64_t *lengths, int64_t batch, int64_t seq, float *logits) {
    return run_batch(m, hooks, tokens, NULL, lengths, batch, seq, true, OUT_HEAD, logits,
                     HK_RUN_ALL_LAYERS);
}

hk_status hk_model_run_typed(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                             const int32_t *token_types, const int64_t *lengths, int64_t batch,
                             int64_t seq, float *out) {
    return run_batch(m, hooks, tokens, token_types, lengths, batch, seq, false, OUT_HEAD, out,
                     HK_RUN_ALL_LAYERS);
}

hk_status hk_model_hidden(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                          const int32_t *token_types, const int64_t *lengths, int64_t batch,
                          int64_t seq, float *out) {
    return run_batch(m, hooks, tokens, token_types, lengths, batch, seq, false, OUT_HIDDEN,
                     out, HK_RUN_ALL_LAYERS);
}

hk_status hk_model_forward(hk_model *m, const int32_t *tokens, const int64_t *lengths,
                           int64_t batch, int64_t seq, float *logits) {
    return hk_model_run(m, NULL, tokens, lengths, batch, seq, logits);
}

hk_status hk_session_feed(hk_session *sess, hk_hooks *hooks, const int32_t *tokens, int64_t n,
                          bool last_only, float *logits) {
    if (!sess) return hk_errorf(HK_ERR_INVALID_ARG, "hk_session_feed: NULL session");
    hk_model *m = sess->model;
    if (n <= 0 || sess->pos + n > sess->max_len)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_session_feed: %lld positions at position %lld exceed the session's "
                         "max_len %lld",
                         (long long)n, (long long)sess->pos, (long long)sess->max_len);
    hk_status st = check_inputs(m, tokens, NULL, NULL, sess->batch, n, sess->pos);
    if (st != HK_OK) return st;
    if (hooks && hooks->model != m)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_session_feed: the hooks were made for another "
                                             "model");
    st = forward_call(m, hooks, sess, tokens, NULL, NULL, sess->batch, n, sess->pos,
                      sess->max_len, last_only, OUT_HEAD, logits, 0, NULL, HK_RUN_ALL_LAYERS);
    /* a stopped or failed chunk leaves the cache half-written: the session is not advanced */
    if (st == HK_OK) sess->pos += n;
    return st;
}
