/* The hookformer CLI, run as a separate process: exit statuses, messages, and (once the
 * tests/fixtures/gpt2 checkpoint exists) the output of `run` and `info`.
 *
 * usage: test_cli PATH_TO_HOOKFORMER   (meson passes the built executable; HK_FIXTURES is set
 * by tests/meson.build). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <unistd.h>

#include "cli_run.h"
#include "fixtures.h"
#include "hookformer.h"

static const char *g_exe;
static const char *const BAD_DIR = "/nonexistent/hookformer-test-model";

/* ---- help and dispatch ------------------------------------------------------------------ */

static void test_top_level_help(void **state) {
    (void)state;
    const char *forms[][2] = {{"--help", NULL}, {"-h", NULL}, {"help", NULL}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        cli_result r = cli_run(g_exe, forms[i][0], NULL);
        cli_expect_status(&r, 0, forms[i][0]);
        cli_expect_contains(r.out, "usage: hookformer", forms[i][0]);
        cli_expect_contains(r.out, "run", forms[i][0]);
        cli_expect_contains(r.out, "info", forms[i][0]);
        assert_string_equal(r.err, "");
        cli_result_free(&r);
    }
}

static void test_version(void **state) {
    (void)state;
    cli_result r = cli_run(g_exe, "--version", NULL);
    cli_expect_status(&r, 0, "--version");
    assert_string_equal(r.out, "hookformer " HK_VERSION_STRING "\n");
    cli_result_free(&r);
}

static void test_no_arguments_is_usage_error(void **state) {
    (void)state;
    cli_result r = cli_run(g_exe, NULL);
    cli_expect_status(&r, 2, "no arguments");
    cli_expect_contains(r.err, "usage: hookformer", "no arguments");
    assert_string_equal(r.out, "");
    cli_result_free(&r);
}

static void test_command_help(void **state) {
    (void)state;
    const char *cmds[] = {"run", "info"};
    for (size_t i = 0; i < 2; i++) {
        char want[64];
        snprintf(want, sizeof want, "usage: hookformer %s", cmds[i]);
        const char *forms[][3] = {{cmds[i], "--help", NULL},
                                  {cmds[i], "-h", NULL},
                                  {"help", cmds[i], NULL},
                                  /* --help wins over errors elsewhere on the line */
                                  {cmds[i], "--bogus", "--help"}};
        for (size_t j = 0; j < sizeof forms / sizeof forms[0]; j++) {
            cli_result r = cli_run(g_exe, forms[j][0], forms[j][1], forms[j][2], NULL);
            cli_expect_status(&r, 0, want);
            cli_expect_contains(r.out, want, want);
            cli_expect_contains(r.out, "--model DIR", want);
            assert_string_equal(r.err, "");
            cli_result_free(&r);
        }
    }
    cli_result r = cli_run(g_exe, "run", "--help", NULL);
    cli_expect_contains(r.out, "--tokens IDS", "run --help");
    cli_expect_contains(r.out, "--top-k K", "run --help");
    cli_expect_contains(r.out, "--threads N", "run --help");
    cli_result_free(&r);
    r = cli_run(g_exe, "info", "--help", NULL);
    cli_expect_contains(r.out, "--json", "info --help");
    cli_result_free(&r);
}

static void test_unknown_command(void **state) {
    (void)state;
    cli_result r = cli_run(g_exe, "frobnicate", "--model", "x", NULL);
    cli_expect_status(&r, 2, "frobnicate");
    cli_expect_contains(r.err, "hookformer: unknown command 'frobnicate'", "frobnicate");
    assert_string_equal(r.out, "");
    cli_result_free(&r);

    r = cli_run(g_exe, "help", "frobnicate", NULL);
    cli_expect_status(&r, 2, "help frobnicate");
    cli_expect_contains(r.err, "unknown command 'frobnicate'", "help frobnicate");
    cli_result_free(&r);

    r = cli_run(g_exe, "--frobnicate", NULL);
    cli_expect_status(&r, 2, "--frobnicate");
    cli_expect_contains(r.err, "'--frobnicate'", "--frobnicate");
    cli_result_free(&r);
}

/* ---- usage errors: exit 2, one message naming the flag, before any model is loaded -------- */

typedef struct {
    const char *argv[10]; /* NULL-terminated */
    const char *want;     /* substring of stderr */
} usage_case;

static void test_usage_errors(void **state) {
    (void)state;
    /* BAD_DIR does not exist: an exit status of 2 (not 1) shows the command line is checked
     * before the model is loaded. */
    const usage_case cases[] = {
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--top-k", "abc"},
         "hookformer run: --top-k: expected a positive integer, got 'abc'\n"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--top-k", "0"},
         "hookformer run: --top-k: expected a positive integer, got '0'\n"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--top-k=-3"},
         "--top-k: expected a positive integer, got '-3'"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--top-k", "1.5"},
         "--top-k: expected a positive integer, got '1.5'"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--top-k", " 5"},
         "--top-k: expected a positive integer, got ' 5'"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--top-k", "99999999999999999999"},
         "--top-k: expected a positive integer, got '99999999999999999999'"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--top-k="},
         "--top-k: expected a positive integer, got ''"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--top-k"}, "--top-k: missing value"},
        {{"run", "--model", BAD_DIR, "--top-k", "--tokens", "1"}, "--top-k: missing value"},
        {{"run", "--model", BAD_DIR, "--tokens", "1,,2"}, "--tokens: expected a comma-separated"},
        {{"run", "--model", BAD_DIR, "--tokens", "1,,2"}, "got '1,,2' (item 2 is empty)"},
        {{"run", "--model", BAD_DIR, "--tokens", "1,2,"}, "(item 3 is empty)"},
        {{"run", "--model", BAD_DIR, "--tokens", ",1"}, "(item 1 is empty)"},
        {{"run", "--model", BAD_DIR, "--tokens", ""}, "--tokens: expected a comma-separated"},
        {{"run", "--model", BAD_DIR, "--tokens", "-5"}, "--tokens: expected a comma-separated"},
        {{"run", "--model", BAD_DIR, "--tokens", "-5"}, "(item 1, '-5', is out of range)"},
        {{"run", "--model", BAD_DIR, "--tokens", "1,x"}, "(item 2, 'x', is not an integer)"},
        {{"run", "--model", BAD_DIR, "--tokens", "1, 2"}, "(item 2, ' 2', is not an integer)"},
        {{"run", "--model", BAD_DIR, "--tokens"}, "--tokens: missing value"},
        {{"run", "--model", BAD_DIR}, "missing required option --tokens"},
        {{"run", "--tokens", "1,2,3"}, "hookformer run: missing required option --model\n"},
        {{"run", "--model", "", "--tokens", "1"}, "--model: expected a value"},
        {{"run", "--model"}, "--model: missing value"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--threads", "0"},
         "--threads: expected an integer in [1, 1024], got '0'"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--threads", "two"},
         "--threads: expected an integer in [1, 1024], got 'two'"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--weights", "fp16"},
         "--weights: \"fp16\" is not a mode (expected blocks or f32)"},
        {{"generate", "--model", BAD_DIR, "--tokens", "1", "--max-new", "2", "--weights", ""},
         "--weights"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--bogus"}, "unknown option '--bogus'"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "--bogus=3"}, "unknown option '--bogus'"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "-k", "3"}, "unexpected argument '-k'"},
        {{"run", "--model", BAD_DIR, "--tokens", "1", "extra"}, "unexpected argument 'extra'"},
        {{"info"}, "hookformer info: missing required option --model\n"},
        {{"info", "--model", BAD_DIR, "--json=yes"}, "--json: takes no value, got 'yes'"},
        {{"info", "--model", BAD_DIR, "--tokens", "1"}, "unknown option '--tokens'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *av = cases[i].argv;
        char what[256] = "";
        for (int j = 0; av[j]; j++) {
            strncat(what, av[j], sizeof what - strlen(what) - 2);
            strcat(what, " ");
        }
        cli_result r = cli_run_argv(g_exe, av);
        cli_expect_status(&r, 2, what);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "hookformer %s: ", av[0]);
        if (strncmp(r.err, prefix, strlen(prefix)) != 0)
            print_error("%s: stderr does not start with '%s':\n%s\n", what, prefix, r.err);
        assert_memory_equal(r.err, prefix, strlen(prefix));
        cli_expect_contains(r.err, cases[i].want, what);
        /* one line, nothing on stdout */
        const char *nl = strchr(r.err, '\n');
        assert_non_null(nl);
        assert_string_equal(nl + 1, "");
        assert_string_equal(r.out, "");
        cli_result_free(&r);
    }
}

/* ---- runtime errors: exit 1, the path in the message ------------------------------------ */

static void test_bad_model_dir(void **state) {
    (void)state;
    cli_result r = cli_run(g_exe, "run", "--model", BAD_DIR, "--tokens", "1,2,3", NULL);
    cli_expect_status(&r, 1, "run on a missing dir");
    cli_expect_contains(r.err, "hookformer run: cannot load model", "run on a missing dir");
    cli_expect_contains(r.err, BAD_DIR, "run on a missing dir");
    assert_string_equal(r.out, "");
    cli_result_free(&r);

    r = cli_run(g_exe, "info", "--model", BAD_DIR, NULL);
    cli_expect_status(&r, 1, "info on a missing dir");
    cli_expect_contains(r.err, BAD_DIR, "info on a missing dir");
    cli_result_free(&r);

    /* a folder that exists but holds no checkpoint */
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/hk-cli-empty-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    r = cli_run(g_exe, "info", "--model", dir, "--json", NULL);
    cli_expect_status(&r, 1, "info on an empty dir");
    cli_expect_contains(r.err, dir, "info on an empty dir");
    assert_string_equal(r.out, "");
    cli_result_free(&r);
    rmdir(dir);
}

/* ---- with the tests/fixtures/gpt2 checkpoint ---------------------------------------------- */

/* $HK_FIXTURES/gpt2's config.json, or NULL when the fixture is not there. */
static cJSON *fixture_config(char *dir, size_t cap) {
    const char *fx = getenv("HK_FIXTURES");
    if (!fx || !*fx) return NULL;
    snprintf(dir, cap, "%s/gpt2", fx);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *cfg = cJSON_Parse(buf);
    assert_non_null(cfg);
    return cfg;
}

static int64_t cfg_int(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    assert_true(cJSON_IsNumber(v));
    return (int64_t)v->valuedouble;
}

static void test_run_fixture(void **state) {
    (void)state;
    char dir[4096];
    cJSON *cfg = fixture_config(dir, sizeof dir);
    if (!cfg) skip();
    const int64_t vocab = cfg_int(cfg, "vocab_size");
    const int64_t n_pos = cfg_int(cfg, "n_positions");
    cJSON_Delete(cfg);
    assert_true(n_pos > 0 && n_pos < 1000); /* a tiny fixture */

    const char *threads[] = {"1", "2"};
    for (int t = 0; t < 2; t++) {
        cli_result r = cli_run(g_exe, "run", "--model", dir, "--tokens", "1,2,3", "--top-k", "5",
                               "--threads", threads[t], NULL);
        cli_expect_status(&r, 0, "run on the fixture");
        int rows = 0;
        double prev_p = 2.0, prev_logit = INFINITY;
        for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
            int rank, id;
            double logit, p;
            if (sscanf(line, "%d %d %lf %lf", &rank, &id, &logit, &p) != 4) continue;
            rows++;
            assert_int_equal(rank, rows);
            assert_true(id >= 0 && id < vocab);
            if (!(p > 0.0 && p <= 1.0)) print_error("probability %g out of (0,1]\n", p);
            assert_true(p > 0.0 && p <= 1.0);
            assert_true(p <= prev_p);
            assert_true(logit <= prev_logit);
            prev_p = p;
            prev_logit = logit;
        }
        if (rows != 5) print_error("expected 5 rows in:\n%s\n", r.out);
        assert_int_equal(rows, 5);
        cli_result_free(&r);
    }

    /* a token id the model does not have is a usage error naming --tokens */
    char ids[64];
    snprintf(ids, sizeof ids, "1,%lld", (long long)vocab);
    cli_result r = cli_run(g_exe, "run", "--model", dir, "--tokens", ids, NULL);
    cli_expect_status(&r, 2, "token id == vocab");
    cli_expect_contains(r.err, "hookformer run: --tokens: token id", "token id == vocab");
    cli_result_free(&r);

    /* more tokens than learned positions: the library refuses, a runtime error (exit 1) */
    {
        char many[8192] = "0";
        for (int64_t i = 1; i <= n_pos && strlen(many) + 8 < sizeof many; i++) strcat(many, ",0");
        r = cli_run(g_exe, "run", "--model", dir, "--tokens", many, NULL);
        cli_expect_status(&r, 1, "more tokens than n_positions");
        char want[160];
        snprintf(want, sizeof want, "hookformer run: the prompt's %lld tokens exceed the %lld "
                 "learned positions of model", (long long)n_pos + 1, (long long)n_pos);
        cli_expect_contains(r.err, want, "more tokens than n_positions");
        assert_string_equal(r.out, "");
        cli_result_free(&r);
    }

    /* --top-k larger than the vocab prints the whole vocab */
    if (vocab <= 4096) {
        r = cli_run(g_exe, "run", "--model", dir, "--tokens", "0", "--top-k", "1000000", NULL);
        cli_expect_status(&r, 0, "top-k > vocab");
        int rows = 0;
        double total = 0.0;
        for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
            int rank, id;
            double logit, p;
            if (sscanf(line, "%d %d %lf %lf", &rank, &id, &logit, &p) != 4) continue;
            rows++;
            total += p;
        }
        assert_int_equal(rows, vocab);
        assert_true(total > 0.99 && total < 1.01);
        cli_result_free(&r);
    }
}

/* --chunk feeds the prompt through the KV cache: the same table as one forward. */
/* --mem-limit: a run whose estimate is over the budget is refused before it starts, with the
 * estimate in the message; under the budget it runs. */
static void test_run_mem_limit(void **state) {
    (void)state;
    char dir[4096];
    cJSON *cfg = fixture_config(dir, sizeof dir);
    if (!cfg) skip();
    cJSON_Delete(cfg);
    const char *cmds[] = {"run", "generate"};
    for (int i = 0; i < 2; i++) {
        cli_result r = i == 0 ? cli_run(g_exe, "run", "--model", dir, "--tokens", "1,2,3",
                                        "--mem-limit", "1k", NULL)
                              : cli_run(g_exe, "generate", "--model", dir, "--tokens", "1,2,3",
                                        "--max-new", "4", "--mem-limit", "1k", NULL);
        cli_expect_status(&r, 1, cmds[i]);
        cli_expect_contains(r.err, "refusing to run", cmds[i]);
        cli_expect_contains(r.err, "weights", cmds[i]);
        cli_expect_contains(r.err, "--mem-limit", cmds[i]);
        assert_string_equal(r.out, "");
        cli_result_free(&r);
    }
    cli_result ok = cli_run(g_exe, "run", "--model", dir, "--tokens", "1,2,3", "--mem-limit",
                            "1g", NULL);
    cli_expect_status(&ok, 0, "run under the limit");
    cli_result_free(&ok);
    cli_result bad = cli_run(g_exe, "run", "--model", dir, "--tokens", "1,2,3", "--mem-limit",
                             "12q", NULL);
    cli_expect_status(&bad, 2, "--mem-limit 12q");
    cli_result_free(&bad);
}

static void test_run_chunked(void **state) {
    (void)state;
    char dir[4096];
    cJSON *cfg = fixture_config(dir, sizeof dir);
    if (!cfg) skip();
    cJSON_Delete(cfg);
    const char *toks = "5,9,31,2,77,12,40,3,8,100,6";
    cli_result whole = cli_run(g_exe, "run", "--model", dir, "--tokens", toks, "--top-k", "8",
                               NULL);
    cli_expect_status(&whole, 0, "run without --chunk");
    const char *chunks[] = {"1", "4", "11", "50"};
    for (int i = 0; i < 4; i++) {
        cli_result r = cli_run(g_exe, "run", "--model", dir, "--tokens", toks, "--top-k", "8",
                               "--chunk", chunks[i], NULL);
        cli_expect_status(&r, 0, "run --chunk");
        /* the same ranking; logits equal up to float rounding in the last printed digit */
        char *a_save, *b_save;
        char *la = strtok_r(whole.out, "\n", &a_save), *lb = strtok_r(r.out, "\n", &b_save);
        int rows = 0;
        for (; la && lb; la = strtok_r(NULL, "\n", &a_save), lb = strtok_r(NULL, "\n", &b_save)) {
            int ra, ia, rb, ib;
            double xa, pa, xb, pb;
            if (sscanf(la, "%d %d %lf %lf", &ra, &ia, &xa, &pa) != 4) continue;
            assert_int_equal(sscanf(lb, "%d %d %lf %lf", &rb, &ib, &xb, &pb), 4);
            assert_int_equal(ia, ib);
            assert_true(fabs(xa - xb) <= 2e-4 && fabs(pa - pb) <= 2e-6);
            rows++;
        }
        assert_int_equal(rows, 8);
        cli_result_free(&r);
        cli_result_free(&whole);
        whole = cli_run(g_exe, "run", "--model", dir, "--tokens", toks, "--top-k", "8", NULL);
    }
    cli_result_free(&whole);
    cli_result bad = cli_run(g_exe, "run", "--model", dir, "--tokens", toks, "--chunk", "0", NULL);
    cli_expect_status(&bad, 2, "--chunk 0");
    cli_expect_contains(bad.err, "--chunk", "--chunk 0");
    cli_result_free(&bad);
}

/* run computes the last position's logits only; --all-logits prints a table after every
 * position, first to last, the last one the same as the default's. */
static void test_run_all_logits(void **state) {
    (void)state;
    char dir[4096];
    cJSON *cfg = fixture_config(dir, sizeof dir);
    if (!cfg) skip();
    cJSON_Delete(cfg);
    const char *toks = "5,9,31,2";
    cli_result last = cli_run(g_exe, "run", "--model", dir, "--tokens", toks, "--top-k", "3",
                              NULL);
    cli_expect_status(&last, 0, "run");
    cli_result all = cli_run(g_exe, "run", "--model", dir, "--tokens", toks, "--top-k", "3",
                             "--all-logits", NULL);
    cli_expect_status(&all, 0, "run --all-logits");
    /* one header in the default, four with --all-logits, in position order */
    assert_null(strstr(last.out, "(position 0)"));
    cli_expect_contains(last.out, "(position 3)", "run");
    const char *at = all.out;
    for (int p = 0; p < 4; p++) {
        char want[32];
        snprintf(want, sizeof want, "(position %d)", p);
        at = cli_expect_contains(at, want, "run --all-logits");
    }
    /* the last table is the default's, byte for byte */
    const char *tail = strstr(all.out, "# model=");
    for (int p = 0; p < 3; p++) tail = strstr(tail + 1, "# model=");
    assert_non_null(tail);
    assert_string_equal(tail, last.out);
    cli_result_free(&last);
    cli_result_free(&all);
}

/* The context rule (as generate's): past max_position_embeddings a rotary model runs with one
 * warning naming the limit; --ctx N refuses a longer prompt before any work. */
static void test_run_past_max_positions(void **state) {
    (void)state;
    const char *fx = getenv("HK_FIXTURES");
    if (!fx || !*fx) skip();
    char mistral[4096], ids[2048] = "1";
    snprintf(mistral, sizeof mistral, "%s/mistral", fx); /* max_position_embeddings 256 */
    for (int i = 1; i < 300; i++) strcat(ids, ",5");
    cli_result r = cli_run(g_exe, "run", "--model", mistral, "--tokens", ids, "--top-k", "2",
                           NULL);
    cli_expect_status(&r, 0, "300 tokens past 256");
    const char *w = cli_expect_contains(r.err, "hookformer run: warning: the prompt's 300 tokens "
                                        "go past the model's max_position_embeddings (256); "
                                        "positions beyond it were not trained",
                                        "300 tokens past 256");
    assert_null(strstr(strchr(w, '\n'), "warning")); /* one warning */
    cli_expect_contains(r.out, "(position 299)", "300 tokens past 256");
    cli_result_free(&r);
    r = cli_run(g_exe, "run", "--model", mistral, "--tokens", ids, "--ctx", "299", NULL);
    cli_expect_status(&r, 1, "--ctx 299");
    cli_expect_contains(r.err, "hookformer run: --ctx 299: the prompt's 300 tokens do not fit in "
                        "a context of 299", "--ctx 299");
    assert_string_equal(r.out, "");
    cli_result_free(&r);
    r = cli_run(g_exe, "run", "--model", mistral, "--tokens", ids, "--ctx", "512", NULL);
    cli_expect_status(&r, 0, "--ctx 512");
    cli_expect_contains(r.err, "warning: --ctx 512 is past the model's max_position_embeddings "
                        "(256)", "--ctx 512");
    cli_result_free(&r);
    r = cli_run(g_exe, "run", "--model", mistral, "--tokens", "1,5,5", NULL);
    cli_expect_status(&r, 0, "3 tokens");
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

/* --weights: a 3-token prompt on a Q4_1 GGUF runs on the blocks by default (8-bit activations:
 * logits a little off f32's) and on the dequantized f32 weights with --weights f32. */
static void test_run_weights(void **state) {
    (void)state;
    char path[1024];
    fixture_path("gguf/llama_q4_1.gguf", path, sizeof path);
    const char *modes[] = {NULL, "blocks", "f32"};
    char *out[3];
    for (int i = 0; i < 3; i++) {
        cli_result r = modes[i] ? cli_run(g_exe, "run", "--model", path, "--tokens", "1,2,3",
                                          "--weights", modes[i], NULL)
                                : cli_run(g_exe, "run", "--model", path, "--tokens", "1,2,3", NULL);
        cli_expect_status(&r, 0, "run --weights");
        out[i] = strdup(r.out);
        cli_result_free(&r);
    }
    assert_string_equal(out[0], out[1]);         /* blocks is the default */
    assert_true(strcmp(out[1], out[2]) != 0);     /* and not the f32 path */
    for (int i = 0; i < 3; i++) free(out[i]);
}

static void test_info_fixture(void **state) {
    (void)state;
    char dir[4096];
    cJSON *cfg = fixture_config(dir, sizeof dir);
    if (!cfg) skip();
    const int64_t n_layer = cfg_int(cfg, "n_layer");
    const int64_t n_embd = cfg_int(cfg, "n_embd");
    const int64_t vocab = cfg_int(cfg, "vocab_size");
    cJSON_Delete(cfg);

    cli_result r = cli_run(g_exe, "info", "--model", dir, NULL);
    cli_expect_status(&r, 0, "info on the fixture");
    char want[64];
    snprintf(want, sizeof want, "\nlayers:        %lld\n", (long long)n_layer);
    cli_expect_contains(r.out, want, "info: layer count");
    cli_expect_contains(r.out, "family:        gpt2\n", "info: family");
    cli_expect_contains(r.out, "architecture:  GPT2LMHeadModel\n", "info: architecture");
    cli_expect_contains(r.out, "parameters:    ", "info: parameters");
    cli_result_free(&r);

    r = cli_run(g_exe, "info", "--model", dir, "--json", NULL);
    cli_expect_status(&r, 0, "info --json on the fixture");
    cJSON *j = cJSON_Parse(r.out);
    if (!j) print_error("not JSON:\n%s\n", r.out);
    assert_non_null(j);
    assert_int_equal(cfg_int(j, "n_layers"), n_layer);
    assert_int_equal(cfg_int(j, "d_model"), n_embd);
    assert_int_equal(cfg_int(j, "vocab_size"), vocab);
    assert_true(cfg_int(j, "n_params") > 0);
    const cJSON *fam = cJSON_GetObjectItemCaseSensitive(j, "family");
    assert_true(cJSON_IsString(fam));
    assert_string_equal(fam->valuestring, "gpt2");
    assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "config")));
    cJSON_Delete(j);
    cli_result_free(&r);
}

int main(int argc, char **argv) {
    g_exe = cli_exe_from_argv(argc, argv);
    if (!g_exe) return 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_level_help),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_no_arguments_is_usage_error),
        cmocka_unit_test(test_command_help),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_bad_model_dir),
        cmocka_unit_test(test_run_fixture),
        cmocka_unit_test(test_run_chunked),
        cmocka_unit_test(test_run_mem_limit),
        cmocka_unit_test(test_run_all_logits),
        cmocka_unit_test(test_run_past_max_positions),
        cmocka_unit_test(test_run_weights),
        cmocka_unit_test(test_info_fixture),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
