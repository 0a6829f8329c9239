/* Element-wise activations (in place) and the element-wise add/multiply used by the forward.
 * gelu_new, gelu and silu are vectorized (activation_simd.h, instantiated for AVX2+FMA and for
 * the portable 4-wide vectors); this file picks the instantiation at run time and splits long
 * vectors across OpenMP threads. */
#include "activation_internal.h"
#include "cpu_features.h"
#include "kernels.h"

#include <omp.h>

/* Elements below which an activation stays on the calling thread: a vectorized gelu costs
 * ~1 ns per 8 elements, so a fork (~1-5 µs with a warm team) pays off from ~64K elements. */
#define HK_ACT_PAR_MIN 65536
#define HK_ADD_PAR_MIN (1 << 20)

typedef void (*act_fn)(float *, int64_t);

static bool force_generic;

void hk_k_activation_force_generic(bool on) { force_generic = on; }

static bool use_avx2(void) {
#ifdef HK_ACT_HAVE_AVX2
    return !force_generic && hk_k_cpu_avx2_fma(false);
#else
    return false;
#endif
}

const char *hk_k_activation_isa(void) { return use_avx2() ? "avx2+fma" : "generic"; }

/* fn over x[0, n), split into one contiguous, cache-line aligned chunk per thread when long. */
static void run_act(act_fn fn, float *x, int64_t n) {
    if (n <= 0) return;
    if (n < HK_ACT_PAR_MIN || omp_get_max_threads() < 2 || omp_in_parallel()) {
        fn(x, n);
        return;
    }
#pragma omp parallel
    {
        const int64_t nth = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t per = ((n + nth - 1) / nth + 15) & ~(int64_t)15;
        const int64_t lo = t * per < n ? t * per : n;
        const int64_t hi = lo + per < n ? lo + per : n;
        if (hi > lo) fn(x + lo, hi - lo);
    }
}

void hk_k_gelu_new(float *x, int64_t n) {
#ifdef HK_ACT_HAVE_AVX2
    if (use_avx2()) {
        run_act(hk_act_gelu_new_avx2, x, n);
        return;
    }
#endif
    run_act(hk_act_gelu_new_generic, x, n);
}

void hk_k_gelu(float *x, int64_t n) {
#ifdef HK_ACT_HAVE_AVX2
    if (use_avx2()) {
        run_act(hk_act_gelu_avx2, x, n);
        return;
    }
#endif
    run_act(hk_act_gelu_generic, x, n);
}

void hk_k_silu(float *x, int64_t n) {
#ifdef HK_ACT_HAVE_AVX2
    if (use_avx2()) {
        run_act(hk_act_silu_avx2, x, n);
        return;
    }
#endif
    run_act(hk_act_silu_generic, x, n);
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
