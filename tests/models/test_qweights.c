/* GGUF weights kept in their blocks (HK_WEIGHTS_BLOCKS, the default) against the same file
 * dequantized at load (HK_WEIGHTS_F32), on the quantized fixtures:
 *   - decode-sized runs (≤ 8 rows) compute on the blocks: the logits differ from f32 (so the
 *     blocks are really used) by no more than the activations' 8-bit rounding allows;
 *   - larger batches (prefill) take the f32 copy: bit-identical to HK_WEIGHTS_F32;
 *   - hooks keep their meaning: caching every hook point leaves the logits bit-identical, a
 *     hook's in-place change flows on, and each hook sees f32 activations;
 *   - hk_model_weight gives the same f32 weights in both modes (dequantized);
 *   - an unknown mode is refused. */
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

static const char *const quantized[] = {"gguf/llama_q8_0.gguf", "gguf/llama_q4_0.gguf",
                                        "gguf/llama_q4_1.gguf", "gguf/gemma3_q8_0.gguf"};
#define N_QUANTIZED (sizeof quantized / sizeof quantized[0])

/* logits on blocks vs f32, relative to the largest |logit| */
#define TOL 0.06

static const int32_t toks[16] = {1, 17, 3, 42, 8, 11, 60, 5, 9, 23, 31, 2, 14, 50, 7, 19};

static float *logits_of(hk_model *m, hk_hooks *h, int64_t T) {
    const int64_t V = hk_model_vocab_size(m);
    float *y = calloc((size_t)(T * V), sizeof *y); /* [T, V] */
    assert_non_null(y);
    if (hk_model_run(m, h, toks, NULL, 1, T, y) != HK_OK) fail_msg("run: %s", hk_last_error());
    return y;
}

static double max_abs(const float *x, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Decode-sized runs: close to f32 within the 8-bit activation rounding, but not equal. */
static void test_decode_on_blocks(void **state) {
    (void)state;
    for (size_t f = 0; f < N_QUANTIZED; f++) {
        hk_model *mq = fixture_model_weights(quantized[f], HK_WEIGHTS_BLOCKS);
        hk_model *mf = fixture_model_weights(quantized[f], HK_WEIGHTS_F32);
        const int64_t V = hk_model_vocab_size(mq);
        for (int64_t T = 1; T <= 8; T += 7) {
            float *yq = logits_of(mq, NULL, T), *yf = logits_of(mf, NULL, T);
            const double d = max_diff(yq, yf, T * V), scale = max_abs(yf, T * V);
            print_message("%s T=%lld: max |logit diff| %.3g (max |logit| %.3g)\n", quantized[f],
                          (long long)T, d, scale);
            /* 8-bit activations: ~1/254 relative per product, a few random layers deep
             * (measured: 1.2-4.4% of the largest logit on these fixtures) */
            if (!(d <= TOL * scale + 1e-3))
                fail_msg("%s T=%lld: blocks differ from f32 by %g (max |logit| %g)",
                         quantized[f], (long long)T, d, scale);
            if (d == 0.0) fail_msg("%s T=%lld: blocks gave f32's logits bit for bit (unused?)",
                                   quantized[f], (long long)T);
            free(yq);
            free(yf);
        }
        hk_model_free(mq);
        hk_model_free(mf);
    }
}

/* Beyond 8 rows the product takes the f32 weights: the reference path, bit for bit. */
static void test_prefill_is_f32(void **state) {
    (void)state;
    for (size_t f = 0; f < N_QUANTIZED; f++) {
        hk_model *mq = fixture_model_weights(quantized[f], HK_WEIGHTS_BLOCKS);
        hk_model *mf = fixture_model_weights(quantized[f], HK_WEIGHTS_F32);
        const int64_t V = hk_model_vocab_size(mq);
        float *yq = logits_of(mq, NULL, 16), *yf = logits_of(mf, NULL, 16);
        assert_memory_equal(yq, yf, (size_t)(16 * V) * sizeof(float));
        free(yq);
        free(yf);
        hk_model_free(mq);
        hk_model_free(mf);
    }
}

static hk_hook_result count_f32(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    if (t->dtype != HK_DTYPE_F32) fail_msg("%s: dtype %d, expected f32", ctx->name, t->dtype);
    (*(int *)user)++;
    return HK_HOOK_CONTINUE;
}

static hk_hook_result zero_resid(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)ctx, (void)user;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    memset(t->data, 0, n * sizeof(float));
    return HK_HOOK_CONTINUE;
}

/* Hooks on the blocks path: observing changes nothing, modifying flows on. */
static void test_hooks_keep_meaning(void **state) {
    (void)state;
    for (size_t f = 0; f < N_QUANTIZED; f++) {
        hk_model *m = fixture_model_weights(quantized[f], HK_WEIGHTS_BLOCKS);
        const int64_t V = hk_model_vocab_size(m), T = 4;
        float *plain = logits_of(m, NULL, T);
        /* the residual stream, q/k/v, z, the MLP and the head cached: the same products,
         * the same logits bit for bit (a hooked norm is computed in steps, scale first, as
         * TransformerLens does: f32 rounding apart, in either mode) */
        const char *obs[] = {"hook_embed", "blocks.*.hook_resid_pre",
                             "blocks.*.attn.hook_q", "blocks.*.attn.hook_k",
                             "blocks.*.attn.hook_v", "blocks.*.attn.hook_z",
                             "blocks.*.hook_attn_out", "blocks.*.hook_resid_mid",
                             "blocks.*.mlp.hook_pre", "blocks.*.mlp.hook_post",
                             "blocks.*.hook_mlp_out", "blocks.*.hook_resid_post",
                             "unembed.*"};
        hk_cache *c = NULL;
        float *cached = calloc((size_t)(T * V), sizeof *cached);
        assert_non_null(cached);
        if (hk_run_with_cache(m, toks, NULL, 1, T, obs, sizeof obs / sizeof obs[0], "all",
                              cached, &c) != HK_OK)
            fail_msg("%s: run_with_cache: %s", quantized[f], hk_last_error());
        if (memcmp(plain, cached, (size_t)(T * V) * sizeof(float)) != 0)
            fail_msg("%s: caching changed the logits by up to %g", quantized[f],
                     max_diff(plain, cached, T * V));
        hk_cache_free(c);
        /* every point (attn.hook_result and the split q/k/v inputs take per-head f32
         * products): within the blocks' rounding of f32 */
        const char *all[] = {"*"};
        if (hk_run_with_cache(m, toks, NULL, 1, T, all, 1, "all", cached, &c) != HK_OK)
            fail_msg("%s: run_with_cache *: %s", quantized[f], hk_last_error());
        assert_true(max_diff(cached, plain, T * V) <= TOL * max_abs(plain, T * V) + 1e-3);
        hk_cache_free(c);
        /* every point sees f32 */
        hk_hooks *h = NULL;
        assert_int_equal(hk_hooks_new(m, &h), HK_OK);
        int seen = 0;
        assert_int_equal(hk_hooks_add(h, "*", count_f32, &seen, NULL), HK_OK);
        float *again = logits_of(m, h, T);
        assert_true(seen > 0);
        assert_true(max_diff(again, plain, T * V) <= TOL * max_abs(plain, T * V) + 1e-3);
        hk_hooks_free(h);
        /* an in-place change flows on, on the blocks as on f32 */
        hk_model *mf = fixture_model_weights(quantized[f], HK_WEIGHTS_F32);
        hk_hooks *hf = NULL;
        assert_int_equal(hk_hooks_new(m, &h), HK_OK);
        assert_int_equal(hk_hooks_new(mf, &hf), HK_OK);
        assert_int_equal(hk_hooks_add(h, "blocks.0.hook_resid_post", zero_resid, NULL, NULL),
                         HK_OK);
        assert_int_equal(hk_hooks_add(hf, "blocks.0.hook_resid_post", zero_resid, NULL, NULL),
                         HK_OK);
        float *zq = logits_of(m, h, T), *zf = logits_of(mf, hf, T);
        assert_true(max_diff(zq, plain, T * V) > 1e-3);
        assert_true(max_diff(zq, zf, T * V) <= TOL * max_abs(zf, T * V) + 1e-3);
        free(zq);
        free(zf);
        hk_hooks_free(h);
        hk_hooks_free(hf);
        hk_model_free(mf);
        free(again);
        free(cached);
        free(plain);
        hk_model_free(m);
    }
}

/* hk_model_weight: the same dequantized f32 in both modes. */
static void test_weights_f32_both_ways(void **state) {
    (void)state;
    const char *names[] = {"blocks.0.attn.W_Q", "blocks.1.attn.W_K", "blocks.1.mlp.W_out",
                           "unembed.W_U"};
    for (size_t f = 0; f < N_QUANTIZED; f++) {
        hk_model *mq = fixture_model_weights(quantized[f], HK_WEIGHTS_BLOCKS);
        hk_model *mf = fixture_model_weights(quantized[f], HK_WEIGHTS_F32);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            hk_tensor a, b;
            assert_int_equal(hk_model_weight(mq, names[i], &a), HK_OK);
            assert_int_equal(hk_model_weight(mf, names[i], &b), HK_OK);
            assert_int_equal(a.dtype, HK_DTYPE_F32);
            assert_int_equal(a.ndim, b.ndim);
            size_t n = 1;
            for (int d = 0; d < a.ndim; d++) {
                assert_int_equal(a.shape[d], b.shape[d]);
                n *= (size_t)a.shape[d];
            }
            /* contiguous f32 (hk_model_weight): equal bit for bit */
            assert_memory_equal(a.data, b.data, n * sizeof(float));
        }
        hk_model_free(mq);
        hk_model_free(mf);
    }
}

static void test_bad_mode(void **state) {
    (void)state;
    char path[1024];
    fixture_path(quantized[0], path, sizeof path);
    hk_model *m = (hk_model *)1;
    const hk_load_opts o = {.weights = (hk_weights_mode)7};
    assert_int_equal(hk_model_load_opts(path, &o, &m), HK_ERR_INVALID_ARG);
    assert_null(m);
    assert_non_null(strstr(hk_last_error(), "hk_load_opts.weights is 7"));
    assert_int_equal(hk_load_default_opts().weights, HK_WEIGHTS_BLOCKS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_on_blocks),
        cmocka_unit_test(test_prefill_is_f32),
        cmocka_unit_test(test_hooks_keep_meaning),
        cmocka_unit_test(test_weights_f32_both_ways),
        cmocka_unit_test(test_bad_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
