/* The attention tile loop compiled for AVX2 + FMA (x86-64 only); attention.c calls it only
 * when the CPU reports both. */
#include "attention_internal.h"

#ifdef HK_ATTN_HAVE_AVX2
#include <immintrin.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#define HK_ATTN_ITEM hk_attn_item_avx2
#define HK_VL 8
#define HK_VFMA(acc, a, b) _mm256_fmadd_ps((a), (b), (acc))
#include "attention_tile.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
typedef int hk_attn_avx2_unused; /* not x86-64: nothing to compile */
#endif
