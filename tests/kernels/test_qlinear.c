/* hk_k_qlinear on ggml blocks (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K) against the reference:
 * each weight row dequantized with core/quant.c, dotted in double with the f32 activations.
 * The kernels quantize the activations to 8 bits per block, so the bound is that rounding's
 * own error, Σ |w_j| · d_j / 2 (d_j the step of x_j's block: max |x| / 127), plus f32 slop.
 * Odd sizes: odd counts of blocks per row, odd output rows, 1..8 activation rows, padded
 * weight rows and y strides, with and without bias, one thread and split across the team;
 * the AVX2 and the portable kernels both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <omp.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "kernels/cpu/kernels.h"
#include "kt_util.h"

#define SENTINEL -777.0f

typedef struct {
    uint32_t type;
    int64_t block, bytes;
    int f16_at[2]; /* byte offsets of the block's f16 scales (-1: none) */
} qcase;

static const qcase cases[] = {
    {HK_GGML_Q8_0, 32, 34, {0, -1}},   {HK_GGML_Q4_0, 32, 18, {0, -1}},
    {HK_GGML_Q4_1, 32, 20, {0, 2}},    {HK_GGML_Q4_K, 256, 144, {0, 2}},
    {HK_GGML_Q5_K, 256, 176, {0, 2}},  {HK_GGML_Q6_K, 256, 210, {208, -1}},
};

/* random blocks: random bytes, then scales of a sensible size in the f16 fields */
static void fill_blocks(kt_rng *r, const qcase *c, uint8_t *row, int64_t nb) {
    for (int64_t i = 0; i < nb * c->bytes; i++) row[i] = (uint8_t)kt_next(r);
    for (int64_t b = 0; b < nb; b++)
        for (int k = 0; k < 2; k++) {
            if (c->f16_at[k] < 0) continue;
            const uint16_t h = hk_f32_to_f16(kt_uniform(r, 0.002f, 0.05f));
            memcpy(row + b * c->bytes + c->f16_at[k], &h, 2);
        }
}

static void check(kt_rng *r, const qcase *c, int64_t n, int64_t nblk, int64_t out, int64_t wpad,
                  int64_t ypad, bool bias) {
    const int64_t in = nblk * c->block, ldy = out + ypad;
    const size_t ldw = (size_t)(nblk * c->bytes + wpad);
    uint8_t *w = malloc(ldw * (size_t)out);
    float *x = kt_alloc(n * in), *b = kt_alloc(out), *y = kt_alloc(n * ldy);
    float *wf = kt_alloc(in); /* [in]: one dequantized row */
    assert_non_null(w);
    for (int64_t o = 0; o < out; o++) fill_blocks(r, c, w + o * ldw, nblk);
    kt_fill(r, x, n * in, -1, 1);
    kt_fill(r, b, out, -1, 1);
    for (int64_t i = 0; i < n * ldy; i++) y[i] = SENTINEL;
    assert_true(hk_k_qlinear_supports(c->type, in));
    assert_true(hk_k_qlinear(x, n, in, c->type, w, ldw, bias ? b : NULL, out, y, ldy));
    const int64_t ablk = c->block; /* activation blocks: 32 (Q8_0/Q8_1 style) or 256 (Q8_K) */
    for (int64_t o = 0; o < out; o++) {
        hk_dequantize(c->type, w + o * ldw, wf, in);
        for (int64_t i = 0; i < n; i++) {
            const float *xi = x + i * in;
            double ref = bias ? b[o] : 0.0, bound = 0.0, mag = 0.0;
            for (int64_t j0 = 0; j0 < in; j0 += ablk) {
                float amax = 0.0f;
                for (int64_t j = j0; j < j0 + ablk; j++) amax = fmaxf(amax, fabsf(xi[j]));
                for (int64_t j = j0; j < j0 + ablk; j++) {
                    ref += (double)wf[j] * xi[j];
                    bound += fabs(wf[j]) * amax / 127.0 / 2.0;
                    mag += fabs((double)wf[j] * xi[j]);
                }
            }
            bound += 1e-5 * (mag + 1.0);
            const double got = y[i * ldy + o];
            if (!(fabs(got - ref) <= bound)) {
                print_error("%s n=%lld in=%lld out=%lld (%s): y[%lld,%lld]=%.7g want %.7g "
                            "(bound %.3g)\n",
                            hk_ggml_type_name(c->type), (long long)n, (long long)in,
                            (long long)out, hk_k_qlinear_isa(), (long long)i, (long long)o,
                            got, ref, bound);
                fail();
            }
        }
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = out; o < ldy; o++) assert_true(y[i * ldy + o] == SENTINEL);
    free(w);
    free(x);
    free(b);
    free(y);
    free(wf);
}

static void run_all(bool generic) {
    hk_k_qlinear_force_generic(generic);
    kt_rng r = {42};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const qcase *c = &cases[k];
        const int64_t nblk = c->block == 32 ? 7 : 3; /* odd counts of blocks */
        check(&r, c, 1, nblk, 37, 0, 0, false);
        check(&r, c, 3, nblk, 37, 6, 3, true);
        check(&r, c, 8, nblk + 2, 53, 2, 1, true);
        check(&r, c, 5, nblk, 301, 0, 0, true); /* large enough to split across threads */
        check(&r, c, 1, 1, 1, 0, 0, true);
    }
    hk_k_qlinear_force_generic(false);
}

static void test_runtime_choice(void **state) {
    (void)state;
    run_all(false);
}

static void test_generic(void **state) {
    (void)state;
    run_all(true);
    assert_string_equal(hk_k_qlinear_isa(), hk_k_qlinear_isa()); /* restored choice is stable */
}

/* One thread and two give the same numbers (each row is one thread's dot product). */
static void test_threads_same(void **state) {
    (void)state;
    kt_rng r = {7};
    const qcase *c = &cases[2]; /* Q4_1 */
    const int64_t n = 2, in = 9 * 32, out = 333;
    uint8_t *w = malloc((size_t)(out * 9 * c->bytes));
    float *x = kt_alloc(n * in), *y1 = kt_alloc(n * out), *y2 = kt_alloc(n * out);
    assert_non_null(w);
    for (int64_t o = 0; o < out; o++) fill_blocks(&r, c, w + o * 9 * c->bytes, 9);
    kt_fill(&r, x, n * in, -1, 1);
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    assert_true(hk_k_qlinear(x, n, in, c->type, w, (size_t)(9 * c->bytes), NULL, out, y1, out));
    omp_set_num_threads(2);
    assert_true(hk_k_qlinear(x, n, in, c->type, w, (size_t)(9 * c->bytes), NULL, out, y2, out));
    omp_set_num_threads(before);
    assert_memory_equal(y1, y2, (size_t)(n * out) * sizeof(float));
    free(w);
    free(x);
    free(y1);
    free(y2);
}

/* Unsupported types and rows that are not whole blocks are refused with y untouched; the
 * dispatching hk_k_linear_q then takes the f32 weights, as it does beyond the small batch. */
static void test_refusals_and_fallback(void **state) {
    (void)state;
    kt_rng r = {3};
    const int64_t in = 64, out = 19;
    uint8_t blocks[19 * 2 * 34];
    float x[10 * 64], y[10 * 19], yref[10 * 19], wf[19 * 64];
    fill_blocks(&r, &cases[0], blocks, 19 * 2);
    kt_fill(&r, x, 10 * in, -1, 1);
    for (int64_t i = 0; i < 10 * out; i++) y[i] = SENTINEL;
    assert_false(hk_k_qlinear_supports(HK_GGML_Q5_0, in));
    assert_false(hk_k_qlinear_supports(HK_GGML_Q8_0, 48));
    assert_false(hk_k_qlinear(x, 1, in, HK_GGML_Q5_0, blocks, 68, NULL, out, y, out));
    assert_false(hk_k_qlinear(x, 1, 48, HK_GGML_Q8_0, blocks, 68, NULL, out, y, out));
    for (int64_t i = 0; i < 10 * out; i++) assert_true(y[i] == SENTINEL);
    /* 10 rows > HK_K_QLINEAR_MAX_ROWS: the f32 path, bit for bit hk_k_linear's */
    for (int64_t o = 0; o < out; o++) hk_dequantize(HK_GGML_Q8_0, blocks + o * 68, wf + o * in, in);
    hk_k_linear_q(x, 10, in, wf, in, false, HK_GGML_Q8_0, blocks, 68, NULL, out, y, out);
    hk_k_linear(x, 10, in, wf, in, false, NULL, out, yref, out);
    assert_memory_equal(y, yref, sizeof y);
    /* an unsupported type with blocks given: the f32 path too */
    hk_k_linear_q(x, 1, in, wf, in, false, HK_GGML_Q5_0, blocks, 68, NULL, out, y, out);
    hk_k_linear(x, 1, in, wf, in, false, NULL, out, yref, out);
    assert_memory_equal(y, yref, (size_t)out * sizeof(float));
    /* 1 row of Q8_0 blocks: the blocks, not the f32 weights (a zero f32 matrix shows it) */
    float zeros[19 * 64] = {0};
    hk_k_linear_q(x, 1, in, zeros, in, false, HK_GGML_Q8_0, blocks, 68, NULL, out, y, out);
    double diff = 0.0;
    for (int64_t o = 0; o < out; o++) diff += fabs(y[o] - yref[o]);
    assert_true(diff < 0.05 * out);
    bool nonzero = false;
    for (int64_t o = 0; o < out; o++) nonzero |= y[o] != 0.0f;
    assert_true(nonzero);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_choice),
        cmocka_unit_test(test_generic),
        cmocka_unit_test(test_threads_same),
        cmocka_unit_test(test_refusals_and_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
