/* The vectorized activations, written once and instantiated per instruction set: a .c file
 * defines HK_ACT_SUFFIX (the name suffix: generic, avx2), HK_VL and optionally HK_VFMA, selects
 * its target, then includes this file. It defines hk_act_{gelu_new,gelu,silu}_<suffix>, which
 * transform x[0, n) in place (declared in activation_internal.h).
 *
 * Accuracy (checked against double-precision libm by tests/kernels/test_elementwise.c):
 *   gelu_new  0.5x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), computed as x / (1 + exp(-2u))
 *             (1 + tanh(u) = 2 / (1 + exp(-2u))): no cancellation for x < 0, a few ulp.
 *   gelu      0.5x(1 + erf(x/√2)) = x·Φ(x), Φ(x) = ½erfc(-x/√2), with erfc(z), z >= 0, from the
 *             Chebyshev-fitted form t·exp(-z² + P(t)), t = 1/(1 + z/2) (Numerical Recipes
 *             `erfcc`, relative error < 1.2e-7 for all z >= 0): Φ(x) = ½erfc(|z|) for x < 0,
 *             1 - ½erfc(|z|) otherwise — again no cancellation, a few ulp.
 *   silu      x / (1 + exp(-x)).
 * Specials follow the libm formulas: NaN -> NaN; gelu_new/gelu/silu(+inf) = +inf;
 * (-inf) = NaN (as -inf · 0 and -inf / inf are); large negative x gives -0. The vector tail is
 * run through the same code on a padded copy, so every element gets the same bits whatever n,
 * the split across threads, or its position. */
#include <stdint.h>
#include <string.h>

#include "simd_math.h"

#define HK_ACT_CAT2(a, b) a##_##b
#define HK_ACT_CAT(a, b) HK_ACT_CAT2(a, b)
#define HK_ACT_NAME(base) HK_ACT_CAT(base, HK_ACT_SUFFIX)

/* -2√(2/π) and -2√(2/π)·0.044715: exp(-2u) = exp(x·(K1 + K3·x²)) */
#define HK_GELU_K1 (-1.5957691216057308f)
#define HK_GELU_K3 (-0.07135481627159396f)

INLINE hk_vf v_gelu_new(hk_vf x) {
    const hk_vf x2 = x * x;
    const hk_vf e = v_exp(x * HK_VFMA(v_splat(HK_GELU_K1), x2, v_splat(HK_GELU_K3)));
    return x / (v_splat(1.0f) + e);
}

INLINE hk_vf v_silu(hk_vf x) { return x / (v_splat(1.0f) + v_exp(-x)); }

INLINE hk_vf v_gelu(hk_vf x) {
    const hk_vf z = v_abs(x) * v_splat(0.70710678118654752f);
    const hk_vf t = v_splat(1.0f) / HK_VFMA(v_splat(1.0f), z, v_splat(0.5f));
    hk_vf p = v_splat(0.17087277f);
    p = HK_VFMA(v_splat(-0.82215223f), p, t);
    p = HK_VFMA(v_splat(1.48851587f), p, t);
    p = HK_VFMA(v_splat(-1.13520398f), p, t);
    p = HK_VFMA(v_splat(0.27886807f), p, t);
    p = HK_VFMA(v_splat(-0.18628806f), p, t);
    p = HK_VFMA(v_splat(0.09678418f), p, t);
    p = HK_VFMA(v_splat(0.37409196f), p, t);
    p = HK_VFMA(v_splat(1.00002368f), p, t);
    p = HK_VFMA(v_splat(-1.26551223f), p, t);
    /* -z² = x·(-x/2): the product is exact inside a fused multiply-add */
    const hk_vf half_erfc = v_splat(0.5f) * t * v_exp(HK_VFMA(p, x, x * v_splat(-0.5f)));
    const hk_vf phi = v_select(x < v_splat(0.0f), half_erfc, v_splat(1.0f) - half_erfc);
    return x * phi;
}

#define HK_ACT_LOOP(name, vfn)                                                                 \
    void HK_ACT_NAME(name)(float *x, int64_t n) {                                              \
        int64_t i = 0;                                                                         \
        for (; i + 2 * VL <= n; i += 2 * VL) {                                                 \
            const hk_vf a = vfn(v_load(x + i)), b = vfn(v_load(x + i + VL));                   \
            v_store(x + i, a);                                                                 \
            v_store(x + i + VL, b);                                                            \
        }                                                                                      \
        for (; i < n; i += VL) {                                                               \
            float buf[VL] = {0};                                                               \
            const int64_t m = n - i < VL ? n - i : VL;                                         \
            memcpy(buf, x + i, (size_t)m * sizeof(float));                                    \
            v_store(buf, vfn(v_load(buf)));                                                    \
            memcpy(x + i, buf, (size_t)m * sizeof(float));                                     \
        }                                                                                      \
    }

HK_ACT_LOOP(hk_act_gelu_new, v_gelu_new)
HK_ACT_LOOP(hk_act_gelu, v_gelu)
HK_ACT_LOOP(hk_act_silu, v_silu)

#undef HK_ACT_LOOP
#undef VL
#undef INLINE
