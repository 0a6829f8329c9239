/* AVX2+FMA f32 matrix-vector products (gemv_internal.h). Decode streams every weight once per
 * token, so these are memory-bound, and what matters is that W is read as ONE sequential
 * stream: on the Zen 4 development machine one stream reads at 26-29 GB/s from one core, four
 * interleaved rows (each x chunk loaded once for four outputs) at 15-16 GB/s, OpenBLAS's sgemv
 * ~15 (a microbenchmark over 530 MB). So rows: one output after the other, four accumulators
 * to hide the FMA latency; cols: one W row after the other into y[lo, hi) (L1/L2-resident). */
#include "gemv_internal.h"

#ifdef HK_GEMV_HAVE_AVX2
#include <immintrin.h>

#include "target_avx2_begin.h"

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* lanes [0, n) of p, zeros beyond (n < 8) */
static inline __m256 load_tail(const float *p, int64_t n) {
    static const int32_t ones[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    const __m256i m = _mm256_loadu_si256((const __m256i *)(ones + 8 - n));
    return _mm256_maskload_ps(p, m);
}

/* one output: W row · x, four accumulators over 32-float steps, then 8-float steps, then the
 * masked tail */
static float dot_row(const float *wr, const float *x, int64_t in) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    __m256 c = _mm256_setzero_ps(), d = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= in; i += 32) {
        a = _mm256_fmadd_ps(_mm256_loadu_ps(wr + i), _mm256_loadu_ps(x + i), a);
        b = _mm256_fmadd_ps(_mm256_loadu_ps(wr + i + 8), _mm256_loadu_ps(x + i + 8), b);
        c = _mm256_fmadd_ps(_mm256_loadu_ps(wr + i + 16), _mm256_loadu_ps(x + i + 16), c);
        d = _mm256_fmadd_ps(_mm256_loadu_ps(wr + i + 24), _mm256_loadu_ps(x + i + 24), d);
    }
    for (; i + 8 <= in; i += 8)
        a = _mm256_fmadd_ps(_mm256_loadu_ps(wr + i), _mm256_loadu_ps(x + i), a);
    if (i < in) b = _mm256_fmadd_ps(load_tail(wr + i, in - i), load_tail(x + i, in - i), b);
    return hsum_ps(_mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
}

void hk_gemv_rows_avx2(const float *x, int64_t in, const float *w, int64_t ldw, float *y,
                       int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; o++) y[o] += dot_row(w + o * ldw, x, in);
}

void hk_gemv_cols_avx2(const float *x, int64_t in, const float *w, int64_t ldw, float *y,
                       int64_t lo, int64_t hi) {
    for (int64_t i = 0; i < in; i++) {
        const float *wr = w + i * ldw;
        const __m256 xi = _mm256_set1_ps(x[i]);
        int64_t o = lo;
        for (; o + 8 <= hi; o += 8)
            _mm256_storeu_ps(y + o, _mm256_fmadd_ps(xi, _mm256_loadu_ps(wr + o), _mm256_loadu_ps(y + o)));
        for (; o < hi; o++) y[o] = __builtin_fmaf(x[i], wr[o], y[o]); /* the lanes' rounding */
    }
}

#include "target_avx2_end.h"
#endif
