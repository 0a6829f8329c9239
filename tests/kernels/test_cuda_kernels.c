/* Every CUDA kernel against its CPU kernel on random inputs (NMSE <= 1e-6 in f32). Skips
 * where no GPU is present; must pass where one is. f16/bf16 tensors: the CPU reference gets
 * the same rounded inputs (the device widens them to f32 and computes in f32), so the f32
 * bound holds for attention; cuBLAS's f16/bf16 products (tensor cores, f32 accumulation in
 * an order of its own) get NMSE_LOWP. The argument checks run everywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hookformer.h"
#include "kernels/common/mask_tile.h"
#include "kernels/cpu/kernels.h"
#include "cu_util.h"

static void test_device_count(void **state) {
    (void)state;
    need_module();
    /* must not crash without a driver or a GPU */
    int n = -1;
    const int err = cu->device_probe(&n);
    assert_int_equal(n, cu->device_count());
    assert_true(n >= 0);
    print_message("CUDA devices: %d (%s)\n", n, cu->error_name(err));
    /* a GPU hidden by ASan's shadow gap must not pass as "no GPU" */
    if (strcmp(cu->error_name(err), "cudaErrorMemoryAllocation") == 0) {
        print_error("CUDA init ran out of memory: under ASan set "
                    "ASAN_OPTIONS=protect_shadow_gap=0\n");
        fail();
    }
}

static void test_norms(void **state) {
    need_gpu(state);
    kt_rng r = {101};
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {64, 768}, {129, 4096}, {5, 5000}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t n = shapes[s][0], d = shapes[s][1];
        float *x = kt_alloc(n * d), *w = kt_alloc(d), *b = kt_alloc(d);
        float *yc = kt_alloc(n * d), *yg = kt_alloc(n * d), *sc = kt_alloc(n), *sg = kt_alloc(n);
        kt_fill(&r, x, n * d, -3, 3);
        kt_fill(&r, w, d, 0.5f, 1.5f);
        kt_fill(&r, b, d, -1, 1);
        float *dx = to_dev(x, (size_t)(n * d) * 4), *dw = to_dev(w, (size_t)d * 4);
        float *db = to_dev(b, (size_t)d * 4), *dy = to_dev(NULL, (size_t)(n * d) * 4);
        float *ds = to_dev(NULL, (size_t)n * 4);
        for (int kind = 0; kind < 3; kind++) {
            const char *what = kind == 0 ? "layernorm" : kind == 1 ? "layernorm no bias" : "rmsnorm";
            if (kind < 2) {
                hk_k_layernorm(x, n, d, w, kind == 0 ? b : NULL, 1e-5f, yc, sc);
                CU_OK(cu->layernorm(dx, n, d, dw, kind == 0 ? db : NULL, 1e-5f, dy, ds, NULL));
            } else {
                hk_k_rmsnorm(x, n, d, w, 1e-6f, yc, sc);
                CU_OK(cu->rmsnorm(dx, n, d, dw, 1e-6f, dy, ds, NULL));
            }
            from_dev(yg, dy, (size_t)(n * d) * 4);
            from_dev(sg, ds, (size_t)n * 4);
            expect_close(yg, yc, n * d, what);
            expect_close(sg, sc, n, what);
        }
        /* in place, no scale */
        CU_OK(cu->rmsnorm(dx, n, d, dw, 1e-6f, dx, NULL, NULL));
        from_dev(yg, dx, (size_t)(n * d) * 4);
        hk_k_rmsnorm(x, n, d, w, 1e-6f, yc, NULL);
        expect_close(yg, yc, n * d, "rmsnorm in place");
        CU_OK(cu->free(dx));
        CU_OK(cu->free(dw));
        CU_OK(cu->free(db));
        CU_OK(cu->free(dy));
        CU_OK(cu->free(ds));
        free(x);
        free(w);
        free(b);
        free(yc);
        free(yg);
        free(sc);
        free(sg);
    }
}

typedef int (*cu_act)(float *, int64_t, void *);
typedef void (*cpu_act)(float *, int64_t);

static void test_activations(void **state) {
    need_gpu(state);
    const struct {
        cu_act gpu;
        cpu_act cpu;
        const char *name;
    } acts[] = {{cu->gelu_new, hk_k_gelu_new, "gelu_new"},
                {cu->gelu, hk_k_gelu, "gelu"},
                {cu->silu, hk_k_silu, "silu"},
                {cu->relu, hk_k_relu, "relu"}};
    kt_rng r = {102};
    static const int64_t sizes[] = {1, 1000, 3 * 1024 * 1024 + 7};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const int64_t n = sizes[s];
        float *x = kt_alloc(n), *yc = kt_alloc(n), *yg = kt_alloc(n);
        kt_fill(&r, x, n, -10, 10);
        float *dx = to_dev(NULL, (size_t)n * 4);
        for (size_t a = 0; a < sizeof acts / sizeof *acts; a++) {
            memcpy(yc, x, (size_t)n * 4);
            acts[a].cpu(yc, n);
            CU_OK(cu->upload(dx, x, (size_t)n * 4));
            CU_OK(acts[a].gpu(dx, n, NULL));
            from_dev(yg, dx, (size_t)n * 4);
            expect_close(yg, yc, n, acts[a].name);
        }
        CU_OK(cu->free(dx));
        free(x);
        free(yc);
        free(yg);
    }
}

static void test_add_mul(void **state) {
    need_gpu(state);
    kt_rng r = {103};
    const int64_t n = 1000003;
    float *a = kt_alloc(n), *b = kt_alloc(n), *c = kt_alloc(n), *g = kt_alloc(n);
    kt_fill(&r, a, n, -1, 1);
    kt_fill(&r, b, n, -1, 1);
    float *da = to_dev(a, (size_t)n * 4), *db = to_dev(b, (size_t)n * 4);
    memcpy(c, a, (size_t)n * 4);
    hk_k_add(c, b, n);
    CU_OK(cu->add(da, db, n, NULL));
    from_dev(g, da, (size_t)n * 4);
    expect_close(g, c, n, "add");
    hk_k_mul(c, b, n);
    CU_OK(cu->mul(da, db, n, NULL));
    from_dev(g, da, (size_t)n * 4);
    expect_close(g, c, n, "mul");
    CU_OK(cu->free(da));
    CU_OK(cu->free(db));
    free(a);
    free(b);
    free(c);
    free(g);
}

static void test_rope(void **state) {
    need_gpu(state);
    kt_rng r = {104};
    static const int64_t cfg[][5] = {/* n, heads, d_head, rot, pad */
                                     {1, 1, 2, 2, 0},
                                     {33, 12, 64, 64, 0},
                                     {17, 8, 128, 32, 2 * 8 * 128},
                                     {257, 4, 80, 20, 3}};
    for (size_t s = 0; s < sizeof cfg / sizeof *cfg; s++) {
        const int64_t n = cfg[s][0], heads = cfg[s][1], dh = cfg[s][2], rot = cfg[s][3];
        const int64_t ld = heads * dh + cfg[s][4], half = rot / 2;
        float *x = kt_alloc(n * ld), *xc = kt_alloc(n * ld), *xg = kt_alloc(n * ld);
        float *cs = kt_alloc(n * half), *sn = kt_alloc(n * half);
        kt_fill(&r, x, n * ld, -2, 2);
        for (int64_t i = 0; i < n * half; i++) {
            const float th = kt_uniform(&r, -50, 50);
            cs[i] = cosf(th);
            sn[i] = sinf(th);
        }
        memcpy(xc, x, (size_t)(n * ld) * 4);
        hk_k_rope(xc, n, heads, dh, ld, rot, cs, sn);
        float *dx = to_dev(x, (size_t)(n * ld) * 4);
        float *dc = to_dev(cs, (size_t)(n * half) * 4), *ds = to_dev(sn, (size_t)(n * half) * 4);
        CU_OK(cu->rope(dx, n, heads, dh, ld, rot, dc, ds, NULL));
        from_dev(xg, dx, (size_t)(n * ld) * 4);
        expect_close(xg, xc, n * ld, "rope");
        CU_OK(cu->free(dx));
        CU_OK(cu->free(dc));
        CU_OK(cu->free(ds));
        free(x);
        free(xc);
        free(xg);
        free(cs);
        free(sn);
    }
}

static void test_embed(void **state) {
    need_gpu(state);
    kt_rng r = {105};
    const int64_t vocab = 1000, d = 96, n = 77;
    float *table = kt_alloc(vocab * d), *oc = kt_alloc(n * d), *og = kt_alloc(n * d);
    int32_t ids[77];
    kt_fill(&r, table, vocab * d, -1, 1);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)kt_int(&r, vocab);
    hk_k_embed(table, d, ids, n, oc);
    float *dt = to_dev(table, (size_t)(vocab * d) * 4), *dout = to_dev(NULL, (size_t)(n * d) * 4);
    int32_t *di = to_dev(ids, sizeof ids);
    CU_OK(cu->embed(dt, d, di, n, dout, NULL));
    from_dev(og, dout, (size_t)(n * d) * 4);
    assert_memory_equal(og, oc, (size_t)(n * d) * 4);
    /* f16 / bf16 tables: the rows of the rounded table, exactly */
    for (int t = HK_CU_F16; t <= HK_CU_BF16; t++) {
        float *rt = kt_alloc(vocab * d);
        memcpy(rt, table, (size_t)(vocab * d) * 4);
        round_through(rt, vocab * d, (hk_cu_dtype)t);
        hk_k_embed(rt, d, ids, n, oc);
        void *lt = to_dev_as(rt, vocab * d, (hk_cu_dtype)t);
        CU_OK(cu->embed_typed(lt, (hk_cu_dtype)t, d, di, n, dout, NULL));
        from_dev(og, dout, (size_t)(n * d) * 4);
        assert_memory_equal(og, oc, (size_t)(n * d) * 4);
        CU_OK(cu->free(lt));
        free(rt);
    }
    CU_OK(cu->free(dt));
    CU_OK(cu->free(dout));
    CU_OK(cu->free(di));
    free(table);
    free(oc);
    free(og);
}

static void test_convert(void **state) {
    need_gpu(state);
    kt_rng r = {106};
    const int64_t n = 100003;
    float *x = kt_alloc(n), *y = kt_alloc(n), *want = kt_alloc(n);
    kt_fill(&r, x, n, -1000, 1000);
    x[0] = 0.0f;
    x[1] = -0.0f;
    x[2] = 1.0f + 1.0f / 256; /* a tie: rounds to even */
    for (int64_t i = 0; i < n; i++) want[i] = host_bf16(x[i]);
    memcpy(y, x, (size_t)n * 4);
    round_through(y, n, HK_CU_BF16);
    assert_memory_equal(y, want, (size_t)n * 4);
    /* f16: the values in range stay within half an ulp (2^-11 relative) */
    memcpy(y, x, (size_t)n * 4);
    round_through(y, n, HK_CU_F16);
    for (int64_t i = 0; i < n; i++) assert_true(fabsf(y[i] - x[i]) <= fabsf(x[i]) * 0x1p-11f);
    assert_int_equal(cu->dtype_size(HK_CU_F32), 4);
    assert_int_equal(cu->dtype_size(HK_CU_BF16), 2);
    free(x);
    free(y);
    free(want);
}

static void test_gated(void **state) {
    need_gpu(state);
    kt_rng r = {107};
    const int64_t n = 70001;
    float *g = kt_alloc(n), *u = kt_alloc(n), *c = kt_alloc(n), *o = kt_alloc(n);
    kt_fill(&r, g, n, -8, 8);
    kt_fill(&r, u, n, -2, 2);
    static void (*const cpu[4])(float *, int64_t) = {hk_k_silu, hk_k_gelu, hk_k_gelu_new,
                                                       hk_k_relu};
    float *dg = to_dev(NULL, (size_t)n * 4), *du = to_dev(u, (size_t)n * 4);
    for (int act = 0; act < 4; act++) {
        memcpy(c, g, (size_t)n * 4);
        cpu[act](c, n);
        hk_k_mul(c, u, n);
        CU_OK(cu->upload(dg, g, (size_t)n * 4));
        CU_OK(cu->gated(act, dg, du, n, NULL));
        from_dev(o, dg, (size_t)n * 4);
        expect_close(o, c, n, "gated");
    }
    assert_int_not_equal(cu->gated(4, dg, du, n, NULL), 0);
    CU_OK(cu->free(dg));
    CU_OK(cu->free(du));
    free(g);
    free(u);
    free(c);
    free(o);
}

static void test_linear(void **state) {
    need_gpu(state);
    kt_rng r = {108};
    hk_cu_blas *h = NULL;
    CU_OK(cu->blas_new(NULL, &h));
    static const int64_t shapes[][3] = {{1, 64, 48}, {7, 33, 65}, {128, 256, 200}, {3, 0, 5}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int t = 0; t < 3; t++)
            for (int io = 0; io < 2; io++)
                for (int hb = 0; hb < 2; hb++) {
                    const int64_t n = shapes[si][0], in = shapes[si][1], out = shapes[si][2];
                    const hk_cu_dtype wt = (hk_cu_dtype)t;
                    const int64_t ldw = (io ? out : in) + 3, ldy = out + 5;
                    const int64_t wn = (io ? in : out) * ldw;
                    float *x = kt_alloc(n * in), *w = kt_alloc(wn), *b = kt_alloc(out);
                    float *yc = kt_alloc(n * ldy), *yg = kt_alloc(n * ldy);
                    kt_fill(&r, x, n * in, -1, 1);
                    kt_fill(&r, w, wn, -1, 1);
                    kt_fill(&r, b, out, -1, 1);
                    kt_fill(&r, yc, n * ldy, 5, 6); /* padding columns must survive */
                    memcpy(yg, yc, (size_t)(n * ldy) * 4);
                    round_through(w, wn, wt);
                    float *xr = kt_alloc(n * in);
                    memcpy(xr, x, (size_t)(n * in) * 4);
                    round_through(xr, n * in, wt); /* the device rounds x to wt too */
                    hk_k_linear(xr, n, in, w, ldw, io, hb ? b : NULL, out, yc, ldy);
                    float *dx = to_dev(x, (size_t)(n * in) * 4), *db = to_dev(b, (size_t)out * 4);
                    void *dw = to_dev_as(w, wn, wt);
                    float *dy = to_dev(yg, (size_t)(n * ldy) * 4);
                    void *ws = wt == HK_CU_F32 ? NULL : to_dev(NULL, (size_t)(n * in) * 2 + 2);
                    CU_OK(cu->linear(h, dx, n, in, dw, wt, ldw, io, hb ? db : NULL, out, dy,
                                       ldy, ws));
                    from_dev(yg, dy, (size_t)(n * ldy) * 4);
                    char what[96];
                    snprintf(what, sizeof what, "linear %lldx%lldx%lld type %d in_out %d bias %d",
                             (long long)n, (long long)in, (long long)out, t, io, hb);
                    expect_within(yg, yc, n * ldy, wt == HK_CU_F32 ? NMSE_MAX : NMSE_LOWP, what);
                    for (int64_t i = 0; i < n; i++) /* untouched padding */
                        for (int64_t c = out; c < ldy; c++) assert_true(yg[i * ldy + c] >= 5.0f);
                    CU_OK(cu->free(dx));
                    CU_OK(cu->free(db));
                    CU_OK(cu->free(dw));
                    CU_OK(cu->free(dy));
                    if (ws) CU_OK(cu->free(ws));
                    free(x);
                    free(xr);
                    free(w);
                    free(b);
                    free(yc);
                    free(yg);
                }
    cu->blas_free(h);
}

/* ---- attention ---- */

/* The CPU reference's predicate: documents and the block mask, as the device evaluates them. */
typedef struct {
    const int32_t *doc;
    int64_t len;
    const hk_block_mask *blocks;
    int64_t q_pos0, k_pos0;
} ref_pred_ctx;

static bool ref_pred(void *user, int64_t head, int64_t q_pos, int64_t k_pos) {
    const ref_pred_ctx *c = user;
    if (c->doc && !hk_mask_doc_visible(c->doc, c->len, q_pos, k_pos)) return false;
    if (c->blocks &&
        !hk_block_mask_visible(c->blocks, head, q_pos - c->q_pos0, k_pos - c->k_pos0))
        return false;
    return true;
}

/* A user predicate for block masks: head-dependent, with whole-tile regions. */
static bool user_pred(void *user, int64_t head, int64_t q_pos, int64_t k_pos) {
    (void)user;
    if ((q_pos / 64 + k_pos / 64 + head) % 3 == 1) return false;
    return ((q_pos * 31 + k_pos * 17 + head * 7) % 11) < 8;
}

typedef struct {
    int64_t sq, sk, nh, nkv, d;
    int causal;
    int64_t window;
    int64_t q_pos0, k_pos0, k_len;
    int docs;   /* 1: packed documents */
    int blocks; /* 1: block mask from user_pred, shared; 2: per head */
    int64_t ring;
    hk_cu_dtype dtype;   /* k, v */
    hk_cu_dtype q_type;  /* 0 (F32) unless set: f32 queries against f16/bf16 keys */
    float softcap;       /* > 0: Gemma 2's attention-logit soft-cap; 0: none */
} attn_case;

static void run_attention_case(const attn_case *tc, kt_rng *r) {
    const int64_t sq = tc->sq, sk = tc->sk, nh = tc->nh, nkv = tc->nkv, d = tc->d;
    const int64_t ldq = nh * d + 3, ldk = nkv * d + 1, ldo = nh * d + 2;
    const int64_t rows = tc->ring ? tc->ring : sk;
    float *q = kt_alloc(sq * ldq), *k = kt_alloc(rows * ldk), *v = kt_alloc(rows * ldk);
    float *kl = kt_alloc(sk * ldk), *vl = kt_alloc(sk * ldk);
    float *oc = kt_alloc(sq * ldo), *og = kt_alloc(sq * ldo);
    kt_fill(r, q, sq * ldq, -2, 2);
    kt_fill(r, k, rows * ldk, -2, 2);
    kt_fill(r, v, rows * ldk, -2, 2);
    round_through(q, sq * ldq, tc->q_type);
    round_through(k, rows * ldk, tc->dtype);
    round_through(v, rows * ldk, tc->dtype);
    for (int64_t j = 0; j < sk; j++) { /* the reference reads keys in position order */
        const int64_t row = tc->ring ? (tc->k_pos0 + j) % tc->ring : j;
        memcpy(kl + j * ldk, k + row * ldk, (size_t)ldk * 4);
        memcpy(vl + j * ldk, v + row * ldk, (size_t)ldk * 4);
    }
    hk_mask_desc m;
    memset(&m, 0, sizeof m);
    m.b.causal = tc->causal;
    m.b.window = tc->window;
    m.b.q_pos0 = tc->q_pos0;
    m.b.k_pos0 = tc->k_pos0;
    m.b.k_len = tc->k_len;
    m.softcap = tc->softcap;
    const int64_t npos = (tc->q_pos0 + sq > tc->k_pos0 + sk ? tc->q_pos0 + sq : tc->k_pos0 + sk);
    int32_t *doc = malloc((size_t)npos * sizeof *doc), *ddoc = NULL;
    int32_t id = 0;
    for (int64_t p = 0; p < npos; p++) {
        if (kt_int(r, 97) == 0) id++;
        doc[p] = id;
    }
    hk_block_mask hb = {0}, db = {0};
    hk_k_mask um = {.causal = tc->causal, .window = tc->window, .q_pos0 = tc->q_pos0,
                    .k_pos0 = tc->k_pos0, .k_len = tc->k_len, .allowed = user_pred};
    if (tc->blocks) {
        assert_true(hk_k_block_mask_build(&um, sq, sk, tc->blocks == 2 ? nh : 1, &hb));
        CU_OK(cu->block_mask_upload(&hb, &db));
        m.blocks = db;
    }
    if (tc->docs) {
        ddoc = to_dev(doc, (size_t)npos * sizeof *doc);
        m.doc = ddoc;
        m.doc_len = npos;
    }
    ref_pred_ctx rc = {.doc = tc->docs ? doc : NULL, .len = npos,
                       .blocks = tc->blocks ? &hb : NULL, .q_pos0 = tc->q_pos0,
                       .k_pos0 = tc->k_pos0};
    hk_k_mask cm = {.causal = tc->causal, .window = tc->window, .q_pos0 = tc->q_pos0,
                    .k_pos0 = tc->k_pos0, .k_len = tc->k_len,
                    .allowed = (tc->docs || tc->blocks) ? ref_pred : NULL, .user = &rc,
                    .softcap = tc->softcap};
    const float scale = 1.0f / sqrtf((float)d);
    kt_fill(r, oc, sq * ldo, 7, 8);
    memcpy(og, oc, (size_t)(sq * ldo) * 4);
    hk_k_attention(q, ldq, kl, ldk, vl, ldk, sq, sk, nh, nkv, d, scale, &cm, oc, ldo);
    void *dq = to_dev_as(q, sq * ldq, tc->q_type), *dk = to_dev_as(k, rows * ldk, tc->dtype);
    void *dv = to_dev_as(v, rows * ldk, tc->dtype);
    float *dout = to_dev(og, (size_t)(sq * ldo) * 4);
    float *init = kt_alloc(sq * ldo);
    memcpy(init, og, (size_t)(sq * ldo) * 4);
    /* both paths: f32 on CUDA cores, then tensor cores where the call qualifies; each with
     * the automatic key splits and with 3 forced (partial results + combine kernel) */
    for (int run = 0; run < 4; run++) {
        const int path = run / 2;
        cu->attention_force_simt(path == 0);
        cu->attention_force_splits(run % 2 ? 3 : 0);
        const char *name = cu->attention_path(tc->dtype, d);
        if (path == 1 && strcmp(name, "tensor-core") != 0) break;
        CU_OK(cu->upload(dout, init, (size_t)(sq * ldo) * 4));
        CU_OK(cu->attention(tc->q_type, tc->dtype, dq, ldq, dk, ldk, dv, ldk, sq, sk, tc->ring,
                              nh, nkv, d, scale, &m, dout, ldo, NULL));
        from_dev(og, dout, (size_t)(sq * ldo) * 4);
        char what[260];
        snprintf(what, sizeof what,
                 "attention (%s, splits %s) sq %lld sk %lld heads %lld/%lld d %lld causal %d "
                 "window %lld pos0 %lld/%lld k_len %lld docs %d blocks %d ring %lld type %d q %d",
                 name, run % 2 ? "3" : "auto", (long long)sq, (long long)sk, (long long)nh,
                 (long long)nkv, (long long)d, tc->causal, (long long)tc->window, (long long)tc->q_pos0,
                 (long long)tc->k_pos0, (long long)tc->k_len, tc->docs, tc->blocks,
                 (long long)tc->ring, tc->dtype, tc->q_type);
        /* includes the untouched padding columns */
        expect_within(og, oc, sq * ldo,
                      path == 0 ? NMSE_MAX : tc->q_type == tc->dtype ? NMSE_TC : NMSE_TC_Q, what);
    }
    cu->attention_force_simt(false);
    cu->attention_force_splits(0);
    free(init);
    /* fully masked rows are exactly zero on both */
    for (int64_t i = 0; i < sq; i++) {
        bool any = false;
        for (int64_t j = 0; j < sk && !any; j++) any = hk_k_mask_visible(&cm, sk, 0, i, j);
        if (!any && nkv == nh)
            for (int64_t c = 0; c < d; c++) assert_true(og[i * ldo + c] == 0.0f);
    }
    CU_OK(cu->free(dq));
    CU_OK(cu->free(dk));
    CU_OK(cu->free(dv));
    CU_OK(cu->free(dout));
    if (ddoc) CU_OK(cu->free(ddoc));
    cu->block_mask_free(&db);
    hk_k_block_mask_free(&hb);
    free(doc);
    free(q);
    free(k);
    free(v);
    free(kl);
    free(vl);
    free(oc);
    free(og);
}

static void test_attention(void **state) {
    need_gpu(state);
    kt_rng r = {109};
    /* sq sk nh nkv d causal window q_pos0 k_pos0 k_len docs blocks ring kv_type q_type */
    static const attn_case cases[] = {
        {1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},
        {64, 64, 4, 4, 64, 1, 0, 0, 0, 64, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},
        {100, 100, 4, 4, 64, 0, 0, 0, 0, 100, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},     /* no mask */
        {77, 300, 8, 2, 128, 1, 0, 223, 0, 300, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},  /* bottom-right, GQA */
        {200, 200, 4, 1, 80, 1, 37, 0, 0, 200, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},   /* window, MQA */
        {130, 190, 2, 2, 96, 1, 0, 60, 0, 150, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},   /* k_len < sk */
        {50, 70, 2, 2, 32, 0, 0, 0, 0, 0, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},        /* every key padded */
        {90, 90, 2, 2, 16, 1, 5, 0, 40, 90, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},      /* rows that see nothing */
        {150, 150, 4, 2, 64, 1, 0, 0, 0, 150, 1, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},    /* packed documents */
        {150, 150, 4, 2, 64, 0, 0, 0, 0, 150, 1, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},    /* bidirectional docs */
        {140, 170, 4, 2, 40, 1, 0, 30, 0, 170, 0, 1, 0, HK_CU_F32, HK_CU_F32, 0.0f},   /* user mask, shared */
        {140, 170, 4, 2, 40, 1, 0, 30, 0, 170, 1, 2, 0, HK_CU_F32, HK_CU_F32, 0.0f},   /* per head + docs */
        {1, 500, 32, 8, 128, 1, 0, 499, 0, 500, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},  /* decode */
        {3, 257, 8, 2, 128, 1, 0, 254, 0, 257, 0, 2, 0, HK_CU_F32, HK_CU_F32, 0.0f},   /* decode, per head */
        {1, 96, 8, 2, 64, 1, 96, 1000, 905, 96, 0, 0, 96, HK_CU_F32, HK_CU_F32, 0.0f}, /* rolling buffer */
        {20, 100, 4, 2, 64, 1, 100, 300, 220, 100, 0, 0, 100, HK_CU_F32, HK_CU_F32, 0.0f},
        {33, 70, 2, 1, 256, 1, 0, 37, 0, 70, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},     /* largest head */
        {129, 129, 4, 2, 128, 1, 0, 0, 0, 129, 0, 0, 0, HK_CU_BF16, HK_CU_BF16, 0.0f},
        {129, 129, 4, 2, 128, 1, 64, 0, 0, 129, 1, 0, 0, HK_CU_F16, HK_CU_F16, 0.0f},
        {1, 64, 8, 2, 128, 1, 64, 500, 437, 64, 0, 0, 64, HK_CU_BF16, HK_CU_BF16, 0.0f}, /* rolling bf16 */
        {300, 300, 8, 2, 64, 1, 0, 0, 0, 300, 1, 2, 0, HK_CU_BF16, HK_CU_BF16, 0.0f},    /* docs + per head */
        {5, 200, 32, 8, 128, 1, 0, 195, 0, 200, 0, 0, 0, HK_CU_F16, HK_CU_F16, 0.0f},    /* decode, group 4 */
        {70, 90, 4, 4, 256, 0, 0, 0, 0, 90, 0, 0, 0, HK_CU_BF16, HK_CU_BF16, 0.0f},       /* d 256 */
        {64, 64, 2, 2, 16, 1, 0, 0, 0, 64, 0, 0, 0, HK_CU_F16, HK_CU_F16, 0.0f},
        /* decoding a long context: automatic key splits (flash-decoding) */
        {1, 4096, 32, 8, 128, 1, 0, 4095, 0, 4096, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.0f},
        {2, 4096, 32, 8, 128, 1, 0, 4094, 0, 4000, 1, 0, 0, HK_CU_BF16, HK_CU_F32, 0.0f},
        /* f32 queries against a bf16 rolling KV cache (the forward's decode) */
        {1, 64, 32, 8, 128, 1, 64, 500, 437, 64, 0, 0, 64, HK_CU_BF16, HK_CU_F32, 0.0f},
        {100, 100, 8, 2, 64, 1, 0, 0, 0, 100, 1, 0, 0, HK_CU_F16, HK_CU_F32, 0.0f},
        /* soft-capped scores (Gemma 2), per tile on both paths, with a window and splits */
        {130, 130, 4, 2, 64, 1, 0, 0, 0, 130, 0, 0, 0, HK_CU_F32, HK_CU_F32, 0.3f},
        {150, 150, 8, 4, 64, 1, 40, 0, 0, 150, 1, 0, 0, HK_CU_BF16, HK_CU_BF16, 0.5f},
        {1, 4096, 32, 8, 128, 1, 0, 4095, 0, 4096, 0, 0, 0, HK_CU_F16, HK_CU_F32, 0.4f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) run_attention_case(&cases[c], &r);
    /* random shapes */
    for (int it = 0; it < 40; it++) {
        attn_case tc;
        tc.nkv = 1 + kt_int(&r, 3);
        tc.nh = tc.nkv * (1 + kt_int(&r, 4));
        tc.d = 1 + kt_int(&r, 160);
        tc.sq = 1 + kt_int(&r, 180);
        tc.sk = 1 + kt_int(&r, 300);
        tc.causal = (int)kt_int(&r, 2);
        tc.window = kt_int(&r, 2) ? 0 : 1 + kt_int(&r, 200);
        tc.q_pos0 = kt_int(&r, 300);
        tc.k_pos0 = kt_int(&r, 2) ? tc.q_pos0 + tc.sq - tc.sk : kt_int(&r, 300);
        if (tc.k_pos0 < 0) tc.k_pos0 = 0;
        tc.k_len = kt_int(&r, 3) ? tc.sk : kt_int(&r, tc.sk + 1);
        tc.docs = (int)kt_int(&r, 2);
        tc.blocks = (int)kt_int(&r, 3);
        tc.ring = kt_int(&r, 4) == 0 ? tc.sk + kt_int(&r, 10) : 0;
        tc.dtype = (hk_cu_dtype)kt_int(&r, 3);
        tc.q_type = kt_int(&r, 2) ? tc.dtype : HK_CU_F32;
        if (tc.dtype != HK_CU_F32 && kt_int(&r, 2)) tc.d = 16 * (1 + kt_int(&r, 10));
        run_attention_case(&tc, &r);
    }
}

/* hk_cu_attention_scores, hk_cu_softmax_rows, hk_cu_attention_apply vs the CPU pieces */
static void test_materialized(void **state) {
    need_gpu(state);
    kt_rng r = {110};
    hk_cu_blas *h = NULL;
    CU_OK(cu->blas_new(NULL, &h));
    static const int64_t cfg[][7] = {/* sq sk nh nkv d docs softcap*100 */
                                     {1, 1, 1, 1, 8, 0, 0},
                                     {33, 70, 4, 2, 64, 0, 0},
                                     {64, 200, 8, 1, 128, 1, 0},
                                     {17, 17, 2, 2, 5, 1, 0},
                                     {33, 70, 4, 2, 64, 1, 30}};
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
        const int64_t sq = cfg[c][0], sk = cfg[c][1], nh = cfg[c][2], nkv = cfg[c][3];
        const int64_t d = cfg[c][4], ld = nh * d, ldk = nkv * d;
        float *q = kt_alloc(sq * ld), *k = kt_alloc(sk * ldk), *v = kt_alloc(sk * ldk);
        float *sc = kt_alloc(nh * sq * sk), *sg = kt_alloc(nh * sq * sk);
        float *oc = kt_alloc(sq * ld), *og = kt_alloc(sq * ld);
        kt_fill(&r, q, sq * ld, -2, 2);
        kt_fill(&r, k, sk * ldk, -2, 2);
        kt_fill(&r, v, sk * ldk, -2, 2);
        int32_t doc[256];
        for (int64_t p = 0; p < 256; p++) doc[p] = (int32_t)(p / 23);
        hk_mask_desc m;
        memset(&m, 0, sizeof m);
        m.b.causal = true;
        m.b.q_pos0 = sk - sq;
        m.b.k_len = sk;
        m.softcap = (float)cfg[c][6] / 100.0f;
        int32_t *ddoc = NULL;
        if (cfg[c][5]) {
            ddoc = to_dev(doc, sizeof doc);
            m.doc = ddoc;
            m.doc_len = 256;
        }
        ref_pred_ctx rc = {.doc = cfg[c][5] ? doc : NULL, .len = 256};
        hk_k_mask cm = {.causal = true, .q_pos0 = sk - sq, .k_len = sk,
                        .allowed = cfg[c][5] ? ref_pred : NULL, .user = &rc,
                        .softcap = m.softcap};
        hk_k_attention_scores(q, ld, k, ldk, sq, sk, nh, nkv, d, 0.125f, &cm, sc);
        float *dq = to_dev(q, (size_t)(sq * ld) * 4), *dk = to_dev(k, (size_t)(sk * ldk) * 4);
        float *dv = to_dev(v, (size_t)(sk * ldk) * 4);
        float *ds = to_dev(NULL, (size_t)(nh * sq * sk) * 4), *dout = to_dev(NULL, (size_t)(sq * ld) * 4);
        CU_OK(cu->attention_scores(h, dq, ld, dk, ldk, sq, sk, nh, nkv, d, 0.125f, &m, ds));
        from_dev(sg, ds, (size_t)(nh * sq * sk) * 4);
        /* -inf exactly where the CPU has it; finite scores close */
        for (int64_t i = 0; i < nh * sq * sk; i++) {
            assert_int_equal(isinf(sg[i]), isinf(sc[i]));
            if (isinf(sc[i])) sg[i] = sc[i] = 0.0f;
        }
        expect_close(sg, sc, nh * sq * sk, "attention scores");
        hk_k_attention_scores(q, ld, k, ldk, sq, sk, nh, nkv, d, 0.125f, &cm, sc);
        hk_k_softmax_rows(sc, nh * sq, sk, sc);
        CU_OK(cu->softmax_rows(ds, nh * sq, sk, ds, NULL));
        from_dev(sg, ds, (size_t)(nh * sq * sk) * 4);
        expect_close(sg, sc, nh * sq * sk, "softmax rows");
        hk_k_attention_apply(sc, v, ldk, sq, sk, nh, nkv, d, oc, ld);
        CU_OK(cu->attention_apply(h, ds, dv, ldk, sq, sk, nh, nkv, d, dout, ld));
        from_dev(og, dout, (size_t)(sq * ld) * 4);
        expect_close(og, oc, sq * ld, "attention apply");
        CU_OK(cu->free(dq));
        CU_OK(cu->free(dk));
        CU_OK(cu->free(dv));
        CU_OK(cu->free(ds));
        CU_OK(cu->free(dout));
        if (ddoc) CU_OK(cu->free(ddoc));
        free(q);
        free(k);
        free(v);
        free(sc);
        free(sg);
        free(oc);
        free(og);
    }
    /* a row with no finite score becomes zeros */
    float row[5] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY}, got[5];
    float *dr = to_dev(row, sizeof row);
    CU_OK(cu->softmax_rows(dr, 1, 5, dr, NULL));
    from_dev(got, dr, sizeof got);
    for (int i = 0; i < 5; i++) assert_true(got[i] == 0.0f);
    CU_OK(cu->free(dr));
    cu->blas_free(h);
}

/* ---- sampling: the token hk_sample picks from the same draw ---- */

static void test_sampling(void **state) {
    need_gpu(state);
    kt_rng r = {111};
    const int64_t vocab = 5003;
    float *x = kt_alloc(vocab);
    float *dx = to_dev(NULL, (size_t)vocab * 4);
    void *ws = to_dev(NULL, cu->sample_ws_bytes(vocab));
    int32_t *dres = to_dev(NULL, 8);
    static const struct {
        float t;
        int k;
        float p;
    } opts[] = {{0, 0, 1},    {1, 0, 1},    {0.7f, 40, 1}, {1.3f, 0, 0.9f}, {0.5f, 10, 0.5f},
                {2, 1, 1},    {1, 0, 0.01f}, {1e-6f, 0, 1}, {1, 5003, 0.99f}, {1, 100, 1}};
    int agree = 0, total = 0;
    for (int it = 0; it < 60; it++) {
        const int kind = it % 4;
        kt_fill(&r, x, vocab, -5, 5);
        if (kind == 1) /* ties: few distinct values */
            for (int64_t i = 0; i < vocab; i++) x[i] = (float)(int)(x[i]);
        if (kind == 2) /* -inf entries and one dominant logit */
            for (int64_t i = 0; i < vocab; i += 3) x[i] = -INFINITY;
        if (kind == 3) x[kt_int(&r, vocab)] = 30.0f;
        CU_OK(cu->upload(dx, x, (size_t)vocab * 4));
        for (size_t o = 0; o < sizeof opts / sizeof *opts; o++) {
            hk_sampler_opts so = hk_sampler_default();
            so.temperature = opts[o].t;
            so.top_k = opts[o].k;
            so.top_p = opts[o].p;
            uint64_t st = kt_next(&r), copy = st;
            int32_t want;
            assert_int_equal(hk_sample(x, vocab, &so, &st, &want), HK_OK);
            kt_rng u = {copy};
            const double u01 = (double)(kt_next(&u) >> 11) * 0x1.0p-53;
            CU_OK(cu->sample(dx, vocab, so.temperature, so.top_k, so.top_p, u01, ws, dres,
                               NULL));
            int32_t res[2];
            from_dev(res, dres, sizeof res);
            assert_int_equal(res[1], 0);
            total++;
            agree += res[0] == want;
            if (res[0] != want)
                print_message("sample: case %d opts %zu: device %d, host %d\n", it, o, res[0],
                              want);
        }
    }
    /* the sums differ in order only: a disagreement needs u on a rounding boundary */
    assert_int_equal(agree, total);
    /* NaN and all -inf are reported */
    x[7] = NAN;
    CU_OK(cu->upload(dx, x, (size_t)vocab * 4));
    CU_OK(cu->sample(dx, vocab, 1.0f, 0, 1.0f, 0.5, ws, dres, NULL));
    int32_t res[2];
    from_dev(res, dres, sizeof res);
    assert_int_equal(res[1], 1);
    for (int64_t i = 0; i < vocab; i++) x[i] = -INFINITY;
    CU_OK(cu->upload(dx, x, (size_t)vocab * 4));
    CU_OK(cu->sample(dx, vocab, 1.0f, 0, 1.0f, 0.5, ws, dres, NULL));
    from_dev(res, dres, sizeof res);
    assert_int_equal(res[1], 2);
    CU_OK(cu->sample(dx, vocab, 0.0f, 0, 1.0f, 0.5, ws, dres, NULL)); /* greedy: id 0 */
    from_dev(res, dres, sizeof res);
    assert_int_equal(res[0], 0);
    assert_int_equal(res[1], 0);
    CU_OK(cu->free(dx));
    CU_OK(cu->free(ws));
    CU_OK(cu->free(dres));
    free(x);
}

/* ---- pinned double buffer ---- */

static void test_d2h_ring(void **state) {
    need_gpu(state);
    const int64_t n = 1 << 20, copies = 7;
    void *stream = NULL;
    CU_OK(cu->stream_create(&stream));
    hk_cu_d2h_ring *ring = NULL;
    CU_OK(cu->d2h_ring_new((size_t)n * 4, &ring));
    float *h = kt_alloc(n), *d = to_dev(NULL, (size_t)n * 4);
    int prev = -1;
    for (int64_t c = 0; c < copies; c++) {
        /* the compute stream rewrites the tensor; the copy must see this version */
        for (int64_t i = 0; i < n; i++) h[i] = (float)(c * 1000 + i % 997);
        CU_OK(cu->upload_async(d, h, (size_t)n * 4, stream));
        CU_OK(cu->add(d, d, n, stream)); /* doubled on the device */
        int slot;
        CU_OK(cu->d2h_begin(ring, d, (size_t)n * 4, stream, &slot));
        assert_int_not_equal(slot, prev);
        /* the host reads the copy before last while this one runs */
        if (prev >= 0) {
            const void *got;
            CU_OK(cu->d2h_wait(ring, prev, &got));
            const float *g = got;
            for (int64_t i = 0; i < n; i += 4099)
                assert_true(g[i] == 2.0f * (float)((c - 1) * 1000 + i % 997));
        }
        CU_OK(cu->sync(stream)); /* h is rewritten next: the upload must have read it */
        prev = slot;
    }
    const void *got;
    CU_OK(cu->d2h_wait(ring, prev, &got));
    assert_true(((const float *)got)[5] == 2.0f * (float)((copies - 1) * 1000 + 5));
    int slot;
    assert_int_not_equal(cu->d2h_begin(ring, d, (size_t)n * 4 + 4, stream, &slot), 0);
    cu->d2h_ring_free(ring);
    CU_OK(cu->free(d));
    CU_OK(cu->stream_destroy(stream));
    free(h);
}

/* hk_cu_kv_write into a linear cache and a rolling buffer, converting */
static void test_kv_write(void **state) {
    need_gpu(state);
    kt_rng r = {112};
    const int64_t width = 40, ldd = 43, lds = 41, ring = 16;
    for (int t = 0; t < 3; t++) {
        const hk_cu_dtype dt = (hk_cu_dtype)t;
        const size_t es = cu->dtype_size(dt);
        /* the ring after writing positions 0..36 in chunks of 5, 16 (a full lap) and 16 */
        float *src = kt_alloc(37 * lds), *want = kt_alloc(ring * ldd), *got = kt_alloc(ring * ldd);
        kt_fill(&r, src, 37 * lds, -3, 3);
        round_through(src, 37 * lds, dt);
        for (int64_t i = 0; i < ring * ldd; i++) want[i] = 0.0f;
        void *dst = to_dev(NULL, (size_t)(ring * ldd) * es);
        CU_OK(cu->memset_async(dst, 0, (size_t)(ring * ldd) * es, NULL));
        float *dsrc = to_dev(src, (size_t)(37 * lds) * 4);
        static const int64_t chunks[][2] = {{0, 5}, {5, 16}, {21, 16}};
        for (int c = 0; c < 3; c++) {
            const int64_t p0 = chunks[c][0], n = chunks[c][1];
            CU_OK(cu->kv_write(dst, dt, ldd, ring, p0, dsrc + p0 * lds, lds, n, width, NULL));
            for (int64_t i = 0; i < n; i++)
                memcpy(want + ((p0 + i) % ring) * ldd, src + (p0 + i) * lds, (size_t)width * 4);
        }
        float *wide = to_dev(NULL, (size_t)(ring * ldd) * 4);
        CU_OK(cu->convert(wide, HK_CU_F32, dst, dt, ring * ldd, NULL));
        from_dev(got, wide, (size_t)(ring * ldd) * 4);
        assert_memory_equal(got, want, (size_t)(ring * ldd) * 4);
        /* linear: position p at row p */
        CU_OK(cu->kv_write(dst, dt, ldd, 0, 3, dsrc, lds, 2, width, NULL));
        CU_OK(cu->convert(wide, HK_CU_F32, dst, dt, ring * ldd, NULL));
        from_dev(got, wide, (size_t)(ring * ldd) * 4);
        assert_memory_equal(got + 3 * ldd, src, (size_t)width * 4);
        assert_memory_equal(got + 4 * ldd, src + lds, (size_t)width * 4);
        CU_OK(cu->free(dst));
        CU_OK(cu->free(dsrc));
        CU_OK(cu->free(wide));
        free(src);
        free(want);
        free(got);
    }
}

/* Argument checks that never touch the device: these run everywhere. */
static void test_argument_checks(void **state) {
    (void)state;
    need_module();
    float dummy = 0.0f;
    /* d_head > 256, heads not a multiple of KV heads, a ring shorter than the keys */
    const hk_cu_dtype F = HK_CU_F32;
    assert_int_not_equal(cu->attention(F, F, &dummy, 1, &dummy, 1, &dummy, 1, 1, 1, 0, 1, 1,
                                         300, 1.0f, NULL, &dummy, 1, NULL),
                         0);
    assert_int_not_equal(cu->attention(F, F, &dummy, 1, &dummy, 1, &dummy, 1, 1, 1, 0, 3, 2,
                                         8, 1.0f, NULL, &dummy, 1, NULL),
                         0);
    assert_int_not_equal(cu->attention(F, F, &dummy, 1, &dummy, 1, &dummy, 1, 1, 9, 8, 1, 1,
                                         8, 1.0f, NULL, &dummy, 1, NULL),
                         0);
    assert_int_not_equal(cu->attention((hk_cu_dtype)4, F, &dummy, 1, &dummy, 1, &dummy, 1, 1,
                                         1, 0, 1, 1, 8, 1.0f, NULL, &dummy, 1, NULL),
                         0);
    /* nothing to do is success */
    assert_int_equal(cu->attention(F, F, NULL, 1, NULL, 1, NULL, 1, 0, 5, 0, 1, 1, 8, 1.0f,
                                     NULL, NULL, 1, NULL),
                     0);
    /* a KV write longer than its ring, a negative position */
    assert_int_not_equal(cu->kv_write(&dummy, F, 1, 4, 0, &dummy, 1, 5, 1, NULL), 0);
    assert_int_not_equal(cu->kv_write(&dummy, F, 1, 0, -1, &dummy, 1, 1, 1, NULL), 0);
    /* sampling options as hk_sample checks them */
    int32_t res[2];
    assert_int_not_equal(cu->sample(&dummy, 0, 1.0f, 0, 1.0f, 0.5, NULL, res, NULL), 0);
    assert_int_not_equal(cu->sample(&dummy, 1, -1.0f, 0, 1.0f, 0.5, NULL, res, NULL), 0);
    assert_int_not_equal(cu->sample(&dummy, 1, 1.0f, -1, 1.0f, 0.5, NULL, res, NULL), 0);
    assert_int_not_equal(cu->sample(&dummy, 1, 1.0f, 0, 0.0f, 0.5, NULL, res, NULL), 0);
    assert_int_not_equal(cu->sample(&dummy, 1, 1.0f, 0, 1.0f, 1.0, NULL, res, NULL), 0);
    assert_int_not_equal(cu->convert(&dummy, (hk_cu_dtype)7, &dummy, HK_CU_F32, 1, NULL), 0);
    assert_int_not_equal(cu->gated(9, &dummy, &dummy, 1, NULL), 0);
    assert_int_not_equal(cu->embed_typed(&dummy, (hk_cu_dtype)5, 1, NULL, 1, &dummy, NULL), 0);
    assert_int_equal(cu->sample_ws_bytes(1000), 8000);
    /* which attention kernel a call gets (decided on the host) */
    assert_string_equal(cu->attention_path(HK_CU_BF16, 128), "tensor-core");
    assert_string_equal(cu->attention_path(HK_CU_F16, 64), "tensor-core");
    assert_string_equal(cu->attention_path(HK_CU_BF16, 80), "tensor-core");
    assert_string_equal(cu->attention_path(HK_CU_BF16, 72), "simt-f32");
    assert_string_equal(cu->attention_path(HK_CU_F32, 128), "simt-f32");
    cu->attention_force_simt(true);
    assert_string_equal(cu->attention_path(HK_CU_BF16, 128), "simt-f32");
    cu->attention_force_simt(false);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_count), cmocka_unit_test(test_argument_checks),
        cmocka_unit_test(test_norms),        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_add_mul),      cmocka_unit_test(test_rope),
        cmocka_unit_test(test_embed),        cmocka_unit_test(test_convert),
        cmocka_unit_test(test_gated),        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_attention),    cmocka_unit_test(test_materialized),
        cmocka_unit_test(test_sampling),     cmocka_unit_test(test_d2h_ring),
        cmocka_unit_test(test_kv_write),
    };
    if (hk_cuda_module(&cu) != HK_OK)
        print_message("CUDA module not loaded, every test skips: %s\n", hk_last_error());
    else
        print_message("CUDA module: %s\n", hk_cuda_module_path());
    return cmocka_run_group_tests(tests, NULL, NULL);
}
