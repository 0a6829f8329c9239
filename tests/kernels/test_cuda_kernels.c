/* Every CUDA kernel against its CPU kernel on random inputs (NMSE <= 1e-6). Skips where no
 * GPU is present; must pass where one is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kt_util.h"

#define NMSE_MAX 1e-6

/* Σ(a-b)² / Σb² (plain squared error when b is all zeros) */
static double nmse(const float *a, const float *b, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0.0 ? num / den : num;
}

#define CU_OK(call)                                                                         \
    do {                                                                                    \
        const int err_ = (call);                                                            \
        if (err_ != 0) {                                                                    \
            print_error("%s: %s\n", #call, hk_cu_error_string(err_));                       \
            fail();                                                                         \
        }                                                                                   \
    } while (0)

static void *to_dev(const void *host, size_t bytes) {
    void *p = NULL;
    CU_OK(hk_cu_malloc(&p, bytes ? bytes : 4));
    if (bytes) CU_OK(hk_cu_upload(p, host, bytes));
    return p;
}

static void from_dev(void *host, const void *dev, size_t bytes) {
    CU_OK(hk_cu_sync(NULL));
    CU_OK(hk_cu_download(host, dev, bytes));
}

static void expect_close(const float *gpu, const float *cpu, int64_t n, const char *what) {
    const double e = nmse(gpu, cpu, n);
    if (!(e <= NMSE_MAX)) {
        print_error("%s: NMSE %g > %g\n", what, e, NMSE_MAX);
        fail();
    }
}

static int need_gpu(void **state) {
    (void)state;
    if (hk_cu_device_count() == 0) skip();
    return 0;
}

static void test_device_count(void **state) {
    (void)state;
    /* must not crash without a driver or a GPU */
    int n = -1;
    const int err = hk_cu_device_probe(&n);
    assert_int_equal(n, hk_cu_device_count());
    assert_true(n >= 0);
    print_message("CUDA devices: %d (%s)\n", n, hk_cu_error_name(err));
    /* a GPU hidden by ASan's shadow gap must not pass as "no GPU" */
    if (strcmp(hk_cu_error_name(err), "cudaErrorMemoryAllocation") == 0) {
        print_error("CUDA init ran out of memory: under ASan set "
                    "ASAN_OPTIONS=protect_shadow_gap=0\n");
        fail();
    }
}

static void test_norms(void **state) {
    need_gpu(state);
    kt_rng r = {101};
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {64, 768}, {129, 4096}, {5, 5000}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t n = shapes[s][0], d = shapes[s][1];
        float *x = kt_alloc(n * d), *w = kt_alloc(d), *b = kt_alloc(d);
        float *yc = kt_alloc(n * d), *yg = kt_alloc(n * d), *sc = kt_alloc(n), *sg = kt_alloc(n);
        kt_fill(&r, x, n * d, -3, 3);
        kt_fill(&r, w, d, 0.5f, 1.5f);
        kt_fill(&r, b, d, -1, 1);
        float *dx = to_dev(x, (size_t)(n * d) * 4), *dw = to_dev(w, (size_t)d * 4);
        float *db = to_dev(b, (size_t)d * 4), *dy = to_dev(NULL, (size_t)(n * d) * 4);
        float *ds = to_dev(NULL, (size_t)n * 4);
        for (int kind = 0; kind < 3; kind++) {
            const char *what = kind == 0 ? "layernorm" : kind == 1 ? "layernorm no bias" : "rmsnorm";
            if (kind < 2) {
                hk_k_layernorm(x, n, d, w, kind == 0 ? b : NULL, 1e-5f, yc, sc);
                CU_OK(hk_cu_layernorm(dx, n, d, dw, kind == 0 ? db : NULL, 1e-5f, dy, ds, NULL));
            } else {
                hk_k_rmsnorm(x, n, d, w, 1e-6f, yc, sc);
                CU_OK(hk_cu_rmsnorm(dx, n, d, dw, 1e-6f, dy, ds, NULL));
            }
            from_dev(yg, dy, (size_t)(n * d) * 4);
            from_dev(sg, ds, (size_t)n * 4);
            expect_close(yg, yc, n * d, what);
            expect_close(sg, sc, n, what);
        }
        /* in place, no scale */
        CU_OK(hk_cu_rmsnorm(dx, n, d, dw, 1e-6f, dx, NULL, NULL));
        from_dev(yg, dx, (size_t)(n * d) * 4);
        hk_k_rmsnorm(x, n, d, w, 1e-6f, yc, NULL);
        expect_close(yg, yc, n * d, "rmsnorm in place");
        CU_OK(hk_cu_free(dx));
        CU_OK(hk_cu_free(dw));
        CU_OK(hk_cu_free(db));
        CU_OK(hk_cu_free(dy));
        CU_OK(hk_cu_free(ds));
        free(x);
        free(w);
        free(b);
        free(yc);
        free(yg);
        free(sc);
        free(sg);
    }
}

typedef int (*cu_act)(float *, int64_t, void *);
typedef void (*cpu_act)(float *, int64_t);

static void test_activations(void **state) {
    need_gpu(state);
    static const struct {
        cu_act gpu;
        cpu_act cpu;
        const char *name;
    } acts[] = {{hk_cu_gelu_new, hk_k_gelu_new, "gelu_new"},
                {hk_cu_gelu, hk_k_gelu, "gelu"},
                {hk_cu_silu, hk_k_silu, "silu"},
                {hk_cu_relu, hk_k_relu, "relu"}};
    kt_rng r = {102};
    static const int64_t sizes[] = {1, 1000, 3 * 1024 * 1024 + 7};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const int64_t n = sizes[s];
        float *x = kt_alloc(n), *yc = kt_alloc(n), *yg = kt_alloc(n);
        kt_fill(&r, x, n, -10, 10);
        float *dx = to_dev(NULL, (size_t)n * 4);
        for (size_t a = 0; a < sizeof acts / sizeof *acts; a++) {
            memcpy(yc, x, (size_t)n * 4);
            acts[a].cpu(yc, n);
            CU_OK(hk_cu_upload(dx, x, (size_t)n * 4));
            CU_OK(acts[a].gpu(dx, n, NULL));
            from_dev(yg, dx, (size_t)n * 4);
            expect_close(yg, yc, n, acts[a].name);
        }
        CU_OK(hk_cu_free(dx));
        free(x);
        free(yc);
        free(yg);
    }
}

static void test_add_mul(void **state) {
    need_gpu(state);
    kt_rng r = {103};
    const int64_t n = 1000003;
    float *a = kt_alloc(n), *b = kt_alloc(n), *c = kt_alloc(n), *g = kt_alloc(n);
    kt_fill(&r, a, n, -1, 1);
    kt_fill(&r, b, n, -1, 1);
    float *da = to_dev(a, (size_t)n * 4), *db = to_dev(b, (size_t)n * 4);
    memcpy(c, a, (size_t)n * 4);
    hk_k_add(c, b, n);
    CU_OK(hk_cu_add(da, db, n, NULL));
    from_dev(g, da, (size_t)n * 4);
    expect_close(g, c, n, "add");
    hk_k_mul(c, b, n);
    CU_OK(hk_cu_mul(da, db, n, NULL));
    from_dev(g, da, (size_t)n * 4);
    expect_close(g, c, n, "mul");
    CU_OK(hk_cu_free(da));
    CU_OK(hk_cu_free(db));
    free(a);
    free(b);
    free(c);
    free(g);
}

static void test_rope(void **state) {
    need_gpu(state);
    kt_rng r = {104};
    static const int64_t cfg[][5] = {/* n, heads, d_head, rot, pad */
                                     {1, 1, 2, 2, 0},
                                     {33, 12, 64, 64, 0},
                                     {17, 8, 128, 32, 2 * 8 * 128},
                                     {257, 4, 80, 20, 3}};
    for (size_t s = 0; s < sizeof cfg / sizeof *cfg; s++) {
        const int64_t n = cfg[s][0], heads = cfg[s][1], dh = cfg[s][2], rot = cfg[s][3];
        const int64_t ld = heads * dh + cfg[s][4], half = rot / 2;
        float *x = kt_alloc(n * ld), *xc = kt_alloc(n * ld), *xg = kt_alloc(n * ld);
        float *cs = kt_alloc(n * half), *sn = kt_alloc(n * half);
        kt_fill(&r, x, n * ld, -2, 2);
        for (int64_t i = 0; i < n * half; i++) {
            const float th = kt_uniform(&r, -50, 50);
            cs[i] = cosf(th);
            sn[i] = sinf(th);
        }
        memcpy(xc, x, (size_t)(n * ld) * 4);
        hk_k_rope(xc, n, heads, dh, ld, rot, cs, sn);
        float *dx = to_dev(x, (size_t)(n * ld) * 4);
        float *dc = to_dev(cs, (size_t)(n * half) * 4), *ds = to_dev(sn, (size_t)(n * half) * 4);
        CU_OK(hk_cu_rope(dx, n, heads, dh, ld, rot, dc, ds, NULL));
        from_dev(xg, dx, (size_t)(n * ld) * 4);
        expect_close(xg, xc, n * ld, "rope");
        CU_OK(hk_cu_free(dx));
        CU_OK(hk_cu_free(dc));
        CU_OK(hk_cu_free(ds));
        free(x);
        free(xc);
        free(xg);
        free(cs);
        free(sn);
    }
}

static void test_embed(void **state) {
    need_gpu(state);
    kt_rng r = {105};
    const int64_t vocab = 1000, d = 96, n = 77;
    float *table = kt_alloc(vocab * d), *oc = kt_alloc(n * d), *og = kt_alloc(n * d);
    int32_t ids[77];
    kt_fill(&r, table, vocab * d, -1, 1);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)kt_int(&r, vocab);
    hk_k_embed(table, d, ids, n, oc);
    float *dt = to_dev(table, (size_t)(vocab * d) * 4), *dout = to_dev(NULL, (size_t)(n * d) * 4);
    int32_t *di = to_dev(ids, sizeof ids);
    CU_OK(hk_cu_embed(dt, d, di, n, dout, NULL));
    from_dev(og, dout, (size_t)(n * d) * 4);
    assert_memory_equal(og, oc, (size_t)(n * d) * 4);
    CU_OK(hk_cu_free(dt));
    CU_OK(hk_cu_free(dout));
    CU_OK(hk_cu_free(di));
    free(table);
    free(oc);
    free(og);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_count), cmocka_unit_test(test_norms),
        cmocka_unit_test(test_activations),  cmocka_unit_test(test_add_mul),
        cmocka_unit_test(test_rope),         cmocka_unit_test(test_embed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
