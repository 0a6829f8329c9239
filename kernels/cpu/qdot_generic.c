/* Portable dot products of ggml weight blocks with quantized activations (qdot_internal.h):
 * integer sums per block, scaled and accumulated in f32. Layouts in qblock.h. */
#include "qdot_internal.h"

float hk_qdot_q8_0_generic(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8a *x = xv;
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += HK_QB_Q8_0) {
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += (int8_t)w[2 + j] * x[b].q[j];
        acc += hk_qb_f16(w) * x[b].d * (float)s;
    }
    return acc;
}

/* Σ nibble * q over a 32-element block whose low nibbles are elements 0..15, high 16..31 */
static int32_t nibble_dot(const uint8_t *qs, const int8_t *q) {
    int32_t s = 0;
    for (int j = 0; j < 16; j++) s += (qs[j] & 0x0F) * q[j] + (qs[j] >> 4) * q[j + 16];
    return s;
}

float hk_qdot_q4_0_generic(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8a *x = xv;
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += HK_QB_Q4_0) {
        /* x = d * (nibble - 8) */
        const float d = hk_qb_f16(w);
        acc += d * (x[b].d * (float)nibble_dot(w + 2, x[b].q) - 8.0f * x[b].s);
    }
    return acc;
}

float hk_qdot_q4_1_generic(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8a *x = xv;
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += HK_QB_Q4_1) {
        /* x = d * nibble + m */
        const float d = hk_qb_f16(w), m = hk_qb_f16(w + 2);
        acc += d * x[b].d * (float)nibble_dot(w + 4, x[b].q) + m * x[b].s;
    }
    return acc;
}

/* Q4_K / Q5_K: 4 chunks of 64 (sub-blocks 2c from the low nibbles, 2c+1 from the high ones),
 * x = d*sc*q - dmin*mn; qh (Q5_K only, else NULL) adds 16 where bit 2c / 2c+1 of qh[l] is set. */
static float k45_block(const uint8_t *w, const uint8_t *qh, const uint8_t *qs, const hk_q8k *x) {
    const float d = hk_qb_f16(w), dmin = hk_qb_f16(w + 2);
    const uint8_t *scales = w + 4;
    int32_t isum = 0, msum = 0;
    for (int c = 0; c < 4; c++, qs += 32) {
        int sc0, mn0, sc1, mn1;
        hk_qb_k4_scale_min(2 * c, scales, &sc0, &mn0);
        hk_qb_k4_scale_min(2 * c + 1, scales, &sc1, &mn1);
        const int8_t *q = x->q + 64 * c;
        int32_t s0 = 0, s1 = 0;
        for (int l = 0; l < 32; l++) {
            int lo = qs[l] & 0x0F, hi = qs[l] >> 4;
            if (qh) {
                lo += qh[l] >> (2 * c) & 1 ? 16 : 0;
                hi += qh[l] >> (2 * c + 1) & 1 ? 16 : 0;
            }
            s0 += lo * q[l];
            s1 += hi * q[32 + l];
        }
        isum += sc0 * s0 + sc1 * s1;
        msum += mn0 * (x->bsums[4 * c] + x->bsums[4 * c + 1]) +
                mn1 * (x->bsums[4 * c + 2] + x->bsums[4 * c + 3]);
    }
    return x->d * (d * (float)isum - dmin * (float)msum);
}

float hk_qdot_q4_k_generic(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8k *x = xv;
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += HK_QB_Q4_K) acc += k45_block(w, NULL, w + 16, &x[b]);
    return acc;
}

float hk_qdot_q5_k_generic(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8k *x = xv;
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += HK_QB_Q5_K) acc += k45_block(w, w + 16, w + 48, &x[b]);
    return acc;
}

float hk_qdot_q6_k_generic(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8k *x = xv;
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += HK_QB_Q6_K) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192);
        const int8_t *q = x[b].q;
        int32_t isum = 0;
        /* two halves of 128: each qh byte holds the top 2 bits of 4 elements 32 apart; the
         * 16 groups of 16 have one scale each */
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, q += 128)
            for (int part = 0; part < 4; part++) {
                const uint8_t *lq = ql + (part & 1) * 32;
                const int shift = (part >> 1) * 4;
                for (int half = 0; half < 2; half++) {
                    int32_t s = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        const int v = ((lq[l] >> shift) & 0x0F) | ((qh[l] >> (2 * part) & 3) << 4);
                        s += v * q[32 * part + l];
                    }
                    isum += sc[2 * part + half] * s;
                }
            }
        int32_t offset = 0; /* the -32 of every element, through the group sums */
        sc = (const int8_t *)(w + 192);
        for (int g = 0; g < 16; g++) offset += sc[g] * x[b].bsums[g];
        acc += hk_qb_f16(w + 208) * x[b].d * (float)(isum - 32 * offset);
    }
    return acc;
}
