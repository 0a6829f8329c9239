/* Materialized attention: scores [n_heads, sq, sk], a row softmax, and pattern · V.
 * The reference for hk_k_attention (tests) and the path used when a hook wants the scores or
 * the pattern of a query chunk. */
#include "blas_internal.h"
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void hk_k_attention_scores(const float *q, int64_t ldq, const float *k, int64_t ldk, int64_t sq,
                           int64_t sk, int64_t n_heads, int64_t n_kv_heads, int64_t d_head,
                           float scale, const hk_k_mask *mask, float *scores) {
    if (sq <= 0 || sk <= 0 || n_heads <= 0) return;
    const int64_t group = n_heads / n_kv_heads;
    for (int64_t h = 0; h < n_heads; h++) {
        float *s = scores + h * sq * sk; /* [sq, sk] */
        const float *qh = q + h * d_head;
        const float *kh = k + (h / group) * d_head;
        if (d_head > 0)
            hk_k_sgemm(true, sq, sk, d_head, scale, qh, ldq, kh, ldk, 0.0f, s, sk);
        else
            memset(s, 0, (size_t)(sq * sk) * sizeof(float));
#pragma omp parallel for schedule(static) if (sq * sk >= 65536)
        for (int64_t i = 0; i < sq; i++) {
            float *row = s + i * sk;
            int64_t lo, hi;
            hk_k_mask_row_range(mask, sk, i, &lo, &hi);
            const float cap = mask ? mask->softcap : 0.0f;
            for (int64_t j = 0; j < sk; j++) {
                row[j] = hk_softcap(row[j], cap);
                if (j < lo || j >= hi)
                    row[j] = -INFINITY;
                else if (mask && mask->allowed &&
                         !mask->allowed(mask->user, h, mask->q_pos0 + i, mask->k_pos0 + j))
                    row[j] = -INFINITY;
            }
        }
    }
}

void hk_k_softmax_rows(const float *scores, int64_t rows, int64_t n, float *pattern) {
#pragma omp parallel for schedule(static) if (rows * n >= 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *s = scores + r * n;
        float *p = pattern + r * n;
        float mx = -INFINITY;
        for (int64_t j = 0; j < n; j++)
            if (s[j] > mx) mx = s[j];
        if (!isfinite(mx)) { /* no finite score: zeros */
            for (int64_t j = 0; j < n; j++) p[j] = 0.0f;
            continue;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < n; j++) {
            const float e = expf(s[j] - mx); /* -inf -> 0 */
            p[j] = e;
            sum += e;
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < n; j++) p[j] *= inv;
    }
}

void hk_k_attention_apply(const float *pattern, const float *v, int64_t ldv, int64_t sq,
                          int64_t sk, int64_t n_heads, int64_t n_kv_heads, int64_t d_head,
                          float *out, int64_t ldo) {
    if (sq <= 0 || n_heads <= 0 || d_head <= 0) return;
    const int64_t group = n_heads / n_kv_heads;
    for (int64_t h = 0; h < n_heads; h++) {
        float *oh = out + h * d_head;
        if (sk <= 0) {
            for (int64_t i = 0; i < sq; i++) memset(oh + i * ldo, 0, (size_t)d_head * sizeof(float));
            continue;
        }
        hk_k_sgemm(false, sq, d_head, sk, 1.0f, pattern + h * sq * sk, sk,
                   v + (h / group) * d_head, ldv, 0.0f, oh, ldo);
    }
}

void hk_k_attention_ref(const float *q, int64_t ldq, const float *k, int64_t ldk,
                        const float *v, int64_t ldv, int64_t sq, int64_t sk, int64_t n_heads,
                        int64_t n_kv_heads, int64_t d_head, float scale, const hk_k_mask *mask,
                        float *out, int64_t ldo) {
    if (sq <= 0 || n_heads <= 0 || d_head <= 0) return;
    float *s = malloc((size_t)(n_heads * sq * (sk > 0 ? sk : 1)) * sizeof(float));
    if (!s) { /* tests only: make the failure loud */
        for (int64_t i = 0; i < sq; i++)
            for (int64_t c = 0; c < n_heads * d_head; c++) out[i * ldo + c] = NAN;
        return;
    }
    hk_k_attention_scores(q, ldq, k, ldk, sq, sk, n_heads, n_kv_heads, d_head, scale, mask, s);
    hk_k_softmax_rows(s, n_heads * sq, sk, s);
    hk_k_attention_apply(s, v, ldv, sq, sk, n_heads, n_kv_heads, d_head, out, ldo);
    free(s);
}
