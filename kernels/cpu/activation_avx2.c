/* The activations compiled for AVX2 + FMA (x86-64 only); activation.c calls them only when
 * the CPU reports both. */
#include "activation_internal.h"

#ifdef HK_ACT_HAVE_AVX2
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#define HK_ACT_SUFFIX avx2
#define HK_VL 8
#define HK_VFMA(acc, a, b) _mm256_fmadd_ps((a), (b), (acc))
#include "activation_simd.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
typedef int hk_act_avx2_unused; /* not x86-64: nothing to compile */
#endif
