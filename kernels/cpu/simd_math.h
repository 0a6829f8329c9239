/* Internal to kernels/cpu: portable SIMD vectors (GCC/Clang vector extensions) and the
 * vectorized math the kernels share (exp for the attention softmax and the activations).
 *
 * Parametrized like a template: the including .c file defines HK_VL (floats per vector, 4 or
 * 8) and selects its target (e.g. `#pragma GCC target("avx2,fma")`) before including this, and
 * may define HK_VFMA(acc, a, b) as a fused multiply-add. One instantiation per translation unit.
 * Every helper is always inlined, so no vector crosses a real call. */
#ifndef HK_KERNELS_SIMD_MATH_H
#define HK_KERNELS_SIMD_MATH_H

#include <math.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__)
/* Vectors never cross a real call (everything below is always inlined), so the note about the
 * AVX calling convention on non-AVX builds does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#ifndef HK_VL
#define HK_VL 4
#endif
#define VL HK_VL
#define INLINE static inline __attribute__((always_inline))

typedef float hk_vf __attribute__((vector_size(4 * VL)));
typedef int32_t hk_vi __attribute__((vector_size(4 * VL)));
typedef uint32_t hk_vu __attribute__((vector_size(4 * VL)));
typedef float hk_vf_u __attribute__((vector_size(4 * VL), aligned(4), may_alias));

#ifndef HK_VFMA
#define HK_VFMA(acc, a, b) ((acc) + (a) * (b))
#endif

INLINE hk_vf v_load(const float *p) { return *(const hk_vf_u *)p; }
INLINE void v_store(float *p, hk_vf x) { *(hk_vf_u *)p = x; }
INLINE hk_vf v_splat(float f) {
#if VL == 8
    return (hk_vf){f, f, f, f, f, f, f, f};
#else
    return (hk_vf){f, f, f, f};
#endif
}
/* mask ? a : b, mask lanes all ones or all zeros */
INLINE hk_vf v_select(hk_vi mask, hk_vf a, hk_vf b) {
    return (hk_vf)(((hk_vi)a & mask) | ((hk_vi)b & ~mask));
}
INLINE hk_vf v_max(hk_vf a, hk_vf b) { return v_select(a > b, a, b); }
INLINE hk_vf v_abs(hk_vf x) { return (hk_vf)((hk_vu)x & 0x7FFFFFFFu); }

/* exp(x) for x <= 0 (x may be -inf): Cody-Waite reduction and the Cephes expf polynomial,
 * ~1 ulp; results below ~1e-38 (x < -87) flush to 0. */
INLINE hk_vf v_exp_nonpos(hk_vf x) {
    const hk_vi under = x < v_splat(-87.0f);
    x = v_select(under, v_splat(-87.0f), x);
    const hk_vf magic = v_splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    const hk_vf t = x * v_splat(1.44269504088896341f) + magic;
    const hk_vf n = t - magic;
    const hk_vi ni = (hk_vi)t - 0x4B400000; /* the integer n, from t's mantissa */
    hk_vf r = x - n * v_splat(0.693359375f);
    r = r - n * v_splat(-2.12194440e-4f);
    hk_vf p = v_splat(1.9875691500e-4f);
    p = p * r + v_splat(1.3981999507e-3f);
    p = p * r + v_splat(8.3334519073e-3f);
    p = p * r + v_splat(4.1665795894e-2f);
    p = p * r + v_splat(1.6666665459e-1f);
    p = p * r + v_splat(5.0000001201e-1f);
    const hk_vf y = p * (r * r) + r + v_splat(1.0f);
    const hk_vf two_n = (hk_vf)((ni + 127) << 23); /* 2^n, n in [-126, 0] */
    return v_select(under, v_splat(0.0f), y * two_n);
}

/* exp(x) for every x, ~1 ulp: +inf above 88.72 (and for +inf), 0 below -87.33 (results that
 * would be subnormal flush to 0, as for -inf), NaN for NaN. Same reduction and polynomial as
 * v_exp_nonpos; 2^n is applied in two normal halves so n = 128 (x near 88.7) is exact. */
INLINE hk_vf v_exp(hk_vf x) {
    const hk_vi over = x > v_splat(88.7228390f);
    const hk_vi under = x < v_splat(-87.3365448f);
    hk_vf xc = v_select(over, v_splat(88.7228390f), x);
    xc = v_select(under, v_splat(-87.3365448f), xc); /* NaN lanes stay NaN */
    const hk_vf magic = v_splat(12582912.0f);
    const hk_vf t = HK_VFMA(magic, xc, v_splat(1.44269504088896341f));
    const hk_vf n = t - magic;
    /* n in [-126, 128]; garbage (but defined: unsigned) in NaN lanes, whose result is NaN */
    const hk_vu nu = (hk_vu)t - 0x4B400000u;
    hk_vf r = HK_VFMA(xc, n, v_splat(-0.693359375f));
    r = HK_VFMA(r, n, v_splat(2.12194440e-4f));
    hk_vf p = v_splat(1.9875691500e-4f);
    p = HK_VFMA(v_splat(1.3981999507e-3f), p, r);
    p = HK_VFMA(v_splat(8.3334519073e-3f), p, r);
    p = HK_VFMA(v_splat(4.1665795894e-2f), p, r);
    p = HK_VFMA(v_splat(1.6666665459e-1f), p, r);
    p = HK_VFMA(v_splat(5.0000001201e-1f), p, r);
    const hk_vf y = HK_VFMA(r, p, r * r) + v_splat(1.0f);
    const hk_vu n1 = (hk_vu)((hk_vi)nu >> 1); /* floor(n/2), then n - floor(n/2) */
    const hk_vf s1 = (hk_vf)((n1 + 127u) << 23);
    const hk_vf s2 = (hk_vf)((nu - n1 + 127u) << 23);
    hk_vf e = y * s1 * s2;
    e = v_select(over, v_splat(INFINITY), e);
    return v_select(under, v_splat(0.0f), e);
}

#endif
