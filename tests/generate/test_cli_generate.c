/* `hookformer generate`, run as a child process: help, usage errors (exit 2, the flag named),
 * context errors (exit 1, both numbers named) and warnings, the greedy ids of the gpt2 and
 * llama fixtures (= transformers, from generate.safetensors), seeds, stop ids, --verbose, and
 * the steer plugin. Paths: HK_HOOKFORMER, HK_FIXTURES, HK_PLUGIN_STEER (optional). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include "cli_run.h"
#include "core/checkpoint.h"
#include "fixtures.h"
#include "hookformer.h"

static const char *g_exe; /* $HK_HOOKFORMER */

#define RUN(...) cli_run(g_exe, __VA_ARGS__, NULL)

/* Lines of text holding needle. */
static int count_lines(const char *text, const char *needle) {
    int n = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        for (size_t i = 0; i + strlen(needle) <= len; i++)
            if (strncmp(line + i, needle, strlen(needle)) == 0) {
                n++;
                break;
            }
        line = end ? end + 1 : NULL;
    }
    return n;
}

static void expect(const cli_result *r, int status, const char *in_out, const char *in_err) {
    bool ok = r->status == status && (!in_out || strstr(r->out, in_out)) &&
              (!in_err || strstr(r->err, in_err));
    if (!ok)
        fail_msg("exit %d (wanted %d), wanted '%s' in stdout and '%s' in stderr\n"
                 "--- stdout:\n%s--- stderr:\n%s",
                 r->status, status, in_out ? in_out : "", in_err ? in_err : "", r->out, r->err);
}

static char g_model[1024], g_llama[1024], g_prompt[256], g_greedy[256];

/* "a,b,c" of an I64 tensor of gpt2/generate.safetensors */
static void ref_csv(const char *name, char *buf, size_t cap) {
    hk_ckpt *ck = fixture_ckpt("gpt2", "generate.safetensors");
    const hk_st_tensor *t = hk_ckpt_find(ck, name);
    assert_non_null(t);
    buf[0] = '\0';
    for (int64_t i = 0; i < t->shape[0]; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + i * 8, 8);
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%lld", i ? "," : "", (long long)v);
    }
    hk_ckpt_close(ck);
}

static int setup(void **state) {
    (void)state;
    g_exe = require_env("HK_HOOKFORMER");
    snprintf(g_model, sizeof g_model, "%s/gpt2", require_env("HK_FIXTURES"));
    snprintf(g_llama, sizeof g_llama, "%s/llama", require_env("HK_FIXTURES"));
    ref_csv("prompt", g_prompt, sizeof g_prompt);
    ref_csv("greedy", g_greedy, sizeof g_greedy);
    return 0;
}

static void test_help(void **state) {
    (void)state;
    cli_result r = RUN("generate", "--help");
    expect(&r, 0,
           "usage: hookformer generate --model DIR (--tokens IDS | --prompt TEXT | --prompts FILE) "
           "--max-new N",
           NULL);
    expect(&r, 0, "--temperature", NULL);
    expect(&r, 0, "--ctx N", NULL);
    cli_result_free(&r);
    r = RUN("help", "generate");
    expect(&r, 0, "--top-p P", NULL);
    cli_result_free(&r);
    r = RUN("--help");
    expect(&r, 0, "generate", NULL);
    cli_result_free(&r);
}

static void test_usage_errors(void **state) {
    (void)state;
    const char *m = g_model;
    struct {
        const char *args[12];
        const char *msg;
    } cases[] = {
        {{"generate", "--tokens", "1,2", "--max-new", "3"}, "missing required option --model"},
        {{"generate", "--model", m, "--tokens", "1,2"}, "missing required option --max-new"},
        {{"generate", "--model", m, "--max-new", "3"}, "missing required option --tokens"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "0"}, "--max-new: expected"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "x"}, "--max-new: expected"},
        {{"generate", "--model", m, "--tokens", "1,,2", "--max-new", "3"}, "--tokens: expected"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--temperature", "-1"},
         "--temperature: expected a number >= 0"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--temperature", "hot"},
         "--temperature: expected"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--temperature", "1",
          "--top-p", "0"},
         "--top-p: expected a number in (0, 1], got '0'"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--temperature", "1",
          "--top-p", "1.5"},
         "--top-p: expected"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--temperature", "1",
          "--top-k", "-1"},
         "--top-k: expected an integer in [0, "},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--top-k", "5"},
         "--top-k: sampling options need --temperature > 0"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--chunk", "-1"},
         "--chunk: expected"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--ctx", "0"},
         "--ctx: expected a positive integer"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--seed", "-4"},
         "--seed: expected"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--stop", "a"},
         "--stop: expected"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--plugin", ""},
         "--plugin: expected PATH"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--bogus"},
         "unknown option '--bogus'"},
        {{"generate", "--model", m, "--tokens", "1,300", "--max-new", "3"},
         "--tokens: token id 300 (item 2) is out of range"},
        {{"generate", "--model", m, "--tokens", "1,2", "--max-new", "3", "--stop", "999"},
         "--stop: token id 999 (item 1) is out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result r = cli_run_argv(g_exe, cases[i].args);
        expect(&r, 2, NULL, "hookformer generate: ");
        expect(&r, 2, NULL, cases[i].msg);
        assert_string_equal(r.out, "");
        cli_result_free(&r);
    }
}

static void test_context(void **state) {
    (void)state;
    /* --ctx smaller than prompt + max-new: exit 1, naming both numbers */
    cli_result r = RUN("generate", "--model", g_model, "--tokens", g_prompt, "--max-new", "12",
                       "--ctx", "10");
    expect(&r, 1, NULL, "hookformer generate: --ctx 10: the prompt (6 tokens) + --max-new 12 "
                        "= 18 positions do not fit in a context of 10");
    cli_result_free(&r);
    /* exactly enough */
    r = RUN("generate", "--model", g_model, "--tokens", g_prompt, "--max-new", "12", "--ctx",
            "18");
    expect(&r, 0, g_greedy, NULL);
    cli_result_free(&r);
    /* GPT-2's 64 learned positions cannot be extended */
    r = RUN("generate", "--model", g_model, "--tokens", g_prompt, "--max-new", "12", "--ctx",
            "100");
    expect(&r, 1, NULL, "--ctx 100: model");
    expect(&r, 1, NULL, "learned position embeddings for 64 positions");
    cli_result_free(&r);
    char long_prompt[512] = "1";
    for (int i = 1; i < 60; i++) strcat(long_prompt, ",7");
    r = RUN("generate", "--model", g_model, "--tokens", long_prompt, "--max-new", "10");
    expect(&r, 1, NULL, "the prompt (60 tokens) + --max-new 10 = 70 positions exceed the 64 "
                        "learned positions");
    cli_result_free(&r);
    /* rotary: past max_position_embeddings (mistral: 256) it generates, with one warning
     * naming the limit; --ctx N is the strict form */
    char mistral[1024], rot_prompt[2048] = "1";
    snprintf(mistral, sizeof mistral, "%s/mistral", require_env("HK_FIXTURES"));
    for (int i = 1; i < 250; i++) strcat(rot_prompt, ",5");
    r = RUN("generate", "--model", mistral, "--tokens", rot_prompt, "--max-new", "10");
    expect(&r, 0, NULL, "hookformer generate: warning: the prompt (250 tokens) + --max-new 10 = "
                        "260 positions go past the model's max_position_embeddings (256); "
                        "positions beyond it were not trained");
    assert_int_equal(count_lines(r.err, "warning"), 1);
    assert_true(strlen(r.out) > 0);
    cli_result_free(&r);
    r = RUN("generate", "--model", mistral, "--tokens", rot_prompt, "--max-new", "10", "--ctx",
            "300");
    expect(&r, 0, NULL, "hookformer generate: warning: --ctx 300 is past the model's "
                        "max_position_embeddings (256)");
    assert_int_equal(count_lines(r.err, "warning"), 1);
    cli_result_free(&r);
    r = RUN("generate", "--model", mistral, "--tokens", rot_prompt, "--max-new", "10", "--ctx",
            "259");
    expect(&r, 1, NULL, "--ctx 259: the prompt (250 tokens) + --max-new 10 = 260 positions do "
                        "not fit in a context of 259");
    assert_string_equal(r.out, "");
    cli_result_free(&r);
    /* within the limit: no warning */
    r = RUN("generate", "--model", mistral, "--tokens", rot_prompt, "--max-new", "6");
    expect(&r, 0, NULL, NULL);
    assert_null(strstr(r.err, "warning"));
    cli_result_free(&r);
}

static void test_greedy_output(void **state) {
    (void)state;
    char want[300];
    snprintf(want, sizeof want, "%s\n", g_greedy);
    const char *chunks[] = {"0", "2", "1"};
    for (size_t i = 0; i < 3; i++) {
        cli_result r = RUN("generate", "--model", g_model, "--tokens", g_prompt, "--max-new",
                           "12", "--chunk", chunks[i], "--threads", "2");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(r.out, want); /* 12 ids = transformers, nothing else on stdout */
        assert_string_equal(r.err, "");   /* not a terminal, no --verbose: no stats */
        cli_result_free(&r);
    }
    /* llama: the reference's prompt and ids (make_generate_references.py) */
    cli_result r = RUN("generate", "--model", g_llama, "--tokens", "2,189,262,96,20,36",
                       "--max-new", "12", "--verbose");
    expect(&r, 0, NULL, "# prefill: 6 tokens in ");
    expect(&r, 0, NULL, "decode: 11 steps in ");
    assert_string_equal(r.out, "63,266,296,164,297,150,278,100,203,121,46,45\n");
    cli_result_free(&r);
    /* stop ids: the first one ends the line */
    r = RUN("generate", "--model", g_model, "--tokens", g_prompt, "--max-new", "12", "--stop",
            "276,281");
    expect(&r, 0, NULL, NULL);
    assert_string_equal(r.out, "68,100,100,276\n");
    cli_result_free(&r);
}

static void test_sampling(void **state) {
    (void)state;
    cli_result a = RUN("generate", "--model", g_llama, "--tokens", "5,6,7", "--max-new", "20",
                       "--temperature", "1.0", "--top-k", "50", "--top-p", "0.95", "--seed",
                       "7");
    cli_result b = RUN("generate", "--model", g_llama, "--tokens", "5,6,7", "--max-new", "20",
                       "--temperature=1.0", "--top-k=50", "--top-p=0.95", "--seed=7",
                       "--chunk=2");
    cli_result c = RUN("generate", "--model", g_llama, "--tokens", "5,6,7", "--max-new", "20",
                       "--temperature", "1.0", "--top-k", "50", "--top-p", "0.95", "--seed",
                       "8");
    expect(&a, 0, NULL, NULL);
    expect(&b, 0, NULL, NULL);
    expect(&c, 0, NULL, NULL);
    assert_string_equal(a.out, b.out);
    assert_string_not_equal(a.out, c.out);
    int commas = 0;
    for (const char *p = a.out; *p; p++) commas += *p == ',';
    assert_int_equal(commas, 19);
    cli_result_free(&a);
    cli_result_free(&b);
    cli_result_free(&c);
}

static void test_steer_plugin(void **state) {
    (void)state;
    const char *plugin = getenv("HK_PLUGIN_STEER");
    if (!plugin) skip();
    char vec[] = "/tmp/hk-gen-steer-XXXXXX";
    int fd = mkstemp(vec);
    assert_true(fd >= 0);
    float v[64];
    for (int i = 0; i < 64; i++) v[i] = (float)((i * 37) % 11) * 0.4f - 2.0f;
    assert_int_equal(write(fd, v, sizeof v), (ssize_t)sizeof v); /* little-endian hosts */
    close(fd);
    char spec[2048];
    snprintf(spec, sizeof spec, "%s:vector=%s,coef=3,layer=0", plugin, vec);
    cli_result r = RUN("generate", "--model", g_model, "--tokens", g_prompt, "--max-new", "12",
                       "--plugin", spec);
    unlink(vec);
    /* the summary comes after the ids; 1 prefill + 11 decode steps steered */
    expect(&r, 0, "# steer: added 3 * v", NULL);
    expect(&r, 0, "(12 calls)", NULL);
    char *nl = strchr(r.out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_string_not_equal(r.out, g_greedy);
    cli_result_free(&r);
    r = RUN("generate", "--model", g_model, "--tokens", g_prompt, "--max-new", "3", "--plugin",
            "/nonexistent/steer.so");
    expect(&r, 1, NULL, "hookformer generate: --plugin /nonexistent/steer.so:");
    cli_result_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),         cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_context),      cmocka_unit_test(test_greedy_output),
        cmocka_unit_test(test_sampling),     cmocka_unit_test(test_steer_plugin),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
