/* hk_estimate_memory with HK_DEVICE_CUDA (hookformer estimate --device cuda): each part of the
 * device estimate against its formula on the fixtures (numbers from their config.json), the
 * parts it shares with the CPU estimate against the CPU estimate, argument errors, and the
 * CLI's --device / --weights-dtype. argv[1] is the hookformer executable. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cli_run.h"
#include "core/forward.h"
#include "core/model.h"
#include "fixtures.h"
#include "hookformer.h"

#define MIB ((size_t)1 << 20)

static const char *g_exe;

static hk_estimate estimate(hk_model *m, hk_estimate_opts o) {
    hk_estimate e;
    hk_status st = hk_estimate_memory(m, &o, &e);
    if (st != HK_OK) fail_msg("hk_estimate_memory: %s", hk_last_error());
    return e;
}

/* tests/fixtures/mistral: 2 layers, d 64, 4/2 heads of 12, MLP 96, vocab 300, untied, no
 * biases, RMSNorm, window 5. Linears: per layer q, k, v, o, gate, up, down, and lm_head; f32
 * always: the embedding table, ln1 and ln2 per layer, the final norm. */
#define MI_EMB (300 * 64)
#define MI_LIN (300 * 64 + 2 * (64 * 48 + 2 * 64 * 24 + 48 * 64 + 3 * 64 * 96))
#define MI_VEC (2 * 2 * 64 + 64)
/* tests/fixtures/gpt2: 2 layers, d 64, MLP 128, vocab 300, 64 learned positions, tied head,
 * biases, LayerNorm. Linears: c_attn, c_proj, c_fc, mlp c_proj; f32: wte, wpe, the biases,
 * ln_1, ln_2 (weight and bias) and ln_f. The tied head is wte itself in f32, a copy in the
 * weights dtype otherwise. */
#define G2_EMB (300 * 64 + 64 * 64)
#define G2_LIN (2 * (64 * 192 + 64 * 64 + 64 * 128 + 128 * 64))
#define G2_HEAD (300 * 64)
#define G2_VEC (2 * (192 + 64 + 128 + 64 + 4 * 64) + 2 * 64)

static void test_weights(void **state) {
    (void)state;
    hk_model *m = fixture_model("mistral");
    hk_estimate_opts o = {.batch = 1, .ctx = 32, .device = HK_DEVICE_CUDA};
    hk_estimate e = estimate(m, o);
    assert_int_equal(e.weights, 4 * (MI_EMB + MI_LIN + MI_VEC));
    assert_int_equal(e.weights, 4 * (size_t)hk_model_n_params(m)); /* every tensor is used */
    o.weights_dtype = HK_DTYPE_BF16;
    assert_int_equal(estimate(m, o).weights, 2 * MI_LIN + 4 * (MI_EMB + MI_VEC));
    o.weights_dtype = HK_DTYPE_F16;
    assert_int_equal(estimate(m, o).weights, 2 * MI_LIN + 4 * (MI_EMB + MI_VEC));
    hk_model_free(m);

    m = fixture_model("gpt2");
    o.weights_dtype = HK_DTYPE_F32; /* the tied head is the f32 embedding table */
    assert_int_equal(estimate(m, o).weights, 4 * (G2_EMB + G2_LIN + G2_VEC));
    o.weights_dtype = HK_DTYPE_BF16; /* the tied head is a bf16 copy beside the f32 table */
    assert_int_equal(estimate(m, o).weights, 2 * (G2_LIN + G2_HEAD) + 4 * (G2_EMB + G2_VEC));
    hk_model_free(m);
}

/* Every family: the forward reads every checkpoint tensor once, so f32 device weights are 4
 * bytes per checkpoint parameter (MoE experts, q/k norms, post-norms, token types, biases). */
static void test_weights_every_family(void **state) {
    (void)state;
    const char *fams[] = {"bert", "gemma2", "gemma3", "gpt2", "llama", "mistral", "mixtral",
                          "neox", "olmo2", "olmoe", "phi3", "qwen2", "qwen2_moe", "qwen3",
                          "qwen3_moe"};
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        hk_model *m = fixture_model(fams[i]);
        hk_estimate_opts o = {.batch = 1, .ctx = 16, .device = HK_DEVICE_CUDA};
        const size_t w = estimate(m, o).weights;
        if (w != 4 * (size_t)hk_model_n_params(m))
            fail_msg("%s: device f32 weights %zu bytes, checkpoint %lld parameters", fams[i], w,
                     (long long)hk_model_n_params(m));
        o.weights_dtype = HK_DTYPE_BF16;
        const size_t h = estimate(m, o).weights;
        assert_true(h < w && h > w / 2); /* linears halve, embeddings and vectors stay f32 */
        hk_model_free(m);
    }
}

static void test_kv_cache(void **state) {
    (void)state;
    /* the device's KV cache is the CPU's (f32 in every weights dtype; W slots on windowed
     * layers), and a windowed layer's gathered keys are in the attention part */
    hk_model *m = fixture_model("mistral"); /* W = 5, dkv = 2 x 12 */
    hk_estimate_opts o = {.batch = 2, .ctx = 100, .session = true, .chunk = 16,
                          .device = HK_DEVICE_CUDA, .weights_dtype = HK_DTYPE_BF16};
    hk_estimate_opts cpu = o;
    cpu.device = HK_DEVICE_CPU;
    cpu.weights_dtype = HK_DTYPE_F32;
    hk_estimate e = estimate(m, o);
    /* layers x (k, v) x batch x W slots x dkv x f32 */
    assert_int_equal(e.kv_cache, 2 * 2 * 2 * 5 * 24 * 4);
    assert_int_equal(e.kv_cache, estimate(m, cpu).kv_cache);
    assert_true(e.kv_rolling);
    assert_int_equal(e.kv_window, 5);
    /* no split at 16 queries over 20 keys: the gather, [W + chunk, dkv] x (k, v) in f32 */
    assert_int_equal(e.attention, 2 * (5 + 16) * 24 * 4);
    o.session = false; /* one forward: no cache */
    o.chunk = 0;
    assert_int_equal(estimate(m, o).kv_cache, 0);
    hk_model_free(m);

    m = fixture_model("llama"); /* no window: ctx slots */
    o = (hk_estimate_opts){.batch = 1, .ctx = 64, .session = true, .chunk = 8,
                           .device = HK_DEVICE_CUDA, .weights_dtype = HK_DTYPE_F16};
    e = estimate(m, o);
    assert_int_equal(e.kv_cache, 2 * 2 * 64 * 16 * 4); /* layers x (k, v) x ctx x dkv x f32 */
    assert_false(e.kv_rolling);
    hk_model_free(m);
}

static void test_activations_and_logits(void **state) {
    (void)state;
    hk_model *m = fixture_model("mistral");
    hk_estimate_opts o = {.batch = 2, .ctx = 100, .session = true, .chunk = 16,
                          .device = HK_DEVICE_CUDA};
    const size_t rows = 2 * 16;
    const size_t block = hk_forward_state_bytes(&m->cfg, 2, 16) + rows * 4 + 2 * 8;
    hk_estimate e = estimate(m, o);
    assert_int_equal(e.activations, block);
    assert_int_equal(e.logits, 2 * 300 * 4);
    o.weights_dtype = HK_DTYPE_BF16; /* + the bf16 copy of the widest input (d_mlp 96) */
    assert_int_equal(estimate(m, o).activations, block + rows * 96 * 2);
    o.all_logits = true; /* the device holds one feed's logits */
    assert_int_equal(estimate(m, o).logits, rows * 300 * 4);

    /* the shared parts: the CPU's logits and cached hooks, the CPU's activations above the
     * GEMM packing buffers (which are OpenBLAS's) */
    const char *hooks[] = {"blocks.*.hook_resid_post"};
    o = (hk_estimate_opts){.batch = 1, .ctx = 40, .hooks = hooks, .n_hooks = 1,
                           .device = HK_DEVICE_CUDA};
    hk_estimate_opts cpu = o;
    cpu.device = HK_DEVICE_CPU;
    hk_estimate d = estimate(m, o), c = estimate(m, cpu);
    assert_int_equal(d.logits, c.logits);
    assert_int_equal(d.cached_hooks, c.cached_hooks);
    assert_int_equal(d.cached_hooks, 2 * 40 * 64 * 4);
    assert_int_equal(d.activations, hk_forward_state_bytes(&m->cfg, 1, 40) + 40 * 4 + 8);
    assert_true(c.activations > d.activations);
    hk_model_free(m);
}

static void test_attention_and_total(void **state) {
    (void)state;
    /* llama: 8/2 heads of 8. A feed of 64 over 2048 keys: blocks of 64 rows of one head,
     * 1 x 8 blocks < 132 SMs, 33 key tiles: min(ceil(264 / 8), 33 / 4) = 8 splits of
     * 64 rows x (d_head + 2) floats per block. Decoding (1 query, 2 blocks) splits 8 ways
     * too, over fewer blocks. */
    hk_model *m = fixture_model("llama");
    hk_estimate_opts o = {.batch = 1, .ctx = 2048, .session = true, .chunk = 64,
                          .device = HK_DEVICE_CUDA};
    hk_estimate e = estimate(m, o);
    assert_int_equal(e.attention, 8 * 8 * 64 * (8 + 2) * 4);
    o.chunk = 2048; /* 32 x 8 blocks: no split */
    assert_int_equal(estimate(m, o).attention, 8 * 2 * 64 * (8 + 2) * 4); /* decode's */
    o.session = false;
    o.chunk = 0;
    assert_int_equal(estimate(m, o).attention, 0);

    assert_int_equal(e.device, HK_DEVICE_CUDA);
    assert_int_equal(e.context, 512 * MIB);
    assert_int_equal(e.blas_workspace, 32 * MIB);
    assert_int_equal(e.runtime + e.mapping + e.load_other, 0);
    assert_int_equal(e.total, e.context + e.blas_workspace + e.weights + e.kv_cache +
                                  e.activations + e.attention + e.logits);
    /* cached hooks are host memory */
    const char *hooks[] = {"blocks.*.hook_resid_post"};
    o.hooks = hooks;
    o.n_hooks = 1;
    hk_estimate h = estimate(m, o);
    assert_true(h.cached_hooks > 0);
    assert_int_equal(h.total, h.context + h.blas_workspace + h.weights + h.kv_cache +
                                  h.activations + h.attention + h.logits);
    o.device = HK_DEVICE_CPU; /* the CPU estimate says which device it is for */
    hk_estimate c = estimate(m, o);
    assert_int_equal(c.device, HK_DEVICE_CPU);
    assert_int_equal(c.context + c.blas_workspace, 0);
    hk_model_free(m);
}

static void test_errors(void **state) {
    (void)state;
    hk_model *m = fixture_model("llama");
    hk_estimate e;
    hk_estimate_opts o = {.batch = 1, .ctx = 8, .device = (hk_device)5};
    assert_int_equal(hk_estimate_memory(m, &o, &e), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "device 5"));
    o.device = HK_DEVICE_CPU;
    o.weights_dtype = HK_DTYPE_BF16;
    assert_int_equal(hk_estimate_memory(m, &o, &e), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "weights_dtype bf16 on the CPU"));
    o.device = HK_DEVICE_CUDA;
    o.weights_dtype = HK_DTYPE_I32;
    assert_int_equal(hk_estimate_memory(m, &o, &e), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "weights_dtype 3"));
    hk_model_free(m);
}

static void test_cli(void **state) {
    (void)state;
    char dir[4096];
    fixture_path("mistral", dir, sizeof dir);
    cli_result r = cli_run(g_exe, "estimate", "--model", dir, "--ctx", "100", "--chunk", "16",
                           "--device", "cuda", "--weights-dtype", "bf16", "--json", NULL);
    cli_expect_status(&r, 0, "estimate --device cuda --json");
    cli_expect_contains(r.out, "\"device\": \"cuda\"", "json device");
    cli_expect_contains(r.out, "\"weights_dtype\": \"bf16\"", "json dtype");
    char want[64];
    snprintf(want, sizeof want, "\"weights\": %d,", 2 * MI_LIN + 4 * (MI_EMB + MI_VEC));
    cli_expect_contains(r.out, want, "json bf16 weights");
    cli_expect_contains(r.out, "\"context\": 536870912", "json context");
    cli_result_free(&r);

    r = cli_run(g_exe, "estimate", "--model", dir, "--ctx", "100", "--device", "cuda", NULL);
    cli_expect_status(&r, 0, "estimate --device cuda");
    cli_expect_contains(r.out, "peak device memory of the run", "table total");
    cli_expect_contains(r.out, "host memory (not in the total)", "table cached hooks");
    cli_result_free(&r);

    r = cli_run(g_exe, "estimate", "--model", dir, "--ctx", "100", "--device", "cuda",
                "--mem-limit", "100m", NULL);
    cli_expect_status(&r, 1, "device estimate over --mem-limit");
    cli_expect_contains(r.err, "device total", "mem-limit message");
    cli_result_free(&r);

    r = cli_run(g_exe, "estimate", "--model", dir, "--ctx", "100", "--device", "gpu", NULL);
    cli_expect_status(&r, 2, "--device gpu");
    cli_expect_contains(r.err, "--device 'gpu': expected cpu, cuda or cuda:N", "bad device");
    cli_result_free(&r);

    r = cli_run(g_exe, "estimate", "--model", dir, "--ctx", "100", "--device", "cuda",
                "--weights-dtype", "fp8", NULL);
    cli_expect_status(&r, 2, "--weights-dtype fp8");
    cli_expect_contains(r.err, "--weights-dtype 'fp8': expected f32, f16 or bf16", "bad dtype");
    cli_result_free(&r);

    r = cli_run(g_exe, "estimate", "--model", dir, "--ctx", "100", "--weights-dtype", "bf16",
                NULL);
    cli_expect_status(&r, 2, "--weights-dtype bf16 on the CPU");
    cli_expect_contains(r.err, "--weights-dtype bf16 needs --device cuda", "cpu bf16");
    cli_result_free(&r);
}

int main(int argc, char **argv) {
    if (!(g_exe = cli_exe_from_argv(argc, argv))) return 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_weights_every_family),
        cmocka_unit_test(test_kv_cache),
        cmocka_unit_test(test_activations_and_logits),
        cmocka_unit_test(test_attention_and_total),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
