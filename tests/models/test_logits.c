/* Logits of every fixture family against Hugging Face transformers (fp32, atol 1e-4).
 * References: tests/fixtures/<name>/reference*.safetensors from make_fixtures.py. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "core/checkpoint.h"
#include "fixtures.h"
#include "float_compare.h"
#include "hookformer.h"
#include "test_util.h"

#define ATOL 1e-4f

typedef struct {
    int64_t batch, seq, vocab;
    int32_t *tokens;  /* [batch, seq] */
    int64_t *lengths; /* [batch] */
    float *logits;    /* [batch, seq, vocab] */
} reference;

static void load_reference(const char *family, const char *file, reference *r) {
    hk_ckpt *ck = fixture_ckpt(family, file);
    const hk_st_tensor *ids = hk_ckpt_find(ck, "input_ids");
    const hk_st_tensor *lens = hk_ckpt_find(ck, "lengths");
    const hk_st_tensor *lg = hk_ckpt_find(ck, "logits");
    assert_non_null(ids);
    assert_non_null(lens);
    assert_non_null(lg);
    assert_int_equal(ids->dtype, HK_DTYPE_I64);
    assert_int_equal(lg->dtype, HK_DTYPE_F32);
    r->batch = ids->shape[0];
    r->seq = ids->shape[1];
    r->vocab = lg->shape[2];
    size_t n = (size_t)(r->batch * r->seq);
    r->tokens = ids_from_i64(ids->data, (int64_t)n);
    r->lengths = malloc((size_t)r->batch * sizeof *r->lengths);
    r->logits = malloc(n * (size_t)r->vocab * sizeof *r->logits);
    memcpy(r->lengths, lens->data, (size_t)r->batch * 8);
    memcpy(r->logits, lg->data, n * (size_t)r->vocab * sizeof(float));
    hk_ckpt_close(ck);
}

static void free_reference(reference *r) {
    free(r->tokens);
    free(r->lengths);
    free(r->logits);
}

/* Max |ours - ref| over the valid positions of sequence b. */
static float max_diff(const reference *r, const float *ours, int64_t b) {
    size_t at = (size_t)(b * r->seq * r->vocab);
    return max_abs_diff(ours + at, r->logits + at, (size_t)(r->lengths[b] * r->vocab));
}

static void check_model(hk_model *m, const char *name, const char *ref_file) {
    reference r;
    load_reference(name, ref_file, &r);
    assert_int_equal(hk_model_vocab_size(m), r.vocab);
    float *ours = calloc((size_t)(r.batch * r.seq * r.vocab), sizeof *ours);
    hk_status st = hk_model_forward(m, r.tokens, r.lengths, r.batch, r.seq, ours);
    if (st != HK_OK) fail_msg("forward %s: %s", name, hk_last_error());
    for (int64_t b = 0; b < r.batch; b++) {
        float d = max_diff(&r, ours, b);
        print_message("%s %s seq %lld (len %lld): max |diff| %.3g\n", name, ref_file,
                      (long long)b, (long long)r.lengths[b], (double)d);
        if (!(d <= ATOL))
            fail_msg("%s: sequence %lld differs from transformers by %g (> %g)", name,
                     (long long)b, (double)d, (double)ATOL);
    }
    /* Each sequence alone gives the same logits as in the batch. */
    float *single = calloc((size_t)(r.seq * r.vocab), sizeof *single);
    for (int64_t b = 0; b < r.batch; b++) {
        int64_t len = r.lengths[b];
        st = hk_model_forward(m, r.tokens + b * r.seq, &len, 1, len, single);
        assert_int_equal(st, HK_OK);
        for (int64_t i = 0; i < len * r.vocab; i++)
            assert_true(fabsf(single[i] - ours[b * r.seq * r.vocab + i]) <= 1e-5f);
    }
    free(single);
    free(ours);
    free_reference(&r);
    hk_model_free(m);
}

static void check_family(const char *name, const char *ref_file) {
    check_model(fixture_model(name), name, ref_file);
}

/* The fixture's weights under another form of its config.json (a temporary folder: the
 * variant as config.json, model.safetensors linked): the same logits. */
static void check_config_variant(const char *name, const char *variant) {
    char dir[256], src[512], dst[512], weights[512];
    make_tmpdir(dir, sizeof dir);
    snprintf(src, sizeof src, "%s/%s/%s", fixtures_root(), name, variant);
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 0 && n < sizeof buf);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    write_bytes(dst, buf, n);
    char *abs = realpath(fixtures_root(), NULL);
    assert_non_null(abs);
    snprintf(weights, sizeof weights, "%s/%s/model.safetensors", abs, name);
    free(abs);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    assert_int_equal(symlink(weights, dst), 0);
    hk_model *m = NULL;
    if (hk_model_load(dir, &m) != HK_OK) fail_msg("%s %s: %s", name, variant, hk_last_error());
    print_message("%s with %s:\n", name, variant);
    check_model(m, name, "reference.safetensors");
    remove_tree(dir);
}

static void test_gpt2(void **s) { (void)s; check_family("gpt2", "reference.safetensors"); }
static void test_llama(void **s) { (void)s; check_family("llama", "reference.safetensors"); }
static void test_llama_bf16(void **s) { (void)s; check_family("llama_bf16", "reference.safetensors"); }
static void test_qwen2_f16(void **s) { (void)s; check_family("qwen2_f16", "reference.safetensors"); }
static void test_mistral(void **s) { (void)s; check_family("mistral", "reference.safetensors"); }
static void test_qwen2(void **s) { (void)s; check_family("qwen2", "reference.safetensors"); }
static void test_phi3_long(void **s) { (void)s; check_family("phi3", "reference.safetensors"); }
static void test_phi3_short(void **s) { (void)s; check_family("phi3", "reference_short.safetensors"); }
static void test_neox(void **s) { (void)s; check_family("neox", "reference.safetensors"); }
static void test_qwen3(void **s) { (void)s; check_family("qwen3", "reference.safetensors"); }
static void test_olmo2(void **s) { (void)s; check_family("olmo2", "reference.safetensors"); }
static void test_gemma2(void **s) { (void)s; check_family("gemma2", "reference.safetensors"); }
static void test_gemma3(void **s) { (void)s; check_family("gemma3", "reference.safetensors"); }
/* transformers 5's config form (rope_parameters per layer type, layer_types) beside the Hub
 * form on disk, and Gemma 3's multimodal wrapper (model_type gemma3, text_config) */
static void test_gemma2_t5(void **s) { (void)s; check_config_variant("gemma2", "config.transformers5.json"); }
static void test_gemma3_t5(void **s) { (void)s; check_config_variant("gemma3", "config.transformers5.json"); }
static void test_gemma3_wrapper(void **s) { (void)s; check_config_variant("gemma3", "config.gemma3.json"); }

/* The phi3 fixture written as a GGUF file with llama.cpp's converter's layout (fused attn_qkv
 * and ffn_up, rope_factors_short/long tensors, make_gguf_fixtures.py): transformers' logits
 * of the safetensors twin, long and short factor references alike. */
static void test_phi3_gguf(void **s) {
    (void)s;
    check_model(fixture_model("gguf/phi3_f32.gguf"), "phi3", "reference.safetensors");
    check_model(fixture_model("gguf/phi3_f32.gguf"), "phi3", "reference_short.safetensors");
}

/* A gemma3 checkpoint as transformers 5 saves Gemma3ForConditionalGeneration: the text
 * tower's tensors under model.language_model. (the fixture's file with its header's names
 * rewritten; the data bytes are the same) beside the wrapper's config.json. */
static void test_gemma3_wrapper_names(void **s) {
    (void)s;
    char src[512], dir[256], path[512];
    snprintf(src, sizeof src, "%s/gemma3/model.safetensors", fixtures_root());
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *file = malloc(size);
    assert_int_equal(fread(file, 1, size, f), size);
    fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | file[i];
    cJSON *h = cJSON_ParseWithLength((const char *)file + 8, (size_t)hlen);
    assert_non_null(h);
    cJSON *out = cJSON_CreateObject();
    for (cJSON *e = h->child; e; e = e->next) {
        char name[256];
        if (strncmp(e->string, "model.", 6) == 0)
            snprintf(name, sizeof name, "model.language_model.%s", e->string + 6);
        else
            snprintf(name, sizeof name, "%s", e->string);
        cJSON_AddItemToObject(out, name, cJSON_Duplicate(e, true));
    }
    char *text = cJSON_PrintUnformatted(out);
    size_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *o = fopen(path, "wb");
    assert_non_null(o);
    for (int i = 0; i < 8; i++) fputc((int)((uint64_t)padded >> (8 * i) & 0xFF), o);
    fwrite(text, 1, tl, o);
    for (size_t i = tl; i < padded; i++) fputc(' ', o);
    fwrite(file + 8 + hlen, 1, size - 8 - hlen, o);
    fclose(o);
    snprintf(src, sizeof src, "%s/gemma3/config.gemma3.json", fixtures_root());
    f = fopen(src, "rb");
    assert_non_null(f);
    char cfg[65536];
    size_t n = fread(cfg, 1, sizeof cfg, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_bytes(path, cfg, n);
    hk_model *m = NULL;
    if (hk_model_load(dir, &m) != HK_OK) fail_msg("gemma3 wrapper: %s", hk_last_error());
    check_model(m, "gemma3", "reference.safetensors");
    remove_tree(dir);
    free(text);
    cJSON_Delete(out);
    cJSON_Delete(h);
    free(file);
}
static void test_mixtral(void **s) { (void)s; check_family("mixtral", "reference.safetensors"); }
static void test_qwen3_moe(void **s) { (void)s; check_family("qwen3_moe", "reference.safetensors"); }
static void test_olmoe(void **s) { (void)s; check_family("olmoe", "reference.safetensors"); }
static void test_qwen2_moe(void **s) { (void)s; check_family("qwen2_moe", "reference.safetensors"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2),     cmocka_unit_test(test_llama),
        cmocka_unit_test(test_llama_bf16), cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_qwen2),    cmocka_unit_test(test_qwen2_f16),    cmocka_unit_test(test_phi3_long),
        cmocka_unit_test(test_phi3_short), cmocka_unit_test(test_neox),
        cmocka_unit_test(test_qwen3),    cmocka_unit_test(test_olmo2),
        cmocka_unit_test(test_gemma2),   cmocka_unit_test(test_gemma3),
        cmocka_unit_test(test_mixtral),  cmocka_unit_test(test_qwen3_moe),
        cmocka_unit_test(test_olmoe),    cmocka_unit_test(test_qwen2_moe),
        cmocka_unit_test(test_gemma2_t5), cmocka_unit_test(test_gemma3_t5),
        cmocka_unit_test(test_gemma3_wrapper), cmocka_unit_test(test_gemma3_wrapper_names),
        cmocka_unit_test(test_phi3_gguf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
