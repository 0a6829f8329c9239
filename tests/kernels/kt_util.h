/* Helpers shared by the kernel tests: a seeded RNG and error measures. */
#ifndef HK_TESTS_KERNELS_UTIL_H
#define HK_TESTS_KERNELS_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    uint64_t s;
} kt_rng;

static inline uint64_t kt_next(kt_rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [lo, hi) */
static inline float kt_uniform(kt_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(kt_next(r) >> 40) / (double)(1ull << 24));
}
static inline int64_t kt_int(kt_rng *r, int64_t n) { return (int64_t)(kt_next(r) % (uint64_t)n); }
static inline void kt_fill(kt_rng *r, float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = kt_uniform(r, lo, hi);
}
static inline float *kt_alloc(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!p) abort();
    return p;
}
/* max |a - b| / (1 + |b|) */
static inline double kt_max_err(const float *a, const double *b, int64_t n) {
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]) / (1.0 + fabs(b[i]));
        if (!(d <= e)) e = d; /* NaN propagates as the max */
    }
    return e;
}
static inline double kt_max_err_f(const float *a, const float *b, int64_t n) {
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]) / (1.0 + fabs((double)b[i]));
        if (!(d <= e)) e = d;
    }
    return e;
}

#endif
