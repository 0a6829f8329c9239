/* Memory estimate of a run (hookformer estimate, --mem-limit): weights, KV cache, activations,
 * attention working memory, cached hooks and logits, from the config and the checkpoint
 * alone. The formulas follow what the code allocates: the forward's activation block comes
 * from core/forward.c itself (hk_forward_state_bytes), the KV cache mirrors hk_session_new,
 * the attention workspace mirrors hk_k_attention's item sizing (kernels/cpu/attention.c). */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"
#include "forward.h"
#include "hooks/points.h"
#include "hooks/registry.h"
#include "kernels/cpu/attention_internal.h"
#include "kernels/cpu/kernels.h"
#include "model.h"

/* Saturating size arithmetic: an absurd request estimates as SIZE_MAX, never wraps. */
static size_t mul(size_t a, size_t b) { return a && b > SIZE_MAX / a ? SIZE_MAX : a * b; }
static size_t add(size_t a, size_t b) { return b > SIZE_MAX - a ? SIZE_MAX : a + b; }
static size_t mul3(size_t a, size_t b, size_t c) { return mul(mul(a, b), c); }
static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* Sliding window of layer l under the model's mask (0: full attention). */
static int64_t layer_window(const hk_model *m, int64_t l) {
    int64_t w = m->cfg.layer_window[l] ? m->cfg.window : 0;
    if (m->has_mask && m->mask.window >= 0) w = m->mask.window;
    return w;
}

static bool causal(const hk_model *m) {
    return m->has_mask && m->mask.causal >= 0 ? m->mask.causal == 1 : m->cfg.causal;
}

/* Workspace bytes of one hk_k_attention thread for sq queries (see hk_k_attention: the
 * group split, rows per item, and hk_attn_ws_floats). */
static size_t attention_ws_bytes(const hk_config *c, int64_t sq, int64_t nth) {
    int64_t group = c->n_heads / c->n_kv_heads, gs = group, bq;
    for (;;) {
        bq = (HK_ATTN_ROWS + gs - 1) / gs;
        if (bq < 4) bq = 4;
        int64_t items = c->n_kv_heads * (group / gs) * ((sq + bq - 1) / bq);
        if (gs == 1 || items >= 2 * nth) break;
        int64_t next = gs - 1;
        while (group % next != 0) next--;
        gs = next;
    }
    if (bq > sq) bq = sq;
    hk_attn_args a = {.d_head = c->d_head, .gs = gs, .bq = bq,
                      .dp = (c->d_head + 15) & ~(int64_t)15,
                      .rp = (gs * bq + 15) & ~(int64_t)15};
    return ((hk_attn_ws_floats(&a) * sizeof(float) + 63) & ~(size_t)63) + 64;
}

/* OpenBLAS's sgemm packing buffers, first touched by the forward's linears: about 1 MiB per
 * thread, plus the packed activation panel, rows x min(K, GEMM_Q) floats, K the inner
 * dimension (measured on OpenBLAS 0.3.21: GEMM_Q is 256-384 on current x86 cores; 384 is
 * taken, and K between Q and 2Q is split in halves as OpenBLAS does). */
#define HK_GEMM_Q 384

static size_t gemm_pack_bytes(const hk_config *c, size_t rows, int64_t nth) {
    int64_t k = c->d_model;
    if (c->d_mlp > k) k = c->d_mlp;
    if (c->n_heads * c->d_head > k) k = c->n_heads * c->d_head;
    if (k >= 2 * HK_GEMM_Q) k = HK_GEMM_Q;
    else if (k > HK_GEMM_Q) k = (k / 2 + 7) & ~(int64_t)7;
    return add(mul((size_t)nth, (size_t)1 << 20), mul3(rows, (size_t)k, sizeof(float)));
}

/* Floats of one cached point for batch x ctx (every -1 dim but batch is a position). */
static size_t point_floats(const hk_hook_point *pt, int64_t batch, int64_t ctx) {
    size_t n = 1;
    for (int d = 0; d < pt->ndim; d++) {
        int64_t len = pt->shape[d];
        if (len < 0) len = d == 0 && strncmp(pt->dims, "batch", 5) == 0 ? batch : ctx;
        n = mul(n, (size_t)len);
    }
    return n;
}

typedef struct {
    const char *const *patterns;
    size_t n;
} pattern_list;

static bool matches(const pattern_list *pl, const char *name) {
    for (size_t i = 0; i < pl->n; i++)
        if (hk_glob_match(pl->patterns[i], name)) return true;
    return false;
}

static size_t weights_bytes(const hk_model *m) {
    size_t total = hk_ckpt_owned_bytes(m->ckpt);
    for (size_t i = 0; i < hk_ckpt_count(m->ckpt); i++) {
        const hk_st_tensor *t = hk_ckpt_at(m->ckpt, i);
        if (t->dtype == HK_DTYPE_F32 && (uintptr_t)t->data % _Alignof(float) == 0)
            total = add(total, t->nbytes); /* read in place from the mapping */
    }
    return total;
}

hk_status hk_estimate_run(const hk_model *m, int64_t batch, int64_t ctx, int64_t chunk,
                          const char *const *hook_patterns, size_t n_patterns,
                          bool last_logits_only, hk_estimate *out) {
    if (!m || !out || (n_patterns > 0 && !hook_patterns))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_estimate_run: NULL argument");
    memset(out, 0, sizeof *out);
    if (batch <= 0 || ctx <= 0 || chunk < 0)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_estimate_run: batch (%lld) and ctx (%lld) must be positive, chunk "
                         "(%lld) 0 or more",
                         (long long)batch, (long long)ctx, (long long)chunk);
    const hk_config *c = &m->cfg;
    if (c->pos == HK_POS_LEARNED && ctx > m->w.n_pos)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_estimate_run: ctx %lld exceeds the %lld learned positions of this "
                         "model",
                         (long long)ctx, (long long)m->w.n_pos);
    const hk_points *pts = &m->points;
    pattern_list pl = {hook_patterns, n_patterns};
    for (size_t i = 0; i < n_patterns; i++) {
        if (!hook_patterns[i])
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_estimate_run: hook pattern %zu is NULL", i);
        bool hit = false;
        for (size_t p = 0; p < pts->n && !hit; p++)
            hit = hk_glob_match(hook_patterns[i], pts->points[p].name);
        if (!hit) return hk_hook_not_found(pts, c->family, hook_patterns[i], NULL);
    }
    /* A bidirectional model cannot keep a KV cache: the run is one forward over ctx. */
    const bool session = causal(m);
    const int64_t seq = !session || chunk == 0 || chunk > ctx ? ctx : chunk;
    const size_t B = (size_t)batch, f = sizeof(float);
    const size_t dkv = (size_t)(c->n_kv_heads * c->d_head), nh = (size_t)c->n_heads;
    const size_t d = (size_t)c->d_model, rows = mul(B, (size_t)seq);

    out->weights = weights_bytes(m);

    /* KV cache: hk_session_new's per-layer sizing. */
    size_t gather = 0;
    for (int64_t l = 0; session && l < c->n_layers; l++) {
        int64_t W = layer_window(m, l);
        bool rolling = W > 0 && W < ctx;
        int64_t slots = rolling ? W : ctx;
        out->kv_cache = add(out->kv_cache, mul3(2 * B, (size_t)slots, dkv * f));
        if (rolling) {
            out->kv_rolling = true;
            if (W > out->kv_window) out->kv_window = W;
            /* keys_for: live slots + this feed's keys, gathered per layer: [W + seq, dkv] x 2 */
            gather = zmax(gather, mul3(2 * (size_t)(W + seq), dkv, f));
        }
    }

    /* Hook points the patterns select: what they cache, and the paths they switch on. */
    bool split = false, result = false;
    size_t scores = 0;
    for (size_t p = 0; p < pts->n && n_patterns > 0; p++) {
        const hk_hook_point *pt = &pts->points[p];
        if (!matches(&pl, pt->name)) continue;
        out->cached_hooks = add(out->cached_hooks, mul(point_floats(pt, batch, ctx), f));
        hk_point_kind k = pts->kinds[p];
        if (k == HK_PT_ATTN_IN || k == HK_PT_Q_INPUT || k == HK_PT_K_INPUT || k == HK_PT_V_INPUT)
            split = true;
        if (k == HK_PT_RESULT) result = true;
        if (k == HK_PT_ATTN_SCORES || k == HK_PT_PATTERN) {
            /* attention_materialized: [n_heads, q_chunk, keys] under HK_PATTERN_CHUNK_BYTES,
             * keys = every position so far (full), or the window plus this feed (rolling) */
            int64_t W = session ? layer_window(m, pt->layer) : 0;
            int64_t sk = W > 0 && W < ctx ? W - 1 + seq : ctx;
            if (sk > ctx) sk = ctx;
            size_t row = mul3(nh, (size_t)sk, f);
            size_t qc = HK_PATTERN_CHUNK_BYTES / row;
            if (qc < 1) qc = 1;
            if (qc > (size_t)seq) qc = (size_t)seq;
            scores = zmax(scores, mul(qc, row));
        }
    }

    /* Activations: the forward's block, token ids and lengths, and the per-layer buffers of
     * the hooked optional points (qkv_split: two [rows, heads, d_model] + [rows, d_model];
     * attn_out_per_head: [rows, heads, d_model] + [rows, d_head]). */
    size_t extra = 0;
    if (split) extra = add(mul3(2 * rows, nh * d, f), mul(rows, d * f));
    if (result) extra = zmax(extra, add(mul3(rows, nh * d, f), mul(rows, (size_t)c->d_head * f)));
    out->activations = add(add(hk_forward_state_bytes(c, batch, seq), mul(rows, sizeof(int32_t))),
                           add(B * sizeof(int64_t), extra));
    int64_t nth = hk_k_get_threads();
    if (nth < 1) nth = 1;
    out->activations = add(out->activations, gemm_pack_bytes(c, rows, nth));

    out->attention = add(mul((size_t)nth, attention_ws_bytes(c, seq, nth)), add(gather, scores));

    /* the forward's output: logits, or hidden states for an encoder without a head */
    size_t out_dim = (size_t)(c->head == HK_HEAD_NONE ? c->d_model : c->d_vocab);
    out->logits = last_logits_only ? mul3(B, out_dim, f) : mul3(mul(B, (size_t)ctx), out_dim, f);
    size_t parts[] = {out->weights,      out->kv_cache,     out->activations,
                      out->attention,    out->cached_hooks, out->logits};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        out->total = add(out->total, parts[i]);
    return HK_OK;
}
