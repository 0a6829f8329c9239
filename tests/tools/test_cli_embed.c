/* `hookformer embed`, run as a child process: its printed and .npy embeddings against
 * hk_model_embed on the bert_body fixture, its usage and runtime errors, and `run` refusing a
 * headless encoder.
 *
 * usage: test_cli_embed PATH_TO_HOOKFORMER   (meson passes the built executable) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_run.h"
#include "fixtures.h"
#include "hookformer.h"

static const char *g_exe;

#define SEQ_A "5,17,250,3,99"
#define SEQ_B "7,8"

/* hk_model_embed of SEQ_A and SEQ_B in one padded batch: out [2, d] */
static void library_embeddings(const char *dir, hk_pooling pooling, int normalize, float *out,
                               int64_t *d) {
    hk_model *m;
    assert_int_equal(hk_model_load(dir, &m), HK_OK);
    int32_t ids[10] = {5, 17, 250, 3, 99, 7, 8, 0, 0, 0};
    int64_t lengths[2] = {5, 2};
    *d = hk_model_d_model(m);
    assert_int_equal(hk_model_embed(m, NULL, ids, NULL, lengths, 2, 5, pooling, normalize, out),
                     HK_OK);
    hk_model_free(m);
}

static void test_printed(void **state) {
    (void)state;
    char dir[1024];
    fixture_path("bert_body", dir, sizeof dir);
    float want[2 * 256];
    int64_t d;
    library_embeddings(dir, HK_POOL_CLS, 1, want, &d);
    cli_result r = cli_run(g_exe, "embed", "--model", dir, "--tokens", SEQ_A, "--tokens", SEQ_B,
                           "--pooling", "cls", "--normalize", "yes", NULL);
    cli_expect_status(&r, 0, "embed");
    cli_expect_contains(r.out, "sequences=2 d_model=64 pooling=cls normalize=yes", "header");
    const char *p = strchr(r.out, '\n') + 1;
    for (int i = 0; i < 2; i++) {
        char *end;
        assert_int_equal(strtol(p, &end, 10), i);
        p = end;
        for (int64_t j = 0; j < d; j++) {
            double v = strtod(p, &end);
            assert_true(end != p);
            assert_true(fabs(v - want[i * d + j]) <= 1e-7 * (1 + fabs(v)));
            p = end;
        }
        assert_int_equal(*p, '\n');
        p++;
    }
    assert_int_equal(*p, '\0');
    cli_result_free(&r);
}

static void test_npy(void **state) {
    (void)state;
    char dir[1024], path[] = "/tmp/hk_embed_XXXXXX";
    fixture_path("bert_body", dir, sizeof dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    float want[2 * 256];
    int64_t d;
    library_embeddings(dir, HK_POOL_MEAN, 0, want, &d); /* the folder's defaults */
    /* the file exists: refused without --force, and left as it was */
    cli_result r = cli_run(g_exe, "embed", "--model", dir, "--tokens", SEQ_A, "--tokens", SEQ_B,
                           "--out", path, NULL);
    cli_expect_status(&r, 1, "existing --out");
    cli_expect_contains(r.err, "use --force to overwrite", "existing --out");
    cli_result_free(&r);
    r = cli_run(g_exe, "embed", "--model", dir, "--tokens", SEQ_A, "--tokens", SEQ_B, "--out",
                path, "--force", NULL);
    cli_expect_status(&r, 0, "--out --force");
    cli_expect_contains(r.out, "pooling=mean normalize=no: wrote", "--out");
    cli_result_free(&r);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char head[128];
    assert_int_equal(fread(head, 1, 10, f), 10);
    assert_memory_equal(head, "\x93NUMPY\x01\x00", 8);
    size_t hlen = head[8] | (size_t)head[9] << 8;
    assert_int_equal((10 + hlen) % 64, 0);
    assert_true(hlen < sizeof head);
    assert_int_equal(fread(head, 1, hlen, f), hlen);
    head[hlen] = '\0';
    assert_non_null(strstr((char *)head, "'descr': '<f4', 'fortran_order': False, "
                                         "'shape': (2, 64)"));
    float got[2 * 64];
    assert_int_equal(fread(got, sizeof *got, 2 * 64, f), 2 * 64);
    assert_int_equal(fgetc(f), EOF);
    fclose(f);
    assert_memory_equal(got, want, sizeof got);
    unlink(path);
}

static void test_tokens_file(void **state) {
    (void)state;
    char dir[1024], path[] = "/tmp/hk_embed_tokens_XXXXXX";
    fixture_path("bert_body", dir, sizeof dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "5 17 250 3 99\n\n7, 8\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    cli_result a = cli_run(g_exe, "embed", "--model", dir, "--tokens-file", path, NULL);
    cli_result b = cli_run(g_exe, "embed", "--model", dir, "--tokens", SEQ_A, "--tokens", SEQ_B,
                           NULL);
    cli_expect_status(&a, 0, "--tokens-file");
    assert_string_equal(a.out, b.out);
    cli_result_free(&a);
    cli_result_free(&b);
    unlink(path);
}

static void test_errors(void **state) {
    (void)state;
    char dir[1024];
    fixture_path("bert_body", dir, sizeof dir);
    struct {
        const char *args[6];
        int status;
        const char *message;
    } cases[] = {
        {{"embed", "--model", dir, NULL}, 2, "give the sequences with --tokens"},
        {{"embed", "--model", dir, "--tokens", "1,,x"}, 2, "--tokens: expected token ids"},
        {{"embed", "--model", dir, "--tokens", ","}, 2, "--tokens: an empty sequence"},
        {{"embed", "--model", dir, "--tokens", "1", "--pooling=avg"}, 2,
         "--pooling: expected model, mean, cls"},
        {{"embed", "--model", dir, "--tokens", "1", "--normalize=maybe"}, 2,
         "--normalize: expected model, yes or no"},
        {{"embed", "--model", dir, "--tokens", "300"}, 1, "outside the vocabulary [0, 300)"},
        {{"embed", "--model", dir, "--tokens-file", "/nonexistent/ids"}, 1,
         "--tokens-file: cannot open '/nonexistent/ids'"},
        {{"run", "--model", dir, "--tokens", "1,2"}, 1, "an encoder without an output head"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result r = cli_run(g_exe, cases[i].args[0], cases[i].args[1], cases[i].args[2],
                               cases[i].args[3], cases[i].args[4], cases[i].args[5], NULL);
        cli_expect_status(&r, cases[i].status, cases[i].message);
        cli_expect_contains(r.err, cases[i].message, cases[i].message);
        assert_string_equal(r.out, "");
        cli_result_free(&r);
    }
}

int main(int argc, char **argv) {
    g_exe = cli_exe_from_argv(argc, argv);
    if (!g_exe) return 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printed),
        cmocka_unit_test(test_npy),
        cmocka_unit_test(test_tokens_file),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
