/* The CPU backend: the kernels of kernels/cpu behind the backend table (core/backend.h).
 * Device memory is host memory; the weights alias the host weights. Each op is a thin call
 * of its kernel, so the forward computes exactly what it computed before the table. */
#include "backend_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "error.h"

static void cpu_close(hk_backend *be) { free(be); }

/* A block of `total` bytes behind a 64-byte header; blocks from HK_CPU_MMAP_MIN on are mapped
 * and unmapped per allocation rather than malloc'ed: freed, a large block would raise glibc's
 * mmap threshold and land in the heap, where the next forward's block (behind a few small
 * allocations) often no longer fits the hole it left, so the heap, whose freed pages stay
 * resident, grew by one block per feed. Mapped, peak RSS is what the estimate says. */
#define HK_CPU_MMAP_MIN ((size_t)1 << 20)
typedef struct {
    size_t total; /* bytes mapped or allocated, header included */
    bool mapped;
} cpu_block;
#define CPU_HEADER 64

static hk_status cpu_alloc(hk_backend *be, size_t bytes, void **out) {
    (void)be;
    *out = NULL;
    const size_t total = CPU_HEADER + ((bytes + 63) / 64) * 64;
    if (total < bytes)
        return hk_errorf(HK_ERR_NOMEM, "backend cpu: cannot allocate %zu bytes", bytes);
    char *base;
    const bool mapped = total >= HK_CPU_MMAP_MIN;
    if (mapped) {
        base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) base = NULL;
    } else {
        base = aligned_alloc(64, total);
    }
    if (!base) return hk_errorf(HK_ERR_NOMEM, "backend cpu: cannot allocate %zu bytes", bytes);
    *(cpu_block *)(void *)base = (cpu_block){total, mapped};
    *out = base + CPU_HEADER;
    return HK_OK;
}

static void cpu_free(hk_backend *be, void *p) {
    (void)be;
    if (!p) return;
    char *base = (char *)p - CPU_HEADER;
    const cpu_block b = *(cpu_block *)(void *)base;
    if (b.mapped)
        munmap(base, b.total);
    else
        free(base);
}

static hk_status cpu_memset(hk_backend *be, void *dst, int value, size_t bytes) {
    (void)be;
    memset(dst, value, bytes);
    return HK_OK;
}

static hk_status cpu_copy(hk_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memcpy(dst, src, bytes);
    return HK_OK;
}

static hk_status cpu_copy2d(hk_backend *be, float *dst, int64_t ldd, const float *src,
                            int64_t lds, int64_t rows, int64_t cols) {
    (void)be;
    if (ldd == cols && lds == cols) {
        if (rows > 0 && cols > 0) memcpy(dst, src, (size_t)(rows * cols) * sizeof(float));
        return HK_OK;
    }
    for (int64_t i = 0; i < rows; i++)
        memcpy(dst + i * ldd, src + i * lds, (size_t)cols * sizeof(float));
    return HK_OK;
}

static hk_status cpu_sync(hk_backend *be) {
    (void)be;
    return HK_OK;
}

static void *cpu_stream(hk_backend *be) {
    (void)be;
    return NULL;
}

static hk_status cpu_weights_upload(hk_backend *be, const hk_config *c, const hk_weights *w,
                                    hk_dtype weights_dtype, hk_weights *dev) {
    (void)be, (void)c;
    if (weights_dtype != HK_DTYPE_F32)
        return hk_errorf(HK_ERR_UNSUPPORTED, "backend %s: weights_dtype %s: the CPU computes "
                                             "with f32 weights (f16/bf16 need a device "
                                             "backend, --device cuda)",
                         be->name, hk_dtype_name(weights_dtype));
    *dev = *w;
    return HK_OK;
}

static void cpu_weights_free(hk_backend *be, const hk_config *c, hk_weights *dev) {
    (void)be, (void)c;
    memset(dev, 0, sizeof *dev);
}

static hk_linear cpu_linear_slice(hk_backend *be, const hk_linear *l, int64_t in0, int64_t n_in,
                                  int64_t out0, int64_t n_out) {
    (void)be;
    hk_linear s = *l;
    s.n_in = n_in;
    s.n_out = n_out;
    /* [out, in]: w[o * ld + i]; [in, out]: w[i * ld + o] */
    s.w = l->in_out ? l->w + in0 * l->ld + out0 : l->w + out0 * l->ld + in0;
    s.b = l->b ? l->b + out0 : NULL;
    return s;
}

static hk_status cpu_linear(hk_backend *be, const hk_linear *l, const float *x, int64_t rows,
                            float *y, int64_t ldy) {
    (void)be;
    hk_k_linear(x, rows, l->n_in, l->w, l->ld, l->in_out, l->b, l->n_out, y, ldy);
    return HK_OK;
}

static hk_status cpu_layernorm(hk_backend *be, const float *x, int64_t n, int64_t d,
                               const float *w, const float *b, float eps, float *y,
                               float *scale_out) {
    (void)be;
    hk_k_layernorm(x, n, d, w, b, eps, y, scale_out);
    return HK_OK;
}

static hk_status cpu_rmsnorm(hk_backend *be, const float *x, int64_t n, int64_t d,
                             const float *w, float eps, float *y, float *scale_out) {
    (void)be;
    hk_k_rmsnorm(x, n, d, w, eps, y, scale_out);
    return HK_OK;
}

/* row statistics in double, as the norm kernels compute them */
static hk_status cpu_norm_stats(hk_backend *be, const float *x, int64_t n, int64_t d,
                                bool center, double eps, float *mean_out, float *scale) {
    (void)be;
#pragma omp parallel for schedule(static) if (n * d >= 32768)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        double mean = 0, sq = 0;
        if (center) {
            for (int64_t j = 0; j < d; j++) mean += xi[j];
            mean /= (double)d;
        }
        for (int64_t j = 0; j < d; j++) sq += ((double)xi[j] - mean) * ((double)xi[j] - mean);
        mean_out[i] = (float)mean;
        scale[i] = (float)sqrt(sq / (double)d + eps);
    }
    return HK_OK;
}

static hk_status cpu_norm_divide(hk_backend *be, const float *x, int64_t n, int64_t d,
                                 const float *mean_in, const float *scale, float *y) {
    (void)be;
#pragma omp parallel for schedule(static) if (n * d >= 32768)
    for (int64_t i = 0; i < n; i++) {
        const double inv = 1.0 / (double)scale[i], mean = (double)mean_in[i];
        for (int64_t j = 0; j < d; j++) y[i * d + j] = (float)(((double)x[i * d + j] - mean) * inv);
    }
    return HK_OK;
}

static hk_status cpu_norm_affine(hk_backend *be, float *y, int64_t n, int64_t d, const float *w,
                                 const float *b) {
    (void)be;
#pragma omp parallel for schedule(static) if (n * d >= 32768)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) y[i * d + j] = y[i * d + j] * w[j] + (b ? b[j] : 0.0f);
    return HK_OK;
}

static hk_status cpu_act(hk_backend *be, hk_act_kind a, float *x, int64_t n) {
    (void)be;
    switch (a) {
    case HK_ACT_GELU_NEW: hk_k_gelu_new(x, n); return HK_OK;
    case HK_ACT_GELU: hk_k_gelu(x, n); return HK_OK;
    case HK_ACT_SILU: hk_k_silu(x, n); return HK_OK;
    case HK_ACT_RELU: hk_k_relu(x, n); return HK_OK;
    }
    return hk_errorf(HK_ERR_INVALID_ARG, "backend act: unknown activation %d", (int)a);
}

static hk_status cpu_glu(hk_backend *be, hk_act_kind a, float *gate, const float *up,
                         int64_t n) {
    hk_status st = cpu_act(be, a, gate, n);
    if (st == HK_OK) hk_k_mul(gate, up, n);
    return st;
}

static hk_status cpu_add(hk_backend *be, float *y, const float *x, int64_t n) {
    (void)be;
    hk_k_add(y, x, n);
    return HK_OK;
}

static hk_status cpu_mul(hk_backend *be, float *y, const float *x, int64_t n) {
    (void)be;
    hk_k_mul(y, x, n);
    return HK_OK;
}

static hk_status cpu_scale(hk_backend *be, float *x, int64_t n, float f) {
    (void)be;
    for (int64_t i = 0; i < n; i++) x[i] *= f;
    return HK_OK;
}

static hk_status cpu_sigmoid(hk_backend *be, float *x, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
    return HK_OK;
}

static hk_status cpu_softcap(hk_backend *be, float *x, int64_t n, float cap) {
    (void)be;
    for (int64_t i = 0; i < n; i++) x[i] = hk_softcap(x[i], cap);
    return HK_OK;
}

static hk_status cpu_embed(hk_backend *be, const float *table, int64_t d, const int32_t *ids,
                           int64_t n, float *out) {
    (void)be;
    hk_k_embed(table, d, ids, n, out);
    return HK_OK;
}

static hk_status cpu_rope(hk_backend *be, float *x, int64_t n, int64_t heads, int64_t d_head,
                          int64_t ld, int64_t rot_dim, const float *cos, const float *sin) {
    (void)be;
    hk_k_rope(x, n, heads, d_head, ld, rot_dim, cos, sin);
    return HK_OK;
}

static hk_status cpu_attention(hk_backend *be, const float *q, int64_t ldq, const float *k,
                               int64_t ldk, const float *v, int64_t ldv, int64_t sq, int64_t sk,
                               int64_t n_heads, int64_t n_kv_heads, int64_t d_head, float scale,
                               const hk_k_mask *mask, float *out, int64_t ldo) {
    (void)be;
    hk_k_attention(q, ldq, k, ldk, v, ldv, sq, sk, n_heads, n_kv_heads, d_head, scale, mask, out,
                   ldo);
    return HK_OK;
}

static hk_status cpu_attention_scores(hk_backend *be, const float *q, int64_t ldq,
                                      const float *k, int64_t ldk, int64_t sq, int64_t sk,
                                      int64_t n_heads, int64_t n_kv_heads, int64_t d_head,
                                      float scale, const hk_k_mask *mask, float *scores) {
    (void)be;
    hk_k_attention_scores(q, ldq, k, ldk, sq, sk, n_heads, n_kv_heads, d_head, scale, mask,
                          scores);
    return HK_OK;
}

static hk_status cpu_softmax_rows(hk_backend *be, const float *scores, int64_t rows, int64_t n,
                                  float *pattern) {
    (void)be;
    hk_k_softmax_rows(scores, rows, n, pattern);
    return HK_OK;
}

static hk_status cpu_attention_apply(hk_backend *be, const float *pattern, const float *v,
                                     int64_t ldv, int64_t sq, int64_t sk, int64_t n_heads,
                                     int64_t n_kv_heads, int64_t d_head, float *out,
                                     int64_t ldo) {
    (void)be;
    hk_k_attention_apply(pattern, v, ldv, sq, sk, n_heads, n_kv_heads, d_head, out, ldo);
    return HK_OK;
}

static hk_status cpu_kv_write(hk_backend *be, float *cache, int64_t ring, int64_t pos0,
                              const float *src, int64_t lds, int64_t n, int64_t width) {
    (void)be;
    if (ring > 0 && n > ring)
        return hk_errorf(HK_ERR_INVALID_ARG, "backend kv_write: %lld rows into a rolling buffer "
                                             "of %lld slots",
                         (long long)n, (long long)ring);
    if (ring <= 0) {
        for (int64_t t = 0; t < n; t++)
            memcpy(cache + (pos0 + t) * width, src + t * lds, (size_t)width * sizeof(float));
        return HK_OK;
    }
    for (int64_t t = 0; t < n; t++)
        memcpy(cache + ((pos0 + t) % ring) * width, src + t * lds, (size_t)width * sizeof(float));
    return HK_OK;
}

static hk_status cpu_router_softmax(hk_backend *be, const float *x, int64_t rows, int64_t n,
                                    float *y) {
    (void)be;
    for (int64_t i = 0; i < rows; i++) {
        const float *xi = x + i * n;
        float *yi = y + i * n;
        float mx = -INFINITY;
        for (int64_t j = 0; j < n; j++) mx = xi[j] > mx ? xi[j] : mx;
        double sum = 0;
        for (int64_t j = 0; j < n; j++) sum += exp((double)xi[j] - mx);
        for (int64_t j = 0; j < n; j++)
            yi[j] = mx == -INFINITY ? 0.0f : (float)(exp((double)xi[j] - mx) / sum);
    }
    return HK_OK;
}

static hk_status cpu_topk_route(hk_backend *be, const float *probs, int64_t rows, int64_t E,
                                int64_t k, bool renorm, float *ids_out, float *mix_out) {
    (void)be;
    if (E < 1 || E > HK_MAX_EXPERTS || k < 1 || k > E)
        return hk_errorf(HK_ERR_INVALID_ARG, "backend topk_route: %lld of %lld experts (expected "
                                             "1 <= k <= n_experts <= %d)",
                         (long long)k, (long long)E, HK_MAX_EXPERTS);
    for (int64_t i = 0; i < rows; i++) {
        const float *p = probs + i * E;
        float *ids = ids_out + i * k, *mix = mix_out + i * k;
        bool taken[HK_MAX_EXPERTS];
        memset(taken, 0, (size_t)E * sizeof *taken);
        double sum = 0;
        for (int64_t j = 0; j < k; j++) {
            int64_t best = -1;
            for (int64_t e = 0; e < E; e++)
                if (!taken[e] && (best < 0 || p[e] > p[best])) best = e;
            taken[best] = true;
            ids[j] = (float)best;
            mix[j] = p[best];
            sum += p[best];
        }
        if (renorm && sum > 0) /* every expert banned (all weights 0): no mixing */
            for (int64_t j = 0; j < k; j++) mix[j] = (float)((double)mix[j] / sum);
    }
    return HK_OK;
}

static hk_status cpu_gather_rows(hk_backend *be, float *dst, const float *src, int64_t d,
                                 const int64_t *idx, int64_t div, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++)
        memcpy(dst + i * d, src + (idx[i] / div) * d, (size_t)d * sizeof(float));
    return HK_OK;
}

static hk_status cpu_scatter_rows(hk_backend *be, float *dst, const float *src, int64_t d,
                                  const int64_t *idx, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++)
        memcpy(dst + idx[i] * d, src + i * d, (size_t)d * sizeof(float));
    return HK_OK;
}

static hk_status cpu_combine_rows(hk_backend *be, float *y, const float *x, int64_t d,
                                  const int64_t *idx, int64_t div, const float *w, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        const int64_t a = idx ? idx[i] : i;
        float *dst = y + (idx ? a / div : i) * d;
        const float m = w[a];
        const float *src = x + i * d;
        for (int64_t j = 0; j < d; j++) dst[j] += m * src[j];
    }
    return HK_OK;
}

static hk_status cpu_sample(hk_backend *be, const float *logits, int64_t vocab,
                            const hk_sampler_opts *o, uint64_t *rng, int32_t *out) {
    (void)be;
    return hk_sample(logits, vocab, o, rng, out);
}

void hk_backend_cpu_fill(hk_backend *be) {
    be->close = cpu_close;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->memset = cpu_memset;
    be->to_device = cpu_copy;
    be->to_host = cpu_copy;
    be->copy = cpu_copy;
    be->copy2d = cpu_copy2d;
    be->sync = cpu_sync;
    be->stream = cpu_stream;
    be->weights_upload = cpu_weights_upload;
    be->weights_free = cpu_weights_free;
    be->linear_slice = cpu_linear_slice;
    be->linear = cpu_linear;
    be->layernorm = cpu_layernorm;
    be->rmsnorm = cpu_rmsnorm;
    be->norm_stats = cpu_norm_stats;
    be->norm_divide = cpu_norm_divide;
    be->norm_affine = cpu_norm_affine;
    be->act = cpu_act;
    be->glu = cpu_glu;
    be->add = cpu_add;
    be->mul = cpu_mul;
    be->scale = cpu_scale;
    be->sigmoid = cpu_sigmoid;
    be->softcap = cpu_softcap;
    be->embed = cpu_embed;
    be->rope = cpu_rope;
    be->attention = cpu_attention;
    be->attention_scores = cpu_attention_scores;
    be->softmax_rows = cpu_softmax_rows;
    be->attention_apply = cpu_attention_apply;
    be->kv_write = cpu_kv_write;
    be->router_softmax = cpu_router_softmax;
    be->topk_route = cpu_topk_route;
    be->gather_rows = cpu_gather_rows;
    be->scatter_rows = cpu_scatter_rows;
    be->combine_rows = cpu_combine_rows;
    be->sample = cpu_sample;
}

hk_status hk_backend_cpu_open(hk_backend **out) {
    hk_backend *be = calloc(1, sizeof *be);
    if (!be) return hk_errorf(HK_ERR_NOMEM, "backend cpu: out of memory");
    be->name = "cpu";
    be->device = HK_DEVICE_CPU;
    be->host_memory = true;
    hk_backend_cpu_fill(be);
    *out = be;
    return HK_OK;
}
