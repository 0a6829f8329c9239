/* The activations compiled for AVX2 + FMA (x86-64 only); activation.c calls them only when
 * the CPU reports both. */
#include "activation_internal.h"

#ifdef HK_ACT_HAVE_AVX2
#include <immintrin.h>

#include "target_avx2_begin.h"
#define HK_ACT_SUFFIX avx2
#include "activation_simd.h"

#include "target_avx2_end.h"
#else
typedef int hk_act_avx2_unused; /* not x86-64: nothing to compile */
#endif
