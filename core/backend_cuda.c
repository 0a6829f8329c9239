/* The CUDA backend (backend_cuda.h): every op of core/backend.h queued on the instance's
 * stream through the CUDA module's kernel table. Weights: matrices in the weights dtype
 * (cuBLAS GemmEx with f32 accumulation for f16/bf16, x rounded to that dtype in a workspace),
 * the rest f32 (backend_cuda_weights.c). Activations and KV caches: f32 device memory. Host
 * copies: to_device/to_host (synchronous for the host buffer); a predicate mask becomes a
 * block mask on the host (hk_k_block_mask_build) uploaded per call. */
#include "backend_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda_weights.h"
#include "cuda_module.h"
#include "error.h"
#include "kernels/cpu/kernels.h"

typedef struct {
    const hk_cu_api *cu;
    int index;          /* the GPU (cudaSetDevice's ordinal) */
    void *stream;
    hk_cu_blas *blas;
    hk_wset weights;
    void *xws;          /* x rounded to the weights dtype [rows * n_in] (linear) */
    size_t xws_bytes;
    int32_t *pick;      /* [1] argmax of the greedy choice */
} cuda_ctx;

/* The instance's state, with its GPU made the calling thread's current device (the module's
 * set_device is a no-op when it is already): every op starts here, so a process may hold
 * models on several GPUs and run each from any thread. A failed switch is not reported here:
 * the op's own call then fails on the stream of another device, and says so. */
static cuda_ctx *C(hk_backend *be) {
    cuda_ctx *c = be->ctx;
    (void)c->cu->set_device(c->index);
    return c;
}

/* A failed call of the module: the op, the call and the runtime's (or cuBLAS's) words. */
static hk_status fail(hk_backend *be, const char *op, int err) {
    const hk_cu_api *cu = C(be)->cu;
    if (err >= HK_CU_BLAS_ERR)
        return hk_errorf(HK_ERR_IO, "backend cuda: %s: cuBLAS: %s", op,
                         cu->blas_status_string(err));
    return hk_errorf(err == 2 ? HK_ERR_NOMEM : HK_ERR_IO, "backend cuda: %s: %s (%s)", op,
                     cu->error_string(err), cu->error_name(err));
}

#define CK(op, call)                                                                        \
    do {                                                                                    \
        const int e_ = (call);                                                              \
        if (e_) return fail(be, op, e_);                                                    \
    } while (0)

static hk_cu_dtype cu_type(hk_dtype t) {
    return t == HK_DTYPE_F16 ? HK_CU_F16 : t == HK_DTYPE_BF16 ? HK_CU_BF16 : HK_CU_F32;
}

/* ---- memory ---- */

static hk_status cuda_alloc(hk_backend *be, size_t bytes, void **out) {
    *out = NULL;
    CK("alloc", C(be)->cu->malloc(out, bytes ? bytes : 64));
    be->counters.allocs++;
    return HK_OK;
}

static void cuda_free(hk_backend *be, void *p) {
    if (p) C(be)->cu->free(p);
}

static hk_status cuda_memset(hk_backend *be, void *dst, int value, size_t bytes) {
    CK("memset", C(be)->cu->memset_async(dst, value, bytes, C(be)->stream));
    return HK_OK;
}

/* The host buffer may be reused on return (pinned or not): the copy is waited for. */
static hk_status cuda_to_device(hk_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return HK_OK;
    CK("to_device", C(be)->cu->upload_async(dst, src, bytes, C(be)->stream));
    CK("to_device", C(be)->cu->sync(C(be)->stream));
    be->counters.h2d++;
    be->counters.h2d_bytes += bytes;
    return HK_OK;
}

static hk_status cuda_to_host(hk_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return HK_OK;
    CK("to_host", C(be)->cu->download_async(dst, src, bytes, C(be)->stream));
    CK("to_host", C(be)->cu->sync(C(be)->stream));
    be->counters.d2h++;
    be->counters.d2h_bytes += bytes;
    return HK_OK;
}

static hk_status cuda_copy(hk_backend *be, void *dst, const void *src, size_t bytes) {
    CK("copy", C(be)->cu->copy_async(dst, src, bytes, C(be)->stream));
    be->counters.d2d++;
    be->counters.d2d_bytes += bytes;
    return HK_OK;
}

/* A strided row copy is a KV write without ring: row i of src to row i of dst. */
static hk_status cuda_copy2d(hk_backend *be, float *dst, int64_t ldd, const float *src,
                             int64_t lds, int64_t rows, int64_t cols) {
    CK("copy2d",
       C(be)->cu->kv_write(dst, HK_CU_F32, ldd, 0, 0, src, lds, rows, cols, C(be)->stream));
    be->counters.d2d++;
    be->counters.d2d_bytes += (uint64_t)(rows * cols) * sizeof(float);
    return HK_OK;
}

static hk_status cuda_sync(hk_backend *be) {
    CK("sync", C(be)->cu->sync(C(be)->stream));
    be->counters.syncs++;
    return HK_OK;
}

static void *cuda_stream(hk_backend *be) { return C(be)->stream; }

/* ---- weights ---- */

static hk_status sink_alloc(void *user, size_t bytes, void **out) {
    return cuda_alloc(user, bytes, out);
}
static void sink_free(void *user, void *p) { cuda_free(user, p); }
static hk_status sink_put(void *user, void *dst, hk_dtype t, const float *src, size_t n) {
    hk_backend *be = user;
    CK("weights_upload", C(be)->cu->upload_convert(dst, cu_type(t), src, HK_CU_F32,
                                                   (int64_t)n, C(be)->stream));
    be->counters.h2d++;
    be->counters.h2d_bytes += n * sizeof(float);
    return HK_OK;
}

static hk_wsink sink_of(hk_backend *be) {
    return (hk_wsink){be, sink_alloc, sink_free, sink_put};
}

static hk_status cuda_weights_upload(hk_backend *be, const hk_config *c, const hk_weights *w,
                                     hk_dtype wdtype, hk_weights *dev) {
    if (C(be)->weights.n)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "backend cuda: weights_upload: this instance holds weights already");
    const hk_wsink sink = sink_of(be);
    return hk_wset_upload(c, w, wdtype, &sink, dev, &C(be)->weights);
}

static void cuda_weights_free(hk_backend *be, const hk_config *c, hk_weights *dev) {
    (void)c;
    const hk_wsink sink = sink_of(be);
    C(be)->cu->sync(C(be)->stream); /* nothing queued may still read them */
    hk_wset_free(&sink, &C(be)->weights);
    memset(dev, 0, sizeof *dev);
}

/* Offsets count elements of the matrix's own dtype. */
static hk_linear cuda_linear_slice(hk_backend *be, const hk_linear *l, int64_t in0,
                                   int64_t n_in, int64_t out0, int64_t n_out) {
    const size_t es = hk_wset_esize(hk_wset_dtype(&C(be)->weights, l->w, NULL));
    hk_linear s = *l;
    const int64_t off = l->in_out ? in0 * l->ld + out0 : out0 * l->ld + in0;
    s.w = (const float *)(const void *)((const char *)l->w + (size_t)off * es);
    s.b = l->b ? l->b + out0 : NULL;
    s.n_in = n_in;
    s.n_out = n_out;
    return s;
}

/* ---- dense ops ---- */

static hk_status cuda_linear(hk_backend *be, const hk_linear *l, const float *x, int64_t rows,
                             float *y, int64_t ldy) {
    cuda_ctx *c = C(be);
    const hk_dtype t = hk_wset_dtype(&c->weights, l->w, NULL);
    void *ws = NULL;
    if (t != HK_DTYPE_F32) {
        const size_t need = (size_t)(rows * l->n_in) * 2;
        if (need > c->xws_bytes) {
            c->cu->sync(c->stream); /* the old workspace may still be read */
            if (c->xws) c->cu->free(c->xws);
            c->xws = NULL;
            c->xws_bytes = 0;
            CK("linear (workspace)", c->cu->malloc(&c->xws, need));
            c->xws_bytes = need;
        }
        ws = c->xws;
    }
    CK("linear", c->cu->linear(c->blas, x, rows, l->n_in, l->w, cu_type(t), l->ld, l->in_out,
                               l->b, l->n_out, y, ldy, ws));
    return HK_OK;
}

static hk_status cuda_layernorm(hk_backend *be, const float *x, int64_t n, int64_t d,
                                const float *w, const float *b, float eps, float *y,
                                float *scale_out) {
    CK("layernorm", C(be)->cu->layernorm(x, n, d, w, b, eps, y, scale_out, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_rmsnorm(hk_backend *be, const float *x, int64_t n, int64_t d,
                              const float *w, float eps, float *y, float *scale_out) {
    CK("rmsnorm", C(be)->cu->rmsnorm(x, n, d, w, eps, y, scale_out, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_norm_stats(hk_backend *be, const float *x, int64_t n, int64_t d,
                                 bool center, double eps, float *mean, float *scale) {
    CK("norm_stats", C(be)->cu->norm_stats(x, n, d, center, eps, mean, scale, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_norm_divide(hk_backend *be, const float *x, int64_t n, int64_t d,
                                  const float *mean, const float *scale, float *y) {
    CK("norm_divide", C(be)->cu->norm_divide(x, n, d, mean, scale, y, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_norm_affine(hk_backend *be, float *y, int64_t n, int64_t d,
                                  const float *w, const float *b) {
    CK("norm_affine", C(be)->cu->scale_bias(y, n, d, w, b, C(be)->stream));
    return HK_OK;
}

/* The module's code for hk_cu_gated: 0 silu, 1 gelu, 2 gelu_new, 3 relu. */
static int glu_code(hk_act_kind a) {
    switch (a) {
    case HK_ACT_SILU: return 0;
    case HK_ACT_GELU: return 1;
    case HK_ACT_GELU_NEW: return 2;
    case HK_ACT_RELU: return 3;
    }
    return -1;
}

static hk_status cuda_act(hk_backend *be, hk_act_kind a, float *x, int64_t n) {
    const hk_cu_api *cu = C(be)->cu;
    void *st = C(be)->stream;
    switch (a) {
    case HK_ACT_GELU_NEW: CK("act", cu->gelu_new(x, n, st)); return HK_OK;
    case HK_ACT_GELU: CK("act", cu->gelu(x, n, st)); return HK_OK;
    case HK_ACT_SILU: CK("act", cu->silu(x, n, st)); return HK_OK;
    case HK_ACT_RELU: CK("act", cu->relu(x, n, st)); return HK_OK;
    }
    return hk_errorf(HK_ERR_INVALID_ARG, "backend cuda: act: activation %d unknown", (int)a);
}

static hk_status cuda_glu(hk_backend *be, hk_act_kind a, float *gate, const float *up,
                          int64_t n) {
    const int code = glu_code(a);
    if (code < 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "backend cuda: glu: activation %d unknown", (int)a);
    CK("glu", C(be)->cu->gated(code, gate, up, n, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_add(hk_backend *be, float *y, const float *x, int64_t n) {
    CK("add", C(be)->cu->add(y, x, n, C(be)->stream));
    return HK_OK;
}
static hk_status cuda_mul(hk_backend *be, float *y, const float *x, int64_t n) {
    CK("mul", C(be)->cu->mul(y, x, n, C(be)->stream));
    return HK_OK;
}
static hk_status cuda_scale(hk_backend *be, float *x, int64_t n, float f) {
    CK("scale", C(be)->cu->scale(x, n, f, C(be)->stream));
    return HK_OK;
}
static hk_status cuda_sigmoid(hk_backend *be, float *x, int64_t n) {
    CK("sigmoid", C(be)->cu->sigmoid(x, n, C(be)->stream));
    return HK_OK;
}
static hk_status cuda_softcap(hk_backend *be, float *x, int64_t n, float cap) {
    if (!(cap > 0))
        return hk_errorf(HK_ERR_INVALID_ARG, "backend cuda: softcap: cap = %g, expected > 0",
                         (double)cap);
    CK("softcap", C(be)->cu->softcap(x, n, cap, C(be)->stream));
    return HK_OK;
}

/* A table inside a weight block of another dtype (never, as uploaded today) is read as such. */
static hk_status cuda_embed(hk_backend *be, const float *table, int64_t d, const int32_t *ids,
                            int64_t n, float *out) {
    const hk_dtype t = hk_wset_dtype(&C(be)->weights, table, NULL);
    CK("embed", C(be)->cu->embed_typed(table, cu_type(t), d, ids, n, out, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_rope(hk_backend *be, float *x, int64_t n, int64_t heads, int64_t d_head,
                           int64_t ld, int64_t rot_dim, const float *cos, const float *sin) {
    CK("rope", C(be)->cu->rope(x, n, heads, d_head, ld, rot_dim, cos, sin, C(be)->stream));
    return HK_OK;
}

/* ---- attention ---- */

/* The device form of a host mask: its bounds and soft-cap; a predicate becomes a block mask
 * of every head (built on the host, uploaded; *dev_blocks to free after the call). */
static hk_status mask_desc(hk_backend *be, const hk_k_mask *mask, int64_t sq, int64_t sk,
                           int64_t n_heads, hk_mask_desc *out, hk_block_mask *dev_blocks) {
    memset(out, 0, sizeof *out);
    memset(dev_blocks, 0, sizeof *dev_blocks);
    out->b = hk_k_mask_bounds(mask, sk);
    if (!mask) return HK_OK;
    out->softcap = mask->softcap;
    if (!mask->allowed) return HK_OK;
    hk_block_mask host;
    if (!hk_k_block_mask_build(mask, sq, sk, n_heads, &host))
        return hk_errorf(HK_ERR_NOMEM,
                         "backend cuda: attention: out of memory for the block mask of a "
                         "predicate (%lld x %lld, %lld heads)",
                         (long long)sq, (long long)sk, (long long)n_heads);
    const int e = C(be)->cu->block_mask_upload(&host, dev_blocks);
    hk_k_block_mask_free(&host);
    if (e) return fail(be, "attention (block mask upload)", e);
    out->blocks = *dev_blocks;
    return HK_OK;
}

/* After the call that reads it: wait, then free (the kernels are asynchronous). */
static void mask_done(hk_backend *be, hk_block_mask *dev_blocks) {
    if (!dev_blocks->cls) return;
    C(be)->cu->sync(C(be)->stream);
    C(be)->cu->block_mask_free(dev_blocks);
}

static hk_status cuda_attention(hk_backend *be, const float *q, int64_t ldq, const float *k,
                                int64_t ldk, const float *v, int64_t ldv, int64_t sq,
                                int64_t sk, int64_t n_heads, int64_t n_kv_heads, int64_t d_head,
                                float scale, const hk_k_mask *mask, float *out, int64_t ldo) {
    hk_mask_desc desc;
    hk_block_mask blocks;
    hk_status st = mask_desc(be, mask, sq, sk, n_heads, &desc, &blocks);
    if (st != HK_OK) return st;
    const int e = C(be)->cu->attention(HK_CU_F32, HK_CU_F32, q, ldq, k, ldk, v, ldv, sq, sk, 0,
                                       n_heads, n_kv_heads, d_head, scale, &desc, out, ldo,
                                       C(be)->stream);
    mask_done(be, &blocks);
    return e ? fail(be, "attention", e) : HK_OK;
}

static hk_status cuda_attention_scores(hk_backend *be, const float *q, int64_t ldq,
                                       const float *k, int64_t ldk, int64_t sq, int64_t sk,
                                       int64_t n_heads, int64_t n_kv_heads, int64_t d_head,
                                       float scale, const hk_k_mask *mask, float *scores) {
    hk_mask_desc desc;
    hk_block_mask blocks;
    hk_status st = mask_desc(be, mask, sq, sk, n_heads, &desc, &blocks);
    if (st != HK_OK) return st;
    const int e = C(be)->cu->attention_scores(C(be)->blas, q, ldq, k, ldk, sq, sk, n_heads,
                                              n_kv_heads, d_head, scale, &desc, scores);
    mask_done(be, &blocks);
    return e ? fail(be, "attention_scores", e) : HK_OK;
}

static hk_status cuda_softmax_rows(hk_backend *be, const float *scores, int64_t rows, int64_t n,
                                   float *pattern) {
    CK("softmax_rows", C(be)->cu->softmax_rows(scores, rows, n, pattern, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_attention_apply(hk_backend *be, const float *pattern, const float *v,
                                      int64_t ldv, int64_t sq, int64_t sk, int64_t n_heads,
                                      int64_t n_kv_heads, int64_t d_head, float *out,
                                      int64_t ldo) {
    CK("attention_apply", C(be)->cu->attention_apply(C(be)->blas, pattern, v, ldv, sq, sk,
                                                     n_heads, n_kv_heads, d_head, out, ldo));
    return HK_OK;
}

static hk_status cuda_kv_write(hk_backend *be, float *cache, int64_t ring, int64_t pos0,
                               const float *src, int64_t lds, int64_t n, int64_t width) {
    if (ring > 0 && n > ring)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "backend cuda: kv_write: %lld rows into a rolling buffer of %lld slots",
                         (long long)n, (long long)ring);
    CK("kv_write", C(be)->cu->kv_write(cache, HK_CU_F32, width, ring, pos0, src, lds, n, width,
                                       C(be)->stream));
    return HK_OK;
}

/* ---- mixture of experts ---- */

static hk_status cuda_router_softmax(hk_backend *be, const float *x, int64_t rows, int64_t n,
                                     float *y) {
    CK("router_softmax", C(be)->cu->softmax_rows_f64(x, rows, n, y, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_topk_route(hk_backend *be, const float *probs, int64_t rows,
                                 int64_t n_experts, int64_t k, bool renorm, float *ids,
                                 float *mix) {
    CK("topk_route",
       C(be)->cu->moe_route(probs, rows, n_experts, k, renorm, ids, mix, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_gather_rows(hk_backend *be, float *dst, const float *src, int64_t d,
                                  const int64_t *idx, int64_t div, int64_t n) {
    CK("gather_rows", C(be)->cu->gather_rows(dst, src, d, idx, div, n, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_scatter_rows(hk_backend *be, float *dst, const float *src, int64_t d,
                                   const int64_t *idx, int64_t n) {
    CK("scatter_rows", C(be)->cu->scatter_rows(dst, src, d, idx, n, C(be)->stream));
    return HK_OK;
}

static hk_status cuda_combine_rows(hk_backend *be, float *y, const float *x, int64_t d,
                                   const int64_t *idx, int64_t div, const float *w, int64_t n) {
    CK("combine_rows", C(be)->cu->combine_rows(y, x, d, idx, div, w, n, C(be)->stream));
    return HK_OK;
}

/* ---- sampling ----
 * Greedy on the device (one int comes back); sampling copies the logits to the host and
 * draws there with hk_sample, so the PRNG stream is the CPU's exactly. */
static hk_status cuda_sample(hk_backend *be, const float *logits, int64_t vocab,
                             const hk_sampler_opts *o, uint64_t *rng, int32_t *out) {
    cuda_ctx *c = C(be);
    if (vocab < 1 || vocab > INT32_MAX)
        return hk_sample(logits, vocab, o, rng, out); /* hk_sample's message */
    if (!o || o->temperature == 0.0f) {
        const float zero = 0.0f;
        int32_t tmp;
        hk_status st = hk_sample(&zero, 1, o, NULL, &tmp); /* the options' checks */
        if (st != HK_OK) return st;
        if (!c->pick) {
            void *p = NULL;
            CK("sample", c->cu->malloc(&p, sizeof *c->pick));
            c->pick = p;
        }
        CK("sample", c->cu->argmax_rows(logits, 1, vocab, c->pick, c->stream));
        int32_t id;
        st = cuda_to_host(be, &id, c->pick, sizeof id);
        if (st != HK_OK) return st;
        if (id < 0)
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_sample: a logit is NaN (backend cuda)");
        *out = id;
        return HK_OK;
    }
    float *host = malloc((size_t)vocab * sizeof *host);
    if (!host)
        return hk_errorf(HK_ERR_NOMEM, "backend cuda: sample: no host memory for %lld logits",
                         (long long)vocab);
    hk_status st = cuda_to_host(be, host, logits, (size_t)vocab * sizeof *host);
    if (st == HK_OK) st = hk_sample(host, vocab, o, rng, out);
    free(host);
    return st;
}

/* ---- lifetime ---- */

static void cuda_close(hk_backend *be) {
    if (!be) return;
    cuda_ctx *c = be->ctx;
    if (c) {
        (void)c->cu->set_device(c->index); /* the frees below are that GPU's */
        if (c->stream) c->cu->sync(c->stream);
        if (c->weights.n) {
            const hk_wsink sink = sink_of(be);
            hk_wset_free(&sink, &c->weights);
        }
        if (c->xws) c->cu->free(c->xws);
        if (c->pick) c->cu->free(c->pick);
        if (c->blas) c->cu->blas_free(c->blas);
        if (c->stream) c->cu->stream_destroy(c->stream);
        free(c);
    }
    free(be);
}

/* Page-locked host memory: a device-to-host copy into it is one DMA, no staging copy. */
static hk_status cuda_host_alloc(hk_backend *be, size_t bytes, void **out) {
    *out = NULL;
    CK("host_alloc (pinned)", C(be)->cu->host_alloc_pinned(out, bytes ? bytes : 64));
    return HK_OK;
}

static void cuda_host_free(hk_backend *be, void *p) {
    if (p) C(be)->cu->host_free_pinned(p);
}

static void fill(hk_backend *be) {
    be->host_alloc = cuda_host_alloc;
    be->host_free = cuda_host_free;
    be->close = cuda_close;
    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->memset = cuda_memset;
    be->to_device = cuda_to_device;
    be->to_host = cuda_to_host;
    be->copy = cuda_copy;
    be->copy2d = cuda_copy2d;
    be->sync = cuda_sync;
    be->stream = cuda_stream;
    be->weights_upload = cuda_weights_upload;
    be->weights_free = cuda_weights_free;
    be->linear_slice = cuda_linear_slice;
    be->linear = cuda_linear;
    be->layernorm = cuda_layernorm;
    be->rmsnorm = cuda_rmsnorm;
    be->norm_stats = cuda_norm_stats;
    be->norm_divide = cuda_norm_divide;
    be->norm_affine = cuda_norm_affine;
    be->act = cuda_act;
    be->glu = cuda_glu;
    be->add = cuda_add;
    be->mul = cuda_mul;
    be->scale = cuda_scale;
    be->sigmoid = cuda_sigmoid;
    be->softcap = cuda_softcap;
    be->embed = cuda_embed;
    be->rope = cuda_rope;
    be->attention = cuda_attention;
    be->attention_scores = cuda_attention_scores;
    be->softmax_rows = cuda_softmax_rows;
    be->attention_apply = cuda_attention_apply;
    be->kv_write = cuda_kv_write;
    be->router_softmax = cuda_router_softmax;
    be->topk_route = cuda_topk_route;
    be->gather_rows = cuda_gather_rows;
    be->scatter_rows = cuda_scatter_rows;
    be->combine_rows = cuda_combine_rows;
    be->sample = cuda_sample;
}

/* HK_OK when the module counts a device and index (0, 1, ...) is below the count, else why
 * not. */
static hk_status no_device(const hk_cu_api *cu, int index) {
    int n = 0;
    const int e = cu->device_probe(&n);
    if (n <= 0 && e == 0)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "device cuda: no CUDA device (the CUDA runtime loaded by %s counts 0 "
                         "GPUs)",
                         hk_cuda_module_path());
    if (n <= 0)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "device cuda: no CUDA device (the CUDA runtime loaded by %s says: %s, %s)",
                         hk_cuda_module_path(), cu->error_name(e), cu->error_string(e));
    if (index < n) return HK_OK;
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    char span[48] = "cuda:0";
    if (n > 1) snprintf(span, sizeof span, "cuda:0 to cuda:%d", n - 1);
    return hk_errorf(HK_ERR_INVALID_ARG,
                     "device cuda:%d: index %d is past the last GPU: the CUDA runtime counts %d "
                     "(%s%s%s)",
                     index, index, n, span, vis ? "; CUDA_VISIBLE_DEVICES=" : "",
                     vis ? vis : "");
}

static int auto_index(int index) { return index == HK_DEVICE_INDEX_AUTO ? 0 : index; }

hk_status hk_backend_cuda_open(int index, hk_backend **out) {
    if (!out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_backend_cuda_open: out is NULL");
    *out = NULL;
    const hk_cu_api *cu = NULL;
    hk_status st = hk_cuda_module(&cu);
    if (st != HK_OK) return hk_error_prefix(st, "device cuda");
    return hk_backend_cuda_open_api(cu, index, out);
}

hk_status hk_backend_cuda_probe(int index) {
    const hk_cu_api *cu = NULL;
    hk_status st = hk_cuda_module(&cu);
    if (st != HK_OK) return hk_error_prefix(st, "device cuda");
    return no_device(cu, auto_index(index));
}

hk_status hk_backend_cuda_count(int *count) {
    *count = 0;
    const hk_cu_api *cu = NULL;
    hk_status st = hk_cuda_module(&cu);
    if (st != HK_OK) return hk_error_prefix(st, "device cuda");
    int n = 0;
    (void)cu->device_probe(&n);
    *count = n > 0 ? n : 0;
    return HK_OK;
}

hk_status hk_backend_cuda_open_api(const hk_cu_api *cu, int index, hk_backend **out) {
    if (!cu || !out)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_backend_cuda_open_api: NULL argument");
    *out = NULL;
    if (index < HK_DEVICE_INDEX_AUTO)
        return hk_errorf(HK_ERR_INVALID_ARG, "device cuda: index %d, expected 0, 1, ... or "
                                             "HK_DEVICE_INDEX_AUTO",
                         index);
    index = auto_index(index);
    hk_status st;
    if ((st = no_device(cu, index)) != HK_OK) return st;
    /* the stream and the cuBLAS handle below belong to the current device */
    int err = cu->set_device(index);
    if (err)
        return hk_errorf(HK_ERR_IO, "device cuda:%d: cudaSetDevice failed: %s (%s)", index,
                         cu->error_string(err), cu->error_name(err));
    hk_backend *be = calloc(1, sizeof *be);
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return hk_errorf(HK_ERR_NOMEM, "device cuda: out of host memory");
    }
    be->name = "cuda";
    be->device = HK_DEVICE_CUDA;
    be->index = index;
    snprintf(be->label, sizeof be->label, "cuda:%d", index);
    be->host_memory = false;
    be->ctx = c;
    c->cu = cu;
    c->index = index;
    fill(be);
    err = cu->stream_create(&c->stream);
    if (err) {
        st = fail(be, "stream_create", err);
        cuda_close(be);
        return st;
    }
    err = cu->blas_new(c->stream, &c->blas);
    if (err) {
        st = fail(be, "blas_new", err);
        cuda_close(be);
        return st;
    }
    *out = be;
    return HK_OK;
}
