/* TransformerLens parity: every hook TransformerLens's run_with_cache produces for the fixture
 * models exists here with the same shape and values (atol 1e-4), and a run_with_hooks patch
 * of resid_pre gives TransformerLens's patched logits. References: make_tl_references.py.
 * The wave-2 families (Qwen3, OLMo 2, Gemma 2/3, the MoE families) are also checked the same way
 * against hf_hooks.safetensors (transformers' module outputs under TransformerLens's names,
 * make_fixtures.py), and there every non-optional point of the model must have a reference;
 * for Qwen3-MoE and Qwen2-MoE, which TransformerLens 3.9's HookedTransformer does not support,
 * that is the only reference. */
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
    hk_ckpt *ref;
    const char *const (*renames)[2]; /* {our infix, TransformerLens's}, {NULL, NULL}-ended */
    bool *seen;      /* [hk_ckpt_count(ref)] */
    double worst;
    char worst_name[96];
    int compared;
    int unmatched; /* fired points without a reference */
} parity;

static int32_t *read_ids(const hk_ckpt *ck, const char *name, int64_t *len) {
    const hk_st_tensor *t = hk_ckpt_find(ck, name);
    assert_non_null(t);
    *len = t->shape[t->ndim - 1];
    return ids_from_i64(t->data, *len);
}

static float ref_at(const hk_st_tensor *t, int64_t i) {
    float v;
    memcpy(&v, (const char *)t->data + i * 4, 4);
    return v;
}

/* TransformerLens caches each expert's hidden activations as blocks.{i}.mlp.experts.{e}.hook_post
 * [tokens routed to e, d_mlp]: those with e in slot 0 first, then slot 1, ... (token order in
 * each, torch.where over [slot, token]); ours are hook_expert_post [1, pos, k, d_mlp], slot j
 * holding expert hook_expert_indices[pos, j] (TransformerLens's indices, compared above). */
static hk_hook_result compare_experts(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    parity *p = user;
    char name[128];
    int blk;
    if (sscanf(ctx->name, "blocks.%d.", &blk) != 1 || t->ndim != 4)
        fail_msg("%s: unexpected name or %d dims", ctx->name, t->ndim);
    snprintf(name, sizeof name, "blocks.%d.mlp.hook_expert_indices", blk);
    const hk_st_tensor *idx = hk_ckpt_find(p->ref, name);
    if (!idx) fail_msg("no reference for %s", name);
    int64_t T = t->shape[1], k = t->shape[2], d = t->shape[3];
    int64_t rows[256] = {0}; /* next row of each expert's reference */
    const float *ours = t->data;
    for (int64_t j = 0; j < k; j++) /* TL: torch.where over [slot, token]: slot-major rows */
        for (int64_t pos = 0; pos < T; pos++) {
            int e = (int)ref_at(idx, pos * k + j);
            if (e < 0 || e >= 256) fail_msg("%s: expert %d", name, e);
            snprintf(name, sizeof name, "blocks.%d.mlp.experts.%d.hook_post", blk, e);
            const hk_st_tensor *ref = hk_ckpt_find(p->ref, name);
            if (!ref || ref->ndim != 2 || ref->shape[1] != d || rows[e] >= ref->shape[0])
                fail_msg("%s: no row %lld of width %lld", name, (long long)rows[e], (long long)d);
            p->seen[ref - hk_ckpt_at(p->ref, 0)] = true;
            for (int64_t c = 0; c < d; c++)
                note_worst(abs_diff_inf(ours[(pos * k + j) * d + c],
                                        ref_at(ref, rows[e] * d + c)),
                           name, &p->worst, p->worst_name, sizeof p->worst_name);
            rows[e]++;
            snprintf(name, sizeof name, "blocks.%d.mlp.hook_expert_indices", blk);
        }
    p->compared++;
    return HK_HOOK_CONTINUE;
}

/* The TransformerLens tensor for one of our points: the same name, or for a family whose
 * names differ (p->renames) the name with our infix replaced by TransformerLens's. */
static const hk_st_tensor *find_ref(const parity *p, const char *name) {
    for (const char *const(*r)[2] = p->renames; r && (*r)[0]; r++) {
        const char *at = strstr(name, (*r)[0]);
        if (!at) continue;
        char tl[128];
        snprintf(tl, sizeof tl, "%.*s%s%s", (int)(at - name), name, (*r)[1],
                 at + strlen((*r)[0]));
        return hk_ckpt_find(p->ref, tl);
    }
    return hk_ckpt_find(p->ref, name);
}

/* Compare a fired activation with the TransformerLens tensor of the same name. Attention
 * scores/patterns arrive per query chunk: [1, head, q_chunk, k] at ctx->pos_offset. */
static hk_hook_result compare(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    parity *p = user;
    const hk_st_tensor *ref = find_ref(p, ctx->name);
    if (!ref && strstr(ctx->name, "mlp.hook_expert_post")) return compare_experts(t, ctx, p);
    if (!ref) { /* a point TransformerLens did not cache */
        if (!strstr(ctx->name, "hook_result") && !strstr(ctx->name, "hook_mlp_in") &&
            !strstr(ctx->name, "hook_router_logits") && !strstr(ctx->name, "hook_topk_weights") &&
            !strstr(ctx->name, "_input") && !strstr(ctx->name, "hook_attn_in")) {
            print_message("no reference for %s\n", ctx->name);
            p->unmatched++;
        }
        return HK_HOOK_CONTINUE;
    }
    p->seen[ref - hk_ckpt_at(p->ref, 0)] = true;
    bool attn = strstr(ctx->name, "hook_pattern") || strstr(ctx->name, "hook_attn_scores");
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    /* TransformerLens (3.9, Qwen3) runs q_norm/k_norm on q/k viewed as [batch*pos*head, d_head],
     * so its attn.{q,k}_norm.hook_* are 2-D; ours are [batch, pos, head, ...]: the same numbers
     * in the same order, compared as flat arrays. */
    bool flat_qk_norm = strstr(ctx->name, "_norm.hook_") && ref->ndim == 2 && t->ndim == 4 &&
                        ref->shape[0] * ref->shape[1] == n &&
                        ref->shape[1] == t->shape[3];
    /* OLMo 2 / OLMoE norm q and k over the whole projection: TransformerLens's
     * attn.{q,k}_norm.hook_normalized are [batch, pos, head*d_head], ours the same numbers
     * viewed per head, [batch, pos, head, d_head]. */
    flat_qk_norm |= strstr(ctx->name, "_norm.hook_normalized") && ref->ndim == 3 &&
                    t->ndim == 4 && ref->shape[0] == t->shape[0] &&
                    ref->shape[1] == t->shape[1] && ref->shape[2] == t->shape[2] * t->shape[3];
    /* TransformerLens's MoE (Mixtral) routes on [batch*pos, d_model]: its hook_expert_{weights,
     * indices} are [batch*pos, ...], ours [batch, pos, ...] with batch 1 — compared flat. */
    flat_qk_norm |= strstr(ctx->name, "mlp.hook_expert_") && ref->ndim == 2 && t->ndim == 3 &&
                    t->shape[0] == 1 && ref->shape[0] == t->shape[1] &&
                    ref->shape[1] == t->shape[2];
    if (ref->ndim != t->ndim && !flat_qk_norm)
        fail_msg("%s: %d dims here, %d in TransformerLens", ctx->name, t->ndim, ref->ndim);
    for (int d = 0; d < t->ndim && !flat_qk_norm; d++) {
        bool chunked_dim = attn && d == 2;
        if (!chunked_dim && t->shape[d] != ref->shape[d])
            fail_msg("%s: dim %d is %lld here, %lld in TransformerLens", ctx->name, d,
                     (long long)t->shape[d], (long long)ref->shape[d]);
    }
    const float *ours = t->data;
    for (int64_t i = 0; i < n; i++) {
        int64_t ri = i;
        if (attn) { /* [1, h, qc, k] -> [1, h, T, k] at query offset */
            int64_t k = t->shape[3], qc = t->shape[2];
            int64_t j = i % k, q = (i / k) % qc, h = i / (k * qc);
            ri = (h * ref->shape[2] + ctx->pos_offset + q) * k + j;
        }
        note_worst(abs_diff_inf(ours[i], ref_at(ref, ri)), ctx->name, &p->worst, p->worst_name,
                   sizeof p->worst_name);
    }
    p->compared++;
    return HK_HOOK_CONTINUE;
}

static bool is_split_input(const char *name, void *u) {
    (void)u;
    return strstr(name, "_input") || strstr(name, "hook_attn_in");
}
static bool not_split_input(const char *name, void *u) { return !is_split_input(name, u); }

/* every_point: the reference must cover every non-optional point that fires */
static void check_cache_ex(const char *family, const char *file, bool every_point,
                           const char *const (*renames)[2]) {
    hk_model *m = fixture_model(family);
    parity p = {.ref = fixture_ckpt(family, file), .renames = renames};
    p.seen = calloc(hk_ckpt_count(p.ref), sizeof *p.seen);
    int64_t T;
    int32_t *ids = read_ids(p.ref, "input_ids", &T);
    float *logits = calloc((size_t)(T * hk_model_vocab_size(m)), sizeof *logits);
    /* run 1: every point but the split inputs; run 2: the split inputs (they reroute ln1) */
    hk_hook_filter_fn filters[2] = {not_split_input, is_split_input};
    for (int pass = 0; pass < 2; pass++) {
        hk_hooks *h;
        assert_int_equal(hk_hooks_new(m, &h), HK_OK);
        assert_int_equal(hk_hooks_add_filter(h, filters[pass], NULL, compare, &p, NULL), HK_OK);
        if (hk_model_run(m, h, ids, NULL, 1, T, logits) != HK_OK)
            fail_msg("%s: %s", family, hk_last_error());
        hk_hooks_free(h);
    }
    const hk_st_tensor *ref_logits = hk_ckpt_find(p.ref, "logits");
    for (int64_t i = 0; i < T * hk_model_vocab_size(m); i++)
        note_worst(abs_diff_inf(logits[i], ref_at(ref_logits, i)), "logits", &p.worst,
                   p.worst_name, sizeof p.worst_name);
    size_t missing = 0;
    for (size_t i = 0; i < hk_ckpt_count(p.ref); i++) {
        const char *name = hk_ckpt_at(p.ref, i)->name;
        if (p.seen[i] || strcmp(name, "input_ids") == 0 || strcmp(name, "logits") == 0) continue;
        /* an expert's x @ W_gate_e / x @ W_up_e: no point here (hook_expert_post is their
         * product, compared above) */
        if (strstr(name, ".mlp.experts.") &&
            (strstr(name, ".hook_pre") || strstr(name, ".hook_gate"))) continue;
        print_message("%s: TransformerLens hook %s never fired here\n", family, name);
        missing++;
    }
    print_message("%s %s: %d activations compared, max |diff| %.3g (%s)\n", family, file,
                  p.compared, p.worst, p.worst_name);
    assert_int_equal(missing, 0);
    if (every_point) assert_int_equal(p.unmatched, 0);
    assert_true(p.compared > 0);
    if (!(p.worst <= ATOL))
        fail_msg("%s: %s differs from TransformerLens by %g", family, p.worst_name, p.worst);
    free(logits);
    free(ids);
    free(p.seen);
    hk_ckpt_close(p.ref);
    hk_model_free(m);
}

static void check_cache(const char *family, const char *file) {
    check_cache_ex(family, file, false, NULL);
}

/* ---- patching: resid_pre of layer L at position p from run A, into run B ---- */

typedef struct {
    float *saved; /* [d_model] */
    int64_t pos, d;
} patch;

static hk_hook_result save_pos(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c;
    patch *p = u;
    memcpy(p->saved, (float *)t->data + p->pos * t->stride[1], (size_t)p->d * sizeof(float));
    return HK_HOOK_CONTINUE;
}

static hk_hook_result write_pos(hk_tensor *t, const hk_hook_ctx *c, void *u) {
    (void)c;
    patch *p = u;
    memcpy((float *)t->data + p->pos * t->stride[1], p->saved, (size_t)p->d * sizeof(float));
    return HK_HOOK_CONTINUE;
}

static void check_patch(const char *family, const char *file) {
    hk_model *m = fixture_model(family);
    hk_ckpt *ref = fixture_ckpt(family, file);
    int64_t T, T2, one;
    int32_t *a = read_ids(ref, "patch_input_ids_a", &T);
    int32_t *b = read_ids(ref, "patch_input_ids_b", &T2);
    assert_int_equal(T, T2);
    int32_t *layer = read_ids(ref, "patch_layer", &one);
    int32_t *pos = read_ids(ref, "patch_pos", &one);
    int64_t d = hk_model_d_model(m), V = hk_model_vocab_size(m);
    patch p = {.saved = malloc((size_t)d * sizeof(float)), .pos = pos[0], .d = d};
    char name[64];
    snprintf(name, sizeof name, "blocks.%d.hook_resid_pre", layer[0]);
    float *logits = calloc((size_t)(T * V), sizeof *logits);
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    size_t mark = hk_hooks_scope_begin(h);
    assert_int_equal(hk_hooks_add(h, name, save_pos, &p, NULL), HK_OK);
    assert_int_equal(hk_model_run(m, h, a, NULL, 1, T, logits), HK_OK);
    hk_hooks_scope_end(h, mark);
    assert_int_equal(hk_hooks_add(h, name, write_pos, &p, NULL), HK_OK);
    assert_int_equal(hk_model_run(m, h, b, NULL, 1, T, logits), HK_OK);
    const hk_st_tensor *want = hk_ckpt_find(ref, "patched_logits");
    double worst = 0;
    for (int64_t i = 0; i < T * V; i++)
        worst = fmax(worst, abs_diff_inf(logits[i], ref_at(want, i)));
    print_message("%s %s: patched logits max |diff| %.3g\n", family, file, worst);
    assert_true(worst <= ATOL);
    hk_hooks_free(h);
    free(logits), free(p.saved), free(a), free(b), free(layer), free(pos);
    hk_ckpt_close(ref);
    hk_model_free(m);
}

#define FAMILY_TESTS(f, suffix)                                                          \
    static void test_cache_##f(void **s) {                                               \
        (void)s;                                                                         \
        check_cache(#f, "tl_cache" suffix ".safetensors");                               \
    }                                                                                    \
    static void test_patch_##f(void **s) {                                               \
        (void)s;                                                                         \
        check_patch(#f, "tl_patch" suffix ".safetensors");                               \
    }
FAMILY_TESTS(gpt2, "")
FAMILY_TESTS(llama, "")
FAMILY_TESTS(mistral, "")
FAMILY_TESTS(qwen2, "")
/* TransformerLens 3.9 has no LongRoPE: its native Phi-3 output differs from transformers. The
 * _longrope references are TransformerLens with transformers' LongRoPE cos/sin tables in its
 * rotary buffers — TransformerLens's hooks, transformers' numbers. */
FAMILY_TESTS(phi3, "_longrope")
FAMILY_TESTS(neox, "")
/* Qwen3: TransformerLens's config misses the fixture's sliding window (layer 1); the script
 * overrides use_local_attn/window_size/attn_types and prints why. */
FAMILY_TESTS(qwen3, "")
/* Mixtral: TransformerLens derives the fixture's config right; its MoE hooks (router, expert
 * weights/indices, each expert's pre/post) are compared like the rest. */
FAMILY_TESTS(mixtral, "")
/* Gemma 2: TransformerLens knows it only by official name; the script builds its gemma-2-2b
 * entry with the fixture's sizes and overrides eps, window, soft caps and attn_scale. */
FAMILY_TESTS(gemma2, "")
/* OLMo 2: TransformerLens knows it only by official name; the script builds its OLMo-2-0425-1B
 * entry with the fixture's sizes (eps, rotary_base, n_key_value_heads overridden) and re-splits
 * K/V into the KV heads (TransformerLens's converter splits them into n_heads). OLMo 2 has
 * only post-norms, which TransformerLens calls ln1/ln2 and hookformer ln1_post/ln2_post (the
 * names of Gemma 2's post-norms): compared under TransformerLens's names. */
static const char *const olmo2_renames[][2] = {
    {".ln1_post.", ".ln1."}, {".ln2_post.", ".ln2."}, {NULL, NULL}};
static void test_cache_olmo2(void **s) {
    (void)s;
    check_cache_ex("olmo2", "tl_cache.safetensors", false, olmo2_renames);
}
static void test_patch_olmo2(void **s) {
    (void)s;
    check_patch("olmo2", "tl_patch.safetensors");
}
/* Gemma 3: by official name only too; the gemma-3-1b entry with the fixture's sizes, eps,
 * window, attn_scale and the global layers' linear RoPE scaling overridden (12 tokens). */
FAMILY_TESTS(gemma3, "")
/* OLMoE: TransformerLens derives the fixture's config right (norm_topk_prob false). */
FAMILY_TESTS(olmoe, "")

#define HF_HOOK_TEST(f)                                                                  \
    static void test_hf_hooks_##f(void **s) {                                            \
        (void)s;                                                                         \
        check_cache_ex(#f, "hf_hooks.safetensors", true, NULL);                          \
    }
HF_HOOK_TEST(qwen3)
HF_HOOK_TEST(olmo2)
HF_HOOK_TEST(gemma2)
HF_HOOK_TEST(gemma3)
HF_HOOK_TEST(mixtral)
HF_HOOK_TEST(qwen3_moe)
HF_HOOK_TEST(olmoe)
HF_HOOK_TEST(qwen2_moe)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_gpt2),    cmocka_unit_test(test_patch_gpt2),
        cmocka_unit_test(test_cache_llama),   cmocka_unit_test(test_patch_llama),
        cmocka_unit_test(test_cache_mistral), cmocka_unit_test(test_patch_mistral),
        cmocka_unit_test(test_cache_qwen2),   cmocka_unit_test(test_patch_qwen2),
        cmocka_unit_test(test_cache_phi3),    cmocka_unit_test(test_patch_phi3),
        cmocka_unit_test(test_cache_neox),    cmocka_unit_test(test_patch_neox),
        cmocka_unit_test(test_cache_qwen3),   cmocka_unit_test(test_patch_qwen3),
        cmocka_unit_test(test_cache_mixtral), cmocka_unit_test(test_patch_mixtral),
        cmocka_unit_test(test_cache_gemma2),  cmocka_unit_test(test_patch_gemma2),
        cmocka_unit_test(test_cache_olmo2),   cmocka_unit_test(test_patch_olmo2),
        cmocka_unit_test(test_cache_gemma3),  cmocka_unit_test(test_patch_gemma3),
        cmocka_unit_test(test_cache_olmoe),   cmocka_unit_test(test_patch_olmoe),
        cmocka_unit_test(test_hf_hooks_qwen3),  cmocka_unit_test(test_hf_hooks_olmo2),
        cmocka_unit_test(test_hf_hooks_gemma2), cmocka_unit_test(test_hf_hooks_gemma3),
        cmocka_unit_test(test_hf_hooks_mixtral), cmocka_unit_test(test_hf_hooks_qwen3_moe),
        cmocka_unit_test(test_hf_hooks_olmoe), cmocka_unit_test(test_hf_hooks_qwen2_moe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
