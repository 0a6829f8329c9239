/* The SAE commands, run as the CLI: `cache --sae` (CSR rows against SAELens's feature
 * activations, padding, refusals that leave the file byte-identical), `sae info`, `steer
 * --sae --feature`, `ablate --sae --feature` (against SAELens's spliced logits). */
#include <hdf5.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_run.h"
#include "core/checkpoint.h"
#include "fixtures.h"
#include "float_compare.h"
#include "hookformer.h"
#include "render.h"
#include "test_util.h"

static const char *g_exe;
static char g_tmp[512], g_model[600], g_sae[600], g_ids[600];

typedef struct {
    hk_ckpt *ck;
    int32_t *ids;
    int64_t seq;
} ref_file;

static void ref_open(ref_file *r) {
    r->ck = fixture_ckpt("sae/gpt2_standard", "reference.safetensors");
    const hk_st_tensor *t = hk_ckpt_find(r->ck, "input_ids");
    r->seq = t->shape[1];
    r->ids = ids_from_i64(t->data, r->seq);
}

static void ref_close(ref_file *r) {
    free(r->ids);
    hk_ckpt_close(r->ck);
}

static void ids_text(const int32_t *ids, int64_t n, char *buf, size_t cap) {
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? "," : "", ids[i]);
}

static void *read_ds(hid_t f, const char *name, hid_t mem, size_t esize, int64_t *n) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[1];
    assert_int_equal(H5Sget_simple_extent_ndims(sp), 1);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    *n = (int64_t)dims[0];
    void *buf = malloc((size_t)(*n ? *n : 1) * esize);
    assert_true(H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    return buf;
}

/* Two sequences (the reference's 12 tokens, then its first 5) in one padded batch: every row's
 * CSR entries, densified, are SAELens's acts_post of that token. */
static void test_cache_sae(void **state) {
    (void)state;
    ref_file r;
    ref_open(&r);
    char line[512], text[1200], out[700];
    ids_text(r.ids, r.seq, line, sizeof line);
    snprintf(text, sizeof text, "%s\n", line);
    ids_text(r.ids, 5, line, sizeof line);
    strncat(text, line, sizeof text - strlen(text) - 2);
    strcat(text, "\n");
    write_text(g_ids, text);
    snprintf(out, sizeof out, "%s/feat.h5", g_tmp);
    remove(out);
    cli_result res = cli_run(g_exe, "cache", "--model", g_model, "--tokens-file", g_ids, "--sae",
                             g_sae, "--out", out, "--batch", "2", NULL);
    cli_expect_status(&res, 0, "cache --sae");
    cli_result_free(&res);
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    int64_t n_rows, n_ptr, n_idx, n_val, n_seq;
    int64_t *seq = read_ds(f, "seq_id", H5T_NATIVE_INT64, 8, &n_seq);
    int64_t *pos = read_ds(f, "position", H5T_NATIVE_INT64, 8, &n_rows);
    const char *g = "blocks.0.hook_resid_post.hook_sae_acts_post";
    char name[256];
    snprintf(name, sizeof name, "%s/row_ptr", g);
    int64_t *ptr = read_ds(f, name, H5T_NATIVE_INT64, 8, &n_ptr);
    snprintf(name, sizeof name, "%s/indices", g);
    int32_t *idx = read_ds(f, name, H5T_NATIVE_INT32, 4, &n_idx);
    snprintf(name, sizeof name, "%s/values", g);
    float *val = read_ds(f, name, H5T_NATIVE_FLOAT, 4, &n_val);
    assert_int_equal(n_rows, r.seq + 5);
    assert_int_equal(n_seq, n_rows);
    assert_int_equal(n_ptr, n_rows + 1);
    assert_int_equal(n_idx, n_val);
    assert_int_equal(ptr[0], 0);
    assert_int_equal(ptr[n_rows], n_idx);
    const float *want = NULL;
    const int64_t shape[3] = {1, r.seq, 96};
    EXPECT_OK(hk_ckpt_f32(r.ck, "acts_post", 3, shape, &want));
    float dense[96];
    for (int64_t row = 0; row < n_rows; row++) {
        const int64_t p = row < r.seq ? row : row - r.seq;
        assert_int_equal(seq[row], row < r.seq ? 0 : 1);
        assert_int_equal(pos[row], p);
        memset(dense, 0, sizeof dense);
        for (int64_t k = ptr[row]; k < ptr[row + 1]; k++) {
            assert_true(idx[k] >= 0 && idx[k] < 96);
            assert_true(val[k] != 0.0f);
            dense[idx[k]] = val[k];
        }
        float d = max_abs_diff(dense, want + p * 96, 96);
        if (!(d <= 1e-4f)) print_error("row %lld: %g from SAELens\n", (long long)row, d);
        assert_true(d <= 1e-4f);
    }
    /* the group says what it holds */
    hid_t gr = H5Gopen2(f, g, H5P_DEFAULT);
    hid_t at = H5Aopen(gr, "shape", H5P_DEFAULT);
    int64_t sh[2];
    H5Aread(at, H5T_NATIVE_INT64, sh);
    assert_int_equal(sh[0], n_rows);
    assert_int_equal(sh[1], 96);
    H5Aclose(at);
    H5Gclose(gr);
    H5Fclose(f);
    free(seq), free(pos), free(ptr), free(idx), free(val);
    ref_close(&r);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n + 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* Refused runs leave an existing --out byte-identical, mtime included. */
static void test_cache_sae_refusals(void **state) {
    (void)state;
    char out[700];
    snprintf(out, sizeof out, "%s/keep.h5", g_tmp);
    write_text(out, "not touched");
    write_text(g_ids, "1,2,3\n4,5\n");
    struct stat before;
    assert_int_equal(stat(out, &before), 0);
    size_t n0;
    char *b0 = slurp(out, &n0);
    const char *bad_hook_args[] = {"cache", "--model", g_model, "--tokens-file", g_ids, "--sae",
                                   g_sae, "--sae-hook", "blocks.0.mlp.hook_post", "--out", out,
                                   "--force", NULL};
    struct {
        const char *what;
        const char *const *args;
        int status;
        const char *needle;
    } cases[] = {
        {"no --force", (const char *[]){"cache", "--model", g_model, "--tokens-file", g_ids,
                                        "--sae", g_sae, "--out", out, NULL},
         1, "exists"},
        {"--sae with --hooks", (const char *[]){"cache", "--model", g_model, "--tokens-file", g_ids,
                                                "--sae", g_sae, "--hooks", "hook_embed", "--out",
                                                out, "--force", NULL},
         2, "--sae"},
        {"d_in vs the hook", bad_hook_args, 1, "d_in is 64"},
        {"missing SAE", (const char *[]){"cache", "--model", g_model, "--tokens-file", g_ids,
                                         "--sae", "/nonexistent/sae", "--out", out, "--force",
                                         NULL},
         1, "/nonexistent/sae"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result r = cli_run_argv(g_exe, cases[i].args);
        cli_expect_status(&r, cases[i].status, cases[i].what);
        cli_expect_contains(r.err, cases[i].needle, cases[i].what);
        cli_result_free(&r);
        struct stat after;
        assert_int_equal(stat(out, &after), 0);
        size_t n1;
        char *b1 = slurp(out, &n1);
        assert_int_equal(n1, n0);
        assert_memory_equal(b1, b0, n0);
        assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                    after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
        free(b1);
    }
    /* no temporary file is left behind */
    char tmp[720];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    assert_int_not_equal(access(tmp, F_OK), 0);
    free(b0);
}

static void test_sae_info(void **state) {
    (void)state;
    cli_result r = cli_run(g_exe, "sae", "info", "--sae", g_sae, "--model", g_model, NULL);
    cli_expect_status(&r, 0, "sae info");
    cli_expect_contains(r.out, "architecture standard", "sae info");
    cli_expect_contains(r.out, "hook         blocks.0.hook_resid_post", "sae info");
    cli_expect_contains(r.out, "d_sae        96", "sae info");
    cli_expect_contains(r.out, "fits         gpt2", "sae info");
    cli_result_free(&r);
    r = cli_run(g_exe, "sae", "info", "--sae", g_sae, "--sae-hook", "blocks.0.mlp.hook_post",
                "--model", g_model, NULL);
    cli_expect_status(&r, 1, "sae info, wrong hook");
    cli_expect_contains(r.err, "blocks.0.mlp.hook_post", "sae info, wrong hook");
    cli_expect_contains(r.err, "128", "sae info, wrong hook");
    cli_result_free(&r);
    r = cli_run(g_exe, "sae", "bogus", NULL);
    cli_expect_status(&r, 2, "sae bogus");
    cli_result_free(&r);
}

/* The metric printed after zeroing feature 3 is SAELens's logits_ablate_error at the last
 * position; the spliced run with the error term equals the plain one. */
static void test_ablate_sae(void **state) {
    (void)state;
    ref_file r;
    ref_open(&r);
    char ids[512];
    ids_text(r.ids, r.seq, ids, sizeof ids);
    cli_result res = cli_run(g_exe, "ablate", "--model", g_model, "--tokens", ids, "--answer",
                             "68", "--wrong", "100", "--sae", g_sae, "--feature", "3", NULL);
    cli_expect_status(&res, 0, "ablate --sae");
    const float *lg = NULL;
    const int64_t shape[3] = {1, r.seq, 300};
    EXPECT_OK(hk_ckpt_f32(r.ck, "logits_ablate_error", 3, shape, &lg));
    const float *last = lg + (r.seq - 1) * 300;
    const char *line = cli_expect_contains(res.out, "\n3 ", "ablate --sae");
    float got = strtof(line + 3, NULL);
    print_message("feature 3 zeroed: %.4f, SAELens %.4f\n", got, last[68] - last[100]);
    assert_true(fabsf(got - (last[68] - last[100])) < 1e-3f);
    const char *u = cli_expect_contains(res.out, "# unablated ", "ablate --sae");
    float plain = strtof(u + 12, NULL);
    const char *sp = cli_expect_contains(res.out, "(SAE spliced: ", "ablate --sae");
    assert_true(fabsf(plain - strtof(sp + 14, NULL)) < 1e-3f);
    cli_result_free(&res);
    res = cli_run(g_exe, "ablate", "--model", g_model, "--tokens", ids, "--answer", "68",
                  "--wrong", "100", "--sae", g_sae, "--feature", "96", NULL);
    cli_expect_status(&res, 2, "ablate --feature out of range");
    cli_expect_contains(res.err, "96 features", "ablate --feature out of range");
    cli_result_free(&res);
    ref_close(&r);
}

/* coef 0 generates what the plain model does; coef 8 on feature 3 changes the tokens. */
static void test_steer_sae(void **state) {
    (void)state;
    for (int k = 0; k < 2; k++) {
        cli_result r = cli_run(g_exe, "steer", "--model", g_model, "--tokens", "227,187,164,39",
                               "--sae", g_sae, "--feature", "3", "--coef", k ? "8" : "0",
                               "--max-new", "8", NULL);
        cli_expect_status(&r, 0, "steer --sae");
        const char *p = cli_expect_contains(r.out, "plain    ", "steer --sae");
        const char *s = cli_expect_contains(r.out, "steered  ", "steer --sae");
        size_t lp = strcspn(p + 9, "\n"), ls = strcspn(s + 9, "\n");
        bool same = lp == ls && strncmp(p + 9, s + 9, lp) == 0;
        assert_true(k ? !same : same);
        cli_result_free(&r);
    }
    cli_result r = cli_run(g_exe, "steer", "--model", g_model, "--tokens", "1,2", "--sae", g_sae,
                           NULL);
    cli_expect_status(&r, 2, "steer --sae without --feature");
    cli_result_free(&r);
}

/* features: the HDF5 file's shapes, the HTML page rendered in headless Chromium (shaded
 * tokens and text), and an existing page that is refused byte-identical before any work. */
static void test_features(void **state) {
    (void)state;
    char out[700], html[700], png[700];
    snprintf(out, sizeof out, "%s/top.h5", g_tmp);
    snprintf(html, sizeof html, "%s/top.html", g_tmp);
    snprintf(png, sizeof png, "%s/top.png", g_tmp);
    remove(out);
    remove(html);
    cli_result r = cli_run(g_exe, "features", "--model", g_model, "--sae", g_sae, "--tokens",
                           "227,187,164,39,18,5,44,71,90,12", "--top", "3", "--window", "4",
                           "--out", out, "--html", html, "--features", "3,7,11", NULL);
    cli_expect_status(&r, 0, "features");
    cli_expect_contains(r.out, "features 3 7 11", "features");
    cli_result_free(&r);
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "window_values", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[3];
    assert_int_equal(H5Sget_simple_extent_ndims(sp), 3);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    assert_true(dims[0] == 96 && dims[1] == 3 && dims[2] == 9);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    size_t n;
    char *page = slurp(html, &n);
    page[n - 1] = '\0';
    assert_non_null(strstr(page, "id=\"feature-7\""));
    assert_null(strstr(page, "<script"));
    free(page);
    const char *chromium = render_find_chromium();
    if (chromium) {
        render_png(chromium, g_tmp, html, png, 900, 500);
        int w, h;
        unsigned char *rgb = render_png_rgb(png, &w, &h);
        assert_non_null(rgb);
        long shaded = 0, dark = 0;
        for (long i = 0; i < (long)w * h; i++) {
            const unsigned char *p = rgb + 3 * i;
            shaded += p[0] > 200 && p[1] < 200 && p[2] < 200 && p[0] - p[1] > 40;
            dark += p[0] < 80 && p[1] < 80 && p[2] < 80;
        }
        print_message("features page %dx%d: shaded %ld px, text %ld px\n", w, h, shaded, dark);
        assert_true(shaded > 500 && dark > 300);
        free(rgb);
    } else {
        print_message("no chromium on PATH: render check skipped\n");
    }
    /* an existing page without --force: refused before any work, both files untouched */
    struct stat before, after;
    assert_int_equal(stat(html, &before), 0);
    char *b0 = slurp(html, &n);
    remove(out);
    r = cli_run(g_exe, "features", "--model", g_model, "--sae", g_sae, "--tokens", "1,2,3",
                "--out", out, "--html", html, NULL);
    cli_expect_status(&r, 1, "features, existing --html");
    cli_expect_contains(r.err, "--html", "features, existing --html");
    cli_result_free(&r);
    assert_int_equal(stat(html, &after), 0);
    size_t n1;
    char *b1 = slurp(html, &n1);
    assert_int_equal(n1, n);
    assert_memory_equal(b0, b1, n);
    assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
    assert_int_not_equal(access(out, F_OK), 0);
    free(b0);
    free(b1);
}

int main(int argc, char **argv) {
    g_exe = cli_exe_from_argv(argc, argv);
    if (!g_exe) return 2;
    make_tmpdir(g_tmp, sizeof g_tmp);
    fixture_path("gpt2", g_model, sizeof g_model);
    fixture_path("sae/gpt2_standard", g_sae, sizeof g_sae);
    snprintf(g_ids, sizeof g_ids, "%s/ids.txt", g_tmp);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_sae), cmocka_unit_test(test_cache_sae_refusals),
        cmocka_unit_test(test_sae_info),  cmocka_unit_test(test_ablate_sae),
        cmocka_unit_test(test_steer_sae), cmocka_unit_test(test_features),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    remove_tree(g_tmp);
    return rc;
}
