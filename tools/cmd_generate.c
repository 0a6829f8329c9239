/* hookformer generate: greedy decoding or sampling after a prompt of token ids, through the
 * KV cache (hk_generate); prints the generated ids on one line. Plugins' hooks fire at every
 * prefill chunk and every decode step. */
#include "commands.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hookformer.h"
#include "mem_limit.h"

static const cli_opt generate_opts[] = {
    {"model", "DIR",
     "Hugging Face checkpoint folder (config.json + *.safetensors) or a .gguf file; required"},
    {"tokens", "IDS", "the prompt: comma-separated token ids, e.g. 464,2068,7586; required"},
    {"max-new", "N", "how many tokens to generate (fewer when a --stop id comes); required"},
    {"temperature", "T", "0 (default): greedy argmax; > 0: sample from softmax(logits / T)"},
    {"top-k", "K", "sample among the K most likely tokens (default 0: off)"},
    {"top-p", "P", "nucleus: the fewest tokens whose probability sums to >= P, in (0, 1]"},
    {"seed", "S", "seed of the sampler (default 0); the same seed gives the same ids"},
    {"stop", "IDS", "comma-separated ids that end generation (the stop id is printed)"},
    {"chunk", "C", "feed the prompt C positions at a time (default 0: all at once)"},
    {"mem-limit", "SIZE", CLI_MEM_LIMIT_HELP},
    {"ctx", "N", "context of this run: prompt + max-new must fit (default: the model's)"},
    {"threads", "N", "threads for GEMM and the kernels (default: the library's choice)"},
    {"plugin", "SPEC", "load a plugin: PATH[:key=value,...]; repeatable, loaded in order"},
    {"verbose", NULL, "print prefill and decode tokens/s to stderr (default: on a terminal)"},
    {NULL, NULL, NULL},
};

/* A real number in [lo, hi] (lo excluded when lo_open); *out = def when absent. */
static int cli_real(const cli_args *a, const char *name, double lo, bool lo_open, double hi,
                    double def, const char *want, double *out) {
    const char *v = cli_str(a, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    bool ok = *v && *v != ' ' && *v != '+' && !*end && !errno && isfinite(x) &&
              (lo_open ? x > lo : x >= lo) && x <= hi;
    if (!ok) return cli_usage_error(a, "--%s: expected %s, got '%s'", name, want, v);
    *out = x;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Timestamps of the forwards, taken where each one ends (unembed.hook_out, which fires once
 * per feed with last_only logits). */
typedef struct {
    int64_t n_prompt;
    double t_prefill; /* end of the feed holding the last prompt position */
    double t_last;    /* end of the latest decode step */
    int64_t n_decode; /* decode steps seen */
} timing;

static hk_hook_result time_feed(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    (void)act;
    timing *t = user;
    double now = now_s();
    if (ctx->pos_offset == t->n_prompt - 1) {
        t->t_prefill = now;
    } else if (ctx->pos_offset >= t->n_prompt) {
        t->t_last = now;
        t->n_decode++;
    }
    return HK_HOOK_CONTINUE;
}

static void print_ids(const int32_t *ids, int64_t n) {
    for (int64_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", (int)ids[i]);
    printf("\n");
}

static int generate_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;

    /* Check the whole command line before touching the model. */
    const char *dir, *s;
    int64_t max_new, top_k, seed, chunk, ctx, threads, *ids = NULL, *stops = NULL;
    size_t n_tok = 0, n_stop = 0;
    double temperature, top_p;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    if ((rc = cli_require_str(&a, "max-new", &s))) return rc;
    if ((rc = cli_int(&a, "max-new", 1, INT32_MAX, 0, &max_new))) return rc;
    if ((rc = cli_real(&a, "temperature", 0.0, false, 1e30, 0.0,
                       "a number >= 0 (0 = greedy)", &temperature)))
        return rc;
    if ((rc = cli_int(&a, "top-k", 0, INT32_MAX, 0, &top_k))) return rc;
    if ((rc = cli_real(&a, "top-p", 0.0, true, 1.0, 1.0, "a number in (0, 1]", &top_p)))
        return rc;
    if ((rc = cli_int(&a, "seed", 0, INT64_MAX, 0, &seed))) return rc;
    if ((rc = cli_int(&a, "chunk", 0, INT64_MAX, 0, &chunk))) return rc;
    if ((rc = cli_int(&a, "ctx", 1, INT64_MAX, 0, &ctx))) return rc;
    if ((rc = cli_int(&a, "threads", 1, 1024, 0, &threads))) return rc;
    size_t mem_limit;
    if ((rc = cli_mem_limit(&a, "mem-limit", &mem_limit))) return rc;
    if (temperature == 0.0 && (cli_has(&a, "top-k") || cli_has(&a, "top-p")))
        return cli_usage_error(&a,
                               "--%s: sampling options need --temperature > 0 (temperature 0, "
                               "the default, is greedy)",
                               cli_has(&a, "top-k") ? "top-k" : "top-p");
    const char *specs[CLI_MAX_VALUES];
    size_t n_plugins = cli_strs(&a, "plugin", specs, CLI_MAX_VALUES);
    for (size_t i = 0; i < n_plugins; i++)
        if (!specs[i][0]) return cli_usage_error(&a, "--plugin: expected PATH[:key=value,...], "
                                                     "got ''");
    if ((rc = cli_int_list(&a, "tokens", 0, INT32_MAX, &ids, &n_tok))) return rc;
    if (cli_has(&a, "stop") && (rc = cli_int_list(&a, "stop", 0, INT32_MAX, &stops, &n_stop))) {
        free(ids);
        return rc;
    }
    const bool stats = cli_has(&a, "verbose") || isatty(STDERR_FILENO);

    if (threads > 0) hk_set_num_threads((int)threads);

    hk_model *m = NULL;
    hk_hooks *hooks = NULL;
    hk_plugin *plugins[CLI_MAX_VALUES] = {0};
    size_t n_loaded = 0;
    int32_t *prompt = NULL, *stop_ids = NULL, *out = NULL;
    hk_status st = hk_model_load(dir, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        goto done;
    }
    const int64_t vocab = hk_model_vocab_size(m);
    for (size_t i = 0; i < n_tok + n_stop; i++) {
        int64_t id = i < n_tok ? ids[i] : stops[i - n_tok];
        if (id >= vocab) {
            rc = cli_usage_error(&a, "--%s: token id %lld (item %zu) is out of range: the "
                                     "model's vocab size is %lld, so ids must be in [0, %lld]",
                                 i < n_tok ? "tokens" : "stop", (long long)id,
                                 (i < n_tok ? i : i - n_tok) + 1, (long long)vocab,
                                 (long long)vocab - 1);
            goto done;
        }
    }

    /* The context: prompt + max-new positions must fit in --ctx, or by default in the
     * model's max_position_embeddings. --ctx past that is allowed for rotary models (with a
     * warning), never past a learned position table. */
    const int64_t need = (int64_t)n_tok + max_new;
    bool hard = false;
    const int64_t max_pos = hk_model_max_positions(m, &hard);
    if (ctx > 0) {
        if (hard && ctx > max_pos) {
            rc = cli_runtime_error(&a, "--ctx %lld: model '%s' has learned position embeddings "
                                       "for %lld positions, which cannot be extended",
                                   (long long)ctx, dir, (long long)max_pos);
            goto done;
        }
        if (need > ctx) {
            rc = cli_runtime_error(&a, "--ctx %lld: the prompt (%zu tokens) + --max-new %lld = "
                                       "%lld positions do not fit in a context of %lld",
                                   (long long)ctx, n_tok, (long long)max_new, (long long)need,
                                   (long long)ctx);
            goto done;
        }
        if (max_pos > 0 && ctx > max_pos)
            fprintf(stderr, "%s: warning: --ctx %lld is past the model's "
                            "max_position_embeddings (%lld); positions beyond it were not "
                            "trained\n",
                    a.prog, (long long)ctx, (long long)max_pos);
    } else if (max_pos > 0 && need > max_pos) {
        if (hard)
            rc = cli_runtime_error(&a, "the prompt (%zu tokens) + --max-new %lld = %lld "
                                       "positions exceed the %lld learned positions of model "
                                       "'%s'",
                                   n_tok, (long long)max_new, (long long)need,
                                   (long long)max_pos, dir);
        else
            rc = cli_runtime_error(&a, "the prompt (%zu tokens) + --max-new %lld = %lld "
                                       "positions exceed the model's max_position_embeddings "
                                       "(%lld); pass --ctx %lld to run past it",
                                   n_tok, (long long)max_new, (long long)need,
                                   (long long)max_pos, (long long)need);
        goto done;
    }

    /* the session holds prompt + max_new positions; decode steps keep last-position logits */
    if (mem_limit && (rc = cli_check_mem_limit(&a, m, 1, need, chunk, NULL, 0, true, mem_limit,
                                               NULL)))
        goto done;
    prompt = malloc(n_tok * sizeof *prompt);
    stop_ids = malloc((n_stop ? n_stop : 1) * sizeof *stop_ids);
    out = malloc((size_t)max_new * sizeof *out);
    if (!prompt || !stop_ids || !out) {
        rc = cli_runtime_error(&a, "out of memory for %lld new tokens", (long long)max_new);
        goto done;
    }
    for (size_t i = 0; i < n_tok; i++) prompt[i] = (int32_t)ids[i];
    for (size_t i = 0; i < n_stop; i++) stop_ids[i] = (int32_t)stops[i];

    st = hk_hooks_new(m, &hooks);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
        goto done;
    }
    for (size_t i = 0; i < n_plugins; i++) {
        st = hk_plugin_load(specs[i], m, hooks, &plugins[n_loaded]);
        if (st != HK_OK) {
            rc = cli_runtime_error(&a, "--plugin %s: %s (%s)", specs[i], hk_last_error(),
                                   hk_status_name(st));
            goto done;
        }
        n_loaded++;
    }
    /* The plugins see the prompt as the run's tokens; generated ids come later. */
    for (size_t i = 0; i < n_loaded; i++) {
        st = hk_plugin_begin_run(plugins[i], prompt, NULL, 1, (int64_t)n_tok);
        if (st != HK_OK) {
            rc = cli_runtime_error(&a, "--plugin %s: %s (%s)", specs[i], hk_last_error(),
                                   hk_status_name(st));
            goto done;
        }
    }
    timing tm = {.n_prompt = (int64_t)n_tok};
    /* Registered after the plugins, so their hooks on unembed.hook_out run first. */
    bool timed = stats && hk_hooks_add(hooks, "unembed.hook_out", time_feed, &tm, NULL) == HK_OK;

    hk_sampler_opts o = hk_sampler_default();
    o.temperature = (float)temperature;
    o.top_k = (int)top_k;
    o.top_p = (float)top_p;
    o.seed = (uint64_t)seed;
    int64_t n_out = 0;
    const double t0 = now_s();
    st = hk_generate(m, hooks, prompt, (int64_t)n_tok, max_new, chunk, &o, stop_ids, n_stop,
                     out, &n_out);
    if (st != HK_OK && st != HK_STOPPED) {
        rc = cli_runtime_error(&a, "generation failed on model '%s' after %lld tokens: %s (%s)",
                               dir, (long long)n_out, hk_last_error(), hk_status_name(st));
        goto done;
    }
    print_ids(out, n_out);
    if (st == HK_STOPPED)
        fprintf(stderr, "%s: a hook stopped the forward after %lld generated tokens%s%s\n",
                a.prog, (long long)n_out, hk_last_error()[0] ? ": " : "", hk_last_error());
    if (timed && tm.t_prefill > 0) {
        double tp = tm.t_prefill - t0;
        fprintf(stderr, "# prefill: %zu tokens in %.2f ms (%.1f tokens/s)", n_tok, 1e3 * tp,
                tp > 0 ? (double)n_tok / tp : 0.0);
        if (tm.n_decode > 0) {
            double td = tm.t_last - tm.t_prefill;
            fprintf(stderr, "; decode: %lld steps in %.2f ms (%.1f tokens/s)",
                    (long long)tm.n_decode, 1e3 * td, td > 0 ? (double)tm.n_decode / td : 0.0);
        }
        fprintf(stderr, "\n");
    }
    rc = CLI_EXIT_OK;

done:
    /* Finish in load order, after the ids: each prints its summary and frees its state. */
    fflush(stdout);
    for (size_t i = 0; i < n_loaded; i++) {
        st = hk_plugin_finish(plugins[i]);
        if (st != HK_OK && rc == CLI_EXIT_OK)
            rc = cli_runtime_error(&a, "--plugin %s: %s (%s)", specs[i], hk_last_error(),
                                   hk_status_name(st));
    }
    hk_hooks_free(hooks);
    free(out);
    free(stop_ids);
    free(prompt);
    free(stops);
    free(ids);
    if (m) hk_model_free(m);
    return rc;
}

const cli_command cmd_generate = {
    .name = "generate",
    .summary = "Generate tokens after a prompt (greedy or sampled) through the KV cache.",
    .usage = "--model DIR --tokens IDS --max-new N [--temperature T] [--top-k K] [--top-p P]\n"
             "       [--seed S] [--stop IDS] [--chunk C] [--ctx N] [--mem-limit SIZE] [--threads N] "
             "[--plugin SPEC]... [--verbose]",
    .description =
        "Feeds the prompt through a KV cache (in chunks of --chunk positions), then chooses one\n"
        "token per step and feeds it back, and prints the generated ids (not the prompt) on one\n"
        "line, comma-separated. Greedy by default (argmax, ties to the lowest id), the same ids\n"
        "as transformers' generate(do_sample=False). With --temperature > 0 it samples as\n"
        "transformers does: logits / T, then top-k, then top-p, from a PRNG seeded by --seed.\n"
        "\n"
        "--ctx N is the context of the run: the prompt + --max-new must fit in it (exit 1\n"
        "otherwise). Without --ctx the limit is the model's max_position_embeddings; --ctx past\n"
        "it runs with a warning on rotary models, and is an error for learned positions (GPT-2).\n"
        "\n"
        "--plugin loads a C plugin (see 'hookformer run --help' and docs/PLUGINS.md); its hooks\n"
        "fire at every prefill chunk and every decode step (one position, pos_offset = that\n"
        "position), so a steering plugin steers the whole generation. A hook that stops the\n"
        "forward ends generation: the ids so far are printed, with a note on stderr, status 0.\n"
        "Prefill and decode tokens/s go to stderr on a terminal or with --verbose.\n"
        "\n"
        "examples:\n"
        "  hookformer generate --model tests/fixtures/gpt2 --tokens 227,187,164,39,225,23 "
        "--max-new 12\n"
        "  hookformer generate --model M --tokens 1,2,3 --max-new 50 --temperature 0.8 "
        "--top-p 0.95 --seed 7\n"
        "  hookformer generate --model M --tokens 1,2,3 --max-new 20 \\\n"
        "      --plugin build/examples/plugins/steer.so:vector=v.f32,coef=4,layer=6",
    .opts = generate_opts,
    .main = generate_main,
};
