/* dtype names/sizes and f16/bf16 conversions: exhaustive round trips, rounding checked against
 * a reference that picks the nearest representable value (ties to even). */
#include <float.h>
#include <math.h>

#include "test_util.h"

#include "core/dtype.h"

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_names_sizes(void **state) {
    (void)state;
    assert_string_equal(hk_dtype_name(HK_DTYPE_F32), "F32");
    assert_string_equal(hk_dtype_name(HK_DTYPE_BF16), "BF16");
    assert_int_equal(hk_dtype_size(HK_DTYPE_F32), 4);
    assert_int_equal(hk_dtype_size(HK_DTYPE_F16), 2);
    assert_int_equal(hk_dtype_size(HK_DTYPE_BF16), 2);
    assert_int_equal(hk_dtype_size(HK_DTYPE_I32), 4);
    assert_int_equal(hk_dtype_size(HK_DTYPE_I64), 8);
    assert_int_equal(hk_dtype_size(HK_DTYPE_U8), 1);
    hk_dtype dt;
    for (int d = HK_DTYPE_F32; d <= HK_DTYPE_U8; d++) {
        assert_true(hk_dtype_from_name(hk_dtype_name((hk_dtype)d), &dt));
        assert_int_equal(dt, d);
    }
    assert_false(hk_dtype_from_name("F64", &dt));
    assert_false(hk_dtype_from_name("f32", &dt));
    assert_false(hk_dtype_from_name("BOOL", &dt));
    assert_false(hk_dtype_from_name(NULL, &dt));
}

static void test_f16_known(void **state) {
    (void)state;
    assert_true(hk_f16_to_f32(0x3c00) == 1.0f);
    assert_true(hk_f16_to_f32(0xc000) == -2.0f);
    assert_true(hk_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(hk_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(hk_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(hk_f16_to_f32(0x0400) == 0x1p-14f);
    assert_true(isinf(hk_f16_to_f32(0x7c00)) && hk_f16_to_f32(0x7c00) > 0);
    assert_true(isinf(hk_f16_to_f32(0xfc00)) && hk_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(hk_f16_to_f32(0x7e00)));
    assert_int_equal(bits(hk_f16_to_f32(0x8000)), 0x80000000u); /* -0 */

    assert_int_equal(hk_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(hk_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(hk_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(hk_f32_to_f16(65519.0f), 0x7bff); /* below the midpoint to inf */
    assert_int_equal(hk_f32_to_f16(65520.0f), 0x7c00); /* tie -> even -> inf */
    assert_int_equal(hk_f32_to_f16(1e10f), 0x7c00);
    assert_int_equal(hk_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(hk_f32_to_f16(0x1p-25f), 0x0000);        /* tie -> even (0) */
    assert_int_equal(hk_f32_to_f16(0x1.000002p-25f), 0x0001); /* just above the tie */
    assert_int_equal(hk_f32_to_f16(0x3p-25f), 0x0002);        /* 1.5 ulp: tie -> even (2) */
    assert_int_equal(hk_f32_to_f16(0x1.ffcp-15f), 0x0400);    /* rounds up into the normals */
    assert_int_equal(hk_f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie -> even */
    assert_int_equal(hk_f32_to_f16(1.0f + 0x3p-11f), 0x3c02); /* tie -> even (up) */
    assert_int_equal(hk_f32_to_f16(1e-30f), 0x0000);
    const uint16_t n = hk_f32_to_f16(NAN);
    assert_int_equal(n & 0x7c00, 0x7c00);
    assert_true((n & 0x3ff) != 0);
}

static void test_f16_roundtrip_all(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = hk_f16_to_f32((uint16_t)h);
        const uint16_t back = hk_f32_to_f16(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            assert_true(isnan(f));
            assert_int_equal(back & 0xfe00, (h & 0x8000) | 0x7e00); /* quiet nan, same sign */
        } else {
            if (back != h) print_error("f16 0x%04x -> %a -> 0x%04x\n", h, (double)f, back);
            assert_int_equal(back, h);
        }
    }
}

/* Reference: the nearest of the finite positive half values (monotonic in their bit pattern),
 * ties to the even pattern, beyond max+half-ulp -> inf. */
static uint16_t ref_round(double ax, float (*dec)(uint16_t), uint16_t max_finite, uint16_t inf) {
    uint16_t lo = 0, hi = max_finite;
    if (ax >= (double)dec(max_finite)) {
        const double ulp = (double)dec(max_finite) - (double)dec((uint16_t)(max_finite - 1));
        const double mid = (double)dec(max_finite) + ulp / 2;
        if (ax > mid || (ax == mid && (max_finite & 1))) return inf;
        return max_finite;
    }
    while (hi - lo > 1) { /* dec(lo) <= ax < dec(hi) */
        const uint16_t m = (uint16_t)((lo + hi) / 2);
        if ((double)dec(m) <= ax) lo = m;
        else hi = m;
    }
    const double dlo = ax - (double)dec(lo), dhi = (double)dec(hi) - ax;
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo & 1) ? hi : lo;
}

static void check_rounding(uint16_t (*enc)(float), float (*dec)(uint16_t), uint16_t max_finite,
                           uint16_t inf, uint32_t step) {
    for (uint64_t u = 0; u <= 0xffffffffu; u += step) {
        const float f = from_bits((uint32_t)u);
        const uint16_t got = enc(f);
        if (isnan(f)) {
            assert_true(isnan(dec(got)));
            continue;
        }
        const uint16_t sign = (uint32_t)u >> 31 ? 0x8000 : 0;
        const uint16_t want = sign | ref_round(fabs((double)f), dec, max_finite, inf);
        if (got != want)
            print_error("%a (0x%08x): got 0x%04x want 0x%04x\n", (double)f, (uint32_t)u, got, want);
        assert_int_equal(got, want);
    }
}

static void test_f16_rounding(void **state) {
    (void)state;
    /* An odd prime step visits every exponent and a spread of low mantissa bits (ties too). */
    check_rounding(hk_f32_to_f16, hk_f16_to_f32, 0x7bff, 0x7c00, 4099);
    check_rounding(hk_f32_to_f16, hk_f16_to_f32, 0x7bff, 0x7c00, 0x1000); /* exact ties */
}

#if defined(__FLT16_MAX__) && defined(__GNUC__) && !defined(__clang__)
/* GCC's _Float16 conversion (libgcc, round to nearest even) as a second opinion. */
static void test_f16_vs_compiler(void **state) {
    (void)state;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 65521) {
        const float f = from_bits((uint32_t)u);
        if (isnan(f)) continue;
        const _Float16 h = (_Float16)f;
        uint16_t hb;
        memcpy(&hb, &h, 2);
        assert_int_equal(hk_f32_to_f16(f), hb);
    }
}
#else
static void test_f16_vs_compiler(void **state) {
    (void)state;
    skip();
}
#endif

static void test_bf16(void **state) {
    (void)state;
    assert_int_equal(hk_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(hk_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* tie -> even */
    assert_int_equal(hk_f32_to_bf16(1.0f + 0x3p-8f), 0x3f82);     /* tie -> even (up) */
    assert_int_equal(hk_f32_to_bf16(1.0f + 0x1.02p-8f), 0x3f81);  /* above the tie */
    assert_int_equal(hk_f32_to_bf16(FLT_MAX), 0x7f80);            /* rounds to inf */
    assert_int_equal(hk_f32_to_bf16(-INFINITY), 0xff80);
    assert_int_equal(hk_f32_to_bf16(0x1p-133f), 0x0001);          /* subnormal */
    assert_true(isnan(hk_bf16_to_f32(hk_f32_to_bf16(NAN))));
    /* a nan whose payload sits in the low 16 bits must not turn into inf */
    assert_true(isnan(hk_bf16_to_f32(hk_f32_to_bf16(from_bits(0x7f800001u)))));
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = hk_bf16_to_f32((uint16_t)h);
        if (isnan(f)) {
            assert_true(isnan(hk_bf16_to_f32(hk_f32_to_bf16(f))));
            continue;
        }
        assert_int_equal(bits(f), h << 16);
        assert_int_equal(hk_f32_to_bf16(f), h);
    }
    check_rounding(hk_f32_to_bf16, hk_bf16_to_f32, 0x7f7f, 0x7f80, 4099);
    check_rounding(hk_f32_to_bf16, hk_bf16_to_f32, 0x7f7f, 0x7f80, 0x8000); /* exact ties */
}

/* Source at odd addresses: the conversion must not assume alignment. */
static void test_convert_unaligned(void **state) {
    (void)state;
    enum { N = 37 };
    float ref[N];
    for (int i = 0; i < N; i++) ref[i] = (float)(i - 18) * 0.25f; /* exact in f16/bf16 */
    unsigned char raw[4 * N + 8];
    float out[N];
    for (int off = 0; off < 4; off++) {
        memcpy(raw + off, ref, sizeof ref);
        hk_convert_to_f32(HK_DTYPE_F32, raw + off, out, N);
        assert_memory_equal(out, ref, sizeof ref);

        assert_true(hk_convert_from_f32(HK_DTYPE_F16, ref, raw + off, N));
        memset(out, 0, sizeof out);
        hk_convert_to_f32(HK_DTYPE_F16, raw + off, out, N);
        assert_memory_equal(out, ref, sizeof ref);

        assert_true(hk_convert_from_f32(HK_DTYPE_BF16, ref, raw + off, N));
        memset(out, 0, sizeof out);
        hk_convert_to_f32(HK_DTYPE_BF16, raw + off, out, N);
        assert_memory_equal(out, ref, sizeof ref);
    }
    const int64_t iv[3] = {-5, 0, 1 << 20};
    memcpy(raw + 1, iv, sizeof iv);
    hk_convert_to_f32(HK_DTYPE_I64, raw + 1, out, 3);
    assert_true(out[0] == -5.0f && out[1] == 0.0f && out[2] == (float)(1 << 20));
    assert_false(hk_convert_from_f32(HK_DTYPE_I32, ref, raw, N));
    hk_convert_to_f32(HK_DTYPE_F16, NULL, NULL, 0); /* n == 0 touches nothing */
}

/* Large enough to take the threaded path. */
static void test_convert_large(void **state) {
    (void)state;
    const size_t n = (size_t)3 << 20;
    uint16_t *h = malloc(n * 2);
    float *f = malloc(n * 4);
    assert_non_null(h);
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) h[i] = (uint16_t)(i * 40503u);
    hk_convert_to_f32(HK_DTYPE_BF16, h, f, n);
    for (size_t i = 0; i < n; i += 997) assert_int_equal(bits(f[i]), (uint32_t)h[i] << 16);
    hk_convert_to_f32(HK_DTYPE_F16, h, f, n);
    for (size_t i = 0; i < n; i += 997) {
        const float want = hk_f16_to_f32(h[i]);
        assert_true(bits(f[i]) == bits(want) || (isnan(f[i]) && isnan(want)));
    }
    free(h);
    free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_sizes),     cmocka_unit_test(test_f16_known),
        cmocka_unit_test(test_f16_roundtrip_all), cmocka_unit_test(test_f16_rounding),
        cmocka_unit_test(test_f16_vs_compiler), cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_convert_unaligned), cmocka_unit_test(test_convert_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
