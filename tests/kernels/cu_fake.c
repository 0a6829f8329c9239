/* The CPU stand-in for the CUDA module's table (cu_fake.h). */
#include "cu_fake.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "hookformer.h"
#include "kernels/cpu/kernels.h"

static long live;
long cu_fake_live_blocks(void) { return live; }

static hk_dtype dt(hk_cu_dtype t) {
    return t == HK_CU_F16 ? HK_DTYPE_F16 : t == HK_CU_BF16 ? HK_DTYPE_BF16 : HK_DTYPE_F32;
}

/* Devices: HK_TEST_DEVICES of them (default 1), the calling thread's current one set by
 * set_device; each stream and cuBLAS handle keeps the device current when it was made, and
 * an op queued on one while another device is current fails as CUDA fails it
 * (cudaErrorInvalidResourceHandle), counted in cu_fake_device_mismatches: a backend that
 * forgets to switch devices is caught. */
#define FAKE_INVALID_DEVICE 101
#define FAKE_INVALID_HANDLE 400
static _Thread_local int current;
static long mismatches;
typedef struct {
    int device;
} fake_obj; /* a stream or a cuBLAS handle */
long cu_fake_device_mismatches(void) { return mismatches; }
int cu_fake_current_device(void) { return current; }
static int on_device(const void *obj) {
    if (!obj || ((const fake_obj *)obj)->device == current) return 0;
    mismatches++;
    return FAKE_INVALID_HANDLE;
}
#define ON(obj)                                                                              \
    do {                                                                                     \
        if (on_device(obj)) return FAKE_INVALID_HANDLE;                                      \
    } while (0)

static int device_count(void) {
    const char *e = getenv("HK_TEST_DEVICES");
    return e && *e ? atoi(e) : 1;
}
static int device_probe(int *n) {
    *n = device_count();
    return 0;
}
static int set_device(int ordinal) {
    if (ordinal < 0 || ordinal >= device_count()) return FAKE_INVALID_DEVICE;
    current = ordinal;
    return 0;
}
static const char *error_string(int e) {
    return e == FAKE_INVALID_DEVICE   ? "invalid device ordinal"
           : e == FAKE_INVALID_HANDLE ? "invalid resource handle"
           : e                        ? "fake device error"
                                      : "no error";
}
static const char *error_name(int e) {
    return e == FAKE_INVALID_DEVICE   ? "cudaErrorInvalidDevice"
           : e == FAKE_INVALID_HANDLE ? "cudaErrorInvalidResourceHandle"
           : e                        ? "fakeError"
                                      : "fakeSuccess";
}
static int f_malloc(void **p, size_t bytes) {
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return 2;
    live++;
    return 0;
}
static int f_free(void *p) {
    if (p) live--;
    free(p);
    return 0;
}
static int copy(void *d, const void *s, size_t n) {
    if (n) memmove(d, s, n);
    return 0;
}
static int sync_(void *s) {
    ON(s);
    return 0;
}
static int layernorm(const float *x, int64_t n, int64_t d, const float *w, const float *b,
                     float eps, float *y, float *sc, void *st) {
    ON(st);
    hk_k_layernorm(x, n, d, w, b, eps, y, sc);
    return 0;
}
static int rmsnorm(const float *x, int64_t n, int64_t d, const float *w, float eps, float *y,
                   float *sc, void *st) {
    ON(st);
    hk_k_rmsnorm(x, n, d, w, eps, y, sc);
    return 0;
}
#define ACT(name, fn)                                                                        \
    static int name(float *x, int64_t n, void *st) {                                        \
        ON(st);                                                                              \
        fn(x, n);                                                                            \
        return 0;                                                                            \
    }
ACT(gelu_new, hk_k_gelu_new)
ACT(gelu, hk_k_gelu)
ACT(silu, hk_k_silu)
ACT(relu, hk_k_relu)
static int mul(float *y, const float *x, int64_t n, void *st) {
    ON(st);
    hk_k_mul(y, x, n);
    return 0;
}
static int add(float *y, const float *x, int64_t n, void *st) {
    ON(st);
    hk_k_add(y, x, n);
    return 0;
}
static int rope(float *x, int64_t n, int64_t h, int64_t dh, int64_t ld, int64_t rot,
                const float *c, const float *s, void *st) {
    ON(st);
    hk_k_rope(x, n, h, dh, ld, rot, c, s);
    return 0;
}
static size_t dtype_size(hk_cu_dtype t) { return t == HK_CU_F32 ? 4 : 2; }
static int convert(void *dst, hk_cu_dtype dtp, const void *src, hk_cu_dtype stp, int64_t n,
                   void *st) {
    ON(st);
    if ((unsigned)dtp > HK_CU_BF16 || (unsigned)stp > HK_CU_BF16) return 1;
    float *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof *tmp);
    if (!tmp) return 2;
    hk_convert_to_f32(dt(stp), src, tmp, (size_t)n);
    hk_convert_from_f32(dt(dtp), tmp, dst, (size_t)n);
    free(tmp);
    return 0;
}
static int embed_typed(const void *table, hk_cu_dtype t, int64_t d, const int32_t *ids,
                       int64_t n, float *out, void *st) {
    ON(st);
    const size_t es = dtype_size(t);
    for (int64_t i = 0; i < n; i++)
        hk_convert_to_f32(dt(t), (const char *)table + (size_t)(ids[i] * d) * es, out + i * d,
                          (size_t)d);
    return 0;
}
static int embed(const float *table, int64_t d, const int32_t *ids, int64_t n, float *out,
                 void *st) {
    return embed_typed(table, HK_CU_F32, d, ids, n, out, st);
}
static int stream_create(void **s) {
    fake_obj *o = malloc(sizeof *o);
    if (!o) return 2;
    o->device = current;
    *s = o;
    return 0;
}
static int stream_destroy(void *s) {
    ON(s);
    free(s);
    return 0;
}
static int memset_async(void *d, int v, size_t n, void *st) {
    ON(st);
    memset(d, v, n);
    return 0;
}
static int upload_async(void *d, const void *s, size_t n, void *st) {
    ON(st);
    return copy(d, s, n);
}
static int upload(void *d, const void *s, size_t n) { return copy(d, s, n); }
static int host_alloc(void **p, size_t n) { return f_malloc(p, n); }
static int mem_info(size_t *f, size_t *t) {
    *f = *t = (size_t)1 << 30;
    return 0;
}
static int blas_new(void *st, hk_cu_blas **out) {
    ON(st);
    fake_obj *o = malloc(sizeof *o);
    if (!o) return 2;
    o->device = current;
    *out = (hk_cu_blas *)(void *)o;
    return 0;
}
static void blas_free(hk_cu_blas *b) { free(b); }
static int blas_tf32(hk_cu_blas *b, bool on) {
    (void)b;
    (void)on;
    return 0;
}
/* As hk_cu_linear: f16/bf16 weights multiply x rounded to their dtype (into x_ws), in f32. */
static int linear(hk_cu_blas *h, const float *x, int64_t n, int64_t in, const void *w,
                  hk_cu_dtype wt, int64_t ldw, bool in_out, const float *b, int64_t out,
                  float *y, int64_t ldy, void *x_ws) {
    ON(h);
    if (n <= 0 || out <= 0) return 0;
    if (wt == HK_CU_F32) {
        hk_k_linear(x, n, in, w, ldw, in_out, b, out, y, ldy);
        return 0;
    }
    if (!x_ws) return 1;
    const int64_t ext = in_out ? (in - 1) * ldw + out : (out - 1) * ldw + in;
    float *wf = malloc((size_t)(ext > 0 ? ext : 1) * 4), *xf = malloc((size_t)(n * in + 1) * 4);
    if (!wf || !xf) {
        free(wf);
        free(xf);
        return 2;
    }
    hk_convert_to_f32(dt(wt), w, wf, (size_t)ext);
    convert(x_ws, wt, x, HK_CU_F32, n * in, NULL);
    hk_convert_to_f32(dt(wt), x_ws, xf, (size_t)(n * in));
    hk_k_linear(xf, n, in, wf, ldw, in_out, b, out, y, ldy);
    free(wf);
    free(xf);
    return 0;
}
static int gated(int act, float *g, const float *u, int64_t n, void *st) {
    ON(st);
    static void (*const f[4])(float *, int64_t) = {hk_k_silu, hk_k_gelu, hk_k_gelu_new,
                                                     hk_k_relu};
    if (act < 0 || act > 3) return 1;
    f[act](g, n);
    hk_k_mul(g, u, n);
    return 0;
}
/* The device mask as the CPU's: bounds, soft-cap, the block mask as the predicate. */
static bool block_pred(void *user, int64_t head, int64_t q, int64_t k) {
    const hk_mask_desc *m = user;
    return hk_mask_desc_visible(m, m->b.k_len, head, q - m->b.q_pos0, k - m->b.k_pos0);
}
static hk_k_mask host_mask(const hk_mask_desc *m) {
    hk_k_mask k = {m->b.causal, m->b.window, m->b.q_pos0, m->b.k_pos0, m->b.k_len,
                   m->blocks.cls ? block_pred : NULL, (void *)m, m->softcap};
    return k;
}
static int attention(hk_cu_dtype qt, hk_cu_dtype kt, const void *q, int64_t ldq, const void *k,
                     int64_t ldk, const void *v, int64_t ldv, int64_t sq, int64_t sk,
                     int64_t ring, int64_t nh, int64_t nkv, int64_t dh, float scale,
                     const hk_mask_desc *mask, float *out, int64_t ldo, void *st) {
    ON(st);
    if (qt != HK_CU_F32 || kt != HK_CU_F32 || ring != 0) return 1; /* what the backend sends */
    hk_mask_desc m = *mask;
    hk_k_mask hm = host_mask(&m);
    hk_k_attention(q, ldq, k, ldk, v, ldv, sq, sk, nh, nkv, dh, scale, &hm, out, ldo);
    return 0;
}
static int kv_write(void *dst, hk_cu_dtype t, int64_t ldd, int64_t ring, int64_t pos0,
                    const float *src, int64_t lds, int64_t n, int64_t width, void *st) {
    ON(st);
    if (t != HK_CU_F32 || pos0 < 0 || (ring > 0 && n > ring)) return 1;
    for (int64_t i = 0; i < n; i++) {
        const int64_t row = ring > 0 ? (pos0 + i) % ring : pos0 + i;
        memmove((float *)dst + row * ldd, src + i * lds, (size_t)width * 4);
    }
    return 0;
}
static int block_mask_upload(const hk_block_mask *h, hk_block_mask *d) {
    const size_t tiles = (size_t)(h->heads * h->nqt * h->nkt);
    uint8_t *cls = malloc(tiles ? tiles : 1);
    int32_t *slot = malloc((tiles ? tiles : 1) * 4);
    uint64_t *bits = malloc((size_t)(h->n_partial * HK_MT_BQ + 1) * 8);
    if (!cls || !slot || !bits) return 2;
    memcpy(cls, h->cls, tiles);
    memcpy(slot, h->slot, tiles * 4);
    memcpy(bits, h->bits, (size_t)(h->n_partial * HK_MT_BQ) * 8);
    *d = *h;
    d->cls = cls;
    d->slot = slot;
    d->bits = bits;
    live += 3;
    return 0;
}
static void block_mask_free(hk_block_mask *d) {
    free((void *)d->cls);
    free((void *)d->slot);
    free((void *)d->bits);
    live -= 3;
    memset(d, 0, sizeof *d);
}
static int attention_scores(hk_cu_blas *h, const float *q, int64_t ldq, const float *k,
                            int64_t ldk, int64_t sq, int64_t sk, int64_t nh, int64_t nkv,
                            int64_t dh, float scale, const hk_mask_desc *mask, float *scores) {
    ON(h);
    hk_mask_desc m = *mask;
    hk_k_mask hm = host_mask(&m);
    hk_k_attention_scores(q, ldq, k, ldk, sq, sk, nh, nkv, dh, scale, &hm, scores);
    return 0;
}
static int softmax_rows(const float *s, int64_t rows, int64_t n, float *p, void *st) {
    ON(st);
    hk_k_softmax_rows(s, rows, n, p);
    return 0;
}
static int attention_apply(hk_cu_blas *h, const float *p, const float *v, int64_t ldv,
                           int64_t sq, int64_t sk, int64_t nh, int64_t nkv, int64_t dh,
                           float *out, int64_t ldo) {
    ON(h);
    hk_k_attention_apply(p, v, ldv, sq, sk, nh, nkv, dh, out, ldo);
    return 0;
}
static int upload_convert(void *d, hk_cu_dtype t, const void *s, hk_cu_dtype st, int64_t n,
                          void *stream) {
    if (!d || !s) return 1;
    return convert(d, t, s, st, n, stream);
}
static int rmsnorm_offset(const float *x, int64_t n, int64_t d, const float *w, float off,
                          float eps, float *y, float *sc, void *st) {
    ON(st);
    float *w1 = malloc((size_t)d * 4);
    if (!w1) return 2;
    for (int64_t j = 0; j < d; j++) w1[j] = w[j] + off;
    hk_k_rmsnorm(x, n, d, w1, eps, y, sc);
    free(w1);
    return 0;
}
static int norm_stats(const float *x, int64_t n, int64_t d, bool center, double eps,
                      float *mean, float *scale, void *st) {
    ON(st);
    for (int64_t i = 0; i < n; i++) {
        double mu = 0, sq = 0;
        if (center) {
            for (int64_t j = 0; j < d; j++) mu += x[i * d + j];
            mu /= (double)d;
        }
        for (int64_t j = 0; j < d; j++) sq += ((double)x[i * d + j] - mu) * ((double)x[i * d + j] - mu);
        mean[i] = (float)mu;
        scale[i] = (float)sqrt(sq / (double)d + eps);
    }
    return 0;
}
static int norm_divide(const float *x, int64_t n, int64_t d, const float *mean,
                       const float *scale, float *y, void *st) {
    ON(st);
    for (int64_t i = 0; i < n; i++) {
        const double inv = 1.0 / (double)scale[i];
        for (int64_t j = 0; j < d; j++)
            y[i * d + j] = (float)(((double)x[i * d + j] - (double)mean[i]) * inv);
    }
    return 0;
}
static int scale_bias(float *y, int64_t n, int64_t d, const float *w, const float *b,
                      void *st) {
    ON(st);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) y[i * d + j] = y[i * d + j] * w[j] + (b ? b[j] : 0.0f);
    return 0;
}
static int scale(float *x, int64_t n, float f, void *st) {
    ON(st);
    for (int64_t i = 0; i < n; i++) x[i] *= f;
    return 0;
}
static int softcap(float *x, int64_t n, float cap, void *st) {
    ON(st);
    for (int64_t i = 0; i < n; i++) x[i] = hk_softcap(x[i], cap);
    return 0;
}
static int sigmoid(float *x, int64_t n, void *st) {
    ON(st);
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
    return 0;
}
static int gather_rows(float *dst, const float *src, int64_t d, const int64_t *idx, int64_t div,
                       int64_t n, void *st) {
    ON(st);
    for (int64_t i = 0; i < n; i++) memcpy(dst + i * d, src + (idx[i] / div) * d, (size_t)d * 4);
    return 0;
}
static int scatter_rows(float *dst, const float *src, int64_t d, const int64_t *idx, int64_t n,
                        void *st) {
    ON(st);
    for (int64_t i = 0; i < n; i++) memcpy(dst + idx[i] * d, src + i * d, (size_t)d * 4);
    return 0;
}
static int combine_rows(float *y, const float *x, int64_t d, const int64_t *idx, int64_t div,
                        const float *w, int64_t n, void *st) {
    ON(st);
    for (int64_t i = 0; i < n; i++) {
        const int64_t a = idx ? idx[i] : i, r = idx ? a / div : i;
        for (int64_t j = 0; j < d; j++) y[r * d + j] += w[a] * x[i * d + j];
    }
    return 0;
}
static int softmax_f64(const float *x, int64_t rows, int64_t n, float *y, void *st) {
    ON(st);
    for (int64_t i = 0; i < rows; i++) {
        float mx = -INFINITY;
        for (int64_t j = 0; j < n; j++) mx = x[i * n + j] > mx ? x[i * n + j] : mx;
        double sum = 0;
        for (int64_t j = 0; j < n; j++) sum += exp((double)x[i * n + j] - mx);
        for (int64_t j = 0; j < n; j++)
            y[i * n + j] = mx == -INFINITY ? 0.0f : (float)(exp((double)x[i * n + j] - mx) / sum);
    }
    return 0;
}
static int moe_route(const float *probs, int64_t rows, int64_t E, int64_t k, bool norm,
                     float *ids, float *mix, void *st) {
    ON(st);
    if (E <= 0 || E > 1024 || k <= 0 || k > E) return 1;
    for (int64_t i = 0; i < rows; i++) {
        const float *p = probs + i * E;
        bool taken[1024] = {false};
        double s = 0;
        for (int64_t j = 0; j < k; j++) {
            int64_t best = -1;
            for (int64_t e = 0; e < E; e++)
                if (!taken[e] && (best < 0 || p[e] > p[best])) best = e;
            taken[best] = true;
            ids[i * k + j] = (float)best;
            mix[i * k + j] = p[best];
            s += p[best];
        }
        if (norm && s > 0)
            for (int64_t j = 0; j < k; j++) mix[i * k + j] = (float)((double)mix[i * k + j] / s);
    }
    return 0;
}
static int argmax_rows(const float *x, int64_t rows, int64_t n, int32_t *out, void *st) {
    ON(st);
    for (int64_t r = 0; r < rows; r++)
        if (hk_sample(x + r * n, n, NULL, NULL, &out[r]) != HK_OK) out[r] = -1;
    return 0;
}
static int download(void *d, const void *s, size_t n) { return copy(d, s, n); }
static int download_async(void *d, const void *s, size_t n, void *st) {
    ON(st);
    return copy(d, s, n);
}
static int copy_async(void *d, const void *s, size_t n, void *st) {
    ON(st);
    return copy(d, s, n);
}
static const char *blas_status_string(int s) { return error_string(s); }

static const hk_cu_api table = {
    .version = HK_CU_API_VERSION,
    .struct_size = sizeof(hk_cu_api),
    .hk_version = HK_VERSION_STRING,
    .device_count = device_count,
    .device_probe = device_probe,
    .set_device = set_device,
    .error_string = error_string,
    .error_name = error_name,
    .malloc = f_malloc,
    .free = f_free,
    .upload = upload,
    .download = download,
    .sync = sync_,
    .layernorm = layernorm,
    .rmsnorm = rmsnorm,
    .gelu_new = gelu_new,
    .gelu = gelu,
    .silu = silu,
    .relu = relu,
    .mul = mul,
    .add = add,
    .rope = rope,
    .embed = embed,
    .dtype_size = dtype_size,
    .convert = convert,
    .stream_create = stream_create,
    .stream_destroy = stream_destroy,
    .memset_async = memset_async,
    .upload_async = upload_async,
    .download_async = download_async,
    .host_alloc_pinned = host_alloc,
    .host_free_pinned = f_free,
    .mem_info = mem_info,
    .blas_new = blas_new,
    .blas_free = blas_free,
    .blas_allow_tf32 = blas_tf32,
    .blas_status_string = blas_status_string,
    .linear = linear,
    .gated = gated,
    .attention = attention,
    .kv_write = kv_write,
    .block_mask_upload = block_mask_upload,
    .block_mask_free = block_mask_free,
    .attention_scores = attention_scores,
    .softmax_rows = softmax_rows,
    .attention_apply = attention_apply,
    .embed_typed = embed_typed,
    .copy_async = copy_async,
    .upload_convert = upload_convert,
    .rmsnorm_offset = rmsnorm_offset,
    .norm_stats = norm_stats,
    .norm_divide = norm_divide,
    .scale_bias = scale_bias,
    .scale = scale,
    .softcap = softcap,
    .sigmoid = sigmoid,
    .gather_rows = gather_rows,
    .scatter_rows = scatter_rows,
    .combine_rows = combine_rows,
    .softmax_rows_f64 = softmax_f64,
    .moe_route = moe_route,
    .argmax_rows = argmax_rows,
};

const hk_cu_api *cu_fake_api(void) { return &table; }
