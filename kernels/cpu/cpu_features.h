/* Internal to kernels/cpu: what the CPU running the process can do, asked by the kernels that
 * pick a SIMD version at run time (attention, activations, f32 gemv, quantized products). */
#ifndef HK_KERNELS_CPU_FEATURES_H
#define HK_KERNELS_CPU_FEATURES_H

#include <stdbool.h>

/* AVX2 and FMA (and F16C when `f16c`): false where the compiler cannot ask (not x86-64 GCC
 * or Clang), so the portable kernels run there. */
static inline bool hk_k_cpu_avx2_fma(bool f16c) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           (!f16c || __builtin_cpu_supports("f16c"));
#else
    (void)f16c;
    return false;
#endif
}

#endif
