/* Activations against double-precision libm (the gelu_new and gelu formulas are PyTorch's) —
 * both SIMD paths, a sweep over every float magnitude, the specials — the element-wise add/mul
 * and the embedding lookup. */
#include <float.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/cpu/kernels.h"
#include "kt_util.h"

/* sizes below and above the threading threshold */
static const int64_t sizes[] = {1, 17, 1000, 200003};

typedef void (*act_fn)(float *, int64_t);

/* References in double, in forms without cancellation (1 + tanh(u) = 2 / (1 + exp(-2u)),
 * 1 + erf(z) = erfc(-z)), so they stay exact in the tails where the textbook forms do not. */
static double ref_gelu_new(double x) {
    return x / (1.0 + exp(-2.0 * sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double ref_gelu(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }
static double ref_silu(double x) { return x / (1.0 + exp(-x)); }
static double ref_relu(double x) { return x > 0 ? x : 0; }

/* The libm formulas in double, for the specials (NaN, ±inf, signed zeros) they define. */
static double formula_gelu_new(double x) {
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double formula_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

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

/* ---- the vectorized activations against double-precision libm ----
 * Over a sweep of float bit patterns (every finite magnitude from subnormals to FLT_MAX, both
 * signs), a dense grid on [-12, 12], tiny and huge |x| and the specials:
 *   error <= 1e-6 (1 + |want|)                       everywhere (the absolute contract)
 *   error <= 1e-6 |want|    where |want| >= 1e-30 and x >= -3 (or every x for silu)
 *   error <= 2e-5 |want|    where |want| >= 1e-30 (the far negative tail, where the float
 *                           rounding of the exp argument -2u or -z² dominates)
 *   NaN exactly where the libm formula gives NaN, ±inf where it gives ±inf, and zeros with
 *   the formula's sign where it gives zero. */
typedef struct {
    const char *name;
    act_fn fn;
    double (*ref)(double);     /* accurate value */
    double (*formula)(double); /* the libm formula, for specials */
    double rel_from;           /* the 1e-6 relative bound holds for x >= rel_from */
} act_case;

static const act_case act_cases[] = {
    {"gelu_new", hk_k_gelu_new, ref_gelu_new, formula_gelu_new, -3.0},
    {"gelu", hk_k_gelu, ref_gelu, formula_gelu, -3.0},
    {"silu", hk_k_silu, ref_silu, ref_silu, -INFINITY},
};

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Sweep inputs: bit patterns (step 4099: ~1M values, every exponent, varied mantissas), a grid
 * on [-12, 12] with step 2^-10, then specials and edges. */
static int64_t sweep_inputs(float **out) {
    const uint64_t step = 4099;
    const int64_t n_bits = (int64_t)((1ull << 32) / step) + 1;
    const int64_t n_grid = 24 * 1024 + 1;
    const float specials[] = {0.0f,      -0.0f,     INFINITY,  -INFINITY, NAN,        -NAN,
                              FLT_MAX,   -FLT_MAX,  FLT_MIN,   -FLT_MIN,  1e-45f,     -1e-45f,
                              1e-30f,    -1e-30f,   1e-7f,     -1e-7f,    5.0f,       -5.0f,
                              9.0f,      -9.0f,     10.5f,     -10.5f,    13.5f,      -13.5f,
                              88.72f,    -88.72f,   89.0f,     -89.0f,    104.0f,     -104.0f,
                              7e12f,     -7e12f,    1e20f,     -1e20f,    3.4e38f,    -3.4e38f};
    const int64_t n_sp = (int64_t)(sizeof specials / sizeof *specials);
    float *x = kt_alloc(n_bits + n_grid + n_sp);
    int64_t n = 0;
    for (uint64_t b = 0; b < (1ull << 32); b += step) x[n++] = from_bits((uint32_t)b);
    for (int64_t i = 0; i < n_grid; i++) x[n++] = -12.0f + (float)i / 1024.0f;
    for (int64_t i = 0; i < n_sp; i++) x[n++] = specials[i];
    *out = x;
    return n;
}

static void sweep_one(const act_case *c, const float *x, int64_t n) {
    float *y = kt_alloc(n);
    memcpy(y, x, (size_t)n * sizeof(float));
    c->fn(y, n);
    double max_abs = 0, max_rel = 0, max_rel_tail = 0;
    int bad = 0;
    for (int64_t i = 0; i < n && bad < 10; i++) {
        const double xi = x[i], got = y[i];
        const double f = c->formula(xi);
        const double want = c->ref(xi);
        if (isnan(f) || isinf(f) || isnan(got) || isinf(got) || want == 0.0 || got == 0.0) {
            /* specials: NaN and ±inf exactly where the libm formula has them; zeros signed as
             * the formula's (exact zero) or the value's (underflow) */
            bool ok;
            if (isnan(f) || isinf(f))
                ok = isnan(f) ? isnan(got) : got == f;
            else if (isnan(got) || isinf(got))
                ok = false;
            else if (want == 0.0)
                ok = got == 0.0 && (signbit(got) != 0) == (signbit(f) != 0);
            else
                ok = fabs(want) < 1e-30 && (signbit(got) != 0) == (signbit(want) != 0);
            if (!ok) {
                print_error("%s[%s](%a) = %a, want %a (libm formula: %a)\n", c->name,
                            hk_k_activation_isa(), xi, got, want, f);
                bad++;
            }
            continue;
        }
        const double err = fabs(got - want);
        if (err / (1.0 + fabs(want)) > max_abs) max_abs = err / (1.0 + fabs(want));
        const bool rel_applies = fabs(want) >= 1e-30;
        const double rel = rel_applies ? err / fabs(want) : 0.0;
        if (rel_applies && xi >= c->rel_from && rel > max_rel) max_rel = rel;
        if (rel > max_rel_tail) max_rel_tail = rel;
        if (!(err <= 1e-6 * (1.0 + fabs(want))) ||
            (rel_applies && xi >= c->rel_from && !(rel <= 1e-6)) ||
            (rel_applies && !(rel <= 2e-5))) {
            print_error("%s[%s](%.9g) = %.9g, want %.9g (error %.3g, relative %.3g)\n",
                        c->name, hk_k_activation_isa(), xi, got, want, err, rel);
            bad++;
        }
    }
    print_message("%-8s [%s] %lld inputs: max error/(1+|want|) %.3g, max relative %.3g "
                  "(x >= %g), %.3g (all)\n",
                  c->name, hk_k_activation_isa(), (long long)n, max_abs, max_rel, c->rel_from,
                  max_rel_tail);
    free(y);
    assert_int_equal(bad, 0);
}

/* Each element gets the same bits whatever its position, the vector length and the split across
 * threads: one long call (threaded) against one-element calls (the padded tail). NaNs are
 * NaNs: their sign is not part of the contract (nor is it of libm's). */
static void same_bits_any_n(const act_case *c, const float *x, int64_t n) {
    float *a = kt_alloc(n);
    memcpy(a, x, (size_t)n * sizeof(float));
    c->fn(a, n);
    for (int64_t i = 0; i < n; i += 7) {
        float b = x[i];
        c->fn(&b, 1);
        /* (any NaN matches any NaN: which operand's NaN an instruction passes on, and so
         * its sign, may differ between the unrolled loop and the tail) */
        if (memcmp(&a[i], &b, sizeof b) != 0 && !(isnan(a[i]) && isnan(b))) {
            print_error("%s(%a): %a in a long call, %a alone\n", c->name, (double)x[i],
                        (double)a[i], (double)b);
            fail();
        }
    }
    free(a);
}

static void test_activation_sweep(void **state) {
    (void)state;
    float *x;
    const int64_t n = sweep_inputs(&x);
    for (int generic = 0; generic < 2; generic++) {
        hk_k_activation_force_generic(generic);
        for (size_t k = 0; k < sizeof act_cases / sizeof *act_cases; k++) {
            sweep_one(&act_cases[k], x, n);
            same_bits_any_n(&act_cases[k], x, n);
        }
    }
    hk_k_activation_force_generic(false);
    free(x);
}

static void test_gelu_new(void **state) {
    (void)state;
    check_act(hk_k_gelu_new, ref_gelu_new, "gelu_new");
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
        cmocka_unit_test(test_gelu_new),         cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_silu),             cmocka_unit_test(test_relu),
        cmocka_unit_test(test_activation_sweep), cmocka_unit_test(test_add_mul),
        cmocka_unit_test(test_embed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
