/* hookformer generate: greedy decoding or sampling after a prompt (ids or text), through the
 * KV cache (hk_generate); prints the generated text (a model with a tokenizer) or ids. Plugins'
 * hooks fire at every prefill chunk and every decode step. */
#include "commands.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_opts.h"
#include "device.h"
#include "hookformer.h"
#include "context.h"
#include "mem_limit.h"
#include "plugins.h"
#include "prompt.h"

static const cli_opt generate_opts[] = {
    CLI_OPT_MODEL,
    CLI_OPTS_DEVICE,
    CLI_OPTS_PROMPT,
    {"max-new", "N", "how many tokens to generate (fewer when a --stop id comes); required"},
    {"temperature", "T", "0 (default): greedy argmax; > 0: sample from softmax(logits / T)"},
    {"top-k", "K", "sample among the K most likely tokens (default 0: off)"},
    {"top-p", "P", "nucleus: the fewest tokens whose probability sums to >= P, in (0, 1]"},
    {"seed", "S", "seed of the sampler (default 0); the same seed gives the same ids"},
    {"stop", "IDS", "ids that end generation, printed (default: the tokenizer's EOS, if any)"},
    {"ids", NULL, "print the generated ids, not the text (the default without a tokenizer)"},
    CLI_OPT_CHUNK,
    CLI_OPT_MEM_LIMIT,
    {"ctx", "N", "context of this run: prompt + max-new must fit, else exit 1 (default: "
                 "none; past max_position_embeddings warns)"},
    CLI_OPT_THREADS,
    CLI_OPT_PLUGIN,
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

/* The generated tokens: decoded text (specials kept, as they came) or the ids line. */
static int print_output(const cli_args *a, const hk_model *m, bool as_ids, const int32_t *out,
                        int64_t n) {
    if (as_ids) {
        print_ids(out, n);
        return 0;
    }
    char *text;
    size_t len;
    hk_status st = hk_tokenizer_decode(hk_model_tokenizer(m), out, (size_t)n, 0, &text, &len);
    if (st != HK_OK)
        return cli_runtime_error(a, "cannot decode the generated ids: %s (%s)", hk_last_error(),
                                 hk_status_name(st));
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    hk_free(text);
    return 0;
}

static int generate_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;

    /* Check the whole command line before touching the model. */
    const char *dir, *s;
    int64_t max_new, top_k, seed, chunk, ctx, threads, *stops = NULL;
    size_t n_stop = 0;
    double temperature, top_p;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    hk_load_opts load_opts;
    if ((rc = cli_load_opts(&a, &load_opts))) return rc;
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
    cli_plugins plugins;
    if ((rc = cli_plugins_read(&a, &plugins))) return rc;
    cli_prompts prompts;
    if ((rc = cli_prompts_read(&a, &prompts))) {
        cli_prompts_free(&prompts);
        return rc;
    }
    if (cli_has(&a, "stop") && (rc = cli_int_list(&a, "stop", 0, INT32_MAX, &stops, &n_stop))) {
        cli_prompts_free(&prompts);
        return rc;
    }
    const bool stats = cli_has(&a, "verbose") || isatty(STDERR_FILENO);

    if (threads > 0) hk_set_num_threads((int)threads);

    hk_model *m = NULL;
    hk_hooks *hooks = NULL;
    int32_t *stop_ids = NULL, *out = NULL;
    hk_status st = hk_model_load_opts(dir, &load_opts, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        goto done;
    }
    const int64_t vocab = hk_model_vocab_size(m);
    if ((rc = cli_prompts_encode(&a, m, dir, &prompts))) goto done;
    for (size_t i = 0; i < n_stop; i++) {
        if (stops[i] >= vocab) {
            rc = cli_usage_error(&a, "--stop: token id %lld (item %zu) is out of range: the "
                                     "model's vocab size is %lld, so ids must be in [0, %lld]",
                                 (long long)stops[i], i + 1, (long long)vocab,
                                 (long long)vocab - 1);
            goto done;
        }
    }
    const hk_tokenizer *tok = hk_model_tokenizer(m);
    const bool as_ids = cli_has(&a, "ids") || !tok;
    /* Without --stop, generation ends at the tokenizer's EOS (as transformers' generate does
     * with the model's eos_token_id). */
    const int32_t eos = tok ? hk_tokenizer_special_id(tok, HK_TOK_EOS) : -1;
    const bool stop_at_eos = !cli_has(&a, "stop") && eos >= 0 && eos < vocab;

    /* The context (tools/context.h): checked for the longest prompt. */
    const size_t n_tok = cli_prompts_max_len(&prompts);
    const int64_t need = (int64_t)n_tok + max_new;
    char what[160];
    snprintf(what, sizeof what, "the prompt (%zu tokens) + --max-new %lld = %lld positions",
             n_tok, (long long)max_new, (long long)need);
    if ((rc = cli_check_context(&a, m, dir, ctx, need, what))) goto done;

    /* the session holds prompt + max_new positions; decode steps keep last-position logits */
    const hk_estimate_opts run = {.batch = 1, .ctx = need, .session = true, .chunk = chunk};
    if (mem_limit && (rc = cli_check_mem_limit(&a, m, &run, mem_limit, NULL))) goto done;
    stop_ids = malloc((n_stop ? n_stop : 1) * sizeof *stop_ids);
    out = malloc((size_t)max_new * sizeof *out);
    if (!stop_ids || !out) {
        rc = cli_runtime_error(&a, "out of memory for %lld new tokens", (long long)max_new);
        goto done;
    }
    for (size_t i = 0; i < n_stop; i++) stop_ids[i] = (int32_t)stops[i];
    if (stop_at_eos) {
        stop_ids[0] = eos;
        n_stop = 1;
    }

    st = hk_hooks_new(m, &hooks);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
        goto done;
    }
    if ((rc = cli_plugins_load(&a, &plugins, m, hooks))) goto done;
    timing tm = {0};
    /* Registered after the plugins, so their hooks on unembed.hook_out run first. */
    bool timed = stats && hk_hooks_add(hooks, "unembed.hook_out", time_feed, &tm, NULL) == HK_OK;

    hk_sampler_opts o = hk_sampler_default();
    o.temperature = (float)temperature;
    o.top_k = (int)top_k;
    o.top_p = (float)top_p;
    o.seed = (uint64_t)seed;
    for (size_t p = 0; p < prompts.n; p++) {
        const cli_prompt *q = &prompts.v[p];
        /* The plugins see the prompt as the run's tokens; generated ids come later. */
        if ((rc = cli_plugins_begin_run(&a, &plugins, q->ids, NULL, 1, (int64_t)q->n)))
            goto done;
        tm = (timing){.n_prompt = (int64_t)q->n};
        int64_t n_out = 0;
        const double t0 = now_s();
        st = hk_generate(m, hooks, q->ids, (int64_t)q->n, max_new, chunk, &o, stop_ids, n_stop,
                         out, &n_out);
        if (st != HK_OK && st != HK_STOPPED) {
            rc = cli_runtime_error(&a, "generation failed on model '%s' after %lld tokens: %s "
                                       "(%s)",
                                   dir, (long long)n_out, hk_last_error(), hk_status_name(st));
            goto done;
        }
        if (prompts.n > 1) printf("# prompt=%zu\n", p + 1);
        if ((rc = print_output(&a, m, as_ids, out, n_out))) goto done;
        if (st == HK_STOPPED) {
            fprintf(stderr, "%s: a hook stopped the forward after %lld generated tokens%s%s\n",
                    a.prog, (long long)n_out, hk_last_error()[0] ? ": " : "", hk_last_error());
            break;
        }
        if (timed && tm.t_prefill > 0) {
            double tp = tm.t_prefill - t0;
            fprintf(stderr, "# prefill: %zu tokens in %.2f ms (%.1f tokens/s)", q->n, 1e3 * tp,
                    tp > 0 ? (double)q->n / tp : 0.0);
            if (tm.n_decode > 0) {
                double td = tm.t_last - tm.t_prefill;
                fprintf(stderr, "; decode: %lld steps in %.2f ms (%.1f tokens/s)",
                        (long long)tm.n_decode, 1e3 * td,
                        td > 0 ? (double)tm.n_decode / td : 0.0);
            }
            fprintf(stderr, "\n");
        }
    }
    rc = CLI_EXIT_OK;

done:
    /* Finish in load order, after the output: each prints its summary and frees its state. */
    rc = cli_plugins_finish(&a, &plugins, rc);
    hk_hooks_free(hooks);
    free(out);
    free(stop_ids);
    free(stops);
    cli_prompts_free(&prompts);
    if (m) hk_model_free(m);
    return rc;
}

const cli_command cmd_generate = {
    .name = "generate",
    .summary = "Generate tokens after a prompt (greedy or sampled) through the KV cache.",
    .usage = "--model DIR (--tokens IDS | --prompt TEXT | --prompts FILE) --max-new N\n"
             "       [--[no-]prepend-bos] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
             "       [--stop IDS] [--ids] [--chunk C] [--ctx N] [--mem-limit SIZE] [--threads N] "
             "[--plugin SPEC]... [--verbose]",
    .description =
        "Feeds the prompt through a KV cache (in chunks of --chunk positions), then chooses one\n"
        "token per step and feeds it back, and prints what it generated (not the prompt): the\n"
        "decoded text when the model folder has a tokenizer.json (special tokens included, as\n"
        "they came; then a newline), else -- or with --ids -- the ids on one line,\n"
        "comma-separated. Generation stops after --max-new tokens, at a --stop id, or, without\n"
        "--stop, at the tokenizer's EOS token. --prompts generates for each line in turn, each\n"
        "output after a '# prompt=N' line.\n"
        "\n"
        "Greedy by default (argmax, ties to the lowest id), the same ids as transformers'\n"
        "generate(do_sample=False). With --temperature > 0 it samples as\n"
        "transformers does: logits / T, then top-k, then top-p, from a PRNG seeded by --seed.\n"
        "\n"
        "Past the model's max_position_embeddings a rotary model runs, with one warning on\n"
        "stderr naming the limit (positions beyond it were not trained); a learned position\n"
        "table (GPT-2) cannot be exceeded (exit 1). --ctx N is the context of the run: the\n"
        "prompt + --max-new must fit in it (exit 1 otherwise), the strict form of the rule.\n"
        "\n"
        "--plugin loads a C plugin (see 'hookformer run --help' and docs/PLUGINS.md); its hooks\n"
        "fire at every prefill chunk and every decode step (one position, pos_offset = that\n"
        "position), so a steering plugin steers the whole generation. A hook that stops the\n"
        "forward ends generation: the ids so far are printed, with a note on stderr, status 0.\n"
        "Prefill and decode tokens/s go to stderr on a terminal or with --verbose.\n"
        "\n" CLI_PROMPT_HELP "\n"
        "\n"
        "examples:\n"
        "  hookformer generate --model tests/fixtures/gpt2 --tokens 227,187,164,39,225,23 "
        "--max-new 12\n"
        "  hookformer generate --model M --prompt 'Once upon a time' --max-new 40\n"
        "  hookformer generate --model M --tokens 1,2,3 --max-new 50 --temperature 0.8 "
        "--top-p 0.95 --seed 7\n"
        "  hookformer generate --model M --tokens 1,2,3 --max-new 20 \\\n"
        "      --plugin build/examples/plugins/steer.so:vector=v.f32,coef=4,layer=6",
    .opts = generate_opts,
    .main = generate_main,
};
