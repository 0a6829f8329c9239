/* Sessions: feeding a prompt in chunks through the KV cache (rolling buffers for sliding
 * windows) gives the logits and every hook activation of one forward over the whole prompt
 * (atol 1e-4), for every family; hooks fire per chunk with the position offset set. */
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

#define ATOL 1e-4
#define MAX_ACTS 512

typedef struct {
    char name[64];
    int ndim;
    int64_t shape[HK_MAX_DIMS];
    float *data;
} act;

typedef struct {
    act acts[MAX_ACTS];
    int n;
    bool capture;   /* one-shot run: store; chunked run: compare */
    double worst;
    char worst_name[64];
    int compared;
    int64_t chunk_offsets_seen;
} recorder;

static size_t numel(const hk_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

static act *find(recorder *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->acts[i].name, name) == 0) return &r->acts[i];
    return NULL;
}

static bool is_attn(const char *name) {
    return strstr(name, "hook_pattern") || strstr(name, "hook_attn_scores");
}

static hk_hook_result record(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    recorder *r = user;
    if (r->capture) {
        assert_true(r->n < MAX_ACTS);
        act *a = &r->acts[r->n++];
        snprintf(a->name, sizeof a->name, "%s", ctx->name);
        a->ndim = t->ndim;
        memcpy(a->shape, t->shape, sizeof a->shape);
        a->data = malloc(numel(t) * sizeof(float));
        memcpy(a->data, t->data, numel(t) * sizeof(float));
        return HK_HOOK_CONTINUE;
    }
    act *a = find(r, ctx->name);
    if (!a) fail_msg("%s fired in chunks but not in the one-shot forward", ctx->name);
    if (ctx->pos_offset > 0) r->chunk_offsets_seen++;
    const float *x = t->data;
    size_t n = numel(t);
    for (size_t i = 0; i < n; i++) {
        size_t ri;
        if (is_attn(ctx->name)) { /* [1, h, qc, sk] at (pos_offset, key_offset) */
            int64_t sk = t->shape[3], qc = t->shape[2];
            int64_t j = (int64_t)i % sk, q = ((int64_t)i / sk) % qc, h = (int64_t)i / (sk * qc);
            ri = (size_t)((h * a->shape[2] + ctx->pos_offset + q) * a->shape[3] +
                          ctx->key_offset + j);
        } else { /* [1, n, inner...] at pos_offset */
            size_t inner = n / (size_t)t->shape[1];
            ri = (size_t)ctx->pos_offset * inner + i;
        }
        note_worst(abs_diff_inf(x[i], a->data[ri]), ctx->name, &r->worst, r->worst_name,
                   sizeof r->worst_name);
    }
    r->compared++;
    return HK_HOOK_CONTINUE;
}

static bool not_split_input(const char *name, void *u) {
    (void)u;
    return !strstr(name, "_input") && !strstr(name, "hook_attn_in");
}

static void check_chunked(const char *family, int64_t T, int64_t chunk) {
    hk_model *m = fixture_model(family);
    int64_t V = hk_model_vocab_size(m);
    int32_t *tokens = malloc((size_t)T * sizeof *tokens);
    for (int64_t t = 0; t < T; t++) tokens[t] = (int32_t)((t * 37 + 11) % V);
    recorder *rec = calloc(1, sizeof *rec);
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add_filter(h, not_split_input, NULL, record, rec, NULL), HK_OK);

    float *full = malloc((size_t)(T * V) * sizeof *full);
    rec->capture = true;
    if (hk_model_run(m, h, tokens, NULL, 1, T, full) != HK_OK) fail_msg("%s", hk_last_error());

    rec->capture = false;
    hk_session *s;
    assert_int_equal(hk_session_new(m, 1, T, &s), HK_OK);
    float *part = malloc((size_t)(chunk * V) * sizeof *part);
    double worst_logit = 0;
    for (int64_t p = 0; p < T; p += chunk) {
        int64_t n = T - p < chunk ? T - p : chunk;
        if (hk_session_feed(s, h, tokens + p, n, false, part) != HK_OK)
            fail_msg("%s: feed at %lld: %s", family, (long long)p, hk_last_error());
        for (int64_t i = 0; i < n * V; i++)
            worst_logit = fmax(worst_logit, abs_diff_inf(part[i], full[p * V + i]));
    }
    assert_int_equal(hk_session_pos(s), T);
    print_message("%s T=%lld chunk=%lld: logits max |diff| %.3g; %d activations, max |diff| "
                  "%.3g (%s)\n",
                  family, (long long)T, (long long)chunk, worst_logit, rec->compared,
                  rec->worst, rec->worst_name);
    assert_true(worst_logit <= ATOL);
    assert_true(rec->worst <= ATOL);
    if (chunk < T) assert_true(rec->chunk_offsets_seen > 0);

    /* decoding one more token than max_len is refused */
    assert_int_equal(hk_session_feed(s, NULL, tokens, 1, true, part), HK_ERR_INVALID_ARG);
    hk_session_free(s);
    for (int i = 0; i < rec->n; i++) free(rec->acts[i].data);
    free(rec), free(part), free(full), free(tokens);
    hk_hooks_free(h);
    hk_model_free(m);
}

static void test_chunked_all_families(void **st) {
    (void)st;
    const char *fam[] = {"gpt2", "llama", "mistral", "qwen2", "phi3", "neox", "qwen3",
                         "olmo2", "gemma2", "gemma3", "mixtral", "qwen3_moe", "qwen2_moe",
                         "olmoe"};
    const int64_t chunks[] = {1, 3, 7, 20};
    for (size_t f = 0; f < sizeof fam / sizeof *fam; f++)
        for (int c = 0; c < 4; c++) check_chunked(fam[f], 20, chunks[c]);
}

/* Mistral fixture: window 5; prompts of 4x and 8x the window go through the rolling buffer. */
static void test_mistral_long_prompt(void **st) {
    (void)st;
    check_chunked("mistral", 40, 2);
    check_chunked("mistral", 40, 6);
    check_chunked("mistral", 40, 13);
}

static void test_rolling_cache_is_window_sized(void **st) {
    (void)st;
    hk_model *m = fixture_model("mistral");
    hk_session *a, *b;
    assert_int_equal(hk_session_new(m, 1, 40, &a), HK_OK);
    assert_int_equal(hk_session_new(m, 1, 4000, &b), HK_OK);
    /* every mistral layer slides: the cache does not grow with max_len */
    assert_int_equal(hk_session_cache_bytes(a), hk_session_cache_bytes(b));
    hk_session_free(a);
    hk_session_free(b);
    assert_int_equal(hk_session_new(m, 0, 10, &a), HK_ERR_INVALID_ARG);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunked_all_families),
        cmocka_unit_test(test_mistral_long_prompt),
        cmocka_unit_test(test_rolling_cache_is_window_sized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
