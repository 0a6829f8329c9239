/* CUDA kernels: a plain C API over device pointers + dims, mirroring kernels/cpu/kernels.h.
 * Every kernel takes the stream to run on as a void * (a cudaStream_t; NULL = the default
 * stream) and returns 0 on success or the cudaError_t of the launch (hk_cu_error_string names
 * it). Launches are asynchronous: errors of the kernel itself show at the next synchronizing
 * call (hk_cu_sync). Nothing here includes CUDA headers, so C code may include it freely. */
#ifndef HK_KERNELS_CUDA_H
#define HK_KERNELS_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/mask_tile.h" /* hk_mask_desc, hk_block_mask: shared with kernels/cpu */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- device and memory ---- */
/* Number of usable CUDA devices; 0 when there is no driver or no GPU (never fails). */
int hk_cu_device_count(void);
/* The same, with the runtime's status: 0, or why no device could be counted (*count = 0).
 * Under AddressSanitizer the driver's address-space reservation collides with ASan's shadow
 * gap and this reports cudaErrorMemoryAllocation: run with ASAN_OPTIONS=protect_shadow_gap=0. */
int hk_cu_device_probe(int *count);
/* Make GPU `ordinal` the calling thread's current device (cudaSetDevice), unless it is
 * already (cudaGetDevice: no call into the driver then, so it is cheap enough to make before
 * every op). 0, or the runtime's error (cudaErrorInvalidDevice past the count). */
int hk_cu_set_device(int ordinal);
const char *hk_cu_error_string(int err); /* "out of memory" */
const char *hk_cu_error_name(int err);   /* "cudaErrorMemoryAllocation" */
int hk_cu_malloc(void **p, size_t bytes);
int hk_cu_free(void *p);
int hk_cu_upload(void *dst_dev, const void *src_host, size_t bytes);   /* synchronous */
int hk_cu_download(void *dst_host, const void *src_dev, size_t bytes); /* synchronous */
int hk_cu_sync(void *stream); /* waits for the stream; returns the first pending error */

/* ---- norms (as hk_k_layernorm / hk_k_rmsnorm; y may alias x; scale_out may be NULL) ---- */
int hk_cu_layernorm(const float *x, int64_t n, int64_t d, const float *w, const float *b,
                    float eps, float *y, float *scale_out, void *stream);
int hk_cu_rmsnorm(const float *x, int64_t n, int64_t d, const float *w, float eps, float *y,
                  float *scale_out, void *stream);

/* ---- activations, in place, n elements (as hk_k_*) ---- */
int hk_cu_gelu_new(float *x, int64_t n, void *stream);
int hk_cu_gelu(float *x, int64_t n, void *stream);
int hk_cu_silu(float *x, int64_t n, void *stream);
int hk_cu_relu(float *x, int64_t n, void *stream);
int hk_cu_mul(float *y, const float *x, int64_t n, void *stream); /* y[i] *= x[i] */
int hk_cu_add(float *y, const float *x, int64_t n, void *stream); /* y[i] += x[i] */

/* ---- rotary embeddings (as hk_k_rope: rotate-half, x [n, heads, d_head] row stride ld_row,
 * cos/sin [n, rot_dim/2]) ---- */
int hk_cu_rope(float *x, int64_t n, int64_t heads, int64_t d_head, int64_t ld_row,
               int64_t rot_dim, const float *cos, const float *sin, void *stream);

/* ---- embeddings (as hk_k_embed; ids on the device, in range) ---- */
int hk_cu_embed(const float *table, int64_t d, const int32_t *ids, int64_t n, float *out,
                void *stream);


/* ---- element types of device tensors ---- */
typedef enum { HK_CU_F32 = 0, HK_CU_F16 = 1, HK_CU_BF16 = 2 } hk_cu_dtype;
size_t hk_cu_dtype_size(hk_cu_dtype t);
/* dst[i] = src[i] converted (round to nearest even), n elements, any pair of types. */
int hk_cu_convert(void *dst, hk_cu_dtype dst_type, const void *src, hk_cu_dtype src_type,
                  int64_t n, void *stream);

/* ---- streams, events, asynchronous copies ---- */
int hk_cu_stream_create(void **stream); /* non-blocking stream */
int hk_cu_stream_destroy(void *stream);
int hk_cu_memset_async(void *dst, int value, size_t bytes, void *stream);
int hk_cu_upload_async(void *dst_dev, const void *src_host, size_t bytes, void *stream);
int hk_cu_download_async(void *dst_host, const void *src_dev, size_t bytes, void *stream);
int hk_cu_host_alloc_pinned(void **p, size_t bytes);
int hk_cu_host_free_pinned(void *p);
/* Peak device memory use is the caller's to track; this reports the device's free/total. */
int hk_cu_mem_info(size_t *free_bytes, size_t *total_bytes);

/* Pinned double buffer for device -> host copies that overlap compute (activations on their
 * way to the HDF5 store). Each copy goes on the ring's own copy stream after the work queued
 * on the compute stream so far; the host takes a filled buffer with hk_cu_d2h_wait while the
 * next copy fills the other one. Copies larger than the buffer size are refused. */
typedef struct hk_cu_d2h_ring hk_cu_d2h_ring;
int hk_cu_d2h_ring_new(size_t bytes_per_buffer, hk_cu_d2h_ring **out);
void hk_cu_d2h_ring_free(hk_cu_d2h_ring *r);
/* Queues the copy of src_dev (bytes) into the next buffer (waiting first for the host to have
 * released it: hk_cu_d2h_wait of the copy before the previous one); *slot receives its index. */
int hk_cu_d2h_begin(hk_cu_d2h_ring *r, const void *src_dev, size_t bytes, void *compute_stream,
                    int *slot);
/* Waits for the copy of slot and returns its host buffer (valid until the slot's next begin). */
int hk_cu_d2h_wait(hk_cu_d2h_ring *r, int slot, const void **host);

/* ---- matrix products (cuBLAS) ---- */
typedef struct hk_cu_blas hk_cu_blas;
/* A cuBLAS handle bound to stream (NULL: default stream); strict f32 (no TF32) unless
 * hk_cu_blas_allow_tf32 says otherwise. */
int hk_cu_blas_new(void *stream, hk_cu_blas **out);
void hk_cu_blas_free(hk_cu_blas *b);
int hk_cu_blas_allow_tf32(hk_cu_blas *b, bool on);
const char *hk_cu_blas_status_string(int status);
/* As hk_k_linear: y[n, out] (row stride ldy, f32) = x[n, in] (f32) · Wᵀ (+ b, f32).
 * W has type wtype; for F16/BF16 x is first rounded to wtype into x_ws (n·in elements of
 * wtype, device memory the caller owns; NULL for F32) and the product accumulates in f32
 * (cublasGemmEx, CUBLAS_COMPUTE_32F). Returns 0, a cudaError_t (launches) or
 * 100000 + a cublasStatus_t. */
int hk_cu_linear(hk_cu_blas *h, const float *x, int64_t n, int64_t in, const void *w,
                 hk_cu_dtype wtype, int64_t ldw, bool in_out, const float *b, int64_t out,
                 float *y, int64_t ldy, void *x_ws);
#define HK_CU_BLAS_ERR 100000

/* ---- gated activations: gate[i] = act(gate[i]) * up[i] (act: 0 silu, 1 gelu, 2 gelu_new,
 * 3 relu) ---- */
int hk_cu_gated(int act, float *gate, const float *up, int64_t n, void *stream);

/* ---- attention with an on-the-fly mask ----
 * As hk_k_attention on device pointers: q of type q_type, k/v of type kv_type (f32 queries
 * from the projections against a bf16 KV cache, say), out f32, d_head <= 256.
 * mask: the whole mask (kernels/common/mask_tile.h) with device pointers for documents and
 * the block mask (hk_cu_block_mask_upload); NULL: every key visible.
 * ring > 0: k/v are a rolling buffer of `ring` rows; key j (absolute position k_pos0 + j)
 * lives in row (k_pos0 + j) mod ring (hk_cu_kv_write fills it). ring == 0: key j is row j.
 * out may alias q when q_type is F32 and ldo == ldq. */
int hk_cu_attention(hk_cu_dtype q_type, hk_cu_dtype kv_type, const void *q, int64_t ldq,
                    const void *k, int64_t ldk, const void *v, int64_t ldv, int64_t sq,
                    int64_t sk, int64_t ring, int64_t n_heads, int64_t n_kv_heads,
                    int64_t d_head, float scale, const hk_mask_desc *mask, float *out,
                    int64_t ldo, void *stream);

/* KV cache write: rows of positions pos0 .. pos0 + n - 1 of src (f32, [n, width], row stride
 * lds) into dst (type dst_type, row stride ldd), converted; ring > 0: position p goes to row
 * p mod ring (a sliding-window layer's rolling buffer), else to row p. n <= ring. */
int hk_cu_kv_write(void *dst, hk_cu_dtype dst_type, int64_t ldd, int64_t ring, int64_t pos0,
                   const float *src, int64_t lds, int64_t n, int64_t width, void *stream);

/* f16/bf16 K/V with d_head a multiple of 16 run on tensor cores (WMMA, f32 accumulation; q
 * and the probabilities are rounded to the K/V type before the products, as FlashAttention
 * does); the rest, or every call while hk_cu_attention_force_simt(true), computes in f32 on
 * CUDA cores. The path a call takes: "tensor-core" or "simt-f32". Set it only while no call
 * runs. */
void hk_cu_attention_force_simt(bool on);
/* Few blocks over many keys (decoding a long context): the key range of each block is split
 * over several blocks whose partial results a second kernel combines (flash-decoding; the
 * workspace comes from the stream-ordered allocator). n > 0 forces n splits (tests), 0 is
 * the automatic choice. */
void hk_cu_attention_force_splits(int n);
const char *hk_cu_attention_path(hk_cu_dtype kv_type, int64_t d_head);

/* Device copy of a host block mask (hk_k_block_mask_build); free with hk_cu_block_mask_free. */
int hk_cu_block_mask_upload(const hk_block_mask *host, hk_block_mask *dev);
void hk_cu_block_mask_free(hk_block_mask *dev);

/* ---- materialized attention (hook_attn_scores / hook_pattern), f32 ----
 * As hk_k_attention_scores / hk_k_softmax_rows / hk_k_attention_apply. */
int hk_cu_attention_scores(hk_cu_blas *h, const float *q, int64_t ldq, const float *k,
                           int64_t ldk, int64_t sq, int64_t sk, int64_t n_heads,
                           int64_t n_kv_heads, int64_t d_head, float scale,
                           const hk_mask_desc *mask, float *scores);
int hk_cu_softmax_rows(const float *scores, int64_t rows, int64_t n, float *pattern,
                       void *stream);
int hk_cu_attention_apply(hk_cu_blas *h, const float *pattern, const float *v, int64_t ldv,
                          int64_t sq, int64_t sk, int64_t n_heads, int64_t n_kv_heads,
                          int64_t d_head, float *out, int64_t ldo);

/* ---- next-token choice ----
 * The choice hk_sample makes (core/sampling.c: greedy; temperature, top-k, top-p in Hugging
 * Face's order) from device logits [vocab], with the uniform draw u01 in [0, 1) given by the
 * caller (its PRNG stays on the host). ws: hk_cu_sample_ws_bytes(vocab) bytes of device memory.
 * result (device, 2 ints): [0] the token, [1] 0, or 1 (a NaN logit), or 2 (every logit -inf
 * while sampling). One block: meant for one sequence's logits per call. */
size_t hk_cu_sample_ws_bytes(int64_t vocab);
int hk_cu_sample(const float *logits, int64_t vocab, float temperature, int top_k, float top_p,
                 double u01, void *ws, int32_t *result, void *stream);

/* Embedding lookup from a table of any element type (out f32; ids on the device, in range). */
int hk_cu_embed_typed(const void *table, hk_cu_dtype type, int64_t d, const int32_t *ids,
                      int64_t n, float *out, void *stream);

/* ---- what the forward needs beyond the kernels above (API version 2) ---- */
/* Device-to-device copy on the stream. */
int hk_cu_copy_async(void *dst_dev, const void *src_dev, size_t bytes, void *stream);
/* Weights uploaded once, converted on the device: n host elements of src_type into dst_dev
 * (dst_type), in pieces of at most HK_CU_UPLOAD_STAGE bytes through a device staging buffer
 * (same types: a plain copy). Synchronous: src_host may be freed on return. */
#define HK_CU_UPLOAD_STAGE ((size_t)64 << 20)
int hk_cu_upload_convert(void *dst_dev, hk_cu_dtype dst_type, const void *src_host,
                         hk_cu_dtype src_type, int64_t n, void *stream);
/* RMSNorm multiplying by (w + w_offset) in f32: Gemma's (1 + w) with w_offset = 1 on weights
 * as stored (as hk_cu_rmsnorm otherwise; y may alias x; scale_out may be NULL). */
int hk_cu_rmsnorm_offset(const float *x, int64_t n, int64_t d, const float *w, float w_offset,
                         float eps, float *y, float *scale_out, void *stream);
/* The pieces of a hooked norm, x [n, d]: row statistics (mean_out [n]: the mean, 0 unless
 * center; scale_out [n]: sqrt(mean((x - mean)²) + eps), both in double, rounded to f32),
 * then y = (x - mean) / scale (y may alias x), then y = y * w + b in place (b may be NULL). */
int hk_cu_norm_stats(const float *x, int64_t n, int64_t d, bool center, double eps,
                     float *mean_out, float *scale_out, void *stream);
int hk_cu_norm_divide(const float *x, int64_t n, int64_t d, const float *mean,
                      const float *scale, float *y, void *stream);
int hk_cu_scale_bias(float *y, int64_t n, int64_t d, const float *w, const float *b,
                     void *stream);
/* In place, n elements: x *= f (Gemma's embedding scale); x = cap·tanh(x / cap) (soft-cap,
 * cap > 0); x = 1 / (1 + exp(-x)) (the shared expert's gate). */
int hk_cu_scale(float *x, int64_t n, float f, void *stream);
int hk_cu_softcap(float *x, int64_t n, float cap, void *stream);
int hk_cu_sigmoid(float *x, int64_t n, void *stream);
/* Rows of the experts' dispatch (core/backend.h's contracts; idx int64 on the device, in
 * range): dst [n, d] row i = src row idx[i] / div (div > 0); dst row idx[i] = src [n, d] row
 * i; y row a / div += w[a] · x [n, d] row i with a = idx[i] (idx NULL: row i += w[i] · x row
 * i), rows sharing a destination added in index order (deterministic). */
int hk_cu_gather_rows(float *dst, const float *src, int64_t d, const int64_t *idx, int64_t div,
                      int64_t n, void *stream);
int hk_cu_scatter_rows(float *dst, const float *src, int64_t d, const int64_t *idx, int64_t n,
                       void *stream);
int hk_cu_combine_rows(float *y, const float *x, int64_t d, const int64_t *idx, int64_t div,
                       const float *w, int64_t n, void *stream);
/* MoE routing: y = softmax of each row of x [rows, n], exp and sum in double (the router's
 * softmax on the CPU); then per row of probs [rows, E] the top k (ties: lower id first) as
 * ids [rows, k] (floats, the hook's view) and mix [rows, k] (renormalized over the k when
 * norm_topk and their sum > 0). E <= HK_CU_MOE_MAX_EXPERTS. */
#define HK_CU_MOE_MAX_EXPERTS 1024
int hk_cu_softmax_rows_f64(const float *x, int64_t rows, int64_t n, float *y, void *stream);
int hk_cu_moe_route(const float *probs, int64_t rows, int64_t n_experts, int64_t k,
                    bool norm_topk, float *ids, float *mix, void *stream);
/* Greedy choice per row of x [rows, n]: out[r] (device int32) = lowest index of the row's
 * largest value (hk_sample's greedy), -1 when the row holds a NaN. */
int hk_cu_argmax_rows(const float *x, int64_t rows, int64_t n, int32_t *out, void *stream);

#ifdef __cplusplus
}
#endif

#endif
