/* The experiments under the caller's hooks (what `--plugin` hands them): hk_patch_opts.hooks,
 * hk_ablate_opts.hooks, hk_logit_lens_hooked, hk_dla_hooked. A hook that zeroes head 1 of
 * layer 0 runs in every forward, before the experiment's own hooks: patching or ablating that
 * head then changes nothing, its attribution is 0, and the experiment leaves the caller's
 * registrations as it found them. */
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
#include "test_util.h"

typedef struct {
    hk_model *m;
    hk_ckpt *ref;
    int32_t *clean, *corrupted, *answer, *wrong;
    hk_prompt_set set; /* corrupted */
    hk_hooks *h;       /* the caller's: zero head 1 of layer 0 */
    long fires;
} fx;

static hk_hook_result zero_head1(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    ((fx *)user)->fires++;
    float *z = t->data; /* [batch, pos, head, d_head], contiguous */
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++)
            memset(z + b * t->stride[0] + p * t->stride[1] + 1 * t->stride[2], 0,
                   (size_t)t->shape[3] * sizeof *z);
    return HK_HOOK_CONTINUE;
}

static int32_t *ids(hk_ckpt *c, const char *name, int64_t *rows, int64_t *cols) {
    const hk_st_tensor *t = hk_ckpt_find(c, name);
    if (!t) fail_msg("patching.safetensors has no %s", name);
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    if (rows) *rows = t->shape[0];
    if (cols) *cols = t->ndim > 1 ? t->shape[1] : 1;
    return ids_from_i64(t->data, n);
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    f->m = fixture_model("gpt2");
    f->ref = fixture_ckpt("gpt2", "patching.safetensors");
    int64_t n, T;
    f->clean = ids(f->ref, "clean_ids", &n, &T);
    f->corrupted = ids(f->ref, "corrupted_ids", NULL, NULL);
    f->answer = ids(f->ref, "answer", NULL, NULL);
    f->wrong = ids(f->ref, "wrong", NULL, NULL);
    f->set = (hk_prompt_set){n, T, f->corrupted, f->answer, f->wrong};
    EXPECT_OK(hk_hooks_new(f->m, &f->h));
    EXPECT_OK(hk_hooks_add(f->h, "blocks.0.attn.hook_z", zero_head1, f, NULL));
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    hk_hooks_free(f->h);
    free(f->clean), free(f->corrupted), free(f->answer), free(f->wrong);
    hk_ckpt_close(f->ref);
    hk_model_free(f->m);
    free(f);
    return 0;
}

static const hk_sweep_spec head_out = {.point = "attn.hook_z", .per_head = true, .layer = -1};

static void test_patch_under_hooks(void **state) {
    fx *f = *state;
    hk_patch_opts o = {.clean = f->clean, .clean_seq = f->set.seq, .hooks = f->h};
    hk_sweep_result r, plain;
    f->fires = 0;
    EXPECT_OK(hk_patch_sweep(f->m, &f->set, &o, &head_out, &r));
    assert_true(f->fires > 0);
    assert_int_equal(hk_hooks_count(f->h), 1); /* the sweep's own registrations are gone */
    o.hooks = NULL;
    EXPECT_OK(hk_patch_sweep(f->m, &f->set, &o, &head_out, &plain));
    /* [layer, head]: patching the zeroed head puts the clean zeros over corrupted zeros */
    assert_true(fabsf(r.change[1]) < 1e-5f);
    assert_true(fabsf(plain.change[1]) > 1e-2f);
    /* the baseline is the corrupted metric of the ablated model */
    float want;
    EXPECT_OK(hk_prompt_metric(f->m, f->h, &f->set, &want));
    assert_true(fabsf(r.baseline - want) < 1e-5f);
    assert_true(fabsf(r.baseline - plain.baseline) > 1e-3f);
    hk_sweep_result_free(&r);
    hk_sweep_result_free(&plain);
}

static void test_ablate_under_hooks(void **state) {
    fx *f = *state;
    const hk_ablate_mode modes[2] = {HK_ABLATE_ZERO, HK_ABLATE_MEAN};
    for (int i = 0; i < 2; i++) {
        /* mean: the reference runs are under the hooks too, so head 1's mean is 0 */
        hk_ablate_opts o = {.mode = modes[i], .ref = f->clean, .n_ref = f->set.n_prompts,
                            .ref_seq = f->set.seq, .hooks = f->h};
        hk_sweep_result r;
        EXPECT_OK(hk_ablate_sweep(f->m, &f->set, &o, &head_out, &r));
        assert_true(fabsf(r.change[1]) < 1e-5f);
        assert_true(fabsf(r.change[0]) > 1e-3f);
        assert_int_equal(hk_hooks_count(f->h), 1);
        hk_sweep_result_free(&r);
    }
}

static void test_dla_and_lens_under_hooks(void **state) {
    fx *f = *state;
    hk_dla_result d, plain;
    EXPECT_OK(hk_dla_hooked(f->m, f->h, &f->set, &d));
    EXPECT_OK(hk_dla(f->m, &f->set, &plain));
    const int64_t np = d.n_prompts;
    assert_string_equal(d.labels[1], "L0H1");
    for (int64_t i = 0; i < np; i++) {
        assert_true(d.values[1 * np + i] == 0.0f);
        assert_true(plain.values[1 * np + i] != 0.0f);
    }
    assert_int_equal(hk_hooks_count(f->h), 1);
    hk_dla_result_free(&d);
    hk_dla_result_free(&plain);
    /* the lens: rows after layer 0 change, the embedding row does not */
    hk_lens_result a, b;
    const int64_t T = f->set.seq;
    EXPECT_OK(hk_logit_lens_hooked(f->m, f->h, f->corrupted, T, 3, &a));
    EXPECT_OK(hk_logit_lens(f->m, f->corrupted, T, 3, &b));
    assert_memory_equal(a.top_logits, b.top_logits, (size_t)(T * 3) * sizeof(float));
    bool differs = false;
    for (int64_t i = T * 3; i < a.n_rows * T * 3; i++) differs |= a.top_logits[i] != b.top_logits[i];
    assert_true(differs);
    hk_lens_result_free(&a);
    hk_lens_result_free(&b);
}

/* Hooks made for another model are refused, naming the problem. */
static void test_foreign_hooks(void **state) {
    fx *f = *state;
    hk_model *other = fixture_model("llama");
    hk_hooks *h;
    EXPECT_OK(hk_hooks_new(other, &h));
    hk_patch_opts o = {.clean = f->clean, .clean_seq = f->set.seq, .hooks = h};
    hk_sweep_result r;
    expect_error(hk_patch_sweep(f->m, &f->set, &o, &head_out, &r), HK_ERR_INVALID_ARG,
                 "another model", NULL, NULL);
    hk_hooks_free(h);
    hk_model_free(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_patch_under_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ablate_under_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dla_and_lens_under_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_hooks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
