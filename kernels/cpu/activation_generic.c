/* The activations for any target: vector extensions, 4 floats per vector (SSE2 on x86-64,
 * NEON on aarch64), no fused multiply-add. */
#include "activation_internal.h"

#define HK_ACT_SUFFIX generic
#define HK_VL 4
#include "activation_simd.h"
