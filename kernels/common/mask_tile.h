/* The attention mask's position logic, shared by the CPU kernels (C) and the CUDA kernels
 * (nvcc), so the two backends cannot drift: per-row key intervals, per-tile classification,
 * packed-document visibility and the block mask (per-tile bitmaps computed on the host for
 * predicates that cannot run on the device). Everything is static inline and HK_HOSTDEV
 * (__host__ __device__ under nvcc, nothing in C). No pointers to functions, no allocation.
 *
 * Positions: query row i has absolute position q_pos0 + i, key j has k_pos0 + j. The built-in
 * part of a mask allows key j for row i iff
 *   0 <= j < min(k_len, sk)  and  (!causal || kpos <= qpos)  and  (window <= 0 || qpos - kpos < window). */
#ifndef HK_KERNELS_COMMON_MASK_TILE_H
#define HK_KERNELS_COMMON_MASK_TILE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __CUDACC__
#define HK_HOSTDEV __host__ __device__
#else
#define HK_HOSTDEV
#endif

/* Attention-logit soft-capping (Gemma 2): a scaled score s becomes cap * tanh(s / cap) before
 * the mask; cap <= 0 leaves it alone. Applied per score tile by every attention kernel (the
 * online softmax then sees capped scores, so the tile's row maxima are taken after it). */
static inline HK_HOSTDEV float hk_softcap(float s, float cap) {
    return cap > 0.0f ? cap * tanhf(s / cap) : s;
}

/* Tile classes (the values of hk_k_tile_class). */
#define HK_MT_SKIP 0    /* no pair visible */
#define HK_MT_PARTIAL 1 /* some pairs may be visible: check each */
#define HK_MT_FULL 2    /* every pair visible */

/* The built-in part of a mask: plain numbers, the same on host and device. */
typedef struct {
    bool causal;
    int64_t window; /* 0 = none */
    int64_t q_pos0, k_pos0;
    int64_t k_len;  /* keys [0, k_len) are valid (clamped to [0, sk]) */
} hk_mask_bounds;

/* Every key of sk visible (the NULL mask). */
static inline HK_HOSTDEV hk_mask_bounds hk_mask_bounds_all(int64_t sk) {
    hk_mask_bounds b;
    b.causal = false;
    b.window = 0;
    b.q_pos0 = 0;
    b.k_pos0 = 0;
    b.k_len = sk;
    return b;
}

/* Keys visible to row i under the bounds: the interval [*lo, *hi) (empty when *lo >= *hi).
 * Both ends are non-decreasing in i, which the tile classification relies on. */
static inline HK_HOSTDEV void hk_mask_row_range(const hk_mask_bounds *m, int64_t sk, int64_t i,
                                                int64_t *lo, int64_t *hi) {
    int64_t l = 0, h = m->k_len < 0 ? 0 : (m->k_len < sk ? m->k_len : sk);
    const int64_t qpos = m->q_pos0 + i;
    /* causal: kpos <= qpos  <=>  j <= qpos - k_pos0 */
    if (m->causal && qpos - m->k_pos0 + 1 < h) h = qpos - m->k_pos0 + 1;
    /* window: qpos - kpos < W  <=>  j >= qpos - W + 1 - k_pos0 */
    if (m->window > 0 && qpos - m->window + 1 - m->k_pos0 > l) l = qpos - m->window + 1 - m->k_pos0;
    *lo = l;
    *hi = h;
}

/* Class of the tile rows [i0, i1) x keys [j0, j1) (both non-empty) from the bounds alone.
 * The first and last rows bound the tile: every visible key lies in [lo(i0), hi(i1 - 1)),
 * and every row covers [j0, j1) when the last row starts at or before j0 and the first row
 * ends at or after j1. has_more: another part of the mask (predicate, documents, block mask)
 * may remove pairs, so a tile is never FULL from the bounds alone. */
static inline HK_HOSTDEV int hk_mask_classify(const hk_mask_bounds *m, int64_t sk, int64_t i0,
                                              int64_t i1, int64_t j0, int64_t j1,
                                              bool has_more) {
    int64_t lo0, hi0, lo1, hi1;
    hk_mask_row_range(m, sk, i0, &lo0, &hi0);
    hk_mask_row_range(m, sk, i1 - 1, &lo1, &hi1);
    const int64_t a = j0 > lo0 ? j0 : lo0, b = j1 < hi1 ? j1 : hi1;
    if (a >= b) return HK_MT_SKIP;
    if (has_more) return HK_MT_PARTIAL;
    if (lo1 <= j0 && hi0 >= j1) return HK_MT_FULL;
    return HK_MT_PARTIAL;
}

/* Whether row i sees key j under the bounds. */
static inline HK_HOSTDEV bool hk_mask_in_range(const hk_mask_bounds *m, int64_t sk, int64_t i,
                                               int64_t j) {
    int64_t lo, hi;
    hk_mask_row_range(m, sk, i, &lo, &hi);
    return j >= lo && j < hi;
}

/* Both parts of a mask together: SKIP if either skips, FULL if both are full. */
static inline HK_HOSTDEV int hk_mask_class_and(int a, int b) {
    if (a == HK_MT_SKIP || b == HK_MT_SKIP) return HK_MT_SKIP;
    if (a == HK_MT_FULL && b == HK_MT_FULL) return HK_MT_FULL;
    return HK_MT_PARTIAL;
}

/* ---- packed documents ----
 * doc: the document id of every absolute position [0, doc_len) of one sequence. A key is
 * visible only inside its query's document; positions at or past doc_len see nothing (as
 * core/forward.c's predicate on hk_mask_spec.doc_ids). */
static inline HK_HOSTDEV bool hk_mask_doc_visible(const int32_t *doc, int64_t doc_len,
                                                  int64_t q_pos, int64_t k_pos) {
    if (q_pos < 0 || k_pos < 0 || q_pos >= doc_len || k_pos >= doc_len) return false;
    return doc[q_pos] == doc[k_pos];
}

/* Class of a tile under the documents alone from the id ranges of its rows [qmin, qmax] and
 * keys [kmin, kmax] (ids of positions in range; out_of_range: some position of the tile is
 * outside [0, doc_len)): no common id skips, one id for all is full. Holds for any ids, sorted
 * or not. */
static inline HK_HOSTDEV int hk_mask_doc_classify(int32_t qmin, int32_t qmax, int32_t kmin,
                                                  int32_t kmax, bool out_of_range) {
    if (qmax < kmin || kmax < qmin) return HK_MT_SKIP;
    if (!out_of_range && qmin == qmax && kmin == kmax && qmin == kmin) return HK_MT_FULL;
    return HK_MT_PARTIAL;
}

/* ---- block mask: a user predicate evaluated on the host, per tile ----
 * Tiles of HK_MT_BQ query rows x HK_MT_BK keys, aligned to row/key index 0. cls says which
 * tiles are skipped, full or partial; a partial tile's visibility is a bitmap of HK_MT_BQ
 * 64-bit words (row r, key j0 + c = bit c of word r) in `bits`, at index slot[tile]. heads == 1
 * shares one mask between every head; otherwise there is one per head. The pointers are host
 * or device memory alike (the CUDA kernels get a device copy). */
#define HK_MT_BQ 64
#define HK_MT_BK 64

typedef struct {
    const uint8_t *cls;   /* [heads, nqt, nkt] HK_MT_* */
    const int32_t *slot;  /* [heads, nqt, nkt] index into bits of a PARTIAL tile, else -1 */
    const uint64_t *bits; /* [n_partial, HK_MT_BQ] */
    int64_t heads, nqt, nkt;
    int64_t n_partial;
} hk_block_mask;

static inline HK_HOSTDEV int64_t hk_block_mask_tile(const hk_block_mask *b, int64_t head,
                                                    int64_t qt, int64_t kt) {
    const int64_t h = b->heads == 1 ? 0 : head;
    return (h * b->nqt + qt) * b->nkt + kt;
}

/* Class of the block-mask tile holding (row i, key j); out of the mask's extent: SKIP. */
static inline HK_HOSTDEV int hk_block_mask_class(const hk_block_mask *b, int64_t head,
                                                 int64_t qt, int64_t kt) {
    if (qt < 0 || kt < 0 || qt >= b->nqt || kt >= b->nkt) return HK_MT_SKIP;
    return b->cls[hk_block_mask_tile(b, head, qt, kt)];
}

static inline HK_HOSTDEV bool hk_block_mask_visible(const hk_block_mask *b, int64_t head,
                                                    int64_t i, int64_t j) {
    if (i < 0 || j < 0) return false;
    const int64_t qt = i / HK_MT_BQ, kt = j / HK_MT_BK;
    const int c = hk_block_mask_class(b, head, qt, kt);
    if (c != HK_MT_PARTIAL) return c == HK_MT_FULL;
    const int32_t s = b->slot[hk_block_mask_tile(b, head, qt, kt)];
    return (b->bits[(int64_t)s * HK_MT_BQ + i % HK_MT_BQ] >> (j % HK_MT_BK)) & 1u;
}

/* Combined class over query heads [h0, h1) of block-mask tile (qt, kt): SKIP when every head
 * skips, FULL when every head is full. */
static inline HK_HOSTDEV int hk_block_mask_class_heads(const hk_block_mask *b, int64_t h0,
                                                       int64_t h1, int64_t qt, int64_t kt) {
    if (b->heads == 1) h1 = h0 + 1;
    int c = hk_block_mask_class(b, h0, qt, kt);
    for (int64_t h = h0 + 1; h < h1; h++) {
        const int ch = hk_block_mask_class(b, h, qt, kt);
        if (ch != c) return HK_MT_PARTIAL;
    }
    return c;
}

/* ---- the whole mask of a device kernel ----
 * Built-in bounds, optional packed documents and an optional block mask (for a predicate).
 * Plain data: the CUDA kernels take it by value with device pointers. */
typedef struct {
    hk_mask_bounds b;
    const int32_t *doc; /* [doc_len] document id per absolute position, or NULL */
    int64_t doc_len;
    hk_block_mask blocks; /* blocks.cls == NULL: none */
    float softcap;        /* > 0: scores capped with hk_softcap before the mask */
} hk_mask_desc;

static inline HK_HOSTDEV bool hk_mask_desc_has_more(const hk_mask_desc *m) {
    return m->doc != 0 || m->blocks.cls != 0;
}

/* Whether row i of query head `head` sees key j (sk keys in the call). */
static inline HK_HOSTDEV bool hk_mask_desc_visible(const hk_mask_desc *m, int64_t sk,
                                                   int64_t head, int64_t i, int64_t j) {
    if (!hk_mask_in_range(&m->b, sk, i, j)) return false;
    if (m->doc && !hk_mask_doc_visible(m->doc, m->doc_len, m->b.q_pos0 + i, m->b.k_pos0 + j))
        return false;
    if (m->blocks.cls && !hk_block_mask_visible(&m->blocks, head, i, j)) return false;
    return true;
}

/* Document id range of positions [p0, p1) (non-empty); *oor: some position lies outside
 * [0, doc_len) (those are left out of the range; all outside: min > max). Serial: the CUDA
 * attention kernel computes the same with a block reduction. */
static inline HK_HOSTDEV void hk_mask_doc_range(const int32_t *doc, int64_t doc_len, int64_t p0,
                                                int64_t p1, int32_t *mn, int32_t *mx,
                                                bool *oor) {
    int32_t a = INT32_MAX, b = INT32_MIN;
    bool o = false;
    for (int64_t p = p0; p < p1; p++) {
        if (p < 0 || p >= doc_len) {
            o = true;
            continue;
        }
        a = doc[p] < a ? doc[p] : a;
        b = doc[p] > b ? doc[p] : b;
    }
    *mn = a;
    *mx = b;
    *oor = o;
}

/* Class of the tile rows [i0, i1) x keys [j0, j1) for query heads [h0, h1). The document
 * ranges of the tile's query and key positions come from the caller (hk_mask_doc_range);
 * they are ignored without documents. A block mask needs tiles inside one block-mask tile
 * (i0 / HK_MT_BQ == (i1 - 1) / HK_MT_BQ, the same for keys); otherwise its part is PARTIAL. */
static inline HK_HOSTDEV int hk_mask_desc_classify(const hk_mask_desc *m, int64_t sk, int64_t h0,
                                                   int64_t h1, int64_t i0, int64_t i1,
                                                   int64_t j0, int64_t j1, int32_t qmin,
                                                   int32_t qmax, bool q_oor, int32_t kmin,
                                                   int32_t kmax, bool k_oor) {
    int c = hk_mask_classify(&m->b, sk, i0, i1, j0, j1, false);
    if (c == HK_MT_SKIP) return c;
    if (m->doc) {
        const bool empty = qmin > qmax || kmin > kmax; /* every position outside the ids */
        c = hk_mask_class_and(c, empty ? HK_MT_SKIP
                                       : hk_mask_doc_classify(qmin, qmax, kmin, kmax,
                                                              q_oor || k_oor));
        if (c == HK_MT_SKIP) return c;
    }
    if (m->blocks.cls) {
        const int64_t qt = i0 / HK_MT_BQ, kt = j0 / HK_MT_BK;
        const bool one = qt == (i1 - 1) / HK_MT_BQ && kt == (j1 - 1) / HK_MT_BK;
        c = hk_mask_class_and(c, one ? hk_block_mask_class_heads(&m->blocks, h0, h1, qt, kt)
                                     : HK_MT_PARTIAL);
    }
    return c;
}

#endif
