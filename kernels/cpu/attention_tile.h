/* The tile loop of hk_k_attention, written once and instantiated per instruction set:
 * a .c file defines HK_ATTN_ITEM (the function's name), HK_VL (floats per SIMD vector, 4 or 8)
 * and optionally HK_VFMA (a fused multiply-add), selects its target, then includes this file.
 *
 * One work item holds gs query heads sharing a KV head x nq queries: rows r = g * nq + i.
 * Scores are kept transposed, St[key, row], so rows are SIMD lanes. For each key tile of
 * HK_ATTN_BK keys that the mask does not skip:
 *   St = K_tile · Qtᵀ          (4 keys x 2 vectors of rows per register block; K is read in
 *                               place, broadcast per element: no K packing)
 *   mask St in partial tiles   (per row: the built-in interval, then the predicate)
 *   online softmax per lane    (running max m and sum l; O rows rescaled by exp(m_old-m_new))
 *   O += Pᵀ·V                  (4 rows x 2 vectors of d per register block; the V tile is
 *                               packed contiguous with zero pad to dp)
 * Each K/V tile is read once for all gs*nq rows of the item. */
#include "attention_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "simd_math.h" /* hk_vf, v_load/v_store/v_splat/v_select/v_max, v_exp_nonpos */

#define BK HK_ATTN_BK

/* st[j, rb..rb+2VL) = Σ_c k_j[c] · qt[c, rb..rb+2VL) for keys j in [0, nk), every row block.
 * Key blocks outside, row blocks inside: each key row is fetched once per tile (rows of a
 * fused QKV buffer are far apart and alias in L1), the packed queries stay in L1. */
INLINE void tile_scores(const float *k, int64_t ldk, int64_t nk, const float *qt, int64_t rp,
                        int64_t d, float *st, float *mx) {
    for (int64_t r = 0; r < rp; r += VL) v_store(mx + r, v_splat(-INFINITY));
    int64_t j = 0;
    for (; j + 4 <= nk; j += 4) {
        const float *k0 = k + j * ldk, *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
        for (int64_t rb = 0; rb < rp; rb += 2 * VL) {
            hk_vf a00 = v_splat(0), a01 = a00, a10 = a00, a11 = a00;
            hk_vf a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            const float *qc = qt + rb;
            for (int64_t c = 0; c < d; c++, qc += rp) {
                const hk_vf b0 = v_load(qc), b1 = v_load(qc + VL);
                hk_vf x = v_splat(k0[c]);
                a00 = HK_VFMA(a00, x, b0);
                a01 = HK_VFMA(a01, x, b1);
                x = v_splat(k1[c]);
                a10 = HK_VFMA(a10, x, b0);
                a11 = HK_VFMA(a11, x, b1);
                x = v_splat(k2[c]);
                a20 = HK_VFMA(a20, x, b0);
                a21 = HK_VFMA(a21, x, b1);
                x = v_splat(k3[c]);
                a30 = HK_VFMA(a30, x, b0);
                a31 = HK_VFMA(a31, x, b1);
            }
            float *s = st + j * rp + rb;
            v_store(s, a00);
            v_store(s + VL, a01);
            v_store(s + rp, a10);
            v_store(s + rp + VL, a11);
            v_store(s + 2 * rp, a20);
            v_store(s + 2 * rp + VL, a21);
            v_store(s + 3 * rp, a30);
            v_store(s + 3 * rp + VL, a31);
            v_store(mx + rb, v_max(v_load(mx + rb), v_max(v_max(a00, a10), v_max(a20, a30))));
            v_store(mx + rb + VL,
                    v_max(v_load(mx + rb + VL), v_max(v_max(a01, a11), v_max(a21, a31))));
        }
    }
    for (; j < nk; j++) {
        const float *k0 = k + j * ldk;
        for (int64_t rb = 0; rb < rp; rb += 2 * VL) {
            hk_vf a00 = v_splat(0), a01 = a00;
            const float *qc = qt + rb;
            for (int64_t c = 0; c < d; c++, qc += rp) {
                const hk_vf x = v_splat(k0[c]);
                a00 = HK_VFMA(a00, x, v_load(qc));
                a01 = HK_VFMA(a01, x, v_load(qc + VL));
            }
            v_store(st + j * rp + rb, a00);
            v_store(st + j * rp + rb + VL, a01);
            v_store(mx + rb, v_max(v_load(mx + rb), a00));
            v_store(mx + rb + VL, v_max(v_load(mx + rb + VL), a01));
        }
    }
}

/* o[r, :] += Σ_j pt[j, r] · v[j, :] for rows [0, rows) (a multiple of 4), keys [0, nk);
 * v rows have stride ldv and dp readable floats (dp a multiple of 2VL). */
INLINE void tile_pv(const float *pt, int64_t rp, int64_t rows, int64_t nk, const float *v,
                    int64_t ldv, int64_t dp, float *o) {
    for (int64_t r = 0; r < rows; r += 4) {
        float *o0 = o + r * dp, *o1 = o0 + dp, *o2 = o1 + dp, *o3 = o2 + dp;
        for (int64_t cb = 0; cb < dp; cb += 2 * VL) {
            hk_vf a00 = v_load(o0 + cb), a01 = v_load(o0 + cb + VL);
            hk_vf a10 = v_load(o1 + cb), a11 = v_load(o1 + cb + VL);
            hk_vf a20 = v_load(o2 + cb), a21 = v_load(o2 + cb + VL);
            hk_vf a30 = v_load(o3 + cb), a31 = v_load(o3 + cb + VL);
            const float *vc = v + cb;
            const float *p = pt + r;
            for (int64_t j = 0; j < nk; j++, vc += ldv, p += rp) {
                const hk_vf b0 = v_load(vc), b1 = v_load(vc + VL);
                hk_vf x = v_splat(p[0]);
                a00 = HK_VFMA(a00, x, b0);
                a01 = HK_VFMA(a01, x, b1);
                x = v_splat(p[1]);
                a10 = HK_VFMA(a10, x, b0);
                a11 = HK_VFMA(a11, x, b1);
                x = v_splat(p[2]);
                a20 = HK_VFMA(a20, x, b0);
                a21 = HK_VFMA(a21, x, b1);
                x = v_splat(p[3]);
                a30 = HK_VFMA(a30, x, b0);
                a31 = HK_VFMA(a31, x, b1);
            }
            v_store(o0 + cb, a00);
            v_store(o0 + cb + VL, a01);
            v_store(o1 + cb, a10);
            v_store(o1 + cb + VL, a11);
            v_store(o2 + cb, a20);
            v_store(o2 + cb + VL, a21);
            v_store(o3 + cb, a30);
            v_store(o3 + cb + VL, a31);
        }
    }
}

/* Sets st[j, r] = -inf for the keys of [0, nk) that row r may not see (partial tiles). */
static void tile_mask(const hk_attn_args *a, const hk_attn_ws *w, int64_t h0, int64_t i0,
                      int64_t nq, int64_t j0, int64_t nk) {
    const hk_k_mask *mask = a->mask;
    const hk_k_allowed_fn allowed = mask ? mask->allowed : NULL;
    const int64_t rp = a->rp;
    for (int64_t i = 0; i < nq; i++) {
        int64_t lo, hi;
        hk_k_mask_row_range(mask, a->sk, i0 + i, &lo, &hi);
        lo -= j0;
        hi -= j0;
        if (lo < 0) lo = 0;
        if (lo > nk) lo = nk;
        if (hi > nk) hi = nk;
        if (hi < lo) hi = lo;
        for (int64_t g = 0; g < a->gs; g++) {
            float *col = w->st + g * nq + i;
            for (int64_t j = 0; j < lo; j++) col[j * rp] = -INFINITY;
            for (int64_t j = hi; j < nk; j++) col[j * rp] = -INFINITY;
            if (allowed) {
                const int64_t qpos = mask->q_pos0 + i0 + i;
                for (int64_t j = lo; j < hi; j++)
                    if (!allowed(mask->user, h0 + g, qpos, mask->k_pos0 + j0 + j))
                        col[j * rp] = -INFINITY;
            }
        }
    }
}

void HK_ATTN_ITEM(const hk_attn_args *a, const hk_attn_ws *w, int64_t kvh, int64_t g0,
                  int64_t i0) {
    const int64_t d = a->d_head, dp = a->dp, gs = a->gs, rp = a->rp;
    const int64_t nq = a->sq - i0 < a->bq ? a->sq - i0 : a->bq;
    const int64_t rows = gs * nq;
    const int64_t rows4 = (rows + 3) & ~(int64_t)3;
    const int64_t h0 = kvh * a->group + g0; /* first query head of the item */
    const float cap = a->mask ? a->mask->softcap : 0.0f;

    /* Pack the scaled queries transposed (lanes past `rows` are zero). */
    memset(w->qt, 0, (size_t)(d * rp) * sizeof(float));
    for (int64_t g = 0; g < gs; g++)
        for (int64_t i = 0; i < nq; i++) {
            const float *src = a->q + (i0 + i) * a->ldq + (h0 + g) * d;
            float *dst = w->qt + g * nq + i;
            for (int64_t c = 0; c < d; c++) dst[c * rp] = src[c] * a->scale;
        }
    memset(w->o, 0, (size_t)(rp * dp) * sizeof(float));
    for (int64_t r = 0; r < rp; r++) {
        w->m[r] = -INFINITY;
        w->l[r] = 0.0f;
    }

    /* Keys that any row of the item may see. */
    int64_t jstart, jend, unused;
    hk_k_mask_row_range(a->mask, a->sk, i0, &jstart, &unused);
    hk_k_mask_row_range(a->mask, a->sk, i0 + nq - 1, &unused, &jend);
    if (jstart < 0) jstart = 0;

    for (int64_t j0 = jstart; j0 < jend; j0 += BK) {
        const int64_t nk = jend - j0 < BK ? jend - j0 : BK;
        const hk_k_tile_class cls =
            hk_k_mask_classify(a->mask, a->sk, i0, i0 + nq, j0, j0 + nk);
        if (cls == HK_K_TILE_SKIP) continue;

        /* the row maxima come out of the score kernel (w->al); partial tiles redo them */
        tile_scores(a->k + j0 * a->ldk + kvh * d, a->ldk, nk, w->qt, rp, d, w->st, w->al);
        if (cap > 0.0f) /* soft-cap the tile before its mask; its maxima are redone below */
            for (int64_t j = 0; j < nk * rp; j++) w->st[j] = hk_softcap(w->st[j], cap);
        if (cls == HK_K_TILE_PARTIAL) tile_mask(a, w, h0, i0, nq, j0, nk);

        /* Online softmax, VL rows at a time: St -> P, new max, rescale factors, sums. */
        for (int64_t rb = 0; rb < rp; rb += VL) {
            hk_vf mx = v_load(w->al + rb);
            if (cls == HK_K_TILE_PARTIAL || cap > 0.0f) {
                mx = v_load(w->st + rb);
                for (int64_t j = 1; j < nk; j++) mx = v_max(mx, v_load(w->st + j * rp + rb));
            }
            const hk_vf mold = v_load(w->m + rb);
            const hk_vf mnew = v_max(mold, mx);
            /* rows with nothing visible yet keep m = -inf; exponentiate against 0 there */
            const hk_vf muse = v_select(mnew == v_splat(-INFINITY), v_splat(0.0f), mnew);
            hk_vf sum = v_splat(0.0f);
            for (int64_t j = 0; j < nk; j++) {
                float *s = w->st + j * rp + rb;
                const hk_vf e = v_exp_nonpos(v_load(s) - muse);
                v_store(s, e);
                sum += e;
            }
            const hk_vf alpha = v_exp_nonpos(mold - muse);
            v_store(w->l + rb, v_load(w->l + rb) * alpha + sum);
            v_store(w->m + rb, mnew);
            v_store(w->al + rb, alpha);
        }
        for (int64_t r = 0; r < rows; r++) {
            const float alpha = w->al[r];
            if (alpha == 1.0f) continue;
            float *orow = w->o + r * dp;
            const hk_vf av = v_splat(alpha);
            for (int64_t c = 0; c < dp; c += VL) v_store(orow + c, v_load(orow + c) * av);
        }

        /* Pack V contiguous (its rows alias in L1 when read in place), zero-padded to dp. */
        const float *vsrc = a->v + j0 * a->ldv + kvh * d;
        for (int64_t j = 0; j < nk; j++) {
            float *vd = w->vp + j * dp;
            const float *vs = vsrc + j * a->ldv;
            int64_t c = 0;
            for (; c + VL <= d; c += VL) v_store(vd + c, v_load(vs + c));
            for (; c < d; c++) vd[c] = vs[c];
            for (; c < dp; c++) vd[c] = 0.0f;
        }
        tile_pv(w->st, rp, rows4, nk, w->vp, dp, dp, w->o);
    }

    /* Normalize; rows that saw no key are zeros. */
    for (int64_t g = 0; g < gs; g++)
        for (int64_t i = 0; i < nq; i++) {
            const int64_t r = g * nq + i;
            float *dst = a->out + (i0 + i) * a->ldo + (h0 + g) * d;
            const float l = w->l[r];
            const float *orow = w->o + r * dp;
            if (l > 0.0f)
                for (int64_t c = 0; c < d; c++) dst[c] = orow[c] / l;
            else
                for (int64_t c = 0; c < d; c++) dst[c] = 0.0f;
        }
}

#undef VL
#undef BK
#undef INLINE
