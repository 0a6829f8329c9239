/* The generic forward pass: one code path for every family, driven by the canonical config.
 * Activations are kept in the padded layout [batch, pos, ...] (rows = batch*seq), which is the
 * layout hook points expose; padded rows are computed but never seen by valid queries.
 *
 * Hooks: every point asks HOOKED() first — one branch when nothing is registered there — and
 * only hooked points pay for views, copies or the materialized attention path.
 *
 * Every operation on activations, caches and weights is a call of the model's backend
 * (core/backend.h): buffers come from its alloc, weights from hk_backend_weights; on a device
 * backend the host touches device memory only through its copies. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "backend.h"
#include "error.h"
#include "forward.h"
#include "hooks/registry.h"
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
    int64_t *pos;    /* [seq] absolute positions of the rows of one sequence (host memory
                        backends only; a device backend computes the RoPE rows on the host) */
    void *block;     /* one device allocation behind all of the above */
} fwd_state;

typedef struct {
    hk_model *m;
    hk_backend *be;       /* where every op runs */
    const hk_weights *w;  /* the weights the backend computes with */
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
    hk_tensor t = {.data = data, .dtype = HK_DTYPE_F32, .device = r->be->device, .ndim = ndim};
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

/* Floats of each buffer of fwd_state, in carve order. */
static void state_sizes(const hk_config *c, int64_t batch, int64_t seq,
                        size_t sizes[STATE_BUFFERS]) {
    size_t r = (size_t)(batch * seq);
    size_t dq = (size_t)(c->n_heads * c->d_head), dkv = (size_t)(c->n_kv_heads * c->d_head);
    size_t d = (size_t)c->d_model, dm = (size_t)c->d_mlp;
    size_t half = c->pos == HK_POS_ROTARY ? (size_t)(c->rope.rot_dim / 2) : 0;
    const bool moe = c->n_experts > 0; /* routed MLPs keep their own workspace (moe_ws) */
    size_t s[STATE_BUFFERS] = {r * d,  r * d,  r * dq, r * dkv, r * dkv, r * dq, r * d,
                               moe ? 0 : r * dm, c->gated_mlp && !moe ? r * dm : 0, r * d,
                               r * (size_t)c->n_heads,
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

static hk_status state_alloc(hk_backend *be, const hk_config *c, int64_t batch, int64_t seq,
                             fwd_state *s) {
    memset(s, 0, sizeof *s);
    s->batch = batch;
    s->seq = seq;
    s->rows = batch * seq;
    size_t sizes[STATE_BUFFERS];
    state_sizes(c, batch, seq, sizes);
    size_t total = hk_forward_state_bytes(c, batch, seq);
    /* peak memory is what the estimate (hk_forward_state_bytes) says: the CPU backend maps
     * large blocks rather than growing the heap (core/backend_cpu.c) */
    hk_status st = be->alloc(be, total, &s->block);
    if (st != HK_OK)
        return hk_errorf(st, "forward: cannot allocate %zu bytes of activations for batch %lld "
                             "x seq %lld on %s: %s",
                         total, (long long)batch, (long long)seq, be->name, hk_last_error());
    char *p = s->block;
    s->resid = carve(&p, sizes[0]);
    s->normed = carve(&p, sizes[1]);
    s->q = carve(&p, sizes[2]);
    s->k = carve(&p, sizes[3]);
    s->v = carve(&p, sizes[4]);
    s->z = carve(&p, sizes[5]);
    s->attn_out = carve(&p, sizes[6]);
    s->mlp_pre = carve(&p, sizes[7]);
    s->mlp_lin = sizes[8] ? carve(&p, sizes[8]) : NULL;
    s->mlp_out = carve(&p, sizes[9]);
    s->scale = carve(&p, sizes[10]);
    s->rope_cos = carve(&p, sizes[11]);
    s->rope_sin = carve(&p, sizes[12]);
    int64_t *pos = (int64_t *)carve(&p, sizes[13]);
    s->pos = be->host_memory ? pos : NULL;
    s->mean = carve(&p, sizes[14]);
    s->rope_cos_local = carve(&p, sizes[15]);
    s->rope_sin_local = carve(&p, sizes[16]);
    return HK_OK;
}

static void state_free(hk_backend *be, fwd_state *s) {
    be->free(be, s->block);
    s->block = NULL;
}

/* ---- layer pieces ---- */

static hk_status linear(fwd_run *r, const hk_linear *l, const float *x, int64_t rows,
                        float *y) {
    return r->be->linear(r->be, l, x, rows, y, l->n_out);
}

static hk_status activation(fwd_run *r, hk_act_kind a, float *x, int64_t n) {
    return r->be->act(r->be, a, x, n);
}

/* Host data [bytes] where the backend's ops read it: itself on a host-memory backend, else a
 * device copy (free it with dev_release). */
static hk_status dev_upload(fwd_run *r, const void *host, size_t bytes, void **out) {
    hk_backend *be = r->be;
    if (be->host_memory) {
        *out = (void *)host;
        return HK_OK;
    }
    TRY(be->alloc(be, bytes, out));
    hk_status st = be->to_device(be, *out, host, bytes);
    if (st != HK_OK) {
        be->free(be, *out);
        *out = NULL;
    }
    return st;
}

static void dev_release(fwd_run *r, void *p) {
    if (!r->be->host_memory) r->be->free(r->be, p);
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
    hk_backend *be = r->be;
    TRY(be->norm_stats(be, x, n, d, center, c->norm_eps, s->mean, s->scale));
    TRY(fire(r, layer, k_scale, s->scale, sndim, sshape, 0, s->pos0, 0));
    TRY(be->norm_divide(be, x, n, d, s->mean, s->scale, y));
    TRY(fire(r, layer, k_norm, y, nndim, nshape, 0, s->pos0, 0));
    return be->norm_affine(be, y, n, d, nw->w, nw->b);
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
        return r->be->layernorm(r->be, x, r->s->rows, c->d_model, nw->w, nw->b,
                                (float)c->norm_eps, y, NULL);
    return r->be->rmsnorm(r->be, x, r->s->rows, c->d_model, nw->w, (float)c->norm_eps, y, NULL);
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
    const hk_weights *w = r->w;
    hk_backend *be = r->be;
    fwd_state *s = r->s;
    int64_t d = c->d_model;
    void *ids; /* [rows] int32 where the backend reads them */
    TRY(dev_upload(r, tokens, (size_t)s->rows * sizeof *tokens, &ids));
    hk_status st = be->embed(be, w->tok_embed, d, ids, s->rows, s->resid);
    dev_release(r, ids);
    TRY(st);
    if (c->embed_scale > 0) /* Gemma: W_E[t] * sqrt(d_model), the factor rounded to f32 */
        TRY(be->scale(be, s->resid, s->rows * d, (float)c->embed_scale));
    TRY(fire3(r, -1, HK_PT_EMBED, s->resid, d));
    float *scratch = s->normed; /* [rows, d_model] scratch until the first norm */
    if (c->pos == HK_POS_LEARNED) {
        for (int64_t b = 0; b < s->batch; b++)
            TRY(be->copy(be, scratch + b * s->seq * d, w->pos_embed + s->pos0 * d,
                         (size_t)(s->seq * d) * sizeof(float)));
        TRY(fire3(r, -1, HK_PT_POS_EMBED, scratch, d));
        TRY(be->add(be, s->resid, scratch, s->rows * d));
    }
    if (c->n_token_types > 0) {
        int32_t *zeros = types ? NULL : calloc((size_t)s->rows, sizeof *zeros);
        if (!types && !zeros) return hk_errorf(HK_ERR_NOMEM, "forward: out of memory");
        TRY(dev_upload(r, types ? types : zeros, (size_t)s->rows * sizeof *types, &ids));
        st = be->embed(be, w->type_embed, d, ids, s->rows, scratch);
        dev_release(r, ids);
        free(zeros);
        TRY(st);
        TRY(fire3(r, -1, HK_PT_TOKEN_TYPE_EMBED, scratch, d));
        TRY(be->add(be, s->resid, scratch, s->rows * d));
    }
    if (c->embed_norm) {
        TRY(norm(r, -1, HK_PT_EMBED_LN_SCALE, HK_PT_EMBED_LN_NORMALIZED, &w->embed_ln, s->resid,
                 s->normed));
        swap_resid(s);
        TRY(fire3(r, -1, HK_PT_FULL_EMBED, s->resid, d));
    }
    return HK_OK;
}

/* Rotary tables for positions pos0..pos0+seq-1; LongRoPE picks its factors from rope_len. */
static hk_status rope_prepare(fwd_run *r) {
    const hk_config *c = &r->m->cfg;
    fwd_state *s = r->s;
    hk_backend *be = r->be;
    if (c->pos != HK_POS_ROTARY) return HK_OK;
    int64_t half = c->rope.rot_dim / 2;
    const size_t n = (size_t)(s->seq * half);
    const int tables = c->has_rope_local ? 4 : 2;
    /* the tables are computed on the host: in place on a host-memory backend, else in a host
     * buffer [seq] positions + tables x [seq, half] uploaded after */
    float *host = NULL, *t[4] = {s->rope_cos, s->rope_sin, s->rope_cos_local, s->rope_sin_local};
    int64_t *pos = s->pos;
    if (!be->host_memory) {
        host = malloc((size_t)s->seq * sizeof *pos + (size_t)tables * n * sizeof(float));
        if (!host) return hk_errorf(HK_ERR_NOMEM, "forward: no memory for the RoPE tables");
        for (int i = 0; i < tables; i++) t[i] = host + (size_t)i * n;
        pos = (int64_t *)(void *)(host + (size_t)tables * n);
    }
    float inv_freq[HK_MAX_ROPE_FACTORS];
    float attn_factor;
    hk_rope_inv_freq(&c->rope, s->rope_len, inv_freq, &attn_factor);
    for (int64_t i = 0; i < s->seq; i++) pos[i] = s->pos0 + i;
    hk_rope_table(inv_freq, half, attn_factor, pos, s->seq, t[0], t[1]);
    if (c->has_rope_local) { /* Gemma 3: sliding layers rotate with their own base */
        hk_rope_inv_freq(&c->rope_local, s->rope_len, inv_freq, &attn_factor);
        hk_rope_table(inv_freq, half, attn_factor, pos, s->seq, t[2], t[3]);
    }
    hk_status st = HK_OK;
    float *dst[4] = {s->rope_cos, s->rope_sin, s->rope_cos_local, s->rope_sin_local};
    for (int i = 0; host && i < tables && st == HK_OK; i++)
        st = be->to_device(be, dst[i], t[i], n * sizeof(float));
    free(host);
    return st;
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
    hk_backend *be = r->be;
    float *scores; /* [nh, chunk, sk] */
    if (be->alloc(be, (size_t)(nh * chunk * sk) * sizeof *scores, (void **)&scores) != HK_OK)
        return hk_errorf(HK_ERR_NOMEM, "forward: no memory for a %lld x %lld attention chunk",
                         (long long)chunk, (long long)sk);
    hk_status st = HK_OK;
    for (int64_t q0 = 0; q0 < s->seq && st == HK_OK; q0 += chunk) {
        int64_t qc = s->seq - q0 < chunk ? s->seq - q0 : chunk;
        seq_mask sm = {.batch = b};
        hk_k_mask mask = layer_mask(r->m, layer, s->pos0 + q0, kv, &sm);
        st = be->attention_scores(be, s->q + (r0 + q0) * dq, dq, kv->k, kv->ld, qc, sk, nh,
                                  c->n_kv_heads, c->d_head, (float)c->attn_scale, &mask, scores);
        if (st != HK_OK) break;
        int64_t shape[4] = {1, nh, qc, sk};
        st = fire(r, layer, HK_PT_ATTN_SCORES, scores, 4, shape, b, s->pos0 + q0, kv->k_pos0);
        if (st != HK_OK) break;
        if ((st = be->softmax_rows(be, scores, nh * qc, sk, scores)) != HK_OK) break;
        st = fire(r, layer, HK_PT_PATTERN, scores, 4, shape, b, s->pos0 + q0, kv->k_pos0);
        if (st != HK_OK) break;
        st = be->attention_apply(be, scores, kv->v, kv->ld, qc, sk, nh, c->n_kv_heads,
                                 c->d_head, s->z + (r0 + q0) * dq, dq);
    }
    be->free(be, scores);
    return st;
}

/* attn.hook_result is hooked: per-head outputs [batch, pos, head, d_model], then their sum. */
static hk_status attn_out_per_head(fwd_run *r, int64_t layer) {
    const hk_config *c = &r->m->cfg;
    const hk_linear *o = &r->w->blocks[layer].o;
    hk_backend *be = r->be;
    fwd_state *s = r->s;
    int64_t nh = c->n_heads, dh = c->d_head, d = c->d_model, dq = nh * dh;
    /* result [rows, nh, d], zh [rows, dh] (head h of z), sum [rows, d] (head h of result) */
    float *result = NULL, *zh = NULL, *head = NULL;
    hk_status st = be->alloc(be, (size_t)(s->rows * nh * d) * sizeof *result, (void **)&result);
    if (st == HK_OK) st = be->alloc(be, (size_t)(s->rows * dh) * sizeof *zh, (void **)&zh);
    if (st == HK_OK) st = be->alloc(be, (size_t)(s->rows * d) * sizeof *head, (void **)&head);
    if (st != HK_OK) {
        st = hk_errorf(HK_ERR_NOMEM, "forward: no memory for attn.hook_result");
        goto done;
    }
    for (int64_t h = 0; h < nh && st == HK_OK; h++) {
        st = be->copy2d(be, zh, dh, s->z + h * dh, dq, s->rows, dh);
        /* W_O's inputs of head h, no bias */
        hk_linear oh = be->linear_slice(be, o, h * dh, dh, 0, d);
        oh.b = NULL;
        if (st == HK_OK) st = be->linear(be, &oh, zh, s->rows, result + h * d, nh * d);
    }
    if (st == HK_OK) st = fire4(r, layer, HK_PT_RESULT, result, nh, d);
    /* attn_out = b_O + the heads' outputs, added in head order */
    if (st == HK_OK)
        st = o->b ? be->copy2d(be, s->attn_out, d, o->b, 0, s->rows, d)
                  : be->memset(be, s->attn_out, 0, (size_t)(s->rows * d) * sizeof(float));
    for (int64_t h = 0; h < nh && st == HK_OK; h++) {
        st = be->copy2d(be, head, d, result + h * d, nh * d, s->rows, d);
        if (st == HK_OK) st = be->add(be, s->attn_out, head, s->rows * d);
    }
done:
    be->free(be, result);
    be->free(be, zh);
    be->free(be, head);
    return st;
}

static bool split_inputs_hooked(fwd_run *r, int64_t layer) {
    for (int k = HK_PT_BLOCK_FIRST; k <= HK_PT_BLOCK_LAST; k++)
        if (hk_point_kind_splits_inputs((hk_point_kind)k) && HOOKED(r, layer, (hk_point_kind)k))
            return true;
    return false;
}

/* One of q/k/v from per-head inputs, TransformerLens's split-input path:
 * in [rows, heads, d_model] --hook--> ln1 per head --> out[:, h, :] = ln1(in_h) W_h. */
static hk_status split_projection(fwd_run *r, int64_t layer, hk_point_kind k_in, float *in,
                                  int64_t heads, const hk_linear *w, float *out, float *tmp) {
    const hk_config *c = &r->m->cfg;
    hk_backend *be = r->be;
    fwd_state *s = r->s;
    int64_t d = c->d_model, dh = c->d_head;
    if (k_in != HK_PT_COUNT) TRY(fire4(r, layer, k_in, in, heads, d));
    if (!c->post_norm && !c->no_input_norms) /* else attention reads the residual stream */
        TRY(norm_hooked(r, layer, HK_PT_LN1_SCALE, HK_PT_LN1_NORMALIZED,
                        &r->w->blocks[layer].ln1, in, in, heads));
    for (int64_t h = 0; h < heads; h++) {
        TRY(be->copy2d(be, tmp, d, in + h * d, heads * d, s->rows, d));
        hk_linear wh = be->linear_slice(be, w, 0, d, h * dh, dh); /* head h's outputs */
        TRY(be->linear(be, &wh, tmp, s->rows, out + h * dh, heads * dh));
    }
    return HK_OK;
}

/* resid_pre repeated along a head dimension: [rows, heads, d_model] */
static hk_status repeat_heads(fwd_run *r, const float *x, int64_t rows, int64_t heads,
                              int64_t d, float *out) {
    for (int64_t h = 0; h < heads; h++)
        TRY(r->be->copy2d(r->be, out + h * d, heads * d, x, d, rows, d));
    return HK_OK;
}

/* q, k, v through hook_attn_in / hook_{q,k,v}_input (requested at this layer). */
static hk_status qkv_split(fwd_run *r, int64_t layer) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->w->blocks[layer];
    hk_backend *be = r->be;
    fwd_state *s = r->s;
    int64_t nh = c->n_heads, nkv = c->n_kv_heads, d = c->d_model;
    bool split = HOOKED(r, layer, HK_PT_Q_INPUT) || HOOKED(r, layer, HK_PT_K_INPUT) ||
                 HOOKED(r, layer, HK_PT_V_INPUT);
    float *in = NULL, *tmp = NULL, *attn_in = NULL; /* [rows, heads, d_model], [rows, d_model] */
    const size_t in_bytes = (size_t)(s->rows * nh * d) * sizeof(float);
    hk_status st = be->alloc(be, in_bytes, (void **)&in);
    if (st == HK_OK) st = be->alloc(be, (size_t)(s->rows * d) * sizeof *tmp, (void **)&tmp);
    if (st != HK_OK) {
        st = hk_errorf(HK_ERR_NOMEM, "forward: no memory for split attention inputs");
        goto done;
    }
    if (!split) { /* hook_attn_in only: one [rows, n_heads, d_model] input feeds q, k and v */
        if ((st = repeat_heads(r, s->resid, s->rows, nh, d, in))) goto done;
        if ((st = fire4(r, layer, HK_PT_ATTN_IN, in, nh, d))) goto done;
        if (be->alloc(be, in_bytes, (void **)&attn_in) != HK_OK) {
            st = hk_errorf(HK_ERR_NOMEM, "forward: no memory for hook_attn_in");
            goto done;
        }
        const hk_linear *w[3] = {&bw->q, &bw->k, &bw->v};
        float *out[3] = {s->q, s->k, s->v};
        for (int p = 0; p < 3 && st == HK_OK; p++) {
            st = be->copy(be, attn_in, in, in_bytes);
            if (st == HK_OK)
                st = split_projection(r, layer, HK_PT_COUNT, attn_in, nh, w[p], out[p], tmp);
        }
        goto done;
    }
    if (HOOKED(r, layer, HK_PT_ATTN_IN)) { /* fired, but split inputs come from resid_pre */
        if ((st = repeat_heads(r, s->resid, s->rows, nh, d, in))) goto done;
        if ((st = fire4(r, layer, HK_PT_ATTN_IN, in, nh, d))) goto done;
    }
    if ((st = repeat_heads(r, s->resid, s->rows, nh, d, in))) goto done;
    if ((st = split_projection(r, layer, HK_PT_Q_INPUT, in, nh, &bw->q, s->q, tmp))) goto done;
    if ((st = repeat_heads(r, s->resid, s->rows, nkv, d, in))) goto done;
    if ((st = split_projection(r, layer, HK_PT_K_INPUT, in, nkv, &bw->k, s->k, tmp))) goto done;
    if ((st = repeat_heads(r, s->resid, s->rows, nkv, d, in))) goto done;
    st = split_projection(r, layer, HK_PT_V_INPUT, in, nkv, &bw->v, s->v, tmp);
done:
    be->free(be, attn_in);
    be->free(be, in);
    be->free(be, tmp);
    return st;
}

/* Keys of sequence b for this layer (see key_view). A full-attention cache gets this chunk's
 * keys written first, then is read in place; a rolling buffer's live slots (positions
 * pos0-W+1 .. pos0-1) are gathered in position order, followed by the chunk's own keys. */
static hk_status keys_for(fwd_run *r, int64_t layer, int64_t b, float *gather,
                          key_view *kv) {
    const hk_config *c = &r->m->cfg;
    hk_backend *be = r->be;
    fwd_state *s = r->s;
    int64_t dkv = c->n_kv_heads * c->d_head, r0 = b * s->seq;
    size_t row = (size_t)dkv * sizeof(float);
    if (!s->sess) {
        *kv = (key_view){s->k + r0 * dkv, s->v + r0 * dkv, dkv, s->seq, s->pos0, s->lengths[b]};
        return HK_OK;
    }
    const hk_kv_layer *L = &s->sess->layers[layer];
    float *ck = L->k + b * L->slots * dkv, *cv = L->v + b * L->slots * dkv;
    if (!L->rolling) {
        TRY(be->kv_write(be, ck, 0, s->pos0, s->k + r0 * dkv, dkv, s->seq, dkv));
        TRY(be->kv_write(be, cv, 0, s->pos0, s->v + r0 * dkv, dkv, s->seq, dkv));
        int64_t n = s->pos0 + s->seq;
        *kv = (key_view){ck, cv, dkv, n, 0, n};
        return HK_OK;
    }
    int64_t W = L->slots, lo = s->pos0 - (W - 1) > 0 ? s->pos0 - (W - 1) : 0;
    int64_t n_old = s->pos0 - lo, sk = n_old + s->seq;
    float *gk = gather, *gv = gather + (W + s->seq) * dkv;
    /* positions lo .. pos0-1 sit in slots p mod W: at most two contiguous runs */
    for (int64_t p = lo; p < s->pos0;) {
        int64_t slot = p % W, run = s->pos0 - p < W - slot ? s->pos0 - p : W - slot;
        TRY(be->copy(be, gk + (p - lo) * dkv, ck + slot * dkv, (size_t)run * row));
        TRY(be->copy(be, gv + (p - lo) * dkv, cv + slot * dkv, (size_t)run * row));
        p += run;
    }
    TRY(be->copy(be, gk + n_old * dkv, s->k + r0 * dkv, (size_t)s->seq * row));
    TRY(be->copy(be, gv + n_old * dkv, s->v + r0 * dkv, (size_t)s->seq * row));
    *kv = (key_view){gk, gv, dkv, sk, lo, sk};
    return HK_OK;
}

/* After attention: a rolling buffer keeps the chunk's last W positions (slot = pos mod W). */
static hk_status cache_store(fwd_run *r, int64_t layer, int64_t b) {
    const hk_config *c = &r->m->cfg;
    hk_backend *be = r->be;
    fwd_state *s = r->s;
    const hk_kv_layer *L = &s->sess->layers[layer];
    if (!L->rolling) return HK_OK; /* written before attention */
    int64_t dkv = c->n_kv_heads * c->d_head, r0 = b * s->seq, W = L->slots;
    float *ck = L->k + b * W * dkv, *cv = L->v + b * W * dkv;
    int64_t first = s->seq > W ? s->seq - W : 0;
    TRY(be->kv_write(be, ck, W, s->pos0 + first, s->k + (r0 + first) * dkv, dkv, s->seq - first,
                     dkv));
    return be->kv_write(be, cv, W, s->pos0 + first, s->v + (r0 + first) * dkv, dkv,
                        s->seq - first, dkv);
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
    return r->be->rmsnorm(r->be, x, n, d, nw->w, (float)c->norm_eps, x, NULL);
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
    const hk_block_weights *bw = &r->w->blocks[layer];
    hk_backend *be = r->be;
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
        TRY(linear(r, &bw->q, in, s->rows, s->q)); /* [rows, n_heads*d_head] */
        TRY(linear(r, &bw->k, in, s->rows, s->k)); /* [rows, n_kv_heads*d_head] */
        TRY(linear(r, &bw->v, in, s->rows, s->v));
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
            TRY(be->rope(be, s->q + b * s->seq * dq, s->seq, nh, dh, dq, c->rope.rot_dim, cs, sn));
            TRY(be->rope(be, s->k + b * s->seq * dkv, s->seq, nkv, dh, dkv, c->rope.rot_dim, cs,
                         sn));
        }
        TRY(fire4(r, layer, HK_PT_ROT_Q, s->q, nh, dh));
        TRY(fire4(r, layer, HK_PT_ROT_K, s->k, nkv, dh));
    }
    bool materialize = HOOKED(r, layer, HK_PT_ATTN_SCORES) || HOOKED(r, layer, HK_PT_PATTERN);
    float *gather = NULL;
    if (s->sess && s->sess->layers[layer].rolling) {
        int64_t cap = (s->sess->layers[layer].slots + s->seq) * dkv;
        /* [W - 1 + seq, dkv] x {k, v} */
        if (be->alloc(be, (size_t)(2 * cap) * sizeof *gather, (void **)&gather) != HK_OK)
            return hk_errorf(HK_ERR_NOMEM, "forward: no memory to gather the cache");
    }
    hk_status st = HK_OK;
    for (int64_t b = 0; b < s->batch && st == HK_OK; b++) {
        key_view kv;
        if ((st = keys_for(r, layer, b, gather, &kv)) != HK_OK) break;
        if (materialize) {
            st = attention_materialized(r, layer, b, &kv);
        } else {
            seq_mask sm = {.batch = b};
            hk_k_mask mask = layer_mask(r->m, layer, s->pos0, &kv, &sm);
            int64_t r0 = b * s->seq;
            st = be->attention(be, s->q + r0 * dq, dq, kv.k, kv.ld, kv.v, kv.ld, s->seq, kv.sk, nh,
                               nkv, dh, (float)c->attn_scale, &mask, s->z + r0 * dq, dq);
        }
        if (st == HK_OK && s->sess) st = cache_store(r, layer, b);
    }
    be->free(be, gather);
    TRY(st);
    TRY(fire4(r, layer, HK_PT_Z, s->z, nh, dh));
    if (HOOKED(r, layer, HK_PT_RESULT))
        TRY(attn_out_per_head(r, layer));
    else
        TRY(linear(r, &bw->o, s->z, s->rows, s->attn_out)); /* [rows, d_model] */
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
    int64_t *order; /* [rows * k] slots sorted by expert (device) */
    /* one tile of an expert's rows (tile = expert_tile: the average load, so that the most
     * loaded expert always fills it and the memory touched is what the estimate says) */
    int64_t tile;
    float *xg;      /* [tile, max(d_model, d_mlp)] gathered inputs */
    float *g, *u;   /* [tile, d_mlp] */
    float *o;       /* [tile, d_model] */
    /* host side of the routing: the chosen ids read back, the sort, the expert starts (on a
     * host-memory backend ids_h and order_h are ids and order themselves) */
    float *ids_h;     /* [rows * k] */
    int64_t *order_h; /* [rows * k + E] the sorted slots, then E cursors */
    int64_t *start;   /* [E + 1] first entry of each expert in order */
} moe_ws;

static size_t expert_ws_bytes(const hk_config *c, int64_t n);
static int64_t expert_tile(const hk_config *c, int64_t rows);
static hk_status moe_experts(fwd_run *r, int64_t layer, const float *x, moe_ws *w);

static hk_status moe_mlp(fwd_run *r, int64_t layer, const float *x, moe_ws *w) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->w->blocks[layer];
    hk_backend *be = r->be;
    fwd_state *s = r->s;
    const int64_t E = c->n_experts, k = c->n_experts_used, d = c->d_model, dm = c->d_mlp;
    const int64_t rows = s->rows, slots = rows * k;
    TRY(linear(r, &bw->router, x, rows, w->logits)); /* [rows, E] */
    TRY(fire3(r, layer, HK_PT_ROUTER_LOGITS, w->logits, E));
    TRY(be->router_softmax(be, w->logits, rows, E, w->probs));
    TRY(fire3(r, layer, HK_PT_EXPERT_WEIGHTS, w->probs, E));
    TRY(be->topk_route(be, w->probs, rows, E, k, c->moe_norm_topk, w->ids, w->mix));
    TRY(fire3(r, layer, HK_PT_EXPERT_INDICES, w->ids, k));
    TRY(fire3(r, layer, HK_PT_TOPK_WEIGHTS, w->mix, k));
    /* counting sort of the slots by expert on the host (ids may have been rewritten by a
     * hook): the one read-back of a routed layer */
    if (w->ids_h != w->ids) TRY(be->to_host(be, w->ids_h, w->ids, (size_t)slots * sizeof(float)));
    memset(w->start, 0, (size_t)(E + 1) * sizeof *w->start);
    for (int64_t a = 0; a < slots; a++) {
        const float id = w->ids_h[a];
        if (!(id >= 0 && id < (float)E && id == floorf(id)))
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "blocks.%lld.mlp.hook_expert_indices: entry %lld is %g, expected "
                             "an expert id 0..%lld",
                             (long long)layer, (long long)a, (double)id, (long long)(E - 1));
        w->start[(int64_t)id + 1]++;
    }
    for (int64_t e = 0; e < E; e++) w->start[e + 1] += w->start[e];
    {
        int64_t *fill = w->order_h + slots; /* [E] cursors, behind order's slots */
        for (int64_t e = 0; e < E; e++) fill[e] = w->start[e];
        for (int64_t a = 0; a < slots; a++) w->order_h[fill[(int64_t)w->ids_h[a]]++] = a;
    }
    if (w->order_h != w->order)
        TRY(be->to_device(be, w->order, w->order_h, (size_t)slots * sizeof *w->order));
    const int64_t wide = d > dm ? d : dm, tile = expert_tile(c, rows);
    float *buf;
    if (be->alloc(be, expert_ws_bytes(c, tile), (void **)&buf) != HK_OK)
        return hk_errorf(HK_ERR_NOMEM, "forward: no memory for %lld rows of one expert",
                         (long long)tile);
    w->tile = tile;
    w->xg = buf;
    w->g = w->xg + tile * wide;
    w->u = w->g + tile * dm;
    w->o = w->u + tile * dm;
    hk_status st = moe_experts(r, layer, x, w);
    be->free(be, buf);
    return st;
}

/* The chosen experts on their rows (the routing of moe_mlp done), then their weighted sum. */
static hk_status moe_experts(fwd_run *r, int64_t layer, const float *x, moe_ws *w) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->w->blocks[layer];
    hk_backend *be = r->be;
    fwd_state *s = r->s;
    const int64_t E = c->n_experts, k = c->n_experts_used, d = c->d_model, dm = c->d_mlp;
    const int64_t rows = s->rows;
    /* the chosen experts' activations, expert by expert on their rows only, a tile at a time */
    for (int64_t e = 0; e < E; e++) {
        const hk_linear *ex = bw->experts + 3 * e;
        for (int64_t i0 = w->start[e]; i0 < w->start[e + 1]; i0 += w->tile) {
            const int64_t n = w->start[e + 1] - i0 < w->tile ? w->start[e + 1] - i0 : w->tile;
            const int64_t *sl = w->order + i0; /* [n] slots, device */
            TRY(be->gather_rows(be, w->xg, x, d, sl, k, n)); /* the slots' token rows */
            TRY(linear(r, &ex[0], w->xg, n, w->g)); /* [n, d_mlp] gate */
            TRY(linear(r, &ex[1], w->xg, n, w->u)); /* [n, d_mlp] up */
            TRY(be->glu(be, c->act, w->g, w->u, n * dm));
            TRY(be->scatter_rows(be, w->act, w->g, dm, sl, n));
        }
    }
    TRY(fire4(r, layer, HK_PT_EXPERT_POST, w->act, k, dm));
    TRY(be->memset(be, s->mlp_out, 0, (size_t)(rows * d) * sizeof(float)));
    for (int64_t e = 0; e < E; e++) {
        for (int64_t i0 = w->start[e]; i0 < w->start[e + 1]; i0 += w->tile) {
            const int64_t n = w->start[e + 1] - i0 < w->tile ? w->start[e + 1] - i0 : w->tile;
            const int64_t *sl = w->order + i0;
            TRY(be->gather_rows(be, w->xg, w->act, dm, sl, 1, n));
            TRY(linear(r, &bw->experts[3 * e + 2], w->xg, n, w->o)); /* [n, d_model] down */
            /* mlp_out[token of slot] += mix[slot] * o */
            TRY(be->combine_rows(be, s->mlp_out, w->o, d, sl, k, w->mix, n));
        }
    }
    return HK_OK;
}

/* Bytes of the routing workspace for `rows` tokens: router logits and probabilities
 * [rows, E], chosen ids and weights [rows * k], the experts' activations per slot, and the
 * slot order and expert starts. */
static size_t routed_ws_bytes(const hk_config *c, int64_t rows) {
    const int64_t E = c->n_experts, k = c->n_experts_used, dm = c->d_mlp;
    const int64_t slots = rows * k;
    const size_t floats = (size_t)(2 * rows * E + 2 * slots + slots * dm);
    const size_t ints = (size_t)(slots + E + E + 1);
    return floats * sizeof(float) + ints * sizeof(int64_t); /* as the CPU lays it out */
}

/* Rows of an expert computed at once: the average load ceil(rows * k / E). The most loaded
 * expert has at least that many, so the tile is always filled: its memory is both bounded
 * and exactly what is touched (hk_forward_moe_bytes). */
static int64_t expert_tile(const hk_config *c, int64_t rows) {
    const int64_t slots = rows * c->n_experts_used;
    return (slots + c->n_experts - 1) / c->n_experts;
}

/* Bytes of one expert's rows: gathered inputs, gate/up and outputs of n rows. */
static size_t expert_ws_bytes(const hk_config *c, int64_t n) {
    const int64_t d = c->d_model, dm = c->d_mlp, wide = d > dm ? d : dm;
    return (size_t)(n * (wide + 2 * dm + d)) * sizeof(float);
}

/* Bytes of the shared expert's workspace: gate and up [rows, d_shared], output [rows,
 * d_model], its sigmoid gate [rows]. */
static size_t shared_ws_bytes(const hk_config *c, int64_t rows) {
    return (size_t)(rows * (2 * c->d_shared_expert + c->d_model + 1)) * sizeof(float);
}

size_t hk_forward_moe_bytes(const hk_config *c, int64_t rows) {
    if (c->n_experts <= 0) return 0;
    /* the routing, and one tile of expert rows */
    const size_t routed = routed_ws_bytes(c, rows) + expert_ws_bytes(c, expert_tile(c, rows));
    const size_t shared = c->d_shared_expert > 0 ? shared_ws_bytes(c, rows) : 0;
    return routed > shared ? routed : shared; /* one is freed before the other is taken */
}

/* Qwen2-MoE's shared expert on every row, added to mlp_out after the routed experts:
 * mlp_out += sigmoid(x . w_gate) * down(act(x W_gate) * (x W_up)). */
static hk_status shared_expert(fwd_run *r, int64_t layer, const float *x) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->w->blocks[layer];
    hk_backend *be = r->be;
    fwd_state *s = r->s;
    const int64_t rows = s->rows, d = c->d_model, ds = c->d_shared_expert;
    float *buf;
    if (be->alloc(be, shared_ws_bytes(c, rows), (void **)&buf) != HK_OK)
        return hk_errorf(HK_ERR_NOMEM, "forward: no memory for the shared expert");
    float *g = buf, *u = g + rows * ds, *o = u + rows * ds, *gate = o + rows * d;
    hk_status st = linear(r, &bw->shared[0], x, rows, g); /* [rows, d_shared] */
    if (st == HK_OK) st = linear(r, &bw->shared[1], x, rows, u); /* [rows, d_shared] */
    if (st == HK_OK) st = be->glu(be, c->act, g, u, rows * ds);
    if (st == HK_OK) st = fire3(r, layer, HK_PT_SHARED_POST, g, ds);
    if (st == HK_OK) st = linear(r, &bw->shared[2], g, rows, o);      /* [rows, d_model] */
    if (st == HK_OK) st = linear(r, &bw->shared_gate, x, rows, gate); /* [rows, 1] */
    if (st == HK_OK) st = be->sigmoid(be, gate, rows);
    if (st == HK_OK) st = fire3(r, layer, HK_PT_SHARED_GATE, gate, 1);
    if (st == HK_OK) st = be->combine_rows(be, s->mlp_out, o, d, NULL, 1, gate, rows);
    be->free(be, buf);
    return st;
}

/* Workspace of moe_mlp for this call, one allocation (routed_ws_bytes). */
static hk_status moe(fwd_run *r, int64_t layer, const float *x) {
    const hk_config *c = &r->m->cfg;
    hk_backend *be = r->be;
    const int64_t E = c->n_experts, k = c->n_experts_used, dm = c->d_mlp;
    const int64_t rows = r->s->rows, slots = rows * k;
    float *buf;
    if (be->alloc(be, routed_ws_bytes(c, rows), (void **)&buf) != HK_OK)
        return hk_errorf(HK_ERR_NOMEM, "forward: no memory for the experts of %lld rows",
                         (long long)rows);
    moe_ws w;
    w.logits = buf;
    w.probs = w.logits + rows * E;
    w.ids = w.probs + rows * E;
    w.mix = w.ids + slots;
    w.act = w.mix + slots;
    w.order = (int64_t *)(void *)(w.act + slots * dm);
    /* the host side: in the workspace on a host-memory backend, else a host buffer */
    void *host = NULL;
    if (be->host_memory) {
        w.ids_h = w.ids;
        w.order_h = w.order;
        w.start = w.order + slots + E;
    } else {
        host = malloc((size_t)slots * sizeof(float) + (size_t)(slots + 2 * E + 1) * sizeof(int64_t));
        if (!host) {
            be->free(be, buf);
            return hk_errorf(HK_ERR_NOMEM, "forward: no memory for the routing of %lld rows",
                             (long long)rows);
        }
        w.order_h = host;
        w.start = w.order_h + slots + E;
        w.ids_h = (float *)(void *)(w.start + E + 1);
    }
    hk_status st = moe_mlp(r, layer, x, &w);
    be->free(be, buf);
    free(host);
    if (st == HK_OK && c->d_shared_expert > 0) st = shared_expert(r, layer, x);
    return st;
}

static hk_status mlp(fwd_run *r, int64_t layer, const float *x) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->w->blocks[layer];
    fwd_state *s = r->s;
    int64_t n = s->rows * c->d_mlp;
    if (c->n_experts > 0) {
        TRY(moe(r, layer, x));
    } else if (c->gated_mlp) {
        TRY(linear(r, &bw->mlp_gate, x, s->rows, s->mlp_pre)); /* [rows, d_mlp] */
        TRY(fire3(r, layer, HK_PT_MLP_PRE, s->mlp_pre, c->d_mlp));
        TRY(linear(r, &bw->mlp_in, x, s->rows, s->mlp_lin)); /* [rows, d_mlp] */
        TRY(fire3(r, layer, HK_PT_MLP_PRE_LINEAR, s->mlp_lin, c->d_mlp));
        TRY(r->be->glu(r->be, c->act, s->mlp_pre, s->mlp_lin, n));
    } else {
        TRY(linear(r, &bw->mlp_in, x, s->rows, s->mlp_pre));
        TRY(fire3(r, layer, HK_PT_MLP_PRE, s->mlp_pre, c->d_mlp));
        TRY(activation(r, c->act, s->mlp_pre, n));
    }
    if (c->n_experts == 0) {
        TRY(fire3(r, layer, HK_PT_MLP_POST, s->mlp_pre, c->d_mlp));
        TRY(linear(r, &bw->mlp_out, s->mlp_pre, s->rows, s->mlp_out));
    }
    if (c->mlp_post_norm) /* x (the MLP's input) may be `normed`: it is consumed by now */
        TRY(output_norm(r, layer, HK_PT_LN2_POST_SCALE, HK_PT_LN2_POST_NORMALIZED, &bw->ln2_post,
                        &s->mlp_out));
    return fire3(r, layer, HK_PT_MLP_OUT, s->mlp_out, c->d_model);
}

/* Pre-norm MLP: ln2 of the input, then the MLP. */
static hk_status mlp_prenorm(fwd_run *r, int64_t layer, const float *input) {
    if (r->m->cfg.no_input_norms) return mlp(r, layer, input); /* OLMo 2 */
    TRY(norm(r, layer, HK_PT_LN2_SCALE, HK_PT_LN2_NORMALIZED, &r->w->blocks[layer].ln2, input,
             r->s->normed));
    return mlp(r, layer, r->s->normed);
}

/* hook_mlp_in sees a copy of the MLP's input, which then feeds ln2 in its place. */
static const float *mlp_input(fwd_run *r, int64_t layer, const float *x, float *scratch,
                              hk_status *st) {
    *st = HK_OK;
    if (!HOOKED(r, layer, HK_PT_MLP_IN)) return x;
    int64_t d = r->m->cfg.d_model;
    *st = r->be->copy(r->be, scratch, x, (size_t)(r->s->rows * d) * sizeof(float));
    if (*st == HK_OK) *st = fire3(r, layer, HK_PT_MLP_IN, scratch, d);
    return scratch;
}

/* Post-norm block (BERT, TransformerLens's BertBlock):
 *   resid_mid = resid_pre + attn(resid_pre); x = ln1(mlp_in = resid_mid);
 *   resid_post = x + mlp(x); normalized_resid_post = ln2(resid_post) -> the next block. */
static hk_status block_post_norm(fwd_run *r, int64_t layer) {
    const hk_config *c = &r->m->cfg;
    const hk_block_weights *bw = &r->w->blocks[layer];
    fwd_state *s = r->s;
    int64_t d = c->d_model, n = s->rows * d;
    hk_status st;
    TRY(r->be->add(r->be, s->resid, s->attn_out, n));
    TRY(fire3(r, layer, HK_PT_RESID_MID, s->resid, d));
    const float *in = mlp_input(r, layer, s->resid, s->attn_out, &st);
    TRY(st);
    TRY(norm(r, layer, HK_PT_POST_LN1_SCALE, HK_PT_POST_LN1_NORMALIZED, &bw->ln1, in,
             s->normed));
    swap_resid(s); /* resid = ln1(mlp_in): the MLP's input and the residual stream */
    TRY(mlp(r, layer, s->resid));
    TRY(r->be->add(r->be, s->resid, s->mlp_out, n));
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
        TRY(r->be->add(r->be, s->resid, s->attn_out, n));
        TRY(r->be->add(r->be, s->resid, s->mlp_out, n));
    } else {
        TRY(r->be->add(r->be, s->resid, s->attn_out, n));
        TRY(fire3(r, layer, HK_PT_RESID_MID, s->resid, d));
        const float *in = mlp_input(r, layer, s->resid, s->attn_out, &st);
        TRY(st);
        TRY(mlp_prenorm(r, layer, in));
        TRY(r->be->add(r->be, s->resid, s->mlp_out, n));
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
static hk_status write_rows(fwd_run *r, const float *x, int64_t dim, bool last_only,
                            float *out) {
    const fwd_state *s = r->s;
    hk_backend *be = r->be;
    const size_t row = (size_t)dim * sizeof(float);
    if (last_only) {
        for (int64_t b = 0; b < s->batch; b++)
            TRY(be->to_host(be, out + b * dim, x + (b * s->seq + s->lengths[b] - 1) * dim, row));
        return HK_OK;
    }
    if (x != out) TRY(be->to_host(be, out, x, (size_t)s->rows * row));
    for (int64_t b = 0; b < s->batch; b++)
        for (int64_t t = s->lengths[b]; t < s->seq; t++)
            memset(out + (b * s->seq + t) * dim, 0, row);
    return HK_OK;
}

/* Final-logit soft-capping (Gemma 2), after unembed.hook_out as in TransformerLens. */
static hk_status softcap_logits(fwd_run *r, float *logits, int64_t n) {
    const hk_config *c = &r->m->cfg;
    if (c->final_softcap <= 0) return HK_OK;
    return r->be->softcap(r->be, logits, n, (float)c->final_softcap);
}

/* Logits [n, d_vocab] where the backend writes them: the caller's buffer on a host-memory
 * backend, else a device buffer copied out by logits_out. */
static hk_status logits_buffer(fwd_run *r, float *out, int64_t n, float **dev) {
    if (r->be->host_memory) {
        *dev = out;
        return HK_OK;
    }
    return r->be->alloc(r->be, (size_t)(n * r->m->cfg.d_vocab) * sizeof(float), (void **)dev);
}

static hk_status logits_out(fwd_run *r, float *dev, int64_t n, float *out, hk_status st) {
    if (dev == out) return st;
    if (st == HK_OK)
        st = r->be->to_host(r->be, out, dev, (size_t)(n * r->m->cfg.d_vocab) * sizeof(float));
    r->be->free(r->be, dev);
    return st;
}

/* The unembedding of rows [rows, d_model] into dev [rows, d_vocab], padded rows zeroed,
 * unembed.hook_out, the soft-cap. */
static hk_status unembed_rows(fwd_run *r, const float *x, int64_t rows, bool last_only,
                              float *dev) {
    const fwd_state *s = r->s;
    const int64_t V = r->m->cfg.d_vocab;
    TRY(linear(r, &r->w->unembed, x, rows, dev)); /* [rows, d_vocab] */
    if (last_only) {
        int64_t shape[3] = {s->batch, 1, V};
        TRY(fire(r, -1, HK_PT_UNEMBED_OUT, dev, 3, shape, 0, s->pos0 + s->seq - 1, 0));
        return softcap_logits(r, dev, rows * V);
    }
    for (int64_t b = 0; b < s->batch; b++) /* padded rows: 0 */
        if (s->lengths[b] < s->seq)
            TRY(r->be->memset(r->be, dev + (b * s->seq + s->lengths[b]) * V, 0,
                              (size_t)((s->seq - s->lengths[b]) * V) * sizeof(float)));
    TRY(fire3(r, -1, HK_PT_UNEMBED_OUT, dev, V));
    return softcap_logits(r, dev, rows * V); /* padded rows stay 0 */
}

/* Embed, blocks, then the head: final norm + unembed (decoders), the masked-LM head, or none.
 * out: [rows, dim], or [batch, dim] for the last row of each sequence when last_only; dim is
 * d_vocab for a head's logits, d_model for hidden states. */
static hk_status run_layers(fwd_run *r, const int32_t *ids, const int32_t *types,
                            bool last_only, out_kind kind, float *out) {
    const hk_config *c = &r->m->cfg;
    const hk_weights *w = r->w;
    hk_backend *be = r->be;
    fwd_state *s = r->s;
    int64_t d = c->d_model;
    if (r->resid0)
        TRY(be->to_device(be, s->resid, r->resid0, (size_t)(s->rows * d) * sizeof(float)));
    else
        TRY(embed(r, ids, types));
    TRY(rope_prepare(r));
    for (int64_t l = r->layer0; l < r->layer_end; l++) TRY(block(r, l));
    if (!r->head) { /* stopped: the residual entering block layer_end (stop_at_layer) */
        if (out) TRY(write_rows(r, s->resid, d, last_only, out));
        return HK_OK;
    }
    if (c->head == HK_HEAD_LM) {
        TRY(norm(r, -1, HK_PT_LN_FINAL_SCALE, HK_PT_LN_FINAL_NORMALIZED, &w->ln_final, s->resid,
                 s->normed));
        swap_resid(s); /* resid = the final norm's output */
        TRY(fire3(r, -1, HK_PT_UNEMBED_IN, s->resid, d));
    }
    if (kind == OUT_HIDDEN || c->head == HK_HEAD_NONE) {
        if (out) TRY(write_rows(r, s->resid, d, last_only, out));
        return HK_OK;
    }
    if (c->head == HK_HEAD_MLM) { /* dense + act + LayerNorm, then the unembedding */
        TRY(linear(r, &w->head_dense, s->resid, s->rows, s->attn_out)); /* [rows, d_model] */
        TRY(activation(r, c->act, s->attn_out, s->rows * d));
        TRY(norm(r, -1, HK_PT_MLM_LN_SCALE, HK_PT_MLM_LN_NORMALIZED, &w->head_ln, s->attn_out,
                 s->resid));
        TRY(fire3(r, -1, HK_PT_UNEMBED_IN, s->resid, d));
    }
    if (!out) return HK_OK;
    const int64_t n = last_only ? s->batch : s->rows;
    const float *x = s->resid;
    if (last_only) {
        for (int64_t b = 0; b < s->batch; b++) /* rows [batch, d_model] packed into normed */
            TRY(be->copy(be, s->normed + b * d, s->resid + (b * s->seq + s->lengths[b] - 1) * d,
                         (size_t)d * sizeof(float)));
        x = s->normed;
    }
    float *dev;
    TRY(logits_buffer(r, out, n, &dev));
    return logits_out(r, dev, n, out, unembed_rows(r, x, n, last_only, dev));
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
    hk_backend *be = hk_model_backend(m);
    fwd_state s;
    hk_status st = state_alloc(be, c, batch, seq, &s);
    if (!lens || !ids || (types && !tys) || st != HK_OK) {
        free(lens);
        free(ids);
        free(tys);
        if (st == HK_OK) state_free(be, &s);
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
    fwd_run r = {.m = m, .be = be, .w = hk_backend_weights(m), .hooks = hooks, .s = &s,
                 .layer0 = layer0, .resid0 = resid0,
                 .layer_end = layer_end < c->n_layers ? layer_end : c->n_layers,
                 .head = layer_end > c->n_layers};
    st = run_layers(&r, ids, tys, last_only, kind, out);
    state_free(be, &s);
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
