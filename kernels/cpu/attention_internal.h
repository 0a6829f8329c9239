/* Internal to kernels/cpu: the work item of the tiled attention kernel, shared between the
 * driver (attention.c) and its SIMD instantiations (attention_generic.c, attention_avx2.c). */
#ifndef HK_KERNELS_ATTENTION_INTERNAL_H
#define HK_KERNELS_ATTENTION_INTERNAL_H

#include "kernels.h"

#define HK_ATTN_BK 64 /* keys per tile (a multiple of 16) */
#define HK_ATTN_ROWS 64 /* target query rows per work item (heads of a group x queries) */

typedef struct {
    const float *q, *k, *v;
    float *out;
    int64_t ldq, ldk, ldv, ldo;
    int64_t sq, sk, n_heads, n_kv_heads, d_head;
    int64_t group; /* query heads per KV head */
    float scale;
    const hk_k_mask *mask;
    int64_t gs;     /* query heads of one group processed together (divides group) */
    int64_t bq;     /* queries per work item */
    int64_t dp;     /* d_head rounded up to 16 */
    int64_t rp;     /* gs * bq rounded up to 16 */
} hk_attn_args;

/* Per-thread workspace. Rows r = g * nq + i (query head g of the item, query i) are the
 * vector lanes of the score tile, so the online softmax needs no horizontal reductions. */
typedef struct {
    float *qt; /* [d, rp]    scaled queries, transposed */
    float *st; /* [BK, rp]   scores, then probabilities, transposed */
    float *o;  /* [rp, dp]   unnormalized output */
    float *vp; /* [BK, dp]   value tile, packed */
    float *m;  /* [rp]       running max */
    float *l;  /* [rp]       running sum */
    float *al; /* [rp]       row maxima of the score tile, then its rescale factors */
} hk_attn_ws;

/* Floats of one workspace (each piece a multiple of 16 floats). */
static inline size_t hk_attn_ws_floats(const hk_attn_args *a) {
    return (size_t)(a->d_head * a->rp + HK_ATTN_BK * a->rp + a->rp * a->dp +
                    HK_ATTN_BK * a->dp + 3 * a->rp);
}

/* One work item: query rows [i0, i0 + bq) ∩ [0, sq) of heads kvh*group + g0 + [0, gs). */
typedef void (*hk_attn_item_fn)(const hk_attn_args *a, const hk_attn_ws *w, int64_t kvh,
                                int64_t g0, int64_t i0);

void hk_attn_item_generic(const hk_attn_args *a, const hk_attn_ws *w, int64_t kvh, int64_t g0,
                          int64_t i0);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HK_ATTN_HAVE_AVX2 1
void hk_attn_item_avx2(const hk_attn_args *a, const hk_attn_ws *w, int64_t kvh, int64_t g0,
                       int64_t i0);
#endif

#endif
