/* The attention mask as a predicate on positions: per-row key ranges, per-pair visibility and
 * tile classification. The position logic is kernels/common/mask_tile.h, shared with the CUDA
 * kernels; this file adds the user predicate. */
#include "kernels.h"

static hk_mask_bounds bounds_of(const hk_k_mask *m, int64_t sk) {
    if (!m) return hk_mask_bounds_all(sk);
    hk_mask_bounds b = {
        .causal = m->causal,
        .window = m->window,
        .q_pos0 = m->q_pos0,
        .k_pos0 = m->k_pos0,
        .k_len = m->k_len,
    };
    return b;
}

void hk_k_mask_row_range(const hk_k_mask *m, int64_t sk, int64_t i, int64_t *lo, int64_t *hi) {
    const hk_mask_bounds b = bounds_of(m, sk);
    hk_mask_row_range(&b, sk, i, lo, hi);
}

bool hk_k_mask_visible(const hk_k_mask *m, int64_t sk, int64_t head, int64_t i, int64_t j) {
    const hk_mask_bounds b = bounds_of(m, sk);
    if (!hk_mask_in_range(&b, sk, i, j)) return false;
    if (m && m->allowed) return m->allowed(m->user, head, m->q_pos0 + i, m->k_pos0 + j);
    return true;
}

hk_k_tile_class hk_k_mask_classify(const hk_k_mask *m, int64_t sk, int64_t i0, int64_t i1,
                                   int64_t j0, int64_t j1) {
    const hk_mask_bounds b = bounds_of(m, sk);
    return (hk_k_tile_class)hk_mask_classify(&b, sk, i0, i1, j0, j1, m && m->allowed);
}

hk_mask_bounds hk_k_mask_bounds(const hk_k_mask *m, int64_t sk) { return bounds_of(m, sk); }
