/* The device sampler's algorithm (kernels/cuda/sampling.cu: radix select for top-k, binary
 * searches over order keys for top-p and the draw) emulated serially on the CPU with the same
 * shared keys (kernels/common/sample_keys.h), against hk_sample on the same draws. Runs
 * without a GPU; the GPU test compares the kernel itself with hk_sample. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hookformer.h"
#include "kernels/common/sample_keys.h"
#include "kt_util.h"

static void test_keys_order(void **state) {
    (void)state;
    kt_rng r = {301};
    const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-45f, -1e-45f, 1.0f, -1.0f,
                              3.4e38f, -3.4e38f};
    float v[2000];
    for (int i = 0; i < 2000; i++) {
        if (i < 10)
            v[i] = specials[i];
        else
            v[i] = kt_uniform(&r, -1, 1) * powf(10.0f, kt_uniform(&r, -30, 30));
    }
    for (int i = 0; i < 2000; i++)
        for (int j = 0; j < 2000; j += 7) {
            const uint32_t a = hk_sample_fkey(v[i]), b = hk_sample_fkey(v[j]);
            assert_int_equal(v[i] < v[j], a < b);
            assert_int_equal(v[i] == v[j], a == b); /* -0 == +0 */
            /* order keys: x descending, then id ascending */
            const uint64_t ka = hk_sample_okey(v[i], i), kb = hk_sample_okey(v[j], j);
            const bool a_first = v[i] > v[j] || (v[i] == v[j] && i < j);
            if (i != j) assert_int_equal(a_first, ka > kb);
            assert_int_equal(hk_sample_okey_id(ka), i);
        }
    assert_true(hk_sample_weight(2.0f, INFINITY, 1.0) == 0.0);
    assert_true(hk_sample_weight(INFINITY, INFINITY, 1.0) == 1.0);
    assert_true(hk_sample_weight(1.0f, 1.0f, 0.5) == 1.0);
}

/* kernels/cuda/sampling.cu, one thread: the same steps in the same order. status 1: NaN,
 * 2: every logit -inf while sampling. */
static int32_t emulate(const float *x, int64_t n, float temperature, int top_k, float top_p,
                       double u01, double *w, int *status) {
    *status = 0;
    float bx = -INFINITY;
    int64_t bi = INT64_MAX;
    for (int64_t j = 0; j < n; j++) {
        if (isnan(x[j])) {
            *status = 1;
            return 0;
        }
        if (x[j] > bx || (x[j] == bx && j < bi)) {
            bx = x[j];
            bi = j;
        }
    }
    if (temperature == 0.0f) return (int32_t)bi;
    if (isinf(bx) && bx < 0) {
        *status = 2;
        return 0;
    }
    const double T = temperature;
    uint32_t thr = 0;
    if (top_k > 0 && top_k < n) {
        int64_t kk = top_k;
        uint32_t prefix = 0;
        for (int bit = 31; bit >= 0; bit--) {
            const uint32_t want = prefix | (1u << bit), hi = ~((1u << bit) - 1u);
            int64_t c = 0;
            for (int64_t j = 0; j < n; j++) c += (hk_sample_fkey(x[j]) & hi) == want;
            if (c >= kk)
                prefix = want;
            else
                kk -= c;
        }
        thr = prefix;
    }
    for (int64_t j = 0; j < n; j++)
        w[j] = hk_sample_fkey(x[j]) >= thr ? hk_sample_weight(x[j], bx, T) : 0.0;
    if (top_p < 1.0f) {
        double z = 0.0;
        for (int64_t j = 0; j < n; j++) z += w[j];
        uint64_t lo = 0, hi = ~(uint64_t)0;
        while (lo < hi) {
            const uint64_t mid = lo + (hi - lo) / 2;
            double m = 0.0;
            for (int64_t j = 0; j < n; j++)
                if (hk_sample_okey(x[j], j) > mid) m += w[j];
            if (m / z < (double)top_p)
                hi = mid;
            else
                lo = mid + 1;
        }
        for (int64_t j = 0; j < n; j++)
            if (hk_sample_okey(x[j], j) < lo) w[j] = 0.0;
    }
    double z = 0.0;
    for (int64_t j = 0; j < n; j++) z += w[j];
    const double u = u01 * z;
    if (top_p < 1.0f) {
        uint64_t lo = 0, hi = ~(uint64_t)0;
        while (lo < hi) {
            const uint64_t mid = lo + (hi - lo) / 2 + 1;
            double a = 0.0;
            for (int64_t j = 0; j < n; j++)
                if (hk_sample_okey(x[j], j) >= mid) a += w[j];
            if (a > u)
                lo = mid;
            else
                hi = mid - 1;
        }
        double a = 0.0;
        for (int64_t j = 0; j < n; j++)
            if (hk_sample_okey(x[j], j) >= lo) a += w[j];
        uint64_t key = lo;
        if (!(a > u)) {
            key = ~(uint64_t)0;
            for (int64_t j = 0; j < n; j++)
                if (w[j] > 0.0 && hk_sample_okey(x[j], j) < key) key = hk_sample_okey(x[j], j);
        }
        return (int32_t)hk_sample_okey_id(key);
    }
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        double b = 0.0;
        for (int64_t j = 0; j <= mid; j++) b += w[j];
        if (b > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    double b = 0.0;
    for (int64_t j = 0; j <= lo; j++) b += w[j];
    if (!(b > u))
        for (int64_t j = n - 1; j >= 0; j--)
            if (w[j] > 0.0) return (int32_t)j;
    return (int32_t)lo;
}

static void test_emulated_sampler(void **state) {
    (void)state;
    kt_rng r = {302};
    const int64_t vocab = 701;
    float x[701];
    double w[701];
    static const struct {
        float t;
        int k;
        float p;
    } opts[] = {{0, 0, 1},      {1, 0, 1},     {0.7f, 40, 1},    {1.3f, 0, 0.9f},
                {0.5f, 10, 0.5f}, {2, 1, 1},   {1, 0, 0.01f},    {1e-6f, 0, 1},
                {1, 701, 0.99f}, {1, 100, 1},  {3, 300, 0.999f}, {0.9f, 0, 0.3f}};
    int64_t total = 0;
    for (int it = 0; it < 80; it++) {
        const int kind = it % 5;
        kt_fill(&r, x, vocab, -5, 5);
        if (kind == 1)
            for (int64_t i = 0; i < vocab; i++) x[i] = (float)(int)x[i]; /* ties */
        if (kind == 2)
            for (int64_t i = 0; i < vocab; i += 3) x[i] = -INFINITY;
        if (kind == 3) x[kt_int(&r, vocab)] = 30.0f;
        if (kind == 4) { /* +inf logits and signed zeros */
            x[kt_int(&r, vocab)] = INFINITY;
            x[kt_int(&r, vocab)] = INFINITY;
            for (int64_t i = 0; i < vocab; i += 5) x[i] = (i & 1) ? -0.0f : 0.0f;
        }
        for (size_t o = 0; o < sizeof opts / sizeof *opts; o++) {
            hk_sampler_opts so = hk_sampler_default();
            so.temperature = opts[o].t;
            so.top_k = opts[o].k;
            so.top_p = opts[o].p;
            uint64_t st = kt_next(&r), copy = st;
            int32_t want;
            assert_int_equal(hk_sample(x, vocab, &so, &st, &want), HK_OK);
            kt_rng u = {copy};
            const double u01 = (double)(kt_next(&u) >> 11) * 0x1.0p-53;
            int status;
            const int32_t got = emulate(x, vocab, so.temperature, so.top_k, so.top_p, u01, w,
                                        &status);
            assert_int_equal(status, 0);
            if (got != want) {
                print_error("case %d opts %zu (T %g k %d p %g): emulated %d, hk_sample %d\n", it,
                            o, (double)so.temperature, so.top_k, (double)so.top_p, got, want);
                fail();
            }
            total++;
        }
    }
    assert_int_equal(total, 80 * 12);
    /* the statuses */
    int status;
    x[3] = NAN;
    emulate(x, vocab, 1.0f, 0, 1.0f, 0.5, w, &status);
    assert_int_equal(status, 1);
    for (int64_t i = 0; i < vocab; i++) x[i] = -INFINITY;
    emulate(x, vocab, 1.0f, 0, 1.0f, 0.5, w, &status);
    assert_int_equal(status, 2);
    assert_int_equal(emulate(x, vocab, 0.0f, 0, 1.0f, 0.5, w, &status), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_order),
        cmocka_unit_test(test_emulated_sampler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
