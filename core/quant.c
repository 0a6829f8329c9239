/* Dequantization of ggml block formats (layouts as ggml defines them; all little-endian).
 *   Q8_0  32 elems: f16 d, i8 q[32]                       x = d*q
 *   Q4_0  32 elems: f16 d, u8 qs[16]                      x = d*(nibble - 8)
 *   Q4_1  32 elems: f16 d, f16 m, u8 qs[16]               x = d*nibble + m
 *         (low nibbles are elements 0..15, high nibbles 16..31)
 *   Q4_K 256 elems: f16 d, f16 dmin, u8 scales[12], u8 qs[128]
 *         8 sub-blocks of 32 with 6-bit scale and min each: x = d*sc*nibble - dmin*mn
 *   Q6_K 256 elems: u8 ql[128], u8 qh[64], i8 scales[16], f16 d
 *         16 sub-blocks of 16: x = d*scale*(q6 - 32), q6 = 4 low bits from ql | 2 from qh
 *   Q5_0  32 elems: f16 d, u8 qh[4], u8 qs[16]            x = d*(q5 - 16), q5 = nibble | bit<<4
 *   Q5_1  32 elems: f16 d, f16 m, u8 qh[4], u8 qs[16]     x = d*q5 + m
 *         (bit j of the little-endian u32 qh is the 5th bit of element j)
 *   Q5_K 256 elems: f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
 *         Q4_K's sub-blocks and scales, the 5th bit of element l of chunk c in qh[l] bit 2c/2c+1
 *   Q3_K 256 elems: u8 hmask[32], u8 qs[64], u8 scales[12], f16 d
 *         16 sub-blocks of 16, 6-bit scales (minus 32): x = d*sc*(q2 - (hmask bit ? 0 : 4))
 *   Q2_K 256 elems: u8 scales[16], u8 qs[64], f16 d, f16 dmin
 *         16 sub-blocks of 16, 4-bit scale and min: x = d*(sc&15)*q2 - dmin*(sc>>4) */
#include "quant.h"

#include <string.h>

#include "dtype.h"
#include "kernels/cpu/kernels.h" /* HK_K_Q*: the quantized kernels' type numbers */
#include "kernels/cpu/qblock.h"  /* the packed K-quant scales, read as the kernels read them */

_Static_assert((int)HK_K_Q8_0 == HK_GGML_Q8_0 && (int)HK_K_Q4_0 == HK_GGML_Q4_0 &&
                   (int)HK_K_Q4_1 == HK_GGML_Q4_1 && (int)HK_K_Q4_K == HK_GGML_Q4_K &&
                   (int)HK_K_Q5_K == HK_GGML_Q5_K && (int)HK_K_Q6_K == HK_GGML_Q6_K,
               "kernels/cpu's quantized type numbers are ggml's");

static const struct {
    uint32_t type;
    const char *name;
    int64_t block, bytes;
} layouts[] = {
    {HK_GGML_F32, "F32", 1, 4},       {HK_GGML_F16, "F16", 1, 2},
    {HK_GGML_Q4_0, "Q4_0", 32, 18},   {HK_GGML_Q4_1, "Q4_1", 32, 20},
    {HK_GGML_Q5_0, "Q5_0", 32, 22},   {HK_GGML_Q5_1, "Q5_1", 32, 24},
    {HK_GGML_Q8_0, "Q8_0", 32, 34},   {HK_GGML_Q8_1, "Q8_1", 32, 36},
    {HK_GGML_Q2_K, "Q2_K", 256, 84},  {HK_GGML_Q3_K, "Q3_K", 256, 110},
    {HK_GGML_Q4_K, "Q4_K", 256, 144}, {HK_GGML_Q5_K, "Q5_K", 256, 176},
    {HK_GGML_Q6_K, "Q6_K", 256, 210}, {HK_GGML_Q8_K, "Q8_K", 256, 292},
    {HK_GGML_BF16, "BF16", 1, 2},
};

bool hk_ggml_layout(uint32_t type, int64_t *block, int64_t *bytes) {
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (layouts[i].type == type) {
            *block = layouts[i].block;
            *bytes = layouts[i].bytes;
            return true;
        }
    return false;
}

const char *hk_ggml_type_name(uint32_t type) {
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (layouts[i].type == type) return layouts[i].name;
    return "?";
}

bool hk_ggml_can_dequantize(uint32_t type) {
    switch (type) {
    case HK_GGML_F32: case HK_GGML_F16: case HK_GGML_BF16: case HK_GGML_Q8_0:
    case HK_GGML_Q4_0: case HK_GGML_Q4_1: case HK_GGML_Q4_K: case HK_GGML_Q6_K:
    case HK_GGML_Q5_0: case HK_GGML_Q5_1: case HK_GGML_Q5_K: case HK_GGML_Q3_K:
    case HK_GGML_Q2_K:
        return true;
    default:
        return false;
    }
}

static float f16_at(const uint8_t *p) { return hk_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static void q8_0(const uint8_t *b, float *y) { // [32]
    const float d = f16_at(b);
    for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)b[2 + j];
}

static void q4_0(const uint8_t *b, float *y) { // [32]
    const float d = f16_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((qs[j] & 0x0F) - 8);
        y[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

static void q4_1(const uint8_t *b, float *y) { // [32]
    const float d = f16_at(b), m = f16_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(qs[j] & 0x0F) + m;
        y[j + 16] = d * (float)(qs[j] >> 4) + m;
    }
}

static void q4_k(const uint8_t *b, float *y) { // [256]
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *scales = b + 4, *qs = b + 16;
    /* 4 chunks of 64 elements over 32 bytes: low nibbles are sub-block 2c, high 2c+1 */
    for (int c = 0; c < 4; c++) {
        int sc0, mn0, sc1, mn1;
        hk_qb_k4_scale_min(2 * c, scales, &sc0, &mn0);
        hk_qb_k4_scale_min(2 * c + 1, scales, &sc1, &mn1);
        const float d0 = d * (float)sc0, m0 = dmin * (float)mn0;
        const float d1 = d * (float)sc1, m1 = dmin * (float)mn1;
        for (int l = 0; l < 32; l++) {
            y[64 * c + l] = d0 * (float)(qs[32 * c + l] & 0x0F) - m0;
            y[64 * c + 32 + l] = d1 * (float)(qs[32 * c + l] >> 4) - m1;
        }
    }
}

static void q6_k(const uint8_t *b, float *y) { // [256]
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = f16_at(b + 208);
    /* two halves of 128: each qh byte holds the top 2 bits of 4 elements 32 apart */
    for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128)
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = (ql[l] & 0x0F) | ((qh[l] >> 0 & 3) << 4);
            const int q2 = (ql[l + 32] & 0x0F) | ((qh[l] >> 2 & 3) << 4);
            const int q3 = (ql[l] >> 4) | ((qh[l] >> 4 & 3) << 4);
            const int q4 = (ql[l + 32] >> 4) | ((qh[l] >> 6 & 3) << 4);
            y[l] = d * (float)sc[is] * (float)(q1 - 32);
            y[l + 32] = d * (float)sc[is + 2] * (float)(q2 - 32);
            y[l + 64] = d * (float)sc[is + 4] * (float)(q3 - 32);
            y[l + 96] = d * (float)sc[is + 6] * (float)(q4 - 32);
        }
}

static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void q5_0(const uint8_t *b, float *y) { // [32]
    const float d = f16_at(b);
    const uint32_t qh = u32_at(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        const int lo = (qs[j] & 0x0F) | (int)((qh >> j & 1u) << 4);
        const int hi = (qs[j] >> 4) | (int)((qh >> (j + 16) & 1u) << 4);
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

static void q5_1(const uint8_t *b, float *y) { // [32]
    const float d = f16_at(b), m = f16_at(b + 2);
    const uint32_t qh = u32_at(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        const int lo = (qs[j] & 0x0F) | (int)((qh >> j & 1u) << 4);
        const int hi = (qs[j] >> 4) | (int)((qh >> (j + 16) & 1u) << 4);
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

static void q5_k(const uint8_t *b, float *y) { // [256]
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    for (int c = 0; c < 4; c++, ql += 32) {
        int sc0, mn0, sc1, mn1;
        hk_qb_k4_scale_min(2 * c, scales, &sc0, &mn0);
        hk_qb_k4_scale_min(2 * c + 1, scales, &sc1, &mn1);
        const float d0 = d * (float)sc0, m0 = dmin * (float)mn0;
        const float d1 = d * (float)sc1, m1 = dmin * (float)mn1;
        const uint8_t u0 = (uint8_t)(1u << (2 * c)), u1 = (uint8_t)(2u << (2 * c));
        for (int l = 0; l < 32; l++) {
            y[64 * c + l] = d0 * (float)((ql[l] & 0x0F) + (qh[l] & u0 ? 16 : 0)) - m0;
            y[64 * c + 32 + l] = d1 * (float)((ql[l] >> 4) + (qh[l] & u1 ? 16 : 0)) - m1;
        }
    }
}

/* Q3_K's 16 6-bit scales from 12 bytes: the low 4 bits from bytes 0..7 (nibbles), the top 2
 * bits from bytes 8..11 (2 bits per scale). */
static void k3_scales(const uint8_t *q, int8_t out[16]) {
    for (int i = 0; i < 16; i++) {
        const int low = i < 8 ? q[i] & 0x0F : q[i - 8] >> 4;
        const int high = (q[8 + (i % 4)] >> (2 * (i / 4))) & 3;
        out[i] = (int8_t)((low | high << 4) - 32);
    }
}

static void q3_k(const uint8_t *b, float *y) { // [256]
    const uint8_t *hm = b, *q = b + 32;
    const float d = f16_at(b + 108);
    int8_t sc[16];
    k3_scales(b + 96, sc);
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < 2; n++, q += 32)
        for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1))
            for (int half = 0; half < 2; half++) {
                const float dl = d * (float)sc[is++];
                for (int l = 16 * half; l < 16 * half + 16; l++)
                    *y++ = dl * (float)(((q[l] >> shift) & 3) - (hm[l] & m ? 0 : 4));
            }
}

static void q2_k(const uint8_t *b, float *y) { // [256]
    const uint8_t *sc = b, *q = b + 16;
    const float d = f16_at(b + 80), dmin = f16_at(b + 82);
    int is = 0;
    for (int n = 0; n < 2; n++, q += 32)
        for (int shift = 0; shift < 8; shift += 2)
            for (int half = 0; half < 2; half++) {
                const float dl = d * (float)(sc[is] & 0x0F), ml = dmin * (float)(sc[is] >> 4);
                is++;
                for (int l = 16 * half; l < 16 * half + 16; l++)
                    *y++ = dl * (float)((q[l] >> shift) & 3) - ml;
            }
}

void hk_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    switch (type) {
    case HK_GGML_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case HK_GGML_F16: hk_convert_to_f32(HK_DTYPE_F16, src, dst, (size_t)n); return;
    case HK_GGML_BF16: hk_convert_to_f32(HK_DTYPE_BF16, src, dst, (size_t)n); return;
    default: break;
    }
    int64_t block, bytes;
    if (!hk_ggml_layout(type, &block, &bytes)) return;
    void (*fn)(const uint8_t *, float *) = type == HK_GGML_Q8_0   ? q8_0
                                           : type == HK_GGML_Q4_0 ? q4_0
                                           : type == HK_GGML_Q4_1 ? q4_1
                                           : type == HK_GGML_Q4_K ? q4_k
                                           : type == HK_GGML_Q6_K ? q6_k
                                           : type == HK_GGML_Q5_0 ? q5_0
                                           : type == HK_GGML_Q5_1 ? q5_1
                                           : type == HK_GGML_Q5_K ? q5_k
                                           : type == HK_GGML_Q3_K ? q3_k
                                           : type == HK_GGML_Q2_K ? q2_k
                                                                  : NULL;
    if (!fn) return;
    for (int64_t i = 0; i < n / block; i++) fn(s + i * bytes, dst + i * block);
}
