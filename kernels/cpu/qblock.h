/* ggml block layouts as the quantized kernels read them (little-endian, as GGUF stores them),
 * and the activation blocks the kernels quantize x into on the fly. Shared by kernels/cpu's
 * quantized dot products and core/quant.c's dequantizers (the packed K-quant scales), so the
 * two read the formats through one definition. Everything here is static inline. */
#ifndef HK_KERNELS_QBLOCK_H
#define HK_KERNELS_QBLOCK_H

#include <stdint.h>
#include <string.h>

/* bytes of one weight block; elements per block: 32 (Q8_0, Q4_0, Q4_1), 256 (K quants) */
#define HK_QB_Q8_0 34  /* f16 d, i8 q[32] */
#define HK_QB_Q4_0 18  /* f16 d, u8 qs[16] */
#define HK_QB_Q4_1 20  /* f16 d, f16 m, u8 qs[16] */
#define HK_QB_Q4_K 144 /* f16 d, f16 dmin, u8 scales[12], u8 qs[128] */
#define HK_QB_Q5_K 176 /* f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128] */
#define HK_QB_Q6_K 210 /* u8 ql[128], u8 qh[64], i8 scales[16], f16 d */

/* Activations for the 32-element formats: x ≈ d * q, s = d * Σ q (for Q4_0's -8 offset and
 * Q4_1's min). 40 bytes. */
typedef struct {
    float d, s;
    int8_t q[32];
} hk_q8a;

/* Activations for the K quants: x ≈ d * q over 256 elements, bsums[g] = Σ q over
 * elements [16g, 16g + 16) (for the mins and Q6_K's -32 offset). */
typedef struct {
    float d;
    int8_t q[256];
    int16_t bsums[16];
} hk_q8k;

/* IEEE half to float: the 15 magnitude bits moved into place and rescaled by 2^112 (exact for
 * normals and subnormals alike); exponent 31 is inf/nan. */
static inline float hk_qb_f16(const uint8_t *p) {
    const uint32_t h = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    const uint32_t mag = h & 0x7fffu, sign = (h & 0x8000u) << 16;
    uint32_t bits;
    float f;
    if (mag >= 0x7c00u) {
        bits = sign | 0x7f800000u | (mag & 0x3ffu) << 13;
        memcpy(&f, &bits, 4);
        return f;
    }
    bits = mag << 13;
    memcpy(&f, &bits, 4);
    f *= 0x1p112f;
    return sign ? -f : f;
}

/* Sub-block j's 6-bit scale and min from Q4_K/Q5_K's 12 packed bytes: sub-blocks 0..3 use the
 * low 6 bits of bytes j and j+4; 4..7 take 4 bits from byte j+4 and the top 2 bits of bytes
 * j-4 (scale) and j (min). */
static inline void hk_qb_k4_scale_min(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

#endif
