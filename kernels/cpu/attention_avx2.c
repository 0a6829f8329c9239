/* The attention tile loop compiled for AVX2 + FMA (x86-64 only); attention.c calls it only
 * when the CPU reports both. */
#include "attention_internal.h"

#ifdef HK_ATTN_HAVE_AVX2
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "target_avx2_begin.h"
#define HK_ATTN_ITEM hk_attn_item_avx2
#include "attention_tile.h"

#include "target_avx2_end.h"
#else
typedef int hk_attn_avx2_unused; /* not x86-64: nothing to compile */
#endif
