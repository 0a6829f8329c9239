/* The experiment commands end to end: `hookformer patch/ablate/lens` write HDF5 files whose
 * values equal TransformerLens's (tests/fixtures/llama/patching.safetensors), `steer`
 * generates TransformerLens's steered tokens (also through a saved vector), SVGs are written,
 * and bad command lines fail with a message and leave existing files alone. */
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

#include "cli_run.h"
#include "core/checkpoint.h"
#include "fixtures.h"
#include "float_compare.h"

static const char *exe;
static char model[1024], tmpdir[64];
static hk_ckpt *ref;

static const hk_st_tensor *need(const char *name) {
    const hk_st_tensor *t = hk_ckpt_find(ref, name);
    if (!t) fail_msg("reference '%s' missing", name);
    return t;
}

static int64_t numel(const hk_st_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* row `row` of an I64 tensor [rows, n] as "a,b,c" */
static void ids_str(const char *name, int64_t row, char *out, size_t cap) {
    const hk_st_tensor *t = need(name);
    int64_t n = t->ndim == 1 ? t->shape[0] : t->shape[1];
    int32_t *ids = ids_from_i64((const char *)t->data + row * n * 8, n);
    size_t k = 0;
    out[0] = '\0';
    for (int64_t i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%d", i ? "," : "", ids[i]);
    free(ids);
}

static float *h5_floats(const char *path, const char *name, int64_t *n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("%s: cannot open", path);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) fail_msg("%s: no dataset %s", path, name);
    hid_t sp = H5Dget_space(ds);
    *n = H5Sget_simple_extent_npoints(sp);
    float *v = malloc((size_t)*n * sizeof *v);
    assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp), H5Dclose(ds), H5Fclose(f);
    return v;
}

static void expect_h5_ref(const char *path, const char *ds, const char *ref_name) {
    int64_t n;
    float *got = h5_floats(path, ds, &n);
    const hk_st_tensor *t = need(ref_name);
    assert_int_equal(n, numel(t));
    float *want = malloc((size_t)n * sizeof *want);
    memcpy(want, t->data, (size_t)n * sizeof *want);
    float d = max_abs_diff(got, want, (size_t)n);
    if (!(d <= 1e-4)) fail_msg("%s %s vs TransformerLens %s: max diff %g", path, ds, ref_name, d);
    free(got), free(want);
}

static char clean0[256], clean1[256], bad0[256], bad1[256];
/* both prompts' answer ids ("a0,a1"), and the first prompt's alone */
static char answer[64], wrong[64], answer0[32], wrong0[32];

static int setup(void **state) {
    (void)state;
    fixture_path("llama", model, sizeof model);
    ref = fixture_ckpt("llama", "patching.safetensors");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hk_cli_patch_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    ids_str("clean_ids", 0, clean0, sizeof clean0);
    ids_str("clean_ids", 1, clean1, sizeof clean1);
    ids_str("corrupted_ids", 0, bad0, sizeof bad0);
    ids_str("corrupted_ids", 1, bad1, sizeof bad1);
    ids_str("answer", 0, answer, sizeof answer);
    ids_str("wrong", 0, wrong, sizeof wrong);
    snprintf(answer0, sizeof answer0, "%.*s", (int)strcspn(answer, ","), answer);
    snprintf(wrong0, sizeof wrong0, "%.*s", (int)strcspn(wrong, ","), wrong);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    hk_ckpt_close(ref);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd);
}

static char *slurp_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

/* p_resid_pre.svg of test_patch: the title names the model, the metric and both prompts, and
 * says what labels the columns; a position where the prompts differ is labelled with both
 * tokens (clean/corrupted), one where they agree with the one token. */
static void expect_patch_svg_labels(void) {
    char p[160], want[1200];
    snprintf(p, sizeof p, "%s/p_resid_pre.svg", tmpdir);
    char *s = slurp_text(p);
    snprintf(want, sizeof want, ">model: %s</text>", model);
    cli_expect_contains(s, want, "the model in the title");
    cli_expect_contains(s, ">metric: logit[answer] - logit[wrong] at the last position",
                        "the metric in the title");
    snprintf(want, sizeof want, ">clean: %s", clean0);
    cli_expect_contains(s, want, "the clean prompt in the title");
    snprintf(want, sizeof want, ">corrupted: %s", bad0);
    cli_expect_contains(s, want, "the corrupted prompt in the title");
    cli_expect_contains(s, "clean/corrupted where they differ", "what labels the columns");
    /* the first position where clean0 and bad0 differ, and the first where they agree */
    int c[64], b[64], n = 0;
    for (const char *x = clean0, *y = bad0; n < 64 && *x && *y; n++) {
        c[n] = atoi(x), b[n] = atoi(y);
        x += strcspn(x, ","), y += strcspn(y, ",");
        x += *x == ',', y += *y == ',';
    }
    int diff = -1, same = -1;
    for (int t = 0; t < n; t++) {
        if (c[t] != b[t] && diff < 0) diff = t;
        if (c[t] == b[t] && same < 0) same = t;
    }
    assert_true(diff >= 0 && same >= 0);
    snprintf(want, sizeof want, ">%d %d/%d</text>", diff, c[diff], b[diff]);
    cli_expect_contains(s, want, "a clean/corrupted column label");
    snprintf(want, sizeof want, ">%d %d</text>", same, b[same]);
    cli_expect_contains(s, want, "a column label where the prompts agree");
    free(s);
}

static void test_patch(void **state) {
    (void)state;
    char out[128], svg[128];
    snprintf(out, sizeof out, "%s/patch.h5", tmpdir);
    snprintf(svg, sizeof svg, "%s/p_", tmpdir);
    cli_result r = cli_run(exe, "patch", "--model", model, "--clean", clean0, "--clean", clean1,
                           "--corrupted", bad0, "--corrupted", bad1, "--answer", answer,
                           "--wrong", wrong, "--sweep", "resid_pre,head_out_by_pos,head_out",
                           "--batch", "6", "--out", out, "--svg", svg, NULL);
    cli_expect_status(&r, 0, "patch");
    cli_expect_contains(r.out, "## resid_pre: hook_resid_pre [layer 2 x pos 8]", "patch");
    cli_expect_contains(r.out, "(6 per forward)", "patch");
    cli_result_free(&r);
    expect_h5_ref(out, "resid_pre/values", "patch_resid_pre");
    expect_h5_ref(out, "head_out_by_pos/values", "patch_attn_head_out_by_pos");
    expect_h5_ref(out, "head_out/values", "patch_attn_head_out_all_pos");
    char p[160];
    snprintf(p, sizeof p, "%s/p_head_out_by_pos.svg", tmpdir);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char head[64] = {0};
    assert_true(fread(head, 1, 20, f) == 20);
    fclose(f);
    assert_non_null(strstr(head, "<?xml"));
    expect_patch_svg_labels();
    /* again without --force: refused, the file stays as it was */
    r = cli_run(exe, "patch", "--model", model, "--clean", clean0, "--corrupted", bad0,
                "--answer", answer0, "--wrong", wrong0, "--sweep", "attn_out", "--out", out, NULL);
    cli_expect_status(&r, 1, "patch over an existing --out");
    cli_expect_contains(r.err, "exists", "patch over an existing --out");
    cli_result_free(&r);
    expect_h5_ref(out, "resid_pre/values", "patch_resid_pre");
}

static void test_patch_usage(void **state) {
    (void)state;
    cli_result r = cli_run(exe, "patch", "--model", model, "--clean", clean0, "--corrupted",
                           "1,2,3", "--answer", answer0, "--wrong", wrong0, NULL);
    cli_expect_status(&r, 2, "different lengths");
    cli_expect_contains(r.err, "--pos-map", "different lengths");
    cli_result_free(&r);
    r = cli_run(exe, "patch", "--model", model, "--clean", clean0, "--corrupted", bad0,
                "--answer", answer0, "--wrong", wrong0, "--sweep", "resid_pre,bogus", NULL);
    cli_expect_status(&r, 2, "unknown sweep");
    cli_expect_contains(r.err, "unknown sweep 'bogus'", "unknown sweep");
    cli_result_free(&r);
    r = cli_run(exe, "patch", "--model", model, "--clean", clean0, "--corrupted", bad0,
                "--answer", "1,2,3", "--wrong", wrong0, NULL);
    cli_expect_status(&r, 2, "answers per prompt");
    cli_result_free(&r);
    r = cli_run(exe, "patch", "--model", model, "--clean", clean0, "--corrupted", bad0,
                "--answer", "99999", "--wrong", wrong0, NULL);
    cli_expect_status(&r, 1, "answer outside the vocabulary");
    cli_expect_contains(r.err, "vocabulary", "answer outside the vocabulary");
    cli_result_free(&r);
}

static void test_ablate(void **state) {
    (void)state;
    char out[128], ref0[256], ref1[256], ref2[256];
    ids_str("ref_ids", 0, ref0, sizeof ref0);
    ids_str("ref_ids", 1, ref1, sizeof ref1);
    ids_str("ref_ids", 2, ref2, sizeof ref2);
    snprintf(out, sizeof out, "%s/zero.h5", tmpdir);
    cli_result r = cli_run(exe, "ablate", "--model", model, "--tokens", clean0, "--tokens",
                           clean1, "--answer", answer, "--wrong", wrong, "--sweep",
                           "head_out,mlp_out", "--out", out, NULL);
    cli_expect_status(&r, 0, "ablate zero");
    cli_expect_contains(r.out, "zero ablation", "ablate zero");
    cli_result_free(&r);
    expect_h5_ref(out, "head_out/values", "ablate_zero_head");
    expect_h5_ref(out, "mlp_out/values", "ablate_zero_mlp_out_by_pos");
    snprintf(out, sizeof out, "%s/mean.h5", tmpdir);
    r = cli_run(exe, "ablate", "--model", model, "--tokens", clean0, "--tokens", clean1,
                "--answer", answer, "--wrong", wrong, "--mode", "mean", "--ref", ref0, "--ref",
                ref1, "--ref", ref2, "--sweep", "head_out", "--out", out, NULL);
    cli_expect_status(&r, 0, "ablate mean");
    cli_result_free(&r);
    expect_h5_ref(out, "head_out/values", "ablate_mean_head");
    r = cli_run(exe, "ablate", "--model", model, "--tokens", clean0, "--answer", answer0,
                "--wrong", wrong0, "--mode", "resample", NULL);
    cli_expect_status(&r, 2, "resample without --ref");
    cli_expect_contains(r.err, "--ref", "resample without --ref");
    cli_result_free(&r);
}

static void test_steer(void **state) {
    (void)state;
    char pos[128], neg[128], gen[128], coef[32], vec[128], maxnew[16];
    ids_str("steer_pos_ids", 0, pos, sizeof pos);
    ids_str("steer_neg_ids", 0, neg, sizeof neg);
    ids_str("steer_last_generate", 0, gen, sizeof gen);
    float c;
    memcpy(&c, need("steer_coef")->data, 4);
    snprintf(coef, sizeof coef, "%g", c);
    snprintf(maxnew, sizeof maxnew, "%lld", (long long)need("steer_last_generate")->shape[0]);
    snprintf(vec, sizeof vec, "%s/v.h5", tmpdir);
    char want[160];
    snprintf(want, sizeof want, "steered  %s\n", gen);
    cli_result r = cli_run(exe, "steer", "--model", model, "--tokens", clean0, "--pos", pos,
                           "--neg", neg, "--layer", "1", "--coef", coef, "--from", "2",
                           "--max-new", maxnew, "--save", vec, NULL);
    cli_expect_status(&r, 0, "steer");
    cli_expect_contains(r.out, want, "steer");
    cli_result_free(&r);
    r = cli_run(exe, "steer", "--model", model, "--tokens", clean0, "--vector", vec, "--coef",
                coef, "--from", "2", "--max-new", maxnew, NULL);
    cli_expect_status(&r, 0, "steer --vector");
    cli_expect_contains(r.out, want, "steer --vector");
    cli_result_free(&r);
    r = cli_run(exe, "steer", "--model", model, "--tokens", clean0, "--pos", pos, NULL);
    cli_expect_status(&r, 2, "steer --pos alone");
    cli_result_free(&r);
}

static void test_lens(void **state) {
    (void)state;
    char out[128], svg[128];
    snprintf(out, sizeof out, "%s/lens.h5", tmpdir);
    snprintf(svg, sizeof svg, "%s/l_", tmpdir);
    cli_result r = cli_run(exe, "lens", "--model", model, "--tokens", clean0, "--tokens", clean1,
                           "--answer", answer, "--wrong", wrong, "--out", out, "--svg", svg,
                           NULL);
    cli_expect_status(&r, 0, "lens");
    cli_expect_contains(r.out, "largest components", "lens");
    cli_result_free(&r);
    expect_h5_ref(out, "dla/values", "dla");
    expect_h5_ref(out, "dla/total", "dla_total");
    expect_h5_ref(out, "lens/top_logits", "lens_top_logits");
    int64_t n;
    float *probs = h5_floats(out, "lens/top_probs", &n);
    for (int64_t i = 0; i < n; i++) assert_true(probs[i] > 0 && probs[i] <= 1);
    char p[160];
    snprintf(p, sizeof p, "%s/l_lens.svg", tmpdir);
    /* coloured by probability on a fixed 0..1 scale: the first cell's fill is the top-1
     * probability of layer 0, position 0 (white to red) */
    char *s = slurp_text(p);
    cli_expect_contains(s, ">top-1 probability</text>", "lens legend");
    const char *cell = strstr(s, "fill=\"rgb(");
    int rgb[3];
    assert_true(cell && sscanf(cell, "fill=\"rgb(%d,%d,%d)", &rgb[0], &rgb[1], &rgb[2]) == 3);
    const double t = probs[0];
    assert_true(abs(rgb[1] - (int)lround(247 + (24 - 247) * t)) <= 1);
    char want[1200];
    snprintf(want, sizeof want, ">model: %s</text>", model);
    cli_expect_contains(s, want, "lens title");
    free(s);
    free(probs);
    snprintf(p, sizeof p, "%s/l_dla.svg", tmpdir);
    assert_int_equal(access(p, R_OK), 0);
}

/* ---- text forms (--clean-text, --prompt, --prompts, --answer-text, ...) ---- */

/* the SmolLM2 GGUF of the model cache (it has a tokenizer; no decoder fixture does), or
 * false when it is not there */
static bool smollm2(char *out, size_t cap) {
    const char *cache = getenv("HK_MODEL_CACHE");
    const char *home = getenv("HOME");
    if (cache && *cache)
        snprintf(out, cap, "%s/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else
        snprintf(out, cap, "%s/.cache/hookformer/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                 home ? home : "");
    return access(out, R_OK) == 0;
}

/* `hookformer tokenize --ids` of a text, as "a,b,c" */
static void tokenize(const char *gguf, const char *text, bool bos, char *out, size_t cap) {
    cli_result r = cli_run(exe, "tokenize", "--model", gguf, "--prompt", text, "--ids",
                           bos ? "--prepend-bos" : "--no-prepend-bos", NULL);
    cli_expect_status(&r, 0, "tokenize");
    snprintf(out, cap, "%.*s", (int)strcspn(r.out, "\n"), r.out);
    cli_result_free(&r);
}

static void expect_same_out(cli_result *a, cli_result *b, const char *what) {
    cli_expect_status(a, 0, what);
    cli_expect_status(b, 0, what);
    if (strcmp(a->out, b->out) != 0)
        fail_msg("%s: text and ids forms differ:\n--- text\n%s--- ids\n%s", what, a->out, b->out);
    cli_result_free(a);
    cli_result_free(b);
}

static void test_text_forms(void **state) {
    (void)state;
    char gguf[1024];
    if (!smollm2(gguf, sizeof gguf)) {
        print_message("skipped: no %s (scripts/fetch_models.sh fetches it)\n", gguf);
        skip();
    }
    const char *c0 = "When Mary and John went to the store, John gave a drink to";
    const char *b0 = "When Mary and John went to the store, Mary gave a drink to";
    char ci[256], bi[256], ai[32], wi[32];
    tokenize(gguf, c0, true, ci, sizeof ci);
    tokenize(gguf, b0, true, bi, sizeof bi);
    tokenize(gguf, " Mary", false, ai, sizeof ai);
    tokenize(gguf, " John", false, wi, sizeof wi);
    assert_null(strchr(ai, ','));
    char svg[128];
    snprintf(svg, sizeof svg, "%s/t_", tmpdir);
    cli_result t = cli_run(exe, "patch", "--model", gguf, "--clean-text", c0, "--corrupted-text",
                           b0, "--answer-text", " Mary", "--wrong-text", " John", "--sweep",
                           "attn_out", "--layer", "0", "--svg", svg, NULL);
    cli_result i = cli_run(exe, "patch", "--model", gguf, "--clean", ci, "--corrupted", bi,
                           "--answer", ai, "--wrong", wi, "--sweep", "attn_out", "--layer", "0",
                           "--svg", svg, "--force", NULL);
    cli_expect_contains(t.out, "' Mary'", "patch text labels");
    expect_same_out(&t, &i, "patch");
    /* the heatmap: token pairs where the prompts differ, the prompts' text and the answers */
    snprintf(svg, sizeof svg, "%s/t_attn_out.svg", tmpdir);
    char *s = slurp_text(svg);
    cli_expect_contains(s, ">10 &apos; John&apos;/&apos; Mary&apos;</text>", "pair label");
    cli_expect_contains(s, ">9 &apos;,&apos;</text>", "a shared token");
    cli_expect_contains(s, "metric: logit[&apos; Mary&apos;] - logit[&apos; John&apos;]",
                        "metric");
    cli_expect_contains(s, "John went to the store, John gave a drink to&apos;</text>",
                        "clean prompt");
    free(s);
    /* lens: --prompts FILE (two lines) with DLA vs --tokens twice */
    char file[128];
    snprintf(file, sizeof file, "%s/prompts.txt", tmpdir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fprintf(f, "%s\n%s\n", c0, b0);
    fclose(f);
    t = cli_run(exe, "lens", "--model", gguf, "--prompts", file, "--answer-text", " Mary",
                "--wrong-text", " John", "--top-k", "2", NULL);
    i = cli_run(exe, "lens", "--model", gguf, "--tokens", ci, "--tokens", bi, "--answer", ai,
                "--wrong", wi, "--top-k", "2", NULL);
    cli_expect_contains(t.out, "largest components", "lens text");
    /* the last position's top-k as run's table: id, logit, probability, the token's text */
    const char *tab = cli_expect_contains(t.out, "top-2 at the last position, final layer:\n"
                                                 " rank   token_id        logit         prob"
                                                 "  token\n", "lens top-k table");
    int rank, id;
    double logit, prob;
    char tok[64];
    tab = strchr(tab, '\n') + 1;
    tab = strchr(tab, '\n') + 1;
    assert_int_equal(sscanf(tab, "%d %d %lf %lf %63s", &rank, &id, &logit, &prob, tok), 5);
    assert_true(rank == 1 && prob > 0 && prob <= 1 && tok[0] == '\'');
    expect_same_out(&t, &i, "lens");
    /* steer prints the generated tokens' texts under their ids */
    t = cli_run(exe, "steer", "--model", gguf, "--prompt", c0, "--pos-text", " Love",
                "--neg-text", " Hate", "--layer", "6", "--max-new", "3", NULL);
    cli_expect_status(&t, 0, "steer text");
    const char *pl = cli_expect_contains(t.out, "\nplain    ", "steer plain");
    pl = strchr(pl + 1, '\n');
    assert_true(pl && strncmp(pl, "\n         '", 11) == 0);
    pl = cli_expect_contains(t.out, "\nsteered  ", "steer steered");
    pl = strchr(pl + 1, '\n');
    assert_true(pl && strncmp(pl, "\n         '", 11) == 0);
    cli_result_free(&t);
    /* an answer that is two tokens: the option, the text and its ids */
    t = cli_run(exe, "ablate", "--model", gguf, "--prompt", c0, "--answer-text", " Mary went",
                "--wrong-text", " John", NULL);
    cli_expect_status(&t, 2, "two-token answer");
    cli_expect_contains(t.err, "--answer-text ' Mary went' must be exactly one token",
                        "two-token answer");
    cli_expect_contains(t.err, ai, "two-token answer");
    cli_result_free(&t);
    /* prompts whose encodings differ in length */
    t = cli_run(exe, "lens", "--model", gguf, "--prompt", c0, "--prompt", "Mary", NULL);
    cli_expect_status(&t, 2, "lengths");
    cli_expect_contains(t.err, "same number of tokens", "lengths");
    cli_result_free(&t);
}

static void test_text_usage(void **state) {
    (void)state;
    cli_result r = cli_run(exe, "patch", "--model", model, "--clean", clean0, "--clean-text",
                           "a b", "--corrupted", bad0, "--answer", answer0, "--wrong", wrong0,
                           NULL);
    cli_expect_status(&r, 2, "both --clean forms");
    cli_expect_contains(r.err, "--clean IDS or --clean-text TEXT, not both", "both forms");
    cli_result_free(&r);
    r = cli_run(exe, "patch", "--model", model, "--clean", clean0, "--corrupted", bad0,
                "--answer", answer0, "--answer-text", " x", "--wrong", wrong0, NULL);
    cli_expect_status(&r, 2, "both --answer forms");
    cli_expect_contains(r.err, "--answer IDS or --answer-text TEXT", "both --answer forms");
    cli_result_free(&r);
    r = cli_run(exe, "ablate", "--model", model, "--tokens", clean0, "--prompt", "x",
                "--answer", answer0, "--wrong", wrong0, NULL);
    cli_expect_status(&r, 2, "both --tokens forms");
    cli_expect_contains(r.err, "--tokens IDS or --prompt TEXT", "both --tokens forms");
    cli_result_free(&r);
    r = cli_run(exe, "steer", "--model", model, "--tokens", clean0, "--pos", "1,2", "--pos-text",
                "x", "--neg", "1,2", "--layer", "0", NULL);
    cli_expect_status(&r, 2, "both --pos forms");
    cli_expect_contains(r.err, "--pos IDS or --pos-text TEXT", "both --pos forms");
    cli_result_free(&r);
    /* the llama fixture has no tokenizer.json: an error naming the folder */
    r = cli_run(exe, "lens", "--model", model, "--prompt", "When Mary", NULL);
    cli_expect_status(&r, 1, "no tokenizer");
    cli_expect_contains(r.err, "--prompt needs the model's tokenizer", "no tokenizer");
    cli_expect_contains(r.err, model, "no tokenizer");
    cli_result_free(&r);
    r = cli_run(exe, "patch", "--model", model, "--clean", clean0, "--corrupted", bad0,
                "--answer-text", " Mary", "--wrong", wrong0, NULL);
    cli_expect_status(&r, 1, "no tokenizer for --answer-text");
    cli_expect_contains(r.err, "--answer-text needs the model's tokenizer", "no tokenizer");
    cli_result_free(&r);
}

int main(int argc, char **argv) {
    exe = cli_exe_from_argv(argc, argv);
    if (!exe) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patch),
        cmocka_unit_test(test_patch_usage),
        cmocka_unit_test(test_ablate),
        cmocka_unit_test(test_steer),
        cmocka_unit_test(test_lens),
        cmocka_unit_test(test_text_usage),
        cmocka_unit_test(test_text_forms),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
