/* The CUDA module's ops for the forward beyond the kernels of test_cuda_kernels.c (table
 * version 2): each against a host reference (the CPU kernel where one exists, else the loop
 * core/forward.c runs on the CPU). GPU cases skip without a GPU; the argument checks run
 * wherever the module loads. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hookformer.h"
#include "kernels/common/mask_tile.h"
#include "kernels/cpu/kernels.h"
#include "cu_util.h"

/* Gemma's (1 + w): the CPU binds 1 + w (f32) and runs the plain RMSNorm */
static void test_rmsnorm_offset(void **state) {
    need_gpu(state);
    kt_rng r = {201};
    const int64_t n = 37, d = 2304;
    float *x = kt_alloc(n * d), *w = kt_alloc(d), *w1 = kt_alloc(d), *yc = kt_alloc(n * d);
    float *yg = kt_alloc(n * d), *sc = kt_alloc(n), *sg = kt_alloc(n);
    kt_fill(&r, x, n * d, -4, 4);
    kt_fill(&r, w, d, -0.5f, 0.5f);
    for (int64_t j = 0; j < d; j++) w1[j] = 1.0f + w[j];
    hk_k_rmsnorm(x, n, d, w1, 1e-6f, yc, sc);
    float *dx = to_dev(x, (size_t)(n * d) * 4), *dw = to_dev(w, (size_t)d * 4);
    float *dy = to_dev(NULL, (size_t)(n * d) * 4), *ds = to_dev(NULL, (size_t)n * 4);
    CU_OK(cu->rmsnorm_offset(dx, n, d, dw, 1.0f, 1e-6f, dy, ds, NULL));
    from_dev(yg, dy, (size_t)(n * d) * 4);
    from_dev(sg, ds, (size_t)n * 4);
    expect_close(yg, yc, n * d, "rmsnorm_offset 1");
    expect_close(sg, sc, n, "rmsnorm_offset scale");
    /* offset 0 is the plain RMSNorm, in place */
    hk_k_rmsnorm(x, n, d, w, 1e-6f, yc, NULL);
    CU_OK(cu->rmsnorm_offset(dx, n, d, dw, 0.0f, 1e-6f, dx, NULL, NULL));
    from_dev(yg, dx, (size_t)(n * d) * 4);
    expect_close(yg, yc, n * d, "rmsnorm_offset 0 in place");
    CU_OK(cu->free(dx));
    CU_OK(cu->free(dw));
    CU_OK(cu->free(dy));
    CU_OK(cu->free(ds));
    free(x);
    free(w);
    free(w1);
    free(yc);
    free(yg);
    free(sc);
    free(sg);
}

/* The hooked norm's pieces against core/forward.c's norm_pieces loops */
static void test_norm_pieces(void **state) {
    need_gpu(state);
    kt_rng r = {202};
    const int64_t n = 29, d = 777;
    float *x = kt_alloc(n * d), *w = kt_alloc(d), *b = kt_alloc(d);
    float *mc = kt_alloc(n), *scc = kt_alloc(n), *yc = kt_alloc(n * d);
    float *mg = kt_alloc(n), *scg = kt_alloc(n), *yg = kt_alloc(n * d);
    kt_fill(&r, x, n * d, -3, 5);
    kt_fill(&r, w, d, 0.5f, 1.5f);
    kt_fill(&r, b, d, -1, 1);
    float *dx = to_dev(x, (size_t)(n * d) * 4), *dw = to_dev(w, (size_t)d * 4);
    float *db = to_dev(b, (size_t)d * 4), *dy = to_dev(NULL, (size_t)(n * d) * 4);
    float *dm = to_dev(NULL, (size_t)n * 4), *ds = to_dev(NULL, (size_t)n * 4);
    for (int center = 0; center < 2; center++) {
        for (int64_t i = 0; i < n; i++) {
            const float *xi = x + i * d;
            double mean = 0, sq = 0;
            if (center) {
                for (int64_t j = 0; j < d; j++) mean += xi[j];
                mean /= (double)d;
            }
            for (int64_t j = 0; j < d; j++) sq += ((double)xi[j] - mean) * ((double)xi[j] - mean);
            mc[i] = (float)mean;
            scc[i] = (float)sqrt(sq / (double)d + 1e-5);
            const double inv = 1.0 / (double)scc[i];
            for (int64_t j = 0; j < d; j++) {
                const float y = (float)(((double)xi[j] - (double)mc[i]) * inv);
                yc[i * d + j] = y * w[j] + (center ? b[j] : 0.0f);
            }
        }
        CU_OK(cu->norm_stats(dx, n, d, center, 1e-5, dm, ds, NULL));
        CU_OK(cu->norm_divide(dx, n, d, dm, ds, dy, NULL));
        CU_OK(cu->scale_bias(dy, n, d, dw, center ? db : NULL, NULL));
        from_dev(mg, dm, (size_t)n * 4);
        from_dev(scg, ds, (size_t)n * 4);
        from_dev(yg, dy, (size_t)(n * d) * 4);
        if (!center)
            for (int64_t i = 0; i < n; i++) assert_true(mg[i] == 0.0f);
        expect_close(mg, mc, n, "norm_stats mean");
        expect_close(scg, scc, n, "norm_stats scale");
        expect_close(yg, yc, n * d, "norm_divide + scale_bias");
    }
    CU_OK(cu->free(dx));
    CU_OK(cu->free(dw));
    CU_OK(cu->free(db));
    CU_OK(cu->free(dy));
    CU_OK(cu->free(dm));
    CU_OK(cu->free(ds));
    free(x);
    free(w);
    free(b);
    free(mc);
    free(scc);
    free(yc);
    free(mg);
    free(scg);
    free(yg);
}

static void test_scale_softcap_sigmoid(void **state) {
    need_gpu(state);
    kt_rng r = {203};
    const int64_t n = 100007;
    float *x = kt_alloc(n), *c = kt_alloc(n), *g = kt_alloc(n);
    kt_fill(&r, x, n, -80, 80);
    float *dx = to_dev(NULL, (size_t)n * 4);
    for (int op = 0; op < 3; op++) {
        for (int64_t i = 0; i < n; i++)
            c[i] = op == 0 ? x[i] * 48.0f : op == 1 ? hk_softcap(x[i], 30.0f)
                                                   : 1.0f / (1.0f + expf(-x[i]));
        CU_OK(cu->upload(dx, x, (size_t)n * 4));
        if (op == 0) CU_OK(cu->scale(dx, n, 48.0f, NULL));
        if (op == 1) CU_OK(cu->softcap(dx, n, 30.0f, NULL));
        if (op == 2) CU_OK(cu->sigmoid(dx, n, NULL));
        from_dev(g, dx, (size_t)n * 4);
        expect_close(g, c, n, op == 0 ? "scale" : op == 1 ? "softcap" : "sigmoid");
    }
    CU_OK(cu->free(dx));
    free(x);
    free(c);
    free(g);
}

/* The experts' dispatch (core/backend.h's gather_rows, scatter_rows, combine_rows) against
 * the CPU backend's loops: slots a = row * k + j, repeated destinations added in order. */
static void test_dispatch_rows(void **state) {
    need_gpu(state);
    kt_rng r = {204};
    const int64_t d = 333, n = 50, rows = 20, k = 3, slots = rows * k;
    float *src = kt_alloc(slots * d), *wt = kt_alloc(slots), *dst = kt_alloc(slots * d);
    float *want = kt_alloc(slots * d), *got = kt_alloc(slots * d);
    int64_t idx[50];
    kt_fill(&r, src, slots * d, -2, 2);
    kt_fill(&r, wt, slots, 0, 1);
    kt_fill(&r, dst, slots * d, -1, 1);
    for (int64_t i = 0; i < n; i++) idx[i] = kt_int(&r, slots); /* repeats happen */
    float *ddst = to_dev(dst, (size_t)(slots * d) * 4), *dsrc = to_dev(src, (size_t)(slots * d) * 4);
    float *dw = to_dev(wt, (size_t)slots * 4);
    int64_t *di = to_dev(idx, sizeof idx);
    /* gather: dst row i = src row idx[i] / k */
    for (int64_t i = 0; i < n; i++) memcpy(want + i * d, src + (idx[i] / k) * d, (size_t)d * 4);
    CU_OK(cu->gather_rows(ddst, dsrc, d, di, k, n, NULL));
    from_dev(got, ddst, (size_t)(n * d) * 4);
    assert_memory_equal(got, want, (size_t)(n * d) * 4);
    /* combine: y row idx[i] / k += w[idx[i]] * x row i, in order */
    CU_OK(cu->upload(ddst, dst, (size_t)(rows * d) * 4));
    memcpy(want, dst, (size_t)(rows * d) * 4);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) want[(idx[i] / k) * d + j] += wt[idx[i]] * src[i * d + j];
    CU_OK(cu->combine_rows(ddst, dsrc, d, di, k, dw, n, NULL));
    from_dev(got, ddst, (size_t)(rows * d) * 4);
    assert_memory_equal(got, want, (size_t)(rows * d) * 4);
    /* no index: row i += w[i] * x row i */
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < d; j++) want[i * d + j] += wt[i] * src[i * d + j];
    CU_OK(cu->combine_rows(ddst, dsrc, d, NULL, 1, dw, rows, NULL));
    from_dev(got, ddst, (size_t)(rows * d) * 4);
    assert_memory_equal(got, want, (size_t)(rows * d) * 4);
    /* scatter of distinct rows: a permutation */
    int64_t perm[20];
    for (int64_t i = 0; i < rows; i++) perm[i] = (i * 7) % rows;
    for (int64_t i = 0; i < rows; i++) memcpy(want + perm[i] * d, src + i * d, (size_t)d * 4);
    int64_t *dp = to_dev(perm, sizeof perm);
    CU_OK(cu->scatter_rows(ddst, dsrc, d, dp, rows, NULL));
    from_dev(got, ddst, (size_t)(rows * d) * 4);
    assert_memory_equal(got, want, (size_t)(rows * d) * 4);
    CU_OK(cu->free(ddst));
    CU_OK(cu->free(dsrc));
    CU_OK(cu->free(dw));
    CU_OK(cu->free(di));
    CU_OK(cu->free(dp));
    free(src);
    free(wt);
    free(dst);
    free(want);
    free(got);
}

/* Router softmax and top-k, against core/forward.c's loops (ties: lower id first) */
static void route_ref(const float *logits, int64_t rows, int64_t E, int64_t k, bool norm,
                      float *probs, float *ids, float *mix) {
    for (int64_t i = 0; i < rows; i++) {
        const float *xi = logits + i * E;
        float *p = probs + i * E;
        float mx = -INFINITY;
        for (int64_t j = 0; j < E; j++) mx = xi[j] > mx ? xi[j] : mx;
        double sum = 0;
        for (int64_t j = 0; j < E; j++) sum += exp((double)xi[j] - mx);
        for (int64_t j = 0; j < E; j++)
            p[j] = mx == -INFINITY ? 0.0f : (float)(exp((double)xi[j] - mx) / sum);
        bool taken[64] = {false};
        double s = 0;
        for (int64_t j = 0; j < k; j++) {
            int64_t best = -1;
            for (int64_t e = 0; e < E; e++)
                if (!taken[e] && (best < 0 || p[e] > p[best])) best = e;
            taken[best] = true;
            ids[i * k + j] = (float)best;
            mix[i * k + j] = p[best];
            s += p[best];
        }
        if (norm && s > 0)
            for (int64_t j = 0; j < k; j++) mix[i * k + j] = (float)((double)mix[i * k + j] / s);
    }
}

static void test_moe_route(void **state) {
    need_gpu(state);
    kt_rng r = {205};
    const int64_t rows = 300, E = 60, k = 4;
    float *lg = kt_alloc(rows * E), *pc = kt_alloc(rows * E), *pg = kt_alloc(rows * E);
    float *ic = kt_alloc(rows * k), *mc = kt_alloc(rows * k), *ig = kt_alloc(rows * k);
    float *mg = kt_alloc(rows * k);
    kt_fill(&r, lg, rows * E, -4, 4);
    for (int64_t e = 0; e < E; e++) lg[e] = 1.0f;            /* row 0: all tied */
    for (int64_t e = 0; e < E; e++) lg[E + e] = -INFINITY;   /* row 1: every expert banned */
    lg[2 * E + 7] = lg[2 * E + 3] = 9.0f;                   /* row 2: a tie at the top */
    float *dl = to_dev(lg, (size_t)(rows * E) * 4), *dp = to_dev(NULL, (size_t)(rows * E) * 4);
    float *di = to_dev(NULL, (size_t)(rows * k) * 4), *dm = to_dev(NULL, (size_t)(rows * k) * 4);
    for (int norm = 0; norm < 2; norm++) {
        route_ref(lg, rows, E, k, norm, pc, ic, mc);
        CU_OK(cu->softmax_rows_f64(dl, rows, E, dp, NULL));
        CU_OK(cu->moe_route(dp, rows, E, k, norm, di, dm, NULL));
        from_dev(pg, dp, (size_t)(rows * E) * 4);
        from_dev(ig, di, (size_t)(rows * k) * 4);
        from_dev(mg, dm, (size_t)(rows * k) * 4);
        expect_close(pg, pc, rows * E, "router softmax");
        /* ids exactly (the probabilities agree closely; ties resolve by id) */
        assert_memory_equal(ig, ic, (size_t)(rows * k) * 4);
        expect_close(mg, mc, rows * k, "mixing weights");
    }
    assert_true(ig[2 * k] == 3.0f && ig[2 * k + 1] == 7.0f);
    assert_true(ig[0] == 0.0f && ig[1] == 1.0f);
    CU_OK(cu->free(dl));
    CU_OK(cu->free(dp));
    CU_OK(cu->free(di));
    CU_OK(cu->free(dm));
    free(lg);
    free(pc);
    free(pg);
    free(ic);
    free(mc);
    free(ig);
    free(mg);
}

/* Greedy per row against hk_sample (greedy: o NULL) */
static void test_argmax_rows(void **state) {
    need_gpu(state);
    kt_rng r = {206};
    const int64_t rows = 9, n = 50257;
    float *x = kt_alloc(rows * n);
    kt_fill(&r, x, rows * n, -10, 10);
    x[1 * n + 17] = x[1 * n + 40000] = 99.0f;          /* a tie: the lower id */
    for (int64_t j = 0; j < n; j++) x[2 * n + j] = -INFINITY; /* all -inf: 0 */
    x[3 * n + n - 1] = INFINITY;
    x[4 * n + 123] = NAN;                              /* NaN row: -1 */
    float *dx = to_dev(x, (size_t)(rows * n) * 4);
    int32_t *dout = to_dev(NULL, (size_t)rows * 4), got[9];
    CU_OK(cu->argmax_rows(dx, rows, n, dout, NULL));
    from_dev(got, dout, sizeof got);
    for (int64_t i = 0; i < rows; i++) {
        int32_t want = -1;
        if (hk_sample(x + i * n, n, NULL, NULL, &want) != HK_OK) want = -1;
        assert_int_equal(got[i], want);
    }
    assert_int_equal(got[1], 17);
    assert_int_equal(got[2], 0);
    assert_int_equal(got[4], -1);
    CU_OK(cu->free(dx));
    CU_OK(cu->free(dout));
    free(x);
}

/* Weights converted on the device, across a staging piece boundary; device copies */
static void test_upload_convert(void **state) {
    need_gpu(state);
    kt_rng r = {207};
    const int64_t n = (int64_t)(HK_CU_UPLOAD_STAGE / 4) + 1001;
    float *x = kt_alloc(n), *back = kt_alloc(n), *want = kt_alloc(n);
    kt_fill(&r, x, n, -100, 100);
    for (int64_t i = 0; i < n; i++) want[i] = host_bf16(x[i]);
    void *lp = to_dev(NULL, (size_t)n * 2);
    float *wide = to_dev(NULL, (size_t)n * 4), *copy = to_dev(NULL, (size_t)n * 4);
    CU_OK(cu->upload_convert(lp, HK_CU_BF16, x, HK_CU_F32, n, NULL));
    CU_OK(cu->convert(wide, HK_CU_F32, lp, HK_CU_BF16, n, NULL));
    CU_OK(cu->copy_async(copy, wide, (size_t)n * 4, NULL));
    from_dev(back, copy, (size_t)n * 4);
    assert_memory_equal(back, want, (size_t)n * 4);
    /* same type: a plain upload */
    CU_OK(cu->upload_convert(wide, HK_CU_F32, x, HK_CU_F32, n, NULL));
    from_dev(back, wide, (size_t)n * 4);
    assert_memory_equal(back, x, (size_t)n * 4);
    CU_OK(cu->free(lp));
    CU_OK(cu->free(wide));
    CU_OK(cu->free(copy));
    free(x);
    free(back);
    free(want);
}

/* Refusals decided before any launch: these run wherever the module loads. */
static void test_op_argument_checks(void **state) {
    (void)state;
    need_module();
    float f = 0.0f;
    int32_t i32 = 0;
    assert_int_not_equal(cu->softcap(&f, 1, 0.0f, NULL), 0);
    assert_int_not_equal(cu->softcap(&f, 1, -1.0f, NULL), 0);
    assert_int_not_equal(cu->moe_route(&f, 1, 4, 5, false, &f, &f, NULL), 0); /* k > E */
    assert_int_not_equal(cu->moe_route(&f, 1, 0, 1, false, &f, &f, NULL), 0);
    assert_int_not_equal(cu->moe_route(&f, 1, HK_CU_MOE_MAX_EXPERTS + 1, 1, false, &f, &f, NULL),
                         0);
    assert_int_not_equal(cu->argmax_rows(&f, 1, 0, &i32, NULL), 0);
    assert_int_not_equal(cu->scale_bias(&f, 1, 1, NULL, NULL, NULL), 0);
    assert_int_not_equal(cu->norm_stats(&f, 1, 1, false, 1e-5, NULL, &f, NULL), 0);
    int64_t i64 = 0;
    assert_int_not_equal(cu->scatter_rows(&f, &f, 1, NULL, 1, NULL), 0);
    assert_int_not_equal(cu->gather_rows(&f, &f, 1, &i64, 0, 1, NULL), 0); /* div 0 */
    assert_int_not_equal(cu->combine_rows(&f, &f, 1, NULL, 1, NULL, 1, NULL), 0); /* no w */
    assert_int_not_equal(cu->upload_convert(&f, (hk_cu_dtype)3, &f, HK_CU_F32, 1, NULL), 0);
    assert_int_not_equal(cu->upload_convert(NULL, HK_CU_F32, &f, HK_CU_F32, 1, NULL), 0);
    /* nothing to do is success, pointers untouched */
    assert_int_equal(cu->moe_route(NULL, 0, 4, 2, false, NULL, NULL, NULL), 0);
    assert_int_equal(cu->argmax_rows(NULL, 0, 5, NULL, NULL), 0);
    assert_int_equal(cu->upload_convert(NULL, HK_CU_F32, NULL, HK_CU_F32, 0, NULL), 0);
    assert_int_equal(cu->copy_async(NULL, NULL, 0, NULL), 0);
    assert_int_equal(cu->combine_rows(NULL, NULL, 4, NULL, 1, NULL, 0, NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_argument_checks), cmocka_unit_test(test_rmsnorm_offset),
        cmocka_unit_test(test_norm_pieces),        cmocka_unit_test(test_scale_softcap_sigmoid),
        cmocka_unit_test(test_dispatch_rows),       cmocka_unit_test(test_moe_route),
        cmocka_unit_test(test_argmax_rows),        cmocka_unit_test(test_upload_convert),
    };
    if (hk_cuda_module(&cu) != HK_OK)
        print_message("CUDA module not loaded, every test skips: %s\n", hk_last_error());
    else
        print_message("CUDA module: %s\n", hk_cuda_module_path());
    return cmocka_run_group_tests(tests, NULL, NULL);
}
