/* Device memory of a run on one CUDA GPU (hookformer estimate --device cuda): what the CUDA
 * backend (core/backend_cuda.c, backend_cuda_weights.c) holds on the device, part by part.
 *   weights      every linear's matrix in the run's weights dtype (f32, f16, bf16), the
 *                embedding tables, norm weights and biases in f32; a tied unembedding shares
 *                the embedding table in f32 and is a matrix copy of its own in f16/bf16;
 *   KV cache     as the CPU's (the one forward allocates it through the backend): f32, a
 *                rolling buffer of W slots on sliding-window layers, else ctx slots;
 *   activations  the forward's activation block (hk_forward_state_bytes, the CPU carve-up),
 *                token ids, the hooked optional points' and MoE buffers, and, for f16/bf16
 *                weights, the linears' rounded input (hk_cu_linear's x_ws: rows x widest
 *                input);
 *   attention    the split-key (flash-decoding) partial results of hk_cu_attention, mirrored
 *                from kernels/cuda/attention.cu for an H100/H200 (132 SMs), a windowed layer's
 *                gathered keys and values (as on the CPU), and the materialized scores chunk
 *                when attn_scores / pattern is hooked;
 *   logits       the device copy: the last position's, or a feed's rows with --all-logits;
 *   cuBLAS       the workspace cuBLAS takes on sm_90: 32 MiB (NVIDIA's figure for Hopper);
 *   context      the CUDA context with this module's and cuBLAS's kernels loaded lazily:
 *                HK_EST_CUDA_CONTEXT, a stated figure (scripts/gpu_check.sh measures it).
 * Cached hooks and the host copy of the logits are host memory: reported, not in the total. */
#include <string.h>

#include "config.h"
#include "estimate_internal.h"
#include "weights.h"

#define HK_EST_CUDA_SMS 132                              /* H100 SXM / H200 */
#define HK_EST_CUBLAS_WS ((size_t)32 << 20)              /* cuBLAS on sm_90 */
#define HK_EST_CUDA_CONTEXT ((size_t)512 << 20)          /* context + lazily loaded kernels */
#define HK_EST_ATT_ROWS 64                               /* attention.cu: AT_ROWS */
#define HK_EST_ATT_KEYS 64                               /* attention.cu: AT_KEYS */

#define mul hk_est_mul
#define add hk_est_add
#define zmax hk_est_max

static size_t dtype_bytes(hk_dtype t) { return t == HK_DTYPE_F32 ? 4 : 2; }

typedef struct {
    size_t mat, vec; /* elements held in the weights dtype / in f32 */
} weight_count;

static void count_linear(const hk_linear *l, weight_count *wc) {
    if (!l->w) return;
    wc->mat = add(wc->mat, mul((size_t)l->n_in, (size_t)l->n_out));
    if (l->b) wc->vec = add(wc->vec, (size_t)l->n_out);
}

static void count_norm(const hk_norm_weights *n, int64_t len, weight_count *wc) {
    if (n->w) wc->vec = add(wc->vec, (size_t)len);
    if (n->b) wc->vec = add(wc->vec, (size_t)len);
}

/* The weights the forward reads (hk_weights), as the device holds them. */
static size_t weight_bytes(const hk_model *m, hk_dtype dt) {
    const hk_config *c = &m->cfg;
    const hk_weights *w = &m->w;
    const int64_t d = c->d_model;
    weight_count wc = {0, 0}; /* mat: linears (weights dtype); vec: the rest (f32) */
    if (w->tok_embed) wc.vec = add(wc.vec, mul((size_t)c->d_vocab, (size_t)d));
    if (w->pos_embed) wc.vec = add(wc.vec, mul((size_t)w->n_pos, (size_t)d));
    if (w->type_embed) wc.vec = add(wc.vec, mul((size_t)c->n_token_types, (size_t)d));
    count_norm(&w->embed_ln, d, &wc);
    const int64_t qn = c->qk_norm == HK_QK_NORM_FULL ? c->n_heads * c->d_head : c->d_head;
    const int64_t kn = c->qk_norm == HK_QK_NORM_FULL ? c->n_kv_heads * c->d_head : c->d_head;
    for (int64_t l = 0; w->blocks && l < c->n_layers; l++) {
        const hk_block_weights *b = &w->blocks[l];
        count_norm(&b->ln1, d, &wc);
        count_norm(&b->ln2, d, &wc);
        count_norm(&b->ln1_post, d, &wc);
        count_norm(&b->ln2_post, d, &wc);
        count_norm(&b->q_norm, qn, &wc);
        count_norm(&b->k_norm, kn, &wc);
        const hk_linear *lin[] = {&b->q, &b->k, &b->v, &b->o, &b->mlp_in, &b->mlp_gate,
                                  &b->mlp_out, &b->router, &b->shared[0], &b->shared[1],
                                  &b->shared[2], &b->shared_gate};
        for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) count_linear(lin[i], &wc);
        for (int64_t e = 0; b->experts && e < 3 * c->n_experts; e++)
            count_linear(&b->experts[e], &wc);
    }
    count_norm(&w->ln_final, d, &wc);
    count_linear(&w->head_dense, &wc);
    count_norm(&w->head_ln, d, &wc);
    if (c->head != HK_HEAD_NONE && w->unembed.w) {
        const bool tied = w->unembed.w == w->tok_embed;
        if (tied && dt == HK_DTYPE_F32) { /* the f32 table itself */
            if (w->unembed.b) wc.vec = add(wc.vec, (size_t)w->unembed.n_out);
        } else {
            count_linear(&w->unembed, &wc);
        }
    }
    return add(mul(wc.mat, dtype_bytes(dt)), mul(wc.vec, sizeof(float)));
}

/* Widest input of the forward's linears (hk_cu_linear rounds it into x_ws). */
static int64_t widest_input(const hk_config *c) {
    int64_t in = c->d_model;
    if (c->n_heads * c->d_head > in) in = c->n_heads * c->d_head;
    if (c->d_mlp > in) in = c->d_mlp;
    if (c->d_shared_expert > in) in = c->d_shared_expert;
    return in;
}

/* hk_cu_attention's split-key workspace for sq queries over sk keys (attention.cu: the block
 * shape, then pick_splits on HK_EST_CUDA_SMS). */
static size_t split_bytes(const hk_config *c, int64_t sq, int64_t sk) {
    const int64_t group = c->n_heads / c->n_kv_heads;
    const int64_t bq = sq < HK_EST_ATT_ROWS ? sq : HK_EST_ATT_ROWS;
    int64_t gs = 1;
    for (int64_t g = group; g >= 1; g--)
        if (group % g == 0 && g * bq <= HK_EST_ATT_ROWS) {
            gs = g;
            break;
        }
    const int64_t nqb = (sq + bq - 1) / bq, ny = c->n_kv_heads * (group / gs);
    const int64_t blocks = nqb * ny, tiles = (sk + HK_EST_ATT_KEYS - 1) / HK_EST_ATT_KEYS + 1;
    if (blocks >= HK_EST_CUDA_SMS || tiles < 8) return 0;
    int64_t ns = (2 * HK_EST_CUDA_SMS + blocks - 1) / blocks;
    if (ns > tiles / 4) ns = tiles / 4;
    if (ns > 32) ns = 32;
    if (ns <= 1) return 0;
    return mul(mul((size_t)(ns * blocks), HK_EST_ATT_ROWS), (size_t)(c->d_head + 2) * 4);
}

/* Keys one attention call of a feed sees at most on layer l. */
static int64_t layer_keys(const hk_model *m, int64_t l, int64_t ctx, int64_t seq, bool session) {
    const int64_t W = session ? hk_est_layer_window(m, l) : 0;
    int64_t sk = W > 0 && W < ctx ? W - 1 + seq : ctx;
    return sk > ctx ? ctx : sk;
}

void hk_estimate_cuda(const hk_model *m, const hk_estimate_opts *o, const hk_est_shared *sh,
                      hk_estimate *out) {
    const hk_config *c = &m->cfg;
    const hk_dtype dt = o->weights_dtype;
    const size_t B = (size_t)o->batch, rows = mul(B, (size_t)sh->seq);
    out->device = HK_DEVICE_CUDA;
    out->weights_dtype = dt;
    out->runtime = out->mapping = out->load_other = 0;
    out->weights = weight_bytes(m, dt);

    out->kv_cache = sh->kv_cache; /* kv_rolling / kv_window as the CPU part set them */

    size_t act = add(sh->state, sh->extra);
    if (dt != HK_DTYPE_F32) act = add(act, mul(rows, (size_t)widest_input(c) * dtype_bytes(dt)));
    out->activations = act;

    size_t split = 0;
    for (int64_t l = 0; l < c->n_layers; l++) {
        const int64_t sk = layer_keys(m, l, o->ctx, sh->seq, sh->session);
        split = zmax(split, split_bytes(c, sh->seq, sk));
        if (sh->session) split = zmax(split, split_bytes(c, 1, layer_keys(m, l, o->ctx, 1, true)));
    }
    out->attention = add(add(split, sh->gather), sh->scores);

    const size_t out_dim = (size_t)(c->head == HK_HEAD_NONE ? c->d_model : c->d_vocab);
    out->logits = mul(o->all_logits ? rows : B, out_dim * sizeof(float));
    out->blas_workspace = HK_EST_CUBLAS_WS;
    out->context = HK_EST_CUDA_CONTEXT;
    const size_t parts[] = {out->context,  out->blas_workspace, out->weights,   out->kv_cache,
                            out->activations, out->attention,   out->logits};
    out->total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) out->total = add(out->total, parts[i]);
}
