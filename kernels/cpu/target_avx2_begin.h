/* Compile what follows (up to target_avx2_end.h) for AVX2 + FMA, whatever the build's -march.
 * Callers include the pair around one SIMD body and dispatch to it only when the CPU reports
 * both features. Not include-guarded on purpose: each use opens one region. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define HK_VL 8
#define HK_VFMA(acc, a, b) _mm256_fmadd_ps((a), (b), (acc))
