/* hookformer features: each SAE feature's top-activating contexts over a corpus, into HDF5
 * (hk_sae_top_save) and a static HTML page of selected features (hk_sae_top_html). */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_opts.h"
#include "hookformer.h"
#include "out_path.h"
#include "prompt.h"
#include "sae_opts.h"
#include "xp_common.h"

static const cli_opt features_opts[] = {
    {"model", "DIR", "model folder; required"},
    CLI_OPTS_PROMPT,
    CLI_OPT_SAE,
    CLI_OPT_SAE_HOOK,
    {"top", "K", "contexts kept per feature (default 20)"},
    {"window", "W", "tokens shown on each side of the maximum (default 8)"},
    {"batch", "B", "sequences per forward (default 8)"},
    {"out", "FILE", "the HDF5 file of every feature's top contexts; required"},
    {"html", "FILE", "a static HTML page of the selected features"},
    {"features", "LIST", "features on the HTML page (default: the 8 with the largest maxima)"},
    {"force", NULL, "replace existing output files"},
    {NULL, NULL, NULL},
};

/* The n features with the largest maxima (ties by index), alive ones only. */
static size_t strongest(const hk_sae_top *t, int64_t *out, size_t n) {
    size_t k = 0;
    for (int64_t j = 0; j < t->d_sae; j++) {
        if (!(t->max_act[j] > 0)) continue;
        size_t at = k < n ? k : n;
        while (at > 0 && t->max_act[out[at - 1]] < t->max_act[j]) at--;
        if (at >= n) continue;
        size_t end = k < n ? k : n - 1;
        memmove(out + at + 1, out + at, (end - at) * sizeof *out);
        out[at] = j;
        if (k < n) k++;
    }
    return k;
}

static int features_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    const char *dir, *sae_dir, *out, *html = cli_str(&a, "html");
    if ((rc = cli_require_str(&a, "model", &dir)) || (rc = cli_require_str(&a, "sae", &sae_dir)) ||
        (rc = cli_require_str(&a, "out", &out)))
        return rc;
    const bool force = cli_has(&a, "force");
    if ((rc = cli_check_output(&a, "out", CLI_OUT_NEW, force)) ||
        (rc = cli_check_output(&a, "html", CLI_OUT_NEW, force)))
        return rc; /* before any work */
    if (html && strcmp(html, out) == 0)
        return cli_usage_error(&a, "--html and --out name the same file '%s'", out);
    if (!html && cli_has(&a, "features"))
        return cli_usage_error(&a, "--features picks the features of the --html page");
    int64_t top, window, batch;
    if ((rc = cli_int(&a, "top", 1, 10000, 20, &top)) || (rc = cli_int(&a, "window", 0, 4096, 8, &window)) ||
        (rc = cli_int(&a, "batch", 1, 4096, 8, &batch)))
        return rc;
    cli_prompts p = {0};
    hk_model *m = NULL;
    hk_sae *s = NULL;
    hk_sae_top t = {0};
    int32_t *sel = NULL;
    int64_t n_sel = 0, *feat = NULL;
    const int32_t **seqs = NULL;
    int64_t *lens = NULL;
    if ((rc = cli_prompts_read(&a, &p))) goto done;
    if (cli_has(&a, "features") &&
        (rc = xp_parse_id_list(&a, "features", cli_str(&a, "features"), &sel, &n_sel)))
        goto done;
    if ((rc = cli_sae_load(&a, sae_dir, &s))) goto done;
    hk_status st = hk_model_load(dir, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s", dir, hk_last_error());
        goto done;
    }
    if ((rc = cli_prompts_encode(&a, m, dir, &p))) goto done;
    hk_sae_info in;
    hk_sae_get_info(s, &in);
    for (int64_t i = 0; i < n_sel; i++)
        if (sel[i] >= in.d_sae) {
            rc = cli_usage_error(&a, "--features %d: the SAE has %lld features", sel[i],
                                 (long long)in.d_sae);
            goto done;
        }
    seqs = malloc(p.n * sizeof *seqs);
    lens = malloc(p.n * sizeof *lens);
    if (!seqs || !lens) {
        rc = cli_runtime_error(&a, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < p.n; i++) seqs[i] = p.v[i].ids, lens[i] = (int64_t)p.v[i].n;
    st = hk_sae_top_contexts(m, s, seqs, lens, (int64_t)p.n, top, window, batch, &t);
    if (st == HK_OK) st = hk_sae_top_save(&t, s, m, out, force);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
        goto done;
    }
    int64_t alive = 0;
    for (int64_t j = 0; j < t.d_sae; j++) alive += t.active[j] > 0;
    printf("# model=%s sae=%s hook=%s prompts=%zu tokens=%lld: %lld of %lld features active\n",
           dir, in.path, in.hook, p.n, (long long)t.tokens, (long long)alive, (long long)t.d_sae);
    printf("# wrote %s (top %lld contexts per feature, window %lld)\n", out, (long long)top,
           (long long)window);
    if (html) {
        size_t n = n_sel ? (size_t)n_sel : 8;
        feat = malloc(n * sizeof *feat);
        if (!feat) {
            rc = cli_runtime_error(&a, "out of memory");
            goto done;
        }
        if (n_sel)
            for (int64_t i = 0; i < n_sel; i++) feat[i] = sel[i];
        else
            n = strongest(&t, feat, n);
        if ((st = hk_sae_top_html(&t, s, m, feat, n, html, force)) != HK_OK) {
            rc = cli_runtime_error(&a, "--html: %s", hk_last_error());
            goto done;
        }
        printf("# wrote %s (features", html);
        for (size_t i = 0; i < n; i++) printf(" %lld", (long long)feat[i]);
        printf(")\n");
    }
done:
    hk_sae_top_free(&t);
    hk_sae_free(s);
    hk_model_free(m);
    cli_prompts_free(&p);
    free(sel);
    free(feat);
    free(seqs);
    free(lens);
    return rc;
}

const cli_command cmd_features = {
    .name = "features",
    .summary = "SAE features' top-activating contexts over a corpus: HDF5 and an HTML page.",
    .usage = "--model DIR --sae DIR (--prompts FILE | --prompt TEXT | --tokens IDS) --out FILE.h5 "
             "[--top K] [--window W] [--html FILE.html [--features LIST]] [--force]",
    .description =
        "Runs the prompts through the model with the SAE observing at its hook and keeps, for\n"
        "every feature, the --top prompts where it fires most (its maximum over positions),\n"
        "with the --window tokens on each side of that maximum and the feature's activation\n"
        "at each of them (docs/FORMAT.md: top_values, top_seq, top_pos, window_tokens,\n"
        "window_values, max_activation, active_tokens). --html writes a static page (no\n"
        "scripts) of the --features (default: the 8 with the largest maxima), each token\n"
        "shaded by the activation, the maximum outlined.\n"
        "\n"
        "example:\n"
        "  hookformer features --model tests/fixtures/gpt2 --sae tests/fixtures/sae/gpt2_topk \\\n"
        "      --tokens 227,187,164,39,18,5 --top 5 --out top.h5 --html top.html",
    .opts = features_opts,
    .main = features_main,
};
