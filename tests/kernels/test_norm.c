/* LayerNorm and RMSNorm against double-precision loops, including the per-row scale
 * (hook_scale) and in-place use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/cpu/kernels.h"
#include "kt_util.h"

static void check_norm(kt_rng *r, bool rms, int64_t n, int64_t d, bool bias, bool inplace,
                       float offset) {
    float *x = kt_alloc(n * d), *w = kt_alloc(d), *b = kt_alloc(d), *y = kt_alloc(n * d);
    float *scale = kt_alloc(n);
    kt_fill(r, x, n * d, -2, 2);
    for (int64_t i = 0; i < n * d; i++) x[i] += offset; /* a large mean stresses the variance */
    kt_fill(r, w, d, 0.5f, 1.5f);
    kt_fill(r, b, d, -0.5f, 0.5f);
    float *xin = kt_alloc(n * d);
    memcpy(xin, x, (size_t)(n * d) * sizeof(float));
    float *dst = inplace ? x : y;
    const float eps = 1e-5f;
    if (rms)
        hk_k_rmsnorm(x, n, d, w, eps, dst, scale);
    else
        hk_k_layernorm(x, n, d, w, bias ? b : NULL, eps, dst, scale);
    for (int64_t i = 0; i < n; i++) {
        const float *xr = xin + i * d;
        double mean = 0, var = 0;
        if (!rms) {
            for (int64_t j = 0; j < d; j++) mean += xr[j];
            mean /= d;
        }
        for (int64_t j = 0; j < d; j++) var += (xr[j] - mean) * (xr[j] - mean);
        const double sc = sqrt(var / d + eps);
        assert_true(fabs(scale[i] - sc) <= 1e-6 * sc);
        for (int64_t j = 0; j < d; j++) {
            const double want = (xr[j] - mean) / sc * w[j] + (!rms && bias ? b[j] : 0.0);
            const double got = dst[i * d + j];
            if (!(fabs(got - want) <= 2e-6 * (1 + fabs(want)))) {
                print_error("%s n=%lld d=%lld row %lld col %lld: %g want %g\n",
                            rms ? "rmsnorm" : "layernorm", (long long)n, (long long)d,
                            (long long)i, (long long)j, got, want);
                fail();
            }
        }
    }
    /* scale_out may be NULL */
    if (rms)
        hk_k_rmsnorm(xin, n, d, w, eps, y, NULL);
    else
        hk_k_layernorm(xin, n, d, w, bias ? b : NULL, eps, y, NULL);
    free(x);
    free(w);
    free(b);
    free(y);
    free(scale);
    free(xin);
}

static void test_layernorm(void **state) {
    (void)state;
    kt_rng r = {10};
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {17, 64}, {64, 768}, {200, 1000}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int v = 0; v < 4; v++)
            check_norm(&r, false, shapes[s][0], shapes[s][1], v & 1, v & 2, 0.0f);
    check_norm(&r, false, 8, 512, true, false, 300.0f);
}

static void test_rmsnorm(void **state) {
    (void)state;
    kt_rng r = {11};
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {17, 64}, {64, 768}, {200, 1000}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int v = 0; v < 2; v++) check_norm(&r, true, shapes[s][0], shapes[s][1], false, v, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_rmsnorm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
