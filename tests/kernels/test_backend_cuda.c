/* The CUDA backend (core/backend_cuda.c) where it can run here: the weights' device layout
 * (views of one host tensor share a block, tied embeddings split when the matrices are not
 * f32, offsets in the block's dtype, nothing left allocated after a failure) through a host
 * sink; opening without the module or without a GPU fails with a message naming what is
 * missing. With a GPU, a few ops of an open instance against the CPU kernels. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/backend_cuda.h"
#include "core/backend_cuda_weights.h"
#include "core/cuda_module.h"
#include "core/checkpoint.h"
#include "core/dtype.h"
#include "fixtures.h"
#include "kernels/cpu/kernels.h"

/* ---- a host "device" for the weights' plan ---- */
typedef struct {
    int live, allocs, fail_at; /* fail_at > 0: that alloc fails */
} host_sink;

static hk_status hs_alloc(void *user, size_t bytes, void **out) {
    host_sink *h = user;
    if (h->fail_at > 0 && h->allocs + 1 == h->fail_at) return HK_ERR_NOMEM;
    *out = malloc(bytes ? bytes : 1);
    if (!*out) return HK_ERR_NOMEM;
    h->allocs++;
    h->live++;
    return HK_OK;
}
static void hs_free(void *user, void *p) {
    host_sink *h = user;
    if (p) h->live--;
    free(p);
}
static hk_status hs_put(void *user, void *dst, hk_dtype t, const float *src, size_t n) {
    (void)user;
    return hk_convert_from_f32(t, src, dst, n) ? HK_OK : HK_ERR_UNSUPPORTED;
}

/* A 2-layer GPT-2-like model: fused Conv1D c_attn [d, 3d] viewed as q/k/v, tied unembed. */
enum { D = 8, V = 11, L = 2, F = 16 };
typedef struct {
    hk_config c;
    hk_weights w;
    hk_block_weights blocks[L];
    float tok[V * D], pos[4 * D], attn[L][D * 3 * D], attn_b[L][3 * D], o[L][D * D];
    float fc[L][D * F], proj[L][F * D], ln[L][2][2][D], lnf[2][D];
} toy;

static void toy_init(toy *t) {
    memset(t, 0, sizeof *t);
    t->c.d_model = D;
    t->c.d_vocab = V;
    t->c.n_layers = L;
    t->c.n_heads = 2;
    t->c.n_kv_heads = 2;
    t->c.d_head = D / 2;
    t->c.d_mlp = F;
    float *all[] = {t->tok, t->pos, &t->attn[0][0], &t->attn_b[0][0], &t->o[0][0],
                    &t->fc[0][0], &t->proj[0][0], &t->ln[0][0][0][0], &t->lnf[0][0]};
    size_t sizes[] = {sizeof t->tok, sizeof t->pos, sizeof t->attn, sizeof t->attn_b,
                      sizeof t->o, sizeof t->fc, sizeof t->proj, sizeof t->ln, sizeof t->lnf};
    float v = 0.001f;
    for (size_t a = 0; a < sizeof all / sizeof *all; a++)
        for (size_t i = 0; i < sizes[a] / sizeof(float); i++, v += 0.37f) all[a][i] = v;
    t->w.tok_embed = t->tok;
    t->w.pos_embed = t->pos;
    t->w.n_pos = 4;
    t->w.blocks = t->blocks;
    t->w.ln_final = (hk_norm_weights){t->lnf[0], t->lnf[1]};
    t->w.unembed = (hk_linear){t->tok, NULL, D, V, D, false};
    for (int l = 0; l < L; l++) {
        hk_block_weights *b = &t->blocks[l];
        b->ln1 = (hk_norm_weights){t->ln[l][0][0], t->ln[l][0][1]};
        b->ln2 = (hk_norm_weights){t->ln[l][1][0], t->ln[l][1][1]};
        for (int j = 0; j < 3; j++) {
            hk_linear *q = j == 0 ? &b->q : j == 1 ? &b->k : &b->v;
            *q = (hk_linear){t->attn[l] + j * D, t->attn_b[l] + j * D, D, D, 3 * D, true};
        }
        b->o = (hk_linear){t->o[l], NULL, D, D, D, true};
        b->mlp_in = (hk_linear){t->fc[l], NULL, D, F, F, true};
        b->mlp_out = (hk_linear){t->proj[l], NULL, F, D, D, true};
    }
}

static float rt(hk_dtype t, float x) { /* x rounded through t */
    uint16_t h;
    hk_convert_from_f32(t, &x, &h, 1);
    float y;
    hk_convert_to_f32(t, &h, &y, 1);
    return y;
}

static void test_weights_plan_f32(void **state) {
    (void)state;
    toy *t = malloc(sizeof *t);
    toy_init(t);
    host_sink hs = {0, 0, 0};
    const hk_wsink sink = {&hs, hs_alloc, hs_free, hs_put};
    hk_weights dev;
    hk_wset set;
    assert_int_equal(hk_wset_upload(&t->c, &t->w, HK_DTYPE_F32, &sink, &dev, &set), HK_OK);
    /* tied: one block; q/k/v of one c_attn: one block, k at +D floats */
    assert_ptr_equal(dev.unembed.w, dev.tok_embed);
    for (int l = 0; l < L; l++) {
        const hk_block_weights *b = &dev.blocks[l];
        assert_ptr_equal(b->k.w, b->q.w + D);
        assert_ptr_equal(b->v.w, b->q.w + 2 * D);
        assert_true(b->k.b[1] == t->attn_b[l][D + 1]); /* touching views: blocks of their own */
        assert_true(b->q.w[5 * 3 * D + 1] == t->attn[l][5 * 3 * D + 1]);
        assert_true(b->v.w[7 * 3 * D + 3] == t->attn[l][7 * 3 * D + 2 * D + 3]);
        assert_true(b->ln2.b[D - 1] == t->ln[l][1][1][D - 1]);
    }
    assert_ptr_not_equal(dev.blocks, t->w.blocks); /* the backend's own host array */
    assert_true(dev.pos_embed[4 * D - 1] == t->pos[4 * D - 1]);
    /* blocks: tok, pos, and per layer attn, attn_b, o, fc, proj, ln (4 norms: 8 vectors in
     * one array, each its own span), then lnf w and b */
    assert_int_equal((int)set.n, hs.live);
    const hk_wblock *blk;
    assert_int_equal(hk_wset_dtype(&set, dev.blocks[1].k.w, &blk), HK_DTYPE_F32);
    assert_non_null(blk);
    assert_int_equal(hk_wset_dtype(&set, &hs, &blk), HK_DTYPE_F32);
    assert_null(blk);
    hk_wset_free(&sink, &set);
    assert_int_equal(hs.live, 0);
    free(t);
}

static void test_weights_plan_bf16(void **state) {
    (void)state;
    toy *t = malloc(sizeof *t);
    toy_init(t);
    host_sink hs = {0, 0, 0};
    const hk_wsink sink = {&hs, hs_alloc, hs_free, hs_put};
    hk_weights dev;
    hk_wset set;
    assert_int_equal(hk_wset_upload(&t->c, &t->w, HK_DTYPE_BF16, &sink, &dev, &set), HK_OK);
    /* tied: the table stays f32, the unembedding matrix is a bf16 copy */
    assert_ptr_not_equal(dev.unembed.w, dev.tok_embed);
    assert_int_equal(hk_wset_dtype(&set, dev.tok_embed, NULL), HK_DTYPE_F32);
    assert_int_equal(hk_wset_dtype(&set, dev.unembed.w, NULL), HK_DTYPE_BF16);
    assert_true(dev.tok_embed[3] == t->tok[3]);
    const uint16_t *u = (const uint16_t *)(const void *)dev.unembed.w;
    float x;
    hk_convert_to_f32(HK_DTYPE_BF16, u + 2 * D + 5, &x, 1);
    assert_true(x == rt(HK_DTYPE_BF16, t->tok[2 * D + 5]));
    /* k's view starts D bf16 elements (2·D bytes) into the c_attn block; biases stay f32 */
    const hk_block_weights *b = &dev.blocks[1];
    assert_ptr_equal((const char *)b->k.w, (const char *)b->q.w + 2 * D);
    assert_int_equal(hk_wset_dtype(&set, b->k.w, NULL), HK_DTYPE_BF16);
    assert_int_equal(hk_wset_dtype(&set, b->k.b, NULL), HK_DTYPE_F32);
    assert_true(b->k.b[1] == t->attn_b[1][D + 1]);
    hk_convert_to_f32(HK_DTYPE_BF16, (const uint16_t *)(const void *)b->v.w + 3 * 3 * D + 1, &x,
                      1);
    assert_true(x == rt(HK_DTYPE_BF16, t->attn[1][3 * 3 * D + 2 * D + 1]));
    /* norms f32 */
    assert_int_equal(hk_wset_dtype(&set, b->ln1.w, NULL), HK_DTYPE_F32);
    hk_wset_free(&sink, &set);
    assert_int_equal(hs.live, 0);
    free(t);
}

/* An allocation failing half way: the error comes back and nothing stays allocated. */
static void test_weights_plan_failure(void **state) {
    (void)state;
    toy *t = malloc(sizeof *t);
    toy_init(t);
    host_sink hs = {0, 0, 5};
    const hk_wsink sink = {&hs, hs_alloc, hs_free, hs_put};
    hk_weights dev;
    hk_wset set;
    assert_int_equal(hk_wset_upload(&t->c, &t->w, HK_DTYPE_F16, &sink, &dev, &set),
                     HK_ERR_NOMEM);
    assert_int_equal(hs.live, 0);
    assert_int_equal(hs.allocs, 4);
    assert_null(dev.tok_embed);
    assert_null(dev.blocks);
    assert_int_equal((int)set.n, 0);
    assert_int_equal(hk_wset_upload(&t->c, &t->w, HK_DTYPE_I32, &sink, &dev, &set),
                     HK_ERR_INVALID_ARG);
    free(t);
}

/* The checkpoint's matrix dtype, the default of a CUDA load: bf16 and f16 checkpoints keep
 * theirs, f32 ones f32. */
static void test_checkpoint_dtype(void **state) {
    (void)state;
    static const struct {
        const char *fixture, *file;
        hk_dtype want;
    } cases[] = {{"llama_bf16", "model.safetensors", HK_DTYPE_BF16},
                 {"qwen2_f16", "model.safetensors", HK_DTYPE_F16},
                 {"gpt2", "model.safetensors", HK_DTYPE_F32},
                 {"llama", "model.safetensors.index.json", HK_DTYPE_F32}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        hk_ckpt *ck = fixture_ckpt(cases[i].fixture, cases[i].file);
        assert_int_equal(hk_wset_checkpoint_dtype(ck), cases[i].want);
        hk_ckpt_close(ck);
    }
    assert_int_equal(hk_wset_checkpoint_dtype(NULL), HK_DTYPE_F32);
}

/* No module where HK_CUDA_MODULE points: NOT_FOUND naming the path, nothing opened. Runs
 * first: a successful load is remembered for the process. */
static void test_open_without_module(void **state) {
    (void)state;
    setenv("HK_CUDA_MODULE", "/nonexistent/libhookformer_cuda.so", 1);
    hk_backend *be = (hk_backend *)&be;
    assert_int_equal(hk_backend_cuda_open(&be), HK_ERR_NOT_FOUND);
    assert_null(be);
    const char *e = hk_last_error();
    print_message("%s\n", e);
    assert_non_null(strstr(e, "device cuda"));
    assert_non_null(strstr(e, "/nonexistent/libhookformer_cuda.so"));
    unsetenv("HK_CUDA_MODULE");
}

#ifdef HK_TEST_CUDA_MODULE
static int gpus(void) {
    const hk_cu_api *cu = NULL;
    return hk_cuda_module(&cu) == HK_OK ? cu->device_count() : 0;
}
#endif

/* The build's module without a GPU: UNSUPPORTED "no CUDA device". */
static void test_open_without_gpu(void **state) {
    (void)state;
#ifndef HK_TEST_CUDA_MODULE
    skip(); /* a build without nvcc: the module test above says it all */
#else
    setenv("HK_CUDA_MODULE", HK_TEST_CUDA_MODULE, 1);
    if (gpus() > 0) skip();
    hk_backend *be = (hk_backend *)&be;
    assert_int_equal(hk_backend_cuda_open(&be), HK_ERR_UNSUPPORTED);
    assert_null(be);
    print_message("%s\n", hk_last_error());
    assert_non_null(strstr(hk_last_error(), "device cuda: no CUDA device"));
#endif
}

#ifdef HK_TEST_CUDA_MODULE
static double nmse(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

static bool even_keys(void *user, int64_t head, int64_t q, int64_t k) {
    (void)user;
    return (k + head) % 2 == 0 || k == q;
}

static float *dev_copy(hk_backend *be, const void *host, size_t bytes) {
    void *p = NULL;
    assert_int_equal(be->alloc(be, bytes, &p), HK_OK);
    if (host) assert_int_equal(be->to_device(be, p, host, bytes), HK_OK);
    return p;
}
#endif

/* With a GPU: linear on uploaded bf16 weights (a sliced view), attention with a predicate
 * (a block mask), a rolling KV write, greedy choice — against the CPU kernels. */
static void test_ops_on_gpu(void **state) {
    (void)state;
#ifndef HK_TEST_CUDA_MODULE
    skip();
#else
    setenv("HK_CUDA_MODULE", HK_TEST_CUDA_MODULE, 1);
    if (gpus() == 0) skip();
    hk_backend *be = NULL;
    assert_int_equal(hk_backend_cuda_open(&be), HK_OK);
    assert_non_null(be->stream(be));
    toy *t = malloc(sizeof *t);
    toy_init(t);
    for (size_t i = 0; i < sizeof t->attn / sizeof(float); i++)
        (&t->attn[0][0])[i] = sinf((float)i);
    hk_weights dev;
    assert_int_equal(be->weights_upload(be, &t->c, &t->w, HK_DTYPE_BF16, &dev), HK_OK);
    /* k of layer 1, outputs 2..5 (a slice) on 3 rows, against the rounded weights */
    float x[3 * D], yc[3 * 4], yg[3 * 4], wr[D * 3 * D];
    for (int i = 0; i < 3 * D; i++) x[i] = cosf((float)i);
    for (int i = 0; i < D * 3 * D; i++) wr[i] = rt(HK_DTYPE_BF16, t->attn[1][i]);
    float xr[3 * D];
    for (int i = 0; i < 3 * D; i++) xr[i] = rt(HK_DTYPE_BF16, x[i]);
    hk_k_linear(xr, 3, D, wr + D + 2, 3 * D, true, t->attn_b[1] + D + 2, 4, yc, 4);
    const hk_linear sl = be->linear_slice(be, &dev.blocks[1].k, 0, D, 2, 4);
    float *dx = dev_copy(be, x, sizeof x), *dy = dev_copy(be, NULL, sizeof yg);
    assert_int_equal(be->linear(be, &sl, dx, 3, dy, 4), HK_OK);
    assert_int_equal(be->to_host(be, yg, dy, sizeof yg), HK_OK);
    assert_true(nmse(yg, yc, 12) < 1e-5);
    /* attention, 2 heads of 16 over 70 keys, causal + predicate */
    enum { SQ = 9, SK = 70, H = 2, DH = 16 };
    static float q[SQ * H * DH], k[SK * H * DH], v[SK * H * DH], oc[SQ * H * DH], og[SQ * H * DH];
    for (int i = 0; i < SQ * H * DH; i++) q[i] = sinf(0.3f * (float)i);
    for (int i = 0; i < SK * H * DH; i++) {
        k[i] = cosf(0.7f * (float)i);
        v[i] = sinf(1.1f * (float)i);
    }
    hk_k_mask m = {true, 0, SK - SQ, 0, SK, even_keys, NULL, 0.0f};
    hk_k_attention(q, H * DH, k, H * DH, v, H * DH, SQ, SK, H, H, DH, 0.25f, &m, oc, H * DH);
    float *dq = dev_copy(be, q, sizeof q), *dk = dev_copy(be, k, sizeof k);
    float *dv = dev_copy(be, v, sizeof v), *dout = dev_copy(be, NULL, sizeof og);
    assert_int_equal(be->attention(be, dq, H * DH, dk, H * DH, dv, H * DH, SQ, SK, H, H, DH,
                                   0.25f, &m, dout, H * DH),
                     HK_OK);
    assert_int_equal(be->to_host(be, og, dout, sizeof og), HK_OK);
    assert_true(nmse(og, oc, SQ * H * DH) < 1e-6);
    /* rolling KV write: positions 5..9 into 4 slots keep 6..9 at slot p mod 4 */
    float *cache = dev_copy(be, NULL, 4 * 3 * sizeof(float)), got[12];
    assert_int_equal(be->kv_write(be, cache, 4, 6, dk + 3 * H * DH, H * DH, 4, 3), HK_OK);
    assert_int_equal(be->to_host(be, got, cache, sizeof got), HK_OK);
    for (int p = 6; p < 10; p++)
        for (int j = 0; j < 3; j++) assert_true(got[(p % 4) * 3 + j] == k[(3 + p - 6) * H * DH + j]);
    assert_int_not_equal(be->kv_write(be, cache, 4, 0, dk, H * DH, 5, 3), HK_OK);
    /* greedy */
    int32_t id = -1, want = -1;
    assert_int_equal(be->sample(be, dv, SK * H * DH, NULL, NULL, &id), HK_OK);
    assert_int_equal(hk_sample(v, SK * H * DH, NULL, NULL, &want), HK_OK);
    assert_int_equal(id, want);
    void *bufs[] = {dx, dy, dq, dk, dv, dout, cache};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->free(be, bufs[i]);
    be->weights_free(be, &t->c, &dev);
    be->close(be);
    free(t);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_without_module), cmocka_unit_test(test_weights_plan_f32),
        cmocka_unit_test(test_weights_plan_bf16),   cmocka_unit_test(test_weights_plan_failure),
        cmocka_unit_test(test_open_without_gpu),    cmocka_unit_test(test_ops_on_gpu),
        cmocka_unit_test(test_checkpoint_dtype),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
