/* The whole forward through the CUDA backend (core/backend_cuda.c) with HK_CUDA_MODULE set to
 * the CPU stand-in of the module (libhookformer_cuda_fake.so): loads with HK_DEVICE_CUDA give
 * the CPU's logits (the same kernels run, so f32 weights match exactly) on the fixture
 * families — dense, GQA, Gemma 2's soft-caps and windows, routed experts; greedy generation
 * through device KV caches (rolling buffers on the windowed layers) picks the CPU's tokens;
 * hooks see the CPU's activations (a host callback gets a host copy, an HK_HOOK_ON_DEVICE one
 * the device view); f16/bf16 weights stay close to f32 (a bf16 checkpoint: its own values). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/checkpoint.h"
#include "fixtures.h"
#include "hookformer.h"

typedef struct {
    int64_t batch, seq;
    int32_t *tokens;
    int64_t *lengths;
} inputs;

static void inputs_of(const char *name, inputs *in) {
    hk_ckpt *ck = fixture_ckpt(name, "reference.safetensors");
    const hk_st_tensor *ids = hk_ckpt_find(ck, "input_ids"), *lens = hk_ckpt_find(ck, "lengths");
    assert_non_null(ids);
    assert_non_null(lens);
    in->batch = ids->shape[0];
    in->seq = ids->shape[1];
    in->tokens = ids_from_i64(ids->data, in->batch * in->seq);
    in->lengths = malloc((size_t)in->batch * sizeof *in->lengths);
    memcpy(in->lengths, lens->data, (size_t)in->batch * 8);
    hk_ckpt_close(ck);
}

static hk_model *load_on(const char *name, hk_device dev, hk_dtype wt) {
    char dir[1024];
    fixture_path(name, dir, sizeof dir);
    hk_load_opts o = hk_load_default_opts();
    o.device = dev;
    o.weights_dtype = wt;
    hk_model *m = NULL;
    if (hk_model_load_opts(dir, &o, &m) != HK_OK) fail_msg("load %s: %s", name, hk_last_error());
    return m;
}

static float *logits_of(hk_model *m, const inputs *in, int64_t *n) {
    *n = in->batch * in->seq * hk_model_output_dim(m);
    float *l = malloc((size_t)*n * sizeof *l);
    assert_non_null(l);
    if (hk_model_run(m, NULL, in->tokens, in->lengths, in->batch, in->seq, l) != HK_OK)
        fail_msg("run: %s", hk_last_error());
    return l;
}

/* Σ(a-b)² / Σb² over the valid rows only (padded rows are unspecified) */
static double nmse_valid(const float *a, const float *b, const inputs *in, int64_t V) {
    double num = 0, den = 0;
    for (int64_t s = 0; s < in->batch; s++)
        for (int64_t p = 0; p < in->lengths[s]; p++)
            for (int64_t j = 0; j < V; j++) {
                const int64_t i = (s * in->seq + p) * V + j;
                num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
                den += (double)b[i] * b[i];
            }
    return num / den;
}

static void test_logits_match_cpu(void **state) {
    (void)state;
    static const char *const fams[] = {"gpt2", "llama", "gemma2", "mixtral", "qwen2_moe", "mistral"};
    for (size_t f = 0; f < sizeof fams / sizeof *fams; f++) {
        inputs in;
        inputs_of(fams[f], &in);
        hk_model *c = load_on(fams[f], HK_DEVICE_CPU, HK_DTYPE_F32);
        hk_model *g = load_on(fams[f], HK_DEVICE_CUDA, HK_DTYPE_F32);
        assert_int_equal(hk_model_device(g), HK_DEVICE_CUDA);
        int64_t n;
        float *lc = logits_of(c, &in, &n), *lg = logits_of(g, &in, &n);
        const int64_t V = hk_model_output_dim(c);
        const double e = nmse_valid(lg, lc, &in, V);
        print_message("%s: NMSE %g (cuda backend over the CPU table vs cpu)\n", fams[f], e);
        assert_true(e == 0.0);
        free(lc);
        free(lg);
        hk_model_free(c);
        hk_model_free(g);
        free(in.tokens);
        free(in.lengths);
    }
}

static void test_weights_dtypes(void **state) {
    (void)state;
    inputs in;
    inputs_of("llama_bf16", &in);
    hk_model *c = load_on("llama_bf16", HK_DEVICE_CPU, HK_DTYPE_F32);
    int64_t n;
    float *lc = logits_of(c, &in, &n);
    const int64_t V = hk_model_output_dim(c);
    static const hk_dtype wts[] = {HK_DTYPE_BF16, HK_DTYPE_F16};
    for (int i = 0; i < 2; i++) {
        hk_model *g = load_on("llama_bf16", HK_DEVICE_CUDA, wts[i]);
        float *lg = logits_of(g, &in, &n);
        const double e = nmse_valid(lg, lc, &in, V);
        print_message("llama_bf16 with %s weights: NMSE %g vs f32 on the CPU\n",
                      hk_dtype_name(wts[i]), e);
        assert_true(e > 0.0 && e < 1e-3); /* x rounded to the weights' dtype per product */
        free(lg);
        hk_model_free(g);
    }
    free(lc);
    hk_model_free(c);
    free(in.tokens);
    free(in.lengths);
}

static void test_generate_matches_cpu(void **state) {
    (void)state;
    static const char *const fams[] = {"gpt2", "mistral", "gemma2"};
    const int32_t prompt[] = {3, 17, 5, 9, 2, 11, 4};
    for (size_t f = 0; f < sizeof fams / sizeof *fams; f++) {
        hk_model *c = load_on(fams[f], HK_DEVICE_CPU, HK_DTYPE_F32);
        hk_model *g = load_on(fams[f], HK_DEVICE_CUDA, HK_DTYPE_F32);
        int32_t oc[12], og[12];
        int64_t nc = 0, ng = 0;
        /* chunks of 3: the prompt crosses the window of 5 in the rolling buffers */
        assert_int_equal(hk_generate(c, NULL, prompt, 7, 12, 3, NULL, NULL, 0, oc, &nc), HK_OK);
        assert_int_equal(hk_generate(g, NULL, prompt, 7, 12, 3, NULL, NULL, 0, og, &ng), HK_OK);
        assert_int_equal(nc, ng);
        assert_memory_equal(oc, og, (size_t)nc * sizeof *oc);
        hk_model_free(c);
        hk_model_free(g);
    }
}

typedef struct {
    float *copy;
    size_t n;
    hk_device seen;
} grab;

static hk_hook_result grab_host(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    grab *g = user;
    size_t n = 1;
    for (int d = 0; d < act->ndim; d++) n *= (size_t)act->shape[d];
    g->seen = act->device;
    g->n = n;
    g->copy = malloc(n * sizeof(float));
    if (hk_tensor_to_host(act, g->copy) != HK_OK) return HK_HOOK_ERROR;
    return HK_HOOK_CONTINUE;
}

static void test_hooks_see_cpu_values(void **state) {
    (void)state;
    inputs in;
    inputs_of("gpt2", &in);
    hk_model *c = load_on("gpt2", HK_DEVICE_CPU, HK_DTYPE_F32);
    hk_model *g = load_on("gpt2", HK_DEVICE_CUDA, HK_DTYPE_F32);
    grab gc = {0}, gh = {0}, gd = {0};
    hk_hooks *hc = NULL, *hg = NULL;
    assert_int_equal(hk_hooks_new(c, &hc), HK_OK);
    assert_int_equal(hk_hooks_new(g, &hg), HK_OK);
    assert_int_equal(hk_hooks_add(hc, "blocks.1.hook_resid_mid", grab_host, &gc, NULL), HK_OK);
    assert_int_equal(hk_hooks_add_flags(hg, "blocks.1.hook_resid_mid", grab_host, &gh,
                                        HK_HOOK_READ_ONLY, NULL),
                     HK_OK);
    assert_int_equal(hk_hooks_add_flags(hg, "blocks.1.hook_resid_mid", grab_host, &gd,
                                        HK_HOOK_ON_DEVICE, NULL),
                     HK_OK);
    assert_int_equal(hk_model_run(c, hc, in.tokens, in.lengths, in.batch, in.seq, NULL), HK_OK);
    assert_int_equal(hk_model_run(g, hg, in.tokens, in.lengths, in.batch, in.seq, NULL), HK_OK);
    assert_int_equal(gh.seen, HK_DEVICE_CPU);  /* a host callback: a host copy */
    assert_int_equal(gd.seen, HK_DEVICE_CUDA); /* a device-aware one: the device view */
    assert_int_equal(gc.n, gh.n);
    assert_memory_equal(gc.copy, gh.copy, gc.n * sizeof(float));
    assert_memory_equal(gc.copy, gd.copy, gc.n * sizeof(float));
    assert_non_null(hk_backend_stream(g));
    free(gc.copy);
    free(gh.copy);
    free(gd.copy);
    hk_hooks_free(hc);
    hk_hooks_free(hg);
    hk_model_free(c);
    hk_model_free(g);
    free(in.tokens);
    free(in.lengths);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_match_cpu),
        cmocka_unit_test(test_weights_dtypes),
        cmocka_unit_test(test_generate_matches_cpu),
        cmocka_unit_test(test_hooks_see_cpu_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
