/* `hookformer estimate`: the table, --json agreeing with hk_estimate_run, --mem-limit refusing
 * with the estimate in the message, and usage errors. argv[1] is the hookformer executable. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <spawn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "hookformer.h"
#include "mem_util.h" /* MEM_UNDER_ASAN */

extern char **environ;

static const char *g_exe;
static char g_model[4096];

typedef struct {
    int status;
    char *out, *err;
    long max_rss_kib; /* the child's peak resident set size (ru_maxrss) */
} cli_result;

static char *slurp(FILE *f) {
    fflush(f);
    long n = ftell(f);
    assert_true(n >= 0);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    rewind(f);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Run `hookformer ARGS...` (NULL-terminated), stdout and stderr captured. */
static cli_result run_cli(const char *arg0, ...) {
    const char *argv[32];
    int n = 0;
    argv[n++] = g_exe;
    va_list ap;
    va_start(ap, arg0);
    for (const char *s = arg0; s; s = va_arg(ap, const char *)) {
        assert_true(n < 31);
        argv[n++] = s;
    }
    va_end(ap);
    argv[n] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, fileno(out), STDOUT_FILENO), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, fileno(err), STDERR_FILENO), 0);
    pid_t pid;
    int rc = posix_spawn(&pid, g_exe, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    int ws;
    struct rusage ru;
    assert_int_equal(wait4(pid, &ws, 0, &ru), pid);
    fseek(out, 0, SEEK_END);
    fseek(err, 0, SEEK_END);
    cli_result r = {WIFEXITED(ws) ? WEXITSTATUS(ws) : -1, slurp(out), slurp(err), ru.ru_maxrss};
    return r;
}

static void expect(const cli_result *r, int status, const char *out_has, const char *err_has) {
    bool ok = r->status == status && (!out_has || strstr(r->out, out_has)) &&
              (!err_has || strstr(r->err, err_has));
    if (!ok)
        print_error("exit %d (expected %d)\n--- stdout:\n%s--- stderr:\n%s\n", r->status, status,
                    r->out, r->err);
    assert_true(ok);
}

static void done(cli_result *r) {
    free(r->out);
    free(r->err);
}

static void test_table(void **state) {
    (void)state;
    cli_result r = run_cli("estimate", "--model", g_model, "--ctx", "4096", "--chunk", "512",
                           "--hooks", "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern",
                           NULL);
    expect(&r, 0, "KV cache", NULL);
    const char *rows[] = {"weights", "activations", "attention", "cached hooks", "logits",
                          "total", "rolling W=", "MiB", "chunks of 512"};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_non_null(strstr(r.out, rows[i]));
    done(&r);
}

static void test_json_matches_library(void **state) {
    (void)state;
    cli_result r = run_cli("estimate", "--model", g_model, "--ctx", "3000", "--batch", "3",
                           "--chunk", "256", "--hooks", "blocks.1.hook_mlp_out", "--all-logits",
                           "--threads", "2", "--json", NULL);
    expect(&r, 0, NULL, NULL);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    hk_model *m = NULL;
    assert_int_equal(hk_model_load(g_model, &m), HK_OK);
    hk_set_num_threads(2);
    const char *pat[] = {"blocks.1.hook_mlp_out"};
    hk_estimate e;
    assert_int_equal(hk_estimate_run(m, 3, 3000, 256, pat, 1, false, &e), HK_OK);
    const struct {
        const char *key;
        size_t want;
    } f[] = {{"weights", e.weights},           {"mapping", e.mapping},
             {"kv_cache", e.kv_cache},         {"activations", e.activations},
             {"attention", e.attention},       {"cached_hooks", e.cached_hooks},
             {"logits", e.logits}};
    double sum = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, f[i].key);
        assert_true(cJSON_IsNumber(v));
        assert_true(v->valuedouble == (double)f[i].want);
        sum += v->valuedouble;
    }
    /* measured by each process's own load: present, and part of the total */
    const char *measured[] = {"runtime", "load_other"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, measured[i]);
        assert_true(cJSON_IsNumber(v));
        sum += v->valuedouble;
    }
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "runtime")->valuedouble > 0);
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "total")->valuedouble == sum);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "session")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "kv_rolling")));
    hk_model_free(m);
    cJSON_Delete(j);
    done(&r);
}

static void test_mem_limit(void **state) {
    (void)state;
    cli_result r = run_cli("estimate", "--model", g_model, "--ctx", "20000", "--mem-limit", "1m",
                           NULL);
    expect(&r, 1, "total", "exceeds --mem-limit 1.0 MiB");
    assert_non_null(strstr(r.err, "refusing to run"));
    assert_non_null(strstr(r.err, "activations"));
    done(&r);
    r = run_cli("estimate", "--model", g_model, "--ctx", "100", "--mem-limit", "2g", NULL);
    expect(&r, 0, "total", NULL);
    done(&r);
    r = run_cli("estimate", "--model", g_model, "--ctx", "100", "--mem-limit=1073741824", NULL);
    expect(&r, 0, NULL, NULL);
    done(&r);
    const char *bad[] = {"1.5x", "", "-3m", "m", "0", "12mbx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run_cli("estimate", "--model", g_model, "--ctx", "100", "--mem-limit", bad[i], NULL);
        expect(&r, 2, NULL, "--mem-limit");
        done(&r);
    }
}

static void test_errors(void **state) {
    (void)state;
    cli_result r = run_cli("estimate", "--model", g_model, NULL);
    expect(&r, 2, NULL, "--ctx");
    done(&r);
    r = run_cli("estimate", "--model", g_model, "--ctx", "0", NULL);
    expect(&r, 2, NULL, "--ctx");
    done(&r);
    r = run_cli("estimate", "--model", g_model, "--ctx", "10", "--hooks", "blocks.*.nothing",
                NULL);
    expect(&r, 1, NULL, "blocks.*.nothing");
    done(&r);
    r = run_cli("estimate", "--model", g_model, "--ctx", "10", "--hooks", "a,,b", NULL);
    expect(&r, 2, NULL, "--hooks");
    done(&r);
    r = run_cli("estimate", "--model", "/nonexistent/model", "--ctx", "10", NULL);
    expect(&r, 1, NULL, "/nonexistent/model");
    done(&r);
    r = run_cli("help", "estimate", NULL);
    expect(&r, 0, "--mem-limit", NULL);
    done(&r);
}

/* `estimate --json` against the peak RSS of `run` on the same prompt, both real processes of
 * the same executable: within 10%, at 2, 4096 and 10000 tokens, in one forward and in chunks,
 * on a safetensors fixture (sharded F32) and a quantized GGUF (dequantized at load).
 * A process of this executable that loads no model (`help run`) sets a floor.
 * Since the CUDA libraries are no longer mapped (12 MiB processes instead of 170 MiB), the
 * estimate's ~1-2 MiB over-count at these tiny sizes (OpenBLAS's per-thread pool pages, which
 * a 2-token product does not all touch; 1.0-2.2 MiB measured on 12-36 MiB runs) is over 10%:
 * the bound is 10% or 3 MiB (tests/memory/test_memory.c holds the estimate to 10% on larger
 * shapes, where that pool is touched). */
static void test_estimate_matches_run(void **state) {
    (void)state;
    const char *fx = getenv("HK_FIXTURES");
    char llama[4096], gguf[4096];
    snprintf(llama, sizeof llama, "%s/llama", fx);
    snprintf(gguf, sizeof gguf, "%s/gguf/llama_q4_1.gguf", fx);
    const char *models[] = {llama, gguf};
    const int lens[] = {2, 4096, 10000};
    const char *chunks[] = {NULL, "1024"};
    static char ids[10000 * 8]; /* "id,id,...": 10000 ids of at most 2 digits */
    cli_result h = run_cli("help", "run", NULL);
    expect(&h, 0, NULL, NULL);
    const double floor = (double)h.max_rss_kib * 1024.0;
    done(&h);
    bool all_ok = true;
    for (size_t mi = 0; mi < 2; mi++)
        for (size_t li = 0; li < (MEM_UNDER_ASAN ? 1u : 3u); li++) /* ASan: runs, 2 tokens */
            for (size_t ci = 0; ci < 2; ci++) {
                size_t k = 0;
                for (int i = 0; i < lens[li]; i++)
                    k += (size_t)snprintf(ids + k, sizeof ids - k, "%s%d", i ? "," : "",
                                          (i * 37 + 5) % 90);
                const char *c = chunks[ci];
                cli_result e = c ? run_cli("estimate", "--model", models[mi], "--tokens", ids,
                                           "--chunk", c, "--json", NULL)
                                 : run_cli("estimate", "--model", models[mi], "--tokens", ids,
                                           "--json", NULL);
                expect(&e, 0, "\"total\"", NULL);
                cJSON *j = cJSON_Parse(e.out);
                assert_non_null(j);
                double est = cJSON_GetObjectItemCaseSensitive(j, "total")->valuedouble;
                cJSON_Delete(j);
                if (est < floor) est = floor;
                cli_result r = c ? run_cli("run", "--model", models[mi], "--tokens", ids,
                                           "--chunk", c, "--top-k", "1", NULL)
                                 : run_cli("run", "--model", models[mi], "--tokens", ids,
                                           "--top-k", "1", NULL);
                expect(&r, 0, "rank", NULL);
                double peak = (double)r.max_rss_kib * 1024.0, err = (est - peak) / peak;
                print_message("%-52s tokens %5d chunk %-4s estimate %7.1f MiB (floor %.1f) run "
                              "peak %7.1f MiB  ratio %.3f\n",
                              models[mi], lens[li], c ? c : "-", est / (1 << 20),
                              floor / (1 << 20), peak / (1 << 20), est / peak);
                if ((err < -0.10 || err > 0.10) && fabs(est - peak) > 3.0 * (1 << 20))
                    all_ok = false;
                done(&e);
                done(&r);
            }
    if (MEM_UNDER_ASAN) {
        print_message("skipped: resident sizes mean nothing under AddressSanitizer (shadow "
                      "memory, quarantine); the RSS assertions run in the release build\n");
        skip();
        return;
    }
    assert_true(all_ok);
}

int main(int argc, char **argv) {
    const char *fx = getenv("HK_FIXTURES");
    if (argc < 2 || !fx) {
        fprintf(stderr, "usage: HK_FIXTURES=DIR %s PATH/TO/hookformer\n", argv[0]);
        return 2;
    }
    g_exe = argv[1];
    snprintf(g_model, sizeof g_model, "%s/mistral", fx);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_json_matches_library),
        cmocka_unit_test(test_mem_limit),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_estimate_matches_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
