/* Attention: hk_k_attention (every path: AVX2, generic SIMD, row-wise) and hk_k_attention_ref against an independent
 * double-precision implementation, for every mask kind; tile classification; the predicate is
 * called only where the built-in mask allows and only in partial tiles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <stdatomic.h>

#include "kernels/cpu/kernels.h"
#include "kt_util.h"

#define TOL 1e-5
#define SENTINEL 12345.0f

/* ---- an independent reference, written from the header's contract ---- */

static bool naive_visible(const hk_k_mask *m, int64_t sk, int64_t h, int64_t i, int64_t j) {
    if (!m) return true;
    const int64_t qpos = m->q_pos0 + i, kpos = m->k_pos0 + j;
    if (j >= m->k_len || j >= sk) return false;
    if (m->causal && kpos > qpos) return false;
    if (m->window > 0 && qpos - kpos >= m->window) return false;
    if (m->allowed && !m->allowed(m->user, h, qpos, kpos)) return false;
    return true;
}

typedef struct {
    int64_t sq, sk, nh, nkv, d;
    int64_t ldq, ldk, ldv, ldo;
    float *q, *k, *v;
} prob;

static prob make_prob(kt_rng *r, int64_t sq, int64_t sk, int64_t nh, int64_t nkv, int64_t d,
                      bool strided, float amp) {
    prob p = {.sq = sq, .sk = sk, .nh = nh, .nkv = nkv, .d = d};
    p.ldq = nh * d + (strided ? 3 : 0);
    p.ldk = nkv * d + (strided ? 5 : 0);
    p.ldv = nkv * d + (strided ? 1 : 0);
    p.ldo = nh * d + (strided ? 2 : 0);
    p.q = kt_alloc(sq * p.ldq);
    p.k = kt_alloc(sk * p.ldk);
    p.v = kt_alloc(sk * p.ldv);
    kt_fill(r, p.q, sq * p.ldq, -amp, amp);
    kt_fill(r, p.k, sk * p.ldk, -amp, amp);
    kt_fill(r, p.v, sk * p.ldv, -1.0f, 1.0f);
    return p;
}

static void free_prob(prob *p) {
    free(p->q);
    free(p->k);
    free(p->v);
}

/* out: [sq, nh, d] contiguous; dead[i * nh + h]: the row sees no key. */
static void naive_attention(const prob *p, float scale, const hk_k_mask *m, double *out,
                            bool *dead) {
    const int64_t group = p->nh / p->nkv;
    double *s = malloc((size_t)(p->sk > 0 ? p->sk : 1) * sizeof(double));
    assert_non_null(s);
    for (int64_t i = 0; i < p->sq; i++)
        for (int64_t h = 0; h < p->nh; h++) {
            const int64_t kh = h / group;
            double mx = -INFINITY;
            for (int64_t j = 0; j < p->sk; j++) {
                if (!naive_visible(m, p->sk, h, i, j)) {
                    s[j] = -INFINITY;
                    continue;
                }
                double dot = 0.0;
                for (int64_t c = 0; c < p->d; c++)
                    dot += (double)p->q[i * p->ldq + h * p->d + c] *
                           (double)p->k[j * p->ldk + kh * p->d + c];
                s[j] = dot * scale;
                if (m && m->softcap > 0) s[j] = m->softcap * tanh(s[j] / m->softcap);
                if (s[j] > mx) mx = s[j];
            }
            double *o = out + (i * p->nh + h) * p->d;
            for (int64_t c = 0; c < p->d; c++) o[c] = 0.0;
            dead[i * p->nh + h] = (mx == -INFINITY);
            if (mx == -INFINITY) continue;
            double sum = 0.0;
            for (int64_t j = 0; j < p->sk; j++) {
                if (s[j] == -INFINITY) continue;
                const double e = exp(s[j] - mx);
                sum += e;
                for (int64_t c = 0; c < p->d; c++)
                    o[c] += e * (double)p->v[j * p->ldv + kh * p->d + c];
            }
            for (int64_t c = 0; c < p->d; c++) o[c] /= sum;
        }
    free(s);
}

typedef void (*attn_fn)(const float *, int64_t, const float *, int64_t, const float *, int64_t,
                        int64_t, int64_t, int64_t, int64_t, int64_t, float, const hk_k_mask *,
                        float *, int64_t);

/* Runs fn into a sentinel-filled output; returns the max error against the naive result and
 * checks dead rows are exactly zero and the padding between rows is untouched. */
static double run_one(attn_fn fn, const prob *p, float scale, const hk_k_mask *m,
                      const double *ref, const bool *dead, const char *what) {
    float *o = kt_alloc(p->sq * p->ldo);
    for (int64_t x = 0; x < p->sq * p->ldo; x++) o[x] = SENTINEL;
    fn(p->q, p->ldq, p->k, p->ldk, p->v, p->ldv, p->sq, p->sk, p->nh, p->nkv, p->d, scale, m, o,
       p->ldo);
    double err = 0.0;
    for (int64_t i = 0; i < p->sq; i++) {
        for (int64_t h = 0; h < p->nh; h++) {
            const float *oa = o + i * p->ldo + h * p->d;
            const double *ob = ref + (i * p->nh + h) * p->d;
            if (dead[i * p->nh + h]) {
                for (int64_t c = 0; c < p->d; c++)
                    if (oa[c] != 0.0f) {
                        print_error("%s: fully masked row %lld head %lld not zero: %g\n", what,
                                    (long long)i, (long long)h, (double)oa[c]);
                        fail();
                    }
            }
            const double e = kt_max_err(oa, ob, p->d);
            if (!(e <= err)) err = e;
        }
        for (int64_t c = p->nh * p->d; c < p->ldo; c++)
            if (o[i * p->ldo + c] != SENTINEL) {
                print_error("%s: wrote into the row padding\n", what);
                fail();
            }
    }
    free(o);
    return err;
}

static int64_t g_checks;

static void check_all_tol(const prob *p, float scale, const hk_k_mask *m, const char *what,
                          double tol) {
    double *ref = malloc((size_t)(p->sq * p->nh * p->d) * sizeof(double));
    bool *dead = malloc((size_t)(p->sq * p->nh) * sizeof(bool));
    assert_non_null(ref);
    assert_non_null(dead);
    naive_attention(p, scale, m, ref, dead);
    char label[256];
    for (int path = 0; path < 3; path++) {
        hk_k_attention_force_path((hk_k_attn_path)path);
        snprintf(label, sizeof label, "%s [%s] sq=%lld sk=%lld nh=%lld nkv=%lld d=%lld", what,
                 hk_k_attention_isa(), (long long)p->sq, (long long)p->sk, (long long)p->nh,
                 (long long)p->nkv, (long long)p->d);
        const double e = run_one(hk_k_attention, p, scale, m, ref, dead, label);
        if (getenv("KT_VERBOSE")) print_message("%s: %g\n", label, e);
        if (!(e <= tol)) {
            print_error("%s: hk_k_attention error %g\n", label, e);
            fail();
        }
    }
    hk_k_attention_force_path(HK_K_ATTN_AUTO);
    snprintf(label, sizeof label, "%s [ref] sq=%lld sk=%lld nh=%lld nkv=%lld d=%lld", what,
             (long long)p->sq, (long long)p->sk, (long long)p->nh, (long long)p->nkv,
             (long long)p->d);
    const double e = run_one(hk_k_attention_ref, p, scale, m, ref, dead, label);
    if (getenv("KT_VERBOSE")) print_message("%s: %g\n", label, e);
    if (!(e <= tol)) {
        print_error("%s: hk_k_attention_ref error %g\n", label, e);
        fail();
    }
    g_checks++;
    free(ref);
    free(dead);
}

static void check_all(const prob *p, float scale, const hk_k_mask *m, const char *what) {
    check_all_tol(p, scale, m, what, TOL);
}

/* ---- predicates ---- */

#define DOC_OFF 1024
typedef struct {
    int32_t doc[2 * DOC_OFF]; /* document id of position p at doc[p + DOC_OFF] */
} docs_t;

static bool pred_docs(void *user, int64_t h, int64_t q, int64_t k) {
    (void)h;
    const docs_t *d = user;
    return d->doc[q + DOC_OFF] == d->doc[k + DOC_OFF];
}
static bool pred_checker(void *user, int64_t h, int64_t q, int64_t k) {
    (void)user;
    (void)h;
    return ((q + k) & 1) == 0;
}
static bool pred_head(void *user, int64_t h, int64_t q, int64_t k) { /* depends on the head */
    (void)user;
    (void)q;
    return (k % (h + 2)) != 1;
}
static bool pred_dead_rows(void *user, int64_t h, int64_t q, int64_t k) {
    (void)user;
    (void)k;
    return (q + h) % 4 != 1; /* some rows of some heads see nothing */
}

static docs_t g_docs;

static void init_docs(kt_rng *r) {
    int32_t id = 0;
    for (int64_t p = 0; p < 2 * DOC_OFF; p++) {
        if (kt_int(r, 9) == 0) id++;
        g_docs.doc[p] = id;
    }
}

/* Every mask kind for an sq x sk problem. Returns the count. */
typedef struct {
    hk_k_mask m;
    const char *name;
} named_mask;

static int masks_for(int64_t sq, int64_t sk, named_mask *out) {
    const int64_t br = sk - sq; /* bottom-right aligned query start */
    int n = 0;
#define ADD(name_, klen_, ...) \
    out[n++] = (named_mask){.m = {.k_len = klen_, __VA_ARGS__}, .name = name_}
    ADD("bidirectional", sk, .causal = false);
    ADD("causal", sk, .causal = true, .q_pos0 = br);
    ADD("causal top-left", sk, .causal = true, .q_pos0 = 0);
    ADD("causal q_pos0 < 0 (dead rows)", sk, .causal = true, .q_pos0 = -2);
    ADD("causal positions offset", sk, .causal = true, .q_pos0 = 7 + br, .k_pos0 = 7);
    ADD("window 1", sk, .causal = true, .window = 1, .q_pos0 = br);
    ADD("window 3", sk, .causal = true, .window = 3, .q_pos0 = br);
    ADD("window > seq", sk, .causal = true, .window = sk + 5, .q_pos0 = br);
    ADD("window 3 bidirectional", sk, .causal = false, .window = 3, .q_pos0 = br);
    ADD("key padding", sk / 2, .causal = false);
    ADD("key padding causal", sk / 2 + 1, .causal = true, .q_pos0 = br);
    ADD("no valid key", 0, .causal = false);
    ADD("docs causal", sk, .causal = true, .q_pos0 = br, .allowed = pred_docs, .user = &g_docs);
    ADD("docs bidirectional padded", sk - sk / 3, .allowed = pred_docs,
        .user = &g_docs);
    ADD("checkerboard", sk, .causal = false, .allowed = pred_checker);
    ADD("head predicate window", sk, .causal = true, .window = 5, .q_pos0 = br,
        .allowed = pred_head);
    /* Gemma 2's attention-logit soft-cap, small enough that the scores reach it */
    ADD("softcap causal", sk, .causal = true, .q_pos0 = br, .softcap = 0.3f);
    ADD("softcap window padded", sk - sk / 4, .causal = true, .window = 4, .q_pos0 = br,
        .softcap = 0.5f);
    ADD("softcap predicate", sk, .causal = false, .allowed = pred_checker, .softcap = 0.2f);
    ADD("dead rows predicate", sk, .causal = true, .q_pos0 = br, .allowed = pred_dead_rows);
#undef ADD
    return n;
}

static void test_attention_grid(void **state) {
    (void)state;
    kt_rng r = {42};
    init_docs(&r);
    static const int64_t sizes[] = {1, 7, 33, 65, 130};
    static const int64_t heads[][2] = {{1, 1}, {2, 2}, {4, 2}, {4, 1}, {8, 2}, {6, 1}};
    static const int64_t dims[] = {64, 7, 32, 80, 1, 128};
    named_mask masks[32];
    int combo = 0;
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++) {
            const int64_t sq = sizes[a], sk = sizes[b];
            const int nm = masks_for(sq, sk, masks);
            for (size_t hc = 0; hc < sizeof heads / sizeof *heads; hc++, combo++) {
                const int64_t d = dims[combo % (sizeof dims / sizeof *dims)];
                prob p = make_prob(&r, sq, sk, heads[hc][0], heads[hc][1], d, combo % 2, 1.0f);
                const float scale = 1.0f / sqrtf((float)d);
                for (int mi = 0; mi < nm; mi++) check_all(&p, scale, &masks[mi].m, masks[mi].name);
                free_prob(&p);
            }
        }
}

/* Larger problems: several query blocks and key tiles, GQA, MQA with a split group, decode. */
static void test_attention_large(void **state) {
    (void)state;
    kt_rng r = {7};
    init_docs(&r);
    {
        prob p = make_prob(&r, 300, 300, 8, 2, 64, true, 1.0f);
        hk_k_mask m = {.causal = true, .k_len = 300};
        check_all(&p, 0.125f, &m, "large causal GQA");
        m.window = 100;
        check_all(&p, 0.125f, &m, "large window 100");
        hk_k_mask md = {.causal = true, .k_len = 300, .allowed = pred_docs, .user = &g_docs};
        check_all(&p, 0.125f, &md, "large docs");
        free_prob(&p);
    }
    {
        prob p = make_prob(&r, 200, 450, 12, 1, 64, false, 1.0f);
        hk_k_mask m = {.causal = true, .q_pos0 = 250, .k_len = 450};
        check_all(&p, 0.125f, &m, "MQA chunk after cache");
        free_prob(&p);
    }
    {
        prob p = make_prob(&r, 1, 517, 8, 2, 128, true, 1.0f);
        hk_k_mask m = {.causal = true, .q_pos0 = 516, .k_len = 517};
        check_all(&p, 0.0884f, &m, "decode");
        m.k_len = 400; /* cache longer than the valid keys */
        m.q_pos0 = 399;
        check_all(&p, 0.0884f, &m, "decode padded cache");
        free_prob(&p);
    }
    {
        prob p = make_prob(&r, 70, 70, 4, 4, 96, false, 1.0f);
        hk_k_mask nomask = {.k_len = 70};
        check_all(&p, 0.1f, &nomask, "d=96 bidirectional");
        check_all(&p, 0.1f, NULL, "NULL mask");
        free_prob(&p);
    }
}

/* out may alias q: each work item reads its queries before writing the same rows and heads. */
static void test_attention_in_place(void **state) {
    (void)state;
    kt_rng r = {77};
    prob p = make_prob(&r, 150, 150, 8, 2, 64, true, 1.0f);
    p.ldo = p.ldq;
    hk_k_mask m = {.causal = true, .k_len = 150, .window = 40};
    double *ref = malloc((size_t)(p.sq * p.nh * p.d) * sizeof(double));
    bool *dead = malloc((size_t)(p.sq * p.nh) * sizeof(bool));
    assert_non_null(ref);
    assert_non_null(dead);
    naive_attention(&p, 0.125f, &m, ref, dead);
    float *q0 = kt_alloc(p.sq * p.ldq);
    memcpy(q0, p.q, (size_t)(p.sq * p.ldq) * sizeof(float));
    for (int variant = 0; variant < 4; variant++) {
        memcpy(p.q, q0, (size_t)(p.sq * p.ldq) * sizeof(float));
        hk_k_attention_force_path((hk_k_attn_path)(variant < 3 ? variant : 0));
        if (variant < 3)
            hk_k_attention(p.q, p.ldq, p.k, p.ldk, p.v, p.ldv, p.sq, p.sk, p.nh, p.nkv, p.d,
                           0.125f, &m, p.q, p.ldq);
        else
            hk_k_attention_ref(p.q, p.ldq, p.k, p.ldk, p.v, p.ldv, p.sq, p.sk, p.nh, p.nkv,
                               p.d, 0.125f, &m, p.q, p.ldq);
        double err = 0;
        for (int64_t i = 0; i < p.sq; i++)
            for (int64_t h = 0; h < p.nh; h++) {
                const double e = kt_max_err(p.q + i * p.ldq + h * p.d,
                                            ref + (i * p.nh + h) * p.d, p.d);
                if (!(e <= err)) err = e;
            }
        assert_true(err <= TOL);
    }
    hk_k_attention_force_path(HK_K_ATTN_AUTO);
    free(q0);
    free(ref);
    free(dead);
    free_prob(&p);
}

/* Large score ranges: the running max moves by a lot between tiles. */
static void test_attention_sharp(void **state) {
    (void)state;
    kt_rng r = {99};
    prob p = make_prob(&r, 140, 260, 4, 2, 64, false, 3.0f);
    /* make later keys dominate so the max jumps across tiles */
    for (int64_t j = 0; j < p.sk; j++)
        for (int64_t c = 0; c < p.nkv * p.d; c++) p.k[j * p.ldk + c] *= 1.0f + (float)j / 64.0f;
    hk_k_mask m = {.causal = true, .q_pos0 = 120, .k_len = 260};
    /* Scores reach several hundred, where one f32 ulp is ~3e-5: any f32 kernel carries
     * errors of that size in the scores, hence in the softmax. */
    check_all_tol(&p, 1.0f, &m, "sharp causal", 1e-4);
    hk_k_mask b = {.k_len = 260};
    check_all_tol(&p, 0.5f, &b, "sharp bidirectional", 1e-4);
    free_prob(&p);
}

static void test_attention_threads(void **state) {
    (void)state;
    kt_rng r = {5};
    prob p = make_prob(&r, 129, 129, 6, 2, 64, false, 1.0f);
    hk_k_mask m = {.causal = true, .k_len = 129};
    const int saved = hk_k_get_threads();
    for (int t = 1; t <= 5; t += 2) {
        hk_k_set_threads(t);
        assert_int_equal(hk_k_get_threads(), t);
        check_all(&p, 0.125f, &m, "threads");
    }
    hk_k_set_threads(saved);
    free_prob(&p);
}

/* ---- tile classification against brute force ---- */

static void test_mask_classify(void **state) {
    (void)state;
    kt_rng r = {11};
    int64_t n_skip = 0, n_full = 0, n_part = 0;
    for (int it = 0; it < 20000; it++) {
        const int64_t sq = 1 + kt_int(&r, 40), sk = 1 + kt_int(&r, 40);
        hk_k_mask m = {
            .causal = kt_int(&r, 2),
            .window = kt_int(&r, 3) ? 0 : 1 + kt_int(&r, 12),
            .q_pos0 = kt_int(&r, 50) - 10,
            .k_pos0 = kt_int(&r, 20) - 5,
            .k_len = kt_int(&r, 4) ? sk : kt_int(&r, sk + 3),
            .allowed = kt_int(&r, 5) ? NULL : pred_checker,
        };
        const int64_t i0 = kt_int(&r, sq), i1 = i0 + 1 + kt_int(&r, sq - i0);
        const int64_t j0 = kt_int(&r, sk), j1 = j0 + 1 + kt_int(&r, sk - j0);
        const hk_k_tile_class c = hk_k_mask_classify(&m, sk, i0, i1, j0, j1);
        int64_t vis_builtin = 0, total = 0;
        for (int64_t i = i0; i < i1; i++)
            for (int64_t j = j0; j < j1; j++) {
                hk_k_mask nb = m;
                nb.allowed = NULL;
                vis_builtin += naive_visible(&nb, sk, 0, i, j);
                total++;
                /* the helper agrees with the contract */
                assert_int_equal(hk_k_mask_visible(&m, sk, 3, i, j), naive_visible(&m, sk, 3, i, j));
            }
        if (c == HK_K_TILE_SKIP) {
            assert_int_equal(vis_builtin, 0);
            n_skip++;
        } else if (c == HK_K_TILE_FULL) {
            assert_null(m.allowed);
            assert_int_equal(vis_builtin, total);
            n_full++;
        } else {
            n_part++;
            /* tight when there is no predicate: partial tiles are really mixed */
            if (!m.allowed) {
                if (vis_builtin == 0)
                    print_error("partial but empty: sq=%lld sk=%lld causal=%d W=%lld q0=%lld "
                                "k0=%lld klen=%lld rows [%lld,%lld) keys [%lld,%lld)\n",
                                (long long)sq, (long long)sk, m.causal, (long long)m.window,
                                (long long)m.q_pos0, (long long)m.k_pos0, (long long)m.k_len,
                                (long long)i0, (long long)i1, (long long)j0, (long long)j1);
                assert_true(vis_builtin > 0);
                assert_true(vis_builtin < total);
            }
        }
    }
    /* every class occurred */
    assert_true(n_skip > 100 && n_full > 100 && n_part > 100);
}

/* ---- the predicate is called only in partial tiles, only where the built-in mask allows ---- */

typedef struct {
    atomic_llong calls;
    atomic_llong outside; /* calls for pairs the built-in mask already rejects */
    hk_k_mask base;       /* the built-in part, to check against */
    int64_t sk;
} counter_t;

static bool pred_count(void *user, int64_t h, int64_t q, int64_t k) {
    counter_t *c = user;
    atomic_fetch_add(&c->calls, 1);
    if (!naive_visible(&c->base, c->sk, h, q - c->base.q_pos0, k - c->base.k_pos0))
        atomic_fetch_add(&c->outside, 1);
    return true;
}

static void test_predicate_calls(void **state) {
    (void)state;
    kt_rng r = {3};
    static const struct {
        int64_t sq, sk, window, q0;
    } cases[] = {{256, 256, 0, 0}, {257, 1000, 0, 743}, {300, 300, 50, 0}, {64, 512, 0, 448}};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const int64_t sq = cases[ci].sq, sk = cases[ci].sk, nh = 4;
        prob p = make_prob(&r, sq, sk, nh, 2, 32, false, 1.0f);
        counter_t cnt = {.sk = sk};
        cnt.base = (hk_k_mask){.causal = true, .window = cases[ci].window,
                               .q_pos0 = cases[ci].q0, .k_len = sk};
        hk_k_mask m = cnt.base;
        m.allowed = pred_count;
        m.user = &cnt;
        int64_t visible = 0;
        for (int64_t i = 0; i < sq; i++)
            for (int64_t j = 0; j < sk; j++) visible += naive_visible(&cnt.base, sk, 0, i, j);
        for (int path = 0; path < 3; path++) {
            hk_k_attention_force_path((hk_k_attn_path)path);
            atomic_store(&cnt.calls, 0);
            float *o = kt_alloc(sq * p.ldo);
            hk_k_attention(p.q, p.ldq, p.k, p.ldk, p.v, p.ldv, sq, sk, nh, 2, p.d, 0.2f, &m, o,
                           p.ldo);
            free(o);
            const long long calls = atomic_load(&cnt.calls);
            /* exactly one call per (head, visible pair): never in skipped tiles, never for
             * pairs outside the built-in mask */
            assert_int_equal(atomic_load(&cnt.outside), 0);
            assert_int_equal(calls, visible * nh);
            assert_true(calls < sq * sk * nh);
        }
        hk_k_attention_force_path(HK_K_ATTN_AUTO);
        /* the predicate allows everything: same result as the built-in mask alone */
        check_all(&p, 0.2f, &m, "counting predicate");
        free_prob(&p);
    }
}

/* ---- the materialized pieces ---- */

static void test_scores_softmax(void **state) {
    (void)state;
    kt_rng r = {17};
    const int64_t sq = 9, sk = 21, nh = 4, nkv = 2, d = 16;
    prob p = make_prob(&r, sq, sk, nh, nkv, d, true, 1.0f);
    hk_k_mask m = {.causal = true, .q_pos0 = 10, .k_len = 19, .window = 6};
    float *s = kt_alloc(nh * sq * sk);
    hk_k_attention_scores(p.q, p.ldq, p.k, p.ldk, sq, sk, nh, nkv, d, 0.3f, &m, s);
    for (int64_t h = 0; h < nh; h++)
        for (int64_t i = 0; i < sq; i++)
            for (int64_t j = 0; j < sk; j++) {
                const float got = s[(h * sq + i) * sk + j];
                if (!naive_visible(&m, sk, h, i, j)) {
                    assert_true(isinf(got) && got < 0);
                    continue;
                }
                double dot = 0;
                for (int64_t c = 0; c < d; c++)
                    dot += (double)p.q[i * p.ldq + h * d + c] * p.k[j * p.ldk + (h / 2) * d + c];
                assert_true(fabs(got - 0.3 * dot) < 1e-5);
            }
    /* with a soft-cap: cap * tanh(scaled / cap) on the visible pairs, -inf elsewhere */
    m.softcap = 0.25f;
    hk_k_attention_scores(p.q, p.ldq, p.k, p.ldk, sq, sk, nh, nkv, d, 0.3f, &m, s);
    int capped = 0;
    for (int64_t h = 0; h < nh; h++)
        for (int64_t i = 0; i < sq; i++)
            for (int64_t j = 0; j < sk; j++) {
                const float got = s[(h * sq + i) * sk + j];
                if (!naive_visible(&m, sk, h, i, j)) {
                    assert_true(isinf(got) && got < 0);
                    continue;
                }
                double dot = 0;
                for (int64_t c = 0; c < d; c++)
                    dot += (double)p.q[i * p.ldq + h * d + c] * p.k[j * p.ldk + (h / 2) * d + c];
                assert_true(fabs(got - 0.25 * tanh(0.3 * dot / 0.25)) < 1e-5);
                capped += fabs(0.3 * dot) > 0.25;
            }
    assert_true(capped > 0); /* some scores were past the cap */
    m.softcap = 0.0f;
    /* softmax rows sum to one; an all -inf row becomes zeros */
    for (int64_t j = 0; j < sk; j++) s[j] = -INFINITY;
    hk_k_softmax_rows(s, nh * sq, sk, s);
    for (int64_t j = 0; j < sk; j++) assert_true(s[j] == 0.0f);
    for (int64_t row = 1; row < nh * sq; row++) {
        double sum = 0;
        for (int64_t j = 0; j < sk; j++) sum += s[row * sk + j];
        assert_true(fabs(sum - 1.0) < 1e-5);
    }
    free(s);
    free_prob(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_classify),
        cmocka_unit_test(test_attention_grid),
        cmocka_unit_test(test_attention_large),
        cmocka_unit_test(test_attention_in_place),
        cmocka_unit_test(test_attention_sharp),
        cmocka_unit_test(test_attention_threads),
        cmocka_unit_test(test_predicate_calls),
        cmocka_unit_test(test_scores_softmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
