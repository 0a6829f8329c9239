/* Internal to kernels/cpu: the SIMD instantiations of the activations (activation_simd.h),
 * called by the driver in activation.c. Each transforms x[0, n) in place. */
#ifndef HK_KERNELS_ACTIVATION_INTERNAL_H
#define HK_KERNELS_ACTIVATION_INTERNAL_H

#include <stdint.h>

void hk_act_gelu_new_generic(float *x, int64_t n);
void hk_act_gelu_generic(float *x, int64_t n);
void hk_act_silu_generic(float *x, int64_t n);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HK_ACT_HAVE_AVX2 1
void hk_act_gelu_new_avx2(float *x, int64_t n);
void hk_act_gelu_avx2(float *x, int64_t n);
void hk_act_silu_avx2(float *x, int64_t n);
#endif

#endif
