/* Activations against the libm formulas (the gelu_new and gelu formulas are PyTorch's), the
 * element-wise add/mul and the embedding lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/cpu/kernels.h"
#include "kt_util.h"

/* sizes below and above the threading threshold */
static const int64_t sizes[] = {1, 17, 1000, 200003};

typedef void (*act_fn)(float *, int64_t);

static double ref_gelu_new(double x) {
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double ref_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double ref_silu(double x) { return x / (1.0 + exp(-x)); }
static double ref_relu(double x) { return x > 0 ? x : 0; }

static void check_act(act_fn fn, double (*ref)(double), const char *name) {
    kt_rng r = {21};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const int64_t n = sizes[s];
        float *x = kt_alloc(n), *x0 = kt_alloc(n);
        kt_fill(&r, x, n, -8, 8);
        if (n > 4) {
            x[0] = 0.0f;
            x[1] = -30.0f;
            x[2] = 30.0f;
            x[3] = -100.0f;
        }
        memcpy(x0, x, (size_t)n * sizeof(float));
        fn(x, n);
        for (int64_t i = 0; i < n; i++) {
            const double want = ref(x0[i]);
            if (!(fabs(x[i] - want) <= 1e-6 * (1 + fabs(want)))) {
                print_error("%s(%g) = %g, want %g\n", name, (double)x0[i], (double)x[i], want);
                fail();
            }
        }
        free(x);
        free(x0);
    }
}

static void test_gelu_new(void **state) {
    (void)state;
    check_act(hk_k_gelu_new, ref_gelu_new, "gelu_new");
    /* and bit-exact against the f32 formula the kernel promises */
    kt_rng r = {22};
    float x[512], y[512];
    kt_fill(&r, x, 512, -6, 6);
    memcpy(y, x, sizeof x);
    hk_k_gelu_new(y, 512);
    const float c = (float)sqrt(2.0 / M_PI);
    for (int i = 0; i < 512; i++) {
        const float v = x[i];
        const float want = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * (v * v * v))));
        assert_true(y[i] == want);
    }
}
static void test_gelu(void **state) {
    (void)state;
    check_act(hk_k_gelu, ref_gelu, "gelu");
}
static void test_silu(void **state) {
    (void)state;
    check_act(hk_k_silu, ref_silu, "silu");
}
static void test_relu(void **state) {
    (void)state;
    check_act(hk_k_relu, ref_relu, "relu");
}

static void test_add_mul(void **state) {
    (void)state;
    kt_rng r = {23};
    const int64_t n = (1 << 20) + 3;
    float *a = kt_alloc(n), *b = kt_alloc(n), *c = kt_alloc(n);
    kt_fill(&r, a, n, -1, 1);
    kt_fill(&r, b, n, -1, 1);
    memcpy(c, a, (size_t)n * sizeof(float));
    hk_k_add(c, b, n);
    for (int64_t i = 0; i < n; i++) assert_true(c[i] == a[i] + b[i]);
    memcpy(c, a, (size_t)n * sizeof(float));
    hk_k_mul(c, b, n);
    for (int64_t i = 0; i < n; i++) assert_true(c[i] == a[i] * b[i]);
    hk_k_add(c, b, 0);
    free(a);
    free(b);
    free(c);
}

static void test_embed(void **state) {
    (void)state;
    kt_rng r = {24};
    const int64_t vocab = 50, d = 33, n = 19;
    float *table = kt_alloc(vocab * d), *out = kt_alloc(n * d);
    int32_t ids[19];
    kt_fill(&r, table, vocab * d, -1, 1);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)kt_int(&r, vocab);
    ids[0] = 0;
    ids[1] = (int32_t)vocab - 1;
    hk_k_embed(table, d, ids, n, out);
    for (int64_t i = 0; i < n; i++)
        assert_memory_equal(out + i * d, table + ids[i] * d, (size_t)d * sizeof(float));
    free(table);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gelu_new), cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_silu),     cmocka_unit_test(test_relu),
        cmocka_unit_test(test_add_mul),  cmocka_unit_test(test_embed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
