/* y[n, out] = x[n, in] · Wᵀ (+ b) with W in ggml blocks: the activations are quantized to
 * 8-bit blocks first (hk_q8a for Q8_0/Q4_0/Q4_1, hk_q8k for the K quants, as ggml pairs them
 * with Q8_0/Q8_1 and Q8_K), then each output row is one dot product of its weight blocks with
 * each activation row (the row's blocks stay in L1 across the n ≤ HK_K_QLINEAR_MAX_ROWS
 * activation rows). Output rows are split across the decode team (pool.h: hookformer's pool,
 * or the OpenMP team with HK_THREADS_TEAM=omp). */
#include "cpu_features.h"
#include "kernels.h"
#include "pool.h"
#include "qdot_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

/* multiply-adds below which one thread does the whole product: handing a job to a spinning
 * worker costs ~1 µs, a 64K-element mat-vec on blocks ~5-10 µs */
#define HK_QLIN_PAR_MIN (1 << 16)
/* row slices per thread are multiples of this (keeps threads' y writes off shared lines) */
#define HK_QLIN_ROW_ALIGN 16

static bool force_generic;

void hk_k_qlinear_force_generic(bool on) { force_generic = on; }

static bool use_avx2(void) {
#ifdef HK_QDOT_HAVE_AVX2
    return !force_generic && hk_k_cpu_avx2_fma(true);
#else
    return false;
#endif
}

const char *hk_k_qlinear_isa(void) { return use_avx2() ? "avx2+fma+f16c" : "generic"; }

typedef struct {
    int64_t block, bytes; /* weight block: elements, bytes */
    bool k;               /* activations as hk_q8k (else hk_q8a) */
    hk_qdot_fn generic, avx2;
} qtype_info;

static bool type_info(uint32_t type, qtype_info *t) {
    switch (type) {
    case HK_K_Q8_0: *t = (qtype_info){32, HK_QB_Q8_0, false, hk_qdot_q8_0_generic, NULL}; break;
    case HK_K_Q4_0: *t = (qtype_info){32, HK_QB_Q4_0, false, hk_qdot_q4_0_generic, NULL}; break;
    case HK_K_Q4_1: *t = (qtype_info){32, HK_QB_Q4_1, false, hk_qdot_q4_1_generic, NULL}; break;
    case HK_K_Q4_K: *t = (qtype_info){256, HK_QB_Q4_K, true, hk_qdot_q4_k_generic, NULL}; break;
    case HK_K_Q5_K: *t = (qtype_info){256, HK_QB_Q5_K, true, hk_qdot_q5_k_generic, NULL}; break;
    case HK_K_Q6_K: *t = (qtype_info){256, HK_QB_Q6_K, true, hk_qdot_q6_k_generic, NULL}; break;
    default: return false;
    }
#ifdef HK_QDOT_HAVE_AVX2
    switch (type) {
    case HK_K_Q8_0: t->avx2 = hk_qdot_q8_0_avx2; break;
    case HK_K_Q4_0: t->avx2 = hk_qdot_q4_0_avx2; break;
    case HK_K_Q4_1: t->avx2 = hk_qdot_q4_1_avx2; break;
    case HK_K_Q4_K: t->avx2 = hk_qdot_q4_k_avx2; break;
    case HK_K_Q5_K: t->avx2 = hk_qdot_q5_k_avx2; break;
    case HK_K_Q6_K: t->avx2 = hk_qdot_q6_k_avx2; break;
    default: break;
    }
#endif
    return true;
}

bool hk_k_qlinear_supports(uint32_t type, int64_t in) {
    qtype_info t;
    return type_info(type, &t) && in > 0 && in % t.block == 0;
}

/* q[i] = round(x[i] / d) with d = max |x| / 127 (0 for an all-zero block); returns d */
static float quantize_run(const float *x, int n, int8_t *q) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        amax = a > amax ? a : amax; /* NaN never wins; fmaxf would be a libm call here */
    }
    const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < n; i++) { /* |v| <= 127 by construction; halves round away from 0 */
        const float v = x[i] * id;
        q[i] = (int8_t)(int)(v + (v < 0.0f ? -0.5f : 0.5f));
    }
    return d;
}

static void quantize_q8a(const float *x, int64_t nb, hk_q8a *out) { // x [nb * 32]
    for (int64_t b = 0; b < nb; b++, x += 32) {
        out[b].d = quantize_run(x, 32, out[b].q);
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += out[b].q[j];
        out[b].s = out[b].d * (float)s;
    }
}

static void quantize_q8k(const float *x, int64_t nb, hk_q8k *out) { // x [nb * 256]
    for (int64_t b = 0; b < nb; b++, x += 256) {
        out[b].d = quantize_run(x, 256, out[b].q);
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += out[b].q[16 * g + j];
            out[b].bsums[g] = (int16_t)s;
        }
    }
}

/* output rows [lo, hi) for every activation row */
static void rows(hk_qdot_fn dot, const uint8_t *w, size_t ldw, int64_t nb, const uint8_t *xa,
                 size_t xrow, int64_t n, const float *b, float *y, int64_t ldy, int64_t lo,
                 int64_t hi) {
    for (int64_t o = lo; o < hi; o++) {
        const uint8_t *wr = w + (size_t)o * ldw;
        const float bias = b ? b[o] : 0.0f;
        for (int64_t r = 0; r < n; r++) y[r * ldy + o] = dot(wr, xa + (size_t)r * xrow, nb) + bias;
    }
}

typedef struct {
    hk_qdot_fn dot;
    const uint8_t *w;
    size_t ldw;
    int64_t nb;
    const uint8_t *xa;
    size_t xrow;
    int64_t n;
    const float *b;
    float *y;
    int64_t ldy, out;
} rows_job;

/* share t of nt: a run of whole HK_QLIN_ROW_ALIGN-row slices */
static void rows_share(void *arg, int t, int nt) {
    const rows_job *j = arg;
    int64_t per = (j->out + nt - 1) / nt;
    per = (per + HK_QLIN_ROW_ALIGN - 1) / HK_QLIN_ROW_ALIGN * HK_QLIN_ROW_ALIGN;
    const int64_t lo = t * per < j->out ? t * per : j->out;
    const int64_t hi = lo + per < j->out ? lo + per : j->out;
    rows(j->dot, j->w, j->ldw, j->nb, j->xa, j->xrow, j->n, j->b, j->y, j->ldy, lo, hi);
}

bool hk_k_qlinear(const float *x, int64_t n, int64_t in, uint32_t type, const void *w,
                  size_t ldw, const float *b, int64_t out, float *y, int64_t ldy) {
    qtype_info t;
    if (!type_info(type, &t) || in <= 0 || in % t.block != 0) return false;
    if (n <= 0 || out <= 0) return true;
    const int64_t nb = in / t.block;
    const size_t xrow = (size_t)nb * (t.k ? sizeof(hk_q8k) : sizeof(hk_q8a));
    uint8_t *xa = malloc(xrow * (size_t)n); /* [n, nb] activation blocks */
    if (!xa) return false;
    for (int64_t r = 0; r < n; r++) {
        if (t.k)
            quantize_q8k(x + r * in, nb, (hk_q8k *)(xa + (size_t)r * xrow));
        else
            quantize_q8a(x + r * in, nb, (hk_q8a *)(xa + (size_t)r * xrow));
    }
    const hk_qdot_fn dot = use_avx2() && t.avx2 ? t.avx2 : t.generic;
    const int nth = omp_get_max_threads();
    const int64_t slices = (out + HK_QLIN_ROW_ALIGN - 1) / HK_QLIN_ROW_ALIGN;
    if (nth < 2 || omp_in_parallel() || n * out * in < HK_QLIN_PAR_MIN || slices < 2) {
        rows(dot, w, ldw, nb, xa, xrow, n, b, y, ldy, 0, out);
    } else {
        rows_job j = {dot, w, ldw, nb, xa, xrow, n, b, y, ldy, out};
        hk_k_parallel(slices < nth ? (int)slices : nth, rows_share, &j);
    }
    free(xa);
    return true;
}

void hk_k_linear_q(const float *x, int64_t n, int64_t in, const float *w, int64_t ldw,
                   bool in_out, uint32_t qtype, const void *qw, size_t q_ld, const float *b,
                   int64_t out, float *y, int64_t ldy) {
    if (qw && n <= HK_K_QLINEAR_MAX_ROWS &&
        hk_k_qlinear(x, n, in, qtype, qw, q_ld, b, out, y, ldy))
        return;
    hk_k_linear(x, n, in, w, ldw, in_out, b, out, y, ldy);
}
