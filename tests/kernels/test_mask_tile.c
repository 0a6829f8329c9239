/* kernels/common/mask_tile.h (the mask logic the CPU and CUDA kernels share) and the block
 * mask builder, against brute force on random masks; and the CUDA attention kernel's tile
 * loop (64-aligned key tiles, classes from hk_mask_desc_classify, per-pair checks only in
 * partial tiles) emulated on the CPU against the materializing reference. Runs without GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/common/mask_tile.h"
#include "kernels/cpu/kernels.h"
#include "kt_util.h"

/* The definition in kernels.h, pair by pair. */
static bool bounds_visible(const hk_mask_bounds *b, int64_t sk, int64_t i, int64_t j) {
    const int64_t kl = b->k_len < 0 ? 0 : b->k_len < sk ? b->k_len : sk;
    const int64_t qpos = b->q_pos0 + i, kpos = b->k_pos0 + j;
    if (j < 0 || j >= kl) return false;
    if (b->causal && kpos > qpos) return false;
    if (b->window > 0 && qpos - kpos >= b->window) return false;
    return true;
}

static hk_mask_bounds random_bounds(kt_rng *r, int64_t sq, int64_t sk) {
    hk_mask_bounds b;
    b.causal = kt_int(r, 4) != 0;
    b.window = kt_int(r, 3) == 0 ? 0 : 1 + kt_int(r, sk + 8);
    /* bottom-right alignment (k_pos0 + sk == q_pos0 + sq), or any offsets */
    b.q_pos0 = kt_int(r, 100);
    b.k_pos0 = kt_int(r, 2) ? b.q_pos0 + sq - sk : kt_int(r, 120) - 10;
    const int64_t kl = kt_int(r, 5);
    b.k_len = kl == 0 ? sk : kl == 1 ? sk + 7 : kl == 2 ? -3 : kt_int(r, sk + 1);
    return b;
}

static void test_row_range(void **state) {
    (void)state;
    kt_rng r = {201};
    for (int it = 0; it < 400; it++) {
        const int64_t sq = 1 + kt_int(&r, 90), sk = kt_int(&r, 130);
        const hk_mask_bounds b = random_bounds(&r, sq, sk);
        for (int64_t i = 0; i < sq; i++) {
            int64_t lo, hi, plo = 0, phi = 0;
            hk_mask_row_range(&b, sk, i, &lo, &hi);
            if (i > 0) hk_mask_row_range(&b, sk, i - 1, &plo, &phi);
            if (i > 0) { /* both ends non-decreasing: the classification relies on it */
                assert_true(lo >= plo);
                assert_true(hi >= phi);
            }
            for (int64_t j = -2; j < sk + 2; j++) {
                const bool want = bounds_visible(&b, sk, i, j);
                assert_int_equal(want, j >= lo && j < hi && j >= 0);
                assert_int_equal(want && j >= 0, hk_mask_in_range(&b, sk, i, j) && j >= 0);
            }
        }
    }
}

/* SKIP: no pair visible; FULL: every pair visible (and exact); with has_more never FULL. */
static void test_classify(void **state) {
    (void)state;
    kt_rng r = {202};
    int counts[3] = {0, 0, 0};
    for (int it = 0; it < 3000; it++) {
        const int64_t sq = 1 + kt_int(&r, 200), sk = 1 + kt_int(&r, 200);
        const hk_mask_bounds b = random_bounds(&r, sq, sk);
        const int64_t i0 = kt_int(&r, sq), i1 = i0 + 1 + kt_int(&r, sq - i0);
        const int64_t j0 = kt_int(&r, sk), j1 = j0 + 1 + kt_int(&r, sk - j0);
        int64_t vis = 0;
        for (int64_t i = i0; i < i1; i++)
            for (int64_t j = j0; j < j1; j++) vis += bounds_visible(&b, sk, i, j);
        const int c = hk_mask_classify(&b, sk, i0, i1, j0, j1, false);
        counts[c]++;
        if (c == HK_MT_SKIP) assert_int_equal(vis, 0);
        assert_int_equal(c == HK_MT_FULL, vis == (i1 - i0) * (j1 - j0));
        if (b.window == 0) assert_int_equal(c == HK_MT_SKIP, vis == 0); /* exact then */
        const int cm = hk_mask_classify(&b, sk, i0, i1, j0, j1, true);
        assert_int_equal(cm, c == HK_MT_SKIP ? HK_MT_SKIP : HK_MT_PARTIAL);
        /* the CPU wrappers give the same answers */
        hk_k_mask m = {.causal = b.causal, .window = b.window, .q_pos0 = b.q_pos0,
                       .k_pos0 = b.k_pos0, .k_len = b.k_len};
        assert_int_equal((int)hk_k_mask_classify(&m, sk, i0, i1, j0, j1), c);
    }
    for (int c = 0; c < 3; c++) assert_true(counts[c] > 100); /* every class was exercised */
}

static void test_class_and(void **state) {
    (void)state;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            const int c = hk_mask_class_and(a, b);
            if (a == HK_MT_SKIP || b == HK_MT_SKIP)
                assert_int_equal(c, HK_MT_SKIP);
            else if (a == HK_MT_FULL && b == HK_MT_FULL)
                assert_int_equal(c, HK_MT_FULL);
            else
                assert_int_equal(c, HK_MT_PARTIAL);
        }
}

/* Packed documents (sorted) or arbitrary ids; ranges from hk_mask_doc_range. */
static void random_docs(kt_rng *r, int32_t *doc, int64_t n) {
    const bool packed = kt_int(r, 2);
    const int64_t every = kt_int(r, 2) ? 9 : 150; /* mean document length */
    int32_t id = (int32_t)kt_int(r, 5);
    for (int64_t p = 0; p < n; p++) {
        if (packed) {
            if (kt_int(r, every) == 0) id++;
            doc[p] = id;
        } else {
            doc[p] = (int32_t)kt_int(r, 4);
        }
    }
}

static void test_doc_classify(void **state) {
    (void)state;
    kt_rng r = {203};
    int32_t doc[300];
    int counts[3] = {0, 0, 0};
    for (int it = 0; it < 3000; it++) {
        const int64_t len = 1 + kt_int(&r, 300);
        random_docs(&r, doc, len);
        /* position ranges may run past the documents */
        const int64_t q0 = kt_int(&r, len + 10), q1 = q0 + 1 + kt_int(&r, 64);
        const int64_t k0 = kt_int(&r, len + 10), k1 = k0 + 1 + kt_int(&r, 64);
        int32_t qmn, qmx, kmn, kmx;
        bool qo, ko;
        hk_mask_doc_range(doc, len, q0, q1, &qmn, &qmx, &qo);
        hk_mask_doc_range(doc, len, k0, k1, &kmn, &kmx, &ko);
        int64_t vis = 0;
        for (int64_t qp = q0; qp < q1; qp++)
            for (int64_t kp = k0; kp < k1; kp++) vis += hk_mask_doc_visible(doc, len, qp, kp);
        const bool empty = qmn > qmx || kmn > kmx;
        const int c = empty ? HK_MT_SKIP : hk_mask_doc_classify(qmn, qmx, kmn, kmx, qo || ko);
        counts[c]++;
        if (c == HK_MT_SKIP) assert_int_equal(vis, 0);
        if (c == HK_MT_FULL) assert_int_equal(vis, (q1 - q0) * (k1 - k0));
        if (vis == (q1 - q0) * (k1 - k0)) assert_int_equal(c, HK_MT_FULL);
    }
    print_message("doc classes: skip %d partial %d full %d\n", counts[0], counts[1], counts[2]);
    for (int c = 0; c < 3; c++) assert_true(counts[c] > 100);
    /* out-of-range positions see nothing */
    assert_false(hk_mask_doc_visible(doc, 5, 5, 0));
    assert_false(hk_mask_doc_visible(doc, 5, 0, -1));
}

/* A predicate that depends on the head and on both positions. */
typedef struct {
    uint64_t seed;
    int density; /* out of 8 */
    bool per_head;
} pred_ctx;

static bool pred_fn(void *user, int64_t head, int64_t q_pos, int64_t k_pos) {
    const pred_ctx *p = user;
    /* whole tiles that differ between heads (the classification over a block's heads) */
    if (p->per_head && (q_pos / 64 + k_pos / 64 + head) % 3 == 1) return false;
    /* stripes, so that whole tiles come out full or empty too */
    if (((q_pos / 70) + (k_pos / 90)) % 3 == 0) return true;
    if (((q_pos / 64) * 7 + (k_pos / 64)) % 5 == 0) return false;
    kt_rng r = {p->seed ^ (uint64_t)(q_pos * 1000003 + k_pos * 7919 +
                                     (p->per_head ? head * 104729 : 0))};
    return (int)kt_int(&r, 8) < p->density;
}

static void check_block_mask(const hk_k_mask *m, int64_t sq, int64_t sk, int64_t heads,
                             int64_t n_heads) {
    hk_block_mask b;
    assert_true(hk_k_block_mask_build(m, sq, sk, heads, &b));
    assert_int_equal(b.heads, heads);
    assert_int_equal(b.nqt, (sq + 63) / 64);
    assert_int_equal(b.nkt, (sk + 63) / 64);
    int64_t partial = 0;
    for (int64_t t = 0; t < b.heads * b.nqt * b.nkt; t++) {
        assert_true(b.cls[t] <= HK_MT_FULL);
        if (b.cls[t] == HK_MT_PARTIAL) {
            assert_int_equal(b.slot[t], partial);
            partial++;
        } else {
            assert_int_equal(b.slot[t], -1);
        }
    }
    assert_int_equal(partial, b.n_partial);
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t i = 0; i < sq; i++)
            for (int64_t j = 0; j < sk; j++) {
                const bool want = hk_k_mask_visible(m, sk, heads == 1 ? 0 : h, i, j);
                if (hk_block_mask_visible(&b, h, i, j) != want) {
                    print_error("head %lld row %lld key %lld: block mask %d, mask %d\n",
                                (long long)h, (long long)i, (long long)j, !want, want);
                    fail();
                }
            }
    /* a tile's class matches its pairs (inside [0, sq) x [0, sk)) */
    for (int64_t h = 0; h < heads; h++)
        for (int64_t qt = 0; qt < b.nqt; qt++)
            for (int64_t kt = 0; kt < b.nkt; kt++) {
                int64_t vis = 0, all = 0;
                for (int64_t i = qt * 64; i < sq && i < qt * 64 + 64; i++)
                    for (int64_t j = kt * 64; j < sk && j < kt * 64 + 64; j++) {
                        all++;
                        vis += hk_block_mask_visible(&b, h, i, j);
                    }
                const int c = hk_block_mask_class(&b, h, qt, kt);
                assert_int_equal(c, vis == 0 ? HK_MT_SKIP : vis == all ? HK_MT_FULL
                                                                       : HK_MT_PARTIAL);
            }
    assert_true(hk_k_block_mask_bytes(&b) >= (size_t)(b.n_partial * 64 * 8));
    hk_k_block_mask_free(&b);
    assert_null(b.cls);
}

static void test_block_mask(void **state) {
    (void)state;
    kt_rng r = {204};
    for (int it = 0; it < 40; it++) {
        const int64_t sq = 1 + kt_int(&r, 200), sk = 1 + kt_int(&r, 260);
        const hk_mask_bounds bd = random_bounds(&r, sq, sk);
        pred_ctx pc = {.seed = kt_next(&r), .density = (int)kt_int(&r, 9),
                       .per_head = kt_int(&r, 2)};
        hk_k_mask m = {.causal = bd.causal, .window = bd.window, .q_pos0 = bd.q_pos0,
                       .k_pos0 = bd.k_pos0, .k_len = bd.k_len,
                       .allowed = kt_int(&r, 5) ? pred_fn : NULL, .user = &pc};
        const int64_t n_heads = 3;
        check_block_mask(&m, sq, sk, pc.per_head && m.allowed ? n_heads : 1, n_heads);
    }
    /* no mask at all: every tile full */
    hk_block_mask b;
    assert_true(hk_k_block_mask_build(NULL, 100, 130, 1, &b));
    for (int64_t t = 0; t < b.nqt * b.nkt; t++) assert_int_equal(b.cls[t], HK_MT_FULL);
    assert_int_equal(b.n_partial, 0);
    hk_k_block_mask_free(&b);
    /* empty extents and bad arguments */
    assert_true(hk_k_block_mask_build(NULL, 0, 10, 1, &b));
    assert_int_equal(b.nqt, 0);
    hk_k_block_mask_free(&b);
    assert_false(hk_k_block_mask_build(NULL, 4, 4, 0, &b));
    assert_null(b.cls);
}

/* ---- the CUDA kernel's tile loop, emulated ---- */

/* What core/forward.c's predicate does with documents, for the reference. */
typedef struct {
    const int32_t *doc;
    int64_t len;
    const hk_block_mask *blocks;
    int64_t q_pos0, k_pos0;
} ref_ctx;

static bool ref_pred(void *user, int64_t head, int64_t q_pos, int64_t k_pos) {
    const ref_ctx *c = user;
    if (c->doc && !hk_mask_doc_visible(c->doc, c->len, q_pos, k_pos)) return false;
    if (c->blocks && !hk_block_mask_visible(c->blocks, head, q_pos - c->q_pos0, k_pos - c->k_pos0))
        return false;
    return true;
}

/* The structure of kernels/cuda/attention.cu on the CPU: rows (head g of a slice, query i),
 * key tiles from floor(jstart / 64) * 64, the tile class from hk_mask_desc_classify over the
 * slice's heads (SKIP: the tile is not read), pairs checked only in PARTIAL tiles, keys past
 * the tile masked, online softmax. K/V may be a rolling buffer. n_split > 1: each block's
 * key tiles are split into n_split ranges whose partial results (o / l, m, l) are combined
 * as the combine kernel does (flash-decoding). */
static void emulate_gpu(const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                        int64_t ldv, int64_t sq, int64_t sk, int64_t ring, int64_t nh,
                        int64_t nkv, int64_t d, float scale, const hk_mask_desc *m, float *out,
                        int64_t ldo, int64_t n_split, int64_t *tiles_skipped) {
    const int64_t group = nh / nkv;
    const int64_t bq = sq < 64 ? sq : 64;
    int64_t gs = 1;
    for (int64_t g = group; g >= 1; g--)
        if (group % g == 0 && g * bq <= 64) {
            gs = g;
            break;
        }
    float *s = kt_alloc(64 * 64), *o = kt_alloc(64 * d), ml[64], ll[64];
    float *po = kt_alloc(n_split * 64 * d), *pm = kt_alloc(n_split * 64);
    float *pl = kt_alloc(n_split * 64);
    for (int64_t i0 = 0; i0 < sq; i0 += bq)
        for (int64_t kvh = 0; kvh < nkv; kvh++)
            for (int64_t g0 = 0; g0 < group; g0 += gs) {
                const int64_t nq = sq - i0 < bq ? sq - i0 : bq, h0 = kvh * group + g0;
                int64_t jstart, jend, unused;
                hk_mask_row_range(&m->b, sk, i0, &jstart, &unused);
                hk_mask_row_range(&m->b, sk, i0 + nq - 1, &unused, &jend);
                if (jstart < 0) jstart = 0;
                jstart = jstart / 64 * 64;
                int32_t qmn = 0, qmx = 0, kmn = 0, kmx = 0;
                bool qo = false, ko = false;
                if (m->doc) hk_mask_doc_range(m->doc, m->doc_len, m->b.q_pos0 + i0,
                                              m->b.q_pos0 + i0 + nq, &qmn, &qmx, &qo);
                const int64_t ntiles = jend > jstart ? (jend - jstart + 63) / 64 : 0;
                for (int64_t z = 0; z < n_split; z++) {
                    memset(o, 0, (size_t)(64 * d) * sizeof *o);
                    for (int r = 0; r < 64; r++) {
                        ml[r] = -INFINITY;
                        ll[r] = 0.0f;
                    }
                    const int64_t t0 = ntiles * z / n_split, t1 = ntiles * (z + 1) / n_split;
                    const int64_t jlast = jstart + t1 * 64 < jend ? jstart + t1 * 64 : jend;
                    for (int64_t j0 = jstart + t0 * 64; j0 < jlast; j0 += 64) {
                        const int64_t nk = jend - j0 < 64 ? jend - j0 : 64;
                        if (m->doc) hk_mask_doc_range(m->doc, m->doc_len, m->b.k_pos0 + j0,
                                                      m->b.k_pos0 + j0 + nk, &kmn, &kmx, &ko);
                        const int cls = hk_mask_desc_classify(m, sk, h0, h0 + gs, i0, i0 + nq, j0,
                                                              j0 + nk, qmn, qmx, qo, kmn, kmx, ko);
                        if (cls == HK_MT_SKIP) {
                            (*tiles_skipped)++;
                            continue;
                        }
                        for (int64_t r = 0; r < 64; r++) {
                            const int64_t g = r / bq, i = i0 + r % bq, h = h0 + g;
                            const bool rv = g < gs && r % bq < nq;
                            float mx = -INFINITY;
                            for (int64_t jl = 0; jl < 64; jl++) {
                                float x = -INFINITY;
                                bool vis = jl < nk;
                                if (vis && cls == HK_MT_PARTIAL)
                                    vis = rv && hk_mask_desc_visible(m, sk, h, i, j0 + jl);
                                if (vis && rv) {
                                    int64_t row = j0 + jl;
                                    if (ring) row = ((m->b.k_pos0 + row) % ring + ring) % ring;
                                    x = 0.0f;
                                    const float *qr = q + i * ldq + h * d;
                                    const float *kr = k + row * ldk + kvh * d;
                                    for (int64_t c = 0; c < d; c++) x += qr[c] * scale * kr[c];
                                }
                                s[r * 64 + jl] = x;
                                mx = x > mx ? x : mx;
                            }
                            const float mnew = ml[r] > mx ? ml[r] : mx;
                            const float muse = mnew == -INFINITY ? 0.0f : mnew;
                            const float alpha = expf(ml[r] - muse);
                            float sum = 0.0f;
                            for (int64_t c = 0; c < d; c++) o[r * d + c] *= alpha;
                            for (int64_t jl = 0; jl < nk; jl++) {
                                const float p = expf(s[r * 64 + jl] - muse);
                                if (p == 0.0f) continue;
                                sum += p;
                                int64_t row = j0 + jl;
                                if (ring) row = ((m->b.k_pos0 + row) % ring + ring) % ring;
                                for (int64_t c = 0; c < d; c++)
                                    o[r * d + c] += p * v[row * ldv + kvh * d + c];
                            }
                            ll[r] = ll[r] * alpha + sum;
                            ml[r] = mnew;
                        }
                    }
                    for (int64_t r = 0; r < 64; r++) {
                        for (int64_t c = 0; c < d; c++)
                            po[(z * 64 + r) * d + c] = ll[r] > 0.0f ? o[r * d + c] / ll[r] : 0.0f;
                        pm[z * 64 + r] = ml[r];
                        pl[z * 64 + r] = ll[r];
                    }
                } /* splits */
                for (int64_t r = 0; r < 64; r++) {
                    const int64_t g = r / bq, i = i0 + r % bq;
                    if (g >= gs || r % bq >= nq) continue;
                    float mx = -INFINITY;
                    for (int64_t z = 0; z < n_split; z++)
                        if (pl[z * 64 + r] > 0.0f && pm[z * 64 + r] > mx) mx = pm[z * 64 + r];
                    for (int64_t c = 0; c < d; c++) {
                        float num = 0.0f, den = 0.0f;
                        for (int64_t z = 0; z < n_split && mx != -INFINITY; z++) {
                            if (!(pl[z * 64 + r] > 0.0f)) continue;
                            const float w = pl[z * 64 + r] * expf(pm[z * 64 + r] - mx);
                            num += w * po[(z * 64 + r) * d + c];
                            den += w;
                        }
                        out[i * ldo + (h0 + g) * d + c] = den > 0.0f ? num / den : 0.0f;
                    }
                }
            }
    free(s);
    free(o);
    free(po);
    free(pm);
    free(pl);
}

static double nmse(const float *a, const float *b, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = (double)a[i] - (double)b[i];
        num += e * e;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0.0 ? num / den : num;
}

static void test_emulated_gpu_attention(void **state) {
    (void)state;
    kt_rng r = {205};
    int64_t skipped_total = 0;
    for (int it = 0; it < 120; it++) {
        const int64_t nkv = 1 + kt_int(&r, 2), group = 1 + kt_int(&r, 4), nh = nkv * group;
        const int64_t d = 1 + kt_int(&r, 20);
        const int64_t sq = kt_int(&r, 3) == 0 ? 1 + kt_int(&r, 4) : 1 + kt_int(&r, 150);
        const int64_t sk = 1 + kt_int(&r, 260);
        const int64_t ring = kt_int(&r, 3) == 0 ? sk + kt_int(&r, 5) : 0;
        hk_mask_desc m;
        memset(&m, 0, sizeof m);
        m.b = random_bounds(&r, sq, sk);
        if (m.b.k_pos0 < 0) m.b.k_pos0 = 0; /* rolling buffers hold positions >= 0 */
        const int64_t npos = (m.b.q_pos0 + sq > m.b.k_pos0 + sk ? m.b.q_pos0 + sq
                                                                 : m.b.k_pos0 + sk) + 2;
        int32_t *doc = malloc((size_t)npos * sizeof *doc);
        random_docs(&r, doc, npos);
        if (kt_int(&r, 2)) {
            m.doc = doc;
            m.doc_len = npos - kt_int(&r, 3);
        }
        pred_ctx pc = {.seed = kt_next(&r), .density = 2 + (int)kt_int(&r, 7),
                       .per_head = kt_int(&r, 2)};
        hk_block_mask bm = {0};
        if (kt_int(&r, 2)) {
            hk_k_mask pm = {.causal = m.b.causal, .window = m.b.window, .q_pos0 = m.b.q_pos0,
                            .k_pos0 = m.b.k_pos0, .k_len = m.b.k_len, .allowed = pred_fn,
                            .user = &pc};
            assert_true(hk_k_block_mask_build(&pm, sq, sk, pc.per_head ? nh : 1, &bm));
            m.blocks = bm;
        }
        const int64_t ld = nh * d + kt_int(&r, 3), ldk = nkv * d + kt_int(&r, 3);
        const int64_t rows = ring ? ring : sk;
        float *q = kt_alloc(sq * ld), *k = kt_alloc(rows * ldk), *v = kt_alloc(rows * ldk);
        float *kl = kt_alloc(sk * ldk), *vl = kt_alloc(sk * ldk);
        float *og = kt_alloc(sq * ld), *oref = kt_alloc(sq * ld);
        kt_fill(&r, q, sq * ld, -2, 2);
        kt_fill(&r, k, rows * ldk, -2, 2);
        kt_fill(&r, v, rows * ldk, -2, 2);
        /* the reference reads the keys in position order */
        for (int64_t j = 0; j < sk; j++) {
            const int64_t row = ring ? (m.b.k_pos0 + j) % ring : j;
            memcpy(kl + j * ldk, k + row * ldk, (size_t)ldk * sizeof(float));
            memcpy(vl + j * ldk, v + row * ldk, (size_t)ldk * sizeof(float));
        }
        ref_ctx rc = {.doc = m.doc, .len = m.doc_len, .blocks = m.blocks.cls ? &bm : NULL,
                      .q_pos0 = m.b.q_pos0, .k_pos0 = m.b.k_pos0};
        hk_k_mask km = {.causal = m.b.causal, .window = m.b.window, .q_pos0 = m.b.q_pos0,
                        .k_pos0 = m.b.k_pos0, .k_len = m.b.k_len,
                        .allowed = (m.doc || m.blocks.cls) ? ref_pred : NULL, .user = &rc};
        const float scale = 0.3f;
        memset(og, 0, (size_t)(sq * ld) * sizeof(float));
        memset(oref, 0, (size_t)(sq * ld) * sizeof(float));
        hk_k_attention_ref(q, ld, kl, ldk, vl, ldk, sq, sk, nh, nkv, d, scale, &km, oref, ld);
        const int64_t n_split = it % 3 == 0 ? 1 + kt_int(&r, 6) : 1;
        emulate_gpu(q, ld, k, ldk, v, ldk, sq, sk, ring, nh, nkv, d, scale, &m, og, ld, n_split,
                    &skipped_total);
        const double e = nmse(og, oref, sq * ld);
        if (!(e <= 1e-10)) {
            print_error("case %d: sq %lld sk %lld ring %lld heads %lld/%lld d %lld causal %d "
                        "window %lld docs %d blocks %d splits %lld: NMSE %g\n",
                        it, (long long)sq, (long long)sk, (long long)ring, (long long)nh,
                        (long long)nkv, (long long)d, m.b.causal, (long long)m.b.window,
                        m.doc != NULL, m.blocks.cls != NULL, (long long)n_split, e);
            fail();
        }
        hk_k_block_mask_free(&bm);
        free(doc);
        free(q);
        free(k);
        free(v);
        free(kl);
        free(vl);
        free(og);
        free(oref);
    }
    assert_true(skipped_total > 0); /* the skip path ran */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_range),      cmocka_unit_test(test_classify),
        cmocka_unit_test(test_class_and),      cmocka_unit_test(test_doc_classify),
        cmocka_unit_test(test_block_mask),     cmocka_unit_test(test_emulated_gpu_attention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
