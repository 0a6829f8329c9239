/* Patching experiments against TransformerLens (tests/fixtures/make_patching_references.py):
 * activation-patching sweeps (get_act_patch_*), zero/mean/resample ablations, ActAdd steering
 * in a forward and in generation, the logit lens, and direct logit attribution
 * (get_full_resid_decomposition + apply_ln_to_stack), on gpt2, llama (GQA) and neox (parallel
 * attention), atol 1e-4. Plus batching, position maps, sources, result files and errors. */
#include <hdf5.h>
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

#define ATOL 1e-4

typedef struct {
    const char *family;
    hk_model *m;
    hk_ckpt *ref;
    int64_t n, T, L, H, KV, V;
    int32_t *clean, *corrupted, *answer, *wrong;
    hk_prompt_set set;   /* corrupted */
    hk_prompt_set clean_set;
} fx;

static const hk_st_tensor *need(const fx *f, const char *name) {
    const hk_st_tensor *t = hk_ckpt_find(f->ref, name);
    if (!t) fail_msg("%s: reference '%s' missing", f->family, name);
    return t;
}

static float *ref_f32(const fx *f, const char *name, int64_t *n) {
    const hk_st_tensor *t = need(f, name);
    int64_t k = 1;
    for (int d = 0; d < t->ndim; d++) k *= t->shape[d];
    float *out = malloc((size_t)k * sizeof *out);
    memcpy(out, t->data, (size_t)k * sizeof *out);
    if (n) *n = k;
    return out;
}

static int32_t *ref_ids(const fx *f, const char *name, int64_t *n) {
    const hk_st_tensor *t = need(f, name);
    int64_t k = 1;
    for (int d = 0; d < t->ndim; d++) k *= t->shape[d];
    if (n) *n = k;
    return ids_from_i64(t->data, k);
}

static int setup(void **state, const char *family) {
    fx *f = calloc(1, sizeof *f);
    f->family = family;
    f->m = fixture_model(family);
    f->ref = fixture_ckpt(family, "patching.safetensors");
    const hk_st_tensor *c = need(f, "clean_ids");
    f->n = c->shape[0];
    f->T = c->shape[1];
    f->clean = ref_ids(f, "clean_ids", NULL);
    f->corrupted = ref_ids(f, "corrupted_ids", NULL);
    f->answer = ref_ids(f, "answer", NULL);
    f->wrong = ref_ids(f, "wrong", NULL);
    f->L = hk_model_n_layers(f->m);
    f->V = hk_model_vocab_size(f->m);
    const hk_st_tensor *hv = need(f, "patch_attn_head_v_all_pos");
    const hk_st_tensor *hq = need(f, "patch_attn_head_q_all_pos");
    f->H = hq->shape[1];
    f->KV = hv->shape[1];
    f->set = (hk_prompt_set){f->n, f->T, f->corrupted, f->answer, f->wrong};
    f->clean_set = (hk_prompt_set){f->n, f->T, f->clean, f->answer, f->wrong};
    *state = f;
    return 0;
}
static int setup_gpt2(void **s) { return setup(s, "gpt2"); }
static int setup_llama(void **s) { return setup(s, "llama"); }
static int setup_neox(void **s) { return setup(s, "neox"); }

static int teardown(void **state) {
    fx *f = *state;
    free(f->clean), free(f->corrupted), free(f->answer), free(f->wrong);
    hk_ckpt_close(f->ref);
    hk_model_free(f->m);
    free(f);
    return 0;
}

static void expect_close(const fx *f, const char *what, const float *got, const float *want,
                         int64_t n, double atol) {
    float d = max_abs_diff(got, want, (size_t)n);
    if (!(d <= atol)) fail_msg("%s %s: max |hookformer - TransformerLens| = %g > %g", f->family,
                               what, (double)d, atol);
}

static hk_patch_opts patch_opts(const fx *f, int64_t batch) {
    return (hk_patch_opts){.clean = f->clean, .clean_seq = f->T, .batch = batch};
}

static void check_sweep(const fx *f, const char *point, bool per_pos, bool per_head,
                        const char *ref_name, int64_t batch) {
    hk_sweep_spec spec = {point, per_pos, per_head, -1};
    hk_patch_opts o = patch_opts(f, batch);
    hk_sweep_result r;
    if (hk_patch_sweep(f->m, &f->set, &o, &spec, &r) != HK_OK)
        fail_msg("%s %s: %s", f->family, point, hk_last_error());
    int64_t n;
    float *want = ref_f32(f, ref_name, &n);
    const hk_st_tensor *t = need(f, ref_name);
    assert_int_equal(r.ndim, t->ndim);
    for (int d = 0; d < t->ndim; d++) assert_int_equal(r.shape[d], t->shape[d]);
    assert_int_equal(r.patches, n);
    char what[160];
    snprintf(what, sizeof what, "%s (batch %lld, %lld forwards)", ref_name, (long long)r.batch,
             (long long)r.forwards);
    expect_close(f, what, r.values, want, n, ATOL);
    float cm, km;
    memcpy(&cm, need(f, "clean_metric")->data, 4);
    memcpy(&km, need(f, "corrupted_metric")->data, 4);
    assert_true(fabsf(r.reference - cm) <= ATOL);
    assert_true(fabsf(r.baseline - km) <= ATOL);
    for (int64_t k = 0; k < n; k++) {
        assert_true(fabsf(r.change[k] - (want[k] - km)) <= 2 * ATOL);
        assert_true(fabsf(r.normalized[k] - (want[k] - km) / (cm - km)) <=
                    4 * ATOL / fabsf(cm - km));
    }
    free(want);
    hk_sweep_result_free(&r);
}

static void test_patch_resid_pre(void **state) {
    fx *f = *state;
    check_sweep(f, "hook_resid_pre", true, false, "patch_resid_pre", 0);
    check_sweep(f, "hook_resid_pre", true, false, "patch_resid_pre", 1);  /* one per forward */
    check_sweep(f, "hook_resid_pre", true, false, "patch_resid_pre", 5);  /* a ragged last batch */
}

/* Starting a batch at its first patched layer (the default) or running every layer gives the
 * same numbers; both equal TransformerLens. */
static void test_full_forward(void **state) {
    fx *f = *state;
    const char *points[3] = {"hook_resid_pre", "attn.hook_z", "hook_mlp_out"};
    const char *refs[3] = {"patch_resid_pre", "patch_attn_head_out_by_pos", "patch_mlp_out"};
    for (int i = 0; i < 3; i++) {
        hk_sweep_spec spec = {points[i], true, i == 1, -1};
        hk_patch_opts o = patch_opts(f, 3);
        hk_sweep_result skip, full;
        assert_int_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &skip), HK_OK);
        o.full_forward = true;
        assert_int_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &full), HK_OK);
        assert_true(max_abs_diff(skip.values, full.values, (size_t)skip.patches) <= 1e-5);
        float *want = ref_f32(f, refs[i], NULL);
        expect_close(f, refs[i], full.values, want, full.patches, ATOL);
        free(want);
        hk_sweep_result_free(&skip);
        hk_sweep_result_free(&full);
    }
}

/* A sweep split in shares (hk_sweep_part: forward f on share f % n) and merged
 * (hk_sweep_merge) equals the whole sweep bit for bit: values, change, normalized, forwards;
 * each share runs only its forwards and leaves the others' values NaN. Patching (head_out_by_pos,
 * batch 3, a ragged last forward) and a mean ablation (batch 2). */
static void test_shares(void **state) {
    fx *f = *state;
    enum { N = 3 };
    for (int kind = 0; kind < 2; kind++) {
        hk_sweep_spec spec = {kind == 0 ? "attn.hook_z" : "hook_mlp_out", true, kind == 0, -1};
        hk_patch_opts po = patch_opts(f, 3);
        hk_ablate_opts ao = {.mode = HK_ABLATE_MEAN, .ref = f->clean, .n_ref = f->n,
                             .ref_seq = f->T, .batch = 2};
        hk_sweep_result whole, part[N];
        assert_int_equal(kind == 0 ? hk_patch_sweep(f->m, &f->set, &po, &spec, &whole)
                                   : hk_ablate_sweep(f->m, &f->clean_set, &ao, &spec, &whole),
                         HK_OK);
        const int64_t n = whole.patches;
        float *values = malloc((size_t)(N * n) * sizeof *values);
        int64_t forwards[N], sum = 0;
        assert_non_null(values);
        for (int p = 0; p < N; p++) {
            po.share = ao.share = (hk_sweep_part){p, N};
            assert_int_equal(kind == 0 ? hk_patch_sweep(f->m, &f->set, &po, &spec, &part[p])
                                       : hk_ablate_sweep(f->m, &f->clean_set, &ao, &spec,
                                                         &part[p]),
                             HK_OK);
            for (int64_t k = 0; k < n; k++)
                assert_true(((k / whole.batch) % N == p) == !isnan(part[p].values[k]));
            memcpy(values + p * n, part[p].values, (size_t)n * sizeof *values);
            forwards[p] = part[p].forwards;
            sum += forwards[p];
            assert_true(forwards[p] < whole.forwards);
        }
        assert_int_equal(sum, whole.forwards);
        assert_int_equal(hk_sweep_merge(&part[1], values, forwards, N), HK_OK);
        assert_memory_equal(part[1].values, whole.values, (size_t)n * sizeof(float));
        assert_memory_equal(part[1].change, whole.change, (size_t)n * sizeof(float));
        if (kind == 0)
            assert_memory_equal(part[1].normalized, whole.normalized, (size_t)n * sizeof(float));
        assert_int_equal(part[1].forwards, whole.forwards);
        assert_int_equal(hk_sweep_merge(&part[1], values, forwards, 0), HK_ERR_INVALID_ARG);
        for (int p = 0; p < N; p++) hk_sweep_result_free(&part[p]);
        hk_sweep_result_free(&whole);
        free(values);
    }
}

static void test_patch_blocks(void **state) {
    fx *f = *state;
    check_sweep(f, "hook_attn_out", true, false, "patch_attn_out", 0);
    check_sweep(f, "hook_mlp_out", true, false, "patch_mlp_out", 0);
    check_sweep(f, "hook_resid_post", true, false, "patch_resid_post", 3);
    if (hk_ckpt_find(f->ref, "patch_resid_mid"))
        check_sweep(f, "hook_resid_mid", true, false, "patch_resid_mid", 0);
}

static void test_patch_heads(void **state) {
    fx *f = *state;
    check_sweep(f, "attn.hook_z", true, true, "patch_attn_head_out_by_pos", 0);
    check_sweep(f, "attn.hook_z", true, true, "patch_attn_head_out_by_pos", 7);
    check_sweep(f, "attn.hook_z", false, true, "patch_attn_head_out_all_pos", 0);
    check_sweep(f, "attn.hook_q", true, true, "patch_attn_head_q_by_pos", 0);
    check_sweep(f, "attn.hook_k", true, true, "patch_attn_head_k_by_pos", 0);
    check_sweep(f, "attn.hook_v", true, true, "patch_attn_head_v_by_pos", 0);
    check_sweep(f, "attn.hook_q", false, true, "patch_attn_head_q_all_pos", 0);
    check_sweep(f, "attn.hook_k", false, true, "patch_attn_head_k_all_pos", 0);
    check_sweep(f, "attn.hook_v", false, true, "patch_attn_head_v_all_pos", 2);
}

/* A caller-made source (an hk_cache of its own clean run), a single layer, position maps. */
static void test_patch_source_layer_posmap(void **state) {
    fx *f = *state;
    const char *pats[] = {"blocks.*.hook_resid_pre"};
    hk_cache *c;
    assert_int_equal(hk_run_with_cache(f->m, f->clean, NULL, f->n, f->T, pats, 1, "all", NULL, &c),
                     HK_OK);
    hk_act_source src = hk_act_source_cache(c);
    hk_patch_opts o = patch_opts(f, 0);
    o.source = &src;
    hk_sweep_spec spec = {"hook_resid_pre", true, false, 1};
    hk_sweep_result r;
    assert_int_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &r), HK_OK);
    assert_int_equal(r.shape[0], 1);
    assert_int_equal(r.layer0, 1);
    float *want = ref_f32(f, "patch_resid_pre", NULL);
    expect_close(f, "resid_pre layer 1 from a caller's cache", r.values, want + f->T, f->T, ATOL);
    hk_sweep_result_free(&r);
    /* an explicit identity map = no map; a map of -1 patches nothing */
    int64_t *map = malloc((size_t)f->T * sizeof *map);
    for (int64_t t = 0; t < f->T; t++) map[t] = t;
    o.pos_map = map;
    spec.layer = -1;
    assert_int_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &r), HK_OK);
    expect_close(f, "resid_pre with an identity pos_map", r.values, want, f->L * f->T, ATOL);
    hk_sweep_result_free(&r);
    for (int64_t t = 0; t < f->T; t++) map[t] = -1;
    assert_int_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &r), HK_OK);
    for (int64_t k = 0; k < r.patches; k++) assert_true(fabsf(r.change[k]) <= 1e-5);
    hk_sweep_result_free(&r);
    /* a clean prompt one token longer (a token in front) mapped onto the corrupted positions */
    int32_t *longer = malloc((size_t)(f->n * (f->T + 1)) * sizeof *longer);
    for (int64_t i = 0; i < f->n; i++) {
        longer[i * (f->T + 1)] = 5;
        memcpy(longer + i * (f->T + 1) + 1, f->clean + i * f->T, (size_t)f->T * sizeof *longer);
    }
    hk_patch_opts o2 = {.clean = longer, .clean_seq = f->T + 1, .pos_map = map};
    for (int64_t t = 0; t < f->T; t++) map[t] = t + 1;
    spec.layer = 0; /* at layer 0 resid_pre is the embedding: position-independent for rotary */
    assert_int_equal(hk_patch_sweep(f->m, &f->set, &o2, &spec, &r), HK_OK);
    if (strcmp(f->family, "gpt2") != 0)
        expect_close(f, "resid_pre layer 0 through a shifting pos_map", r.values, want, f->T, ATOL);
    hk_sweep_result_free(&r);
    o2.pos_map = NULL;
    assert_int_equal(hk_patch_sweep(f->m, &f->set, &o2, &spec, &r), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "pos_map"));
    free(longer);
    free(map);
    free(want);
    hk_cache_free(c);
}

/* Clean activations read back from an HDF5 activation store (hookformer cache's format). */
static void test_store_source(void **state) {
    fx *f = *state;
    char dir[] = "/tmp/hk_store_src_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/clean.h5", dir);
    const char *pats[] = {"blocks.*.hook_resid_pre", "blocks.*.attn.hook_z"};
    hk_store *w;
    if (hk_store_create(path, f->m, pats, 2, NULL, &w) != HK_OK) fail_msg("%s", hk_last_error());
    assert_int_equal(hk_store_run(w, f->m, f->clean, NULL, f->n, f->T), HK_OK);
    assert_int_equal(hk_store_close(w), HK_OK);
    hk_store *r;
    assert_int_equal(hk_store_open(path, &r), HK_OK);
    hk_act_source src;
    assert_int_equal(hk_act_source_store(r, NULL, f->n, &src), HK_OK);
    hk_patch_opts o = patch_opts(f, 0);
    o.source = &src;
    const char *points[2] = {"hook_resid_pre", "attn.hook_z"};
    const char *refs[2] = {"patch_resid_pre", "patch_attn_head_out_by_pos"};
    for (int i = 0; i < 2; i++) {
        hk_sweep_spec spec = {points[i], true, i == 1, -1};
        hk_sweep_result res;
        if (hk_patch_sweep(f->m, &f->set, &o, &spec, &res) != HK_OK)
            fail_msg("%s", hk_last_error());
        float *want = ref_f32(f, refs[i], NULL);
        expect_close(f, refs[i], res.values, want, res.patches, ATOL);
        free(want);
        hk_sweep_result_free(&res);
    }
    /* a point the store does not hold: the sweep fails naming it */
    hk_sweep_spec spec = {"hook_mlp_out", true, false, -1};
    hk_sweep_result res;
    assert_int_not_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &res), HK_OK);
    assert_non_null(strstr(hk_last_error(), "hook_mlp_out"));
    hk_act_source_store_free(&src);
    hk_store_close(r);
    unlink(path);
    rmdir(dir);
}

static void check_ablation(const fx *f, hk_ablate_mode mode, const char *point, bool per_pos,
                           bool per_head, const char *ref_name) {
    int64_t n_ref_ids;
    int32_t *ref = ref_ids(f, "ref_ids", &n_ref_ids);
    int64_t n_idx;
    int32_t *idx32 = ref_ids(f, "resample_idx", &n_idx);
    int64_t idx[8];
    for (int64_t i = 0; i < n_idx; i++) idx[i] = idx32[i];
    hk_ablate_opts o = {.mode = mode, .ref = ref, .n_ref = n_ref_ids / f->T, .ref_seq = f->T,
                        .resample_idx = idx};
    hk_sweep_spec spec = {point, per_pos, per_head, -1};
    hk_sweep_result r;
    if (hk_ablate_sweep(f->m, &f->clean_set, &o, &spec, &r) != HK_OK)
        fail_msg("%s %s: %s", f->family, ref_name, hk_last_error());
    int64_t n;
    float *want = ref_f32(f, ref_name, &n);
    assert_int_equal(r.patches, n);
    expect_close(f, ref_name, r.values, want, n, ATOL);
    float cm;
    memcpy(&cm, need(f, "clean_metric")->data, 4);
    assert_true(fabsf(r.baseline - cm) <= ATOL);
    assert_null(r.normalized);
    for (int64_t k = 0; k < n; k++) assert_true(fabsf(r.change[k] - (want[k] - cm)) <= 2 * ATOL);
    free(want);
    free(ref);
    free(idx32);
    hk_sweep_result_free(&r);
}

static void test_ablations(void **state) {
    fx *f = *state;
    check_ablation(f, HK_ABLATE_ZERO, "attn.hook_z", false, true, "ablate_zero_head");
    check_ablation(f, HK_ABLATE_MEAN, "attn.hook_z", false, true, "ablate_mean_head");
    check_ablation(f, HK_ABLATE_RESAMPLE, "attn.hook_z", false, true, "ablate_resample_head");
    check_ablation(f, HK_ABLATE_ZERO, "hook_mlp_out", true, false, "ablate_zero_mlp_out_by_pos");
}

static void test_steering(void **state) {
    fx *f = *state;
    int32_t *pos = ref_ids(f, "steer_pos_ids", NULL), *neg = ref_ids(f, "steer_neg_ids", NULL);
    float coef;
    memcpy(&coef, need(f, "steer_coef")->data, 4);
    hk_steer_vector aligned, last;
    assert_int_equal(hk_steer_from_prompts(f->m, "hook_resid_pre", 1, pos, 4, neg, 4,
                                           HK_STEER_ALIGNED, &aligned), HK_OK);
    assert_int_equal(hk_steer_from_prompts(f->m, "hook_resid_pre", 1, pos, 4, neg, 4,
                                           HK_STEER_LAST, &last), HK_OK);
    assert_int_equal(aligned.n_pos, 4);
    assert_int_equal(last.n_pos, 1);
    float *logits = malloc((size_t)(f->T * f->V) * sizeof *logits);
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(f->m, &h), HK_OK);
    hk_steer_apply a1 = {&aligned, coef, 1};
    hk_hook_handle hh;
    assert_int_equal(hk_steer_add(h, &a1, &hh), HK_OK);
    assert_int_equal(hk_model_run(f->m, h, f->clean, NULL, 1, f->T, logits), HK_OK);
    int64_t n;
    float *want = ref_f32(f, "steer_aligned_logits", &n);
    expect_close(f, "steer (aligned, positions 1..4)", logits, want, n, ATOL);
    free(want);
    assert_int_equal(hk_hooks_remove(h, hh), HK_OK);
    /* the single vector through a save/load round trip */
    char path[] = "/tmp/hk_steer_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(hk_steer_save(&last, f->m, path, false), HK_ERR_IO); /* exists */
    assert_int_equal(hk_steer_save(&last, f->m, path, true), HK_OK);
    hk_steer_vector loaded;
    assert_int_equal(hk_steer_load(path, &loaded), HK_OK);
    assert_int_equal(loaded.layer, 1);
    assert_string_equal(loaded.point, "hook_resid_pre");
    assert_int_equal(loaded.n_pos, 1);
    assert_memory_equal(loaded.vec, last.vec, (size_t)last.d_model * sizeof(float));
    hk_steer_apply a2 = {&loaded, coef, 2};
    assert_int_equal(hk_steer_add(h, &a2, &hh), HK_OK);
    assert_int_equal(hk_model_run(f->m, h, f->clean, NULL, 1, f->T, logits), HK_OK);
    want = ref_f32(f, "steer_last_logits", &n);
    expect_close(f, "steer (one vector from position 2)", logits, want, n, ATOL);
    free(want);
    /* generation: prefill in chunks of 3, then every generated token steered */
    int64_t n_gen;
    int32_t *gen = ref_ids(f, "steer_last_generate", &n_gen);
    int32_t out[16];
    int64_t n_out = 0;
    assert_int_equal(hk_generate(f->m, h, f->clean, f->T, n_gen, 3, NULL, NULL, 0, out, &n_out),
                     HK_OK);
    assert_int_equal(n_out, n_gen);
    assert_memory_equal(out, gen, (size_t)n_gen * sizeof *gen);
    /* errors: a bad file, a bad point */
    FILE *junk = fopen(path, "w");
    fputs("not hdf5", junk);
    fclose(junk);
    hk_steer_vector bad;
    assert_int_equal(hk_steer_load(path, &bad), HK_ERR_IO);
    assert_non_null(strstr(hk_last_error(), path));
    assert_int_equal(hk_steer_from_prompts(f->m, "attn.hook_z", 1, pos, 4, neg, 4,
                                           HK_STEER_LAST, &bad), HK_ERR_UNSUPPORTED);
    assert_int_equal(hk_steer_from_prompts(f->m, "hook_resid_pre", 1, pos, 4, neg, 3,
                                           HK_STEER_ALIGNED, &bad), HK_ERR_INVALID_ARG);
    unlink(path);
    free(gen);
    hk_steer_vector_free(&loaded);
    hk_steer_vector_free(&aligned);
    hk_steer_vector_free(&last);
    hk_hooks_free(h);
    free(logits);
    free(pos);
    free(neg);
}

static void test_lens(void **state) {
    fx *f = *state;
    hk_lens_result r;
    assert_int_equal(hk_logit_lens(f->m, f->clean, f->T, 5, &r), HK_OK);
    assert_int_equal(r.n_rows, f->L + 1);
    int64_t n;
    float *want = ref_f32(f, "lens_top_logits", &n);
    int32_t *ids = ref_ids(f, "lens_top_ids", NULL);
    assert_int_equal(n, r.n_rows * r.seq * r.k);
    expect_close(f, "logit lens top-5 logits", r.top_logits, want, n, ATOL);
    for (int64_t i = 0; i < n; i++) /* ids equal unless two logits tie within the tolerance */
        if (ids[i] != r.top_ids[i]) {
            int64_t k = i % 5;
            bool tie = (k > 0 && fabsf(want[i] - want[i - 1]) < 2 * ATOL) ||
                       (k < 4 && fabsf(want[i] - want[i + 1]) < 2 * ATOL);
            if (!tie) fail_msg("%s lens: id %d here, %d in TransformerLens at %lld", f->family,
                               r.top_ids[i], ids[i], (long long)i);
        }
    free(want);
    free(ids);
    /* probabilities: softmax over the whole vocabulary, so with k = vocab each row sums to 1 */
    for (int64_t i = 0; i < n; i++) {
        const int64_t k = i % 5;
        assert_true(r.top_probs[i] > 0 && r.top_probs[i] <= 1);
        if (k) assert_float_equal(r.top_probs[i] / r.top_probs[i - 1],
                                  expf(r.top_logits[i] - r.top_logits[i - 1]), 1e-4);
    }
    hk_lens_result_free(&r);
    const int64_t V = hk_model_vocab_size(f->m);
    assert_int_equal(hk_logit_lens(f->m, f->clean, f->T, V, &r), HK_OK);
    for (int64_t row = 0; row < r.n_rows * r.seq; row++) {
        double sum = 0;
        for (int64_t j = 0; j < V; j++) sum += r.top_probs[row * V + j];
        assert_float_equal(sum, 1.0, 1e-4);
    }
    hk_lens_result_free(&r);
}

static void test_dla(void **state) {
    fx *f = *state;
    hk_dla_result r;
    if (hk_dla(f->m, &f->clean_set, &r) != HK_OK) fail_msg("%s", hk_last_error());
    int64_t n;
    float *want = ref_f32(f, "dla", &n);
    assert_int_equal(n, r.n_components * r.n_prompts);
    expect_close(f, "direct logit attribution", r.values, want, n, ATOL);
    free(want);
    want = ref_f32(f, "dla_total", &n);
    expect_close(f, "DLA total (the logit difference)", r.total, want, n, ATOL);
    free(want);
    assert_string_equal(r.labels[0], "L0H0");
    assert_string_equal(r.labels[f->L * f->H], "0_mlp_out");
    assert_string_equal(r.labels[r.n_components - 1], "bias");
    assert_string_equal(r.labels[f->L * f->H + f->L], "embed");
    hk_dla_result_free(&r);
}

/* Result file: written where asked, readable, and an existing file is never clobbered. */
static void test_results_file(void **state) {
    fx *f = *state;
    hk_sweep_spec spec = {"attn.hook_z", true, true, -1};
    hk_patch_opts o = patch_opts(f, 0);
    hk_sweep_result r;
    assert_int_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &r), HK_OK);
    char path[] = "/tmp/hk_results_XXXXXX";
    int fd = mkstemp(path);
    assert_true(write(fd, "keep", 4) == 4);
    close(fd);
    hk_results *w;
    assert_int_equal(hk_results_create(path, false, f->m, "patch", &w), HK_ERR_IO);
    assert_non_null(strstr(hk_last_error(), "exists"));
    FILE *chk = fopen(path, "r");
    char buf[8] = {0};
    assert_true(fread(buf, 1, 4, chk) == 4);
    fclose(chk);
    assert_string_equal(buf, "keep");
    assert_int_equal(hk_results_create(path, true, f->m, "patch", &w), HK_OK);
    assert_int_equal(hk_results_add_sweep(w, "head_out_by_pos", &r), HK_OK);
    const char *labels[64];
    char lab[64][8];
    for (int64_t t = 0; t < f->T; t++) {
        snprintf(lab[t], sizeof lab[t], "%d", f->corrupted[t]);
        labels[t] = lab[t];
    }
    assert_int_equal(hk_results_add_tokens(w, "corrupted_tokens", f->corrupted, f->n, f->T, labels),
                     HK_OK);
    assert_int_equal(hk_results_add_sweep(w, "head_out_by_pos", &r), HK_ERR_IO); /* twice */
    assert_int_equal(hk_results_close(w), HK_ERR_IO); /* an earlier write failed: not renamed */
    chk = fopen(path, "r");
    assert_true(fread(buf, 1, 4, chk) == 4);
    fclose(chk);
    assert_string_equal(buf, "keep");
    assert_int_equal(hk_results_create(path, true, f->m, "patch", &w), HK_OK);
    assert_int_equal(hk_results_add_sweep(w, "head_out_by_pos", &r), HK_OK);
    assert_int_equal(hk_results_close(w), HK_OK);
    /* read it back */
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t ds = H5Dopen2(file, "head_out_by_pos/normalized", H5P_DEFAULT);
    assert_true(ds >= 0);
    float *back = malloc((size_t)r.patches * sizeof *back);
    assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    assert_memory_equal(back, r.normalized, (size_t)r.patches * sizeof *back);
    hid_t a = H5Aopen(ds, "dims", H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    char *dims = NULL;
    assert_true(H5Aread(a, t, &dims) >= 0);
    assert_string_equal(dims, "layer pos head");
    H5free_memory(dims);
    H5Tclose(t), H5Aclose(a), H5Dclose(ds), H5Fclose(file);
    free(back);
    unlink(path);
    hk_sweep_result_free(&r);
}

static void test_errors(void **state) {
    fx *f = *state;
    hk_patch_opts o = patch_opts(f, 0);
    hk_sweep_result r;
    hk_sweep_spec spec = {"hook_nonsense", true, false, -1};
    assert_int_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &r), HK_ERR_NOT_FOUND);
    assert_non_null(strstr(hk_last_error(), "hook_nonsense"));
    spec = (hk_sweep_spec){"hook_resid_pre", true, true, -1};
    assert_int_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &r), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "per_head"));
    spec = (hk_sweep_spec){"attn.hook_pattern", false, false, -1};
    assert_int_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &r), HK_ERR_UNSUPPORTED);
    spec = (hk_sweep_spec){"hook_resid_pre", true, false, 99};
    assert_int_equal(hk_patch_sweep(f->m, &f->set, &o, &spec, &r), HK_ERR_INVALID_ARG);
    int32_t bad_answer[2] = {(int32_t)f->V, 0};
    hk_prompt_set bad = f->set;
    bad.answer = bad_answer;
    spec.layer = -1;
    assert_int_equal(hk_patch_sweep(f->m, &bad, &o, &spec, &r), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "vocabulary"));
    hk_ablate_opts ao = {.mode = HK_ABLATE_MEAN};
    assert_int_equal(hk_ablate_sweep(f->m, &f->clean_set, &ao, &spec, &r), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "reference"));
}

#define FAMILY_TESTS(setup_fn)                                                     \
    cmocka_unit_test_setup_teardown(test_patch_resid_pre, setup_fn, teardown),     \
    cmocka_unit_test_setup_teardown(test_patch_blocks, setup_fn, teardown),        \
    cmocka_unit_test_setup_teardown(test_full_forward, setup_fn, teardown),        \
    cmocka_unit_test_setup_teardown(test_shares, setup_fn, teardown),              \
    cmocka_unit_test_setup_teardown(test_patch_heads, setup_fn, teardown),         \
    cmocka_unit_test_setup_teardown(test_patch_source_layer_posmap, setup_fn, teardown), \
    cmocka_unit_test_setup_teardown(test_store_source, setup_fn, teardown),        \
    cmocka_unit_test_setup_teardown(test_ablations, setup_fn, teardown),           \
    cmocka_unit_test_setup_teardown(test_steering, setup_fn, teardown),            \
    cmocka_unit_test_setup_teardown(test_lens, setup_fn, teardown),                \
    cmocka_unit_test_setup_teardown(test_dla, setup_fn, teardown)

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        FAMILY_TESTS(setup_gpt2),
        FAMILY_TESTS(setup_llama),
        FAMILY_TESTS(setup_neox),
        cmocka_unit_test_setup_teardown(test_results_file, setup_llama, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup_gpt2, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
