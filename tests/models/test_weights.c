/* hk_model_weight: TransformerLens names and shapes of the canonical weights.
 *   1. against the checkpoint tensors, rearranged as TransformerLens does on load (GPT-2's
 *      fused Conv1D c_attn, Qwen2's GQA with q/k/v biases, a llama GGUF's permuted Q/K
 *      rows), bit for bit;
 *   2. against the forward's own activations: hook_q = ln1(x) W_Q + b_Q, hook_attn_out =
 *      sum_h z_h W_O[h] + b_O, the MLP, the unembedding (every fixture family, and a
 *      quantized GGUF whose Q/K rows llama.cpp permuted);
 *   3. errors, listing, and the model owning the gathered copies. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"

static hk_tensor weight(hk_model *m, const char *name) {
    hk_tensor t;
    hk_status st = hk_model_weight(m, name, &t);
    if (st != HK_OK) fail_msg("%s: %s", name, hk_last_error());
    assert_int_equal(t.dtype, HK_DTYPE_F32);
    int64_t stride = 1; /* contiguous */
    for (int d = t.ndim - 1; d >= 0; d--) {
        assert_int_equal(t.stride[d], stride);
        stride *= t.shape[d];
    }
    return t;
}

static void expect_shape(const hk_tensor *t, int ndim, int64_t a, int64_t b, int64_t c) {
    const int64_t want[3] = {a, b, c};
    assert_int_equal(t->ndim, ndim);
    for (int d = 0; d < ndim; d++) assert_int_equal(t->shape[d], want[d]);
}

static const float *at(hk_model *m, const char *name) {
    return (const float *)weight(m, name).data;
}

static const float *ck(hk_ckpt *c, const char *name) {
    const hk_st_tensor *t = hk_ckpt_find(c, name);
    if (!t) fail_msg("checkpoint has no %s", name);
    assert_int_equal(t->dtype, HK_DTYPE_F32);
    return t->data;
}

/* ---- 1. the checkpoint, rearranged ---- */

static void test_gpt2_checkpoint(void **state) {
    (void)state;
    hk_model *m = fixture_model("gpt2");
    hk_ckpt *c = fixture_ckpt("gpt2", "model.safetensors");
    const int64_t D = 64, H = 4, dh = 16, M = 128, V = 300, P = 64;
    hk_tensor t = weight(m, "embed.W_E");
    expect_shape(&t, 2, V, D, 0);
    assert_memory_equal(t.data, ck(c, "transformer.wte.weight"), (size_t)(V * D) * 4);
    t = weight(m, "pos_embed.W_pos");
    expect_shape(&t, 2, P, D, 0);
    assert_memory_equal(t.data, ck(c, "transformer.wpe.weight"), (size_t)(P * D) * 4);
    t = weight(m, "unembed.W_U"); /* tied: wte transposed */
    expect_shape(&t, 2, D, V, 0);
    const float *wte = ck(c, "transformer.wte.weight"), *wu = t.data;
    for (int64_t i = 0; i < D; i++)
        for (int64_t v = 0; v < V; v++) assert_true(wu[i * V + v] == wte[v * D + i]);
    const float *bu = at(m, "unembed.b_U");
    for (int64_t v = 0; v < V; v++) assert_true(bu[v] == 0.0f);
    assert_memory_equal(at(m, "ln_final.b"), ck(c, "transformer.ln_f.bias"), (size_t)D * 4);
    for (int l = 0; l < 2; l++) {
        char n[128], p[128];
#define HF(s) (snprintf(p, sizeof p, "transformer.h.%d.%s", l, s), ck(c, p))
#define TL(s) (snprintf(n, sizeof n, "blocks.%d.%s", l, s), weight(m, n))
        const float *qkv = HF("attn.c_attn.weight"), *qkv_b = HF("attn.c_attn.bias"); /* [D, 3D] */
        const char *names[3] = {"attn.W_Q", "attn.W_K", "attn.W_V"};
        const char *bnames[3] = {"attn.b_Q", "attn.b_K", "attn.b_V"};
        for (int part = 0; part < 3; part++) {
            t = TL(names[part]);
            expect_shape(&t, 3, H, D, dh);
            const float *w = t.data;
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < D; i++)
                    for (int64_t d = 0; d < dh; d++)
                        assert_true(w[(h * D + i) * dh + d] ==
                                    qkv[i * 3 * D + part * D + h * dh + d]);
            t = TL(bnames[part]);
            expect_shape(&t, 2, H, dh, 0);
            assert_memory_equal(t.data, qkv_b + part * D, (size_t)D * 4);
        }
        t = TL("attn.W_O"); /* c_proj [in = H*dh, out = D]: already [H, dh, D] */
        expect_shape(&t, 3, H, dh, D);
        assert_memory_equal(t.data, HF("attn.c_proj.weight"), (size_t)(D * D) * 4);
        assert_memory_equal(TL("attn.b_O").data, HF("attn.c_proj.bias"), (size_t)D * 4);
        t = TL("mlp.W_in");
        expect_shape(&t, 2, D, M, 0);
        assert_memory_equal(t.data, HF("mlp.c_fc.weight"), (size_t)(D * M) * 4);
        t = TL("mlp.W_out");
        expect_shape(&t, 2, M, D, 0);
        assert_memory_equal(t.data, HF("mlp.c_proj.weight"), (size_t)(D * M) * 4);
        assert_memory_equal(TL("ln1.w").data, HF("ln_1.weight"), (size_t)D * 4);
        assert_memory_equal(TL("ln2.b").data, HF("ln_2.bias"), (size_t)D * 4);
#undef HF
#undef TL
    }
    hk_ckpt_close(c);
    hk_model_free(m);
}

static void test_qwen2_checkpoint(void **state) {
    (void)state;
    hk_model *m = fixture_model("qwen2");
    hk_ckpt *c = fixture_ckpt("qwen2", "model.safetensors");
    const int64_t D = 64, H = 4, K = 2, dh = 16, M = 96, V = 300;
    const float *q = ck(c, "model.layers.1.self_attn.q_proj.weight");  /* [H*dh, D] */
    const float *k = ck(c, "model.layers.1.self_attn.k_proj.weight");  /* [K*dh, D] */
    const float *kb = ck(c, "model.layers.1.self_attn.k_proj.bias");   /* [K*dh] */
    const float *o = ck(c, "model.layers.1.self_attn.o_proj.weight");  /* [D, H*dh] */
    const float *up = ck(c, "model.layers.1.mlp.up_proj.weight");      /* [M, D] */
    const float *gate = ck(c, "model.layers.1.mlp.gate_proj.weight");  /* [M, D] */
    const float *down = ck(c, "model.layers.1.mlp.down_proj.weight");  /* [D, M] */
    const float *lm = ck(c, "lm_head.weight");                         /* [V, D] */
    hk_tensor t = weight(m, "blocks.1.attn.W_Q");
    expect_shape(&t, 3, H, D, dh);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < D; i++)
            for (int64_t d = 0; d < dh; d++)
                assert_true(((float *)t.data)[(h * D + i) * dh + d] == q[(h * dh + d) * D + i]);
    hk_tensor kk = weight(m, "blocks.1.attn._W_K"), ke = weight(m, "blocks.1.attn.W_K");
    expect_shape(&kk, 3, K, D, dh);
    expect_shape(&ke, 3, H, D, dh);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < D; i++)
            for (int64_t d = 0; d < dh; d++) {
                float want = k[((h / (H / K)) * dh + d) * D + i]; /* repeat_interleave */
                assert_true(((float *)ke.data)[(h * D + i) * dh + d] == want);
                if (h < K)
                    assert_true(((float *)kk.data)[(h * D + i) * dh + d] == k[(h * dh + d) * D + i]);
            }
    hk_tensor b = weight(m, "blocks.1.attn.b_K"), b2 = weight(m, "blocks.1.attn._b_K");
    expect_shape(&b, 2, H, dh, 0);
    expect_shape(&b2, 2, K, dh, 0);
    for (int64_t h = 0; h < H; h++)
        for (int64_t d = 0; d < dh; d++)
            assert_true(((float *)b.data)[h * dh + d] == kb[(h / 2) * dh + d]);
    assert_memory_equal(b2.data, kb, (size_t)(K * dh) * 4);
    const float *bo = at(m, "blocks.1.attn.b_O"); /* Qwen2's o_proj has no bias: zeros */
    for (int64_t i = 0; i < D; i++) assert_true(bo[i] == 0.0f);
    t = weight(m, "blocks.1.attn.W_O");
    expect_shape(&t, 3, H, dh, D);
    for (int64_t h = 0; h < H; h++)
        for (int64_t d = 0; d < dh; d++)
            for (int64_t j = 0; j < D; j++)
                assert_true(((float *)t.data)[(h * dh + d) * D + j] == o[j * H * dh + h * dh + d]);
    hk_tensor win = weight(m, "blocks.1.mlp.W_in"), wg = weight(m, "blocks.1.mlp.W_gate"),
              wout = weight(m, "blocks.1.mlp.W_out"), wu = weight(m, "unembed.W_U");
    expect_shape(&win, 2, D, M, 0);
    expect_shape(&wout, 2, M, D, 0);
    expect_shape(&wu, 2, D, V, 0);
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < M; j++) {
            assert_true(((float *)win.data)[i * M + j] == up[j * D + i]);
            assert_true(((float *)wg.data)[i * M + j] == gate[j * D + i]);
            assert_true(((float *)wout.data)[j * D + i] == down[i * M + j]);
        }
    for (int64_t i = 0; i < D; i++)
        for (int64_t v = 0; v < V; v++) assert_true(((float *)wu.data)[i * V + v] == lm[v * D + i]);
    assert_memory_equal(at(m, "blocks.0.ln2.w"),
                        ck(c, "model.layers.0.post_attention_layernorm.weight"), (size_t)D * 4);
    hk_ckpt_close(c);
    hk_model_free(m);
}

/* A llama GGUF: llama.cpp's converter interleaves the rotary halves of attn_q/attn_k rows
 * within each head (HF row j < d_head/2 of a head is GGUF row 2j, row j + d_head/2 is 2j+1);
 * W_Q and _W_K are in TransformerLens's (HF's) order, W_V and W_O as stored. */
static void test_gguf_checkpoint(void **state) {
    (void)state;
    hk_model *m = fixture_model("gguf/llama_f32.gguf");
    hk_ckpt *c = fixture_ckpt("gguf", "llama_f32.gguf");
    hk_tensor q = weight(m, "blocks.1.attn.W_Q"), k = weight(m, "blocks.1.attn._W_K");
    const int64_t H = q.shape[0], D = q.shape[1], dh = q.shape[2], K = k.shape[0];
    assert_int_equal(H, 4);
    assert_int_equal(K, 2);
    const float *rq = ck(c, "blk.1.attn_q.weight"), *rk = ck(c, "blk.1.attn_k.weight");
    const float *rv = ck(c, "blk.1.attn_v.weight"); /* [K*dh, D] */
    hk_tensor v = weight(m, "blocks.1.attn._W_V");
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < D; i++)
            for (int64_t j = 0; j < dh; j++) {
                int64_t row = h * dh + (j < dh / 2 ? 2 * j : 2 * (j - dh / 2) + 1);
                assert_true(((float *)q.data)[(h * D + i) * dh + j] == rq[row * D + i]);
                if (h < K) {
                    assert_true(((float *)k.data)[(h * D + i) * dh + j] == rk[row * D + i]);
                    assert_true(((float *)v.data)[(h * D + i) * dh + j] ==
                                rv[(h * dh + j) * D + i]);
                }
            }
    hk_ckpt_close(c);
    hk_model_free(m);
}

/* ---- 2. the forward's own activations ---- */

#define T 7
static const int32_t toks[T] = {3, 41, 7, 88, 12, 5, 60};

/* y [rows, n_out] = x [rows, n_in] @ W [n_in, n_out] (+ b) */
static void matmul(const float *x, int64_t rows, int64_t n_in, const float *w, const float *b,
                   int64_t n_out, float *y) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n_out; j++) {
            double s = b ? b[j] : 0.0;
            for (int64_t i = 0; i < n_in; i++) s += (double)x[r * n_in + i] * w[i * n_out + j];
            y[r * n_out + j] = (float)s;
        }
}

static void expect_close(const char *what, const float *got, const float *want, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (1.0 + fabs((double)want[i]));
        if (!(e <= worst)) worst = e;
    }
    if (!(worst <= 1e-4)) fail_msg("%s: off by %g", what, worst);
}

static const float *act(const hk_cache *c, const char *name) {
    const hk_tensor *t = hk_cache_get(c, name);
    if (!t) fail_msg("not cached: %s", name);
    return t->data;
}

/* x [rows, D] := x * ln.w + ln.b (the normalized point is before the weight, as in TL) */
static void apply_norm(hk_model *m, const char *prefix, const float *x, int64_t rows,
                       float *y) {
    const int64_t D = hk_model_d_model(m);
    char n[96];
    snprintf(n, sizeof n, "%s.w", prefix);
    const float *w = at(m, n);
    snprintf(n, sizeof n, "%s.b", prefix);
    hk_tensor bt;
    const float *b = hk_model_weight(m, n, &bt) == HK_OK ? bt.data : NULL;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < D; i++) y[r * D + i] = x[r * D + i] * w[i] + (b ? b[i] : 0.0f);
}

static void check_semantics(const char *fixture) {
    /* the weights as the forward computes with them: f32 (blocks differ by the activations'
     * 8-bit rounding; tests/models/test_qweights.c covers them) */
    hk_model *m = fixture_model_weights(fixture, HK_WEIGHTS_F32);
    const char *pats[] = {"hook_embed",          "blocks.1.ln1.hook_normalized",
                          "blocks.1.attn.hook_q", "blocks.1.attn.hook_k",
                          "blocks.1.attn.hook_v", "blocks.1.attn.hook_z",
                          "blocks.1.hook_attn_out", "blocks.1.ln2.hook_normalized",
                          "blocks.1.mlp.hook_pre", "blocks.1.mlp.hook_post",
                          "blocks.1.hook_mlp_out", "unembed.hook_in", "unembed.hook_out"};
    const int64_t D = hk_model_d_model(m), V = hk_model_vocab_size(m);
    hk_tensor wq = weight(m, "blocks.1.attn.W_Q"), wk = weight(m, "blocks.1.attn.W_K");
    const int64_t H = wq.shape[0], dh = wq.shape[2];
    hk_tensor win = weight(m, "blocks.1.mlp.W_in");
    const int64_t M = win.shape[1];
    hk_tensor gate;
    const bool gated = hk_model_weight(m, "blocks.1.mlp.W_gate", &gate) == HK_OK;
    hk_cache *c;
    float *logits = malloc((size_t)(T * V) * sizeof *logits);
    EXPECT_OK(hk_run_with_cache(m, toks, NULL, 1, T, pats, sizeof pats / sizeof *pats, "all",
                                logits, &c));
    float *x = malloc((size_t)(T * (M > V ? M : V) * 4) * sizeof *x);
    float *y = malloc((size_t)(T * (M > V ? M : V) * 4) * sizeof *y);
    /* embed: W_E[tokens] */
    const float *we = at(m, "embed.W_E");
    for (int64_t t = 0; t < T; t++) memcpy(x + t * D, we + toks[t] * D, (size_t)D * 4);
    expect_close("hook_embed", act(c, "hook_embed"), x, T * D);
    /* q, k, v per head: ln1(x) @ W[h] + b[h] */
    apply_norm(m, "blocks.1.ln1", act(c, "blocks.1.ln1.hook_normalized"), T, x);
    const char *w3[3] = {"blocks.1.attn.W_Q", "blocks.1.attn.W_K", "blocks.1.attn.W_V"};
    const char *b3[3] = {"blocks.1.attn.b_Q", "blocks.1.attn.b_K", "blocks.1.attn.b_V"};
    const char *h3[3] = {"blocks.1.attn.hook_q", "blocks.1.attn.hook_k", "blocks.1.attn.hook_v"};
    const int64_t Kv = hk_cache_get(c, "blocks.1.attn.hook_k")->shape[2]; /* n_kv_heads */
    for (int part = 0; part < 3; part++) {
        const float *w = at(m, w3[part]), *b = at(m, b3[part]);
        const float *got = act(c, h3[part]); /* [1, T, heads, dh] */
        const int64_t nh = part == 0 ? H : Kv;
        for (int64_t h = 0; h < nh; h++) {
            /* W_K/W_V repeat each kv head H/Kv times: kv head g is TL head g * H/Kv */
            const int64_t src = part == 0 ? h : h * (H / Kv);
            matmul(x, T, D, w + src * D * dh, b + src * dh, dh, y);
            for (int64_t t = 0; t < T; t++) {
                char what[96];
                snprintf(what, sizeof what, "%s %s head %lld", fixture, h3[part], (long long)h);
                expect_close(what, got + (t * nh + h) * dh, y + t * dh, dh);
            }
        }
    }
    assert_int_equal(wk.shape[0], H);
    /* attn_out = sum_h z[h] @ W_O[h] + b_O: z [T, H*dh] @ W_O as [H*dh, D] */
    matmul(act(c, "blocks.1.attn.hook_z"), T, H * dh, at(m, "blocks.1.attn.W_O"),
           at(m, "blocks.1.attn.b_O"), D, y);
    expect_close("hook_attn_out", act(c, "blocks.1.hook_attn_out"), y, T * D);
    /* MLP */
    apply_norm(m, "blocks.1.ln2", act(c, "blocks.1.ln2.hook_normalized"), T, x);
    if (gated) matmul(x, T, D, gate.data, NULL, M, y);
    else matmul(x, T, D, win.data, at(m, "blocks.1.mlp.b_in"), M, y);
    expect_close("mlp.hook_pre", act(c, "blocks.1.mlp.hook_pre"), y, T * M);
    matmul(act(c, "blocks.1.mlp.hook_post"), T, M, at(m, "blocks.1.mlp.W_out"),
           at(m, "blocks.1.mlp.b_out"), D, y);
    expect_close("hook_mlp_out", act(c, "blocks.1.hook_mlp_out"), y, T * D);
    /* logits = unembed.hook_in @ W_U + b_U */
    matmul(act(c, "unembed.hook_in"), T, D, at(m, "unembed.W_U"), at(m, "unembed.b_U"), V, y);
    expect_close("logits", logits, y, T * V);
    free(x);
    free(y);
    free(logits);
    hk_cache_free(c);
    hk_model_free(m);
}

static void test_semantics(void **state) {
    (void)state;
    const char *families[] = {"gpt2", "llama", "mistral", "qwen2", "phi3", "neox",
                              "gguf/llama_q8_0.gguf", "gguf/qwen2_f32.gguf"};
    for (size_t i = 0; i < sizeof families / sizeof *families; i++) check_semantics(families[i]);
}

/* ---- 3. errors, listing, ownership ---- */

static void test_errors_and_listing(void **state) {
    (void)state;
    hk_model *m = fixture_model("llama");
    hk_tensor t;
    expect_error(hk_model_weight(m, "blocks.0.attn.W_X", &t), HK_ERR_NOT_FOUND, "W_X",
                 "attn.W_Q", "embed.W_E");
    expect_error(hk_model_weight(m, "blocks.2.attn.W_Q", &t), HK_ERR_NOT_FOUND, "layer 2",
                 "2 blocks", NULL);
    expect_error(hk_model_weight(m, "blocks.x.attn.W_Q", &t), HK_ERR_NOT_FOUND, "blocks.x",
                 NULL, NULL);
    expect_error(hk_model_weight(m, "pos_embed.W_pos", &t), HK_ERR_NOT_FOUND, "W_pos",
                 "learned", NULL);
    expect_error(hk_model_weight(m, "blocks.0.ln1.b", &t), HK_ERR_NOT_FOUND, "RMSNorm", NULL,
                 NULL);
    expect_error(hk_model_weight(m, NULL, &t), HK_ERR_INVALID_ARG, NULL, NULL, NULL);
    /* every listed name loads; the count is what this model has */
    const size_t n = hk_model_weight_count(m);
    assert_int_equal(n, 4 /* W_E, ln_final.w, W_U, b_U */ + 2 * 19 /* no ln1.b, ln2.b */);
    char name[96];
    for (size_t i = 0; i < n; i++) {
        EXPECT_OK(hk_model_weight_name(m, i, name, sizeof name));
        EXPECT_OK(hk_model_weight(m, name, &t));
    }
    expect_error(hk_model_weight_name(m, n, name, sizeof name), HK_ERR_NOT_FOUND, "past", NULL,
                 NULL);
    /* a gathered copy is made once and kept by the model */
    hk_tensor a = weight(m, "blocks.1.attn.W_O"), b = weight(m, "blocks.1.attn.W_O");
    assert_ptr_equal(a.data, b.data);
    hk_model_free(m);
    /* MHA: no _W_K; a plain MLP: no W_gate */
    m = fixture_model("gpt2");
    expect_error(hk_model_weight(m, "blocks.0.attn._W_K", &t), HK_ERR_NOT_FOUND,
                 "grouped-query", NULL, NULL);
    expect_error(hk_model_weight(m, "blocks.0.mlp.W_gate", &t), HK_ERR_NOT_FOUND, "gated",
                 NULL, NULL);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2_checkpoint),
        cmocka_unit_test(test_qwen2_checkpoint),
        cmocka_unit_test(test_gguf_checkpoint),
        cmocka_unit_test(test_semantics),
        cmocka_unit_test(test_errors_and_listing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
