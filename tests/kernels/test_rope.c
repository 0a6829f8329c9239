/* RoPE (rotate-half) against a naive double implementation written from the HF formula
 * q·cos + rotate_half(q)·sin with cos/sin duplicated over the two halves; full and partial
 * rotary dims, strided rows (a fused QKV buffer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/cpu/kernels.h"
#include "kt_util.h"

static void check_rope(kt_rng *r, int64_t n, int64_t heads, int64_t d_head, int64_t rot,
                       int64_t pad) {
    const int64_t ld = heads * d_head + pad;
    float *x = kt_alloc(n * ld), *x0 = kt_alloc(n * ld);
    float *cs = kt_alloc(n * (rot / 2)), *sn = kt_alloc(n * (rot / 2));
    kt_fill(r, x, n * ld, -2, 2);
    memcpy(x0, x, (size_t)(n * ld) * sizeof(float));
    /* real tables: theta = pos * base^(-2i/rot) */
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < rot / 2; i++) {
            const double th = (double)(t + 3) * pow(10000.0, -2.0 * (double)i / (double)rot);
            cs[t * (rot / 2) + i] = (float)cos(th);
            sn[t * (rot / 2) + i] = (float)sin(th);
        }
    hk_k_rope(x, n, heads, d_head, ld, rot, cs, sn);
    for (int64_t t = 0; t < n; t++) {
        for (int64_t h = 0; h < heads; h++) {
            const float *in = x0 + t * ld + h * d_head;
            const float *got = x + t * ld + h * d_head;
            for (int64_t c = 0; c < d_head; c++) {
                double want;
                if (c >= rot) {
                    want = in[c];
                } else {
                    const int64_t half = rot / 2, f = c % half;
                    const double co = cs[t * half + f], si = sn[t * half + f];
                    const double rh = c < half ? -(double)in[c + half] : (double)in[c - half];
                    want = in[c] * co + rh * si;
                }
                if (!(fabs(got[c] - want) <= 1e-6 * (1 + fabs(want)))) {
                    print_error("rope n=%lld heads=%lld d=%lld rot=%lld: t=%lld h=%lld c=%lld "
                                "%g want %g\n",
                                (long long)n, (long long)heads, (long long)d_head,
                                (long long)rot, (long long)t, (long long)h, (long long)c,
                                (double)got[c], want);
                    fail();
                }
            }
        }
        /* the row padding (other projections of a fused buffer) is untouched */
        assert_memory_equal(x + t * ld + heads * d_head, x0 + t * ld + heads * d_head,
                            (size_t)pad * sizeof(float));
    }
    free(x);
    free(x0);
    free(cs);
    free(sn);
}

static void test_rope(void **state) {
    (void)state;
    kt_rng r = {31};
    check_rope(&r, 1, 1, 2, 2, 0);
    check_rope(&r, 5, 4, 64, 64, 0);
    check_rope(&r, 5, 4, 64, 64, 2 * 4 * 64); /* q inside a fused [q|k|v] row */
    check_rope(&r, 9, 3, 64, 16, 7);          /* partial rotary (GPT-J/NeoX style rot_dim) */
    check_rope(&r, 7, 2, 80, 20, 0);          /* Phi-like 0.25 fraction */
    check_rope(&r, 300, 8, 128, 128, 3);      /* threaded path */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
