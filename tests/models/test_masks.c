/* User masks through the public API: causal as a predicate equals the default, packed
 * documents equal separate runs (rotary positions are relative), bidirectional attention
 * looks ahead, and a window override shrinks what a query sees. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixtures.h"
#include "float_compare.h"
#include "hookformer.h"

static int calls;
static bool causal_fn(void *u, int64_t b, int64_t h, int64_t q, int64_t k) {
    (void)u, (void)b, (void)h;
    calls++;
    return k <= q;
}

static void test_predicate_equals_default(void **s) {
    (void)s;
    hk_model *m = fixture_model("llama");
    int64_t V = hk_model_vocab_size(m), T = 17;
    int32_t tok[17];
    for (int i = 0; i < T; i++) tok[i] = (i * 13 + 5) % (int)V;
    float *a = malloc((size_t)(T * V) * sizeof *a), *b = malloc((size_t)(T * V) * sizeof *b);
    assert_int_equal(hk_model_forward(m, tok, NULL, 1, T, a), HK_OK);
    hk_mask_spec spec = {.causal = 0, .window = -1, .allowed = causal_fn};
    assert_int_equal(hk_model_set_mask(m, &spec), HK_OK);
    calls = 0;
    assert_int_equal(hk_model_forward(m, tok, NULL, 1, T, b), HK_OK);
    assert_true(calls > 0);
    assert_true(max_abs_diff(a, b, (size_t)(T * V)) <= 1e-5f);
    free(a), free(b);
    hk_model_free(m);
}

/* Two documents packed into one row give each document's own logits. */
static void test_packed_documents(void **s) {
    (void)s;
    hk_model *m = fixture_model("llama");
    int64_t V = hk_model_vocab_size(m);
    int32_t d1[7] = {3, 14, 15, 92, 65, 35, 89}, d2[5] = {79, 32, 38, 46, 26};
    int32_t packed[12];
    int32_t docs[12];
    memcpy(packed, d1, sizeof d1);
    memcpy(packed + 7, d2, sizeof d2);
    for (int i = 0; i < 12; i++) docs[i] = i < 7 ? 0 : 1;
    float *p = malloc((size_t)(12 * V) * sizeof *p), *one = malloc((size_t)(12 * V) * sizeof *one);
    hk_mask_spec spec = {.causal = -1, .window = -1, .doc_ids = docs, .doc_stride = 12};
    assert_int_equal(hk_model_set_mask(m, &spec), HK_OK);
    assert_int_equal(hk_model_forward(m, packed, NULL, 1, 12, p), HK_OK);
    assert_int_equal(hk_model_set_mask(m, NULL), HK_OK);
    assert_int_equal(hk_model_forward(m, d1, NULL, 1, 7, one), HK_OK);
    float e1 = max_abs_diff(p, one, (size_t)(7 * V));
    assert_int_equal(hk_model_forward(m, d2, NULL, 1, 5, one), HK_OK);
    float e2 = max_abs_diff(p + 7 * V, one, (size_t)(5 * V));
    print_message("packed documents vs separate runs: %.3g, %.3g\n", (double)e1, (double)e2);
    assert_true(e1 <= 1e-4f && e2 <= 1e-4f);
    free(p), free(one);
    hk_model_free(m);
}

static float pattern_sum_above_diagonal;
static hk_hook_result sum_upper(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)u;
    const float *x = t->data;
    for (int64_t h = 0; h < t->shape[1]; h++)
        for (int64_t q = 0; q < t->shape[2]; q++)
            for (int64_t k = 0; k < t->shape[3]; k++)
                if (c->key_offset + k > c->pos_offset + q)
                    pattern_sum_above_diagonal += x[(h * t->shape[2] + q) * t->shape[3] + k];
    return HK_HOOK_CONTINUE;
}

static void test_bidirectional_and_window(void **s) {
    (void)s;
    hk_model *m = fixture_model("gpt2");
    int32_t tok[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float *logits = malloc((size_t)(9 * hk_model_vocab_size(m)) * sizeof *logits);
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.0.attn.hook_pattern", sum_upper, NULL, NULL), HK_OK);
    pattern_sum_above_diagonal = 0;
    assert_int_equal(hk_model_run(m, h, tok, NULL, 1, 9, logits), HK_OK);
    assert_true(pattern_sum_above_diagonal == 0.0f); /* causal: nothing ahead */
    hk_mask_spec bi = {.causal = 0, .window = -1};
    assert_int_equal(hk_model_set_mask(m, &bi), HK_OK);
    assert_int_equal(hk_model_run(m, h, tok, NULL, 1, 9, logits), HK_OK);
    assert_true(pattern_sum_above_diagonal > 1.0f); /* looks ahead */
    hk_session *sess;
    assert_int_equal(hk_session_new(m, 1, 9, &sess), HK_ERR_UNSUPPORTED);
    hk_mask_spec bad = {.causal = 2, .window = -1};
    assert_int_equal(hk_model_set_mask(m, &bad), HK_ERR_INVALID_ARG);
    hk_hooks_free(h);
    free(logits);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predicate_equals_default),
        cmocka_unit_test(test_packed_documents),
        cmocka_unit_test(test_bidirectional_and_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
