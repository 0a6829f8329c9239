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
    char p[160];
    snprintf(p, sizeof p, "%s/l_lens.svg", tmpdir);
    assert_int_equal(access(p, R_OK), 0);
    snprintf(p, sizeof p, "%s/l_dla.svg", tmpdir);
    assert_int_equal(access(p, R_OK), 0);
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
