/* hookformer sae info | eval: what an SAE file holds (and whether it fits a model), and its
 * metrics over prompts as SAELens's evals report them. */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_opts.h"
#include "hookformer.h"
#include "prompt.h"
#include "sae_opts.h"

static const cli_opt sae_opts[] = {
    CLI_OPT_SAE,
    CLI_OPT_SAE_HOOK,
    {"model", "DIR", "info: check the SAE against this model's hook; eval: required"},
    CLI_OPTS_PROMPT,
    {"batch", "B", "eval: sequences per forward (default 8)"},
    {NULL, NULL, NULL},
};

static const char *norm_name(hk_sae_norm n) {
    return n == HK_SAE_NORM_CONSTANT_NORM_RESCALE ? "constant_norm_rescale"
           : n == HK_SAE_NORM_LAYER_NORM          ? "layer_norm"
                                                  : "none";
}

static int print_info(const cli_args *a, const hk_sae *s, hk_model *m) {
    hk_sae_info in;
    hk_sae_get_info(s, &in);
    printf("sae          %s\n", in.path);
    printf("format       %s\n", in.format);
    printf("architecture %s%s\n", hk_sae_arch_name(in.arch), in.transcoder ? " transcoder" : "");
    printf("hook         %s\n", in.hook);
    if (in.transcoder) printf("hook_out     %s\n", in.hook_out);
    printf("d_in         %lld\n", (long long)in.d_in);
    printf("d_sae        %lld\n", (long long)in.d_sae);
    if (in.transcoder) printf("d_out        %lld\n", (long long)in.d_out);
    if (in.arch == HK_SAE_TOPK) printf("k            %lld\n", (long long)in.k);
    printf("b_dec_input  %s\n", in.apply_b_dec_to_input ? "yes" : "no");
    printf("normalize    %s\n", norm_name(in.norm));
    if (!m) return 0;
    hk_hooks *h = NULL;
    hk_sae_attachment *att = NULL;
    int rc = hk_hooks_new(m, &h) == HK_OK ? cli_sae_attach(a, h, s, HK_SAE_OBSERVE, &att)
                                         : cli_runtime_error(a, "%s", hk_last_error());
    if (!rc) printf("fits         %s (%s, d_model %lld)\n", hk_model_family(m),
                    in.hook, (long long)hk_model_d_model(m));
    hk_sae_detach(att);
    hk_hooks_free(h);
    return rc;
}

static int run_eval(const cli_args *a, const hk_sae *s, hk_model *m, const char *dir) {
    int64_t batch;
    int rc = cli_int(a, "batch", 1, 4096, 8, &batch);
    cli_prompts p = {0};
    if (!rc) rc = cli_prompts_read(a, &p);
    if (!rc) rc = cli_prompts_encode(a, m, dir, &p);
    hk_sae_eval *e = NULL;
    int32_t *tok = NULL;
    int64_t *len = NULL;
    hk_status st = rc ? HK_OK : hk_sae_eval_new(m, s, &e);
    if (!rc && st) rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    size_t longest = 0;
    for (size_t i = 0; i < p.n; i++) longest = p.v[i].n > longest ? p.v[i].n : longest;
    if (!rc) {
        tok = malloc((size_t)batch * longest * sizeof *tok); /* [batch, seq] */
        len = malloc((size_t)batch * sizeof *len);
        if (!tok || !len) rc = cli_runtime_error(a, "out of memory");
    }
    for (size_t i = 0; !rc && i < p.n; i += (size_t)batch) {
        int64_t nb = (int64_t)(p.n - i) < batch ? (int64_t)(p.n - i) : batch, seq = 0;
        for (int64_t b = 0; b < nb; b++) seq = (int64_t)p.v[i + b].n > seq ? (int64_t)p.v[i + b].n : seq;
        for (int64_t b = 0; b < nb; b++) {
            len[b] = (int64_t)p.v[i + b].n;
            memcpy(tok + b * seq, p.v[i + b].ids, p.v[i + b].n * sizeof *tok);
            for (int64_t q = len[b]; q < seq; q++) tok[b * seq + q] = 0;
        }
        if ((st = hk_sae_eval_add(e, tok, len, nb, seq)) != HK_OK)
            rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    }
    hk_sae_metrics mt;
    if (!rc && (st = hk_sae_eval_metrics(e, &mt)) != HK_OK)
        rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    if (!rc) {
        hk_sae_info in;
        hk_sae_get_info(s, &in);
        printf("# sae=%s hook=%s prompts=%zu tokens=%lld\n", in.path, in.hook, p.n,
               (long long)mt.tokens);
        printf("mse                %.6g\n", mt.mse);
        printf("explained_variance %.6g\n", mt.explained_variance);
        printf("l0                 %.6g\n", mt.l0);
        printf("l1                 %.6g\n", mt.l1);
        printf("dead_features      %lld of %lld\n", (long long)mt.dead, (long long)mt.d_sae);
        printf("ce_loss_without    %.6g\n", mt.ce_without);
        printf("ce_loss_with_sae   %.6g\n", mt.ce_with);
        printf("ce_loss_ablation   %.6g\n", mt.ce_ablation);
        printf("ce_loss_delta      %.6g\n", mt.ce_delta);
        printf("ce_loss_score      %.6g\n", mt.ce_score);
    }
    hk_sae_eval_free(e);
    free(tok);
    free(len);
    cli_prompts_free(&p);
    return rc;
}

static int sae_main(const cli_command *cmd, int argc, char **argv) {
    const char *action = argc > 1 ? argv[1] : "";
    const bool info = strcmp(action, "info") == 0, eval = strcmp(action, "eval") == 0;
    if (!info && !eval) {
        if (argc > 1 && (strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0)) {
            cli_print_help(cmd, stdout);
            return CLI_EXIT_OK;
        }
        fprintf(stderr, "hookformer sae: expected 'info' or 'eval' first, got '%s' (see "
                        "'hookformer sae --help')\n", action);
        return CLI_EXIT_USAGE;
    }
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc - 1, argv + 1, &rc)) return rc;
    const char *sae_dir, *dir = cli_str(&a, "model");
    if ((rc = cli_require_str(&a, "sae", &sae_dir))) return rc;
    if (eval && (rc = cli_require_str(&a, "model", &dir))) return rc;
    hk_sae *s = NULL;
    hk_model *m = NULL;
    if ((rc = cli_sae_load(&a, sae_dir, &s))) return rc;
    hk_status st = dir ? hk_model_load(dir, &m) : HK_OK;
    if (st != HK_OK)
        rc = cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
    else
        rc = info ? print_info(&a, s, m) : run_eval(&a, s, m, dir);
    hk_model_free(m);
    hk_sae_free(s);
    return rc;
}

const cli_command cmd_sae = {
    .name = "sae",
    .summary = "Sparse autoencoders: what an SAE holds (info), its metrics over prompts (eval).",
    .usage = "info --sae DIR [--sae-hook HOOK] [--model DIR]\n"
             "       eval --sae DIR --model DIR (--prompts FILE | --prompt TEXT | --tokens IDS) "
             "[--batch B]",
    .description =
        "info prints the SAE's architecture, hook, widths and options (docs/SAE.md); with\n"
        "--model it also checks that the SAE fits the model's hook (d_in = the hook's width).\n"
        "eval runs the prompts three times (the SAE observing, spliced in, the hook zeroed)\n"
        "and prints SAELens's metrics: mse (sum over dims, mean over tokens), explained\n"
        "variance, L0, L1, dead features, and the next-token cross-entropy without the SAE,\n"
        "with it, with the hook zero-ablated, their delta and the CE-loss score.\n"
        "--sae takes a SAELens folder (cfg.json + sae_weights.safetensors) or a Gemma Scope\n"
        "params.npz (then --sae-hook names the hook it reads).\n"
        "\n"
        "example:\n"
        "  hookformer sae eval --sae tests/fixtures/sae/gpt2_standard --model tests/fixtures/gpt2 \\\n"
        "      --tokens 227,187,164,39,18,5",
    .opts = sae_opts,
    .main = sae_main,
};
