/* Text on the command line: --prompt / --prompts / --[no-]prepend-bos on run, generate,
 * estimate and tokenize, token strings in top-k, decoded text from generate, the tokenizer in
 * info, and the errors. The model folders are fixture models with a 300-id tokenizer.json. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "cli_run.h"
#include "fixtures.h"
#include "tok_ref.h"

static const char *g_exe;
static char g_gpt2[256], g_mistral[256], g_bare[512], g_tok[1024], g_prompts[512];

#define RUN(...) cli_run(g_exe, __VA_ARGS__, NULL)

static int setup(void **state) {
    (void)state;
    tok_model_dir("gpt2", "tiny_bytelevel", g_gpt2, sizeof g_gpt2);
    tok_model_dir("mistral", "tiny_spm", g_mistral, sizeof g_mistral);
    fixture_path("gpt2", g_bare, sizeof g_bare);
    tok_fixture("bpe_gpt2.json", g_tok, sizeof g_tok);
    snprintf(g_prompts, sizeof g_prompts, "%s/prompts.txt", g_gpt2);
    FILE *f = fopen(g_prompts, "wb");
    /* CRLF, a blank line (skipped), a literal backslash-n (not an escape) */
    fputs("Hello world\r\n\nthe cat \\n sat\n", f);
    fclose(f);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tok_remove_dir(g_gpt2);
    tok_remove_dir(g_mistral);
    return 0;
}

/* The first line of `tokenize --ids`: the ids of a prompt as the CLI encodes it. */
static char *ids_of(const char *model, const char *prompt, const char *bos_flag) {
    cli_result r = bos_flag
                       ? RUN("tokenize", "--model", model, "--prompt", prompt, "--ids", bos_flag)
                       : RUN("tokenize", "--model", model, "--prompt", prompt, "--ids");
    cli_expect_status(&r, 0, "tokenize --ids");
    char *nl = strchr(r.out, '\n');
    if (nl) *nl = '\0';
    char *ids = strdup(r.out);
    cli_result_free(&r);
    return ids;
}

static void test_tokenize(void **state) {
    (void)state;
    /* --tokenizer: Hugging Face's encode with the post-processor */
    cli_result r = RUN("tokenize", "--tokenizer", g_tok, "--prompt", "Hello<|endoftext|>");
    cli_expect_status(&r, 0, "tokenize --tokenizer");
    cli_expect_contains(r.out, "'<|endoftext|>'", "token display");
    cli_result_free(&r);
    /* --model on gpt2: BOS (<|endoftext|> = 299) first; --no-prepend-bos drops it */
    char *with = ids_of(g_gpt2, "Hello world", NULL);
    char *without = ids_of(g_gpt2, "Hello world", "--no-prepend-bos");
    assert_true(strncmp(with, "299,", 4) == 0);
    assert_string_equal(with + 4, without);
    free(with);
    free(without);
    /* mistral + SentencePiece: the post-processor's <s> once, not twice */
    with = ids_of(g_mistral, "Hello world", NULL);
    assert_true(strncmp(with, "1,", 2) == 0 && strncmp(with, "1,1,", 4) != 0);
    free(with);
    without = ids_of(g_mistral, "Hello world", "--no-prepend-bos");
    assert_true(strncmp(without, "1,", 2) != 0);
    free(without);
    /* ids -> text */
    r = RUN("tokenize", "--model", g_gpt2, "--tokens", "299,39,68");
    cli_expect_status(&r, 0, "tokenize --tokens");
    assert_string_equal(r.out, "<|endoftext|>He\n");
    cli_result_free(&r);
}

static void test_run_prompt(void **state) {
    (void)state;
    char *ids = ids_of(g_gpt2, "Hello world", NULL);
    cli_result a = RUN("run", "--model", g_gpt2, "--prompt", "Hello world", "--top-k", "3");
    cli_result b = RUN("run", "--model", g_gpt2, "--tokens", ids, "--top-k", "3");
    cli_expect_status(&a, 0, "run --prompt");
    cli_expect_status(&b, 0, "run --tokens");
    /* the same tables: text input is only another way to give the ids */
    assert_string_equal(a.out, b.out);
    cli_expect_contains(a.out, "  token\n", "token column");
    cli_expect_contains(a.out, "after token", "header");
    /* every row ends with a quoted token */
    int rows = 0;
    for (const char *l = strchr(a.out, '\n'); l && l[1]; l = strchr(l + 1, '\n')) {
        int rank, id;
        double x, p;
        if (sscanf(l + 1, "%d %d %lf %lf", &rank, &id, &x, &p) == 4) {
            rows++;
            const char *end = strchr(l + 1, '\n');
            assert_true(end && end[-1] == '\'');
        }
    }
    assert_int_equal(rows, 3);
    cli_result_free(&a);
    cli_result_free(&b);
    free(ids);

    /* --prompts: one table per non-empty line, CRLF stripped, backslashes literal */
    a = RUN("run", "--model", g_gpt2, "--prompts", g_prompts, "--top-k", "2");
    cli_expect_status(&a, 0, "run --prompts");
    cli_expect_contains(a.out, "prompt=1 ", "first table");
    cli_expect_contains(a.out, "prompt=2 ", "second table");
    assert_null(strstr(a.out, "prompt=3 "));
    cli_result_free(&a);
    char *p2 = ids_of(g_gpt2, "the cat \\n sat", NULL);
    a = RUN("tokenize", "--model", g_gpt2, "--prompts", g_prompts, "--ids");
    cli_expect_status(&a, 0, "tokenize --prompts");
    cli_expect_contains(a.out, p2, "line 2 as raw text");
    free(p2);
    cli_result_free(&a);
}

/* dataset `name` of an HDF5 file as int32 [*n] */
static int32_t *h5_ints(const char *path, const char *name, int64_t *n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("%s: cannot open", path);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) fail_msg("%s: no dataset %s", path, name);
    hid_t sp = H5Dget_space(ds);
    *n = H5Sget_simple_extent_npoints(sp);
    int32_t *v = malloc((size_t)*n * sizeof *v + 1);
    assert_true(H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(sp), H5Dclose(ds), H5Fclose(f);
    return v;
}

static void expect_same_ints(const char *a, const char *b, const char *name) {
    int64_t na, nb;
    int32_t *x = h5_ints(a, name, &na), *y = h5_ints(b, name, &nb);
    assert_int_equal(na, nb);
    for (int64_t i = 0; i < na; i++)
        if (x[i] != y[i]) fail_msg("%s: %s[%lld] is %d in %s, %d in %s", name, name,
                                   (long long)i, x[i], a, y[i], b);
    free(x), free(y);
}

/* `tokenize --ids --prompts` prints exactly what --tokens-file reads: one ids line per prompt,
 * nothing else, and `cache --tokens-file` on it stores what `cache --prompts` stores. */
static void test_tokenize_ids_round_trip(void **state) {
    (void)state;
    cli_result r = RUN("tokenize", "--model", g_gpt2, "--prompts", g_prompts, "--ids");
    cli_expect_status(&r, 0, "tokenize --ids --prompts");
    char *p1 = ids_of(g_gpt2, "Hello world", NULL), *p2 = ids_of(g_gpt2, "the cat \\n sat", NULL);
    char want[512];
    snprintf(want, sizeof want, "%s\n%s\n", p1, p2);
    assert_string_equal(r.out, want);
    free(p1), free(p2);
    char ids[600], a[600], b[600];
    snprintf(ids, sizeof ids, "%s/ids.txt", g_gpt2);
    snprintf(a, sizeof a, "%s/from_ids.h5", g_gpt2);
    snprintf(b, sizeof b, "%s/from_text.h5", g_gpt2);
    FILE *f = fopen(ids, "wb");
    assert_non_null(f);
    fputs(r.out, f);
    assert_int_equal(fclose(f), 0);
    cli_result_free(&r);
    r = RUN("cache", "--model", g_gpt2, "--tokens-file", ids, "--hooks",
            "blocks.0.hook_resid_pre", "--out", a);
    cli_expect_status(&r, 0, "cache --tokens-file (tokenize --ids output)");
    cli_result_free(&r);
    r = RUN("cache", "--model", g_gpt2, "--prompts", g_prompts, "--hooks",
            "blocks.0.hook_resid_pre", "--out", b);
    cli_expect_status(&r, 0, "cache --prompts");
    cli_result_free(&r);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    expect_same_ints(a, b, "token_id");
    expect_same_ints(a, b, "seq_id");
    expect_same_ints(a, b, "position");
    unlink(ids), unlink(a), unlink(b);
    /* without --ids the per-prompt headers say both numberings */
    r = RUN("tokenize", "--model", g_gpt2, "--prompts", g_prompts);
    cli_expect_status(&r, 0, "tokenize --prompts");
    cli_expect_contains(r.out, "# prompt=2 seq_id=1 tokens=", "header");
    cli_result_free(&r);
}

static void test_generate_text(void **state) {
    (void)state;
    char *ids = ids_of(g_gpt2, "Hello", NULL);
    cli_result ia = RUN("generate", "--model", g_gpt2, "--tokens", ids, "--max-new", "6", "--ids");
    cli_result ta = RUN("generate", "--model", g_gpt2, "--prompt", "Hello", "--max-new", "6");
    cli_expect_status(&ia, 0, "generate --ids");
    cli_expect_status(&ta, 0, "generate --prompt");
    /* the text printed is the decode of the ids generated */
    char *nl = strchr(ia.out, '\n');
    if (nl) *nl = '\0';
    cli_result dec = RUN("tokenize", "--model", g_gpt2, "--tokens", ia.out);
    cli_expect_status(&dec, 0, "tokenize --tokens");
    assert_string_equal(ta.out, dec.out);
    cli_result_free(&ia);
    cli_result_free(&ta);
    cli_result_free(&dec);
    free(ids);
    /* the EOS stops generation by default: --stop with an id never generated lets it run */
    cli_result r = RUN("generate", "--model", g_gpt2, "--prompts", g_prompts, "--max-new", "3",
                       "--ids");
    cli_expect_status(&r, 0, "generate --prompts");
    cli_expect_contains(r.out, "# prompt=2\n", "second prompt");
    cli_result_free(&r);
}

static void test_estimate_and_info(void **state) {
    (void)state;
    char *ids = ids_of(g_gpt2, "Hello world", NULL);
    size_t n = 1;
    for (const char *p = ids; *p; p++) n += *p == ',';
    char want[64];
    snprintf(want, sizeof want, "\"ctx\": %zu,", n);
    cli_result r = RUN("estimate", "--model", g_gpt2, "--prompt", "Hello world", "--json");
    cli_expect_status(&r, 0, "estimate --prompt");
    cli_expect_contains(r.out, want, "ctx from the prompt");
    cli_result_free(&r);
    /* hooks: the shapes of a run over the prompt */
    snprintf(want, sizeof want, "hook_embed                       [1, %zu, 64]", n);
    r = RUN("hooks", "--model", g_gpt2, "--prompt", "Hello world");
    cli_expect_status(&r, 0, "hooks --prompt");
    cli_expect_contains(r.out, want, "hook_embed shape");
    snprintf(want, sizeof want, "[1, 4, %zu, %zu]", n, n);
    cli_expect_contains(r.out, want, "attention scores shape");
    cli_result_free(&r);
    free(ids);
    r = RUN("info", "--model", g_gpt2);
    cli_expect_status(&r, 0, "info");
    cli_expect_contains(r.out, "tokenizer:     BPE (byte-level), 300 ids", "tokenizer line");
    cli_expect_contains(r.out, "bos '<|endoftext|>' (299)", "bos");
    cli_result_free(&r);
    r = RUN("info", "--model", g_bare);
    cli_expect_contains(r.out, "tokenizer:     none (no tokenizer.json in", "no tokenizer");
    cli_result_free(&r);
}

static size_t count_ids(const char *ids) {
    size_t n = 1;
    for (const char *p = ids; *p; p++) n += *p == ',';
    return n;
}

/* cache --prompts: text prompts, one per line, stored as run encodes them */
static void test_cache_prompts(void **state) {
    (void)state;
    char *a = ids_of(g_gpt2, "Hello world", NULL), *b = ids_of(g_gpt2, "the cat \\n sat", NULL);
    char out[600], want[64];
    snprintf(out, sizeof out, "%s/acts.h5", g_gpt2);
    cli_result r = RUN("cache", "--model", g_gpt2, "--prompts", g_prompts, "--hooks",
                       "blocks.0.hook_resid_post", "--out", out);
    cli_expect_status(&r, 0, "cache --prompts");
    cli_result_free(&r);
    r = RUN("inspect", out);
    cli_expect_status(&r, 0, "inspect");
    snprintf(want, sizeof want, "rows:        %zu (tokens)", count_ids(a) + count_ids(b));
    cli_expect_contains(r.out, want, "rows of both prompts");
    cli_expect_contains(r.out, "sequences:   2", "two sequences");
    cli_result_free(&r);
    free(a);
    free(b);
}

static void test_errors(void **state) {
    (void)state;
    static const struct {
        const char *args[12];
        int status;
        const char *in_err;
    } cases[] = {
        {{"run", "--model", "@M", "--prompt", "x"}, 1, "no tokenizer.json in"},
        {{"run", "--model", "@M", "--tokens", "1", "--prompt", "x"}, 2, "give one of"},
        {{"run", "--model", "@M", "--prompt", "x", "--prepend-bos", "--no-prepend-bos"}, 2,
         "contradict"},
        {{"run", "--model", "@M", "--prompts", "/nonexistent/p.txt"}, 1, "cannot open"},
        {{"run", "--model", "@M"}, 2, "missing required option --tokens"},
        {{"generate", "--model", "@M", "--prompt", "x", "--max-new", "2"}, 1, "no tokenizer"},
        {{"estimate", "--model", "@M", "--prompt", "x", "--ctx", "4"}, 2, "pass one"},
        {{"tokenize", "--prompt", "x"}, 2, "missing required option --model"},
        {{"cache", "--model", "@M", "--prompt", "x", "--hooks", "hook_embed", "--out", "/tmp/x.h5"},
         1, "no tokenizer.json in"},
        {{"cache", "--model", "@M", "--prompt", "x", "--tokens-file", "f", "--hooks", "hook_embed",
          "--out", "/tmp/x.h5"},
         2, "give exactly one of"},
        {{"tokenize", "--tokenizer", "/nonexistent.json", "--prompt", "x"}, 1, "/nonexistent.json"},
        {{"tokenize", "--tokenizer", "@T", "--prompt", "x", "--prepend-bos"}, 2, "needs --model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* "@M": the fixture model without a tokenizer; "@T": a tokenizer.json */
        const char *args[14];
        size_t k = 0;
        for (; cases[i].args[k]; k++) {
            const char *v = cases[i].args[k];
            args[k] = !strcmp(v, "@M") ? g_bare : !strcmp(v, "@T") ? g_tok : v;
        }
        args[k] = NULL;
        cli_result r = cli_run_argv(g_exe, args);
        char what[128];
        snprintf(what, sizeof what, "case %zu (%s)", i, cases[i].in_err);
        cli_expect_status(&r, cases[i].status, what);
        cli_expect_contains(r.err, cases[i].in_err, what);
        cli_result_free(&r);
    }
}

int main(int argc, char **argv) {
    g_exe = cli_exe_from_argv(argc, argv);
    if (!g_exe) return 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_run_prompt),
        cmocka_unit_test(test_tokenize_ids_round_trip),
        cmocka_unit_test(test_generate_text),
        cmocka_unit_test(test_estimate_and_info),
        cmocka_unit_test(test_cache_prompts),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
