/* hookformer run: one forward pass over one token sequence; prints the top-k next tokens.
 * With --plugin: loads each plugin (hooks/plugin.c) in order before the run and finishes them,
 * in the same order, after the top-k table. */
#include "commands.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli_opts.h"
#include "device.h"
#include "hookformer.h"
#include "context.h"
#include "mem_limit.h"
#include "plugins.h"
#include "prompt.h"

static const cli_opt run_opts[] = {
    CLI_OPT_MODEL,
    CLI_OPTS_DEVICE,
    CLI_OPTS_PROMPT,
    {"top-k", "K", "how many next tokens to print (default 10)"},
    CLI_OPT_THREADS,
    CLI_OPT_PLUGIN,
    CLI_OPT_CHUNK,
    CLI_OPT_MEM_LIMIT,
    {"ctx", "N", "refuse prompts longer than N (exit 1); without it, a prompt past "
                 "max_position_embeddings runs with a warning"},
    {"all-logits", NULL, "logits for every position: one top-k table after each (default: the "
                         "last position's only)"},
    {NULL, NULL, NULL},
};

typedef struct {
    float logit;
    int32_t id;
} scored;

/* Descending logit, NaN last, ties by ascending id: a total order, so output is stable. */
static int cmp_scored(const void *pa, const void *pb) {
    const scored *a = pa, *b = pb;
    int na = isnan(a->logit), nb = isnan(b->logit);
    if (na != nb) return na - nb;
    if (!na && a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* The prompt in chunks through a session. logits: [1, vocab] for the last position, or
 * [1, n, vocab] with all. Hooks fire per chunk with pos_offset set. */
static hk_status run_chunked(hk_model *m, hk_hooks *hooks, const int32_t *tokens, int64_t n,
                             int64_t chunk, bool all, float *logits) {
    const size_t vocab = (size_t)hk_model_vocab_size(m);
    hk_session *s;
    hk_status st = hk_session_new(m, 1, n, &s);
    for (int64_t p = 0; st == HK_OK && p < n; p += chunk)
        st = hk_session_feed(s, hooks, tokens + p, n - p < chunk ? n - p : chunk, !all,
                             all ? logits + (size_t)p * vocab : logits);
    hk_session_free(s);
    return st;
}

/* The top-k table of the next token after position `pos` from its logits [vocab]. */
static void print_top_k(hk_model *m, const char *dir, const char *label, const int32_t *tokens,
                        size_t n_tok, size_t pos, const float *last, scored *order,
                        int64_t top_k) {
    const int64_t vocab = hk_model_vocab_size(m);
    double mx = -INFINITY;
    for (int64_t v = 0; v < vocab; v++) {
        order[v].logit = last[v];
        order[v].id = (int32_t)v;
        if (last[v] > mx) mx = last[v];
    }
    double sum = 0.0;
    for (int64_t v = 0; v < vocab; v++)
        if (!isnan(last[v])) sum += exp((double)last[v] - mx);
    qsort(order, (size_t)vocab, sizeof *order, cmp_scored);

    const int64_t k = top_k < vocab ? top_k : vocab;
    const bool text = hk_model_tokenizer(m) != NULL;
    char disp[96];
    printf("# model=%s family=%s%s tokens=%zu next-token top-%lld after token %lld%s%s "
           "(position %zu)\n",
           dir, hk_model_family(m), label, n_tok, (long long)k, (long long)tokens[pos],
           text ? " " : "", cli_token_display(m, tokens[pos], disp, sizeof disp), pos);
    printf("%5s %10s %12s %12s%s\n", "rank", "token_id", "logit", "prob", text ? "  token" : "");
    for (int64_t r = 0; r < k; r++) {
        double p = exp((double)order[r].logit - mx) / sum;
        char prob[32];
        if (p >= 1e-6 || p == 0.0 || isnan(p))
            snprintf(prob, sizeof prob, "%.6f", p);
        else
            snprintf(prob, sizeof prob, "%.4e", p);
        printf("%5lld %10d %12.4f %12s%s%s\n", (long long)r + 1, (int)order[r].id,
               (double)order[r].logit, prob, text ? "  " : "",
               cli_token_display(m, order[r].id, disp, sizeof disp));
    }
}

/* One prompt: the forward, then the top-k table (one per position with all). Returns a CLI
 * exit status; *stopped is set when a hook stopped the forward (the remaining prompts are not
 * run). */
static int run_one(const cli_args *a, hk_model *m, const char *dir, hk_hooks *hooks,
                   cli_plugins *plugins, const cli_prompt *q, size_t index, size_t n_prompts, int64_t top_k,
                   int64_t chunk, bool all, bool *stopped) {
    const int64_t vocab = hk_model_vocab_size(m);
    const size_t n_tok = q->n, n_rows = all ? n_tok : 1;
    const int32_t *tokens = q->ids;
    char label[64] = "";
    if (n_prompts > 1) snprintf(label, sizeof label, " prompt=%zu", index + 1);
    if (n_rows > SIZE_MAX / sizeof(float) / (size_t)vocab)
        return cli_usage_error(a, "--all-logits: %zu tokens x vocab %lld logits do not fit in "
                                  "memory",
                               n_tok, (long long)vocab);
    float *logits = malloc(n_rows * (size_t)vocab * sizeof *logits); /* [1, seq | 1, vocab] */
    scored *order = malloc((size_t)vocab * sizeof *order);
    int rc = CLI_EXIT_OK;
    hk_status st;
    if (!logits || !order) {
        rc = cli_runtime_error(a, "out of memory for %zu x vocab %lld logits", n_rows,
                               (long long)vocab);
        goto done;
    }
    if ((rc = cli_plugins_begin_run(a, plugins, tokens, NULL, 1, (int64_t)n_tok))) goto done;
    if (chunk > 0)
        st = run_chunked(m, hooks, tokens, (int64_t)n_tok, chunk, all, logits);
    else if (all)
        st = hk_model_run(m, hooks, tokens, NULL, 1, (int64_t)n_tok, logits);
    else
        st = hk_model_run_last(m, hooks, tokens, NULL, 1, (int64_t)n_tok, logits);
    if (st == HK_STOPPED) {
        /* A hook asked to stop: not an error, but there are no logits to rank. */
        printf("# model=%s family=%s%s tokens=%zu: stopped early, %s; no logits, no top-k\n", dir,
               hk_model_family(m), label, n_tok,
               hk_last_error()[0] ? hk_last_error() : "a hook stopped the forward");
        *stopped = true;
        goto done;
    }
    if (st != HK_OK) {
        rc = cli_runtime_error(a, "forward failed on model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        goto done;
    }
    /* Next-token distribution after each position asked for: the last, or every one. */
    for (size_t r = 0; r < n_rows; r++)
        print_top_k(m, dir, label, tokens, n_tok, all ? r : n_tok - 1,
                    logits + r * (size_t)vocab, order, top_k);
done:
    free(order);
    free(logits);
    return rc;
}

static int run_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;

    /* Check the whole command line before touching the model. */
    const char *dir;
    int64_t top_k, threads;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    hk_load_opts load_opts;
    if ((rc = cli_load_opts(&a, &load_opts))) return rc;
    if ((rc = cli_int(&a, "top-k", 1, INT64_MAX, 10, &top_k))) return rc;
    if ((rc = cli_int(&a, "threads", 1, 1024, 0, &threads))) return rc;
    int64_t chunk, ctx;
    if ((rc = cli_int(&a, "chunk", 1, INT64_MAX, 0, &chunk))) return rc;
    if ((rc = cli_int(&a, "ctx", 1, INT64_MAX, 0, &ctx))) return rc;
    size_t mem_limit;
    if ((rc = cli_mem_limit(&a, "mem-limit", &mem_limit))) return rc;
    const bool all = cli_has(&a, "all-logits");

    cli_plugins plugins;
    if ((rc = cli_plugins_read(&a, &plugins))) return rc;
    cli_prompts prompts;
    if ((rc = cli_prompts_read(&a, &prompts))) {
        cli_prompts_free(&prompts);
        return rc;
    }

    if (threads > 0) hk_set_num_threads((int)threads);

    hk_model *m = NULL;
    hk_hooks *hooks = NULL;

    hk_status st = hk_model_load_opts(dir, &load_opts, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        goto done;
    }
    if (hk_model_headless(m)) {
        rc = cli_runtime_error(&a, "model '%s' (%s) is an encoder without an output head: it has "
                                   "no logits to rank ('hookformer embed' pools its hidden "
                                   "states)",
                               dir, hk_model_family(m));
        goto done;
    }
    const int64_t vocab = hk_model_vocab_size(m);
    if (vocab <= 0 || vocab > INT32_MAX) {
        rc = cli_runtime_error(&a, "model '%s' reports vocab size %lld", dir, (long long)vocab);
        goto done;
    }
    if ((rc = cli_prompts_encode(&a, m, dir, &prompts))) goto done;
    /* the context rule (tools/context.h), for the longest prompt */
    char what[96];
    snprintf(what, sizeof what, "the %sprompt's %zu tokens", prompts.n > 1 ? "longest " : "",
             cli_prompts_max_len(&prompts));
    if ((rc = cli_check_context(&a, m, dir, ctx, (int64_t)cli_prompts_max_len(&prompts), what)))
        goto done;
    /* before anything of the run is allocated (plugins' own hooks are not counted) */
    const hk_estimate_opts run = {.batch = 1, .ctx = (int64_t)cli_prompts_max_len(&prompts),
                                  .session = chunk > 0, .chunk = chunk, .all_logits = all};
    if (mem_limit && (rc = cli_check_mem_limit(&a, m, &run, mem_limit, NULL))) goto done;

    st = hk_hooks_new(m, &hooks);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
        goto done;
    }
    if ((rc = cli_plugins_load(&a, &plugins, m, hooks))) goto done;
    bool stopped = false;
    for (size_t i = 0; i < prompts.n && !stopped && rc == CLI_EXIT_OK; i++)
        rc = run_one(&a, m, dir, hooks, &plugins, &prompts.v[i], i, prompts.n,
                     top_k, chunk, all, &stopped);

done:
    /* Finish in load order, after the table: each prints its summary and frees its state. A
     * plugin's finish failing makes the run fail; the others are finished all the same. */
    rc = cli_plugins_finish(&a, &plugins, rc);
    hk_hooks_free(hooks);
    cli_prompts_free(&prompts);
    if (m) hk_model_free(m);
    return rc;
}

const cli_command cmd_run = {
    .name = "run",
    .summary = "Run a forward pass over a prompt and print the top-k next tokens.",
    .usage = "--model DIR (--tokens IDS | --prompt TEXT | --prompts FILE) [--top-k K]\n"
             "       [--[no-]prepend-bos] [--threads N] [--chunk C] [--mem-limit SIZE] "
             "[--all-logits]\n"
             "       [--ctx N] [--plugin SPEC]...",
    .description =
        "Loads the model, runs the forward pass over the prompt, and prints the k most likely\n"
        "tokens after the last one: rank, token id, logit, probability (softmax over the whole\n"
        "vocabulary) and, when the model folder has a tokenizer.json, the token's text (quoted,\n"
        "escaped as Python's repr: ' the', '\\n'), most likely first. --prompts runs each line\n"
        "as its own prompt and prints one table per prompt (header: prompt=N).\n"
        "\n"
        "Only the last position's logits are computed (the unembedding runs on one row, and\n"
        "unembed.hook_out has shape [1, 1, vocab]); --all-logits computes them for every\n"
        "position, [1, seq, vocab], and prints one table after each position, first to last.\n"
        "\n"
        "Past the model's max_position_embeddings a rotary model runs, with one warning on\n"
        "stderr naming the limit (positions beyond it were not trained); a learned position\n"
        "table (GPT-2) cannot be exceeded (exit 1). --ctx N refuses a prompt longer than N\n"
        "(exit 1), the strict form; generate follows the same rule.\n"
        "\n" CLI_PROMPT_HELP "\n"
        "\n"
        "--plugin loads a C plugin (a .so exporting hookformer_plugin(), see docs/PLUGINS.md)\n"
        "whose hooks read or modify activations during the run; SPEC is PATH or\n"
        "PATH:key=value,key=value (values may not contain ','). Plugins load in order before\n"
        "the run and print their summaries after the table. A plugin that fails to load exits\n"
        "with status 1; a hook that stops the forward early ends the run with a line saying\n"
        "which hook, no table, and status 0.\n"
        "\n"
        "examples:\n"
        "  hookformer run --model tests/fixtures/gpt2 --tokens 1,2,3 --top-k 5\n"
        "  hookformer run --model M --prompt 'The capital of France is' --top-k 5\n"
        "  hookformer run --model tests/fixtures/gpt2 --tokens 1,2,3 \\\n"
        "      --plugin build/examples/plugins/resid_norms.so:pos=last \\\n"
        "      --plugin build/examples/plugins/ablate_heads.so:heads=0.1+1.3",
    .opts = run_opts,
    .main = run_main,
};
