/* The hook API on the fixtures: registration by name, glob and filter, order, removal,
 * scopes, in-place modification flowing on, stop and error, and the materialized attention
 * path (scores/pattern hooked) agreeing with the tiled kernel. */
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

#define B 2
#define T 9

static const int32_t tokens[B * T] = {5, 17, 3, 99, 42, 8, 1, 250, 7,
                                      9, 9, 120, 4, 33, 0, 0, 0, 0};
static const int64_t lengths[B] = {T, 5};

static float *run(hk_model *m, hk_hooks *h, hk_status want) {
    float *logits = calloc((size_t)(B * T * hk_model_vocab_size(m)), sizeof *logits);
    hk_status st = hk_model_run(m, h, tokens, lengths, B, T, logits);
    if (st != want) fail_msg("run: %s (%s), wanted %s", hk_status_name(st), hk_last_error(),
                             hk_status_name(want));
    return logits;
}

/* ---- callbacks ---- */

typedef struct {
    char names[256][64];
    int n;
} call_log;

static hk_hook_result log_name(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)t;
    call_log *log = user;
    if (log->n < 256) snprintf(log->names[log->n++], 64, "%s", ctx->name);
    return HK_HOOK_CONTINUE;
}

static hk_hook_result tag_a(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)t, (void)c;
    strcat(u, "a");
    return HK_HOOK_CONTINUE;
}
static hk_hook_result tag_b(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)t, (void)c;
    strcat(u, "b");
    return HK_HOOK_CONTINUE;
}

static hk_hook_result zero_all(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c, (void)u;
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    memset(t->data, 0, (size_t)n * sizeof(float)); /* contiguous views */
    return HK_HOOK_CONTINUE;
}

static hk_hook_result noop(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)t, (void)c, (void)u;
    return HK_HOOK_CONTINUE;
}

static hk_hook_result stop(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)t, (void)c;
    (*(int *)u)++;
    return HK_HOOK_STOP;
}

static hk_hook_result fail_cb(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)t, (void)c, (void)u;
    hk_hook_error("probe ran out of %s", "patience");
    return HK_HOOK_ERROR;
}

/* everything but the split attention inputs, which reroute ln1 (tested in tl_parity) */
static bool not_split_input(const char *name, void *u) {
    (void)u;
    return !strstr(name, "_input") && !strstr(name, "hook_attn_in");
}

static bool only_layer1_mlp(const char *name, void *u) {
    (void)u;
    return strncmp(name, "blocks.1.mlp.", 13) == 0;
}

/* ---- tests ---- */

static void test_points_listed(void **s) {
    (void)s;
    hk_model *m = fixture_model("llama");
    size_t n = hk_model_hook_count(m);
    assert_true(n > 40);
    const hk_hook_point *p0 = hk_model_hook_at(m, 0);
    assert_string_equal(p0->name, "hook_embed");
    assert_null(hk_model_hook_at(m, n));
    bool saw_k = false;
    for (size_t i = 0; i < n; i++) {
        const hk_hook_point *p = hk_model_hook_at(m, i);
        if (strcmp(p->name, "blocks.1.attn.hook_k") == 0) {
            saw_k = true;
            assert_int_equal(p->ndim, 4);
            assert_int_equal(p->shape[2], 2); /* GQA: n_kv_heads */
        }
        assert_null(strstr(p->name, "hook_pos_embed")); /* rotary: no learned positions */
    }
    assert_true(saw_k);
    hk_model_free(m);
}

static void test_every_point_fires_in_order(void **s) {
    (void)s;
    const char *families[] = {"gpt2", "llama", "mistral", "qwen2", "phi3", "neox", "qwen3",
                              "olmo2", "gemma2", "gemma3", "mixtral", "qwen3_moe", "qwen2_moe",
                              "olmoe"};
    for (size_t f = 0; f < sizeof families / sizeof *families; f++) {
        hk_model *m = fixture_model(families[f]);
        hk_hooks *h;
        call_log log = {0};
        assert_int_equal(hk_hooks_new(m, &h), HK_OK);
        assert_int_equal(hk_hooks_add_filter(h, not_split_input, NULL, log_name, &log, NULL),
                         HK_OK);
        free(run(m, h, HK_OK));
        /* every point fired once (patterns once per sequence), in table order; the filter
         * also requests the optional attn.hook_result and hook_mlp_in */
        size_t k = 0;
        for (size_t i = 0; i < hk_model_hook_count(m); i++) {
            const hk_hook_point *p = hk_model_hook_at(m, i);
            if (!not_split_input(p->name, NULL)) continue;
            int times = strstr(p->name, "hook_pattern") || strstr(p->name, "hook_attn_scores")
                            ? B : 1;
            for (int t = 0; t < times; t++, k++) {
                if (k >= (size_t)log.n) fail_msg("%s: %s never fired", families[f], p->name);
                if (strcmp(log.names[k], p->name) != 0 &&
                    !(strstr(p->name, "hook_pattern") || strstr(p->name, "hook_attn_scores")))
                    fail_msg("%s: fired %s, expected %s", families[f], log.names[k], p->name);
            }
        }
        assert_int_equal(k, (size_t)log.n);
        hk_hooks_free(h);
        hk_model_free(m);
    }
}

static void test_unknown_names_are_errors(void **s) {
    (void)s;
    hk_model *m = fixture_model("gpt2");
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.0.hook_resid_pree", noop, NULL, NULL),
                     HK_ERR_NOT_FOUND);
    assert_non_null(strstr(hk_last_error(), "blocks.0.hook_resid_pree"));
    assert_int_equal(hk_hooks_add(h, "blocks.*.attn.hook_rot_q", noop, NULL, NULL),
                     HK_ERR_NOT_FOUND); /* GPT-2 has no rotary */
    assert_int_equal(hk_hooks_add(h, "blocks.7.hook_resid_post", noop, NULL, NULL),
                     HK_ERR_NOT_FOUND); /* 2 layers */
    assert_int_equal(hk_hooks_count(h), 0);
    hk_hooks_free(h);
    hk_model_free(m);
}

static void test_order_remove_scope_filter(void **s) {
    (void)s;
    hk_model *m = fixture_model("gpt2");
    hk_hooks *h;
    char order[64] = "";
    hk_hook_handle ha, hb;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.0.hook_resid_post", tag_a, order, &ha), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.0.hook_resid_post", tag_b, order, &hb), HK_OK);
    free(run(m, h, HK_OK));
    assert_string_equal(order, "ab");
    assert_int_equal(hk_hooks_remove(h, ha), HK_OK);
    assert_int_equal(hk_hooks_remove(h, ha), HK_ERR_NOT_FOUND);
    order[0] = '\0';
    free(run(m, h, HK_OK));
    assert_string_equal(order, "b");

    size_t mark = hk_hooks_scope_begin(h);
    call_log log = {0};
    assert_int_equal(hk_hooks_add_filter(h, only_layer1_mlp, NULL, log_name, &log, NULL), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.hook_attn_out", tag_a, order, NULL), HK_OK);
    assert_int_equal(hk_hooks_count(h), 3);
    free(run(m, h, HK_OK));
    assert_int_equal(log.n, 2); /* mlp.hook_pre, mlp.hook_post (GPT-2: not gated) */
    for (int i = 0; i < log.n; i++) assert_non_null(strstr(log.names[i], "blocks.1.mlp."));
    hk_hooks_scope_end(h, mark);
    assert_int_equal(hk_hooks_count(h), 1);
    hk_hooks_free(h);
    hk_model_free(m);
}

static void test_modification_flows(void **s) {
    (void)s;
    hk_model *m = fixture_model("llama");
    size_t n = (size_t)(B * T * hk_model_vocab_size(m));
    float *base = run(m, NULL, HK_OK);
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    /* a no-op callback everywhere (materialized patterns included) changes nothing */
    assert_int_equal(hk_hooks_add(h, "*", noop, NULL, NULL), HK_OK);
    float *same = run(m, h, HK_OK);
    float d = max_abs_diff(base, same, n);
    print_message("no-op hooks everywhere: max |diff| %g\n", (double)d);
    assert_true(d <= 2e-5f);
    hk_hooks_scope_end(h, 0);
    /* zeroing layer 1's MLP output changes logits; zeroing the unembed output zeroes them */
    assert_int_equal(hk_hooks_add(h, "blocks.1.hook_mlp_out", zero_all, NULL, NULL), HK_OK);
    float *ablated = run(m, h, HK_OK);
    assert_true(max_abs_diff(base, ablated, n) > 1e-3f);
    assert_int_equal(hk_hooks_add(h, "unembed.hook_out", zero_all, NULL, NULL), HK_OK);
    float *zero = run(m, h, HK_OK);
    for (size_t i = 0; i < n; i++) assert_true(zero[i] == 0.0f);
    free(base), free(same), free(ablated), free(zero);
    hk_hooks_free(h);
    hk_model_free(m);
}

/* Zero the pattern at every position: z and hence attn_out become the V-free zero. Same as
 * zeroing hook_z. */
static void test_pattern_edit_equals_z_edit(void **s) {
    (void)s;
    hk_model *m = fixture_model("mistral");
    size_t n = (size_t)(B * T * hk_model_vocab_size(m));
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.0.attn.hook_pattern", zero_all, NULL, NULL), HK_OK);
    float *a = run(m, h, HK_OK);
    hk_hooks_scope_end(h, 0);
    assert_int_equal(hk_hooks_add(h, "blocks.0.attn.hook_z", zero_all, NULL, NULL), HK_OK);
    float *b = run(m, h, HK_OK);
    assert_true(max_abs_diff(a, b, n) <= 1e-5f);
    free(a), free(b);
    hk_hooks_free(h);
    hk_model_free(m);
}

static void test_result_hook_sums_to_attn_out(void **s) {
    (void)s;
    const char *families[] = {"gpt2", "neox", "qwen2"};
    for (int f = 0; f < 3; f++) {
        hk_model *m = fixture_model(families[f]);
        size_t n = (size_t)(B * T * hk_model_vocab_size(m));
        float *base = run(m, NULL, HK_OK);
        hk_hooks *h;
        assert_int_equal(hk_hooks_new(m, &h), HK_OK);
        assert_int_equal(hk_hooks_add(h, "blocks.*.attn.hook_result", noop, NULL, NULL), HK_OK);
        float *with = run(m, h, HK_OK);
        assert_true(max_abs_diff(base, with, n) <= 2e-5f);
        free(base), free(with);
        hk_hooks_free(h);
        hk_model_free(m);
    }
}

static void test_stop_and_error(void **s) {
    (void)s;
    hk_model *m = fixture_model("neox");
    hk_hooks *h;
    int stops = 0;
    call_log log = {0};
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.0.hook_resid_post", stop, &stops, NULL), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.1.*", log_name, &log, NULL), HK_OK);
    free(run(m, h, HK_STOPPED));
    assert_int_equal(stops, 1);
    assert_int_equal(log.n, 0); /* nothing after the stop ran */
    hk_hooks_scope_end(h, 0);
    assert_int_equal(hk_hooks_add(h, "blocks.1.mlp.hook_post", fail_cb, NULL, NULL), HK_OK);
    free(run(m, h, HK_ERR_HOOK));
    assert_non_null(strstr(hk_last_error(), "blocks.1.mlp.hook_post"));
    assert_non_null(strstr(hk_last_error(), "ran out of patience"));
    hk_hooks_free(h);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_points_listed),
        cmocka_unit_test(test_every_point_fires_in_order),
        cmocka_unit_test(test_unknown_names_are_errors),
        cmocka_unit_test(test_order_remove_scope_filter),
        cmocka_unit_test(test_modification_flows),
        cmocka_unit_test(test_pattern_edit_equals_z_edit),
        cmocka_unit_test(test_result_hook_sums_to_attn_out),
        cmocka_unit_test(test_stop_and_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
