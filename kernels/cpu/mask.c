/* The attention mask as a predicate on positions: per-row key ranges, per-pair visibility and
 * tile classification from position bounds. */
#include "kernels.h"

static int64_t valid_keys(const hk_k_mask *m, int64_t sk) {
    if (!m) return sk;
    if (m->k_len < 0) return 0;
    return m->k_len < sk ? m->k_len : sk;
}

void hk_k_mask_row_range(const hk_k_mask *m, int64_t sk, int64_t i, int64_t *lo, int64_t *hi) {
    int64_t l = 0, h = valid_keys(m, sk);
    if (m) {
        const int64_t qpos = m->q_pos0 + i;
        /* causal: kpos <= qpos  <=>  j <= qpos - k_pos0 */
        if (m->causal && qpos - m->k_pos0 + 1 < h) h = qpos - m->k_pos0 + 1;
        /* window: qpos - kpos < W  <=>  j >= qpos - W + 1 - k_pos0 */
        if (m->window > 0 && qpos - m->window + 1 - m->k_pos0 > l)
            l = qpos - m->window + 1 - m->k_pos0;
    }
    *lo = l;
    *hi = h;
}

bool hk_k_mask_visible(const hk_k_mask *m, int64_t sk, int64_t head, int64_t i, int64_t j) {
    int64_t lo, hi;
    hk_k_mask_row_range(m, sk, i, &lo, &hi);
    if (j < lo || j >= hi) return false;
    if (m && m->allowed) return m->allowed(m->user, head, m->q_pos0 + i, m->k_pos0 + j);
    return true;
}

/* Both ends of a row's range are non-decreasing in i, so the first and last rows bound the
 * tile: every visible key lies in [lo(i0), hi(i1 - 1)), and every row covers the tile when the
 * last row starts at or before j0 and the first row ends at or after j1. */
hk_k_tile_class hk_k_mask_classify(const hk_k_mask *m, int64_t sk, int64_t i0, int64_t i1,
                                   int64_t j0, int64_t j1) {
    int64_t lo0, hi0, lo1, hi1;
    hk_k_mask_row_range(m, sk, i0, &lo0, &hi0);
    hk_k_mask_row_range(m, sk, i1 - 1, &lo1, &hi1);
    /* every visible key of the tile lies in [max(j0, lo0), min(j1, hi1)) */
    const int64_t a = j0 > lo0 ? j0 : lo0, b = j1 < hi1 ? j1 : hi1;
    if (a >= b) return HK_K_TILE_SKIP;
    if (m && m->allowed) return HK_K_TILE_PARTIAL;
    if (lo1 <= j0 && hi0 >= j1) return HK_K_TILE_FULL;
    return HK_K_TILE_PARTIAL;
}
