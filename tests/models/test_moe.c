/* Mixture of experts: the router's hook points can be modified by a callback, and the
 * forward routes by what they hold afterwards — banning an expert (its router logit -inf),
 * forcing one (rewriting hook_expert_indices and hook_topk_weights), and bad expert ids are
 * errors naming the hook. Values against transformers: test_logits / test_tl_parity
 * (mixtral, qwen3_moe, olmoe). */
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

#define T 20
#define BANNED 3

static const int32_t *tokens(void) {
    static int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)(1 + (i * 37) % 290);
    return ids;
}

static hk_hook_result ban(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c, (void)u;
    float *x = t->data; /* [1, T, n_experts] */
    for (int64_t i = 0; i < t->shape[1]; i++) x[i * t->shape[2] + BANNED] = -INFINITY;
    return HK_HOOK_CONTINUE;
}

typedef struct {
    int seen;      /* the banned expert among the chosen ids */
    int calls;
    double mix_sum_err;
} watch;

static hk_hook_result watch_ids(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c;
    watch *w = u;
    const float *x = t->data;
    for (int64_t i = 0; i < t->shape[1] * t->shape[2]; i++) w->seen += x[i] == (float)BANNED;
    w->calls++;
    return HK_HOOK_CONTINUE;
}

static hk_hook_result watch_mix(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c;
    watch *w = u;
    const float *x = t->data; /* mixtral renormalizes: each row sums to 1 */
    for (int64_t i = 0; i < t->shape[1]; i++) {
        double s = 0;
        for (int64_t j = 0; j < t->shape[2]; j++) s += x[i * t->shape[2] + j];
        w->mix_sum_err = fmax(w->mix_sum_err, fabs(s - 1.0));
    }
    return HK_HOOK_CONTINUE;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void test_ban_expert(void **s) {
    (void)s;
    hk_model *m = fixture_model("mixtral");
    const int64_t V = hk_model_vocab_size(m);
    float *plain = calloc((size_t)(T * V), sizeof *plain), *banned = calloc((size_t)(T * V), 4);
    assert_int_equal(hk_model_run(m, NULL, tokens(), NULL, 1, T, plain), HK_OK);
    /* without the ban the expert is chosen somewhere */
    watch before = {0};
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_expert_indices", watch_ids, &before, NULL),
                     HK_OK);
    assert_int_equal(hk_model_run(m, h, tokens(), NULL, 1, T, banned), HK_OK);
    assert_true(before.seen > 0);
    hk_hooks_free(h);

    watch after = {0};
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_router_logits", ban, NULL, NULL), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_expert_indices", watch_ids, &after, NULL),
                     HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_topk_weights", watch_mix, &after, NULL),
                     HK_OK);
    assert_int_equal(hk_model_run(m, h, tokens(), NULL, 1, T, banned), HK_OK);
    assert_int_equal(after.calls, 2); /* both layers */
    assert_int_equal(after.seen, 0);
    assert_true(after.mix_sum_err < 1e-6);
    assert_true(max_diff(plain, banned, (size_t)(T * V)) > 1e-3); /* the ban changed the run */
    hk_hooks_free(h);
    free(plain), free(banned);
    hk_model_free(m);
}

static hk_hook_result ban_all(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c, (void)u;
    float *x = t->data;
    for (int64_t i = 0; i < t->shape[1] * t->shape[2]; i++) x[i] = -INFINITY;
    return HK_HOOK_CONTINUE;
}

static hk_hook_result expect_zero(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c, (void)u;
    const float *x = t->data; /* hook_mlp_out [1, T, d_model] */
    for (int64_t i = 0; i < t->shape[1] * t->shape[2]; i++) assert_true(x[i] == 0.0f);
    return HK_HOOK_CONTINUE;
}

/* Banning every expert leaves the MLP's output 0 (weights all 0, no 0/0 renormalization). */
static void test_ban_all_experts(void **s) {
    (void)s;
    hk_model *m = fixture_model("mixtral");
    const int64_t V = hk_model_vocab_size(m);
    float *logits = calloc((size_t)(T * V), sizeof *logits);
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_router_logits", ban_all, NULL, NULL),
                     HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.hook_mlp_out", expect_zero, NULL, NULL), HK_OK);
    assert_int_equal(hk_model_run(m, h, tokens(), NULL, 1, T, logits), HK_OK);
    for (int64_t i = 0; i < T * V; i++) assert_true(isfinite(logits[i]));
    hk_hooks_free(h);
    free(logits);
    hk_model_free(m);
}

/* Ties: router logits made equal for experts 5 and 2 (above the rest) pick both, the lower id
 * first, with equal weights. */
static hk_hook_result tie(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c, (void)u;
    float *x = t->data;
    for (int64_t i = 0; i < t->shape[1]; i++)
        for (int64_t e = 0; e < t->shape[2]; e++)
            x[i * t->shape[2] + e] = e == 2 || e == 5 ? 3.0f : -1.0f;
    return HK_HOOK_CONTINUE;
}

static hk_hook_result expect_tie(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)u;
    const float *x = t->data; /* [1, T, 2] */
    const bool ids = strstr(c->name, "indices") != NULL;
    for (int64_t i = 0; i < t->shape[1]; i++) {
        if (ids) {
            assert_true(x[2 * i] == 2.0f);
            assert_true(x[2 * i + 1] == 5.0f);
        } else {
            assert_true(x[2 * i] == x[2 * i + 1]);
            assert_true(fabsf(x[2 * i] - 0.5f) < 1e-6f);
        }
    }
    return HK_HOOK_CONTINUE;
}

static void test_routing_ties(void **s) {
    (void)s;
    hk_model *m = fixture_model("mixtral");
    float *logits = calloc((size_t)(T * hk_model_vocab_size(m)), sizeof *logits);
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_router_logits", tie, NULL, NULL), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_expert_indices", expect_tie, NULL, NULL),
                     HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_topk_weights", expect_tie, NULL, NULL),
                     HK_OK);
    assert_int_equal(hk_model_run(m, h, tokens(), NULL, 1, T, logits), HK_OK);
    hk_hooks_free(h);
    free(logits);
    hk_model_free(m);
}

/* Every token through expert `forced` alone: hook_mlp_out is that expert's output, so forcing
 * it through the ids and through the router logits (a huge logit) must agree. */
typedef struct {
    int forced;
    float bad; /* > 0: write this id instead (an error case) */
} force;

static hk_hook_result force_ids(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c;
    const force *f = u;
    float *x = t->data; /* [1, T, k] */
    for (int64_t i = 0; i < t->shape[1] * t->shape[2]; i++)
        x[i] = f->bad > 0 ? f->bad : (float)f->forced;
    return HK_HOOK_CONTINUE;
}

static hk_hook_result force_mix(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c, (void)u;
    float *x = t->data; /* all weight on slot 0 */
    for (int64_t i = 0; i < t->shape[1]; i++)
        for (int64_t j = 0; j < t->shape[2]; j++) x[i * t->shape[2] + j] = j == 0 ? 1.0f : 0.0f;
    return HK_HOOK_CONTINUE;
}

static hk_hook_result force_logits(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c;
    const force *f = u;
    float *x = t->data;
    for (int64_t i = 0; i < t->shape[1]; i++) x[i * t->shape[2] + f->forced] = 1e4f;
    return HK_HOOK_CONTINUE;
}

static void test_force_expert(void **s) {
    (void)s;
    hk_model *m = fixture_model("mixtral");
    const int64_t V = hk_model_vocab_size(m);
    float *a = calloc((size_t)(T * V), sizeof *a), *b = calloc((size_t)(T * V), sizeof *b);
    force f = {.forced = 5};
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_expert_indices", force_ids, &f, NULL),
                     HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_topk_weights", force_mix, NULL, NULL),
                     HK_OK);
    assert_int_equal(hk_model_run(m, h, tokens(), NULL, 1, T, a), HK_OK);
    hk_hooks_free(h);
    /* a router logit of 1e4: softmax puts weight 1 on the expert, 0 on the rest */
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.mlp.hook_router_logits", force_logits, &f, NULL),
                     HK_OK);
    assert_int_equal(hk_model_run(m, h, tokens(), NULL, 1, T, b), HK_OK);
    hk_hooks_free(h);
    assert_true(max_diff(a, b, (size_t)(T * V)) < 1e-5);
    /* an id outside 0..n_experts-1 is an error that names the hook */
    f.bad = 8.0f;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.1.mlp.hook_expert_indices", force_ids, &f, NULL),
                     HK_OK);
    assert_int_equal(hk_model_run(m, h, tokens(), NULL, 1, T, a), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "blocks.1.mlp.hook_expert_indices"));
    hk_hooks_free(h);
    free(a), free(b);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ban_expert),
        cmocka_unit_test(test_force_expert),
        cmocka_unit_test(test_ban_all_experts),
        cmocka_unit_test(test_routing_ties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
