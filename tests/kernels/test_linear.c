/* hk_k_linear against naive double loops: both weight layouts, strided W and y, with and
 * without bias, n = 1 (the gemv path) and n > 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "kernels/cpu/kernels.h"
#include "kt_util.h"

#define SENTINEL -777.0f

static void check_linear(kt_rng *r, int64_t n, int64_t in, int64_t out, bool in_out,
                         int64_t wpad, int64_t ypad, bool bias) {
    const int64_t ldw = (in_out ? out : in) + wpad, ldy = out + ypad;
    const int64_t wrows = in_out ? in : out;
    float *x = kt_alloc(n * in), *w = kt_alloc(wrows * ldw), *b = kt_alloc(out);
    float *y = kt_alloc(n * ldy);
    kt_fill(r, x, n * in, -1, 1);
    kt_fill(r, w, wrows * ldw, -1, 1);
    kt_fill(r, b, out, -1, 1);
    for (int64_t i = 0; i < n * ldy; i++) y[i] = SENTINEL;
    hk_k_linear(x, n, in, w, ldw, in_out, bias ? b : NULL, out, y, ldy);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t o = 0; o < out; o++) {
            double acc = bias ? b[o] : 0.0;
            for (int64_t c = 0; c < in; c++)
                acc += (double)x[i * in + c] * (in_out ? w[c * ldw + o] : w[o * ldw + c]);
            const double got = y[i * ldy + o];
            if (!(fabs(got - acc) <= 1e-5 * (1.0 + fabs(acc)) * (1.0 + sqrt((double)in) / 8))) {
                print_error("linear n=%lld in=%lld out=%lld in_out=%d bias=%d: y[%lld,%lld]=%g "
                            "want %g\n",
                            (long long)n, (long long)in, (long long)out, in_out, bias,
                            (long long)i, (long long)o, got, acc);
                fail();
            }
        }
        for (int64_t o = out; o < ldy; o++) assert_true(y[i * ldy + o] == SENTINEL);
    }
    free(x);
    free(w);
    free(b);
    free(y);
}

static void test_linear(void **state) {
    (void)state;
    kt_rng r = {1};
    static const int64_t ns[] = {1, 2, 7, 64};
    static const int64_t dims[][2] = {{1, 1}, {5, 3}, {64, 96}, {130, 33}, {256, 512}};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof dims / sizeof *dims; b++)
            for (int layout = 0; layout < 2; layout++)
                for (int bias = 0; bias < 2; bias++) {
                    check_linear(&r, ns[a], dims[b][0], dims[b][1], layout, 0, 0, bias);
                    check_linear(&r, ns[a], dims[b][0], dims[b][1], layout, 3, 5, bias);
                }
}

/* The fused-QKV use: one [in, 3*out] weight, each projection a column slice with ldw. */
static void test_linear_column_slice(void **state) {
    (void)state;
    kt_rng r = {2};
    const int64_t n = 10, in = 48, out = 16, ldw = 3 * out;
    float *x = kt_alloc(n * in), *w = kt_alloc(in * ldw), *y = kt_alloc(n * out);
    kt_fill(&r, x, n * in, -1, 1);
    kt_fill(&r, w, in * ldw, -1, 1);
    for (int part = 0; part < 3; part++) {
        hk_k_linear(x, n, in, w + part * out, ldw, true, NULL, out, y, out);
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < out; o++) {
                double acc = 0;
                for (int64_t c = 0; c < in; c++)
                    acc += (double)x[i * in + c] * w[c * ldw + part * out + o];
                assert_true(fabs(y[i * out + o] - acc) < 1e-4);
            }
    }
    free(x);
    free(w);
    free(y);
}

/* Products large enough to be split across threads by output columns (odd widths, the gemv
 * path too), with 1 and 2 threads. */
static void test_linear_threaded(void **state) {
    (void)state;
    kt_rng r = {3};
    const int saved = hk_k_get_threads();
    for (int t = 1; t <= 2; t++) {
        hk_k_set_threads(t);
        for (int layout = 0; layout < 2; layout++) {
            check_linear(&r, 1, 1000, 1037, layout, 3, 5, true);
            check_linear(&r, 5, 700, 333, layout, 0, 0, false);
            check_linear(&r, 3, 1024, 2049, layout, 1, 0, true);
        }
    }
    hk_k_set_threads(saved);
}

/* The one-row kernels (gemv_*.c) in both versions: every in from 1 to 41 (the 16-, 8- and
 * masked-tail steps) against out from 1 to 9 (groups of four outputs and the rest), both
 * layouts, strided W, with and without bias; then a decode-sized product whose result must
 * not move by one bit between 1 and 4 threads (each output's sum has one order). */
static void test_gemv_kernels(void **state) {
    (void)state;
    kt_rng r = {4};
    for (int generic = 0; generic < 2; generic++) {
        hk_k_linear_force_generic(generic);
        for (int64_t in = 1; in <= 41; in++)
            for (int64_t out = 1; out <= 9; out++)
                for (int layout = 0; layout < 2; layout++)
                    check_linear(&r, 1, in, out, layout, in % 3, out % 2, (in + out) % 2);
        for (int layout = 0; layout < 2; layout++) {
            check_linear(&r, 1, 577, 1543, layout, 7, 1, true);
            check_linear(&r, 1, 1536, 576, layout, 0, 0, false);
        }
    }
    const int64_t in = 960, out = 2051;
    const int saved = hk_k_get_threads();
    for (int generic = 0; generic < 2; generic++) {
        hk_k_linear_force_generic(generic);
        for (int layout = 0; layout < 2; layout++) {
            const int64_t ldw = layout ? out : in;
            float *x = kt_alloc(in), *w = kt_alloc(in * out), *b = kt_alloc(out);
            float *y1 = kt_alloc(out), *y4 = kt_alloc(out);
            kt_fill(&r, x, in, -1, 1);
            kt_fill(&r, w, in * out, -1, 1);
            kt_fill(&r, b, out, -1, 1);
            hk_k_set_threads(1);
            hk_k_linear(x, 1, in, w, ldw, layout, b, out, y1, out);
            hk_k_set_threads(4);
            hk_k_linear(x, 1, in, w, ldw, layout, b, out, y4, out);
            assert_memory_equal(y1, y4, (size_t)out * sizeof(float));
            free(x);
            free(w);
            free(b);
            free(y1);
            free(y4);
        }
    }
    hk_k_set_threads(saved);
    hk_k_linear_force_generic(false);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemv_kernels),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_column_slice),
        cmocka_unit_test(test_linear_threaded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
