/* Internal to kernels/cpu: dot products of one row of ggml weight blocks with one row of
 * quantized activations (qblock.h), in a portable version (qdot_generic.c) and an AVX2+FMA one
 * (qdot_avx2.c); qlinear.c picks one at run time and drives them over rows and threads.
 * Every function: nb weight blocks at w (any alignment) times nb activation blocks at x
 * (hk_q8a for Q8_0/Q4_0/Q4_1, hk_q8k for the K quants), accumulated in f32 (integer sums
 * inside a block). */
#ifndef HK_KERNELS_QDOT_INTERNAL_H
#define HK_KERNELS_QDOT_INTERNAL_H

#include <stdint.h>

#include "qblock.h"

typedef float (*hk_qdot_fn)(const uint8_t *w, const void *x, int64_t nb);

float hk_qdot_q8_0_generic(const uint8_t *w, const void *x, int64_t nb);
float hk_qdot_q4_0_generic(const uint8_t *w, const void *x, int64_t nb);
float hk_qdot_q4_1_generic(const uint8_t *w, const void *x, int64_t nb);
float hk_qdot_q4_k_generic(const uint8_t *w, const void *x, int64_t nb);
float hk_qdot_q5_k_generic(const uint8_t *w, const void *x, int64_t nb);
float hk_qdot_q6_k_generic(const uint8_t *w, const void *x, int64_t nb);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HK_QDOT_HAVE_AVX2 1
float hk_qdot_q8_0_avx2(const uint8_t *w, const void *x, int64_t nb);
float hk_qdot_q4_0_avx2(const uint8_t *w, const void *x, int64_t nb);
float hk_qdot_q4_1_avx2(const uint8_t *w, const void *x, int64_t nb);
float hk_qdot_q4_k_avx2(const uint8_t *w, const void *x, int64_t nb);
float hk_qdot_q5_k_avx2(const uint8_t *w, const void *x, int64_t nb);
float hk_qdot_q6_k_avx2(const uint8_t *w, const void *x, int64_t nb);
#endif

#endif
