/* Element-wise activations (in place) and the element-wise add/multiply used by the forward. */
#include "kernels.h"

#include <math.h>

#define HK_SQRT_2_OVER_PI 0.7978845608028654 /* √(2/π) */
#define HK_SQRT1_2 0.7071067811865476        /* 1/√2 */

/* libm calls cost ~10 ns each: split long vectors across threads. */
#define HK_ACT_PAR_MIN 65536
#define HK_ADD_PAR_MIN (1 << 20)

void hk_k_gelu_new(float *x, int64_t n) {
    const float c = (float)HK_SQRT_2_OVER_PI; /* as PyTorch: math.sqrt(2/pi) to f32 */
#pragma omp parallel for schedule(static) if (n >= HK_ACT_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * (v * v * v))));
    }
}

void hk_k_gelu(float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= HK_ACT_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + erff(v * (float)HK_SQRT1_2));
    }
}

void hk_k_silu(float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= HK_ACT_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        x[i] = v / (1.0f + expf(-v));
    }
}

void hk_k_relu(float *x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= HK_ADD_PAR_MIN)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void hk_k_mul(float *y, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= HK_ADD_PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] *= x[i];
}

void hk_k_add(float *y, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= HK_ADD_PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}
