/* The in-memory activation cache (hk_cache_*, hk_run_with_cache) on the fixture models:
 * entries and shapes, exact copies, position selections against the "all" cache, attention
 * patterns assembled from per-sequence chunks, exact byte counts, errors, runs of different
 * batch sizes, chunked and strided views and session feeds fired by hand. (The values
 * themselves are checked against TransformerLens by tests/models/test_tl_parity.c.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/checkpoint.h"
#include "core/dtype.h"
#include "core/model.h"
#include "fixtures.h"
#include "test_util.h"
#include "hookformer.h"
#include "hooks/registry.h"

static const char *const FAMILIES[] = {"gpt2", "llama", "mistral", "qwen2", "phi3", "neox"};
#define N_FAMILIES (sizeof FAMILIES / sizeof FAMILIES[0])

/* A fixture model and its reference batch (3 right-padded sequences). */
typedef struct {
    hk_model *m;
    int64_t batch, seq, vocab;
    int32_t *tokens;  /* [batch, seq] */
    int64_t *lengths; /* [batch] */
    float *logits;    /* [batch, seq, vocab] written by the runs */
} fixture;

static void fixture_load(const char *name, fixture *f) {
    memset(f, 0, sizeof *f);
    f->m = fixture_model(name);
    hk_ckpt *ck = fixture_ckpt(name, "reference.safetensors");
    const hk_st_tensor *ids = hk_ckpt_find(ck, "input_ids");
    const hk_st_tensor *lens = hk_ckpt_find(ck, "lengths");
    assert_non_null(ids);
    assert_non_null(lens);
    f->batch = ids->shape[0];
    f->seq = ids->shape[1];
    f->vocab = hk_model_vocab_size(f->m);
    size_t n = (size_t)(f->batch * f->seq);
    f->tokens = ids_from_i64(ids->data, (int64_t)n);
    f->lengths = malloc((size_t)f->batch * sizeof *f->lengths);
    f->logits = calloc(n * (size_t)f->vocab, sizeof *f->logits);
    assert_non_null(f->lengths);
    assert_non_null(f->logits);
    memcpy(f->lengths, lens->data, (size_t)f->batch * 8);
    hk_ckpt_close(ck);
}

static void fixture_free(fixture *f) {
    free(f->tokens);
    free(f->lengths);
    free(f->logits);
    hk_model_free(f->m);
}

static hk_cache *run_cache(fixture *f, const char *const *patterns, size_t n,
                           const char *positions) {
    hk_cache *c = NULL;
    EXPECT_OK(hk_run_with_cache(f->m, f->tokens, f->lengths, f->batch, f->seq, patterns, n,
                                positions, f->logits, &c));
    assert_non_null(c);
    return c;
}

static size_t numel(const hk_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

/* f32, host, contiguous row-major, of the given shape. */
static void expect_shape(const hk_tensor *t, int ndim, const int64_t *shape, const char *what) {
    assert_non_null(t);
    assert_int_equal(t->dtype, HK_DTYPE_F32);
    assert_int_equal(t->device, HK_DEVICE_CPU);
    bool ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok) {
        char got[128] = "", want[128] = "";
        for (int d = 0; d < t->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), " %lld",
                     (long long)t->shape[d]);
        for (int d = 0; d < ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), " %lld",
                     (long long)shape[d]);
        fail_msg("%s: shape [%s ] expected [%s ]", what, got, want);
    }
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        assert_int_equal(t->stride[d], stride);
        stride *= shape[d];
    }
}

/* Same float, -inf included (NaN never is). */
static bool same(float a, float b) { return a == b; }

/* ---- (a) entries and shapes; copies, not aliases --------------------------------------- */

static void test_resid_post_entries(void **state) {
    (void)state;
    fixture f;
    fixture_load("gpt2", &f);
    const int64_t L = hk_model_n_layers(f.m), D = hk_model_d_model(f.m);
    const char *pat[] = {"blocks.*.hook_resid_post"};
    hk_cache *c = run_cache(&f, pat, 1, NULL);
    assert_int_equal(hk_cache_count(c), (size_t)L);
    for (int64_t l = 0; l < L; l++) {
        char name[64];
        snprintf(name, sizeof name, "blocks.%lld.hook_resid_post", (long long)l);
        assert_string_equal(hk_cache_name_at(c, (size_t)l), name);
        const hk_tensor *t = hk_cache_get(c, name);
        int64_t shape[3] = {f.batch, f.seq, D};
        expect_shape(t, 3, shape, name);
        assert_ptr_equal(hk_cache_get_layer(c, "hook_resid_post", l), t);
    }
    assert_null(hk_cache_name_at(c, (size_t)L));
    assert_null(hk_cache_get(c, "hook_embed"));
    assert_null(hk_cache_get(c, "blocks.0.hook_resid_pre"));
    assert_int_equal(hk_cache_bytes(c), (size_t)(L * f.batch * f.seq * D) * sizeof(float));
    hk_cache_free(c);

    /* resid_post of layer 0 is resid_pre of layer 1 (the same buffer, one hook later); a copy
     * keeps it, an alias would show layer 1's output */
    const char *pat2[] = {"blocks.0.hook_resid_post", "blocks.1.hook_resid_p*"};
    c = run_cache(&f, pat2, 2, "all");
    assert_int_equal(hk_cache_count(c), 3);
    assert_string_equal(hk_cache_name_at(c, 0), "blocks.0.hook_resid_post");
    assert_string_equal(hk_cache_name_at(c, 1), "blocks.1.hook_resid_pre");
    assert_string_equal(hk_cache_name_at(c, 2), "blocks.1.hook_resid_post");
    const hk_tensor *post0 = hk_cache_get(c, "blocks.0.hook_resid_post");
    const hk_tensor *pre1 = hk_cache_get(c, "blocks.1.hook_resid_pre");
    const hk_tensor *post1 = hk_cache_get(c, "blocks.1.hook_resid_post");
    const float *a = post0->data, *b = pre1->data, *p = post1->data;
    assert_true(a != b && b != p);
    size_t differ = 0;
    for (size_t i = 0; i < numel(post0); i++) {
        assert_true(same(a[i], b[i]));
        differ += a[i] != p[i];
    }
    assert_true(differ > numel(post0) / 2);
    hk_cache_free(c);
    fixture_free(&f);
}

/* ---- (b) unembed.hook_out is the logits ---------------------------------------------------- */

static void test_unembed_out_is_logits(void **state) {
    (void)state;
    for (size_t i = 0; i < N_FAMILIES; i++) {
        fixture f;
        fixture_load(FAMILIES[i], &f);
        const char *pat[] = {"unembed.hook_out", "unembed.hook_in"};
        hk_cache *c = run_cache(&f, pat, 2, NULL);
        const hk_tensor *t = hk_cache_get(c, "unembed.hook_out");
        int64_t shape[3] = {f.batch, f.seq, f.vocab};
        expect_shape(t, 3, shape, FAMILIES[i]);
        assert_memory_equal(t->data, f.logits, numel(t) * sizeof(float));
        assert_ptr_equal(hk_cache_get_layer(c, "unembed.hook_out", -1), t);
        /* and the logits are those of a run without hooks */
        float *plain = calloc(numel(t), sizeof *plain);
        assert_non_null(plain);
        EXPECT_OK(hk_model_forward(f.m, f.tokens, f.lengths, f.batch, f.seq, plain));
        assert_memory_equal(plain, f.logits, numel(t) * sizeof(float));
        free(plain);
        hk_cache_free(c);
        fixture_free(&f);
    }
}

/* ---- (c) positions -------------------------------------------------------------------------- */

/* Index of the (query) position dim of an entry: 2 for scores/patterns, else 1. */
static int pos_dim_of(const char *name) { return strstr(name, "attn.hook_") &&
                                                 (strstr(name, "scores") ||
                                                  strstr(name, "pattern")) ? 2 : 1; }

/* sel must be all[..., positions(b, s), ...] for every element; pos(b, s) maps a selected
 * index to the absolute position. */
typedef int64_t (*pos_map)(int64_t b, int64_t s, const void *arg);

static void expect_slice(const hk_tensor *all, const hk_tensor *sel, int pd, pos_map map,
                         const void *arg, const char *what) {
    assert_int_equal(all->ndim, sel->ndim);
    for (int d = 0; d < all->ndim; d++)
        if (d != pd) assert_int_equal(all->shape[d], sel->shape[d]);
    int64_t idx[HK_MAX_DIMS] = {0};
    size_t n = numel(sel);
    const float *A = all->data, *S = sel->data;
    for (size_t i = 0; i < n; i++) {
        size_t rem = i;
        for (int d = sel->ndim - 1; d >= 0; d--) {
            idx[d] = (int64_t)(rem % (size_t)sel->shape[d]);
            rem /= (size_t)sel->shape[d];
        }
        int64_t off = 0;
        for (int d = 0; d < all->ndim; d++)
            off += (d == pd ? map(idx[0], idx[pd], arg) : idx[d]) * all->stride[d];
        if (!same(S[i], A[off]))
            fail_msg("%s: element %zu is %g, expected %g", what, i, (double)S[i],
                     (double)A[off]);
    }
}

static int64_t map_last(int64_t b, int64_t s, const void *arg) {
    (void)s;
    return ((const int64_t *)arg)[b] - 1;
}

static int64_t map_offset(int64_t b, int64_t s, const void *arg) {
    (void)b;
    return *(const int64_t *)arg + s;
}

static void check_positions(const char *family) {
    fixture f;
    fixture_load(family, &f);
    const char *pat[] = {"blocks.*.hook_resid_post", "blocks.0.attn.hook_pattern",
                         "blocks.1.attn.hook_attn_scores", "ln_final.hook_scale",
                         "blocks.0.attn.hook_q"};
    const size_t np = sizeof pat / sizeof pat[0];
    hk_cache *all = run_cache(&f, pat, np, "all");
    const int64_t T = f.seq;
    /* spec, first selected position, count */
    struct {
        const char *spec;
        int64_t start, count;
    } ranges[] = {
        {"2:5", 2, 3},          {"-3:", T - 3, 3},      {":4", 0, 4},
        {"5:2", 5, 0},          {"-100:100", 0, T},     {"15:", 15, T - 15},
        {"0:-1", 0, T - 1},     {"-5:-2", T - 5, 3},    {":", 0, T},
    };
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        hk_cache *c = run_cache(&f, pat, np, ranges[r].spec);
        assert_int_equal(hk_cache_count(c), hk_cache_count(all));
        size_t bytes = 0;
        for (size_t i = 0; i < hk_cache_count(c); i++) {
            const char *name = hk_cache_name_at(c, i);
            const hk_tensor *a = hk_cache_get(all, name), *s = hk_cache_get(c, name);
            assert_non_null(s);
            int pd = pos_dim_of(name);
            assert_int_equal(s->shape[pd], ranges[r].count);
            char what[160];
            snprintf(what, sizeof what, "%s %s \"%s\"", family, name, ranges[r].spec);
            expect_slice(a, s, pd, map_offset, &ranges[r].start, what);
            bytes += numel(s) * sizeof(float);
        }
        assert_int_equal(hk_cache_bytes(c), bytes);
        hk_cache_free(c);
    }
    /* "last": the last valid position of each sequence; the dim is kept with size 1 */
    hk_cache *c = run_cache(&f, pat, np, "last");
    for (size_t i = 0; i < hk_cache_count(c); i++) {
        const char *name = hk_cache_name_at(c, i);
        const hk_tensor *s = hk_cache_get(c, name);
        assert_int_equal(s->shape[pos_dim_of(name)], 1);
        char what[160];
        snprintf(what, sizeof what, "%s %s \"last\"", family, name);
        expect_slice(hk_cache_get(all, name), s, pos_dim_of(name), map_last, f.lengths, what);
    }
    hk_cache_free(c);
    hk_cache_free(all);
    fixture_free(&f);
}

static void test_positions(void **state) {
    (void)state;
    check_positions("gpt2");
    check_positions("mistral");
}

/* "last" without lengths (hk_cache_attach users who do not set them): the run's last
 * position; with hk_cache_set_lengths: per sequence. */
static void test_last_with_attach(void **state) {
    (void)state;
    fixture f;
    fixture_load("llama", &f);
    hk_hooks *h = NULL;
    hk_cache *all = NULL, *last = NULL;
    EXPECT_OK(hk_hooks_new(f.m, &h));
    EXPECT_OK(hk_cache_new(f.m, &all));
    EXPECT_OK(hk_cache_new(f.m, &last));
    const char *pat[] = {"blocks.1.hook_mlp_out", "blocks.0.attn.hook_pattern"};
    EXPECT_OK(hk_cache_attach(all, h, pat, 2, NULL));
    EXPECT_OK(hk_cache_attach(last, h, pat, 2, "last"));
    assert_int_equal(hk_hooks_count(h), 2);
    EXPECT_OK(hk_model_run(f.m, h, f.tokens, f.lengths, f.batch, f.seq, f.logits));
    int64_t run_last[8];
    for (int64_t b = 0; b < f.batch; b++) run_last[b] = f.seq;
    for (size_t i = 0; i < 2; i++)
        expect_slice(hk_cache_get(all, pat[i]), hk_cache_get(last, pat[i]), pos_dim_of(pat[i]),
                     map_last, run_last, "last without lengths");
    EXPECT_OK(hk_cache_set_lengths(last, f.lengths, f.batch));
    EXPECT_OK(hk_model_run(f.m, h, f.tokens, f.lengths, f.batch, f.seq, f.logits));
    for (size_t i = 0; i < 2; i++)
        expect_slice(hk_cache_get(all, pat[i]), hk_cache_get(last, pat[i]), pos_dim_of(pat[i]),
                     map_last, f.lengths, "last with lengths");
    /* lengths for another batch size: the run fails naming the cache's problem */
    EXPECT_OK(hk_cache_set_lengths(last, f.lengths, 2));
    expect_error(hk_model_run(f.m, h, f.tokens, f.lengths, f.batch, f.seq, f.logits),
                 HK_ERR_HOOK, "lengths were set for 2 sequences but the run has 3", NULL, NULL);
    /* forgetting them goes back to the run's last position */
    EXPECT_OK(hk_cache_set_lengths(last, NULL, 0));
    EXPECT_OK(hk_model_run(f.m, h, f.tokens, f.lengths, f.batch, f.seq, f.logits));
    expect_slice(hk_cache_get(all, pat[0]), hk_cache_get(last, pat[0]), 1, map_last, run_last,
                 "last after forgetting lengths");
    hk_cache_free(all);
    hk_cache_free(last);
    hk_hooks_free(h);
    fixture_free(&f);
}

/* ---- (d) attention patterns assembled from per-sequence chunks ---------------------------- */

static void check_patterns(const char *family) {
    fixture f;
    fixture_load(family, &f);
    const hk_config *cfg = &f.m->cfg;
    const int64_t H = cfg->n_heads, T = f.seq;
    const char *pat[] = {"blocks.*.attn.hook_pattern", "blocks.*.attn.hook_attn_scores"};
    hk_cache *c = run_cache(&f, pat, 2, NULL);
    assert_int_equal(hk_cache_count(c), (size_t)(2 * cfg->n_layers));
    for (int64_t l = 0; l < cfg->n_layers; l++) {
        const hk_tensor *p = hk_cache_get_layer(c, "attn.hook_pattern", l);
        const hk_tensor *s = hk_cache_get_layer(c, "attn.hook_attn_scores", l);
        int64_t shape[4] = {f.batch, H, T, T};
        expect_shape(p, 4, shape, "hook_pattern");
        expect_shape(s, 4, shape, "hook_attn_scores");
        int64_t window = cfg->layer_window[l] ? cfg->window : 0;
        const float *P = p->data, *S = s->data;
        for (int64_t b = 0; b < f.batch; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t q = 0; q < T; q++) {
                    const float *prow = P + ((b * H + h) * T + q) * T;
                    const float *srow = S + ((b * H + h) * T + q) * T;
                    double sum = 0;
                    for (int64_t k = 0; k < T; k++) {
                        bool allowed = k <= q && k < f.lengths[b] &&
                                       (window == 0 || q - k < window);
                        if (!allowed) {
                            if (prow[k] != 0.0f || !(isinf(srow[k]) && srow[k] < 0))
                                fail_msg("%s layer %lld [%lld,%lld,%lld,%lld]: masked key has "
                                         "pattern %g, score %g",
                                         family, (long long)l, (long long)b, (long long)h,
                                         (long long)q, (long long)k, (double)prow[k],
                                         (double)srow[k]);
                        } else {
                            assert_true(isfinite(srow[k]));
                            assert_true(prow[k] > 0.0f && prow[k] <= 1.0f);
                        }
                        sum += prow[k];
                    }
                    /* a query whose every key is masked (a padded query past the window
                     * of the sequence's keys) has an all-zero row */
                    bool any = false;
                    for (int64_t k = 0; k < T; k++)
                        any = any || (k <= q && k < f.lengths[b] &&
                                      (window == 0 || q - k < window));
                    if (fabs(sum - (any ? 1.0 : 0.0)) > 1e-5)
                        fail_msg("%s layer %lld [%lld,%lld,%lld]: row sums to %.8f", family,
                                 (long long)l, (long long)b, (long long)h, (long long)q, sum);
                }
    }
    hk_cache_free(c);
    fixture_free(&f);
}

static void test_patterns_assembled(void **state) {
    (void)state;
    for (size_t i = 0; i < N_FAMILIES; i++) check_patterns(FAMILIES[i]);
}

/* ---- (e) bytes ------------------------------------------------------------------------------ */

/* Elements of point pt cached for a run of batch x seq with `sel` positions selected. */
static size_t expected_numel(const hk_hook_point *pt, int64_t batch, int64_t seq, int64_t sel) {
    size_t n = 1;
    const char *p = pt->dims;
    for (int d = 0; d < pt->ndim; d++) {
        size_t len = strcspn(p, " ");
        int64_t size = pt->shape[d];
        if (len == 5 && strncmp(p, "batch", 5) == 0) size = batch;
        else if ((len == 3 && strncmp(p, "pos", 3) == 0) ||
                 (len == 9 && strncmp(p, "query_pos", 9) == 0))
            size = sel;
        else if (len == 7 && strncmp(p, "key_pos", 7) == 0) size = seq;
        assert_true(size >= 0);
        n *= (size_t)size;
        p += len;
        p += strspn(p, " ");
    }
    return n;
}

static void test_bytes_exact(void **state) {
    (void)state;
    fixture f;
    fixture_load("gpt2", &f);
    const char *pat[] = {"blocks.*.hook_resid_post", "blocks.0.attn.hook_pattern",
                         "blocks.1.ln2.*", "blocks.0.mlp.hook_post", "unembed.hook_out",
                         "blocks.1.attn.hook_k"};
    const size_t np = sizeof pat / sizeof pat[0];
    struct {
        const char *spec;
        int64_t sel;
    } specs[] = {{"all", f.seq}, {"2:5", 3}, {"last", 1}, {"-4:", 4}, {"3:3", 0}};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        hk_cache *c = run_cache(&f, pat, np, specs[s].spec);
        size_t want = 0, entries = 0;
        for (size_t i = 0; i < hk_model_hook_count(f.m); i++) {
            const hk_hook_point *pt = hk_model_hook_at(f.m, i);
            bool hit = false;
            for (size_t k = 0; k < np && !hit; k++) hit = hk_glob_match(pat[k], pt->name);
            if (!hit) continue;
            entries++;
            want += expected_numel(pt, f.batch, f.seq, specs[s].sel) * sizeof(float);
        }
        assert_int_equal(hk_cache_count(c), entries);
        assert_int_equal(entries, 8); /* 2 resid_post, ln2's 2, and 4 more */
        if (hk_cache_bytes(c) != want)
            fail_msg("\"%s\": %zu bytes held, expected %zu", specs[s].spec, hk_cache_bytes(c),
                     want);
        hk_cache_clear(c);
        assert_int_equal(hk_cache_bytes(c), 0);
        assert_int_equal(hk_cache_count(c), entries);
        assert_null(hk_cache_get(c, "blocks.0.hook_resid_post"));
        hk_cache_free(c);
    }
    fixture_free(&f);
}

/* ---- (f) errors and lookups ---------------------------------------------------------------- */

static void test_errors_and_lookup(void **state) {
    (void)state;
    fixture f;
    fixture_load("gpt2", &f);
    hk_cache *c = (hk_cache *)&f; /* must be reset to NULL on failure */
    const char *bad[] = {"blocks.*.hook_resid_post", "blocks.*.hook_nope", "hook_zzz"};
    expect_error(hk_run_with_cache(f.m, f.tokens, f.lengths, f.batch, f.seq, bad, 3, NULL,
                                   f.logits, &c),
                 HK_ERR_NOT_FOUND, "'blocks.*.hook_nope'", NULL, NULL);
    assert_null(c);
    const char *rot[] = {"blocks.0.attn.hook_rot_q"}; /* gpt2 has learned positions */
    expect_error(hk_run_with_cache(f.m, f.tokens, f.lengths, f.batch, f.seq, rot, 1, NULL,
                                   f.logits, &c),
                 HK_ERR_NOT_FOUND, "blocks.0.attn.hook_rot_q", NULL, NULL);
    const char *ok[] = {"blocks.1.attn.hook_z"};
    const char *specs[] = {"", "1:2:3", "first", "a:b", "1:x", " 1:2", "1.5:", "+1:"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        expect_error(hk_run_with_cache(f.m, f.tokens, f.lengths, f.batch, f.seq, ok, 1,
                                       specs[i], f.logits, &c),
                     HK_ERR_INVALID_ARG, "positions", NULL, NULL);
        assert_null(c);
    }
    expect_error(hk_run_with_cache(f.m, f.tokens, f.lengths, f.batch, f.seq, ok, 0, NULL,
                                   f.logits, &c),
                 HK_ERR_INVALID_ARG, NULL, NULL, NULL);
    expect_error(hk_run_with_cache(f.m, f.tokens, f.lengths, f.batch, f.seq, ok, 1, NULL,
                                   f.logits, NULL),
                 HK_ERR_INVALID_ARG, NULL, NULL, NULL);
    /* the run's own checks come through unchanged */
    int64_t zero[3] = {20, 0, 7};
    expect_error(hk_run_with_cache(f.m, f.tokens, zero, f.batch, f.seq, ok, 1, "last",
                                   f.logits, &c),
                 HK_ERR_INVALID_ARG, "lengths[1]", NULL, NULL);
    assert_null(c);

    /* attach: one registration per attach, one attach per point */
    hk_hooks *h = NULL;
    EXPECT_OK(hk_hooks_new(f.m, &h));
    EXPECT_OK(hk_cache_new(f.m, &c));
    const char *two[] = {"blocks.*.attn.hook_z", "ln_final.hook_normalized"};
    EXPECT_OK(hk_cache_attach(c, h, two, 2, ":3"));
    assert_int_equal(hk_hooks_count(h), 1);
    assert_int_equal(hk_cache_count(c), 3);
    const char *overlap[] = {"blocks.1.*"};
    expect_error(hk_cache_attach(c, h, overlap, 1, NULL), HK_ERR_INVALID_ARG,
                 "blocks.1.attn.hook_z", NULL, NULL);
    assert_int_equal(hk_hooks_count(h), 1);
    assert_int_equal(hk_cache_count(c), 3);
    expect_error(hk_cache_attach(c, h, bad + 1, 1, NULL), HK_ERR_NOT_FOUND,
                 "blocks.*.hook_nope", NULL, NULL);
    expect_error(hk_cache_attach(NULL, h, two, 1, NULL), HK_ERR_INVALID_ARG, NULL, NULL, NULL);
    expect_error(hk_cache_attach(c, NULL, two, 1, NULL), HK_ERR_INVALID_ARG, NULL, NULL, NULL);
    const char *with_null[] = {"hook_embed", NULL};
    expect_error(hk_cache_attach(c, h, with_null, 2, NULL), HK_ERR_INVALID_ARG, "patterns[1]", NULL, NULL);
    expect_error(hk_cache_set_lengths(c, zero, 3), HK_ERR_INVALID_ARG, "lengths[1]", NULL, NULL);
    expect_error(hk_cache_set_lengths(c, f.lengths, 0), HK_ERR_INVALID_ARG, NULL, NULL, NULL);
    /* another model's hooks */
    fixture g;
    fixture_load("neox", &g);
    hk_hooks *hg = NULL;
    EXPECT_OK(hk_hooks_new(g.m, &hg));
    expect_error(hk_cache_attach(c, hg, two, 1, NULL), HK_ERR_INVALID_ARG, "another model", NULL, NULL);
    hk_hooks_free(hg);
    fixture_free(&g);

    /* before a run: entries listed, nothing held */
    assert_string_equal(hk_cache_name_at(c, 0), "blocks.0.attn.hook_z");
    assert_string_equal(hk_cache_name_at(c, 2), "ln_final.hook_normalized");
    assert_null(hk_cache_get(c, "blocks.0.attn.hook_z"));
    assert_int_equal(hk_cache_bytes(c), 0);
    EXPECT_OK(hk_model_run(f.m, h, f.tokens, f.lengths, f.batch, f.seq, f.logits));
    const hk_tensor *z1 = hk_cache_get(c, "blocks.1.attn.hook_z");
    int64_t zshape[4] = {f.batch, 3, f.m->cfg.n_heads, f.m->cfg.d_head};
    expect_shape(z1, 4, zshape, "hook_z :3");
    assert_ptr_equal(hk_cache_get_layer(c, "attn.hook_z", 1), z1);
    assert_ptr_equal(hk_cache_get_layer(c, "ln_final.hook_normalized", -1),
                     hk_cache_get(c, "ln_final.hook_normalized"));
    assert_non_null(hk_cache_get(c, "ln_final.hook_normalized"));
    assert_null(hk_cache_get_layer(c, "attn.hook_z", 2));           /* no such layer */
    assert_null(hk_cache_get_layer(c, "attn.hook_z", -1));          /* not a global point */
    assert_null(hk_cache_get_layer(c, "ln_final.hook_normalized", 0));
    assert_null(hk_cache_get_layer(c, "hook_resid_post", 0));       /* not cached */
    assert_null(hk_cache_get(c, "blocks.1.attn.hook_pattern"));
    assert_null(hk_cache_get(c, "nonsense"));
    assert_null(hk_cache_get(c, NULL));
    assert_null(hk_cache_get(NULL, "hook_embed"));
    assert_null(hk_cache_name_at(c, 3));
    assert_int_equal(hk_cache_count(NULL), 0);
    assert_int_equal(hk_cache_bytes(NULL), 0);
    hk_cache_clear(NULL);
    hk_cache_free(NULL);
    /* the registrations stay after the cache's hooks are removed elsewhere: scope them */
    size_t mark = hk_hooks_scope_begin(h);
    hk_cache *scoped = NULL;
    EXPECT_OK(hk_cache_new(f.m, &scoped));
    const char *emb[] = {"hook_embed"};
    EXPECT_OK(hk_cache_attach(scoped, h, emb, 1, NULL));
    assert_int_equal(hk_hooks_count(h), 2);
    hk_hooks_scope_end(h, mark);
    hk_cache_free(scoped);
    assert_int_equal(hk_hooks_count(h), 1);
    EXPECT_OK(hk_model_run(f.m, h, f.tokens, f.lengths, f.batch, f.seq, f.logits));
    hk_hooks_free(h);
    hk_cache_free(c);
    fixture_free(&f);
}

/* ---- (g) runs of different batch sizes ---------------------------------------------------- */

static void test_runs_of_different_sizes(void **state) {
    (void)state;
    fixture f;
    fixture_load("qwen2", &f);
    const int64_t D = hk_model_d_model(f.m);
    const char *pat[] = {"blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern"};
    hk_hooks *h = NULL;
    hk_cache *c = NULL;
    EXPECT_OK(hk_hooks_new(f.m, &h));
    EXPECT_OK(hk_cache_new(f.m, &c));
    EXPECT_OK(hk_cache_attach(c, h, pat, 2, NULL));

    EXPECT_OK(hk_model_run(f.m, h, f.tokens, f.lengths, f.batch, f.seq, f.logits));
    const hk_tensor *t = hk_cache_get(c, pat[0]);
    int64_t big[3] = {f.batch, f.seq, D};
    expect_shape(t, 3, big, "batch run");
    size_t n_big = numel(t);
    float *first = malloc(n_big * sizeof *first);
    assert_non_null(first);
    memcpy(first, t->data, n_big * sizeof *first);
    size_t bytes_big = hk_cache_bytes(c);

    /* sequence 1 alone, at its own length: re-allocated to [1, len, d_model] */
    int64_t len = f.lengths[1];
    EXPECT_OK(hk_model_run(f.m, h, f.tokens + f.seq, &len, 1, len, f.logits));
    t = hk_cache_get(c, pat[0]);
    int64_t small[3] = {1, len, D};
    expect_shape(t, 3, small, "single run");
    const float *v = t->data;
    for (int64_t i = 0; i < len * D; i++)
        assert_true(fabsf(v[i] - first[f.seq * D + i]) <= 1e-5f);
    int64_t pshape[4] = {1, f.m->cfg.n_heads, len, len};
    expect_shape(hk_cache_get(c, pat[1]), 4, pshape, "single run pattern");
    assert_int_equal(hk_cache_bytes(c),
                     (size_t)(len * D + f.m->cfg.n_heads * len * len) * sizeof(float));

    /* the batch again: back to the first shapes and values */
    EXPECT_OK(hk_model_run(f.m, h, f.tokens, f.lengths, f.batch, f.seq, f.logits));
    t = hk_cache_get(c, pat[0]);
    expect_shape(t, 3, big, "batch run again");
    assert_memory_equal(t->data, first, n_big * sizeof *first);
    assert_int_equal(hk_cache_bytes(c), bytes_big);
    /* the same shapes once more: overwritten in place */
    const void *where = t->data;
    EXPECT_OK(hk_model_run(f.m, h, f.tokens, f.lengths, f.batch, f.seq, f.logits));
    assert_ptr_equal(hk_cache_get(c, pat[0])->data, where);
    assert_memory_equal(hk_cache_get(c, pat[0])->data, first, n_big * sizeof *first);
    /* cleared between runs: nothing held, then the next run's activations */
    hk_cache_clear(c);
    assert_null(hk_cache_get(c, pat[0]));
    assert_int_equal(hk_cache_bytes(c), 0);
    EXPECT_OK(hk_model_run(f.m, h, f.tokens + f.seq, &len, 1, len, f.logits));
    expect_shape(hk_cache_get(c, pat[0]), 3, small, "after clear");
    hk_cache_free(c);
    hk_hooks_free(h);

    /* hk_run_with_cache twice, different batch sizes */
    hk_cache *c1 = run_cache(&f, pat, 2, "last");
    hk_cache *c2 = NULL;
    EXPECT_OK(hk_run_with_cache(f.m, f.tokens + f.seq, &len, 1, len, pat, 2, "last", f.logits,
                                &c2));
    int64_t last1[3] = {f.batch, 1, D}, last2[3] = {1, 1, D};
    expect_shape(hk_cache_get(c1, pat[0]), 3, last1, "with_cache batch");
    expect_shape(hk_cache_get(c2, pat[0]), 3, last2, "with_cache single");
    const float *a = hk_cache_get(c1, pat[0])->data, *b = hk_cache_get(c2, pat[0])->data;
    for (int64_t i = 0; i < D; i++) assert_true(fabsf(a[D + i] - b[i]) <= 1e-5f);
    hk_cache_free(c1);
    hk_cache_free(c2);
    free(first);
    fixture_free(&f);
}

/* ---- chunks and strided views fired by hand ------------------------------------------------ */

static int32_t point_index(const hk_model *m, const char *name) {
    for (size_t i = 0; i < hk_model_hook_count(m); i++)
        if (strcmp(hk_model_hook_at(m, i)->name, name) == 0) return (int32_t)i;
    fail_msg("no point %s", name);
    return -1;
}

static float value_at(int64_t b, int64_t h, int64_t q, int64_t k) {
    return (float)(b * 1000 + h * 100 + q * 10 + k) * 0.25f;
}

/* Fire scores [1, H, qc, k_len] of sequence b, queries q0.., keys k0.., stored [q][h][k]
 * (so the view's head stride is k_len and its query stride H * k_len). */
static void fire_scores(hk_hooks *h, const hk_model *m, const char *name, int64_t b,
                        int64_t q0, int64_t qc, int64_t k0, int64_t kl, int64_t run_batch,
                        int64_t run_seq) {
    const int64_t H = m->cfg.n_heads;
    float *buf = malloc((size_t)(qc * H * kl) * sizeof *buf);
    assert_non_null(buf);
    for (int64_t q = 0; q < qc; q++)
        for (int64_t hh = 0; hh < H; hh++)
            for (int64_t k = 0; k < kl; k++)
                buf[(q * H + hh) * kl + k] = value_at(b, hh, q0 + q, k0 + k);
    hk_tensor t = {.data = buf, .dtype = HK_DTYPE_F32, .ndim = 4, .shape = {1, H, qc, kl},
                   .stride = {qc * H * kl, kl, H * kl, 1}};
    hk_hook_ctx ctx = {.name = name, .layer = 0, .batch_offset = b, .pos_offset = q0,
                       .key_offset = k0, .run_batch = run_batch, .run_seq = run_seq,
                       .model = m};
    EXPECT_OK(hk_hooks_fire(h, point_index(m, name), &t, &ctx));
    free(buf);
}

/* A run of batch 2, seq 7 fired by hand: scores and patterns as query chunks [0,3) [3,5)
 * [5,7) of each sequence in a strided layout, resid_pre as a bf16 [batch, pos, d] view
 * stored [pos][batch][2 * d] (every other element), under "all", "2:6" and "last". */
static void test_chunks_and_strides(void **state) {
    (void)state;
    fixture f;
    fixture_load("gpt2", &f);
    const int64_t B = 2, T = 7, H = f.m->cfg.n_heads, D = hk_model_d_model(f.m);
    const char *names[] = {"blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern",
                           "blocks.0.hook_resid_pre"};
    const char *specs[] = {"all", "2:6", "last"};
    int64_t lengths[2] = {7, 4};
    for (size_t sp = 0; sp < 3; sp++) {
        hk_hooks *h = NULL;
        hk_cache *c = NULL;
        EXPECT_OK(hk_hooks_new(f.m, &h));
        EXPECT_OK(hk_cache_new(f.m, &c));
        EXPECT_OK(hk_cache_attach(c, h, names, 3, specs[sp]));
        EXPECT_OK(hk_cache_set_lengths(c, lengths, B));
        const int64_t chunks[] = {0, 3, 5, 7};
        for (int which = 0; which < 2; which++)
            for (int64_t b = 0; b < B; b++)
                for (int ci = 0; ci < 3; ci++)
                    fire_scores(h, f.m, names[which], b, chunks[ci], chunks[ci + 1] - chunks[ci],
                                0, T, B, T);
        uint16_t *rbuf = malloc((size_t)(T * B * 2 * D) * sizeof *rbuf);
        assert_non_null(rbuf);
        for (int64_t p = 0; p < T; p++)
            for (int64_t b = 0; b < B; b++)
                for (int64_t d = 0; d < 2 * D; d++)
                    rbuf[(p * B + b) * 2 * D + d] =
                        hk_f32_to_bf16(d % 2 ? -1.0f : (float)(b * 64 + p * 8 + d / 2));
        hk_tensor rt = {.data = rbuf, .dtype = HK_DTYPE_BF16, .ndim = 3, .shape = {B, T, D},
                        .stride = {2 * D, B * 2 * D, 2}};
        hk_hook_ctx rctx = {.name = names[2], .layer = 0, .run_batch = B, .run_seq = T,
                            .model = f.m};
        EXPECT_OK(hk_hooks_fire(h, point_index(f.m, names[2]), &rt, &rctx));
        free(rbuf);

        int64_t start = sp == 1 ? 2 : 0, n_sel = sp == 0 ? T : sp == 1 ? 4 : 1;
        size_t want_bytes = 0;
        for (int which = 0; which < 2; which++) {
            const hk_tensor *t = hk_cache_get(c, names[which]);
            int64_t shape[4] = {B, H, n_sel, T};
            expect_shape(t, 4, shape, names[which]);
            want_bytes += numel(t) * sizeof(float);
            const float *v = t->data;
            for (int64_t b = 0; b < B; b++)
                for (int64_t hh = 0; hh < H; hh++)
                    for (int64_t s = 0; s < n_sel; s++)
                        for (int64_t k = 0; k < T; k++) {
                            int64_t q = sp == 2 ? lengths[b] - 1 : start + s;
                            float got = v[((b * H + hh) * n_sel + s) * T + k];
                            if (!same(got, value_at(b, hh, q, k)))
                                fail_msg("%s \"%s\" [%lld,%lld,%lld,%lld] = %g, expected %g",
                                         names[which], specs[sp], (long long)b, (long long)hh,
                                         (long long)s, (long long)k, (double)got,
                                         (double)value_at(b, hh, q, k));
                        }
        }
        const hk_tensor *r = hk_cache_get(c, names[2]);
        int64_t rshape[3] = {B, n_sel, D};
        expect_shape(r, 3, rshape, names[2]);
        want_bytes += numel(r) * sizeof(float);
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0; s < n_sel; s++)
                for (int64_t d = 0; d < D; d++) {
                    int64_t p = sp == 2 ? lengths[b] - 1 : start + s;
                    float want = (float)(b * 64 + p * 8 + d);
                    assert_true(same(((const float *)r->data)[(b * n_sel + s) * D + d], want));
                }
        assert_int_equal(hk_cache_bytes(c), want_bytes);

        /* a chunk that does not fit the run is an error naming the point */
        float dummy[4 * 2 * 7] = {0};
        hk_tensor bad = {.data = dummy, .dtype = HK_DTYPE_F32, .ndim = 4, .shape = {1, H, 2, T},
                         .stride = {H * 2 * T, 2 * T, T, 1}};
        hk_hook_ctx bctx = {.name = names[0], .layer = 0, .batch_offset = 0, .pos_offset = 6,
                            .run_batch = B, .run_seq = T, .model = f.m};
        expect_error(hk_hooks_fire(h, point_index(f.m, names[0]), &bad, &bctx), HK_ERR_HOOK,
                     names[0], NULL, NULL);
        bctx.pos_offset = 0;
        bctx.batch_offset = 2;
        expect_error(hk_hooks_fire(h, point_index(f.m, names[0]), &bad, &bctx), HK_ERR_HOOK,
                     "does not fit", NULL, NULL);
        bctx.batch_offset = 0;
        /* a device tensor reaches a plain callback as a host copy made by the runtime; with no
         * backend of that device open, the copy is refused */
        bad.device = HK_DEVICE_CUDA;
        expect_error(hk_hooks_fire(h, point_index(f.m, names[0]), &bad, &bctx),
                     HK_ERR_INVALID_ARG, "no backend of that device is open", NULL, NULL);
        hk_cache_free(c);
        hk_hooks_free(h);
    }
    fixture_free(&f);
}

/* A session feed fired by hand: 3 positions at position 10 of 2 sequences. Scores come with
 * the keys of a rolling window, positions 6..12 (key_offset 6); logits for the last position
 * only. The cache holds the feed's positions, and keys 0..12 with 0..5 masked. */
static void test_session_feed(void **state) {
    (void)state;
    fixture f;
    fixture_load("gpt2", &f);
    const int64_t B = 2, n = 3, pos0 = 10, H = f.m->cfg.n_heads, V = f.vocab;
    const char *names[] = {"blocks.0.attn.hook_attn_scores", "unembed.hook_out"};
    hk_hooks *h = NULL;
    hk_cache *c = NULL;
    EXPECT_OK(hk_hooks_new(f.m, &h));
    EXPECT_OK(hk_cache_new(f.m, &c));
    EXPECT_OK(hk_cache_attach(c, h, names, 2, NULL));
    for (int64_t b = 0; b < B; b++) {
        fire_scores(h, f.m, names[0], b, pos0, 2, 6, 7, B, n);     /* queries 10, 11 */
        fire_scores(h, f.m, names[0], b, pos0 + 2, 1, 6, 7, B, n); /* query 12 */
    }
    float *logits = malloc((size_t)(B * V) * sizeof *logits);
    assert_non_null(logits);
    for (int64_t i = 0; i < B * V; i++) logits[i] = (float)i;
    hk_tensor lt = {.data = logits, .dtype = HK_DTYPE_F32, .ndim = 3, .shape = {B, 1, V},
                    .stride = {V, V, 1}};
    hk_hook_ctx lctx = {.name = names[1], .layer = -1, .pos_offset = pos0 + n - 1,
                        .run_batch = B, .run_seq = n, .model = f.m};
    EXPECT_OK(hk_hooks_fire(h, point_index(f.m, names[1]), &lt, &lctx));

    const hk_tensor *s = hk_cache_get(c, names[0]);
    int64_t shape[4] = {B, H, n, pos0 + n};
    expect_shape(s, 4, shape, "session scores");
    const float *v = s->data;
    for (int64_t b = 0; b < B; b++)
        for (int64_t hh = 0; hh < H; hh++)
            for (int64_t q = 0; q < n; q++)
                for (int64_t k = 0; k < pos0 + n; k++) {
                    float want = k < 6 ? -INFINITY : value_at(b, hh, pos0 + q, k);
                    assert_true(same(v[((b * H + hh) * n + q) * (pos0 + n) + k], want));
                }
    const hk_tensor *lo = hk_cache_get(c, names[1]);
    int64_t lshape[3] = {B, n, V};
    expect_shape(lo, 3, lshape, "session logits");
    const float *l = lo->data;
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < n; p++)
            for (int64_t i = 0; i < V; i++)
                assert_true(same(l[(b * n + p) * V + i], p == n - 1 ? (float)(b * V + i) : 0.0f));
    free(logits);
    hk_cache_free(c);
    hk_hooks_free(h);
    fixture_free(&f);
}

/* The real session path: a prompt fed as 12 + 3 positions caches, for the second feed, the
 * rows 12..14 of a one-shot run over all 15, and patterns over keys 0..14 (mistral: its
 * sliding-window layers hand keys from a rolling buffer, key_offset > 0). */
static void test_session_against_run(void **state) {
    (void)state;
    fixture f;
    fixture_load("mistral", &f);
    const int64_t T = 15, first = 12, n = T - first, H = f.m->cfg.n_heads, D = f.m->cfg.d_model;
    const char *pat[] = {"blocks.*.hook_resid_post", "blocks.*.attn.hook_pattern",
                         "unembed.hook_out"};
    hk_cache *full = NULL;
    EXPECT_OK(hk_run_with_cache(f.m, f.tokens, NULL, 1, T, pat, 3, NULL, f.logits, &full));

    hk_session *sess = NULL;
    hk_hooks *h = NULL;
    hk_cache *c = NULL;
    EXPECT_OK(hk_session_new(f.m, 1, T, &sess));
    EXPECT_OK(hk_hooks_new(f.m, &h));
    EXPECT_OK(hk_cache_new(f.m, &c));
    EXPECT_OK(hk_cache_attach(c, h, pat, 3, NULL));
    EXPECT_OK(hk_session_feed(sess, h, f.tokens, first, false, f.logits));
    hk_cache_clear(c);
    EXPECT_OK(hk_session_feed(sess, h, f.tokens + first, n, false, f.logits));
    for (int64_t l = 0; l < f.m->cfg.n_layers; l++) {
        const hk_tensor *a = hk_cache_get_layer(full, "hook_resid_post", l);
        const hk_tensor *s = hk_cache_get_layer(c, "hook_resid_post", l);
        int64_t shape[3] = {1, n, D};
        expect_shape(s, 3, shape, "session resid_post");
        for (int64_t i = 0; i < n * D; i++)
            assert_true(fabsf(((const float *)s->data)[i] -
                              ((const float *)a->data)[first * D + i]) <= 1e-5f);
        a = hk_cache_get_layer(full, "attn.hook_pattern", l);
        s = hk_cache_get_layer(c, "attn.hook_pattern", l);
        int64_t pshape[4] = {1, H, n, T};
        expect_shape(s, 4, pshape, "session pattern");
        for (int64_t hh = 0; hh < H; hh++)
            for (int64_t q = 0; q < n; q++)
                for (int64_t k = 0; k < T; k++) {
                    float got = ((const float *)s->data)[(hh * n + q) * T + k];
                    float want = ((const float *)a->data)[(hh * T + first + q) * T + k];
                    if (!(fabsf(got - want) <= 1e-5f))
                        fail_msg("layer %lld head %lld query %lld key %lld: session %g, run %g",
                                 (long long)l, (long long)hh, (long long)(first + q),
                                 (long long)k, (double)got, (double)want);
                }
    }
    int64_t lshape[3] = {1, n, f.vocab};
    expect_shape(hk_cache_get(c, "unembed.hook_out"), 3, lshape, "session logits");
    hk_cache_free(c);
    hk_hooks_free(h);
    hk_session_free(sess);
    hk_cache_free(full);
    fixture_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resid_post_entries),
        cmocka_unit_test(test_unembed_out_is_logits),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_last_with_attach),
        cmocka_unit_test(test_patterns_assembled),
        cmocka_unit_test(test_bytes_exact),
        cmocka_unit_test(test_errors_and_lookup),
        cmocka_unit_test(test_runs_of_different_sizes),
        cmocka_unit_test(test_chunks_and_strides),
        cmocka_unit_test(test_session_feed),
        cmocka_unit_test(test_session_against_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
