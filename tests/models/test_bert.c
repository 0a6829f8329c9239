/* BERT encoders against transformers and TransformerLens's HookedEncoder: the masked-LM
 * logits and the headless body's hidden states of a right-padded batch with token types, every
 * hook point, token-type and pooling behaviour, and the errors. References:
 * tests/fixtures/make_bert_fixtures.py (bert: BertForMaskedLM; bert_body: its BertModel). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/checkpoint.h"
#include "fixtures.h"
#include "float_compare.h"
#include "hookformer.h"

#define ATOL 1e-4

typedef struct {
    int32_t *ids, *types; /* [B, T] */
    int64_t *lengths;     /* [B] */
    int64_t B, T;
} batch_in;

static float ref_at(const hk_st_tensor *t, int64_t i) {
    float v;
    memcpy(&v, (const char *)t->data + i * 4, 4);
    return v;
}

static batch_in read_batch(const hk_ckpt *ref) {
    const hk_st_tensor *ids = hk_ckpt_find(ref, "input_ids");
    const hk_st_tensor *types = hk_ckpt_find(ref, "token_type_ids");
    const hk_st_tensor *lens = hk_ckpt_find(ref, "lengths");
    assert_non_null(ids), assert_non_null(types), assert_non_null(lens);
    batch_in b = {.B = ids->shape[0], .T = ids->shape[1]};
    b.ids = ids_from_i64(ids->data, b.B * b.T);
    b.types = ids_from_i64(types->data, b.B * b.T);
    b.lengths = malloc((size_t)b.B * sizeof *b.lengths);
    assert_non_null(b.lengths);
    memcpy(b.lengths, lens->data, (size_t)b.B * sizeof *b.lengths);
    return b;
}

static void free_batch(batch_in *b) { free(b->ids), free(b->types), free(b->lengths); }

/* out [B, T, dim] against ref: valid rows within ATOL, padded rows exactly 0. */
static void check_rows(const float *out, const hk_st_tensor *ref, const batch_in *b, int64_t dim,
                       const char *what) {
    assert_int_equal(ref->shape[2], dim);
    double worst = 0;
    for (int64_t i = 0; i < b->B; i++)
        for (int64_t t = 0; t < b->T; t++)
            for (int64_t j = 0; j < dim; j++) {
                int64_t at = (i * b->T + t) * dim + j;
                if (t < b->lengths[i])
                    worst = fmax(worst, abs_diff_inf(out[at], ref_at(ref, at)));
                else if (out[at] != 0.0f)
                    fail_msg("%s: padded row [%lld, %lld] is not zero", what, (long long)i,
                             (long long)t);
            }
    print_message("%s: max |diff| %.3g\n", what, worst);
    assert_true(worst <= ATOL);
}

static void test_mlm_logits(void **state) {
    (void)state;
    hk_model *m = fixture_model("bert");
    hk_ckpt *ref = fixture_ckpt("bert", "reference.safetensors");
    batch_in b = read_batch(ref);
    assert_string_equal(hk_model_family(m), "bert");
    assert_false(hk_model_headless(m));
    assert_true(hk_model_is_encoder(m));
    assert_int_equal(hk_model_token_types(m), 2);
    int64_t V = hk_model_output_dim(m);
    assert_int_equal(V, hk_model_vocab_size(m));
    float *out = malloc((size_t)(b.B * b.T * V) * sizeof *out);
    if (hk_model_run_typed(m, NULL, b.ids, b.types, b.lengths, b.B, b.T, out) != HK_OK)
        fail_msg("%s", hk_last_error());
    check_rows(out, hk_ckpt_find(ref, "logits"), &b, V, "bert MLM logits");
    free(out);
    free_batch(&b);
    hk_ckpt_close(ref);
    hk_model_free(m);
}

static void test_body_hidden(void **state) {
    (void)state;
    hk_model *body = fixture_model("bert_body");
    hk_model *mlm = fixture_model("bert");
    hk_ckpt *ref = fixture_ckpt("bert_body", "reference.safetensors");
    batch_in b = read_batch(ref);
    int64_t d = hk_model_d_model(body);
    assert_true(hk_model_headless(body));
    assert_int_equal(hk_model_output_dim(body), d);
    float *out = malloc((size_t)(b.B * b.T * d) * sizeof *out);
    const hk_st_tensor *want = hk_ckpt_find(ref, "hidden");
    /* the headless forward returns the hidden states */
    if (hk_model_run_typed(body, NULL, b.ids, b.types, b.lengths, b.B, b.T, out) != HK_OK)
        fail_msg("%s", hk_last_error());
    check_rows(out, want, &b, d, "bert_body hidden (run_typed)");
    /* hk_model_hidden of the model with a head gives the body's output */
    memset(out, 0x7f, (size_t)(b.B * b.T * d) * sizeof *out);
    if (hk_model_hidden(mlm, NULL, b.ids, b.types, b.lengths, b.B, b.T, out) != HK_OK)
        fail_msg("%s", hk_last_error());
    check_rows(out, want, &b, d, "bert hidden (hk_model_hidden)");
    free(out);
    free_batch(&b);
    hk_ckpt_close(ref);
    hk_model_free(mlm);
    hk_model_free(body);
}

/* NULL token types are type 0 everywhere; type 1 changes the output. */
static void test_default_token_types(void **state) {
    (void)state;
    hk_model *m = fixture_model("bert_body");
    hk_ckpt *ref = fixture_ckpt("bert_body", "reference.safetensors");
    batch_in b = read_batch(ref);
    int64_t n = b.B * b.T * hk_model_d_model(m);
    float *a = malloc((size_t)n * sizeof *a), *z = malloc((size_t)n * sizeof *z);
    int32_t *zeros = calloc((size_t)(b.B * b.T), sizeof *zeros);
    assert_int_equal(hk_model_forward(m, b.ids, b.lengths, b.B, b.T, a), HK_OK);
    assert_int_equal(hk_model_run_typed(m, NULL, b.ids, zeros, b.lengths, b.B, b.T, z), HK_OK);
    assert_memory_equal(a, z, (size_t)n * sizeof *a);
    assert_int_equal(hk_model_run_typed(m, NULL, b.ids, b.types, b.lengths, b.B, b.T, z), HK_OK);
    assert_true(max_abs_diff(a, z, (size_t)n) > 1e-2);
    free(a), free(z), free(zeros);
    free_batch(&b);
    hk_ckpt_close(ref);
    hk_model_free(m);
}

static void test_errors(void **state) {
    (void)state;
    hk_model *m = fixture_model("bert");
    int32_t ids[4] = {5, 6, 7, 8}, types[4] = {0, 1, 2, 0};
    int64_t len = 4;
    float *out = malloc((size_t)(4 * hk_model_output_dim(m)) * sizeof *out);
    assert_int_equal(hk_model_run_typed(m, NULL, ids, types, &len, 1, 4, out),
                     HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "token type 2 at [0, 2]"));
    /* a type past the sequence's length is padding and ignored */
    len = 2;
    assert_int_equal(hk_model_run_typed(m, NULL, ids, types, &len, 1, 4, out), HK_OK);
    /* 64 learned positions */
    int32_t *many = calloc(65, sizeof *many);
    assert_int_equal(hk_model_forward(m, many, NULL, 1, 65, NULL), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "learned position embeddings for 64"));
    /* no KV cache for bidirectional attention */
    hk_session *s = NULL;
    assert_int_equal(hk_session_new(m, 1, 8, &s), HK_ERR_UNSUPPORTED);
    assert_null(s);
    /* token types on a model without them */
    hk_model *g = fixture_model("gpt2");
    assert_int_equal(hk_model_token_types(g), 0);
    assert_false(hk_model_is_encoder(g));
    float *lg = malloc((size_t)(4 * hk_model_output_dim(g)) * sizeof *lg);
    assert_int_equal(hk_model_run_typed(g, NULL, ids, types, NULL, 1, 4, lg),
                     HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "no token-type embeddings"));
    free(lg), free(many), free(out);
    hk_model_free(g);
    hk_model_free(m);
}

/* ---- TransformerLens parity ---- */

typedef struct {
    hk_ckpt *ref;
    const int64_t *lengths; /* [B] */
    bool *seen;
    double worst;
    char worst_name[96];
    int compared;
} parity;

static hk_hook_result compare(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    parity *p = user;
    const hk_st_tensor *ref = hk_ckpt_find(p->ref, ctx->name);
    if (!ref) fail_msg("%s fired here but TransformerLens has no such hook", ctx->name);
    p->seen[ref - hk_ckpt_at(p->ref, 0)] = true;
    bool attn = strstr(ctx->name, "hook_pattern") || strstr(ctx->name, "hook_attn_scores");
    if (ref->ndim != t->ndim)
        fail_msg("%s: %d dims here, %d in TransformerLens", ctx->name, t->ndim, ref->ndim);
    for (int d = 0; d < t->ndim; d++)
        if (!(attn && d <= 2) && t->shape[d] != ref->shape[d])
            fail_msg("%s: dim %d is %lld here, %lld in TransformerLens", ctx->name, d,
                     (long long)t->shape[d], (long long)ref->shape[d]);
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    const float *ours = t->data;
    /* the logits of padded rows are zero here (the run's output), TL computes them */
    bool logits = strcmp(ctx->name, "unembed.hook_out") == 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t ri = i;
        if (logits) {
            int64_t row = i / t->shape[2], seq = row / t->shape[1], pos = row % t->shape[1];
            if (pos >= p->lengths[seq]) {
                if (ours[i] != 0.0f) fail_msg("unembed.hook_out: padded row is not zero");
                continue;
            }
        }
        if (attn) { /* [1, h, qc, k] of sequence batch_offset -> [B, h, T, k] */
            int64_t k = t->shape[3], qc = t->shape[2], H = t->shape[1];
            int64_t j = i % k, q = (i / k) % qc, h = i / (k * qc);
            ri = ((ctx->batch_offset * H + h) * ref->shape[2] + ctx->pos_offset + q) * k + j;
        }
        note_worst(abs_diff_inf(ours[i], ref_at(ref, ri)), ctx->name, &p->worst, p->worst_name,
                   sizeof p->worst_name);
    }
    p->compared++;
    return HK_HOOK_CONTINUE;
}

static bool is_optional(const char *name, void *u) {
    (void)u;
    return strstr(name, "_input") || strstr(name, "hook_result") || strstr(name, "hook_mlp_in");
}
static bool not_optional(const char *name, void *u) { return !is_optional(name, u); }

static bool is_head_hook(const char *name) {
    return strncmp(name, "mlm_head.", 9) == 0 || strncmp(name, "unembed.", 8) == 0;
}

/* Every hook of `fixture` against HookedEncoder's run_with_cache (bert/tl_cache): each point
 * here exists there with the same values (every row, padded ones too), and each TL hook fires
 * here (the head's only when the model has the head). */
static void check_tl(const char *fixture) {
    hk_model *m = fixture_model(fixture);
    parity p = {.ref = fixture_ckpt("bert", "tl_cache.safetensors")};
    p.seen = calloc(hk_ckpt_count(p.ref), sizeof *p.seen);
    batch_in b = read_batch(p.ref);
    p.lengths = b.lengths;
    int64_t out_dim = hk_model_output_dim(m);
    float *out = calloc((size_t)(b.B * b.T * out_dim), sizeof *out);
    hk_hook_filter_fn filters[2] = {not_optional, is_optional};
    for (int pass = 0; pass < 2; pass++) {
        hk_hooks *h;
        assert_int_equal(hk_hooks_new(m, &h), HK_OK);
        assert_int_equal(hk_hooks_add_filter(h, filters[pass], NULL, compare, &p, NULL), HK_OK);
        if (hk_model_run_typed(m, h, b.ids, b.types, b.lengths, b.B, b.T, out) != HK_OK)
            fail_msg("%s: %s", fixture, hk_last_error());
        hk_hooks_free(h);
    }
    size_t missing = 0;
    for (size_t i = 0; i < hk_ckpt_count(p.ref); i++) {
        const char *name = hk_ckpt_at(p.ref, i)->name;
        if (p.seen[i] || (!strchr(name, '.') && strncmp(name, "hook_", 5) != 0)) continue;
        if (hk_model_headless(m) && is_head_hook(name)) continue;
        print_message("%s: TransformerLens hook %s never fired here\n", fixture, name);
        missing++;
    }
    print_message("%s: %d activations compared with HookedEncoder, max |diff| %.3g (%s)\n",
                  fixture, p.compared, p.worst, p.worst_name);
    assert_int_equal(missing, 0);
    if (!(p.worst <= ATOL))
        fail_msg("%s: %s differs from TransformerLens by %g", fixture, p.worst_name, p.worst);
    free(out);
    free_batch(&b);
    free(p.seen);
    hk_ckpt_close(p.ref);
    hk_model_free(m);
}

static void test_tl_parity_mlm(void **state) {
    (void)state;
    check_tl("bert");
}

static void test_tl_parity_body(void **state) {
    (void)state;
    check_tl("bert_body");
}

/* ---- patching: a hook modifies an activation and the forward goes on from it ---- */

typedef enum { P_MUL, P_ADD, P_ADD_EVEN } patch_op;
typedef struct {
    const char *name, *point;
    patch_op op;
    float v;
} patch;

static hk_hook_result apply_patch(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    const patch *p = user;
    int64_t n = 1, last = t->shape[t->ndim - 1];
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    float *x = t->data; /* the forward hands contiguous views */
    for (int64_t i = 0; i < n; i++) {
        if (p->op == P_MUL) x[i] *= p->v;
        if (p->op == P_ADD) x[i] += p->v;
        if (p->op == P_ADD_EVEN && (i % last) % 2 == 0) x[i] += p->v;
    }
    return HK_HOOK_CONTINUE;
}

/* The modifications make_bert_fixtures.py's PATCHES makes in HookedEncoder.run_with_hooks. */
static void test_tl_patches(void **state) {
    (void)state;
    static const patch patches[] = {
        {"embed_ln_scale", "embed.ln.hook_scale", P_MUL, 2.0f},
        {"mlp_in", "blocks.0.hook_mlp_in", P_ADD_EVEN, 0.5f},
        {"ln1_normalized", "blocks.1.ln1.hook_normalized", P_ADD, 0.1f},
        {"pattern", "blocks.0.attn.hook_pattern", P_MUL, 0.5f},
        {"ln2_scale", "blocks.0.ln2.hook_scale", P_MUL, 3.0f},
    };
    hk_model *m = fixture_model("bert");
    hk_ckpt *ref = fixture_ckpt("bert", "reference.safetensors");
    hk_ckpt *want = fixture_ckpt("bert", "tl_patch.safetensors");
    batch_in b = read_batch(ref);
    int64_t V = hk_model_output_dim(m);
    float *out = malloc((size_t)(b.B * b.T * V) * sizeof *out);
    for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++) {
        hk_hooks *h;
        assert_int_equal(hk_hooks_new(m, &h), HK_OK);
        assert_int_equal(hk_hooks_add(h, patches[i].point, apply_patch, (void *)&patches[i], NULL),
                         HK_OK);
        if (hk_model_run_typed(m, h, b.ids, b.types, b.lengths, b.B, b.T, out) != HK_OK)
            fail_msg("%s: %s", patches[i].name, hk_last_error());
        hk_hooks_free(h);
        char what[96];
        snprintf(what, sizeof what, "patch %s (%s) vs HookedEncoder", patches[i].name,
                 patches[i].point);
        check_rows(out, hk_ckpt_find(want, patches[i].name), &b, V, what);
    }
    free(out);
    free_batch(&b);
    hk_ckpt_close(want);
    hk_ckpt_close(ref);
    hk_model_free(m);
}

/* The hook list in execution order, as HookedEncoder fires them (layer 0 and the globals). */
static void test_hook_order(void **state) {
    (void)state;
    static const char *const want[] = {
        "embed.hook_embed", "embed.hook_pos_embed", "embed.hook_token_type_embed",
        "embed.ln.hook_scale", "embed.ln.hook_normalized", "hook_full_embed",
        "blocks.0.hook_resid_pre", "blocks.0.hook_q_input", "blocks.0.hook_k_input",
        "blocks.0.hook_v_input", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k",
        "blocks.0.attn.hook_v", "blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern",
        "blocks.0.attn.hook_z", "blocks.0.attn.hook_result", "blocks.0.hook_attn_out",
        "blocks.0.hook_resid_mid", "blocks.0.hook_mlp_in", "blocks.0.ln1.hook_scale",
        "blocks.0.ln1.hook_normalized", "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post",
        "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post", "blocks.0.ln2.hook_scale",
        "blocks.0.ln2.hook_normalized", "blocks.0.hook_normalized_resid_post",
    };
    static const char *const tail[] = {"mlm_head.ln.hook_scale", "mlm_head.ln.hook_normalized",
                                       "unembed.hook_in", "unembed.hook_out"};
    size_t nw = sizeof want / sizeof want[0], per_block = nw - 6;
    for (int headless = 0; headless < 2; headless++) {
        hk_model *m = fixture_model(headless ? "bert_body" : "bert");
        size_t n = hk_model_hook_count(m);
        assert_int_equal(n, 6 + 2 * per_block + (headless ? 0 : 4));
        for (size_t i = 0; i < nw; i++) assert_string_equal(hk_model_hook_at(m, i)->name, want[i]);
        for (size_t i = 0; !headless && i < 4; i++)
            assert_string_equal(hk_model_hook_at(m, n - 4 + i)->name, tail[i]);
        hk_model_free(m);
    }
}

/* ---- pooling ---- */

static void test_embed_pooling(void **state) {
    (void)state;
    hk_model *m = fixture_model("bert_body");
    hk_ckpt *ref = fixture_ckpt("bert_body", "reference.safetensors");
    batch_in b = read_batch(ref);
    const hk_st_tensor *hid = hk_ckpt_find(ref, "hidden");
    int64_t d = hk_model_d_model(m);
    bool norm = true;
    /* a folder without sentence-transformers modules: mean, no normalization */
    assert_int_equal(hk_model_pooling(m, &norm), HK_POOL_MEAN);
    assert_false(norm);
    hk_pooling modes[] = {HK_POOL_MODEL, HK_POOL_MEAN, HK_POOL_CLS, HK_POOL_MAX,
                          HK_POOL_MEAN_SQRT_LEN, HK_POOL_LAST};
    float *out = malloc((size_t)(b.B * d) * sizeof *out);
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++)
        for (int l2 = 0; l2 < 2; l2++) {
            if (hk_model_embed(m, NULL, b.ids, b.types, b.lengths, b.B, b.T, modes[k], l2,
                               out) != HK_OK)
                fail_msg("%s: %s", hk_pooling_name(modes[k]), hk_last_error());
            double worst = 0;
            for (int64_t i = 0; i < b.B; i++) {
                int64_t len = b.lengths[i];
                double want[256], sq = 0;
                assert_true(d <= 256);
                for (int64_t j = 0; j < d; j++) {
                    double acc = modes[k] == HK_POOL_MAX ? -INFINITY : 0;
                    for (int64_t t = 0; t < len; t++) {
                        double v = ref_at(hid, (i * b.T + t) * d + j);
                        acc = modes[k] == HK_POOL_MAX ? fmax(acc, v) : acc + v;
                    }
                    if (modes[k] == HK_POOL_MEAN || modes[k] == HK_POOL_MODEL) acc /= len;
                    if (modes[k] == HK_POOL_MEAN_SQRT_LEN) acc /= sqrt((double)len);
                    if (modes[k] == HK_POOL_CLS) acc = ref_at(hid, (i * b.T) * d + j);
                    if (modes[k] == HK_POOL_LAST) acc = ref_at(hid, (i * b.T + len - 1) * d + j);
                    want[j] = acc;
                    sq += acc * acc;
                }
                for (int64_t j = 0; j < d; j++)
                    worst = fmax(worst, fabs(out[i * d + j] - (l2 ? want[j] / sqrt(sq) : want[j])));
            }
            print_message("pooling %s%s: max |diff| %.3g\n", hk_pooling_name(modes[k]),
                          l2 ? " + L2" : "", worst);
            assert_true(worst <= ATOL);
        }
    assert_int_equal(hk_model_embed(m, NULL, b.ids, NULL, b.lengths, b.B, b.T, 99, 0, out),
                     HK_ERR_INVALID_ARG);
    assert_int_equal(
        hk_model_embed(m, NULL, b.ids, NULL, b.lengths, b.B, b.T, HK_POOL_MEAN, 2, out),
        HK_ERR_INVALID_ARG);
    free(out);
    free_batch(&b);
    hk_ckpt_close(ref);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlm_logits),      cmocka_unit_test(test_body_hidden),
        cmocka_unit_test(test_default_token_types), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_tl_parity_mlm),   cmocka_unit_test(test_tl_parity_body),
        cmocka_unit_test(test_tl_patches),      cmocka_unit_test(test_hook_order),
        cmocka_unit_test(test_embed_pooling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
