/* Rotary position embeddings, rotate-half convention (HF Llama / GPT-NeoX). */
#include "kernels.h"

#define HK_ROPE_PAR_MIN 16384

void hk_k_rope(float *x, int64_t n, int64_t heads, int64_t d_head, int64_t ld_row,
               int64_t rot_dim, const float *cos, const float *sin) {
    const int64_t half = rot_dim / 2;
    if (n <= 0 || heads <= 0 || half <= 0) return;
    (void)d_head; /* dims [rot_dim, d_head) are left as they are */
#pragma omp parallel for schedule(static) if (n > 1 && n * heads * half >= HK_ROPE_PAR_MIN)
    for (int64_t t = 0; t < n; t++) {
        const float *c = cos + t * half;
        const float *s = sin + t * half;
        for (int64_t h = 0; h < heads; h++) {
            float *x1 = x + t * ld_row + h * d_head;
            float *x2 = x1 + half;
            for (int64_t j = 0; j < half; j++) {
                const float a = x1[j], b = x2[j];
                x1[j] = a * c[j] - b * s[j];
                x2[j] = b * c[j] + a * s[j];
            }
        }
    }
}
