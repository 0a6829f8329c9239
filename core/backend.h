/* The backend interface: every operation the one forward (core/forward.c) performs on
 * activations, KV caches and weights, behind one table of function pointers — the
 * ggml-backend / llm.c idea in this project's style. Three implementations:
 *   cpu  (core/backend_cpu.c)  today's kernels (kernels/cpu); "device" memory is host memory,
 *                              the weights alias the checkpoint's;
 *   test (core/backend_test.c) the same kernels, but device memory is separate, tracked
 *                              allocations: every op checks that each pointer argument lies
 *                              inside a live device block (a host pointer where a device
 *                              pointer belongs is an error naming the op and the argument);
 *                              copies are explicit and counted (the GPU orchestration,
 *                              tested on the CPU; HK_DEVICE=test runs the suite through it);
 *   cuda (core/backend_cuda.c) kernels/cuda through the dlopen'ed module (core/cuda_module.c).
 *
 * Conventions, for every op:
 *  - `be` is the instance the op runs on; pointers named as device data (x, y, q, k, v, out,
 *    cache, ids, idx, ...) are the backend's device memory (from alloc, or inside the device
 *    weights); only arguments documented "host" are host memory. Ops are ordered on the
 *    backend's stream: a host read of device memory goes through to_host (which waits for
 *    the ops queued before it).
 *  - Element types are float (f32) unless a comment says otherwise; dims and row strides
 *    ("ld") count elements; shapes are written [rows, cols] beside each buffer.
 *  - Every op returns HK_OK or an error whose message (hk_last_error) names the op and what
 *    was wrong; the forward propagates it. No op exits or aborts.
 *  - Weights: the forward reads the model's weights only through hk_backend_weights(m) (the
 *    backend's copy: aliases of hk_model.w on the CPU, a device copy elsewhere). Norm weights,
 *    biases and embedding tables are f32 with the host layout (the forward offsets them by
 *    rows: pos_embed + pos0 * d_model); the matrices of hk_linear are opaque to the forward —
 *    a device backend may store them in another dtype (weights_dtype) and recognize them
 *    itself; the forward never does pointer arithmetic on hk_linear.w (linear_slice does).
 *    Gemma's (1 + w) RMSNorm weights are folded at bind time (models/bind.h): the norm ops
 *    always multiply by w as given.
 * Internal header (not installed). */
#ifndef HK_CORE_BACKEND_H
#define HK_CORE_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hookformer.h"
#include "kernels/cpu/kernels.h" /* hk_k_mask: the mask spec attention evaluates per tile */
#include "weights.h"

/* The largest device index hk_device_parse takes (HK_TEST_DEVICES: up to one more). */
#define HK_DEVICE_MAX_INDEX 1023

/* Bumped whenever an op is added, removed or changes its contract. */
#define HK_BACKEND_API_VERSION 1

typedef struct hk_backend hk_backend;

/* Copies and bytes moved through one backend instance (tests read these; the test backend
 * counts every copy, the others may leave them 0). */
typedef struct {
    uint64_t h2d, d2h, d2d;                   /* calls of to_device, to_host, copy + copy2d */
    uint64_t h2d_bytes, d2h_bytes, d2d_bytes; /* bytes they moved */
    uint64_t syncs;                           /* calls of sync */
    uint64_t allocs, live_blocks;             /* alloc calls; blocks allocated and not freed */
    uint64_t live_bytes, peak_bytes;          /* device bytes allocated now / at most */
} hk_backend_counters;

struct hk_backend {
    const char *name;  /* "cpu", "test", "cuda" */
    hk_device device;  /* what hook tensors of this backend carry in .device */
    int index;         /* which device of that kind (0, 1, ...; 0 on the CPU) */
    char label[24];    /* "cpu", "cuda:1", "test:0" (hk_backend_open sets it) */
    bool host_memory;  /* device memory IS host memory (cpu): hooks get it without copies,
                          the forward may write results straight into the caller's buffers */
    void *ctx;         /* the implementation's state */
    hk_backend_counters counters;
    /* The host staging buffer hook copies go through (hk_host_stage_get): from host_alloc,
     * grown on demand, reused across fires, freed by hk_backend_close. */
    void *stage;
    size_t stage_bytes;
    atomic_bool stage_busy;

    /* ---- lifetime ---- */
    void (*close)(hk_backend *be); /* frees ctx and be itself (after every block was freed) */

    /* ---- memory ---- */
    /* *out = bytes of device memory (64-byte aligned; bytes 0 gives a valid 64-byte block). */
    hk_status (*alloc)(hk_backend *be, size_t bytes, void **out);
    void (*free)(hk_backend *be, void *p); /* p from alloc, or NULL */
    /* dst[0, bytes) = value (a byte, as memset). */
    hk_status (*memset)(hk_backend *be, void *dst, int value, size_t bytes);
    /* dst (device) <- src (host), bytes. */
    hk_status (*to_device)(hk_backend *be, void *dst, const void *src_host, size_t bytes);
    /* dst (host) <- src (device), bytes; waits for the ops queued before it. */
    hk_status (*to_host)(hk_backend *be, void *dst_host, const void *src, size_t bytes);
    /* dst (device) <- src (device), bytes; the ranges do not overlap. */
    hk_status (*copy)(hk_backend *be, void *dst, const void *src, size_t bytes);
    /* 2-D copy of floats, device to device: dst[i, 0..cols) = src[i, 0..cols) for i < rows,
     * dst row stride ldd, src row stride lds (both >= cols); the ranges do not overlap. */
    hk_status (*copy2d)(hk_backend *be, float *dst, int64_t ldd, const float *src, int64_t lds,
                        int64_t rows, int64_t cols);
    /* Wait until every queued op has finished (a no-op on the CPU). */
    hk_status (*sync)(hk_backend *be);
    /* The stream ops are queued on (cudaStream_t on CUDA), NULL where there is none. */
    void *(*stream)(hk_backend *be);
    /* Host memory that device copies reach fastest (page-locked on CUDA), or NULL for plain
     * malloc / free: the staging buffer of hook copies. */
    hk_status (*host_alloc)(hk_backend *be, size_t bytes, void **out);
    void (*host_free)(hk_backend *be, void *p);

    /* ---- weights ---- */
    /* dev = the weights the forward uses, from the host weights w (config c): the CPU
     * aliases them (*dev = *w); device backends allocate and upload every tensor once
     * (matrices in weights_dtype: HK_DTYPE_F32, F16 or BF16; the rest f32), sharing one copy
     * between views of one host tensor (tied embeddings). The blocks and experts arrays of
     * dev are host arrays the backend owns. */
    hk_status (*weights_upload)(hk_backend *be, const hk_config *c, const hk_weights *w,
                                hk_dtype weights_dtype, hk_weights *dev);
    void (*weights_free)(hk_backend *be, const hk_config *c, hk_weights *dev);
    /* The sub-matrix of l taking inputs [in0, in0 + n_in) to outputs [out0, out0 + n_out)
     * (bias sliced alike): per-head views of W_Q/W_K/W_V (outputs) and W_O (inputs). Pure
     * (no device work); the only way the forward offsets a matrix. */
    hk_linear (*linear_slice)(hk_backend *be, const hk_linear *l, int64_t in0, int64_t n_in,
                              int64_t out0, int64_t n_out);

    /* ---- dense ops ---- */
    /* y[rows, n_out] (row stride ldy >= n_out) = x[rows, n_in] · Wᵀ (+ b): hk_linear's view
     * (core/weights.h); the CPU op is exactly hk_k_linear. */
    hk_status (*linear)(hk_backend *be, const hk_linear *l, const float *x, int64_t rows,
                        float *y, int64_t ldy);
    /* x, y [n, d] (y may alias x); w, b [d] (b may be NULL); scale_out [n] or NULL (the row
     * divisors, TransformerLens hook_scale). Statistics in double, as hk_k_layernorm. */
    hk_status (*layernorm)(hk_backend *be, const float *x, int64_t n, int64_t d, const float *w,
                           const float *b, float eps, float *y, float *scale_out);
    hk_status (*rmsnorm)(hk_backend *be, const float *x, int64_t n, int64_t d, const float *w,
                         float eps, float *y, float *scale_out);
    /* The pieces of a hooked norm, so that a modified hook_scale / hook_normalized flows on
     * (TransformerLens order):
     * norm_stats: x [n, d] -> mean [n] (0 unless center: LayerNorm), scale [n] =
     *   sqrt(mean((x - mean)²) + eps), both computed in double then rounded to f32;
     * norm_divide: y [n, d] = (x - mean[i]) / scale[i] (in double; y may alias x);
     * norm_affine: y [n, d] = y * w[j] + (b ? b[j] : 0), w/b [d]. */
    hk_status (*norm_stats)(hk_backend *be, const float *x, int64_t n, int64_t d, bool center,
                            double eps, float *mean, float *scale);
    hk_status (*norm_divide)(hk_backend *be, const float *x, int64_t n, int64_t d,
                             const float *mean, const float *scale, float *y);
    hk_status (*norm_affine)(hk_backend *be, float *y, int64_t n, int64_t d, const float *w,
                             const float *b);
    /* x [n] = act(x) in place (gelu_new, gelu, silu, relu as kernels/cpu). */
    hk_status (*act)(hk_backend *be, hk_act_kind a, float *x, int64_t n);
    /* The GLU product of gated MLPs, in place: gate [n] = act(gate) * up [n]. */
    hk_status (*glu)(hk_backend *be, hk_act_kind a, float *gate, const float *up, int64_t n);
    /* y [n] += x [n] (residual adds) */
    hk_status (*add)(hk_backend *be, float *y, const float *x, int64_t n);
    /* y [n] *= x [n] */
    hk_status (*mul)(hk_backend *be, float *y, const float *x, int64_t n);
    /* x [n] *= f (Gemma's embedding scale) */
    hk_status (*scale)(hk_backend *be, float *x, int64_t n, float f);
    /* x [n] = 1 / (1 + expf(-x)) (the shared expert's gate) */
    hk_status (*sigmoid)(hk_backend *be, float *x, int64_t n);
    /* x [n] = cap * tanh(x / cap) (hk_softcap: Gemma 2's final-logit soft-cap; cap > 0) */
    hk_status (*softcap)(hk_backend *be, float *x, int64_t n, float cap);
    /* out [n, d] = table [rows, d] gathered at ids [n] (int32, device, each in range:
     * checked by the caller) — token, token-type embeddings. */
    hk_status (*embed)(hk_backend *be, const float *table, int64_t d, const int32_t *ids,
                       int64_t n, float *out);
    /* Rotate-half RoPE in place, hk_k_rope's contract: x [n, heads, d_head] with row stride
     * ld; cos, sin [n, rot_dim/2] (device; the host computes them: core/rope.c). */
    hk_status (*rope)(hk_backend *be, float *x, int64_t n, int64_t heads, int64_t d_head,
                      int64_t ld, int64_t rot_dim, const float *cos, const float *sin);

    /* ---- attention ---- */
    /* hk_k_attention's contract (kernels/cpu/kernels.h), one sequence: q [sq, n_heads,
     * d_head] (row stride ldq), k/v [sk, n_kv_heads, d_head] (ldk, ldv), out [sq, n_heads,
     * d_head] (ldo; may alias q). mask (host struct, may be NULL): positions, causal,
     * window, k_len, soft-cap, and a host predicate evaluated per partial tile — tiled with
     * an online softmax, the [sq, sk] scores never materialized. A device backend turns the
     * predicate into a block mask on the host (hk_k_block_mask_build). */
    hk_status (*attention)(hk_backend *be, const float *q, int64_t ldq, const float *k,
                           int64_t ldk, const float *v, int64_t ldv, int64_t sq, int64_t sk,
                           int64_t n_heads, int64_t n_kv_heads, int64_t d_head, float scale,
                           const hk_k_mask *mask, float *out, int64_t ldo);
    /* The materialized path (hook_attn_scores / hook_pattern), per query chunk:
     * scores [n_heads, sq, sk] = scale·q·kᵀ (soft-capped) where visible, -inf elsewhere;
     * softmax_rows: pattern [rows, n] = softmax(scores) per row (rows without a finite score:
     *   zeros; may alias);
     * attention_apply: out [sq, n_heads, d_head] (ldo) = pattern [n_heads, sq, sk] · v. */
    hk_status (*attention_scores)(hk_backend *be, const float *q, int64_t ldq, const float *k,
                                  int64_t ldk, int64_t sq, int64_t sk, int64_t n_heads,
                                  int64_t n_kv_heads, int64_t d_head, float scale,
                                  const hk_k_mask *mask, float *scores);
    hk_status (*softmax_rows)(hk_backend *be, const float *scores, int64_t rows, int64_t n,
                              float *pattern);
    hk_status (*attention_apply)(hk_backend *be, const float *pattern, const float *v,
                                 int64_t ldv, int64_t sq, int64_t sk, int64_t n_heads,
                                 int64_t n_kv_heads, int64_t d_head, float *out, int64_t ldo);
    /* KV-cache write: row t < n of src [n, width] (row stride lds) goes to cache row
     * (pos0 + t) mod ring when ring > 0 (a rolling buffer of `ring` slots; then n <= ring),
     * else to row pos0 + t. cache: [slots, width] of one sequence, contiguous (f32 on the CPU
     * and test backends; a device backend may keep its caches in another dtype). */
    hk_status (*kv_write)(hk_backend *be, float *cache, int64_t ring, int64_t pos0,
                          const float *src, int64_t lds, int64_t n, int64_t width);

    /* ---- mixture of experts ---- */
    /* Router probabilities: y [rows, n] = softmax(x [rows, n]) per row, exp and sum in
     * double (transformers' f32 softmax of the router, as the forward has always computed
     * it); a row of -inf gives zeros. y may not alias x. */
    hk_status (*router_softmax)(hk_backend *be, const float *x, int64_t rows, int64_t n,
                                float *y);
    /* Top-k routing: per row of probs [rows, n_experts], the k largest (ties: lower id
     * first) -> ids [rows, k] (expert ids as floats: the hook's view) and mix [rows, k]
     * (their probabilities, divided by their sum when renorm and the sum is > 0). */
    hk_status (*topk_route)(hk_backend *be, const float *probs, int64_t rows, int64_t n_experts,
                            int64_t k, bool renorm, float *ids, float *mix);
    /* dst [n, d] (row i) = src [., d] row idx[i] / div (idx: int64 [n], device) */
    hk_status (*gather_rows)(hk_backend *be, float *dst, const float *src, int64_t d,
                             const int64_t *idx, int64_t div, int64_t n);
    /* dst [., d] row idx[i] = src [n, d] row i */
    hk_status (*scatter_rows)(hk_backend *be, float *dst, const float *src, int64_t d,
                              const int64_t *idx, int64_t n);
    /* y [., d] row (idx[i] / div) += w[idx[i]] * x [n, d] row i, for i in order (idx NULL:
     * row i += w[i] * x row i) — the experts' weighted sum, the shared expert's gate. */
    hk_status (*combine_rows)(hk_backend *be, float *y, const float *x, int64_t d,
                              const int64_t *idx, int64_t div, const float *w, int64_t n);

    /* ---- sampling ---- */
    /* hk_sample's choice (include/hookformer.h) from logits [vocab] (device): *out (host)
     * the token; *rng (host) advanced as hk_sample does. */
    hk_status (*sample)(hk_backend *be, const float *logits, int64_t vocab,
                        const hk_sampler_opts *o, uint64_t *rng, int32_t *out);
};

/* ---- instances ---- */

/* A new instance for device (HK_DEVICE_CPU, HK_DEVICE_TEST, HK_DEVICE_CUDA) number index
 * (HK_DEVICE_INDEX_AUTO: 0). CUDA without a CUDA backend in the build, or without a usable
 * device/module, is an error naming what is missing; an index past hk_device_count an error
 * naming both numbers (hk_backend_check). */
hk_status hk_backend_open(hk_device device, int index, hk_backend **out);
void hk_backend_close(hk_backend *be);

/* The checks hk_backend_open makes before it allocates anything: the device kind is known,
 * it can be opened (CUDA: the module loads, a GPU is counted) and index (or auto) is below
 * hk_device_count. A load runs them before it reads the checkpoint. */
hk_status hk_backend_check(hk_device device, int index);

/* The device an unspecified load uses: HK_DEVICE_CPU, or HK_DEVICE_TEST when the environment
 * has HK_DEVICE=test or test:N (the devtest suite setup; *index N, else left as it is); any
 * other value of HK_DEVICE is an error. */
hk_status hk_backend_env_device(hk_device *out, int *index);

/* "cpu", "test", "cuda" (NULL for an unknown value). */
const char *hk_device_name(hk_device d);

struct hk_model;
/* The model's backend instance and the weights the forward uses (device copies). */
hk_backend *hk_model_backend(const struct hk_model *m);
const hk_weights *hk_backend_weights(const struct hk_model *m);

/* Open a backend for device and upload m's weights to it (hk_model_load_opts). */
hk_status hk_model_attach_backend(struct hk_model *m, hk_device device, int index,
                                  hk_dtype weights_dtype);

/* An instance that can copy device memory of kind d, for hk_tensor_to_host/from_host (the
 * last one opened of that kind that is still open; NULL when none is). Opening and closing
 * instances is thread-safe; an instance must outlive the copies made through it. */
hk_backend *hk_backend_for_device(hk_device d);

/* hk_tensor_to_host / hk_tensor_from_host through a given instance (be NULL: the one
 * hk_backend_for_device finds), and the staging buffer of that instance: the hook dispatch
 * copies through its model's own backend, so that with models on several devices of a kind
 * each copy is queued behind the work that produced the tensor. */
hk_status hk_backend_tensor_copy(hk_backend *be, const hk_tensor *t, void *host, bool to_host);

/* A host buffer of at least `bytes` for copying a device-d tensor to and from: the backend's
 * staging buffer (pinned memory on CUDA, so the copy is one DMA, reused from fire to fire)
 * when it is free, else (nested or concurrent fires, no backend of that kind) plain malloc.
 * s->p is the buffer; hk_host_stage_put gives it back. */
typedef struct {
    hk_backend *be; /* whose staging buffer s->p is, or NULL: malloc'ed */
    void *p;
} hk_host_stage;
hk_status hk_host_stage_get(hk_device d, size_t bytes, hk_host_stage *s);
/* The same from a given instance's staging buffer (be NULL: plain malloc). */
hk_status hk_host_stage_get_from(hk_backend *be, size_t bytes, hk_host_stage *s);
void hk_host_stage_put(hk_host_stage *s);

#endif
