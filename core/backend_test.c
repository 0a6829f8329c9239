/* The test backend: the CPU ops (core/backend_cpu.c) behind pointer checks, on "device"
 * memory that is a set of separate allocations tracked in a registry (sorted by address).
 * Each op checks every device argument over the extent it reads or writes; host arguments
 * (the mask spec, sampler options, the host side of copies) are not device memory and are
 * refused where a device pointer belongs. */
#include "backend_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"
#include "backend_weights.h"
#include "error.h"

/* ---- the registry of live device blocks (all instances) ---- */

typedef struct {
    uintptr_t base;
    size_t bytes;
} dev_block;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static dev_block *reg;  /* [n_reg] sorted by base */
static size_t n_reg, cap_reg;

/* Index of the first block with base > p. */
static size_t reg_upper(uintptr_t p) {
    size_t lo = 0, hi = n_reg;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (reg[mid].base <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool reg_add(void *p, size_t bytes) {
    pthread_mutex_lock(&reg_lock);
    bool ok = true;
    if (n_reg == cap_reg) {
        size_t cap = cap_reg ? 2 * cap_reg : 256;
        dev_block *r = realloc(reg, cap * sizeof *r);
        if (!r) ok = false;
        else {
            reg = r;
            cap_reg = cap;
        }
    }
    if (ok) {
        size_t i = reg_upper((uintptr_t)p);
        memmove(reg + i + 1, reg + i, (n_reg - i) * sizeof *reg);
        reg[i] = (dev_block){(uintptr_t)p, bytes};
        n_reg++;
    }
    pthread_mutex_unlock(&reg_lock);
    return ok;
}

/* Removes p's block; its size, or 0 when p is no live block's base. */
static size_t reg_remove(const void *p) {
    pthread_mutex_lock(&reg_lock);
    size_t i = reg_upper((uintptr_t)p), bytes = 0;
    if (i > 0 && reg[i - 1].base == (uintptr_t)p) {
        bytes = reg[i - 1].bytes;
        memmove(reg + i - 1, reg + i, (n_reg - i) * sizeof *reg);
        n_reg--;
    }
    pthread_mutex_unlock(&reg_lock);
    return bytes;
}

bool hk_backend_test_is_device(const void *p, size_t bytes) {
    if (!p) return false;
    pthread_mutex_lock(&reg_lock);
    size_t i = reg_upper((uintptr_t)p);
    bool in = false;
    if (i > 0) {
        const uintptr_t off = (uintptr_t)p - reg[i - 1].base;
        in = off < reg[i - 1].bytes && bytes <= reg[i - 1].bytes - off;
    }
    pthread_mutex_unlock(&reg_lock);
    return in;
}

/* ---- checks ---- */

/* arg of op must be device memory over bytes (bytes 0: nothing is touched, anything goes). */
static hk_status dev_arg(const char *op, const char *arg, const void *p, size_t bytes) {
    if (bytes == 0 || hk_backend_test_is_device(p, bytes)) return HK_OK;
    return hk_errorf(HK_ERR_INVALID_ARG,
                     "backend test: %s: argument '%s' (%p, %zu bytes) is not inside a live "
                     "device block (a host pointer, a freed block, or past a block's end)",
                     op, arg, p, bytes);
}

/* and a host argument must not be device memory */
static hk_status host_arg(const char *op, const char *arg, const void *p, size_t bytes) {
    if (bytes == 0 || !hk_backend_test_is_device(p, 1)) return HK_OK;
    return hk_errorf(HK_ERR_INVALID_ARG,
                     "backend test: %s: argument '%s' (%p) is device memory where host memory "
                     "belongs (copies between device blocks go through copy)",
                     op, arg, p);
}

#define F(n) ((size_t)(n) * sizeof(float))
/* floats a [rows, cols] view with row stride ld spans */
static size_t span(int64_t rows, int64_t cols, int64_t ld) {
    return rows > 0 && cols > 0 ? F((rows - 1) * ld + cols) : 0;
}
#define CHECK(e)                          \
    do {                                  \
        hk_status st_ = (e);              \
        if (st_ != HK_OK) return st_;     \
    } while (0)

/* the CPU table the checked ops call */
static hk_backend cpu;

typedef struct {
    hk_weight_upload weights;
} test_ctx;

/* ---- memory ---- */

static void t_close(hk_backend *be) {
    free(be->ctx);
    free(be);
}

static hk_status t_alloc(hk_backend *be, size_t bytes, void **out) {
    CHECK(cpu.alloc(&cpu, bytes, out));
    size_t n = bytes ? bytes : 64;
    if (!reg_add(*out, n)) {
        cpu.free(&cpu, *out);
        *out = NULL;
        return hk_errorf(HK_ERR_NOMEM, "backend test: out of memory for the block registry");
    }
    be->counters.allocs++;
    be->counters.live_blocks++;
    be->counters.live_bytes += n;
    if (be->counters.live_bytes > be->counters.peak_bytes)
        be->counters.peak_bytes = be->counters.live_bytes;
    return HK_OK;
}

static void t_free(hk_backend *be, void *p) {
    if (!p) return;
    size_t bytes = reg_remove(p);
    if (!bytes) return; /* not a block's base: a double free or a host pointer, left alone */
    be->counters.live_blocks--;
    be->counters.live_bytes -= bytes;
    cpu.free(&cpu, p);
}

static hk_status t_memset(hk_backend *be, void *dst, int value, size_t bytes) {
    (void)be;
    CHECK(dev_arg("memset", "dst", dst, bytes));
    return cpu.memset(&cpu, dst, value, bytes);
}

static hk_status t_to_device(hk_backend *be, void *dst, const void *src, size_t bytes) {
    CHECK(dev_arg("to_device", "dst", dst, bytes));
    CHECK(host_arg("to_device", "src", src, bytes));
    be->counters.h2d++;
    be->counters.h2d_bytes += bytes;
    return cpu.copy(&cpu, dst, src, bytes);
}

static hk_status t_to_host(hk_backend *be, void *dst, const void *src, size_t bytes) {
    CHECK(dev_arg("to_host", "src", src, bytes));
    CHECK(host_arg("to_host", "dst", dst, bytes));
    be->counters.d2h++;
    be->counters.d2h_bytes += bytes;
    return cpu.copy(&cpu, dst, src, bytes);
}

static hk_status t_copy(hk_backend *be, void *dst, const void *src, size_t bytes) {
    CHECK(dev_arg("copy", "dst", dst, bytes));
    CHECK(dev_arg("copy", "src", src, bytes));
    be->counters.d2d++;
    be->counters.d2d_bytes += bytes;
    return cpu.copy(&cpu, dst, src, bytes);
}

static hk_status t_copy2d(hk_backend *be, float *dst, int64_t ldd, const float *src,
                          int64_t lds, int64_t rows, int64_t cols) {
    CHECK(dev_arg("copy2d", "dst", dst, span(rows, cols, ldd)));
    CHECK(dev_arg("copy2d", "src", src, span(rows, cols, lds)));
    be->counters.d2d++;
    be->counters.d2d_bytes += F(rows * cols);
    return cpu.copy2d(&cpu, dst, ldd, src, lds, rows, cols);
}

static hk_status t_sync(hk_backend *be) {
    be->counters.syncs++;
    return HK_OK;
}

static void *t_stream(hk_backend *be) {
    (void)be;
    return NULL;
}

/* ---- weights ---- */

static hk_status t_weights_upload(hk_backend *be, const hk_config *c, const hk_weights *w,
                                  hk_dtype weights_dtype, hk_weights *dev) {
    if (weights_dtype != HK_DTYPE_F32)
        return hk_errorf(HK_ERR_UNSUPPORTED, "backend test: weights_dtype %s: the test backend "
                                             "computes with f32 weights (CPU kernels)",
                         hk_dtype_name(weights_dtype));
    test_ctx *t = be->ctx;
    return hk_backend_weights_copy(be, c, w, dev, &t->weights);
}

static void t_weights_free(hk_backend *be, const hk_config *c, hk_weights *dev) {
    (void)c;
    test_ctx *t = be->ctx;
    hk_backend_weights_release(be, &t->weights);
    memset(dev, 0, sizeof *dev);
}

static hk_linear t_linear_slice(hk_backend *be, const hk_linear *l, int64_t in0, int64_t n_in,
                                int64_t out0, int64_t n_out) {
    (void)be;
    return cpu.linear_slice(&cpu, l, in0, n_in, out0, n_out);
}

/* the floats a linear's matrix spans */
static size_t w_span(const hk_linear *l) {
    return l->in_out ? span(l->n_in, l->n_out, l->ld) : span(l->n_out, l->n_in, l->ld);
}

/* ---- dense ops ---- */

static hk_status t_linear(hk_backend *be, const hk_linear *l, const float *x, int64_t rows,
                          float *y, int64_t ldy) {
    (void)be;
    CHECK(dev_arg("linear", "x", x, F(rows * l->n_in)));
    CHECK(dev_arg("linear", "w", l->w, w_span(l)));
    if (l->b) CHECK(dev_arg("linear", "b", l->b, F(l->n_out)));
    CHECK(dev_arg("linear", "y", y, span(rows, l->n_out, ldy)));
    return cpu.linear(&cpu, l, x, rows, y, ldy);
}

static hk_status t_layernorm(hk_backend *be, const float *x, int64_t n, int64_t d,
                             const float *w, const float *b, float eps, float *y,
                             float *scale_out) {
    (void)be;
    CHECK(dev_arg("layernorm", "x", x, F(n * d)));
    CHECK(dev_arg("layernorm", "w", w, F(d)));
    if (b) CHECK(dev_arg("layernorm", "b", b, F(d)));
    CHECK(dev_arg("layernorm", "y", y, F(n * d)));
    if (scale_out) CHECK(dev_arg("layernorm", "scale_out", scale_out, F(n)));
    return cpu.layernorm(&cpu, x, n, d, w, b, eps, y, scale_out);
}

static hk_status t_rmsnorm(hk_backend *be, const float *x, int64_t n, int64_t d, const float *w,
                           float eps, float *y, float *scale_out) {
    (void)be;
    CHECK(dev_arg("rmsnorm", "x", x, F(n * d)));
    CHECK(dev_arg("rmsnorm", "w", w, F(d)));
    CHECK(dev_arg("rmsnorm", "y", y, F(n * d)));
    if (scale_out) CHECK(dev_arg("rmsnorm", "scale_out", scale_out, F(n)));
    return cpu.rmsnorm(&cpu, x, n, d, w, eps, y, scale_out);
}

static hk_status t_norm_stats(hk_backend *be, const float *x, int64_t n, int64_t d, bool center,
                              double eps, float *mean, float *scale) {
    (void)be;
    CHECK(dev_arg("norm_stats", "x", x, F(n * d)));
    CHECK(dev_arg("norm_stats", "mean", mean, F(n)));
    CHECK(dev_arg("norm_stats", "scale", scale, F(n)));
    return cpu.norm_stats(&cpu, x, n, d, center, eps, mean, scale);
}

static hk_status t_norm_divide(hk_backend *be, const float *x, int64_t n, int64_t d,
                               const float *mean, const float *scale, float *y) {
    (void)be;
    CHECK(dev_arg("norm_divide", "x", x, F(n * d)));
    CHECK(dev_arg("norm_divide", "mean", mean, F(n)));
    CHECK(dev_arg("norm_divide", "scale", scale, F(n)));
    CHECK(dev_arg("norm_divide", "y", y, F(n * d)));
    return cpu.norm_divide(&cpu, x, n, d, mean, scale, y);
}

static hk_status t_norm_affine(hk_backend *be, float *y, int64_t n, int64_t d, const float *w,
                               const float *b) {
    (void)be;
    CHECK(dev_arg("norm_affine", "y", y, F(n * d)));
    CHECK(dev_arg("norm_affine", "w", w, F(d)));
    if (b) CHECK(dev_arg("norm_affine", "b", b, F(d)));
    return cpu.norm_affine(&cpu, y, n, d, w, b);
}

static hk_status t_act(hk_backend *be, hk_act_kind a, float *x, int64_t n) {
    (void)be;
    CHECK(dev_arg("act", "x", x, F(n)));
    return cpu.act(&cpu, a, x, n);
}

static hk_status t_glu(hk_backend *be, hk_act_kind a, float *gate, const float *up, int64_t n) {
    (void)be;
    CHECK(dev_arg("glu", "gate", gate, F(n)));
    CHECK(dev_arg("glu", "up", up, F(n)));
    return cpu.glu(&cpu, a, gate, up, n);
}

static hk_status t_add(hk_backend *be, float *y, const float *x, int64_t n) {
    (void)be;
    CHECK(dev_arg("add", "y", y, F(n)));
    CHECK(dev_arg("add", "x", x, F(n)));
    return cpu.add(&cpu, y, x, n);
}

static hk_status t_mul(hk_backend *be, float *y, const float *x, int64_t n) {
    (void)be;
    CHECK(dev_arg("mul", "y", y, F(n)));
    CHECK(dev_arg("mul", "x", x, F(n)));
    return cpu.mul(&cpu, y, x, n);
}

static hk_status t_scale(hk_backend *be, float *x, int64_t n, float f) {
    (void)be;
    CHECK(dev_arg("scale", "x", x, F(n)));
    return cpu.scale(&cpu, x, n, f);
}

static hk_status t_sigmoid(hk_backend *be, float *x, int64_t n) {
    (void)be;
    CHECK(dev_arg("sigmoid", "x", x, F(n)));
    return cpu.sigmoid(&cpu, x, n);
}

static hk_status t_softcap(hk_backend *be, float *x, int64_t n, float cap) {
    (void)be;
    CHECK(dev_arg("softcap", "x", x, F(n)));
    return cpu.softcap(&cpu, x, n, cap);
}

static hk_status t_embed(hk_backend *be, const float *table, int64_t d, const int32_t *ids,
                         int64_t n, float *out) {
    (void)be;
    CHECK(dev_arg("embed", "ids", ids, (size_t)n * sizeof *ids));
    CHECK(dev_arg("embed", "out", out, F(n * d)));
    for (int64_t i = 0; i < n; i++) /* the rows read: ids are device memory the check may see */
        CHECK(dev_arg("embed", "table", table + (int64_t)ids[i] * d, F(d)));
    return cpu.embed(&cpu, table, d, ids, n, out);
}

static hk_status t_rope(hk_backend *be, float *x, int64_t n, int64_t heads, int64_t d_head,
                        int64_t ld, int64_t rot_dim, const float *cos, const float *sin) {
    (void)be;
    CHECK(dev_arg("rope", "x", x, span(n, heads * d_head, ld)));
    CHECK(dev_arg("rope", "cos", cos, F(n * (rot_dim / 2))));
    CHECK(dev_arg("rope", "sin", sin, F(n * (rot_dim / 2))));
    return cpu.rope(&cpu, x, n, heads, d_head, ld, rot_dim, cos, sin);
}

/* ---- attention ---- */

static hk_status t_attention(hk_backend *be, const float *q, int64_t ldq, const float *k,
                             int64_t ldk, const float *v, int64_t ldv, int64_t sq, int64_t sk,
                             int64_t nh, int64_t nkv, int64_t dh, float scale,
                             const hk_k_mask *mask, float *out, int64_t ldo) {
    (void)be;
    CHECK(dev_arg("attention", "q", q, span(sq, nh * dh, ldq)));
    CHECK(dev_arg("attention", "k", k, span(sk, nkv * dh, ldk)));
    CHECK(dev_arg("attention", "v", v, span(sk, nkv * dh, ldv)));
    CHECK(dev_arg("attention", "out", out, span(sq, nh * dh, ldo)));
    if (mask) CHECK(host_arg("attention", "mask", mask, sizeof *mask));
    return cpu.attention(&cpu, q, ldq, k, ldk, v, ldv, sq, sk, nh, nkv, dh, scale, mask, out,
                         ldo);
}

static hk_status t_attention_scores(hk_backend *be, const float *q, int64_t ldq, const float *k,
                                    int64_t ldk, int64_t sq, int64_t sk, int64_t nh,
                                    int64_t nkv, int64_t dh, float scale, const hk_k_mask *mask,
                                    float *scores) {
    (void)be;
    CHECK(dev_arg("attention_scores", "q", q, span(sq, nh * dh, ldq)));
    CHECK(dev_arg("attention_scores", "k", k, span(sk, nkv * dh, ldk)));
    CHECK(dev_arg("attention_scores", "scores", scores, F(nh * sq * sk)));
    if (mask) CHECK(host_arg("attention_scores", "mask", mask, sizeof *mask));
    return cpu.attention_scores(&cpu, q, ldq, k, ldk, sq, sk, nh, nkv, dh, scale, mask, scores);
}

static hk_status t_softmax_rows(hk_backend *be, const float *scores, int64_t rows, int64_t n,
                                float *pattern) {
    (void)be;
    CHECK(dev_arg("softmax_rows", "scores", scores, F(rows * n)));
    CHECK(dev_arg("softmax_rows", "pattern", pattern, F(rows * n)));
    return cpu.softmax_rows(&cpu, scores, rows, n, pattern);
}

static hk_status t_attention_apply(hk_backend *be, const float *pattern, const float *v,
                                   int64_t ldv, int64_t sq, int64_t sk, int64_t nh, int64_t nkv,
                                   int64_t dh, float *out, int64_t ldo) {
    (void)be;
    CHECK(dev_arg("attention_apply", "pattern", pattern, F(nh * sq * sk)));
    CHECK(dev_arg("attention_apply", "v", v, span(sk, nkv * dh, ldv)));
    CHECK(dev_arg("attention_apply", "out", out, span(sq, nh * dh, ldo)));
    return cpu.attention_apply(&cpu, pattern, v, ldv, sq, sk, nh, nkv, dh, out, ldo);
}

static hk_status t_kv_write(hk_backend *be, float *cache, int64_t ring, int64_t pos0,
                            const float *src, int64_t lds, int64_t n, int64_t width) {
    (void)be;
    CHECK(dev_arg("kv_write", "cache", cache, F((ring > 0 ? ring : pos0 + n) * width)));
    CHECK(dev_arg("kv_write", "src", src, span(n, width, lds)));
    return cpu.kv_write(&cpu, cache, ring, pos0, src, lds, n, width);
}

/* ---- mixture of experts ---- */

static hk_status t_router_softmax(hk_backend *be, const float *x, int64_t rows, int64_t n,
                                  float *y) {
    (void)be;
    CHECK(dev_arg("router_softmax", "x", x, F(rows * n)));
    CHECK(dev_arg("router_softmax", "y", y, F(rows * n)));
    return cpu.router_softmax(&cpu, x, rows, n, y);
}

static hk_status t_topk_route(hk_backend *be, const float *probs, int64_t rows, int64_t E,
                              int64_t k, bool renorm, float *ids, float *mix) {
    (void)be;
    CHECK(dev_arg("topk_route", "probs", probs, F(rows * E)));
    CHECK(dev_arg("topk_route", "ids", ids, F(rows * k)));
    CHECK(dev_arg("topk_route", "mix", mix, F(rows * k)));
    return cpu.topk_route(&cpu, probs, rows, E, k, renorm, ids, mix);
}

static hk_status t_gather_rows(hk_backend *be, float *dst, const float *src, int64_t d,
                               const int64_t *idx, int64_t div, int64_t n) {
    (void)be;
    CHECK(dev_arg("gather_rows", "dst", dst, F(n * d)));
    CHECK(dev_arg("gather_rows", "idx", idx, (size_t)n * sizeof *idx));
    for (int64_t i = 0; i < n; i++)
        CHECK(dev_arg("gather_rows", "src", src + (idx[i] / div) * d, F(d)));
    return cpu.gather_rows(&cpu, dst, src, d, idx, div, n);
}

static hk_status t_scatter_rows(hk_backend *be, float *dst, const float *src, int64_t d,
                                const int64_t *idx, int64_t n) {
    (void)be;
    CHECK(dev_arg("scatter_rows", "src", src, F(n * d)));
    CHECK(dev_arg("scatter_rows", "idx", idx, (size_t)n * sizeof *idx));
    for (int64_t i = 0; i < n; i++)
        CHECK(dev_arg("scatter_rows", "dst", dst + idx[i] * d, F(d)));
    return cpu.scatter_rows(&cpu, dst, src, d, idx, n);
}

static hk_status t_combine_rows(hk_backend *be, float *y, const float *x, int64_t d,
                                const int64_t *idx, int64_t div, const float *w, int64_t n) {
    (void)be;
    CHECK(dev_arg("combine_rows", "x", x, F(n * d)));
    if (idx) CHECK(dev_arg("combine_rows", "idx", idx, (size_t)n * sizeof *idx));
    for (int64_t i = 0; i < n; i++) {
        const int64_t a = idx ? idx[i] : i;
        CHECK(dev_arg("combine_rows", "y", y + (idx ? a / div : i) * d, F(d)));
        CHECK(dev_arg("combine_rows", "w", w + a, F(1)));
    }
    return cpu.combine_rows(&cpu, y, x, d, idx, div, w, n);
}

static hk_status t_sample(hk_backend *be, const float *logits, int64_t vocab,
                          const hk_sampler_opts *o, uint64_t *rng, int32_t *out) {
    (void)be;
    CHECK(dev_arg("sample", "logits", logits, F(vocab)));
    if (o) CHECK(host_arg("sample", "opts", o, sizeof *o));
    if (rng) CHECK(host_arg("sample", "rng", rng, sizeof *rng));
    CHECK(host_arg("sample", "out", out, sizeof *out));
    return cpu.sample(&cpu, logits, vocab, o, rng, out);
}

hk_status hk_backend_test_open(hk_backend **out) {
    if (!cpu.alloc) hk_backend_cpu_fill(&cpu); /* the same table every time: idempotent */
    hk_backend *be = calloc(1, sizeof *be);
    test_ctx *t = calloc(1, sizeof *t);
    if (!be || !t) {
        free(be);
        free(t);
        return hk_errorf(HK_ERR_NOMEM, "backend test: out of memory");
    }
    *be = (hk_backend){
        .name = "test",
        .device = HK_DEVICE_TEST,
        .host_memory = false,
        .ctx = t,
        .close = t_close,
        .alloc = t_alloc,
        .free = t_free,
        .memset = t_memset,
        .to_device = t_to_device,
        .to_host = t_to_host,
        .copy = t_copy,
        .copy2d = t_copy2d,
        .sync = t_sync,
        .stream = t_stream,
        .weights_upload = t_weights_upload,
        .weights_free = t_weights_free,
        .linear_slice = t_linear_slice,
        .linear = t_linear,
        .layernorm = t_layernorm,
        .rmsnorm = t_rmsnorm,
        .norm_stats = t_norm_stats,
        .norm_divide = t_norm_divide,
        .norm_affine = t_norm_affine,
        .act = t_act,
        .glu = t_glu,
        .add = t_add,
        .mul = t_mul,
        .scale = t_scale,
        .sigmoid = t_sigmoid,
        .softcap = t_softcap,
        .embed = t_embed,
        .rope = t_rope,
        .attention = t_attention,
        .attention_scores = t_attention_scores,
        .softmax_rows = t_softmax_rows,
        .attention_apply = t_attention_apply,
        .kv_write = t_kv_write,
        .router_softmax = t_router_softmax,
        .topk_route = t_topk_route,
        .gather_rows = t_gather_rows,
        .scatter_rows = t_scatter_rows,
        .combine_rows = t_combine_rows,
        .sample = t_sample,
    };
    *out = be;
    return HK_OK;
}
