/* Loading BERT folders: config fields hookformer refuses, and the sentence-transformers modules
 * (modules.json, the Pooling config) that set hk_model_embed's defaults, with their errors.
 * Each case is a fresh folder holding bert_body's weights (a symlink) and an edited config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixtures.h"
#include "hookformer.h"

static char tmp_root[256];

static void write_file(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    fclose(f);
}

/* A fresh folder with bert_body's weights and its config.json, `from` replaced by `to` once
 * (from NULL: unchanged). */
static void make_case(char *dir, size_t cap, const char *from, const char *to) {
    static int n;
    snprintf(dir, cap, "%s/case%d", tmp_root, n++);
    assert_int_equal(mkdir(dir, 0755), 0);
    char src[1024], dst[1200];
    fixture_path("bert_body/model.safetensors", src, sizeof src);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    assert_int_equal(symlink(src, dst), 0);
    fixture_path("bert_body/config.json", src, sizeof src);
    FILE *f = fopen(src, "r");
    assert_non_null(f);
    char text[8192];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    char out[8400];
    snprintf(out, sizeof out, "%s", text);
    if (from) {
        char *at = strstr(text, from);
        assert_non_null(at);
        snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    }
    write_file(dir, "config.json", out);
}

static void expect_failure(const char *dir, hk_status want, const char *needle) {
    hk_model *m = (hk_model *)0x1;
    hk_status st = hk_model_load(dir, &m);
    print_message("  -> %s: %s\n", hk_status_name(st), hk_last_error());
    assert_int_equal(st, want);
    assert_null(m);
    if (!strstr(hk_last_error(), needle))
        fail_msg("message '%s' lacks '%s'", hk_last_error(), needle);
}

static void test_config_refusals(void **state) {
    (void)state;
    char dir[512];
    make_case(dir, sizeof dir, "\"is_decoder\": false", "\"is_decoder\": true");
    expect_failure(dir, HK_ERR_UNSUPPORTED, "'is_decoder' is true");
    make_case(dir, sizeof dir, "\"hidden_act\": \"gelu\"",
              "\"hidden_act\": \"gelu\", \"position_embedding_type\": \"relative_key\"");
    expect_failure(dir, HK_ERR_UNSUPPORTED, "'position_embedding_type' is \"relative_key\"");
    make_case(dir, sizeof dir, "\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
    expect_failure(dir, HK_ERR_FORMAT, "multiple of num_attention_heads");
    make_case(dir, sizeof dir, "\"type_vocab_size\": 2", "\"type_vocab_size\": 3");
    expect_failure(dir, HK_ERR_SHAPE, "token_type_embeddings");
    make_case(dir, sizeof dir, "\"hidden_act\": \"gelu\"", "\"hidden_act\": \"mish\"");
    expect_failure(dir, HK_ERR_UNSUPPORTED, "'hidden_act' is \"mish\"");
    /* a BertForMaskedLM config over a checkpoint without the head */
    make_case(dir, sizeof dir, "\"BertModel\"", "\"BertForMaskedLM\"");
    expect_failure(dir, HK_ERR_NOT_FOUND, "cls.predictions");
}

static const char MODULES[] =
    "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": "
    "\"sentence_transformers.models.Transformer\"},\n"
    " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": "
    "\"sentence_transformers.models.Pooling\"}%s]\n";
static const char NORMALIZE[] = ",\n {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", "
                                "\"type\": \"sentence_transformers.models.Normalize\"}";

/* A folder with modules.json (with or without Normalize) and 1_Pooling/config.json. */
static void make_st(char *dir, size_t cap, bool normalize, const char *pooling_json) {
    make_case(dir, cap, NULL, NULL);
    char text[1024], sub[600];
    snprintf(text, sizeof text, MODULES, normalize ? NORMALIZE : "");
    write_file(dir, "modules.json", text);
    snprintf(sub, sizeof sub, "%s/1_Pooling", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    if (pooling_json) write_file(sub, "config.json", pooling_json);
}

static void test_st_modules(void **state) {
    (void)state;
    char dir[512];
    struct {
        const char *json;
        bool normalize;
        hk_pooling want;
    } ok[] = {
        {"{\"word_embedding_dimension\": 64, \"pooling_mode_cls_token\": true, "
         "\"pooling_mode_mean_tokens\": false}",
         true, HK_POOL_CLS},
        {"{\"pooling_mode_max_tokens\": true}", false, HK_POOL_MAX},
        {"{\"pooling_mode_mean_sqrt_len_tokens\": true}", true, HK_POOL_MEAN_SQRT_LEN},
        {"{\"pooling_mode_lasttoken\": true, \"pooling_mode_weightedmean_tokens\": false}", false,
         HK_POOL_LAST},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        make_st(dir, sizeof dir, ok[i].normalize, ok[i].json);
        hk_model *m = NULL;
        if (hk_model_load(dir, &m) != HK_OK) fail_msg("%s", hk_last_error());
        bool norm = !ok[i].normalize;
        assert_int_equal(hk_model_pooling(m, &norm), ok[i].want);
        assert_int_equal(norm, ok[i].normalize);
        /* HK_POOL_MODEL with normalize -1 is the folder's pipeline */
        int32_t ids[3] = {5, 6, 7};
        float a[64], b[64];
        assert_int_equal(hk_model_embed(m, NULL, ids, NULL, NULL, 1, 3, HK_POOL_MODEL, -1, a),
                         HK_OK);
        assert_int_equal(hk_model_embed(m, NULL, ids, NULL, NULL, 1, 3, ok[i].want,
                                        ok[i].normalize, b),
                         HK_OK);
        assert_memory_equal(a, b, sizeof a);
        hk_model_free(m);
    }
    make_st(dir, sizeof dir, false,
            "{\"pooling_mode_cls_token\": true, \"pooling_mode_mean_tokens\": true}");
    expect_failure(dir, HK_ERR_UNSUPPORTED, "2 pooling_mode_* fields are true");
    make_st(dir, sizeof dir, false, "{\"pooling_mode_weightedmean_tokens\": true}");
    expect_failure(dir, HK_ERR_UNSUPPORTED, "'pooling_mode_weightedmean_tokens' is true");
    make_st(dir, sizeof dir, false, "{\"pooling_mode_cls_token\": \"yes\"}");
    expect_failure(dir, HK_ERR_FORMAT, "pooling_mode_cls_token");
    make_st(dir, sizeof dir, false, NULL); /* the Pooling module's config is missing */
    expect_failure(dir, HK_ERR_NOT_FOUND, "1_Pooling/config.json: cannot open");
    make_case(dir, sizeof dir, NULL, NULL);
    write_file(dir, "modules.json", "{\"not\": \"an array\"}");
    expect_failure(dir, HK_ERR_FORMAT, "modules.json: expected an array of modules");
    make_case(dir, sizeof dir, NULL, NULL);
    write_file(dir, "modules.json", "[{\"idx\": 0}]");
    expect_failure(dir, HK_ERR_NOT_FOUND, "modules.json: module 0");
}

static int setup(void **s) {
    (void)s;
    const char *t = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/hk_bert_load_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void **s) {
    (void)s;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_st_modules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
