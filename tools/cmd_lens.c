/* hookformer lens: the logit lens (top tokens per layer and position) and, with an answer
 * pair, direct logit attribution to every head, MLP and the embeddings. */
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hookformer.h"
#include "cli_opts.h"
#include "device.h"
#include "out_path.h"
#include "plugins.h"
#include "xp_common.h"

static const cli_opt lens_opts[] = {
    {"model", "DIR", "model folder; required"},
    CLI_OPTS_DEVICE,
    {"tokens", "IDS", "the prompt (comma-separated token ids); repeat for several (DLA); "
                      "the lens reads the first; required"},
    {"prompt", "TEXT", "a prompt as text (instead of --tokens); repeatable"},
    {"prompts", "FILE", "text prompts, one per line ('-': stdin; instead of --tokens)"},
    {"prepend-bos", NULL, "text prompts: BOS token first (default: the family's rule, as TL)"},
    {"no-prepend-bos", NULL, "text prompts: no BOS token first"},
    {"top-k", "K", "top tokens per layer and position (default 5)"},
    {"answer", "IDS", "direct logit attribution: correct answer token per prompt"},
    {"wrong", "IDS", "direct logit attribution: incorrect answer token per prompt"},
    {"answer-text", "TEXT", "the answer as text, one token (instead of --answer); repeatable"},
    {"wrong-text", "TEXT", "the wrong answer as text, one token (instead of --wrong)"},
    {"out", "FILE", "write the results to this HDF5 file"},
    {"svg", "PREFIX", "write PREFIXlens.svg (and PREFIXdla.svg)"},
    {"force", NULL, "overwrite existing output files"},
    {"threads", "N", "threads for GEMM and the kernels"},
    CLI_OPT_PLUGIN,
    {NULL, NULL, NULL},
};

static int lens_svg(const hk_model *m, const hk_lens_result *r, char **pos_labels,
                    const char *title, const char *path, bool force) {
    const int64_t R = r->n_rows, C = r->seq, L = R - 1;
    float *v = malloc((size_t)(R * C) * sizeof *v);
    int32_t *top = malloc((size_t)(R * C) * sizeof *top);
    char **rl = calloc((size_t)R, sizeof *rl), **cl = calloc((size_t)C, sizeof *cl);
    char **text = NULL;
    int rc = 1;
    if (!v || !top || !rl || !cl) goto done;
    for (int64_t i = 0; i < R * C; i++) {
        v[i] = r->top_probs[i * r->k]; /* colour: probability, comparable across layers */
        top[i] = r->top_ids[i * r->k];
    }
    text = xp_token_labels(m, top, R * C);
    char buf[96];
    for (int64_t l = 0; l < R; l++) {
        if (l < L) snprintf(buf, sizeof buf, "resid_pre %lld", (long long)l);
        else snprintf(buf, sizeof buf, "final");
        rl[l] = strdup(buf);
    }
    for (int64_t t = 0; t < C; t++) {
        snprintf(buf, sizeof buf, "%lld %s", (long long)t, pos_labels[t]);
        cl[t] = strdup(buf);
    }
    hk_heatmap hm = {.values = v, .rows = R, .cols = C, .row_labels = (const char *const *)rl,
                     .col_labels = (const char *const *)cl,
                     .title = title, .row_axis = "residual stream",
                     .col_axis = "position (token)", .value_label = "top-1 probability",
                     .diverging = false, .cell_text = (const char *const *)text,
                     .range_min = 0, .range_max = 1};
    rc = hk_heatmap_svg(&hm, path, force) == HK_OK ? 0 : 1;
done:
    xp_free_labels(rl, R);
    xp_free_labels(cl, C);
    xp_free_labels(text, R * C);
    free(v);
    free(top);
    return rc;
}

/* heads (mean over prompts) as [layer, head], with the MLP as one more column */
static int dla_svg(const hk_dla_result *d, const char *path, bool force) {
    const int64_t L = d->n_layers, H = d->n_heads, C = H + 1, np = d->n_prompts;
    float *v = malloc((size_t)(L * C) * sizeof *v);
    char **rl = calloc((size_t)L, sizeof *rl), **cl = calloc((size_t)C, sizeof *cl);
    int rc = 1;
    if (!v || !rl || !cl) goto done;
    for (int64_t l = 0; l < L; l++)
        for (int64_t c = 0; c < C; c++) {
            int64_t comp = c < H ? l * H + c : L * H + l;
            double s = 0;
            for (int64_t i = 0; i < np; i++) s += d->values[comp * np + i];
            v[l * C + c] = (float)(s / (double)np);
        }
    char buf[32];
    for (int64_t l = 0; l < L; l++) {
        snprintf(buf, sizeof buf, "%lld", (long long)l);
        rl[l] = strdup(buf);
    }
    for (int64_t c = 0; c < C; c++) {
        if (c < H) snprintf(buf, sizeof buf, "H%lld", (long long)c);
        else snprintf(buf, sizeof buf, "MLP");
        cl[c] = strdup(buf);
    }
    hk_heatmap hm = {.values = v, .rows = L, .cols = C, .row_labels = (const char *const *)rl,
                     .col_labels = (const char *const *)cl,
                     .title = "direct logit attribution to the logit difference",
                     .row_axis = "layer", .col_axis = "head (and the layer's MLP)",
                     .value_label = "logit diff", .diverging = true};
    rc = hk_heatmap_svg(&hm, path, force) == HK_OK ? 0 : 1;
done:
    xp_free_labels(rl, L);
    xp_free_labels(cl, C);
    free(v);
    return rc;
}

static int lens_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    if ((rc = cli_check_outputs(&a))) return rc; /* before any work */
    const char *dir;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    hk_load_opts load_opts;
    if ((rc = cli_load_opts(&a, &load_opts))) return rc;
    xp_prompts p = {0};
    xp_answers ans = {0}, wro = {0};
    int64_t k, threads;
    hk_model *m = NULL;
    hk_results *res = NULL;
    hk_hooks *hooks = NULL;
    cli_plugins plugins = {0};
    hk_lens_result lens = {0};
    hk_dla_result dla = {0};
    char **labels = NULL, **top_labels = NULL;
    if ((rc = xp_prompts_read(&a, "tokens", "prompt", "prompts", true, &p))) goto done;
    if ((rc = cli_int(&a, "top-k", 1, 100, 5, &k))) goto done;
    if ((rc = cli_int(&a, "threads", 1, 1024, 0, &threads))) goto done;
    if ((rc = cli_plugins_read(&a, &plugins))) goto done;
    const bool want_dla = cli_has(&a, "answer") || cli_has(&a, "wrong") ||
                          cli_has(&a, "answer-text") || cli_has(&a, "wrong-text");
    if (want_dla) {
        if ((rc = xp_answers_read(&a, "answer", "answer-text", p.n, &ans))) goto done;
        if ((rc = xp_answers_read(&a, "wrong", "wrong-text", p.n, &wro))) goto done;
    }
    if (threads) hk_set_num_threads((int)threads);
    hk_status st = hk_model_load_opts(dir, &load_opts, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s", dir, hk_last_error());
        goto done;
    }
    if ((rc = xp_prompts_encode(&a, m, &p))) goto done;
    if (want_dla &&
        ((rc = xp_answers_encode(&a, m, &ans)) || (rc = xp_answers_encode(&a, m, &wro))))
        goto done;
    int32_t *answer = ans.ids, *wrong = wro.ids;
    /* plugins fire first; the lens run is prompt 1, the attribution's run every prompt */
    if ((rc = cli_plugins_start(&a, &plugins, m, &hooks)) ||
        (rc = cli_plugins_begin_run(&a, &plugins, p.ids, NULL, 1, p.seq)))
        goto done;
    labels = xp_token_labels(m, p.ids, p.seq);
    const bool force = cli_has(&a, "force");
    const char *out_path = cli_str(&a, "out"), *prefix = cli_str(&a, "svg");
    if (out_path && (st = hk_results_create(out_path, force, m, "lens", &res)) != HK_OK) {
        rc = cli_runtime_error(&a, "--out: %s", hk_last_error());
        goto done;
    }
    if ((st = hk_logit_lens_hooked(m, hooks, p.ids, p.seq, k, &lens)) != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
        goto done;
    }
    const int64_t R = lens.n_rows, T = lens.seq;
    printf("# model=%s logit lens of prompt 1 (%lld tokens): top-1 token after each layer\n", dir,
           (long long)T);
    printf("%-14s", "position");
    for (int64_t t = 0; t < T; t++) printf(" %7.7s", labels[t]);
    putchar('\n');
    int32_t *top1 = malloc((size_t)(R * T) * sizeof *top1);
    for (int64_t i = 0; top1 && i < R * T; i++) top1[i] = lens.top_ids[i * k];
    top_labels = top1 ? xp_token_labels(m, top1, R * T) : NULL;
    free(top1);
    for (int64_t l = 0; l < R && top_labels; l++) {
        char name[32];
        if (l + 1 < R) snprintf(name, sizeof name, "resid_pre %lld", (long long)l);
        else snprintf(name, sizeof name, "final");
        printf("%-14s", name);
        for (int64_t t = 0; t < T; t++) printf(" %7.7s", top_labels[l * T + t]);
        putchar('\n');
    }
    /* the last position's top-k after the final layer, as run prints its table */
    printf("top-%lld at the last position, final layer:\n%5s %10s %12s %12s%s\n", (long long)k,
           "rank", "token_id", "logit", "prob", hk_model_tokenizer(m) ? "  token" : "");
    for (int64_t j = 0; j < k; j++) {
        const int64_t o = ((R - 1) * T + T - 1) * k + j;
        char disp[96];
        printf("%5lld %10d %12.4f %12.6f%s%s\n", (long long)j + 1, lens.top_ids[o],
               lens.top_logits[o], lens.top_probs[o], hk_model_tokenizer(m) ? "  " : "",
               cli_token_display(m, lens.top_ids[o], disp, sizeof disp));
    }
    if (res) st = hk_results_add_lens(res, "lens", &lens);
    if (st == HK_OK && prefix) {
        char path[1024];
        snprintf(path, sizeof path, "%slens.svg", prefix);
        char title[512], ps[160];
        xp_prompt_summary(m, p.ids, p.seq, ps, sizeof ps);
        snprintf(title, sizeof title, "logit lens: top-1 token after each layer\nmodel: %s\n"
                                      "prompt%s: %s\ncolour: the top-1 token's probability",
                 dir, p.n > 1 ? " 1" : "", ps);
        if (lens_svg(m, &lens, labels, title, path, force)) {
            rc = cli_runtime_error(&a, "--svg: %s", hk_last_error());
            goto done;
        }
        printf("wrote %s\n", path);
    }
    if (st == HK_OK && want_dla) {
        hk_prompt_set set = {p.n, p.seq, p.ids, answer, wrong};
        if ((rc = cli_plugins_begin_run(&a, &plugins, p.ids, NULL, p.n, p.seq))) goto done;
        if ((st = hk_dla_hooked(m, hooks, &set, &dla)) != HK_OK) {
            rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
            goto done;
        }
        const int64_t np = dla.n_prompts;
        double total = 0;
        for (int64_t i = 0; i < np; i++) total += dla.total[i];
        printf("# direct logit attribution of logit[answer] - logit[wrong] at the last position "
               "(mean over %lld prompts): %.4f\nlargest components:\n", (long long)np,
               total / (double)np);
        bool *used = calloc((size_t)dla.n_components, 1);
        for (int j = 0; used && j < 10 && j < dla.n_components; j++) {
            int64_t best = -1;
            double bv = 0;
            for (int64_t c = 0; c < dla.n_components; c++) {
                double s = 0;
                for (int64_t i = 0; i < np; i++) s += dla.values[c * np + i];
                s /= (double)np;
                if (!used[c] && (best < 0 || fabs(s) > fabs(bv))) best = c, bv = s;
            }
            used[best] = true;
            printf("  %-12s %+.4f\n", dla.labels[best], bv);
        }
        free(used);
        if (res) st = hk_results_add_dla(res, "dla", &dla);
        if (st == HK_OK && prefix) {
            char path[1024];
            snprintf(path, sizeof path, "%sdla.svg", prefix);
            if (dla_svg(&dla, path, force)) {
                rc = cli_runtime_error(&a, "--svg: %s", hk_last_error());
                goto done;
            }
            printf("wrote %s\n", path);
        }
    }
    if (st == HK_OK && res)
        st = hk_results_add_tokens(res, "tokens", p.ids, p.n, p.seq, (const char *const *)labels);
    st = xp_results_finish(&res, st, out_path);
    if (st != HK_OK) rc = cli_runtime_error(&a, "%s", hk_last_error());
done:
    if (res) hk_results_discard(res);
    rc = cli_plugins_finish(&a, &plugins, rc);
    hk_hooks_free(hooks);
    xp_free_labels(labels, p.seq);
    xp_free_labels(top_labels, lens.n_rows * lens.seq);
    hk_lens_result_free(&lens);
    hk_dla_result_free(&dla);
    hk_model_free(m);
    xp_prompts_free(&p);
    free(ans.ids), free(wro.ids);
    return rc;
}

const cli_command cmd_lens = {
    .name = "lens",
    .summary = "Logit lens per layer, and direct logit attribution to heads and MLPs.",
    .usage = "--model DIR (--tokens IDS | --prompt TEXT | --prompts FILE) [--top-k K] "
             "[--answer ID --wrong ID | --answer-text TEXT --wrong-text TEXT] [--out FILE.h5] "
             "[--svg PREFIX] [--plugin SPEC]...",
    .description =
        "Logit lens: each layer's residual stream (blocks.l.hook_resid_pre, then the final\n"
        "hook_resid_post) through ln_final and the unembedding; prints the top-1 token at every\n"
        "position after every layer and the top-k at the last. With --answer and --wrong:\n"
        "direct logit attribution of logit[answer] - logit[wrong] at the last position to every\n"
        "head, every MLP, the embeddings and the attention biases, scaled by ln_final's scale\n"
        "as TransformerLens's apply_ln_to_stack does. Prompts and answers may be text\n"
        "(--prompt, --prompts, --answer-text, --wrong-text), encoded with the model's\n"
        "tokenizer.json as for `hookformer patch`. --plugin (repeatable) runs a plugin's hooks\n"
        "first: the lens and the attribution under its intervention.\n"
        "\n"
        "example:\n"
        "  hookformer lens --model tests/fixtures/gpt2 --tokens 227,187,164,39 \\\n"
        "      --answer 68 --wrong 100 --svg out/",
    .opts = lens_opts,
    .main = lens_main,
};
