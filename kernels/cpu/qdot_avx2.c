/* AVX2+FMA dot products of ggml weight blocks with quantized activations (qdot_internal.h).
 * The integer core is _mm256_maddubs_epi16 (u8 × i8 pairs summed to i16; no pair here can
 * saturate: at most 2·128·127 for Q8_0 after the sign trick, 2·63·127 for Q6_K), widened
 * with _mm256_madd_epi16 (by ones, or by the sub-block scales) to i32, converted to f32 once
 * per block and accumulated with FMA; f16 scales through F16C. Layouts in qblock.h. */
#include "qdot_internal.h"

#ifdef HK_QDOT_HAVE_AVX2
#include <immintrin.h>
#include <string.h>

#include "target_avx2_begin.h"
#if defined(__clang__) /* F16C on top of the region's avx2,fma */
#pragma clang attribute push(__attribute__((target("f16c"))), apply_to = function)
#else
#pragma GCC target("f16c")
#endif

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 bytes of a 32-element block: low nibbles (elements 0..15) in the low lane, high nibbles
 * (16..31) in the high lane */
static inline __m256i nibbles32(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(t, m), hi = _mm_and_si128(_mm_srli_epi16(t, 4), m);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* Σ u[i]·s[i] over 32 bytes (u unsigned ≤ 127·2 per pair, s signed) as 8 i32 lanes */
static inline __m256i udot(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* f16 at p (F16C: one instruction) */
static inline float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* The 32-element formats: blocks in pairs into two accumulators (two FMA chains in flight),
 * an odd last block into the first. BODY(b, acc) adds block b's product; TAIL the scalar
 * part (offsets, mins) kept outside the vector sums. */
#define PAIRED_LOOP(BYTES, BODY)                              \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(); \
    int64_t b = 0;                                            \
    for (; b + 1 < nb; b += 2) {                              \
        BODY(b, acc0);                                        \
        BODY(b + 1, acc1);                                    \
    }                                                         \
    if (b < nb) BODY(b, acc0);

float hk_qdot_q8_0_avx2(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8a *x = xv;
#define Q8_0_BODY(i, acc)                                                                      \
    do {                                                                                       \
        const uint8_t *wb = w + (i) * HK_QB_Q8_0;                                              \
        const __m256i wq = _mm256_loadu_si256((const __m256i *)(wb + 2));                      \
        const __m256i xq = _mm256_loadu_si256((const __m256i *)x[i].q);                        \
        /* |w| · (x · sign(w)): an unsigned × signed product maddubs can take */              \
        const __m256i s = udot(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xq, wq));           \
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(wb) * x[i].d), _mm256_cvtepi32_ps(s), acc);  \
    } while (0)
    PAIRED_LOOP(HK_QB_Q8_0, Q8_0_BODY)
#undef Q8_0_BODY
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

float hk_qdot_q4_0_avx2(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8a *x = xv;
    float off = 0.0f; /* the -8 of every element: Σ d_w · d_x · Σ q */
#define Q4_0_BODY(i, acc)                                                                      \
    do {                                                                                       \
        const uint8_t *wb = w + (i) * HK_QB_Q4_0;                                              \
        const float dw = f16(wb);                                                              \
        const __m256i s = udot(nibbles32(wb + 2), _mm256_loadu_si256((const __m256i *)x[i].q)); \
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * x[i].d), _mm256_cvtepi32_ps(s), acc);       \
        off += dw * x[i].s;                                                                    \
    } while (0)
    PAIRED_LOOP(HK_QB_Q4_0, Q4_0_BODY)
#undef Q4_0_BODY
    return hsum_ps(_mm256_add_ps(acc0, acc1)) - 8.0f * off;
}

float hk_qdot_q4_1_avx2(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8a *x = xv;
    float mins = 0.0f; /* Σ m · d_x · Σ q */
#define Q4_1_BODY(i, acc)                                                                      \
    do {                                                                                       \
        const uint8_t *wb = w + (i) * HK_QB_Q4_1;                                              \
        const __m256i s = udot(nibbles32(wb + 4), _mm256_loadu_si256((const __m256i *)x[i].q)); \
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(wb) * x[i].d), _mm256_cvtepi32_ps(s), acc);  \
        mins += f16(wb + 2) * x[i].s;                                                          \
    } while (0)
    PAIRED_LOOP(HK_QB_Q4_1, Q4_1_BODY)
#undef Q4_1_BODY
    return hsum_ps(_mm256_add_ps(acc0, acc1)) + mins;
}
#undef PAIRED_LOOP

/* Q4_K / Q5_K block (qh NULL for Q4_K): acc += d·dx·Σ sc·dot, returns dmin·dx·Σ mn·bsum */
static inline float k45_block(const uint8_t *w, const uint8_t *qh, const uint8_t *qs,
                              const hk_q8k *x, __m256 *acc) {
    const float d = f16(w) * x->d, dmin = f16(w + 2) * x->d;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i hbits = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    __m256i isum = _mm256_setzero_si256();
    int32_t msum = 0;
    for (int c = 0; c < 4; c++, qs += 32) {
        int sc0, mn0, sc1, mn1;
        hk_qb_k4_scale_min(2 * c, w + 4, &sc0, &mn0);
        hk_qb_k4_scale_min(2 * c + 1, w + 4, &sc1, &mn1);
        const __m256i q = _mm256_loadu_si256((const __m256i *)qs);
        __m256i lo = _mm256_and_si256(q, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (qh) { /* bit 2c (low) / 2c+1 (high) of each qh byte is the 5th bit: +16 */
            const __m256i one = _mm256_set1_epi8(1);
            const __m256i bl = _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c)), one);
            const __m256i bh = _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c + 1)), one);
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(bl, 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(bh, 4));
        }
        const __m256i p0 = _mm256_maddubs_epi16(
            lo, _mm256_loadu_si256((const __m256i *)(x->q + 64 * c)));
        const __m256i p1 = _mm256_maddubs_epi16(
            hi, _mm256_loadu_si256((const __m256i *)(x->q + 64 * c + 32)));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p0, _mm256_set1_epi16((short)sc0)));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p1, _mm256_set1_epi16((short)sc1)));
        msum += mn0 * (x->bsums[4 * c] + x->bsums[4 * c + 1]) +
                mn1 * (x->bsums[4 * c + 2] + x->bsums[4 * c + 3]);
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), *acc);
    return dmin * (float)msum;
}

float hk_qdot_q4_k_avx2(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8k *x = xv;
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += HK_QB_Q4_K) mins += k45_block(w, NULL, w + 16, &x[b], &acc);
    return hsum_ps(acc) - mins;
}

float hk_qdot_q5_k_avx2(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8k *x = xv;
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += HK_QB_Q5_K) mins += k45_block(w, w + 16, w + 48, &x[b], &acc);
    return hsum_ps(acc) - mins;
}

/* i16 scales a (low lane) and b (high lane) */
static inline __m256i lane_scales(int a, int b) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)a)),
                                   _mm_set1_epi16((short)b), 1);
}

float hk_qdot_q6_k_avx2(const uint8_t *w, const void *xv, int64_t nb) {
    const hk_q8k *x = xv;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    float offs = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += HK_QB_Q6_K) {
        const int8_t *sc = (const int8_t *)(w + 192);
        const float d = f16(w + 208) * x[b].d;
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w + 64 * h, *qhp = w + 128 + 32 * h;
            const int8_t *q = x[b].q + 128 * h, *s = sc + 8 * h;
            const __m256i la = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i lb = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);
            /* 4 runs of 32 elements: (low or high nibbles of ql / ql+32) | 2 bits of qh << 4;
             * run r's elements 0..15 (low lane) take scale 2r, 16..31 (high lane) 2r+1 */
            const __m256i v[4] = {
                _mm256_or_si256(_mm256_and_si256(la, m4),
                                _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)),
                _mm256_or_si256(_mm256_and_si256(lb, m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4)),
            };
            for (int r = 0; r < 4; r++) {
                const __m256i p = _mm256_maddubs_epi16(
                    v[r], _mm256_loadu_si256((const __m256i *)(q + 32 * r)));
                isum = _mm256_add_epi32(isum,
                                        _mm256_madd_epi16(p, lane_scales(s[2 * r], s[2 * r + 1])));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), acc);
        int32_t offset = 0; /* the -32 of every element, through the group sums */
        for (int g = 0; g < 16; g++) offset += sc[g] * x[b].bsums[g];
        offs += d * (float)offset;
    }
    return hsum_ps(acc) - 32.0f * offs;
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
#include "target_avx2_end.h"
#endif
