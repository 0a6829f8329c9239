/* hookformer run: one forward pass over one token sequence; prints the top-k next tokens. */
#include "commands.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "hookformer.h"

static const cli_opt run_opts[] = {
    {"model", "DIR", "Hugging Face checkpoint folder (config.json + *.safetensors); required"},
    {"tokens", "IDS", "comma-separated token ids, e.g. 464,2068,7586; required"},
    {"top-k", "K", "how many next tokens to print (default 10)"},
    {"threads", "N", "threads for GEMM and the kernels (default: the library's choice)"},
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

static int run_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;

    /* Check the whole command line before touching the model. */
    const char *dir;
    int64_t top_k, threads, *ids = NULL;
    size_t n_tok;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    if ((rc = cli_int(&a, "top-k", 1, INT64_MAX, 10, &top_k))) return rc;
    if ((rc = cli_int(&a, "threads", 1, 1024, 0, &threads))) return rc;
    if ((rc = cli_int_list(&a, "tokens", 0, INT64_MAX, &ids, &n_tok))) return rc;

    if (threads > 0) hk_set_num_threads((int)threads);

    hk_model *m = NULL;
    int32_t *tokens = NULL;
    float *logits = NULL;
    scored *order = NULL;

    hk_status st = hk_model_load(dir, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        goto done;
    }
    const int64_t vocab = hk_model_vocab_size(m);
    if (vocab <= 0 || vocab > INT32_MAX) {
        rc = cli_runtime_error(&a, "model '%s' reports vocab size %lld", dir, (long long)vocab);
        goto done;
    }
    for (size_t i = 0; i < n_tok; i++) {
        if (ids[i] >= vocab) {
            rc = cli_usage_error(&a, "--tokens: token id %lld (item %zu) is out of range: the "
                                     "model's vocab size is %lld, so ids must be in [0, %lld]",
                                 (long long)ids[i], i + 1, (long long)vocab,
                                 (long long)vocab - 1);
            goto done;
        }
    }
    if (n_tok > SIZE_MAX / sizeof(float) / (size_t)vocab) {
        rc = cli_usage_error(&a, "--tokens: %zu tokens x vocab %lld logits do not fit in memory",
                             n_tok, (long long)vocab);
        goto done;
    }

    tokens = malloc(n_tok * sizeof *tokens);
    logits = malloc(n_tok * (size_t)vocab * sizeof *logits); /* [1, seq, vocab] */
    order = malloc((size_t)vocab * sizeof *order);
    if (!tokens || !logits || !order) {
        rc = cli_runtime_error(&a, "out of memory for %zu tokens x vocab %lld logits", n_tok,
                               (long long)vocab);
        goto done;
    }
    for (size_t i = 0; i < n_tok; i++) tokens[i] = (int32_t)ids[i];

    st = hk_model_forward(m, tokens, NULL, 1, (int64_t)n_tok, logits);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "forward failed on model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        goto done;
    }

    /* Next-token distribution after the last position. */
    const float *last = logits + (n_tok - 1) * (size_t)vocab; /* [vocab] */
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
    printf("# model=%s family=%s tokens=%zu next-token top-%lld after token %lld (position %zu)\n",
           dir, hk_model_family(m), n_tok, (long long)k, (long long)ids[n_tok - 1], n_tok - 1);
    printf("%5s %10s %12s %12s\n", "rank", "token_id", "logit", "prob");
    for (int64_t r = 0; r < k; r++) {
        double p = exp((double)order[r].logit - mx) / sum;
        char prob[32];
        if (p >= 1e-6 || p == 0.0 || isnan(p))
            snprintf(prob, sizeof prob, "%.6f", p);
        else
            snprintf(prob, sizeof prob, "%.4e", p);
        printf("%5lld %10d %12.4f %12s\n", (long long)r + 1, (int)order[r].id,
               (double)order[r].logit, prob);
    }
    rc = CLI_EXIT_OK;

done:
    free(order);
    free(logits);
    free(tokens);
    free(ids);
    if (m) hk_model_free(m);
    return rc;
}

const cli_command cmd_run = {
    .name = "run",
    .summary = "Run a forward pass over one token sequence and print the top-k next tokens.",
    .usage = "--model DIR --tokens IDS [--top-k K] [--threads N]",
    .description =
        "Loads the model, runs the forward pass over the sequence given by --tokens, and prints\n"
        "the k most likely tokens after the last one: rank, token id, logit and probability\n"
        "(softmax over the whole vocabulary), most likely first.\n"
        "\n"
        "example:\n"
        "  hookformer run --model tests/fixtures/gpt2 --tokens 1,2,3 --top-k 5",
    .opts = run_opts,
    .main = run_main,
};
