/* The CUDA backend (core/backend_cuda.c) where it can run here: the weights' device layout
 * (views of one host tensor share a block, tied embeddings split when the matrices are not
 * f32, offsets in the block's dtype, nothing left allocated after a failure) through a host
 * sink; opening without the module or without a GPU fails with a message naming what is
 * missing; over the CPU stand-in of the module, instances on GPU indices switch the thread's
 * device before every op. With a GPU, a few ops of an open instance against the CPU kernels. */
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
#include "cu_fake.h"
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
    t->w.unembed = (hk_linear){.w = t->tok, .n_in = D, .n_out = V, .ld = D};
    for (int l = 0; l < L; l++) {
        hk_block_weights *b = &t->blocks[l];
        b->ln1 = (hk_norm_weights){t->ln[l][0][0], t->ln[l][0][1]};
        b->ln2 = (hk_norm_weights){t->ln[l][1][0], t->ln[l][1][1]};
        for (int j = 0; j < 3; j++) {
            hk_linear *q = j == 0 ? &b->q : j == 1 ? &b->k : &b->v;
            *q = (hk_linear){.w = t->attn[l] + j * D, .b = t->attn_b[l] + j * D, .n_in = D,
                               .n_out = D, .ld = 3 * D, .in_out = true};
        }
        b->o = (hk_linear){.w = t->o[l], .n_in = D, .n_out = D, .ld = D, .in_out = true};
        b->mlp_in = (hk_linear){.w = t->fc[l], .n_in = D, .n_out = F, .ld = F, .in_out = true};
        b->mlp_out = (hk_linear){.w = t->proj[l], .n_in = F, .n_out = D, .ld = D, .in_out = true};
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
    assert_int_equal(hk_backend_cuda_open(HK_DEVICE_INDEX_AUTO, &be), HK_ERR_NOT_FOUND);
    assert_null(be);
    const char *e = hk_last_error();
    print_message("%s\n", e);
    assert_non_null(strstr(e, "device cuda"));
    assert_non_null(strstr(e, "/nonexistent/libhookformer_cuda.so"));
    /* a CUDA load says so before it reads the checkpoint (here: none there at all) */
    hk_load_opts o = hk_load_default_opts();
    o.device = HK_DEVICE_CUDA;
    hk_model *m = (hk_model *)&m;
    assert_int_equal(hk_model_load_opts("/nonexistent/model", &o, &m), HK_ERR_NOT_FOUND);
    assert_null(m);
    assert_non_null(strstr(hk_last_error(), "device cuda: CUDA module"));
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
    assert_int_equal(hk_backend_cuda_open(HK_DEVICE_INDEX_AUTO, &be), HK_ERR_UNSUPPORTED);
    assert_null(be);
    print_message("%s\n", hk_last_error());
    assert_non_null(strstr(hk_last_error(), "device cuda: no CUDA device"));
#endif
}

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

/* A battery of the backend's ops against the CPU kernels: a sliced linear on uploaded
 * weights of each dtype, tiled attention with a predicate (a block mask), the materialized
 * pieces, a rolling KV write, hooked-norm pieces, the experts' routing and combine, greedy
 * and sampled choices. bound: NMSE allowed in f32 (0 on the CPU stand-in: the same kernels). */
static void check_ops(hk_backend *be, double bound) {
    assert_non_null(be->stream(be));
    assert_int_equal(be->device, HK_DEVICE_CUDA);
    assert_false(be->host_memory);
    toy *t = malloc(sizeof *t);
    toy_init(t);
    for (size_t i = 0; i < sizeof t->attn / sizeof(float); i++)
        (&t->attn[0][0])[i] = sinf((float)i);
    float x[3 * D];
    for (int i = 0; i < 3 * D; i++) x[i] = cosf((float)i);
    float *dx = dev_copy(be, x, sizeof x), *dy = dev_copy(be, NULL, 4096 * sizeof(float));
    static const hk_dtype wts[] = {HK_DTYPE_F32, HK_DTYPE_F16, HK_DTYPE_BF16};
    for (size_t wi = 0; wi < 3; wi++) {
        const hk_dtype wt = wts[wi];
        hk_weights dev;
        assert_int_equal(be->weights_upload(be, &t->c, &t->w, wt, &dev), HK_OK);
        /* k of layer 1, outputs 2..5 (a slice) on 3 rows, against the rounded weights */
        float yc[3 * 4], yg[3 * 4], wr[D * 3 * D], xr[3 * D];
        for (int i = 0; i < D * 3 * D; i++) wr[i] = wt == HK_DTYPE_F32 ? t->attn[1][i] : rt(wt, t->attn[1][i]);
        for (int i = 0; i < 3 * D; i++) xr[i] = wt == HK_DTYPE_F32 ? x[i] : rt(wt, x[i]);
        hk_k_linear(xr, 3, D, wr + D + 2, 3 * D, true, t->attn_b[1] + D + 2, 4, yc, 4);
        const hk_linear sl = be->linear_slice(be, &dev.blocks[1].k, 0, D, 2, 4);
        assert_int_equal(be->linear(be, &sl, dx, 3, dy, 4), HK_OK);
        assert_int_equal(be->to_host(be, yg, dy, sizeof yg), HK_OK);
        if (!(nmse(yg, yc, 12) <= (wt == HK_DTYPE_F32 ? bound : 1e-5 + bound)))
            fail_msg("linear in %s: NMSE %g", hk_dtype_name(wt), nmse(yg, yc, 12));
        /* the embedding table stays f32 whatever the matrices are */
        int32_t ids[2] = {3, 9};
        int32_t *di = (int32_t *)(void *)dev_copy(be, ids, sizeof ids);
        float eg[2 * D];
        assert_int_equal(be->embed(be, dev.tok_embed, D, di, 2, dy), HK_OK);
        assert_int_equal(be->to_host(be, eg, dy, sizeof eg), HK_OK);
        assert_memory_equal(eg, t->tok + 3 * D, D * sizeof(float));
        assert_memory_equal(eg + D, t->tok + 9 * D, D * sizeof(float));
        be->free(be, di);
        /* a second upload into one instance is refused; freeing allows the next */
        hk_weights again;
        assert_int_not_equal(be->weights_upload(be, &t->c, &t->w, wt, &again), HK_OK);
        be->weights_free(be, &t->c, &dev);
    }
    /* attention, 2 heads of 16 over 70 keys, causal + predicate; then the materialized path */
    enum { SQ = 9, SK = 70, H = 2, DH = 16 };
    static float q[SQ * H * DH], k[SK * H * DH], v[SK * H * DH], oc[SQ * H * DH], og[SQ * H * DH];
    static float sc[H * SQ * SK], sg[H * SQ * SK];
    for (int i = 0; i < SQ * H * DH; i++) q[i] = sinf(0.3f * (float)i);
    for (int i = 0; i < SK * H * DH; i++) {
        k[i] = cosf(0.7f * (float)i);
        v[i] = sinf(1.1f * (float)i);
    }
    hk_k_mask m = {true, 0, SK - SQ, 0, SK, even_keys, NULL, 0.0f};
    hk_k_attention(q, H * DH, k, H * DH, v, H * DH, SQ, SK, H, H, DH, 0.25f, &m, oc, H * DH);
    float *dq = dev_copy(be, q, sizeof q), *dk = dev_copy(be, k, sizeof k);
    float *dv = dev_copy(be, v, sizeof v), *dout = dev_copy(be, NULL, sizeof og);
    float *ds = dev_copy(be, NULL, sizeof sg);
    assert_int_equal(be->attention(be, dq, H * DH, dk, H * DH, dv, H * DH, SQ, SK, H, H, DH,
                                   0.25f, &m, dout, H * DH),
                     HK_OK);
    assert_int_equal(be->to_host(be, og, dout, sizeof og), HK_OK);
    assert_true(nmse(og, oc, SQ * H * DH) <= bound);
    m.softcap = 3.0f;
    hk_k_attention_scores(q, H * DH, k, H * DH, SQ, SK, H, H, DH, 0.25f, &m, sc);
    hk_k_softmax_rows(sc, H * SQ, SK, sc);
    hk_k_attention_apply(sc, v, H * DH, SQ, SK, H, H, DH, oc, H * DH);
    assert_int_equal(be->attention_scores(be, dq, H * DH, dk, H * DH, SQ, SK, H, H, DH, 0.25f,
                                          &m, ds),
                     HK_OK);
    assert_int_equal(be->softmax_rows(be, ds, H * SQ, SK, ds), HK_OK);
    assert_int_equal(be->to_host(be, sg, ds, sizeof sg), HK_OK);
    assert_true(nmse(sg, sc, H * SQ * SK) <= bound);
    assert_int_equal(be->attention_apply(be, ds, dv, H * DH, SQ, SK, H, H, DH, dout, H * DH),
                     HK_OK);
    assert_int_equal(be->to_host(be, og, dout, sizeof og), HK_OK);
    assert_true(nmse(og, oc, SQ * H * DH) <= bound);
    /* rolling KV write: positions 6..9 into 4 slots at slot p mod 4; too many rows refused */
    float *cache = dev_copy(be, NULL, 4 * 3 * sizeof(float)), got[12];
    assert_int_equal(be->kv_write(be, cache, 4, 6, dk + 3 * H * DH, H * DH, 4, 3), HK_OK);
    assert_int_equal(be->to_host(be, got, cache, sizeof got), HK_OK);
    for (int p = 6; p < 10; p++)
        for (int j = 0; j < 3; j++) assert_true(got[(p % 4) * 3 + j] == k[(3 + p - 6) * H * DH + j]);
    assert_int_not_equal(be->kv_write(be, cache, 4, 0, dk, H * DH, 5, 3), HK_OK);
    /* copy2d with a broadcast row (lds 0: the bias into every row) */
    assert_int_equal(be->copy2d(be, cache, 3, dk + 5, 0, 4, 3), HK_OK);
    assert_int_equal(be->to_host(be, got, cache, sizeof got), HK_OK);
    for (int r = 0; r < 4; r++) assert_memory_equal(got + 3 * r, k + 5, 3 * sizeof(float));
    /* hooked LayerNorm pieces on 9 rows of 32 */
    float nx[9 * 32], nw[32], nb[32], mean[9], scl[9], yc2[9 * 32], yg2[9 * 32], mg[9], sgs[9];
    for (int i = 0; i < 9 * 32; i++) nx[i] = sinf(0.9f * (float)i) * 3.0f + 1.0f;
    for (int j = 0; j < 32; j++) nw[j] = 1.0f + 0.01f * (float)j, nb[j] = 0.1f * (float)j;
    for (int i = 0; i < 9; i++) {
        double mu = 0, sq = 0;
        for (int j = 0; j < 32; j++) mu += nx[i * 32 + j];
        mu /= 32;
        for (int j = 0; j < 32; j++) sq += (nx[i * 32 + j] - mu) * (nx[i * 32 + j] - mu);
        mean[i] = (float)mu;
        scl[i] = (float)sqrt(sq / 32 + 1e-5);
        for (int j = 0; j < 32; j++)
            yc2[i * 32 + j] =
                (float)(((double)nx[i * 32 + j] - (double)mean[i]) * (1.0 / (double)scl[i])) * nw[j] + nb[j];
    }
    float *dnx = dev_copy(be, nx, sizeof nx), *dnw = dev_copy(be, nw, sizeof nw);
    float *dnb = dev_copy(be, nb, sizeof nb), *dm = dev_copy(be, NULL, sizeof mg);
    float *dsc = dev_copy(be, NULL, sizeof sgs);
    assert_int_equal(be->norm_stats(be, dnx, 9, 32, true, 1e-5, dm, dsc), HK_OK);
    assert_int_equal(be->norm_divide(be, dnx, 9, 32, dm, dsc, dnx), HK_OK);
    assert_int_equal(be->norm_affine(be, dnx, 9, 32, dnw, dnb), HK_OK);
    assert_int_equal(be->to_host(be, yg2, dnx, sizeof yg2), HK_OK);
    assert_int_equal(be->to_host(be, sgs, dsc, sizeof sgs), HK_OK);
    assert_true(nmse(yg2, yc2, 9 * 32) <= bound + 1e-12);
    assert_true(nmse(sgs, scl, 9) <= bound + 1e-12);
    /* experts: router softmax, top-2 of 5, gather by slot / k, combine weighted */
    float lg[4 * 5], pr[4 * 5], idf[4 * 2], mix[4 * 2];
    for (int i = 0; i < 20; i++) lg[i] = sinf(1.7f * (float)i);
    float *dlg = dev_copy(be, lg, sizeof lg), *dpr = dev_copy(be, NULL, sizeof pr);
    float *dids = dev_copy(be, NULL, sizeof idf), *dmix = dev_copy(be, NULL, sizeof mix);
    assert_int_equal(be->router_softmax(be, dlg, 4, 5, dpr), HK_OK);
    assert_int_equal(be->topk_route(be, dpr, 4, 5, 2, true, dids, dmix), HK_OK);
    assert_int_equal(be->to_host(be, idf, dids, sizeof idf), HK_OK);
    assert_int_equal(be->to_host(be, mix, dmix, sizeof mix), HK_OK);
    for (int i = 0; i < 4; i++) {
        int best = 0;
        for (int e = 1; e < 5; e++) if (lg[i * 5 + e] > lg[i * 5 + best]) best = e;
        assert_true(idf[i * 2] == (float)best);
        assert_true(fabsf(mix[i * 2] + mix[i * 2 + 1] - 1.0f) < 1e-6f);
    }
    int64_t slots[3] = {5, 0, 2}; /* rows 2, 0, 1 with k = 2 */
    int64_t *dsl = (int64_t *)(void *)dev_copy(be, slots, sizeof slots);
    float rows_g[3 * 5], y5[4 * 5] = {0}, want5[4 * 5] = {0};
    assert_int_equal(be->gather_rows(be, dout, dlg, 5, dsl, 2, 3), HK_OK);
    assert_int_equal(be->to_host(be, rows_g, dout, sizeof rows_g), HK_OK);
    for (int i = 0; i < 3; i++) assert_memory_equal(rows_g + 5 * i, lg + 5 * (slots[i] / 2), 20);
    float *dy5 = dev_copy(be, y5, sizeof y5);
    assert_int_equal(be->combine_rows(be, dy5, dout, 5, dsl, 2, dmix, 3), HK_OK);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) want5[(slots[i] / 2) * 5 + j] += mix[slots[i]] * rows_g[i * 5 + j];
    assert_int_equal(be->to_host(be, y5, dy5, sizeof y5), HK_OK);
    assert_true(nmse(y5, want5, 20) <= bound + 1e-12);
    /* greedy on the device; sampling on the host: the same token and PRNG state as hk_sample */
    int32_t id = -1, want = -1;
    assert_int_equal(be->sample(be, dv, SK * H * DH, NULL, NULL, &id), HK_OK);
    assert_int_equal(hk_sample(v, SK * H * DH, NULL, NULL, &want), HK_OK);
    assert_int_equal(id, want);
    hk_sampler_opts so = hk_sampler_default();
    so.temperature = 0.7f;
    so.top_k = 40;
    uint64_t r1 = 77, r2 = 77;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(be->sample(be, dv, SK * H * DH, &so, &r1, &id), HK_OK);
        assert_int_equal(hk_sample(v, SK * H * DH, &so, &r2, &want), HK_OK);
        assert_int_equal(id, want);
        assert_true(r1 == r2);
    }
    so.top_p = 2.0f; /* refused as hk_sample refuses it, greedy or not */
    so.temperature = 0;
    assert_int_not_equal(be->sample(be, dv, SK * H * DH, &so, NULL, &id), HK_OK);
    void *bufs[] = {dx, dy, dq, dk, dv, dout, ds, cache, dnx, dnw, dnb, dm, dsc,
                    dlg, dpr, dids, dmix, dsl, dy5};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->free(be, bufs[i]);
    assert_true(be->counters.h2d > 0 && be->counters.d2h > 0);
    free(t);
}

/* The CUDA backend's host logic over the CPU stand-in of the module: runs everywhere. */
static void test_ops_on_cpu_table(void **state) {
    (void)state;
    hk_backend *be = NULL;
    assert_int_equal(hk_backend_cuda_open_api(cu_fake_api(), 0, &be), HK_OK);
    check_ops(be, 0.0);
    be->close(be);
    assert_int_equal(cu_fake_live_blocks(), 0); /* every device block was freed */
}

/* GPU indices over the stand-in (HK_TEST_DEVICES=3 "GPUs", each stream and cuBLAS handle
 * bound to the device current when it was made, an op on another device's failing): an
 * instance on GPU 2 runs every op while the thread's current device was moved to 0 (as another
 * model's instance or a plugin moves it), and two instances on GPUs 1 and 2 interleave; an
 * index past the count is refused naming both numbers. */
static void test_device_index_on_cpu_table(void **state) {
    (void)state;
    setenv("HK_TEST_DEVICES", "3", 1);
    const hk_cu_api *cu = cu_fake_api();
    /* the stand-in catches a missing switch: a stream of GPU 2 used while GPU 0 is current */
    void *stream = NULL;
    assert_int_equal(cu->set_device(2), 0);
    assert_int_equal(cu->stream_create(&stream), 0);
    assert_int_equal(cu->set_device(0), 0);
    const long before = cu_fake_device_mismatches();
    assert_int_not_equal(cu->sync(stream), 0);
    assert_int_equal(cu_fake_device_mismatches(), before + 1);
    assert_int_equal(cu->set_device(2), 0);
    assert_int_equal(cu->stream_destroy(stream), 0);
    assert_int_not_equal(cu->set_device(3), 0);

    hk_backend *a = NULL, *b = NULL;
    assert_int_equal(hk_backend_cuda_open_api(cu, 2, &a), HK_OK);
    assert_int_equal(a->index, 2);
    assert_string_equal(a->label, "cuda:2");
    assert_int_equal(cu->set_device(0), 0);
    const long base = cu_fake_device_mismatches();
    check_ops(a, 0.0);
    assert_int_equal(cu_fake_current_device(), 2);
    assert_int_equal(hk_backend_cuda_open_api(cu, 1, &b), HK_OK);
    check_ops(b, 0.0);
    check_ops(a, 0.0);
    assert_int_equal(cu_fake_device_mismatches(), base);
    a->close(a);
    b->close(b);
    assert_int_equal(cu_fake_device_mismatches(), base);
    assert_int_equal(cu_fake_live_blocks(), 0);

    hk_backend *c = (hk_backend *)&c;
    assert_int_equal(hk_backend_cuda_open_api(cu, 3, &c), HK_ERR_INVALID_ARG);
    assert_null(c);
    print_message("%s\n", hk_last_error());
    assert_non_null(strstr(hk_last_error(), "device cuda:3: index 3 is past the last GPU: the "
                                            "CUDA runtime counts 3 (cuda:0 to cuda:2)"));
    setenv("CUDA_VISIBLE_DEVICES", "4,5,6", 1); /* named, since the indices are relative to it */
    assert_int_equal(hk_backend_cuda_open_api(cu, 7, &c), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "(cuda:0 to cuda:2; CUDA_VISIBLE_DEVICES=4,5,6)"));
    unsetenv("CUDA_VISIBLE_DEVICES");
    assert_int_equal(hk_backend_cuda_open_api(cu, -2, &c), HK_ERR_INVALID_ARG);
    unsetenv("HK_TEST_DEVICES");
}

/* With a GPU: the same battery on the device. */
static void test_ops_on_gpu(void **state) {
    (void)state;
#ifndef HK_TEST_CUDA_MODULE
    skip();
#else
    setenv("HK_CUDA_MODULE", HK_TEST_CUDA_MODULE, 1);
    if (gpus() == 0) skip();
    hk_backend *be = NULL;
    assert_int_equal(hk_backend_cuda_open(HK_DEVICE_INDEX_AUTO, &be), HK_OK);
    check_ops(be, 1e-6);
    be->close(be);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_without_module), cmocka_unit_test(test_weights_plan_f32),
        cmocka_unit_test(test_weights_plan_bf16),   cmocka_unit_test(test_weights_plan_failure),
        cmocka_unit_test(test_open_without_gpu),    cmocka_unit_test(test_ops_on_cpu_table),
        cmocka_unit_test(test_ops_on_gpu),          cmocka_unit_test(test_checkpoint_dtype),
        cmocka_unit_test(test_device_index_on_cpu_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
