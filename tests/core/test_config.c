/* Canonical config: each inconsistency is named (origin + field); JSON has readable enums. */
#include <math.h>

#include "test_util.h"

#include <cjson/cJSON.h>

#include "core/config.h"

static hk_config *llama(void) {
    hk_config *c = calloc(1, sizeof *c);
    assert_non_null(c);
    strcpy(c->family, "llama");
    strcpy(c->architecture, "LlamaForCausalLM");
    c->n_layers = 2;
    c->d_model = 64;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->d_head = 16;
    c->d_mlp = 128;
    c->d_vocab = 100;
    c->max_pos = 2048;
    c->norm = HK_NORM_RMSNORM;
    c->norm_eps = 1e-6;
    c->pos = HK_POS_ROTARY;
    c->rope.kind = HK_ROPE_LLAMA3;
    c->rope.theta = 500000.0;
    c->rope.rot_dim = 16;
    c->rope.factor = 8.0;
    c->rope.low_freq_factor = 1.0;
    c->rope.high_freq_factor = 4.0;
    c->rope.original_max_pos = 8192;
    c->rope.attention_factor = 1.0;
    c->act = HK_ACT_SILU;
    c->gated_mlp = true;
    c->causal = true;
    c->attn_scale = 0.25;
    return c;
}

static void expect_bad(hk_config *c, hk_status want, const char *field) {
    expect_error(hk_config_validate(c, "tiny/config.json"), want, "tiny/config.json", field,
                 NULL);
    free(c);
}

static void test_valid(void **state) {
    (void)state;
    hk_config *c = llama();
    EXPECT_OK(hk_config_validate(c, "tiny/config.json"));
    c->pos = HK_POS_LEARNED; /* rope fields are ignored without rotary positions */
    c->rope.rot_dim = 0;
    c->norm = HK_NORM_LAYERNORM;
    c->act = HK_ACT_GELU_NEW;
    EXPECT_OK(hk_config_validate(c, "gpt2/config.json"));
    free(c);

    c = llama();
    c->rope.kind = HK_ROPE_LONGROPE;
    c->rope.rot_dim = 12; /* partial rotary */
    c->rope.n_factors = 6;
    for (int i = 0; i < 6; i++) c->rope.short_factor[i] = c->rope.long_factor[i] = 1.0 + i;
    c->rope.attention_factor = 1.19;
    EXPECT_OK(hk_config_validate(c, "phi3/config.json"));
    free(c);
}

static void test_invalid(void **state) {
    (void)state;
    hk_config *c;
    c = llama(); c->n_layers = 0; expect_bad(c, HK_ERR_FORMAT, "'n_layers'");
    c = llama(); c->d_model = -64; expect_bad(c, HK_ERR_FORMAT, "'d_model'");
    c = llama(); c->n_heads = 0; expect_bad(c, HK_ERR_FORMAT, "'n_heads'");
    c = llama(); c->n_kv_heads = 0; expect_bad(c, HK_ERR_FORMAT, "'n_kv_heads'");
    c = llama(); c->d_head = 0; expect_bad(c, HK_ERR_FORMAT, "'d_head'");
    c = llama(); c->d_mlp = 0; expect_bad(c, HK_ERR_FORMAT, "'d_mlp'");
    c = llama(); c->d_vocab = 0; expect_bad(c, HK_ERR_FORMAT, "'d_vocab'");
    c = llama(); c->n_kv_heads = 3; expect_bad(c, HK_ERR_FORMAT, "n_kv_heads (3)");
    c = llama(); c->n_layers = HK_MAX_LAYERS + 1; expect_bad(c, HK_ERR_UNSUPPORTED, "layers");
    c = llama(); c->rope.rot_dim = 0; expect_bad(c, HK_ERR_FORMAT, "'rope.rot_dim'");
    c = llama(); c->rope.rot_dim = 18; expect_bad(c, HK_ERR_FORMAT, "'rope.rot_dim'");
    c = llama(); c->rope.rot_dim = 15; expect_bad(c, HK_ERR_FORMAT, "'rope.rot_dim'");
    c = llama(); c->rope.theta = 0; expect_bad(c, HK_ERR_FORMAT, "'rope.theta'");
    c = llama(); c->rope.theta = NAN; expect_bad(c, HK_ERR_FORMAT, "'rope.theta'");
    c = llama(); c->rope.factor = 0; expect_bad(c, HK_ERR_FORMAT, "'rope.factor'");
    c = llama(); c->rope.high_freq_factor = 1.0; expect_bad(c, HK_ERR_FORMAT, "'rope.high_freq_factor'");
    c = llama(); c->rope.original_max_pos = 0; expect_bad(c, HK_ERR_FORMAT, "'rope.original_max_pos'");
    c = llama(); c->rope.kind = HK_ROPE_LONGROPE; c->rope.n_factors = 7;
    expect_bad(c, HK_ERR_FORMAT, "'rope.n_factors'");
    c = llama(); c->rope.kind = HK_ROPE_LONGROPE; c->rope.n_factors = 8;
    for (int i = 0; i < 8; i++) c->rope.short_factor[i] = c->rope.long_factor[i] = 1.0;
    c->rope.long_factor[3] = -1; expect_bad(c, HK_ERR_FORMAT, "'rope.long_factor[3]'");
    c = llama(); c->window = -1; expect_bad(c, HK_ERR_FORMAT, "'window'");
    c = llama(); c->norm_eps = 0; expect_bad(c, HK_ERR_FORMAT, "'norm_eps'");
    c = llama(); c->attn_scale = 0; expect_bad(c, HK_ERR_FORMAT, "'attn_scale'");
    c = llama(); c->max_pos = -1; expect_bad(c, HK_ERR_FORMAT, "'max_pos'");
    c = llama(); c->norm = (hk_norm_kind)7; expect_bad(c, HK_ERR_FORMAT, "'norm'");
    c = llama(); c->act = (hk_act_kind)9; expect_bad(c, HK_ERR_FORMAT, "'act'");
    c = llama(); memset(c->family, 'x', sizeof c->family); expect_bad(c, HK_ERR_FORMAT, "family");
    expect_error(hk_config_validate(NULL, "x"), HK_ERR_INVALID_ARG, NULL, NULL, NULL);
}

static const char *str_field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double num_field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void test_to_json(void **state) {
    (void)state;
    hk_config *c = llama();
    c->window = 4;
    c->layer_window[1] = true;
    char *s = hk_config_to_json(c);
    assert_non_null(s);
    assert_non_null(strchr(s, '\n')); /* pretty */
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    assert_string_equal(str_field(j, "family"), "llama");
    assert_string_equal(str_field(j, "architecture"), "LlamaForCausalLM");
    assert_string_equal(str_field(j, "norm"), "rmsnorm");
    assert_string_equal(str_field(j, "pos"), "rotary");
    assert_string_equal(str_field(j, "act"), "silu");
    assert_true(num_field(j, "n_layers") == 2);
    assert_true(num_field(j, "n_kv_heads") == 2);
    assert_true(num_field(j, "norm_eps") == 1e-6);
    assert_true(num_field(j, "attn_scale") == 0.25);
    assert_true(num_field(j, "window") == 4);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "gated_mlp")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "tied_embeddings")));
    const cJSON *lw = cJSON_GetObjectItemCaseSensitive(j, "layer_window");
    assert_int_equal(cJSON_GetArraySize(lw), 2);
    assert_true(cJSON_IsTrue(cJSON_GetArrayItem(lw, 1)));
    const cJSON *rope = cJSON_GetObjectItemCaseSensitive(j, "rope");
    assert_non_null(rope);
    assert_string_equal(str_field(rope, "kind"), "llama3");
    assert_true(num_field(rope, "theta") == 500000.0);
    assert_true(num_field(rope, "factor") == 8.0);
    assert_null(cJSON_GetObjectItemCaseSensitive(rope, "short_factor"));
    cJSON_Delete(j);
    free(s);

    c->rope.kind = HK_ROPE_LONGROPE;
    c->rope.n_factors = 8;
    for (int i = 0; i < 8; i++) c->rope.short_factor[i] = 1.0 + 0.5 * i;
    c->pos = HK_POS_ROTARY;
    c->act = HK_ACT_GELU_NEW;
    c->norm = HK_NORM_LAYERNORM;
    s = hk_config_to_json(c);
    j = cJSON_Parse(s);
    assert_string_equal(str_field(j, "act"), "gelu_new");
    assert_string_equal(str_field(j, "norm"), "layernorm");
    rope = cJSON_GetObjectItemCaseSensitive(j, "rope");
    assert_string_equal(str_field(rope, "kind"), "longrope");
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(rope, "short_factor");
    assert_int_equal(cJSON_GetArraySize(sf), 8);
    assert_true(cJSON_GetArrayItem(sf, 3)->valuedouble == 2.5);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rope, "long_factor")), 8);
    cJSON_Delete(j);
    free(s);

    c->pos = HK_POS_LEARNED;
    c->window = 0;
    s = hk_config_to_json(c);
    j = cJSON_Parse(s);
    assert_string_equal(str_field(j, "pos"), "learned");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "rope"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "layer_window"));
    cJSON_Delete(j);
    free(s);
    free(c);
    assert_null(hk_config_to_json(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_to_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
