/* hookformer estimate: the peak resident memory a run will reach (the process before the
 * load, what the load holds, KV cache, activations, attention working memory, cached hooks,
 * logits), printed before anything of the run is allocated. */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

#include "cli_opts.h"
#include "device.h"
#include "hookformer.h"
#include "mem_limit.h"
#include "prompt.h"

#define MAX_PATTERNS 64

static const cli_opt estimate_opts[] = {
    CLI_OPT_MODEL,
    CLI_OPTS_DEVICE,
    {"ctx", "N", "context: positions per sequence (the session's max_len); or a prompt:"},
    CLI_OPTS_PROMPT,
    {"batch", "B", "sequences run together (default 1)"},
    {"hooks", "GLOB[,GLOB]", "hook points cached in memory for every position (names or globs)"},
    {"chunk", "C", "prefill in feeds of C positions through a KV cache, as run --chunk and "
                   "generate (default: one forward over the context, no KV cache, as run)"},
    {"all-logits", NULL, "logits for every position (default: the last position only)"},
    CLI_OPT_THREADS,
    {"device", "cpu|cuda|cuda:N", "cpu: resident host memory (default); cuda, cuda:N: device "
                                  "memory of one GPU (docs/CUDA.md)"},
    {"weights-dtype", "f32|f16|bf16", "the weights' dtype on the device (default f32; f16 "
                                      "and bf16 with --device cuda only)"},
    {"mem-limit", "SIZE", "exit 1 when the total exceeds SIZE: bytes or NNNk/NNNm/NNNg"},
    {"json", NULL, "print one JSON object (bytes) instead of the table"},
    {NULL, NULL, NULL},
};

/* Split "a,b,c" (in place) into at most MAX_PATTERNS non-empty items. */
static int split_patterns(const cli_args *a, char *list, const char **out, size_t *n) {
    *n = 0;
    for (char *p = list;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (!*p) return cli_usage_error(a, "--hooks: empty pattern in the list");
        if (*n == MAX_PATTERNS)
            return cli_usage_error(a, "--hooks: at most %d patterns", MAX_PATTERNS);
        out[(*n)++] = p;
        if (!comma) return 0;
        p = comma + 1;
    }
}

/* --device and --weights-dtype (the values the run takes). */
/* What the estimate predicts for, from tools/device.c's parse of --device / --weights-dtype
 * (the test-only device is the CPU's estimate). */
static int parse_device(const cli_args *a, const hk_load_opts *o, hk_device *dev,
                        hk_dtype *dt) {
    *dev = o->device == HK_DEVICE_CUDA ? HK_DEVICE_CUDA : HK_DEVICE_CPU;
    *dt = o->weights_dtype;
    if (*dev == HK_DEVICE_CPU && *dt != HK_DTYPE_F32)
        return cli_usage_error(a, "--weights-dtype %s needs --device cuda (the CPU computes "
                                  "with f32 weights)",
                               cli_str(a, "weights-dtype"));
    return 0;
}

static const char *dtype_name(hk_dtype t) {
    return t == HK_DTYPE_F16 ? "f16" : t == HK_DTYPE_BF16 ? "bf16" : "f32";
}

static void row(const char *what, size_t bytes, const char *note) {
    printf("  %-13s %12.1f MiB%s%s\n", what, (double)bytes / (1024.0 * 1024.0),
           note[0] ? "   " : "", note);
}

static void print_table(const char *dir, hk_model *m, const hk_estimate_opts *o,
                        const char *hooks_arg, const hk_estimate *e) {
    printf("model          %s (%s, %lld layers, %lld parameters)\n", dir, hk_model_family(m),
           (long long)hk_model_n_layers(m), (long long)hk_model_n_params(m));
    printf("run            batch %lld x ctx %lld, ", (long long)o->batch, (long long)o->ctx);
    if (!o->session)
        printf("one forward of %lld", (long long)o->ctx);
    else if (o->chunk < o->ctx)
        printf("prefill in chunks of %lld", (long long)o->chunk);
    else
        printf("one prefill of %lld", (long long)o->ctx);
    printf(", logits for %s\n", o->all_logits ? "every position" : "the last position");
    printf("cached hooks   %s\n\n", hooks_arg ? hooks_arg : "none");
    char kv_note[96];
    if (e->kv_rolling)
        snprintf(kv_note, sizeof kv_note, "rolling W=%lld (sliding-window layers)",
                 (long long)e->kv_window);
    else if (e->kv_cache)
        snprintf(kv_note, sizeof kv_note, "full (%lld positions)", (long long)o->ctx);
    else
        snprintf(kv_note, sizeof kv_note, "none (one forward)");
    if (e->device == HK_DEVICE_CUDA) {
        char w_note[96];
        snprintf(w_note, sizeof w_note, "%s linears; f32 embeddings, norms, biases",
                 dtype_name(e->weights_dtype));
        printf("device         cuda: device memory of one GPU (docs/CUDA.md)\n\n");
        row("context", e->context, "CUDA context and loaded kernels (stated, not measured)");
        row("cuBLAS", e->blas_workspace, "cuBLAS workspace (sm_90)");
        row("weights", e->weights, w_note);
        row("KV cache", e->kv_cache, kv_note);
        row("activations", e->activations, "activation block, f16/bf16 linear inputs");
        row("attention", e->attention, "split-key partials, window gather, scores if hooked");
        row("logits", e->logits, "the device copy");
        row("total", e->total, "peak device memory of the run");
        row("cached hooks", e->cached_hooks, "host memory (not in the total)");
        return;
    }
    row("runtime", e->runtime, "this process before the load: libraries, heap (measured)");
    row("weights", e->weights, "f32: converted at load + mmapped F32 read in place");
    row("mapping", e->mapping, "checkpoint pages read at load (header, converted tensors)");
    row("load other", e->load_other, "tokenizer, tables, heap (measured at load)");
    row("KV cache", e->kv_cache, kv_note);
    row("activations", e->activations, "");
    row("attention", e->attention, "");
    row("cached hooks", e->cached_hooks, "");
    row("logits", e->logits, "");
    row("total", e->total, "peak resident set size of the run");
}

static void print_json(const hk_estimate *e, const hk_estimate_opts *o) {
    printf("{\"batch\": %lld, \"ctx\": %lld, \"chunk\": %lld, \"session\": %s, "
           "\"runtime\": %zu, \"weights\": %zu, \"mapping\": %zu, \"load_other\": %zu, "
           "\"kv_cache\": %zu, \"kv_rolling\": %s, \"kv_window\": %lld, \"activations\": %zu, "
           "\"attention\": %zu, \"cached_hooks\": %zu, \"logits\": %zu, \"total\": %zu, "
           "\"device\": \"%s\", \"weights_dtype\": \"%s\", \"context\": %zu, "
           "\"blas_workspace\": %zu}\n",
           (long long)o->batch, (long long)o->ctx, (long long)o->chunk,
           o->session ? "true" : "false", e->runtime, e->weights, e->mapping, e->load_other,
           e->kv_cache, e->kv_rolling ? "true" : "false", (long long)e->kv_window,
           e->activations, e->attention, e->cached_hooks, e->logits, e->total,
           e->device == HK_DEVICE_CUDA ? "cuda" : "cpu", dtype_name(e->weights_dtype), e->context,
           e->blas_workspace);
}

static int estimate_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    const char *dir;
    int64_t ctx, batch, chunk, threads;
    size_t limit;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    hk_load_opts load_opts;
    if ((rc = cli_load_opts(&a, &load_opts))) return rc;
    hk_device device;
    hk_dtype wdtype;
    if ((rc = parse_device(&a, &load_opts, &device, &wdtype))) return rc;
    /* the model is read on the CPU whatever --device says: estimate plans a device run from
     * the checkpoint and needs no GPU */
    load_opts.device = HK_DEVICE_CPU;
    load_opts.device_index = HK_DEVICE_INDEX_AUTO; /* cuda:N plans for one GPU like cuda */
    load_opts.weights_dtype = HK_DTYPE_F32;
    const bool by_prompt = cli_has(&a, "tokens") || cli_has(&a, "prompt") || cli_has(&a, "prompts");
    if (!cli_has(&a, "ctx") && !by_prompt)
        return cli_usage_error(&a, "missing required option --ctx (or a prompt: --tokens, "
                                   "--prompt or --prompts)");
    if (cli_has(&a, "ctx") && by_prompt)
        return cli_usage_error(&a, "--ctx and a prompt both give the context: pass one");
    if ((rc = cli_int(&a, "ctx", 1, INT64_MAX / 2, 0, &ctx))) return rc;
    cli_prompts prompts = {0};
    if (by_prompt && (rc = cli_prompts_read(&a, &prompts))) {
        cli_prompts_free(&prompts);
        return rc;
    }
    if ((rc = cli_int(&a, "batch", 1, 1 << 20, 1, &batch))) return rc;
    if ((rc = cli_int(&a, "chunk", 1, INT64_MAX / 2, 0, &chunk))) return rc;
    if ((rc = cli_int(&a, "threads", 1, 1024, 0, &threads))) return rc;
    if ((rc = cli_mem_limit(&a, "mem-limit", &limit))) return rc;
    const bool all_logits = cli_has(&a, "all-logits"), as_json = cli_has(&a, "json");
    const char *hooks_arg = cli_str(&a, "hooks");
    char *list = NULL;
    const char *patterns[MAX_PATTERNS];
    size_t n_patterns = 0;
    if (hooks_arg) {
        if (!(list = strdup(hooks_arg))) return cli_runtime_error(&a, "out of memory");
        if ((rc = split_patterns(&a, list, patterns, &n_patterns))) {
            free(list);
            return rc;
        }
    }
    if (threads > 0) hk_set_num_threads((int)threads);

    hk_model *m = NULL;
    hk_status st = hk_model_load_opts(dir, &load_opts, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        free(list);
        cli_prompts_free(&prompts);
        return rc;
    }
    if (by_prompt) {
        /* the context is the longest prompt's tokens */
        if ((rc = cli_prompts_encode(&a, m, dir, &prompts))) {
            hk_model_free(m);
            free(list);
            cli_prompts_free(&prompts);
            return rc;
        }
        ctx = (int64_t)cli_prompts_max_len(&prompts);
        cli_prompts_free(&prompts);
    }
    const hk_estimate_opts run = {.batch = batch, .ctx = ctx, .session = chunk > 0,
                                  .chunk = chunk, .hooks = patterns, .n_hooks = n_patterns,
                                  .all_logits = all_logits, .device = device,
                                  .weights_dtype = wdtype};
    hk_estimate e;
    st = hk_estimate_memory(m, &run, &e);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
    } else {
        if (as_json)
            print_json(&e, &run);
        else
            print_table(dir, m, &run, hooks_arg, &e);
        fflush(stdout);
        rc = cli_check_mem_limit(&a, m, &run, limit, NULL);
    }
    hk_model_free(m);
    free(list);
    return rc;
}

const cli_command cmd_estimate = {
    .name = "estimate",
    .summary = "Estimate the memory of a run before running it.",
    .usage = "--model DIR (--ctx N | --tokens IDS | --prompt TEXT | --prompts FILE) [--batch B]\n"
             "       [--hooks GLOB[,GLOB]] [--chunk C] [--device cpu|cuda] [--weights-dtype f32|f16|bf16]\n"
             "       [--mem-limit SIZE]",
    .description =
        "Prints, in MiB, what a run of `batch` sequences of `ctx` positions will hold; the\n"
        "total is the run's peak resident set size (VmHWM). The parts: runtime, this process\n"
        "before the model was loaded (the executable and its shared libraries: run uses the\n"
        "same); the f32 weights; the mapping, checkpoint pages read at load (header, GGUF\n"
        "metadata, the sources of dequantized or converted tensors); load other, the rest of\n"
        "what loading left resident (tokenizer, tables, heap; measured); the KV cache (with\n"
        "--chunk only: a rolling buffer of W slots on sliding-window layers, else every\n"
        "position); the forward's activations for one chunk; the attention working memory\n"
        "(per-thread workspace; the scores chunk when attn_scores or pattern is cached); the\n"
        "cached hooks for every position; and the logits (the last position's, as run\n"
        "computes them, or every position's with --all-logits). Nothing of the run is\n"
        "allocated. With --mem-limit the command exits 1 when the total is over the limit;\n"
        "run and generate take the same option and refuse such a run before it starts.\n"
        "\n"
        "--device cuda estimates the device memory of the run on one GPU instead: the CUDA\n"
        "context (a stated 512 MiB), cuBLAS's workspace, the weights (linears in\n"
        "--weights-dtype; embeddings, norms and biases f32), the KV cache on the device (f32,\n"
        "W slots on sliding-window layers, as on the CPU), activations, attention workspace\n"
        "and the device logits; cached hooks are host memory, printed but not in the total\n"
        "(docs/CUDA.md, \"Device memory estimate\").\n"
        "\n"
        "Instead of --ctx, a prompt gives the context: its length in tokens (the longest line\n"
        "of --prompts), encoded as run would encode it (see 'hookformer run --help').",
    .opts = estimate_opts,
    .main = estimate_main,
};
