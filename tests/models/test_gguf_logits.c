/* Tiny Llama GGUF files (tests/fixtures/gguf, make_gguf_fixtures.py) in F32, F16, BF16, Q8_0,
 * Q4_0 and Q4_1, written as llama.cpp writes them (q/k rows permuted), against transformers
 * loading the same files (atol 1e-4); a tiny Qwen2 GGUF (q/k/v biases) likewise. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/checkpoint.h"
#include "fixtures.h"
#include "float_compare.h"
#include "hookformer.h"

#define ATOL 1e-4f

/* gguf/<arch>_<type>.gguf against reference logits_<type> (logits_qwen2_<type> for qwen2). */
static void check_file(const char *arch, const char *type) {
    hk_ckpt *ref = fixture_ckpt("gguf", "reference.safetensors");
    char name[64], path[512];
    snprintf(name, sizeof name, "logits_%s%s%s", strcmp(arch, "llama") ? arch : "",
             strcmp(arch, "llama") ? "_" : "", type);
    const hk_st_tensor *ids = hk_ckpt_find(ref, "input_ids");
    const hk_st_tensor *lens = hk_ckpt_find(ref, "lengths");
    const hk_st_tensor *lg = hk_ckpt_find(ref, name);
    assert_non_null(ids);
    assert_non_null(lens);
    assert_non_null(lg);
    const int64_t batch = ids->shape[0], seq = ids->shape[1], vocab = lg->shape[2];
    int32_t *tokens = ids_from_i64(ids->data, batch * seq); /* [batch, seq] */
    int64_t lengths[8];
    assert_true(batch <= 8);
    memcpy(lengths, lens->data, (size_t)batch * sizeof *lengths);

    snprintf(path, sizeof path, "gguf/%s_%s.gguf", arch, type);
    hk_model *m = fixture_model(path);
    assert_int_equal(hk_model_vocab_size(m), vocab);
    float *ours = calloc((size_t)(batch * seq * vocab), sizeof *ours); /* [batch, seq, vocab] */
    if (hk_model_forward(m, tokens, lengths, batch, seq, ours) != HK_OK)
        fail_msg("forward %s: %s", path, hk_last_error());
    const float *want = lg->data;
    for (int64_t b = 0; b < batch; b++) {
        const size_t at = (size_t)(b * seq * vocab);
        const float d = max_abs_diff(ours + at, want + at, (size_t)(lengths[b] * vocab));
        print_message("%s seq %lld: max |diff| %.3g\n", path, (long long)b, (double)d);
        if (!(d <= ATOL))
            fail_msg("%s: sequence %lld differs from transformers by %g (> %g)", path,
                     (long long)b, (double)d, (double)ATOL);
    }
    free(ours);
    free(tokens);
    hk_model_free(m);
    hk_ckpt_close(ref);
}

static void check_type(const char *type) { check_file("llama", type); }

static void test_f32(void **s) { (void)s; check_type("f32"); }
static void test_f16(void **s) { (void)s; check_type("f16"); }
static void test_bf16(void **s) { (void)s; check_type("bf16"); }
static void test_q8_0(void **s) { (void)s; check_type("q8_0"); }
static void test_q4_0(void **s) { (void)s; check_type("q4_0"); }
static void test_q4_1(void **s) { (void)s; check_type("q4_1"); }
/* Qwen2: q/k/v biases, no q/k row permutation */
static void test_qwen2(void **s) { (void)s; check_file("qwen2", "f32"); }
/* llama.cpp's conventions for the wave-2 architectures (make_gguf_fixtures.py), against the
 * twin HF models: qwen3's q/k norms; gemma2's stored 1 + w norms, four norms, soft-caps (the
 * final one reached), even sliding layers; gemma3 (Q8_0) with 7 layers: the 6th global with
 * rope_theta and linear scaling, the rest sliding with base 10000 */
static void test_qwen3(void **s) { (void)s; check_file("qwen3", "f32"); }
static void test_gemma2(void **s) { (void)s; check_file("gemma2", "f32"); }
static void test_gemma3(void **s) { (void)s; check_file("gemma3", "q8_0"); }

/* The canonical config comes from the llama.* keys (eps 2e-3, 2 KV heads, head 16, untied). */
static void test_config(void **s) {
    (void)s;
    hk_model *m = fixture_model("gguf/llama_q8_0.gguf");
    char *json = NULL;
    assert_int_equal(hk_model_config_json(m, &json), HK_OK);
    assert_non_null(strstr(json, "\"n_kv_heads\":\t2"));
    assert_non_null(strstr(json, "\"d_head\":\t16"));
    assert_non_null(strstr(json, "\"norm_eps\":\t0.002"));
    assert_non_null(strstr(json, "\"tied_embeddings\":\tfalse"));
    assert_string_equal(hk_model_family(m), "llama");
    hk_free(json);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32),  cmocka_unit_test(test_f16),  cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_q8_0), cmocka_unit_test(test_q4_0), cmocka_unit_test(test_q4_1),
        cmocka_unit_test(test_qwen2), cmocka_unit_test(test_config),
        cmocka_unit_test(test_qwen3), cmocka_unit_test(test_gemma2), cmocka_unit_test(test_gemma3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
