/* hk_model_run_last: the head at the last valid position of each sequence only — the same
 * logits as that row of hk_model_run, unembed.hook_out fired with [batch, 1, vocab], and every
 * other hook as in hk_model_run. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"

typedef struct {
    int calls;
    int ndim;
    int64_t shape[4];
    int64_t pos_offset;
} seen;

static hk_hook_result record(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    seen *s = user;
    s->calls++;
    s->ndim = act->ndim;
    for (int d = 0; d < act->ndim && d < 4; d++) s->shape[d] = act->shape[d];
    s->pos_offset = ctx->pos_offset;
    return HK_HOOK_CONTINUE;
}

static void test_last_rows_match_full_run(void **state) {
    (void)state;
    const char *fixtures[] = {"llama", "gpt2", "mistral"};
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        hk_model *m = fixture_model(fixtures[f]);
        const int64_t V = hk_model_vocab_size(m), B = 2, T = 7;
        const int32_t tokens[2 * 7] = {5, 9, 31, 2, 77, 12, 40, 3, 8, 100, 6, 1, 0, 0};
        const int64_t lengths[2] = {7, 5}; /* the second sequence is right-padded */
        float *all = malloc((size_t)(B * T * V) * sizeof *all); /* [batch, seq, vocab] */
        float *last = malloc((size_t)(B * V) * sizeof *last);   /* [batch, vocab] */
        assert_non_null(all);
        assert_non_null(last);
        hk_hooks *h = NULL;
        EXPECT_OK(hk_hooks_new(m, &h));
        seen out = {0}, resid = {0};
        EXPECT_OK(hk_hooks_add(h, "unembed.hook_out", record, &out, NULL));
        EXPECT_OK(hk_hooks_add(h, "blocks.0.hook_resid_post", record, &resid, NULL));
        EXPECT_OK(hk_model_run(m, NULL, tokens, lengths, B, T, all));
        EXPECT_OK(hk_model_run_last(m, h, tokens, lengths, B, T, last));
        for (int64_t b = 0; b < B; b++) {
            const float *want = all + (b * T + lengths[b] - 1) * V;
            for (int64_t v = 0; v < V; v++) assert_true(fabsf(want[v] - last[b * V + v]) <= 1e-5f);
        }
        assert_int_equal(out.calls, 1);
        assert_int_equal(out.ndim, 3);
        assert_int_equal(out.shape[0], B);
        assert_int_equal(out.shape[1], 1);
        assert_int_equal(out.shape[2], V);
        /* the blocks see every position, as in hk_model_run */
        assert_int_equal(resid.calls, 1);
        assert_int_equal(resid.shape[1], T);
        hk_hooks_free(h);
        free(all);
        free(last);
        hk_model_free(m);
    }
}

static void test_errors(void **state) {
    (void)state;
    hk_model *m = fixture_model("llama");
    float logits[512];
    const int32_t tokens[2] = {1, 2};
    assert_int_equal(hk_model_run_last(NULL, NULL, tokens, NULL, 1, 2, logits),
                     HK_ERR_INVALID_ARG);
    assert_int_equal(hk_model_run_last(m, NULL, tokens, NULL, 1, 0, logits), HK_ERR_INVALID_ARG);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_rows_match_full_run),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
