/* CPU kernels: plain pointers and dims, nothing else of the project included.
 * Each has one reference implementation here; kernels/cuda mirrors them. */
#ifndef HK_KERNELS_CPU_H
#define HK_KERNELS_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/mask_tile.h" /* hk_mask_bounds, hk_block_mask: shared with kernels/cuda */

/* ---- threads ---- */
/* The kernels' threads are one OpenMP team (n <= 0: leave its default, OMP_NUM_THREADS or the
 * cores). Matrix products split across it by output columns, with OpenBLAS single-threaded
 * inside (its pthreads build: set to 1 thread at the first product and by hk_k_set_threads),
 * so OpenBLAS's own pool never competes with the team for the cores. */
void hk_k_set_threads(int n);
int hk_k_get_threads(void);

/* ---- matrix products (OpenBLAS; one row: hookformer's gemv kernels) ----
 * y[n, out] = x[n, in] · Wᵀ (+ b)
 *   in_out == false: W stored [out, in] with row stride ldw (nn.Linear)
 *   in_out == true:  W stored [in, out] with row stride ldw (Conv1D)
 * y has row stride ldy (>= out). b may be NULL. */
void hk_k_linear(const float *x, int64_t n, int64_t in, const float *w, int64_t ldw, bool in_out,
                 const float *b, int64_t out, float *y, int64_t ldy);
/* tests: the portable gemv kernels even where AVX2+FMA is there */
void hk_k_linear_force_generic(bool on);
const char *hk_k_linear_isa(void); /* the gemv kernels': "avx2+fma" or "generic" */

/* ---- matrix products on ggml weight blocks (decode and small batches) ----
 * W [out, in] stored as GGUF holds it: each row in blocks of `type` along in, rows ldw bytes
 * apart. The activations are quantized on the fly to 8-bit blocks (per 32 or 256 elements,
 * scale max|x|/127), dot products are integer inside a block and f32 across blocks; output
 * rows are split across the thread team. AVX2+FMA+F16C when the CPU has them, else portable C.
 * Type numbers are ggml's (core/quant.h's HK_GGML_* carry the same values). */
enum {
    HK_K_Q4_0 = 2,
    HK_K_Q4_1 = 3,
    HK_K_Q8_0 = 8,
    HK_K_Q4_K = 12,
    HK_K_Q5_K = 13,
    HK_K_Q6_K = 14,
};
/* activation rows up to which hk_k_linear_q takes the blocks (beyond: f32 GEMM, OpenBLAS) */
#define HK_K_QLINEAR_MAX_ROWS 8
/* Has a kernel for `type` with rows of `in` elements (a multiple of the type's block)? */
bool hk_k_qlinear_supports(uint32_t type, int64_t in);
/* y[n, out] = x[n, in] · Wᵀ (+ b); y row stride ldy. false (y untouched) when the type or in
 * is not supported (hk_k_qlinear_supports) or scratch memory ran out. */
bool hk_k_qlinear(const float *x, int64_t n, int64_t in, uint32_t type, const void *w,
                  size_t ldw, const float *b, int64_t out, float *y, int64_t ldy);
/* The linear of a weight that may also have blocks: hk_k_qlinear on qw (q_ld bytes per row)
 * when qw is set and n <= HK_K_QLINEAR_MAX_ROWS, else (or when it returns false) hk_k_linear
 * on the f32 w. */
void hk_k_linear_q(const float *x, int64_t n, int64_t in, const float *w, int64_t ldw,
                   bool in_out, uint32_t qtype, const void *qw, size_t q_ld, const float *b,
                   int64_t out, float *y, int64_t ldy);
/* Tests: force the portable kernels (false: back to the run-time choice); which one runs. */
void hk_k_qlinear_force_generic(bool on);
const char *hk_k_qlinear_isa(void); /* "avx2+fma+f16c" or "generic" */

/* ---- norms ----
 * x, y: [n, d] (y may alias x). scale_out: [n] or NULL, receives the per-row divisor
 * (LayerNorm: sqrt(var + eps); RMSNorm: sqrt(mean(x²) + eps)) — TransformerLens hook_scale.
 * LayerNorm: y = (x - mean)/scale * w + b (b may be NULL). RMSNorm: y = x/scale * w. */
void hk_k_layernorm(const float *x, int64_t n, int64_t d, const float *w, const float *b,
                    float eps, float *y, float *scale_out);
void hk_k_rmsnorm(const float *x, int64_t n, int64_t d, const float *w, float eps, float *y,
                  float *scale_out);

/* ---- activations (in place, n elements) ---- */
void hk_k_gelu_new(float *x, int64_t n); /* 0.5x(1+tanh(√(2/π)(x+0.044715x³))) */
void hk_k_gelu(float *x, int64_t n);     /* 0.5x(1+erf(x/√2)) */
void hk_k_silu(float *x, int64_t n);
void hk_k_relu(float *x, int64_t n);
/* gelu_new, gelu and silu are vectorized (a few ulp from the exact functions; specials as
 * the libm formulas give them). The path they take: "avx2+fma" where the CPU has both, else
 * "generic" (4-wide vectors); tests force the generic one to check it. Set it only while no
 * activation runs. */
void hk_k_activation_force_generic(bool on);
const char *hk_k_activation_isa(void);
/* y[i] *= x[i] */
void hk_k_mul(float *y, const float *x, int64_t n);
/* y[i] += x[i] */
void hk_k_add(float *y, const float *x, int64_t n);

/* ---- rotary embeddings (rotate-half convention of HF Llama/NeoX) ----
 * x: [n, heads, d_head] with row stride ld_row between tokens (>= heads*d_head);
 * the first rot_dim dims of each head are rotated, the rest left as they are.
 * cos, sin: [n, rot_dim/2] per token (already including any attention factor).
 *   x1 = x[:rot/2], x2 = x[rot/2:rot];  x1' = x1·cos − x2·sin;  x2' = x2·cos + x1·sin */
void hk_k_rope(float *x, int64_t n, int64_t heads, int64_t d_head, int64_t ld_row,
               int64_t rot_dim, const float *cos, const float *sin);

/* ---- attention with an on-the-fly mask ----
 * A mask is evaluated from positions, never stored. Query row i has absolute position
 * q_pos0 + i; key column j has absolute position k_pos0 + j. Key j is visible to query i iff
 *   j < k_len                                   (key padding: valid keys of this sequence)
 *   and (!causal || kpos <= qpos)
 *   and (window <= 0 || qpos - kpos < window)   (W keys including the query itself)
 *   and (allowed == NULL || allowed(user, head, qpos, kpos)). */
typedef bool (*hk_k_allowed_fn)(void *user, int64_t head, int64_t q_pos, int64_t k_pos);

typedef struct {
    bool causal;
    int64_t window;  /* 0 = none */
    int64_t q_pos0;  /* absolute position of query row 0 */
    int64_t k_pos0;  /* absolute position of key row 0 */
    int64_t k_len;   /* keys [0, k_len) are valid */
    hk_k_allowed_fn allowed; /* may be NULL */
    void *user;
    float softcap;   /* > 0: every scaled score s -> softcap * tanh(s / softcap) before the
                        mask (Gemma 2's attention-logit capping); 0 = off */
} hk_k_mask;

/* One sequence. q: [sq, n_heads, d_head] (row stride ldq), k/v: [sk, n_kv_heads, d_head]
 * (row strides ldk, ldv), out: [sq, n_heads, d_head] (row stride ldo). Query head h reads KV
 * head h / (n_heads / n_kv_heads). scale multiplies q·k. Fully masked rows give zeros.
 * Online softmax over key tiles; O(sq·d) extra memory, never sq×sk. mask may be NULL (every
 * key visible); k_len is clamped to [0, sk]. out may alias q (same pointer and row stride). */
void hk_k_attention(const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                    int64_t ldv, int64_t sq, int64_t sk, int64_t n_heads, int64_t n_kv_heads,
                    int64_t d_head, float scale, const hk_k_mask *mask, float *out,
                    int64_t ldo);

/* The path hk_k_attention takes: AUTO = the best for this CPU ("avx2+fma" or "generic" SIMD
 * tiles); tests force the others to check each: GENERIC = the portable SIMD tiles, ROWWISE =
 * the row-at-a-time loop that needs no workspace (used when its allocation fails). Set it only
 * while no hk_k_attention call runs. */
typedef enum { HK_K_ATTN_AUTO = 0, HK_K_ATTN_GENERIC = 1, HK_K_ATTN_ROWWISE = 2 } hk_k_attn_path;
void hk_k_attention_force_path(hk_k_attn_path path);
const char *hk_k_attention_isa(void); /* "avx2+fma", "generic" or "rowwise" */

/* Reference: materializes the [sq, sk] scores per head (tests only). Same contract. */
void hk_k_attention_ref(const float *q, int64_t ldq, const float *k, int64_t ldk,
                        const float *v, int64_t ldv, int64_t sq, int64_t sk, int64_t n_heads,
                        int64_t n_kv_heads, int64_t d_head, float scale, const hk_k_mask *mask,
                        float *out, int64_t ldo);

/* ---- mask helpers (used by the kernels above, the materializing hook path and tests) ----
 * mask may be NULL: every key visible. k_len is clamped to [0, sk].
 * The predicate `allowed` may be called concurrently from several threads (OpenMP), in any
 * order, and only for pairs that the built-in part (k_len, causal, window) already allows;
 * hk_k_attention calls it only inside PARTIAL tiles. */
typedef enum {
    HK_K_TILE_SKIP = HK_MT_SKIP,
    HK_K_TILE_PARTIAL = HK_MT_PARTIAL,
    HK_K_TILE_FULL = HK_MT_FULL
} hk_k_tile_class;

/* The built-in part of mask (NULL: every key of sk visible) as the shared plain struct. */
hk_mask_bounds hk_k_mask_bounds(const hk_k_mask *mask, int64_t sk);

/* Keys visible to query row i under the built-in part of the mask: the interval [*lo, *hi)
 * (empty when *lo >= *hi); the predicate may remove more. */
void hk_k_mask_row_range(const hk_k_mask *mask, int64_t sk, int64_t i, int64_t *lo, int64_t *hi);
/* Whether key j is visible to query row i of query head `head` (predicate included). */
bool hk_k_mask_visible(const hk_k_mask *mask, int64_t sk, int64_t head, int64_t i, int64_t j);
/* Class of the tile rows [i0, i1) x keys [j0, j1) (both non-empty), from position bounds only:
 * SKIP: no pair visible; FULL: every pair visible and no predicate; else PARTIAL. */
hk_k_tile_class hk_k_mask_classify(const hk_k_mask *mask, int64_t sk, int64_t i0, int64_t i1,
                                   int64_t j0, int64_t j1);

/* ---- block masks: a predicate evaluated once on the host, per tile ----
 * For backends that cannot call the predicate (CUDA): the whole mask (built-in part and
 * predicate) over rows [0, sq) x keys [0, sk) as tile classes plus a bitmap per partial tile
 * (kernels/common/mask_tile.h). heads == 1 evaluates the predicate with head 0 and shares the
 * result between heads (for predicates that ignore the head); otherwise heads = n_heads masks.
 * The predicate is called from several threads. A tile is FULL only when every pair inside
 * [0, sq) x [0, sk) is visible. Allocates; false when out of memory (out is then empty).
 * Bytes: heads·nqt·nkt·5 + n_partial·512. */
bool hk_k_block_mask_build(const hk_k_mask *mask, int64_t sq, int64_t sk, int64_t heads,
                           hk_block_mask *out);
void hk_k_block_mask_free(hk_block_mask *b);
size_t hk_k_block_mask_bytes(const hk_block_mask *b);

/* ---- materialized attention, in pieces (the hook_attn_scores / hook_pattern path) ----
 * Call per query chunk to bound memory. Same q/k/v/out layouts as hk_k_attention.
 * scores: [n_heads, sq, sk] contiguous = scale·q·k for visible pairs, -inf elsewhere. */
void hk_k_attention_scores(const float *q, int64_t ldq, const float *k, int64_t ldk, int64_t sq,
                           int64_t sk, int64_t n_heads, int64_t n_kv_heads, int64_t d_head,
                           float scale, const hk_k_mask *mask, float *scores);
/* pattern[r, :] = softmax(scores[r, :]) for `rows` rows of n; rows without a finite score
 * become zeros. pattern may alias scores. */
void hk_k_softmax_rows(const float *scores, int64_t rows, int64_t n, float *pattern);
/* out[i, h, :] = Σ_j pattern[h, i, j] · v[j, h / (n_heads / n_kv_heads), :]
 * pattern: [n_heads, sq, sk] contiguous. */
void hk_k_attention_apply(const float *pattern, const float *v, int64_t ldv, int64_t sq,
                          int64_t sk, int64_t n_heads, int64_t n_kv_heads, int64_t d_head,
                          float *out, int64_t ldo);

/* ---- embeddings ----
 * out[i, :] = table[ids[i], :]; ids must be in range (checked by the caller). */
void hk_k_embed(const float *table, int64_t d, const int32_t *ids, int64_t n, float *out);

#endif
