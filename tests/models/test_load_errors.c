/* hk_model_load on broken model folders: every error names the file and the field or tensor,
 * and nothing crashes. Each case copies the gpt2/llama fixture and breaks one thing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "fixtures.h"
#include "hookformer.h"

static char tmp_root[256];

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_all(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Copy fixture `name` into a fresh folder; symlink the weights, copy config.json. */
static void copy_fixture(const char *name, char *dir, size_t cap) {
    static int n;
    snprintf(dir, cap, "%s/case%d", tmp_root, n++);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -r '%s/%s' '%s'", fixtures_root(), name, dir);
    assert_int_equal(system(cmd), 0);
}

typedef void (*json_edit)(cJSON *cfg);

static void edit_config(const char *dir, json_edit edit) {
    char path[1024];
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = read_all(path, &len);
    assert_non_null(text);
    cJSON *cfg = cJSON_Parse(text);
    assert_non_null(cfg);
    edit(cfg);
    char *out = cJSON_Print(cfg);
    write_all(path, out, strlen(out));
    free(out);
    cJSON_Delete(cfg);
    free(text);
}

/* Load must fail with `want` and a message holding every needle. */
static void expect_failure(const char *dir, hk_status want, const char *const *needles) {
    hk_model *m = (hk_model *)0x1;
    hk_status st = hk_model_load(dir, &m);
    const char *msg = hk_last_error();
    print_message("  %s -> %s: %s\n", dir, hk_status_name(st), msg);
    assert_int_equal(st, want);
    assert_null(m);
    for (const char *const *n = needles; *n; n++)
        if (!strstr(msg, *n)) fail_msg("message '%s' lacks '%s'", msg, *n);
}

static void set_n_embd_32(cJSON *c) { cJSON_ReplaceItemInObject(c, "n_embd", cJSON_CreateNumber(32)); }
static void set_layers_3(cJSON *c) { cJSON_ReplaceItemInObject(c, "n_layer", cJSON_CreateNumber(3)); }
static void unknown_arch(cJSON *c) { cJSON_ReplaceItemInObject(c, "model_type", cJSON_CreateString("mamba9")); }
static void drop_n_embd(cJSON *c) { cJSON_DeleteItemFromObject(c, "n_embd"); }
static void n_head_string(cJSON *c) { cJSON_ReplaceItemInObject(c, "n_head", cJSON_CreateString("four")); }
static void n_head_fraction(cJSON *c) { cJSON_ReplaceItemInObject(c, "n_head", cJSON_CreateNumber(3.5)); }
static void untie(cJSON *c) { cJSON_ReplaceItemInObject(c, "tie_word_embeddings", cJSON_CreateFalse()); }
static void bad_act(cJSON *c) { cJSON_ReplaceItemInObject(c, "activation_function", cJSON_CreateString("swishy")); }
static void kv_heads_3(cJSON *c) { cJSON_ReplaceItemInObject(c, "num_key_value_heads", cJSON_CreateNumber(3)); }

static void test_shape_mismatch(void **s) {
    (void)s;
    char dir[512];
    copy_fixture("gpt2", dir, sizeof dir);
    edit_config(dir, set_n_embd_32);
    expect_failure(dir, HK_ERR_SHAPE,
                   (const char *const[]){"model.safetensors", "transformer.wte.weight", "32", NULL});
}

static void test_missing_tensor(void **s) {
    (void)s;
    char dir[512];
    copy_fixture("gpt2", dir, sizeof dir);
    edit_config(dir, set_layers_3);
    expect_failure(dir, HK_ERR_NOT_FOUND, (const char *const[]){"transformer.h.2.ln_1.weight", NULL});
}

static void test_unknown_architecture(void **s) {
    (void)s;
    char dir[512];
    copy_fixture("gpt2", dir, sizeof dir);
    edit_config(dir, unknown_arch);
    expect_failure(dir, HK_ERR_UNSUPPORTED,
                   (const char *const[]){"config.json", "mamba9", "gpt2", "qwen3", "olmo2",
                                         "gemma3_text", "mixtral", "qwen3_moe", "olmoe", NULL});
}

static void dense_moe_layers(cJSON *c) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(0));
    cJSON_DeleteItemFromObject(c, "mlp_only_layers");
    cJSON_AddItemToObject(c, "mlp_only_layers", a);
}
static void clip_qkv(cJSON *c) {
    cJSON_DeleteItemFromObject(c, "clip_qkv");
    cJSON_AddItemToObject(c, "clip_qkv", cJSON_CreateNumber(8));
}
static void no_experts(cJSON *c) { cJSON_DeleteItemFromObject(c, "num_local_experts"); }
static void too_many_used(cJSON *c) {
    cJSON_ReplaceItemInObject(c, "num_experts_per_tok", cJSON_CreateNumber(9));
}

/* Mixture-of-experts configs the runtime does not take are refused by field. */
static void test_moe_config_errors(void **s) {
    (void)s;
    char dir[512];
    copy_fixture("qwen3_moe", dir, sizeof dir);
    edit_config(dir, dense_moe_layers);
    expect_failure(dir, HK_ERR_UNSUPPORTED,
                   (const char *const[]){"config.json", "mlp_only_layers", NULL});
    copy_fixture("olmoe", dir, sizeof dir);
    edit_config(dir, clip_qkv);
    expect_failure(dir, HK_ERR_UNSUPPORTED, (const char *const[]){"config.json", "clip_qkv", NULL});
    copy_fixture("mixtral", dir, sizeof dir);
    edit_config(dir, no_experts);
    expect_failure(dir, HK_ERR_NOT_FOUND,
                   (const char *const[]){"config.json", "num_local_experts", NULL});
    copy_fixture("mixtral", dir, sizeof dir);
    edit_config(dir, too_many_used);
    expect_failure(dir, HK_ERR_FORMAT, (const char *const[]){"n_experts_used", "9", NULL});
}

static void test_missing_field(void **s) {
    (void)s;
    char dir[512];
    copy_fixture("gpt2", dir, sizeof dir);
    edit_config(dir, drop_n_embd);
    expect_failure(dir, HK_ERR_NOT_FOUND, (const char *const[]){"config.json", "n_embd", NULL});
}

static void test_wrong_field_type(void **s) {
    (void)s;
    char dir[512];
    copy_fixture("gpt2", dir, sizeof dir);
    edit_config(dir, n_head_string);
    expect_failure(dir, HK_ERR_FORMAT, (const char *const[]){"config.json", "n_head", NULL});
    copy_fixture("gpt2", dir, sizeof dir);
    edit_config(dir, n_head_fraction);
    expect_failure(dir, HK_ERR_FORMAT, (const char *const[]){"config.json", "n_head", NULL});
}

static void test_untied_without_lm_head(void **s) {
    (void)s;
    char dir[512];
    copy_fixture("gpt2", dir, sizeof dir);
    edit_config(dir, untie);
    expect_failure(dir, HK_ERR_NOT_FOUND, (const char *const[]){"lm_head.weight", NULL});
}

static void test_unknown_activation(void **s) {
    (void)s;
    char dir[512];
    copy_fixture("gpt2", dir, sizeof dir);
    edit_config(dir, bad_act);
    expect_failure(dir, HK_ERR_UNSUPPORTED,
                   (const char *const[]){"activation_function", "swishy", NULL});
}

static void test_heads_do_not_divide(void **s) {
    (void)s;
    char dir[512];
    copy_fixture("llama", dir, sizeof dir);
    edit_config(dir, kv_heads_3);
    expect_failure(dir, HK_ERR_FORMAT, (const char *const[]){"config.json", "n_kv_heads", NULL});
}

static void test_malformed_json(void **s) {
    (void)s;
    char dir[512], path[1024];
    copy_fixture("gpt2", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_all(path, "{\"model_type\": \"gpt2\", \"n_layer\": 2,, }", 40);
    expect_failure(dir, HK_ERR_FORMAT, (const char *const[]){"config.json", NULL});
}

static void test_missing_folder_and_weights(void **s) {
    (void)s;
    char dir[512], path[1024];
    expect_failure("/nonexistent/model", HK_ERR_NOT_FOUND,
                   (const char *const[]){"/nonexistent/model", NULL});
    copy_fixture("gpt2", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(unlink(path), 0);
    expect_failure(dir, HK_ERR_NOT_FOUND, (const char *const[]){"model.safetensors", NULL});
}

static void test_sharded_missing_shard(void **s) {
    (void)s;
    char dir[512], cmd[1200];
    copy_fixture("llama", dir, sizeof dir);
    /* the llama fixture is sharded: remove its last shard */
    snprintf(cmd, sizeof cmd, "cd '%s' && rm \"$(ls model-*.safetensors | tail -n 1)\"", dir);
    assert_int_equal(system(cmd), 0);
    expect_failure(dir, HK_ERR_NOT_FOUND, (const char *const[]){"model-0000", NULL});
}

static int setup(void **s) {
    (void)s;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/hk_load_errors_XXXXXX");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void **s) {
    (void)s;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_mismatch),       cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_unknown_architecture), cmocka_unit_test(test_missing_field),
        cmocka_unit_test(test_wrong_field_type),     cmocka_unit_test(test_untied_without_lm_head),
        cmocka_unit_test(test_unknown_activation),   cmocka_unit_test(test_heads_do_not_divide),
        cmocka_unit_test(test_malformed_json),       cmocka_unit_test(test_missing_folder_and_weights),
        cmocka_unit_test(test_sharded_missing_shard), cmocka_unit_test(test_moe_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
