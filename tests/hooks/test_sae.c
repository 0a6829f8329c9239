/* SAEs at hook points (hookformer_sae.h) against SAELens 6.54.12
 * (tests/fixtures/make_sae_references.py): random SAEs of every architecture on the gpt2 and
 * llama fixtures, observed (their points' values), spliced (logits), spliced with the error
 * term, and with a feature zeroed by an ordinary hook on hook_sae_acts_post; the Gemma Scope
 * layout (params.npz, stored and deflated); and the loader's errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/checkpoint.h"
#include "core/dtype.h"
#include "core/json.h"
#include "core/npz.h"
#include "fixtures.h"
#include "float_compare.h"
#include "hookformer.h"
#include "hookformer_sae.h"
#include "test_util.h"

#define TOL 1e-4f

static const char *const SAES[] = {"standard", "jumprelu", "topk", "gated", "hookz",
                                   "transcoder", "jumprelu_transcoder"};
#define N_SAES (sizeof SAES / sizeof SAES[0])

/* A copy of one point's activation, [batch * pos * width]. */
typedef struct {
    float *v;
    size_t n;
} grab;

static hk_hook_result grab_fire(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    grab *g = user;
    assert_int_equal(t->ndim, 3);
    g->n = (size_t)(t->shape[0] * t->shape[1] * t->shape[2]);
    free(g->v);
    g->v = malloc(g->n * sizeof *g->v);
    memcpy(g->v, t->data, g->n * sizeof *g->v); /* the SAE's points are contiguous */
    return HK_HOOK_CONTINUE;
}

static hk_hook_result zero_feature(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    const int64_t f = *(const int64_t *)user;
    float *x = t->data;
    for (int64_t r = 0; r < t->shape[0] * t->shape[1]; r++) x[r * t->stride[1] + f] = 0.0f;
    return HK_HOOK_CONTINUE;
}

typedef struct {
    hk_ckpt *ck;
    int32_t *ids;
    int64_t seq, vocab;
} ref_file;

static void ref_open(const char *dir, ref_file *r) {
    r->ck = fixture_ckpt(dir, "reference.safetensors");
    const hk_st_tensor *t = hk_ckpt_find(r->ck, "input_ids");
    assert_non_null(t);
    r->seq = t->shape[1];
    r->ids = ids_from_i64(t->data, r->seq);
    r->vocab = hk_ckpt_find(r->ck, "logits_clean")->shape[2];
}

static const float *ref_get(ref_file *r, const char *name, int64_t width) {
    const float *v = NULL;
    const int64_t shape[3] = {1, r->seq, width};
    EXPECT_OK(hk_ckpt_f32(r->ck, name, 3, shape, &v));
    return v;
}

static void expect_close(const char *what, const char *name, const float *got, const float *want,
                         size_t n) {
    float d = max_abs_diff(got, want, n);
    if (!(d <= TOL)) print_error("%s: %s differs from SAELens by %g\n", what, name, d);
    assert_true(d <= TOL);
}

static hk_sae *load_sae(const char *dir, const char *hook) {
    char path[1024];
    fixture_path(dir, path, sizeof path);
    hk_sae_load_opts o = {.hook = hook};
    hk_sae *s = NULL;
    EXPECT_OK(hk_sae_load(path, &o, &s));
    return s;
}

/* Observe, replace, replace + error, replace + error with a feature zeroed: against refs. */
static void check_sae(const char *model_name, const char *dir, const char *hook) {
    hk_model *m = fixture_model(model_name);
    hk_sae *s = load_sae(dir, hook);
    hk_sae_info info;
    EXPECT_OK(hk_sae_get_info(s, &info));
    ref_file r;
    ref_open(dir, &r);
    float *logits = malloc((size_t)(r.seq * r.vocab) * sizeof *logits);
    const size_t nl = (size_t)(r.seq * r.vocab);
    static const char *const pts[] = {"acts_pre", "acts_post", "recons", "output"};
    const int64_t widths[] = {info.d_sae, info.d_sae, info.d_out, info.d_out};
    for (int mode = 0; mode < 4; mode++) {
        hk_hooks *h = NULL;
        EXPECT_OK(hk_hooks_new(m, &h));
        hk_sae_attachment *a = NULL;
        EXPECT_OK(hk_sae_attach(h, s, mode == 0 ? HK_SAE_OBSERVE : mode == 1 ? HK_SAE_REPLACE
                                                                              : HK_SAE_REPLACE_WITH_ERROR,
                                &a));
        grab g[4] = {{0}};
        char name[256];
        int64_t feature = 3;
        if (mode == 0)
            for (int i = 0; i < 4; i++) {
                snprintf(name, sizeof name, "%s.hook_sae_%s", info.hook, pts[i]);
                EXPECT_OK(hk_hooks_add(h, name, grab_fire, &g[i], NULL));
            }
        if (mode == 3) {
            snprintf(name, sizeof name, "%s.hook_sae_acts_post", info.hook);
            EXPECT_OK(hk_hooks_add(h, name, zero_feature, &feature, NULL));
        }
        EXPECT_OK(hk_model_run(m, h, r.ids, NULL, 1, r.seq, logits));
        static const char *const want[] = {"logits_clean", "logits_replace",
                                           "logits_replace_error", "logits_ablate_error"};
        expect_close(dir, want[mode], logits, ref_get(&r, want[mode], r.vocab), nl);
        for (int i = 0; mode == 0 && i < 4; i++) {
            assert_int_equal(g[i].n, (size_t)(r.seq * widths[i]));
            expect_close(dir, pts[i], g[i].v, ref_get(&r, pts[i], widths[i]), g[i].n);
            free(g[i].v);
        }
        hk_sae_detach(a);
        hk_hooks_free(h);
    }
    free(logits);
    free(r.ids);
    hk_ckpt_close(r.ck);
    hk_sae_free(s);
    hk_model_free(m);
}

static void test_saelens_gpt2(void **state) {
    (void)state;
    char dir[64];
    for (size_t i = 0; i < N_SAES; i++) {
        snprintf(dir, sizeof dir, "sae/gpt2_%s", SAES[i]);
        check_sae("gpt2", dir, NULL);
    }
}

static void test_saelens_llama(void **state) {
    (void)state;
    char dir[64];
    for (size_t i = 0; i < N_SAES; i++) {
        snprintf(dir, sizeof dir, "sae/llama_%s", SAES[i]);
        check_sae("llama", dir, NULL);
    }
}

static void test_gemma_scope_npz(void **state) {
    (void)state;
    static const char *const kinds[] = {"stored", "deflated"};
    for (int k = 0; k < 2; k++) {
        char dir[64], path[1024];
        snprintf(dir, sizeof dir, "sae/gemma_scope_%s", kinds[k]);
        /* the archive holds what its name says: zip method 0 or 8 for every member */
        snprintf(path, sizeof path, "%s/%s/params.npz", fixtures_root(), dir);
        hk_npz *z = NULL;
        EXPECT_OK(hk_npz_open(path, &z));
        assert_int_equal(hk_npz_count(z), 5);
        for (size_t i = 0; i < hk_npz_count(z); i++) assert_int_equal(hk_npz_method(z, i), k ? 8 : 0);
        hk_npz_close(z);
        check_sae("gpt2", dir, "blocks.1.hook_resid_post");
        hk_sae *s = load_sae(dir, "blocks.1.hook_resid_post");
        hk_sae_info info;
        EXPECT_OK(hk_sae_get_info(s, &info));
        assert_int_equal(info.arch, HK_SAE_JUMPRELU);
        assert_false(info.apply_b_dec_to_input);
        assert_string_equal(info.format, "gemma-scope-npz");
        hk_sae_free(s);
    }
}

/* hk_sae_encode/decode outside a model equal the spliced SAE's points. */
static void test_encode_decode(void **state) {
    (void)state;
    hk_sae *s = load_sae("sae/gpt2_standard", NULL);
    hk_model *m = fixture_model("gpt2");
    ref_file r;
    ref_open("sae/gpt2_standard", &r);
    hk_cache *c = NULL;
    const char *pat = "blocks.0.hook_resid_post";
    EXPECT_OK(hk_run_with_cache(m, r.ids, NULL, 1, r.seq, &pat, 1, "all", NULL, &c));
    const hk_tensor *x = hk_cache_get(c, pat);
    float *acts = malloc((size_t)(r.seq * 96) * sizeof *acts);
    float *rec = malloc((size_t)(r.seq * 64) * sizeof *rec);
    EXPECT_OK(hk_sae_encode(s, x->data, r.seq, acts));
    expect_close("encode", "acts_post", acts, ref_get(&r, "acts_post", 96), (size_t)(r.seq * 96));
    EXPECT_OK(hk_sae_decode(s, acts, r.seq, rec));
    expect_close("decode", "recons", rec, ref_get(&r, "recons", 64), (size_t)(r.seq * 64));
    /* weights are writable: zeroing W_dec makes the reconstruction b_dec */
    hk_tensor w, b;
    EXPECT_OK(hk_sae_weight(s, "W_dec", &w));
    EXPECT_OK(hk_sae_weight(s, "b_dec", &b));
    assert_int_equal(w.shape[0], 96);
    assert_int_equal(w.shape[1], 64);
    memset(w.data, 0, 96 * 64 * sizeof(float));
    EXPECT_OK(hk_sae_decode(s, acts, 1, rec));
    assert_memory_equal(rec, b.data, 64 * sizeof(float));
    expect_error(hk_sae_weight(s, "threshold", &w), HK_ERR_NOT_FOUND, "standard", "threshold",
                 NULL);
    free(acts);
    free(rec);
    hk_cache_free(c);
    free(r.ids);
    hk_ckpt_close(r.ck);
    hk_model_free(m);
    hk_sae_free(s);
}

/* hk_sae_eval over the fixture's three reference sequences as one right-padded batch equals
 * SAELens's evals over each sequence alone (eval.json). */
static void check_eval(const char *model_name, const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/eval.json", fixtures_root(), dir);
    cJSON *want = NULL;
    EXPECT_OK(hk_json_load_file(path, &want));
    hk_model *m = fixture_model(model_name);
    hk_sae *s = load_sae(dir, NULL);
    hk_ckpt *ck = fixture_ckpt(model_name, "reference.safetensors");
    const hk_st_tensor *ids = hk_ckpt_find(ck, "input_ids"), *lens = hk_ckpt_find(ck, "lengths");
    const int64_t batch = ids->shape[0], seq = ids->shape[1];
    int32_t *tok = ids_from_i64(ids->data, batch * seq);
    int64_t len[8];
    memcpy(len, lens->data, (size_t)batch * sizeof *len);
    hk_sae_eval *e = NULL;
    EXPECT_OK(hk_sae_eval_new(m, s, &e));
    EXPECT_OK(hk_sae_eval_add(e, tok, len, batch, seq));
    hk_sae_metrics mt;
    EXPECT_OK(hk_sae_eval_metrics(e, &mt));
    struct { const char *k; double v; } got[] = {
        {"mse", mt.mse}, {"explained_variance", mt.explained_variance}, {"l0", mt.l0},
        {"l1", mt.l1}, {"ce_without", mt.ce_without}, {"ce_with", mt.ce_with},
        {"ce_ablation", mt.ce_ablation}, {"ce_delta", mt.ce_delta}, {"ce_score", mt.ce_score},
        {"dead", (double)mt.dead}, {"tokens", (double)mt.tokens}};
    for (size_t i = 0; i < sizeof got / sizeof got[0]; i++) {
        double w;
        EXPECT_OK(hk_json_num(want, got[i].k, path, &w));
        /* relative 1e-4: mse sums 64 squared dims */
        if (!(fabs(got[i].v - w) <= 1e-4 * (1 + fabs(w))))
            print_error("%s: %s is %.7g, SAELens says %.7g\n", dir, got[i].k, got[i].v, w);
        assert_true(fabs(got[i].v - w) <= 1e-4 * (1 + fabs(w)));
    }
    hk_sae_eval_free(e);
    free(tok);
    hk_ckpt_close(ck);
    hk_sae_free(s);
    hk_model_free(m);
    cJSON_Delete(want);
}

static void test_eval(void **state) {
    (void)state;
    static const char *const with_eval[] = {"standard", "jumprelu", "topk", "gated"};
    char dir[64];
    for (int mi = 0; mi < 2; mi++)
        for (size_t i = 0; i < 4; i++) {
            snprintf(dir, sizeof dir, "sae/%s_%s", mi ? "llama" : "gpt2", with_eval[i]);
            check_eval(mi ? "llama" : "gpt2", dir);
        }
}

/* Top contexts against brute force: each sequence alone through hk_sae_encode of its cached
 * hook activation; per feature the sequences ranked by their maximum, the window read back. */
static void test_top_contexts(void **state) {
    (void)state;
    hk_model *m = fixture_model("gpt2");
    hk_sae *s = load_sae("sae/gpt2_standard", NULL);
    hk_ckpt *ck = fixture_ckpt("gpt2", "reference.safetensors");
    const hk_st_tensor *ids = hk_ckpt_find(ck, "input_ids"), *lt = hk_ckpt_find(ck, "lengths");
    const int64_t B = ids->shape[0], T = ids->shape[1], D = 96, K = 2, WIN = 3, W = 2 * WIN + 1;
    int32_t *tok = ids_from_i64(ids->data, B * T);
    int64_t len[8];
    memcpy(len, lt->data, (size_t)B * sizeof *len);
    const int32_t *seqs[8];
    for (int64_t b = 0; b < B; b++) seqs[b] = tok + b * T;
    hk_sae_top t;
    EXPECT_OK(hk_sae_top_contexts(m, s, seqs, len, B, K, WIN, 2, &t));
    float *acts[8];
    const char *pat = "blocks.0.hook_resid_post";
    for (int64_t b = 0; b < B; b++) {
        hk_cache *c = NULL;
        EXPECT_OK(hk_run_with_cache(m, seqs[b], NULL, 1, len[b], &pat, 1, "all", NULL, &c));
        acts[b] = malloc((size_t)(len[b] * D) * sizeof(float));
        EXPECT_OK(hk_sae_encode(s, hk_cache_get(c, pat)->data, len[b], acts[b]));
        hk_cache_free(c);
    }
    int64_t total = 0;
    for (int64_t b = 0; b < B; b++) total += len[b];
    assert_int_equal(t.tokens, total);
    for (int64_t j = 0; j < D; j++) {
        float best[8];
        int64_t at[8], active = 0;
        for (int64_t b = 0; b < B; b++) {
            best[b] = 0, at[b] = -1;
            for (int64_t p = 0; p < len[b]; p++) {
                float v = acts[b][p * D + j];
                active += v != 0;
                if (v > best[b]) best[b] = v, at[b] = p;
            }
        }
        assert_int_equal(t.active[j], active);
        for (int64_t k = 0; k < K; k++) { /* the k-th best sequence by brute force */
            int64_t pick = -1;
            for (int64_t b = 0; b < B; b++) {
                bool taken = false;
                for (int64_t q = 0; q < k; q++) taken |= t.top_seq[j * K + q] == b;
                if (!taken && at[b] >= 0 && (pick < 0 || best[b] > best[pick])) pick = b;
            }
            assert_int_equal(t.top_seq[j * K + k], pick);
            if (pick < 0) continue;
            assert_int_equal(t.top_pos[j * K + k], at[pick]);
            assert_true(fabsf(t.top_values[j * K + k] - best[pick]) <= TOL);
            for (int64_t o = 0; o < W; o++) {
                const int64_t p = at[pick] - WIN + o;
                const bool in = p >= 0 && p < len[pick];
                assert_int_equal(t.win_tokens[(j * K + k) * W + o], in ? seqs[pick][p] : -1);
                assert_true(fabsf(t.win_values[(j * K + k) * W + o] -
                                  (in ? acts[pick][p * D + j] : 0.0f)) <= TOL);
            }
        }
    }
    for (int64_t b = 0; b < B; b++) free(acts[b]);
    hk_sae_top_free(&t);
    free(tok);
    hk_ckpt_close(ck);
    hk_sae_free(s);
    hk_model_free(m);
}

static void copy_file(const char *from, const char *to) {
    FILE *f = fopen(from, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    write_bytes(to, buf, (size_t)n);
    free(buf);
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*n + 1);
    assert_int_equal(fread(buf, 1, *n, f), *n);
    buf[*n] = '\0';
    fclose(f);
    return buf;
}

/* A SAELens folder in a scratch dir with cfg.json rewritten by replacing `from` with `to`. */
static void edited_folder(const char *tmp, const char *from, const char *to) {
    char src[1024], dst[1024];
    snprintf(src, sizeof src, "%s/sae/gpt2_topk/sae_weights.safetensors", fixtures_root());
    snprintf(dst, sizeof dst, "%s/sae_weights.safetensors", tmp);
    copy_file(src, dst);
    snprintf(src, sizeof src, "%s/sae/gpt2_topk/cfg.json", fixtures_root());
    size_t n;
    char *cfg = read_all(src, &n);
    char *at = strstr(cfg, from);
    assert_non_null(at);
    char *out = malloc(n + strlen(to) + 1);
    snprintf(out, n + strlen(to) + 1, "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    snprintf(dst, sizeof dst, "%s/cfg.json", tmp);
    write_text(dst, out);
    free(out);
    free(cfg);
}

/* F16 and BF16 weights are converted at load: each weight equals its rounded f32 value. */
static void test_half_weights(void **state) {
    (void)state;
    static const char *const names[] = {"W_dec", "W_enc", "b_dec", "b_enc"}; /* sorted */
    static const char *const dts[] = {"F16", "BF16"};
    hk_ckpt *ck = fixture_ckpt("sae/gpt2_standard", "sae_weights.safetensors");
    char tmp[256], path[1024], src[1024];
    make_tmpdir(tmp, sizeof tmp);
    snprintf(src, sizeof src, "%s/sae/gpt2_standard/cfg.json", fixtures_root());
    snprintf(path, sizeof path, "%s/cfg.json", tmp);
    copy_file(src, path);
    for (int k = 0; k < 2; k++) {
        char hdr[1024];
        size_t off = 0, hn = (size_t)snprintf(hdr, sizeof hdr, "{");
        const hk_st_tensor *t[4];
        for (int i = 0; i < 4; i++) {
            t[i] = hk_ckpt_find(ck, names[i]);
            size_t n = t[i]->nbytes / 4 * 2;
            char shape[64];
            if (t[i]->ndim == 2)
                snprintf(shape, sizeof shape, "%lld,%lld", (long long)t[i]->shape[0],
                         (long long)t[i]->shape[1]);
            else
                snprintf(shape, sizeof shape, "%lld", (long long)t[i]->shape[0]);
            hn += (size_t)snprintf(hdr + hn, sizeof hdr - hn,
                                   "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],"
                                   "\"data_offsets\":[%zu,%zu]}", i ? "," : "", names[i], dts[k],
                                   shape, off, off + n);
            off += n;
        }
        hn += (size_t)snprintf(hdr + hn, sizeof hdr - hn, "}");
        while (hn % 8) hdr[hn++] = ' ';
        uint8_t *img = malloc(8 + hn + off);
        uint64_t hl = hn;
        memcpy(img, &hl, 8);
        memcpy(img + 8, hdr, hn);
        size_t at = 8 + hn;
        for (int i = 0; i < 4; i++) {
            const float *v = t[i]->data;
            for (size_t j = 0; j < t[i]->nbytes / 4; j++, at += 2) {
                uint16_t h = k ? hk_f32_to_bf16(v[j]) : hk_f32_to_f16(v[j]);
                memcpy(img + at, &h, 2);
            }
        }
        snprintf(path, sizeof path, "%s/sae_weights.safetensors", tmp);
        write_bytes(path, img, at);
        free(img);
        hk_sae_load_opts o = {0};
        hk_sae *s = NULL;
        EXPECT_OK(hk_sae_load(tmp, &o, &s));
        for (int i = 0; i < 4; i++) {
            hk_tensor w;
            EXPECT_OK(hk_sae_weight(s, names[i], &w));
            const float *v = t[i]->data, *got = w.data;
            for (size_t j = 0; j < t[i]->nbytes / 4; j++) {
                float want = k ? hk_bf16_to_f32(hk_f32_to_bf16(v[j]))
                               : hk_f16_to_f32(hk_f32_to_f16(v[j]));
                assert_true(got[j] == want);
            }
        }
        hk_sae_free(s);
    }
    hk_ckpt_close(ck);
    remove_tree(tmp);
}

static void expect_load_error(const char *path, const char *hook, hk_status want, const char *n1,
                              const char *n2, const char *n3) {
    hk_sae_load_opts o = {.hook = hook};
    hk_sae *s = (hk_sae *)&o; /* must come back NULL */
    expect_error(hk_sae_load(path, &o, &s), want, n1, n2, n3);
    assert_null(s);
}

static void test_load_errors(void **state) {
    (void)state;
    char tmp[256], path[1024];
    make_tmpdir(tmp, sizeof tmp);
    edited_folder(tmp, "\"d_sae\": 96", "\"d_sea\": 96");
    expect_load_error(tmp, NULL, HK_ERR_NOT_FOUND, "cfg.json", "d_sae", NULL);
    edited_folder(tmp, "\"d_sae\": 96", "\"d_sae\": 97");
    expect_load_error(tmp, NULL, HK_ERR_SHAPE, "sae_weights.safetensors", "W_enc", "97");
    edited_folder(tmp, "\"architecture\": \"topk\"", "\"architecture\": \"mystery\"");
    expect_load_error(tmp, NULL, HK_ERR_UNSUPPORTED, "cfg.json", "architecture", "mystery");
    edited_folder(tmp, "\"k\": 8", "\"k\": 0");
    expect_load_error(tmp, NULL, HK_ERR_FORMAT, "cfg.json", "'k'", NULL);
    edited_folder(tmp, "\"normalize_activations\": \"none\"",
                  "\"normalize_activations\": \"covariance_whitening\"");
    expect_load_error(tmp, NULL, HK_ERR_UNSUPPORTED, "cfg.json", "normalize_activations", NULL);
    edited_folder(tmp, "\"hook_name\": \"blocks.0.hook_mlp_out\"", "\"hook\": 1");
    expect_load_error(tmp, NULL, HK_ERR_NOT_FOUND, "cfg.json", "metadata.hook_name", NULL);
    edited_folder(tmp, "\"d_in\": 64", "\"d_in\": \"64\"");
    expect_load_error(tmp, NULL, HK_ERR_FORMAT, "cfg.json", "d_in", NULL);
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", tmp);
    remove(path);
    edited_folder(tmp, "\"k\": 8", "\"k\": 8");
    remove(path);
    expect_load_error(tmp, NULL, HK_ERR_NOT_FOUND, "sae_weights.safetensors", NULL, NULL);
    snprintf(path, sizeof path, "%s/cfg.json", tmp);
    remove(path);
    expect_load_error(tmp, NULL, HK_ERR_NOT_FOUND, "cfg.json", "params.npz", NULL);
    expect_load_error("/nonexistent/sae", NULL, HK_ERR_NOT_FOUND, "/nonexistent/sae", NULL, NULL);

    /* npz: no hook; a flipped byte in a deflated member; a truncated file; a bad header */
    char npz[1024];
    snprintf(npz, sizeof npz, "%s/sae/gemma_scope_deflated/params.npz", fixtures_root());
    expect_load_error(npz, NULL, HK_ERR_INVALID_ARG, "params.npz", "hook", NULL);
    size_t n;
    char *img = read_all(npz, &n);
    snprintf(path, sizeof path, "%s/params.npz", tmp);
    img[200] ^= 0x55; /* inside the first member's deflate stream */
    write_bytes(path, img, n);
    expect_load_error(path, "blocks.1.hook_resid_post", HK_ERR_FORMAT, "params.npz", "W_enc", NULL);
    img[200] ^= 0x55;
    write_bytes(path, img, n / 2);
    expect_load_error(path, "blocks.1.hook_resid_post", HK_ERR_FORMAT, "params.npz", NULL, NULL);
    write_bytes(path, "PK\5\6 not a zip", 15);
    expect_load_error(path, "blocks.1.hook_resid_post", HK_ERR_FORMAT, "params.npz", NULL, NULL);
    free(img);
    snprintf(npz, sizeof npz, "%s/sae/gemma_scope_stored/params.npz", fixtures_root());
    img = read_all(npz, &n);
    char *hdr = memmem(img, n, "'descr': '<f4'", 14);
    assert_non_null(hdr);
    memcpy(hdr, "'descr': '<i4'", 14); /* the first member: W_enc */
    write_bytes(path, img, n);
    /* stored members are CRC-checked too */
    expect_load_error(path, "blocks.1.hook_resid_post", HK_ERR_FORMAT, "W_enc", "CRC", NULL);
    free(img);
    remove_tree(tmp);
}

/* An SAE whose d_in is not the hook's width is refused, and so are unknown hooks. */
static void test_attach_errors(void **state) {
    (void)state;
    hk_model *m = fixture_model("gpt2");
    hk_hooks *h = NULL;
    EXPECT_OK(hk_hooks_new(m, &h));
    hk_sae_attachment *a = NULL;
    hk_sae *s = load_sae("sae/gpt2_standard", "blocks.0.mlp.hook_post"); /* d_mlp 128 */
    expect_error(hk_sae_attach(h, s, HK_SAE_REPLACE, &a), HK_ERR_SHAPE, "d_in is 64",
                 "blocks.0.mlp.hook_post", "128");
    assert_null(a);
    hk_sae_free(s);
    s = load_sae("sae/gpt2_standard", "blocks.7.hook_resid_post");
    expect_error(hk_sae_attach(h, s, HK_SAE_REPLACE, &a), HK_ERR_NOT_FOUND,
                 "blocks.7.hook_resid_post", NULL, NULL);
    hk_sae_free(s);
    s = load_sae("sae/gpt2_standard", "blocks.0.attn.hook_pattern");
    expect_error(hk_sae_attach(h, s, HK_SAE_REPLACE, &a), HK_ERR_SHAPE, "hook_pattern", NULL, NULL);
    hk_sae_free(s);
    assert_int_equal(hk_hooks_count(h), 0);
    /* the SAE's points exist only once it is attached */
    expect_error(hk_hooks_add(h, "blocks.0.hook_resid_post.hook_sae_acts_post", zero_feature, NULL,
                              NULL),
                 HK_ERR_NOT_FOUND, "hook_sae_acts_post", NULL, NULL);
    s = load_sae("sae/gpt2_standard", NULL);
    EXPECT_OK(hk_sae_attach(h, s, HK_SAE_OBSERVE, &a));
    /* a glob over the SAE's points */
    EXPECT_OK(hk_hooks_add(h, "*.hook_sae_acts_*", zero_feature, NULL, NULL));
    assert_int_equal(hk_hooks_count(h), 2);
    hk_sae_detach(a);
    /* detached: the points stay, the SAE's own hook is gone, a new attach reuses them */
    assert_int_equal(hk_hooks_count(h), 1);
    EXPECT_OK(hk_sae_attach(h, s, HK_SAE_OBSERVE, &a));
    hk_sae_detach(a);
    hk_hooks_free(h);
    hk_sae_free(s);
    hk_model_free(m);
}

/* hk_cache over an attached SAE's points (globs included, positions selected, after the
 * model's points in the cache's order) holds what SAELens's run_with_cache_with_saes gives. */
static void test_cache_sae_points(void **state) {
    (void)state;
    hk_model *m = fixture_model("gpt2");
    hk_sae *s = load_sae("sae/gpt2_jumprelu", NULL);
    hk_sae_info info;
    EXPECT_OK(hk_sae_get_info(s, &info));
    ref_file r;
    ref_open("sae/gpt2_jumprelu", &r);
    hk_hooks *h = NULL;
    EXPECT_OK(hk_hooks_new(m, &h));
    hk_cache *c = NULL;
    EXPECT_OK(hk_cache_new(m, &c));
    /* not attached yet: the SAE's points are unknown to the cache too */
    char post[256], pats[2][256];
    snprintf(post, sizeof post, "%s.hook_sae_acts_post", info.hook);
    const char *p1 = post;
    expect_error(hk_cache_attach(c, h, &p1, 1, "all"), HK_ERR_NOT_FOUND, "hook_sae_acts_post",
                 NULL, NULL);
    hk_sae_attachment *a = NULL;
    EXPECT_OK(hk_sae_attach(h, s, HK_SAE_REPLACE, &a));
    snprintf(pats[0], sizeof pats[0], "%s", info.hook);
    snprintf(pats[1], sizeof pats[1], "*.hook_sae_*");
    const char *pp[2] = {pats[0], pats[1]};
    size_t mark = hk_hooks_scope_begin(h);
    EXPECT_OK(hk_cache_attach(c, h, pp, 2, "all"));
    assert_int_equal(hk_cache_count(c), 7); /* the hook, then its 6 points */
    assert_string_equal(hk_cache_name_at(c, 0), info.hook);
    assert_string_equal(hk_cache_name_at(c, 3), post);
    /* one copy per point */
    expect_error(hk_cache_attach(c, h, &p1, 1, "all"), HK_ERR_INVALID_ARG, "already cached",
                 NULL, NULL);
    float *logits = malloc((size_t)(r.seq * r.vocab) * sizeof *logits);
    EXPECT_OK(hk_model_run(m, h, r.ids, NULL, 1, r.seq, logits));
    expect_close("cache", "logits_replace", logits, ref_get(&r, "logits_replace", r.vocab),
                 (size_t)(r.seq * r.vocab));
    static const char *const pts[] = {"acts_pre", "acts_post", "recons", "output"};
    for (int i = 0; i < 4; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.hook_sae_%s", info.hook, pts[i]);
        const hk_tensor *t = hk_cache_get(c, name);
        assert_non_null(t);
        assert_int_equal(t->ndim, 3);
        assert_int_equal(t->shape[0], 1);
        assert_int_equal(t->shape[1], r.seq);
        const int64_t w = i < 2 ? info.d_sae : info.d_out;
        assert_int_equal(t->shape[2], w);
        expect_close("cache", pts[i], t->data, ref_get(&r, pts[i], w), (size_t)(r.seq * w));
    }
    /* the error term fires only with HK_SAE_REPLACE_WITH_ERROR: attached but not delivered */
    snprintf(pats[0], sizeof pats[0], "%s.hook_sae_error", info.hook);
    assert_null(hk_cache_get(c, pats[0]));
    hk_hooks_scope_end(h, mark); /* the cache's registration goes before the cache */
    hk_sae_detach(a);
    hk_cache_free(c);
    /* positions: the last one only, of an SAE point */
    EXPECT_OK(hk_cache_new(m, &c));
    EXPECT_OK(hk_sae_attach(h, s, HK_SAE_OBSERVE, &a));
    mark = hk_hooks_scope_begin(h);
    EXPECT_OK(hk_cache_attach(c, h, &p1, 1, "last"));
    EXPECT_OK(hk_model_run(m, h, r.ids, NULL, 1, r.seq, logits));
    const hk_tensor *t = hk_cache_get(c, post);
    assert_non_null(t);
    assert_int_equal(t->shape[1], 1);
    const float *want = ref_get(&r, "acts_post", info.d_sae);
    assert_true(max_abs_diff(t->data, want + (r.seq - 1) * info.d_sae, (size_t)info.d_sae) <=
                TOL);
    hk_hooks_scope_end(h, mark);
    hk_sae_detach(a);
    /* the cache keeps its names when the hooks (which own the added points' names) go */
    hk_hooks_free(h);
    assert_string_equal(hk_cache_name_at(c, 0), post);
    hk_cache_free(c);
    free(logits);
    free(r.ids);
    hk_ckpt_close(r.ck);
    hk_sae_free(s);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saelens_gpt2),    cmocka_unit_test(test_saelens_llama),
        cmocka_unit_test(test_gemma_scope_npz), cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_load_errors),     cmocka_unit_test(test_attach_errors),
        cmocka_unit_test(test_eval),            cmocka_unit_test(test_top_contexts),
        cmocka_unit_test(test_half_weights),    cmocka_unit_test(test_cache_sae_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
