/* hk_k_block_mask_build: a mask with a predicate turned into per-tile classes and bitmaps
 * (kernels/common/mask_tile.h), for kernels that cannot call a C function (CUDA). The
 * predicate runs only on tiles the built-in part does not skip, like the CPU kernels. */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

void hk_k_block_mask_free(hk_block_mask *b) {
    if (!b) return;
    free((void *)b->cls);
    free((void *)b->slot);
    free((void *)b->bits);
    memset(b, 0, sizeof *b);
}

size_t hk_k_block_mask_bytes(const hk_block_mask *b) {
    const size_t tiles = (size_t)(b->heads * b->nqt * b->nkt);
    return tiles * (sizeof(uint8_t) + sizeof(int32_t)) +
           (size_t)b->n_partial * HK_MT_BQ * sizeof(uint64_t);
}

/* The bitmap of tile (qt, kt) of head h: bits of visible pairs inside [0, sq) x [0, sk). */
static void tile_bits(const hk_k_mask *mask, int64_t sq, int64_t sk, int64_t h, int64_t qt,
                      int64_t kt, uint64_t *w) {
    const int64_t i0 = qt * HK_MT_BQ, j0 = kt * HK_MT_BK;
    for (int64_t r = 0; r < HK_MT_BQ; r++) {
        uint64_t word = 0;
        const int64_t i = i0 + r;
        if (i < sq) {
            int64_t lo, hi;
            hk_k_mask_row_range(mask, sk, i, &lo, &hi);
            const int64_t a = lo > j0 ? lo : j0;
            const int64_t e = j0 + HK_MT_BK;
            const int64_t b = hi < e ? hi : e;
            for (int64_t j = a; j < b; j++)
                if (!mask || !mask->allowed ||
                    mask->allowed(mask->user, h, mask->q_pos0 + i, mask->k_pos0 + j))
                    word |= (uint64_t)1 << (j - j0);
        }
        w[r] = word;
    }
}

/* The class a bitmap stands for: no bit SKIP, every in-extent pair FULL. */
static int bits_class(const uint64_t *w, int64_t sq, int64_t sk, int64_t qt, int64_t kt) {
    const int64_t rows = sq - qt * HK_MT_BQ < HK_MT_BQ ? sq - qt * HK_MT_BQ : HK_MT_BQ;
    const int64_t cols = sk - kt * HK_MT_BK < HK_MT_BK ? sk - kt * HK_MT_BK : HK_MT_BK;
    const uint64_t all = cols == 64 ? ~(uint64_t)0 : (((uint64_t)1 << cols) - 1);
    bool any = false, full = true;
    for (int64_t r = 0; r < rows; r++) {
        any |= w[r] != 0;
        full &= (w[r] & all) == all;
    }
    return !any ? HK_MT_SKIP : full ? HK_MT_FULL : HK_MT_PARTIAL;
}

bool hk_k_block_mask_build(const hk_k_mask *mask, int64_t sq, int64_t sk, int64_t heads,
                           hk_block_mask *out) {
    memset(out, 0, sizeof *out);
    if (sq < 0 || sk < 0 || heads < 1) return false;
    const int64_t nqt = (sq + HK_MT_BQ - 1) / HK_MT_BQ, nkt = (sk + HK_MT_BK - 1) / HK_MT_BK;
    const int64_t tiles = heads * nqt * nkt;
    const hk_mask_bounds bd = hk_k_mask_bounds(mask, sk);
    const bool pred = mask && mask->allowed;
    uint8_t *cls = malloc((size_t)(tiles > 0 ? tiles : 1));
    int32_t *slot = malloc((size_t)(tiles > 0 ? tiles : 1) * sizeof *slot);
    if (!cls || !slot) goto fail;

    /* Tiles the bounds cannot settle get a bitmap slot (counted first, filled in parallel). */
    int64_t n = 0;
    for (int64_t t = 0; t < tiles; t++) {
        const int64_t qt = (t / nkt) % nqt, kt = t % nkt;
        const int64_t i1 = (qt + 1) * HK_MT_BQ < sq ? (qt + 1) * HK_MT_BQ : sq;
        const int64_t j1 = (kt + 1) * HK_MT_BK < sk ? (kt + 1) * HK_MT_BK : sk;
        cls[t] = (uint8_t)hk_mask_classify(&bd, sk, qt * HK_MT_BQ, i1, kt * HK_MT_BK, j1, pred);
        slot[t] = cls[t] == HK_MT_PARTIAL ? (int32_t)n++ : -1;
        if (n > INT32_MAX) goto fail;
    }
    uint64_t *bits = malloc((size_t)(n > 0 ? n : 1) * HK_MT_BQ * sizeof *bits);
    if (!bits) goto fail;
#pragma omp parallel for schedule(dynamic, 16) if (n * HK_MT_BQ * HK_MT_BK >= (1 << 18))
    for (int64_t t = 0; t < tiles; t++) {
        if (slot[t] < 0) continue;
        const int64_t h = t / (nqt * nkt), qt = (t / nkt) % nqt, kt = t % nkt;
        uint64_t *w = bits + (int64_t)slot[t] * HK_MT_BQ;
        tile_bits(mask, sq, sk, h, qt, kt, w);
        cls[t] = (uint8_t)bits_class(w, sq, sk, qt, kt);
    }
    /* Keep the bitmaps of tiles that stayed partial, in order. */
    int64_t kept = 0;
    for (int64_t t = 0; t < tiles; t++) {
        if (slot[t] < 0) continue;
        if (cls[t] != HK_MT_PARTIAL) {
            slot[t] = -1;
            continue;
        }
        if (slot[t] != kept)
            memmove(bits + kept * HK_MT_BQ, bits + (int64_t)slot[t] * HK_MT_BQ,
                    HK_MT_BQ * sizeof *bits);
        slot[t] = (int32_t)kept++;
    }
    out->cls = cls;
    out->slot = slot;
    out->bits = bits;
    out->heads = heads;
    out->nqt = nqt;
    out->nkt = nkt;
    out->n_partial = kept;
    return true;
fail:
    free(cls);
    free(slot);
    return false;
}
