/* Generation and sampling: hk_generate's greedy ids equal transformers' greedy generate() on
 * every fixture family (tests/fixtures/<name>/generate.safetensors, made by
 * make_generate_references.py), whole-prompt and chunked prefill; hk_sample's options
 * (validation, ties, seeds, the distribution it draws from, top-k / top-p exclusion as
 * Hugging Face's warpers define it); hooks at every decode step; steering during generation
 * by a hand-written hook and by the steer example plugin (HK_PLUGIN_STEER). */
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
#include "hookformer.h"

#define MAX_NEW 12

static const char *const families[] = {"gpt2", "llama", "mistral", "qwen2", "phi3",
                                       "neox", "qwen3", "olmo2", "gemma2", "gemma3",
                                       "mixtral", "qwen3_moe", "olmoe", "qwen2_moe"};
#define N_FAMILIES (sizeof families / sizeof families[0])

/* An I64 tensor of generate.safetensors as int32; NULL (and *n = 0) when absent. */
static int32_t *ref_ids(const char *family, const char *name, int64_t *n) {
    hk_ckpt *ck = fixture_ckpt(family, "generate.safetensors");
    const hk_st_tensor *t = hk_ckpt_find(ck, name);
    *n = 0;
    int32_t *ids = NULL;
    if (t) {
        assert_int_equal(t->dtype, HK_DTYPE_I64);
        assert_int_equal(t->ndim, 1);
        *n = t->shape[0];
        ids = ids_from_i64(t->data, *n);
    }
    hk_ckpt_close(ck);
    return ids;
}

static void ids_str(const int32_t *ids, int64_t n, char *buf, size_t cap) {
    buf[0] = '\0';
    for (int64_t i = 0; i < n; i++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%d", i ? "," : "", (int)ids[i]);
}

static int64_t gen(hk_model *m, hk_hooks *h, const int32_t *prompt, int64_t n, int64_t max_new,
                   int64_t chunk, const hk_sampler_opts *o, int32_t *out) {
    int64_t n_out = -1;
    hk_status st = hk_generate(m, h, prompt, n, max_new, chunk, o, NULL, 0, out, &n_out);
    if (st != HK_OK) fail_msg("hk_generate: %s (%s)", hk_status_name(st), hk_last_error());
    return n_out;
}

/* ---- greedy = transformers ---------------------------------------------------------- */

static void check_greedy(const char *family, const char *suffix) {
    char pn[32], gn[32];
    snprintf(pn, sizeof pn, "prompt%s", suffix);
    snprintf(gn, sizeof gn, "greedy%s", suffix);
    int64_t n, n_ref;
    int32_t *prompt = ref_ids(family, pn, &n);
    if (!prompt) {
        assert_true(suffix[0]); /* the plain pair is always there */
        return;
    }
    int32_t *want = ref_ids(family, gn, &n_ref);
    assert_non_null(want);
    assert_int_equal(n_ref, MAX_NEW);
    hk_model *m = fixture_model(family);
    const int64_t chunks[] = {0, 2, 1, 5};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        int32_t out[MAX_NEW];
        int64_t n_out = gen(m, NULL, prompt, n, MAX_NEW, chunks[c], NULL, out);
        char got[256], exp[256];
        ids_str(out, n_out, got, sizeof got);
        ids_str(want, MAX_NEW, exp, sizeof exp);
        if (n_out != MAX_NEW || memcmp(out, want, sizeof out) != 0)
            fail_msg("%s%s chunk %lld: got %s, transformers %s", family, suffix,
                     (long long)chunks[c], got, exp);
        if (c == 0)
            print_message("%s%s: prompt %lld tokens -> %s (= transformers)\n", family, suffix,
                          (long long)n, got);
    }
    /* hk_sampler_default() is greedy too */
    hk_sampler_opts o = hk_sampler_default();
    int32_t out[MAX_NEW];
    assert_int_equal(gen(m, NULL, prompt, n, MAX_NEW, 0, &o, out), MAX_NEW);
    assert_memory_equal(out, want, sizeof out);
    hk_model_free(m);
    free(prompt);
    free(want);
}

static void test_greedy_matches_transformers(void **state) {
    (void)state;
    for (size_t f = 0; f < N_FAMILIES; f++) {
        check_greedy(families[f], "");
        check_greedy(families[f], "_long");
    }
}

/* ---- options and validation ------------------------------------------------------------ */

static void expect_invalid(const float *logits, int64_t V, hk_sampler_opts o, const char *field) {
    int32_t tok = -1;
    uint64_t rng = 1;
    hk_status st = hk_sample(logits, V, &o, &rng, &tok);
    if (st != HK_ERR_INVALID_ARG || !strstr(hk_last_error(), field))
        fail_msg("expected HK_ERR_INVALID_ARG naming '%s', got %s: %s", field,
                 hk_status_name(st), hk_last_error());
    assert_int_equal(tok, -1);
}

static void test_sample_validation(void **state) {
    (void)state;
    const float logits[4] = {0.5f, 1.0f, -2.0f, 0.0f};
    hk_sampler_opts o = hk_sampler_default();
    o.temperature = -1.0f;
    expect_invalid(logits, 4, o, "temperature");
    o.temperature = NAN;
    expect_invalid(logits, 4, o, "temperature");
    o.temperature = INFINITY;
    expect_invalid(logits, 4, o, "temperature");
    o = hk_sampler_default();
    o.top_k = -1;
    expect_invalid(logits, 4, o, "top_k");
    o = hk_sampler_default();
    o.top_p = 0.0f; /* a zero-initialized struct */
    expect_invalid(logits, 4, o, "top_p");
    o.top_p = 1.5f;
    expect_invalid(logits, 4, o, "top_p");
    o.top_p = NAN;
    expect_invalid(logits, 4, o, "top_p");
    o = (hk_sampler_opts){0};
    expect_invalid(logits, 4, o, "top_p");

    int32_t tok;
    assert_int_equal(hk_sample(NULL, 4, NULL, NULL, &tok), HK_ERR_INVALID_ARG);
    assert_int_equal(hk_sample(logits, 4, NULL, NULL, NULL), HK_ERR_INVALID_ARG);
    assert_int_equal(hk_sample(logits, 0, NULL, NULL, &tok), HK_ERR_INVALID_ARG);
    const float with_nan[3] = {0.0f, NAN, 1.0f};
    assert_int_equal(hk_sample(with_nan, 3, NULL, NULL, &tok), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "NaN"));
    const float all_ninf[3] = {-INFINITY, -INFINITY, -INFINITY};
    o = hk_sampler_default();
    o.temperature = 1.0f;
    assert_int_equal(hk_sample(all_ninf, 3, &o, NULL, &tok), HK_ERR_INVALID_ARG);
    assert_int_equal(hk_sample(all_ninf, 3, NULL, NULL, &tok), HK_OK); /* greedy: argmax 0 */
    assert_int_equal(tok, 0);

    /* hk_generate's own arguments */
    hk_model *m = fixture_model("gpt2");
    const int32_t prompt[3] = {1, 2, 3};
    int32_t out[4];
    int64_t n_out = 99;
    assert_int_equal(hk_generate(m, NULL, prompt, 0, 4, 0, NULL, NULL, 0, out, &n_out),
                     HK_ERR_INVALID_ARG);
    assert_int_equal(n_out, 0);
    assert_int_equal(hk_generate(m, NULL, prompt, 3, -1, 0, NULL, NULL, 0, out, &n_out),
                     HK_ERR_INVALID_ARG);
    assert_int_equal(hk_generate(m, NULL, prompt, 3, 4, -1, NULL, NULL, 0, out, &n_out),
                     HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "chunk"));
    assert_int_equal(hk_generate(m, NULL, prompt, 3, 4, 0, NULL, NULL, 0, NULL, &n_out),
                     HK_ERR_INVALID_ARG);
    assert_int_equal(hk_generate(m, NULL, prompt, 3, 4, 0, NULL, NULL, 1, out, &n_out),
                     HK_ERR_INVALID_ARG);
    const int32_t bad_stop = 300;
    assert_int_equal(hk_generate(m, NULL, prompt, 3, 4, 0, NULL, &bad_stop, 1, out, &n_out),
                     HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "stop_ids"));
    o = hk_sampler_default();
    o.top_p = 2.0f;
    assert_int_equal(hk_generate(m, NULL, prompt, 3, 4, 0, &o, NULL, 0, out, &n_out),
                     HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "top_p"));
    const int32_t bad_prompt[2] = {1, 300};
    assert_int_equal(hk_generate(m, NULL, bad_prompt, 2, 4, 0, NULL, NULL, 0, out, &n_out),
                     HK_ERR_INVALID_ARG);
    /* GPT-2's 64 learned positions: 60 + 10 - 1 = 69 positions cannot be fed */
    int32_t *long_prompt = calloc(60, sizeof *long_prompt);
    int32_t out10[10];
    assert_int_equal(hk_generate(m, NULL, long_prompt, 60, 10, 0, NULL, NULL, 0, out10, &n_out),
                     HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "learned positions"));
    /* ... 60 + 5 - 1 = 64 can */
    assert_int_equal(hk_generate(m, NULL, long_prompt, 60, 5, 0, NULL, NULL, 0, out10, &n_out),
                     HK_OK);
    assert_int_equal(n_out, 5);
    free(long_prompt);
    bool hard = false;
    assert_int_equal(hk_model_max_positions(m, &hard), 64);
    assert_true(hard);
    hk_model_free(m);
    m = fixture_model("llama");
    assert_int_equal(hk_model_max_positions(m, &hard), 1280);
    assert_false(hard);
    assert_int_equal(hk_model_max_positions(m, NULL), 1280);
    hk_model_free(m);
    assert_int_equal(hk_model_max_positions(NULL, NULL), 0);
}

static void test_greedy_ties_and_argmax(void **state) {
    (void)state;
    const float logits[6] = {0.0f, 2.0f, -1.0f, 2.0f, 1.5f, 2.0f};
    int32_t tok = -1;
    assert_int_equal(hk_sample(logits, 6, NULL, NULL, &tok), HK_OK);
    assert_int_equal(tok, 1); /* first of the tied maxima, as torch.argmax */
    hk_sampler_opts o = hk_sampler_default();
    o.top_k = 3; /* ignored, but checked, when greedy */
    o.top_p = 0.5f;
    uint64_t rng = 7;
    assert_int_equal(hk_sample(logits, 6, &o, &rng, &tok), HK_OK);
    assert_int_equal(tok, 1);
    assert_int_equal(rng, 7); /* greedy draws nothing */
    const float pinf[4] = {0.0f, INFINITY, 3.0f, INFINITY};
    o.temperature = 1.0f;
    o.top_k = 0;
    o.top_p = 1.0f;
    int seen[4] = {0};
    for (int i = 0; i < 200; i++) {
        assert_int_equal(hk_sample(pinf, 4, &o, &rng, &tok), HK_OK);
        seen[tok]++;
    }
    assert_int_equal(seen[0] + seen[2], 0); /* +inf logits take all the mass */
    assert_true(seen[1] > 0 && seen[3] > 0);
}

/* ---- sampling: seeds, limits that equal greedy ------------------------------------------- */

static void test_sampling_seeds(void **state) {
    (void)state;
    hk_model *m = fixture_model("llama");
    const int32_t prompt[6] = {2, 189, 262, 96, 20, 36};
    int32_t greedy[MAX_NEW], a[MAX_NEW], b[MAX_NEW];
    gen(m, NULL, prompt, 6, MAX_NEW, 0, NULL, greedy);

    hk_sampler_opts o = hk_sampler_default();
    o.temperature = 1.0f;
    o.seed = 42;
    gen(m, NULL, prompt, 6, MAX_NEW, 0, &o, a);
    gen(m, NULL, prompt, 6, MAX_NEW, 3, &o, b); /* chunking changes nothing */
    assert_memory_equal(a, b, sizeof a);
    int distinct = 0;
    char first[256] = "";
    for (uint64_t seed = 0; seed < 8; seed++) {
        o.seed = seed;
        gen(m, NULL, prompt, 6, MAX_NEW, 0, &o, b);
        char s[256];
        ids_str(b, MAX_NEW, s, sizeof s);
        if (seed == 0) snprintf(first, sizeof first, "%s", s);
        else if (strcmp(s, first) != 0) distinct++;
    }
    assert_true(distinct > 0); /* 12 draws over a 300-token vocab: equal runs are ~impossible */
    assert_true(memcmp(a, greedy, sizeof a) != 0);

    /* sampling that can only pick the argmax equals greedy */
    hk_sampler_opts k1 = hk_sampler_default();
    k1.temperature = 1.0f;
    k1.top_k = 1;
    k1.seed = 5;
    gen(m, NULL, prompt, 6, MAX_NEW, 0, &k1, a);
    assert_memory_equal(a, greedy, sizeof a);
    hk_sampler_opts cold = hk_sampler_default();
    cold.temperature = 1e-6f;
    cold.seed = 5;
    gen(m, NULL, prompt, 6, MAX_NEW, 0, &cold, a);
    assert_memory_equal(a, greedy, sizeof a);
    cold.temperature = 1e-30f; /* logits / T would overflow float32 */
    gen(m, NULL, prompt, 6, MAX_NEW, 0, &cold, a);
    assert_memory_equal(a, greedy, sizeof a);
    hk_sampler_opts p0 = hk_sampler_default();
    p0.temperature = 1.0f;
    p0.top_p = 1e-6f;
    p0.seed = 5;
    gen(m, NULL, prompt, 6, MAX_NEW, 0, &p0, a);
    assert_memory_equal(a, greedy, sizeof a);
    hk_model_free(m);
}

/* ---- the distribution hk_sample draws from ------------------------------------------------ */

#define N_DRAWS 200000

/* Draw N_DRAWS times and check each frequency against want[] (already normalized) within
 * 5 sigma; tokens with want 0 must never come. */
static void check_distribution(const float *logits, int V, hk_sampler_opts o,
                               const double *want, const char *what) {
    uint64_t rng = 12345;
    int64_t *count = calloc((size_t)V, sizeof *count);
    for (int i = 0; i < N_DRAWS; i++) {
        int32_t tok = -1;
        assert_int_equal(hk_sample(logits, V, &o, &rng, &tok), HK_OK);
        assert_true(tok >= 0 && tok < V);
        count[tok]++;
    }
    for (int v = 0; v < V; v++) {
        double f = (double)count[v] / N_DRAWS;
        double sigma = sqrt(want[v] * (1 - want[v]) / N_DRAWS);
        if (want[v] == 0.0 ? count[v] != 0 : fabs(f - want[v]) > 5 * sigma + 1e-12)
            fail_msg("%s: token %d drawn with frequency %.5f, expected %.5f (5 sigma = %.5f)",
                     what, v, f, want[v], 5 * sigma);
    }
    free(count);
}

static void test_sample_distribution(void **state) {
    (void)state;
    enum { V = 8 };
    const double p[V] = {0.05, 0.10, 0.20, 0.30, 0.15, 0.10, 0.07, 0.03};
    float logits[V];
    for (int v = 0; v < V; v++) logits[v] = (float)log(p[v]) + 3.0f; /* softmax is p */
    double want[V];
    hk_sampler_opts o = hk_sampler_default();
    o.temperature = 1.0f;
    check_distribution(logits, V, o, p, "T=1");

    /* T = 2: softmax(log p / 2) ~ sqrt(p) */
    double z = 0;
    for (int v = 0; v < V; v++) z += sqrt(p[v]);
    for (int v = 0; v < V; v++) want[v] = sqrt(p[v]) / z;
    o.temperature = 2.0f;
    check_distribution(logits, V, o, want, "T=2");

    /* top-k 3: {3, 2, 4} renormalized */
    o.temperature = 1.0f;
    o.top_k = 3;
    memset(want, 0, sizeof want);
    want[3] = 0.30 / 0.65, want[2] = 0.20 / 0.65, want[4] = 0.15 / 0.65;
    check_distribution(logits, V, o, want, "top-k 3");

    /* top-p 0.45: 0.30 (id 3) then 0.20 (id 2) reach 0.50 >= 0.45; nothing else */
    o.top_k = 0;
    o.top_p = 0.45f;
    memset(want, 0, sizeof want);
    want[3] = 0.6, want[2] = 0.4;
    check_distribution(logits, V, o, want, "top-p 0.45");

    /* top-p 0.55 keeps a third token (mass before it 0.50 < 0.55) */
    o.top_p = 0.55f;
    memset(want, 0, sizeof want);
    want[3] = 0.30 / 0.65, want[2] = 0.20 / 0.65, want[4] = 0.15 / 0.65;
    check_distribution(logits, V, o, want, "top-p 0.55");

    /* top-k then top-p: top-k 2 leaves {3: 0.6, 2: 0.4}; top-p 0.5 keeps id 3 only */
    o.top_k = 2;
    o.top_p = 0.5f;
    memset(want, 0, sizeof want);
    want[3] = 1.0;
    check_distribution(logits, V, o, want, "top-k 2 + top-p 0.5");

    /* temperature before top-p: at T = 2 the masses are sqrt(p)/z = .084 .118 .167 .205 .145
     * .118 .099 .065; top-p 0.5 keeps 3, 2, 4 (mass before 4: .372 < .5; before 1: .517).
     * At T = 1 it would keep 3 and 2 only (before 4: .50). */
    o.temperature = 2.0f;
    o.top_k = 0;
    o.top_p = 0.5f;
    memset(want, 0, sizeof want);
    double kept = sqrt(p[3]) + sqrt(p[2]) + sqrt(p[4]);
    want[3] = sqrt(p[3]) / kept, want[2] = sqrt(p[2]) / kept, want[4] = sqrt(p[4]) / kept;
    check_distribution(logits, V, o, want, "T=2 + top-p 0.5");

    /* top-k keeps every token tied with the k-th, as HF's `scores < topk[-1]` does */
    const float tied[5] = {1.0f, 0.0f, 1.0f, 1.0f, -1.0f};
    hk_sampler_opts t = hk_sampler_default();
    t.temperature = 1.0f;
    t.top_k = 2;
    const double third[5] = {1.0 / 3, 0, 1.0 / 3, 1.0 / 3, 0};
    check_distribution(tied, 5, t, third, "top-k 2 with a 3-way tie");
}

/* The kept set of top-p against a literal port of HF's TopPLogitsWarper (sort ascending,
 * cumulative softmax, remove <= 1 - top_p, keep the last), on random logits: every draw is
 * in that set, and every token of it with a kept mass >= 2% is drawn. */
static void test_top_p_matches_hf_rule(void **state) {
    (void)state;
    enum { V = 40, DRAWS = 4000 };
    uint64_t g = 99;
    for (int trial = 0; trial < 30; trial++) {
        float logits[V];
        for (int v = 0; v < V; v++) {
            g = g * 6364136223846793005ull + 1442695040888963407ull;
            logits[v] = (float)((double)(g >> 11) * 0x1.0p-53 * 6.0 - 3.0);
        }
        const float top_p = 0.1f + 0.85f * (float)trial / 30.0f;
        /* HF, in double: ascending order */
        int order[V];
        for (int v = 0; v < V; v++) order[v] = v;
        for (int i = 1; i < V; i++) /* insertion sort, ascending */
            for (int j = i; j > 0 && logits[order[j - 1]] > logits[order[j]]; j--) {
                int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        double mx = logits[order[V - 1]], z = 0, cum = 0;
        for (int v = 0; v < V; v++) z += exp(logits[v] - mx);
        bool keep[V];
        double kept_mass = 0;
        for (int i = 0; i < V; i++) {
            cum += exp(logits[order[i]] - mx) / z;
            keep[order[i]] = !(cum <= 1.0 - top_p) || i == V - 1;
            if (keep[order[i]]) kept_mass += exp(logits[order[i]] - mx) / z;
        }
        hk_sampler_opts o = hk_sampler_default();
        o.temperature = 1.0f;
        o.top_p = top_p;
        uint64_t rng = (uint64_t)trial;
        int seen[V] = {0};
        for (int d = 0; d < DRAWS; d++) {
            int32_t tok;
            assert_int_equal(hk_sample(logits, V, &o, &rng, &tok), HK_OK);
            if (!keep[tok]) fail_msg("top_p %.3f: drew token %d, which HF removes", top_p, tok);
            seen[tok]++;
        }
        for (int v = 0; v < V; v++)
            if (keep[v] && exp(logits[v] - mx) / z / kept_mass >= 0.02 && !seen[v])
                fail_msg("top_p %.3f: token %d is kept by HF but never drawn", top_p, v);
    }
}

/* ---- hooks at every step ---------------------------------------------------------------- */

typedef struct {
    int64_t n_prompt, window;
    int64_t fires, decode_fires, resid_fires;
    int64_t next_pos; /* expected pos_offset of the next decode fire */
    bool bad;
    char why[256];
} step_probe;

static hk_hook_result on_pattern(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    step_probe *p = user;
    p->fires++;
    if (ctx->pos_offset < p->n_prompt) return HK_HOOK_CONTINUE; /* prefill */
    int64_t pos = ctx->pos_offset;
    int64_t keys = p->window && pos + 1 > p->window ? p->window : pos + 1;
    int64_t k0 = pos + 1 - keys;
    if (pos != p->next_pos || t->ndim != 4 || t->shape[0] != 1 || t->shape[2] != 1 ||
        t->shape[3] != keys || ctx->key_offset != k0 || ctx->run_seq != 1) {
        p->bad = true;
        snprintf(p->why, sizeof p->why,
                 "%s at pos_offset %lld (expected %lld): shape [%lld %lld %lld %lld], "
                 "key_offset %lld, run_seq %lld; expected [1 H 1 %lld], key_offset %lld",
                 ctx->name, (long long)pos, (long long)p->next_pos, (long long)t->shape[0],
                 (long long)t->shape[1], (long long)t->shape[2], (long long)t->shape[3],
                 (long long)ctx->key_offset, (long long)ctx->run_seq, (long long)keys,
                 (long long)k0);
    }
    const float *row = t->data; /* head 0: sums to 1 */
    double s = 0;
    for (int64_t j = 0; j < t->shape[3]; j++) s += row[j];
    if (fabs(s - 1.0) > 1e-5) p->bad = true;
    p->decode_fires++;
    p->next_pos++;
    return HK_HOOK_CONTINUE;
}

static hk_hook_result on_resid(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    step_probe *p = user;
    if (ctx->pos_offset >= p->n_prompt && (t->shape[1] != 1 || t->ndim != 3)) p->bad = true;
    p->resid_fires++;
    return HK_HOOK_CONTINUE;
}

static void check_steps(const char *family, int64_t window, int64_t chunk) {
    hk_model *m = fixture_model(family);
    int64_t n;
    int32_t *prompt = ref_ids(family, "prompt", &n);
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    step_probe p = {.n_prompt = n, .window = window, .next_pos = n};
    assert_int_equal(hk_hooks_add(h, "blocks.1.attn.hook_pattern", on_pattern, &p, NULL), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.*.hook_resid_pre", on_resid, &p, NULL), HK_OK);
    int32_t out[MAX_NEW], plain[MAX_NEW];
    gen(m, h, prompt, n, MAX_NEW, chunk, NULL, out);
    gen(m, NULL, prompt, n, MAX_NEW, chunk, NULL, plain);
    assert_memory_equal(out, plain, sizeof out); /* reading hooks change nothing */
    if (p.bad) fail_msg("%s: %s", family, p.why[0] ? p.why : "a pattern row does not sum to 1");
    int64_t prefill_feeds = chunk ? (n + chunk - 1) / chunk : 1;
    /* 12 tokens: the first from the prefill's logits, then 11 decode feeds */
    assert_int_equal(p.decode_fires, MAX_NEW - 1);
    assert_int_equal(p.fires, prefill_feeds + MAX_NEW - 1);
    assert_int_equal(p.resid_fires, 2 * (prefill_feeds + MAX_NEW - 1));
    assert_int_equal(p.next_pos, n + MAX_NEW - 1);
    hk_hooks_free(h);
    hk_model_free(m);
    free(prompt);
}

static void test_hooks_every_step(void **state) {
    (void)state;
    check_steps("gpt2", 0, 0);
    check_steps("llama", 0, 4);
    check_steps("mistral", 5, 0); /* rolling buffer: at most 5 keys, key_offset = pos - 4 */
    check_steps("mistral", 5, 2);
}

/* A hook that stops the forward at a decode step ends generation with HK_STOPPED and the
 * tokens chosen before that step. */
static hk_hook_result stop_at_pos(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)t;
    return ctx->pos_offset == *(int64_t *)user ? HK_HOOK_STOP : HK_HOOK_CONTINUE;
}

static void test_stop_and_stop_ids(void **state) {
    (void)state;
    hk_model *m = fixture_model("gpt2");
    int64_t n, n_ref;
    int32_t *prompt = ref_ids("gpt2", "prompt", &n);
    int32_t *want = ref_ids("gpt2", "greedy", &n_ref);
    int32_t out[MAX_NEW];
    int64_t n_out = -1;
    /* stop ids: generation ends at the first of them, which is written */
    const int32_t stops[2] = {276, 281};
    int64_t first = -1;
    for (int64_t i = 0; i < MAX_NEW && first < 0; i++)
        if (want[i] == 276 || want[i] == 281) first = i;
    assert_true(first > 0);
    assert_int_equal(hk_generate(m, NULL, prompt, n, MAX_NEW, 0, NULL, stops, 2, out, &n_out),
                     HK_OK);
    assert_int_equal(n_out, first + 1);
    assert_memory_equal(out, want, (size_t)n_out * sizeof *out);

    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    int64_t stop_pos = n + 2; /* the third decode feed */
    assert_int_equal(hk_hooks_add(h, "blocks.1.hook_resid_pre", stop_at_pos, &stop_pos, NULL),
                     HK_OK);
    assert_int_equal(hk_generate(m, h, prompt, n, MAX_NEW, 0, NULL, NULL, 0, out, &n_out),
                     HK_STOPPED);
    assert_int_equal(n_out, 3); /* tokens 0..2 chosen; feeding token 2 (at n + 2) stopped */
    assert_memory_equal(out, want, 3 * sizeof *out);

    /* max_new 0: only the prefill runs */
    step_probe p = {.n_prompt = n, .next_pos = n};
    hk_hooks_free(h);
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    assert_int_equal(hk_hooks_add(h, "blocks.0.hook_resid_pre", on_resid, &p, NULL), HK_OK);
    assert_int_equal(hk_generate(m, h, prompt, n, 0, 0, NULL, NULL, 0, NULL, &n_out), HK_OK);
    assert_int_equal(n_out, 0);
    assert_int_equal(p.resid_fires, 1);
    hk_hooks_free(h);
    hk_model_free(m);
    free(prompt);
    free(want);
}

/* ---- steering during generation ----------------------------------------------------------- */

typedef struct {
    const float *delta; /* [d_model] */
    int64_t d, calls;
} steer;

static hk_hook_result add_vector(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    steer *s = user;
    float *x = t->data;
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++)
            for (int64_t i = 0; i < s->d; i++)
                x[b * t->stride[0] + p * t->stride[1] + i * t->stride[2]] += s->delta[i];
    s->calls++;
    return HK_HOOK_CONTINUE;
}

static void test_steering_changes_generation(void **state) {
    (void)state;
    const char *plugin = getenv("HK_PLUGIN_STEER");
    for (size_t f = 0; f < N_FAMILIES; f++) {
        hk_model *m = fixture_model(families[f]);
        const int64_t d = hk_model_d_model(m);
        int64_t n;
        int32_t *prompt = ref_ids(families[f], "prompt", &n);
        float *v = malloc((size_t)d * sizeof *v);
        uint64_t g = 2024 + f;
        for (int64_t i = 0; i < d; i++) {
            g = g * 6364136223846793005ull + 1442695040888963407ull;
            v[i] = (float)((double)(g >> 11) * 0x1.0p-53 * 4.0 - 2.0); /* U(-2, 2) */
        }
        int32_t plain[MAX_NEW], steered[MAX_NEW], via_plugin[MAX_NEW];
        gen(m, NULL, prompt, n, MAX_NEW, 0, NULL, plain);

        hk_hooks *h;
        assert_int_equal(hk_hooks_new(m, &h), HK_OK);
        steer s = {.delta = v, .d = d};
        hk_hook_handle hd;
        assert_int_equal(hk_hooks_add(h, "blocks.0.hook_resid_pre", add_vector, &s, &hd), HK_OK);
        gen(m, h, prompt, n, MAX_NEW, 2, NULL, steered);
        /* ceil(n / 2) prefill chunks + 11 decode steps */
        assert_int_equal(s.calls, (n + 1) / 2 + MAX_NEW - 1);
        if (memcmp(plain, steered, sizeof plain) == 0)
            fail_msg("%s: steering did not change the greedy ids", families[f]);
        assert_int_equal(hk_hooks_remove(h, hd), HK_OK);

        if (plugin) { /* the steer example plugin does the same through hk_plugin_load */
            char vec[] = "/tmp/hk-steer-XXXXXX";
            int fd = mkstemp(vec);
            assert_true(fd >= 0);
            unsigned char *raw = malloc((size_t)d * 4);
            for (int64_t i = 0; i < d; i++) { /* little-endian float32 */
                uint32_t u;
                memcpy(&u, &v[i], 4);
                for (int b = 0; b < 4; b++) raw[4 * i + b] = (unsigned char)(u >> (8 * b));
            }
            assert_int_equal(write(fd, raw, (size_t)d * 4), d * 4);
            close(fd);
            free(raw);
            char spec[2048];
            snprintf(spec, sizeof spec, "%s:vector=%s,coef=1,layer=0", plugin, vec);
            hk_plugin *pl = NULL;
            if (hk_plugin_load(spec, m, h, &pl) != HK_OK)
                fail_msg("hk_plugin_load %s: %s", spec, hk_last_error());
            assert_int_equal(hk_plugin_begin_run(pl, prompt, NULL, 1, n), HK_OK);
            gen(m, h, prompt, n, MAX_NEW, 2, NULL, via_plugin);
            assert_int_equal(hk_plugin_finish(pl), HK_OK);
            unlink(vec);
            assert_memory_equal(via_plugin, steered, sizeof steered);
        }
        hk_hooks_free(h);
        free(v);
        free(prompt);
        hk_model_free(m);
    }
    if (!plugin) print_message("HK_PLUGIN_STEER not set: steer plugin part skipped\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_matches_transformers),
        cmocka_unit_test(test_sample_validation),
        cmocka_unit_test(test_greedy_ties_and_argmax),
        cmocka_unit_test(test_sampling_seeds),
        cmocka_unit_test(test_sample_distribution),
        cmocka_unit_test(test_top_p_matches_hf_rule),
        cmocka_unit_test(test_hooks_every_step),
        cmocka_unit_test(test_stop_and_stop_ids),
        cmocka_unit_test(test_steering_changes_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
