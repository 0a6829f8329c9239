/* Memory estimate of a run (hookformer estimate, --mem-limit): the process before the load,
 * what the load holds (weights, mapping, the rest), KV cache, activations, attention working
 * memory, cached hooks and logits. The run's parts follow what the code allocates: the
 * forward's activation block comes from core/forward.c itself (hk_forward_state_bytes), the KV
 * cache mirrors hk_session_new, the attention workspace mirrors hk_k_attention's item sizing
 * (kernels/cpu/attention.c). The load's parts come from the checkpoint's bookkeeping
 * (converted buffers, pages read) and from the resident sizes hk_model_load measured. */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"
#include "estimate_internal.h"
#include "forward.h"
#include "hooks/points.h"
#include "hooks/registry.h"
#include "kernels/cpu/attention_internal.h"
#include "kernels/cpu/kernels.h"
#include "model.h"

#define mul hk_est_mul
#define add hk_est_add
#define zmax hk_est_max
static size_t mul3(size_t a, size_t b, size_t c) { return mul(mul(a, b), c); }

int64_t hk_est_layer_window(const hk_model *m, int64_t l) {
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

/* OpenBLAS's sgemm packing buffers, first touched by the forward's linears (hk_k_linear splits
 * the output columns over the OpenMP threads; each thread's single-threaded sgemm packs into
 * its own pool buffer, whose touched pages stay resident): about 1 MiB per thread, plus, for a
 * product whose per-thread column slice is wider than 512, the packed activation panel: rows x
 * kq(K) floats per thread, K the inner dimension, kq(K) = K up to GEMM_Q, K / 2 below 2 Q, else
 * Q. Measured on OpenBLAS 0.3.21 (AMD EPYC, Zen kernels: Q = 320; narrower slices take a path
 * that packs nothing). The buffers are reused: the widest product sets the size. */
#define HK_GEMM_Q 320
#define HK_GEMM_WIDE_SLICE 512
#define HK_GEMM_PAR_MIN_MACS ((size_t)1 << 20) /* kernels/cpu/linear.c's HK_GEMM_PAR_MIN */

static size_t gemm_panel_bytes(size_t rows, int64_t out, int64_t k, int64_t nth) {
    if (rows < 2 || out < 1 || k < 1) return 0; /* one row: sgemv, no packing */
    int64_t nt = nth, slices = out / 16;
    if (nt < 2 || mul3(rows, (size_t)out, (size_t)k) < HK_GEMM_PAR_MIN_MACS || slices < 2) nt = 1;
    if (nt > slices && nt > 1) nt = slices;
    int64_t slice = (out + nt - 1) / nt;
    slice = (slice + 15) / 16 * 16;
    if (slice <= HK_GEMM_WIDE_SLICE) return 0;
    int64_t kq = k <= HK_GEMM_Q ? k : k < 2 * HK_GEMM_Q ? (k / 2 + 7) & ~(int64_t)7 : HK_GEMM_Q;
    return mul3((size_t)nt, rows, (size_t)kq * sizeof(float));
}

/* rows: of the blocks' linears; head_rows: of the unembedding (batch for the last position). */
static size_t gemm_pack_bytes(const hk_config *c, size_t rows, size_t head_rows, int64_t nth) {
    const int64_t d = c->d_model, dq = c->n_heads * c->d_head, dkv = c->n_kv_heads * c->d_head;
    const int64_t lin[][2] = {{dq, d}, {dkv, d}, {d, dq}, {c->d_mlp, d}, {d, c->d_mlp}, {d, d}};
    size_t panel = 0;
    for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++)
        panel = zmax(panel, gemm_panel_bytes(rows, lin[i][0], lin[i][1], nth));
    if (c->head != HK_HEAD_NONE)
        panel = zmax(panel, gemm_panel_bytes(head_rows, c->d_vocab, d, nth));
    return add(mul((size_t)nth, (size_t)1 << 20), panel);
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
    return hk_glob_match_any(pl->patterns, pl->n, name);
}

/* The load's parts: weights (converted buffers + in-place views), the mapping read at load,
 * the rest of the load's measured growth, and the process before it. */
static void load_parts(const hk_model *m, hk_estimate *out) {
    const size_t owned = hk_ckpt_owned_bytes(m->ckpt);
    out->weights = add(owned, hk_ckpt_view_bytes(m->ckpt));
    out->mapping = hk_ckpt_source_bytes(m->ckpt);
    const size_t held = add(owned, out->mapping);
    out->load_other = m->load_growth > held ? m->load_growth - held : 0;
    out->runtime = m->rss_before_load;
}

hk_status hk_estimate_run(const hk_model *m, int64_t batch, int64_t ctx, int64_t chunk,
                          const char *const *hook_patterns, size_t n_patterns,
                          bool last_logits_only, hk_estimate *out) {
    const hk_estimate_opts o = {.batch = batch, .ctx = ctx, .session = true, .chunk = chunk,
                                .hooks = hook_patterns, .n_hooks = n_patterns,
                                .all_logits = !last_logits_only};
    return hk_estimate_memory(m, &o, out);
}

hk_status hk_estimate_memory(const hk_model *m, const hk_estimate_opts *o, hk_estimate *out) {
    if (!m || !o || !out || (o->n_hooks > 0 && !o->hooks))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_estimate_memory: NULL argument");
    memset(out, 0, sizeof *out);
    if (o->device != HK_DEVICE_CPU && o->device != HK_DEVICE_CUDA)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_estimate_memory: device %d is not HK_DEVICE_CPU (0) or "
                         "HK_DEVICE_CUDA (1)",
                         (int)o->device);
    if (o->weights_dtype != HK_DTYPE_F32 && o->weights_dtype != HK_DTYPE_F16 &&
        o->weights_dtype != HK_DTYPE_BF16)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_estimate_memory: weights_dtype %d is not HK_DTYPE_F32, "
                         "HK_DTYPE_F16 or HK_DTYPE_BF16",
                         (int)o->weights_dtype);
    if (o->device == HK_DEVICE_CPU && o->weights_dtype != HK_DTYPE_F32)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_estimate_memory: weights_dtype %s on the CPU (the CPU computes "
                         "with f32 weights; f16/bf16 are for HK_DEVICE_CUDA)",
                         o->weights_dtype == HK_DTYPE_F16 ? "f16" : "bf16");
    const int64_t batch = o->batch, ctx = o->ctx, chunk = o->chunk;
    const char *const *hook_patterns = o->hooks;
    const size_t n_patterns = o->n_hooks;
    if (batch <= 0 || ctx <= 0 || chunk < 0)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_estimate_memory: batch (%lld) and ctx (%lld) must be positive, "
                         "chunk (%lld) 0 or more",
                         (long long)batch, (long long)ctx, (long long)chunk);
    if (!o->session && chunk > 0)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_estimate_memory: chunk %lld without a session (feeds in chunks "
                         "go through a session's KV cache: set session)",
                         (long long)chunk);
    const hk_config *c = &m->cfg;
    if (c->pos == HK_POS_LEARNED && ctx > m->w.n_pos)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_estimate_memory: ctx %lld exceeds the %lld learned positions of "
                         "this model",
                         (long long)ctx, (long long)m->w.n_pos);
    const hk_points *pts = &m->points;
    pattern_list pl = {hook_patterns, n_patterns};
    for (size_t i = 0; i < n_patterns; i++) {
        if (!hook_patterns[i])
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_estimate_memory: hook pattern %zu is NULL",
                             i);
        bool hit = false;
        for (size_t p = 0; p < pts->n && !hit; p++)
            hit = hk_glob_match(hook_patterns[i], pts->points[p].name);
        if (!hit) return hk_hook_not_found(pts, c->family, hook_patterns[i], NULL);
    }
    /* A bidirectional model cannot keep a KV cache: the run is one forward over ctx. */
    const bool session = o->session && causal(m);
    const int64_t seq = !session || chunk == 0 || chunk > ctx ? ctx : chunk;
    const size_t B = (size_t)batch, f = sizeof(float);
    const size_t dkv = (size_t)(c->n_kv_heads * c->d_head), nh = (size_t)c->n_heads;
    const size_t d = (size_t)c->d_model, rows = mul(B, (size_t)seq);

    load_parts(m, out);

    /* KV cache: hk_session_new's per-layer sizing. */
    size_t gather = 0;
    for (int64_t l = 0; session && l < c->n_layers; l++) {
        int64_t W = hk_est_layer_window(m, l);
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
        if (hk_point_kind_splits_inputs(k))
            split = true;
        if (k == HK_PT_RESULT) result = true;
        if (k == HK_PT_ATTN_SCORES || k == HK_PT_PATTERN) {
            /* attention_materialized: [n_heads, q_chunk, keys] under HK_PATTERN_CHUNK_BYTES,
             * keys = every position so far (full), or the window plus this feed (rolling) */
            int64_t W = session ? hk_est_layer_window(m, pt->layer) : 0;
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
    /* a mixture-of-experts layer's workspace lives while that layer runs */
    extra = add(extra, hk_forward_moe_bytes(c, (int64_t)rows));
    const hk_est_shared sh = {
        .session = session, .seq = seq, .extra = extra, .scores = scores,
        .kv_cache = out->kv_cache, .gather = gather,
        .state = add(add(hk_forward_state_bytes(c, batch, seq), mul(rows, sizeof(int32_t))),
                     B * sizeof(int64_t))};
    out->activations = add(sh.state, extra);
    int64_t nth = hk_k_get_threads();
    if (nth < 1) nth = 1;
    out->activations = add(out->activations,
                           gemm_pack_bytes(c, rows, o->all_logits ? rows : B, nth));

    out->attention = add(mul((size_t)nth, attention_ws_bytes(c, seq, nth)), add(gather, scores));

    /* the forward's output: logits, or hidden states for an encoder without a head */
    size_t out_dim = (size_t)(c->head == HK_HEAD_NONE ? c->d_model : c->d_vocab);
    out->logits = o->all_logits ? mul3(mul(B, (size_t)ctx), out_dim, f) : mul3(B, out_dim, f);
    if (o->device == HK_DEVICE_CUDA) {
        hk_estimate_cuda(m, o, &sh, out);
        return HK_OK;
    }
    size_t parts[] = {out->runtime,     out->weights,   out->mapping,
                      out->load_other,  out->kv_cache,  out->activations,
                      out->attention,   out->cached_hooks, out->logits};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        out->total = add(out->total, parts[i]);
    return HK_OK;
}
