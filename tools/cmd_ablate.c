/* hookformer ablate: zero, mean or resample ablation sweeps over heads, layers, positions. */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

#include "hookformer.h"
#include "cli_opts.h"
#include "sae_opts.h"
#include "device.h"
#include "out_path.h"
#include "plugins.h"
#include "xp_common.h"
#include "xp_dist.h"

static const cli_opt ablate_opts[] = {
    {"model", "DIR", "model folder; required"},
    CLI_OPTS_DEVICE,
    {"tokens", "IDS", "a prompt (comma-separated token ids); repeat for several; required"},
    {"answer", "IDS", "correct answer token per prompt (or one for all); required"},
    {"wrong", "IDS", "incorrect answer token per prompt (or one for all); required"},
    {"prompt", "TEXT", "a prompt as text (instead of --tokens); repeatable"},
    {"prompts", "FILE", "text prompts, one per line ('-': stdin; instead of --tokens)"},
    {"prepend-bos", NULL, "text prompts: BOS token first (default: the family's rule, as TL)"},
    {"no-prepend-bos", NULL, "text prompts: no BOS token first"},
    {"answer-text", "TEXT", "the answer as text, one token (instead of --answer); repeatable"},
    {"wrong-text", "TEXT", "the wrong answer as text, one token (instead of --wrong)"},
    {"mode", "MODE", "zero, mean or resample (default zero)"},
    {"ref", "IDS", "a reference prompt for mean / resample; repeat for several"},
    {"ref-text", "TEXT", "a reference prompt as text (instead of --ref); repeatable"},
    {"seed", "N", "resample: seed of the reference prompt drawn for each prompt (default 0)"},
    {"sweep", "LIST", "comma-separated sweeps (default head_out,mlp_out)"},
    {"layer", "L", "ablate this layer only (default: every layer)"},
    {"batch", "N", "ablations per forward (default: from a 512 MiB activation budget)"},
    {"out", "FILE", "write the results to this HDF5 file"},
    {"svg", "PREFIX", "write one heatmap per sweep: PREFIX<sweep>.svg"},
    {"force", NULL, "overwrite existing output files"},
    {"full-forward", NULL, "run every layer in every forward (default: start at the first "
                           "patched layer; the same numbers)"},
    {"threads", "N", "threads for GEMM and the kernels"},
    CLI_OPT_SAE,
    CLI_OPT_SAE_HOOK,
    {"feature", "LIST", "with --sae: zero these features (comma-separated), one at a time"},
    CLI_OPT_PLUGIN,
    {NULL, NULL, NULL},
};

static hk_hook_result zero_feature(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    const int32_t f = *(const int32_t *)user;
    float *x = t->data; /* [batch, pos, d_sae] contiguous */
    for (int64_t r = 0; r < t->shape[0] * t->shape[1]; r++) x[r * t->shape[2] + f] = 0.0f;
    return HK_HOOK_CONTINUE;
}

/* --sae DIR --feature LIST: the metric with the SAE spliced (error term kept) and with each
 * feature zeroed in turn. `hooks` holds the plugins' hooks (or is a fresh set). */
static int ablate_features(const cli_args *a, hk_model *m, hk_hooks *hooks, const char *dir,
                           const hk_prompt_set *set) {
    hk_sae *s = NULL;
    hk_sae_attachment *att = NULL;
    int32_t *feat = NULL;
    int64_t n_feat = 0;
    int rc = xp_parse_id_list(a, "feature", cli_str(a, "feature"), &feat, &n_feat);
    if (!rc) rc = cli_sae_load(a, cli_str(a, "sae"), &s);
    hk_sae_info in;
    if (!rc) {
        hk_sae_get_info(s, &in);
        for (int64_t i = 0; i < n_feat && !rc; i++)
            if (feat[i] >= in.d_sae)
                rc = cli_usage_error(a, "--feature %d: the SAE has %lld features", feat[i],
                                     (long long)in.d_sae);
    }
    float plain = 0, spliced = 0;
    hk_status st = HK_OK;
    if (!rc && (st = hk_prompt_metric(m, hooks, set, &plain)) != HK_OK)
        rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    if (!rc) rc = cli_sae_attach(a, hooks, s, HK_SAE_REPLACE_WITH_ERROR, &att);
    if (!rc && (st = hk_prompt_metric(m, hooks, set, &spliced)) != HK_OK)
        rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    if (!rc) {
        printf("# model=%s prompts=%lld tokens=%lld sae=%s at %s (error term kept); metric: "
               "logit[answer] - logit[wrong] at the last position, mean over prompts\n"
               "# unablated %.4f  (SAE spliced: %.4f)\n%-8s %10s %10s\n",
               dir, (long long)set->n_prompts, (long long)set->seq, in.path, in.hook, plain,
               spliced, "feature", "metric", "change");
    }
    char name[256];
    snprintf(name, sizeof name, "%s.hook_sae_acts_post", s ? in.hook : "");
    for (int64_t i = 0; !rc && i < n_feat; i++) {
        hk_hook_handle hh = 0;
        float v = 0;
        st = hk_hooks_add(hooks, name, zero_feature, &feat[i], &hh);
        if (st == HK_OK) st = hk_prompt_metric(m, hooks, set, &v);
        if (hh) hk_hooks_remove(hooks, hh);
        if (st != HK_OK)
            rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
        else
            printf("%-8d %10.4f %+10.4f\n", feat[i], v, v - spliced);
    }
    hk_sae_detach(att);
    hk_sae_free(s);
    free(feat);
    return rc;
}

static int ablate_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    if ((rc = cli_check_outputs(&a))) return rc; /* before any work */
    const char *dir;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    hk_load_opts load_opts;
    if ((rc = cli_load_opts(&a, &load_opts))) return rc;
    xp_prompts p = {0}, ref = {0};
    xp_answers ans = {0}, wro = {0};
    int64_t layer, batch, threads, seed;
    hk_model *m = NULL;
    hk_results *res = NULL;
    hk_hooks *hooks = NULL;
    cli_plugins plugins = {0};
    char **labels = NULL;
    hk_ablate_mode mode = HK_ABLATE_ZERO;
    const char *mode_s = cli_str(&a, "mode");
    if (mode_s && strcmp(mode_s, "zero") != 0) {
        if (strcmp(mode_s, "mean") == 0) mode = HK_ABLATE_MEAN;
        else if (strcmp(mode_s, "resample") == 0) mode = HK_ABLATE_RESAMPLE;
        else return cli_usage_error(&a, "--mode: expected zero, mean or resample, got '%s'", mode_s);
    }
    const bool by_sae = cli_has(&a, "sae");
    if (by_sae != cli_has(&a, "feature") || (!by_sae && cli_has(&a, "sae-hook")))
        return cli_usage_error(&a, "--sae and --feature go together (--sae-hook with them)");
    if (by_sae && (mode_s || cli_has(&a, "sweep") || cli_has(&a, "out") || cli_has(&a, "svg") ||
                   cli_has(&a, "layer")))
        return cli_usage_error(&a, "--sae --feature zeroes SAE features: it goes without --mode, "
                                   "--sweep, --layer, --out and --svg");
    const char *sweeps = cli_str(&a, "sweep");
    if (!sweeps) sweeps = "head_out,mlp_out";
    char sweep_buf[512];
    snprintf(sweep_buf, sizeof sweep_buf, "%s", sweeps);
    if ((rc = xp_prompts_read(&a, "tokens", "prompt", "prompts", true, &p))) goto done;
    if ((rc = xp_answers_read(&a, "answer", "answer-text", p.n, &ans))) goto done;
    if ((rc = xp_answers_read(&a, "wrong", "wrong-text", p.n, &wro))) goto done;
    if ((rc = cli_int(&a, "layer", 0, INT32_MAX, -1, &layer))) goto done;
    if ((rc = cli_int(&a, "batch", 1, 4096, 0, &batch))) goto done;
    if ((rc = cli_int(&a, "threads", 1, 1024, 0, &threads))) goto done;
    if ((rc = cli_int(&a, "seed", 0, INT64_MAX, 0, &seed))) goto done;
    if ((rc = cli_plugins_read(&a, &plugins))) goto done;
    if (mode != HK_ABLATE_ZERO) {
        if (!cli_has(&a, "ref") && !cli_has(&a, "ref-text")) {
            rc = cli_usage_error(&a, "--mode %s needs reference prompts (--ref IDS or --ref-text "
                                 "TEXT, repeated)", mode_s);
            goto done;
        }
        if ((rc = xp_prompts_read(&a, "ref", "ref-text", NULL, true, &ref))) goto done;
    } else if (cli_has(&a, "ref") || cli_has(&a, "ref-text")) {
        rc = cli_usage_error(&a, "--ref/--ref-text: only for --mode mean or resample");
        goto done;
    }
    for (char *s = strtok(sweep_buf, ","); s; s = strtok(NULL, ",")) {
        hk_sweep_spec spec;
        if (!xp_sweep_by_name(s, &spec)) {
            rc = cli_usage_error(&a, "--sweep: unknown sweep '%s' (known: %s)", s, XP_SWEEP_NAMES);
            goto done;
        }
    }
    snprintf(sweep_buf, sizeof sweep_buf, "%s", sweeps);
    if (threads) hk_set_num_threads((int)threads);
    hk_status st = hk_model_load_opts(dir, &load_opts, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s", dir, hk_last_error());
        goto done;
    }
    cli_device_note("ablate", m); /* mpirun: which device this rank runs on */
    if ((rc = xp_prompts_encode(&a, m, &p)) || (rc = xp_prompts_encode(&a, m, &ref)) ||
        (rc = xp_answers_encode(&a, m, &ans)) || (rc = xp_answers_encode(&a, m, &wro)))
        goto done;
    if (mode == HK_ABLATE_RESAMPLE && ref.seq < p.seq) {
        rc = cli_usage_error(&a, "--%s: resample needs reference prompts of at least %lld "
                                 "tokens (the prompts' length), got %lld",
                             ref.opt, (long long)p.seq, (long long)ref.seq);
        goto done;
    }
    int32_t *answer = ans.ids, *wrong = wro.ids;
    /* plugins fire first in every forward (reference runs included); the run is the prompts */
    if ((rc = cli_plugins_start(&a, &plugins, m, &hooks)) ||
        (rc = cli_plugins_begin_run(&a, &plugins, p.ids, NULL, p.n, p.seq)))
        goto done;
    labels = xp_token_labels(m, p.ids, p.seq);
    const char *out_path = cli_str(&a, "out");
    const bool force = cli_has(&a, "force");
    /* under mpirun rank 0 alone prints and writes (xp_dist.h) */
    if (out_path && xp_dist_root() &&
        (st = hk_results_create(out_path, force, m, "ablate", &res)) != HK_OK) {
        rc = cli_runtime_error(&a, "--out: %s", hk_last_error());
        goto done;
    }
    hk_prompt_set set = {p.n, p.seq, p.ids, answer, wrong};
    if (by_sae) {
        if (!hooks && (st = hk_hooks_new(m, &hooks)) != HK_OK) {
            rc = cli_runtime_error(&a, "%s", hk_last_error());
            goto done;
        }
        rc = ablate_features(&a, m, hooks, dir, &set);
        goto done;
    }
    hk_ablate_opts o = {.mode = mode, .ref = ref.ids, .n_ref = ref.n, .ref_seq = ref.seq,
                        .seed = (uint64_t)seed, .batch = batch,
                        .full_forward = cli_has(&a, "full-forward"), .hooks = hooks,
                        .share = xp_dist_share()};
    bool first = true;
    for (char *s = strtok(sweep_buf, ","); s; s = strtok(NULL, ",")) {
        hk_sweep_spec spec;
        xp_sweep_by_name(s, &spec);
        spec.layer = layer;
        hk_sweep_result r;
        if ((st = hk_ablate_sweep(m, &set, &o, &spec, &r)) != HK_OK) {
            rc = cli_runtime_error(&a, "sweep %s: %s (%s)", s, hk_last_error(),
                                   hk_status_name(st));
            goto done;
        }
        if ((rc = xp_dist_merge(&a, &r)) || !xp_dist_root()) {
            hk_sweep_result_free(&r);
            if (rc) goto done;
            continue;
        }
        if (first) {
            printf("# model=%s prompts=%lld tokens=%lld %s ablation; metric: logit[answer] - "
                   "logit[wrong] at the last position, mean over prompts\n# unablated %.4f\n",
                   dir, (long long)set.n_prompts, (long long)set.seq,
                   hk_ablate_mode_name(mode), r.baseline);
            first = false;
        }
        char title[1024], metric[256], ps[120];
        xp_metric_summary(m, answer, wrong, p.n, metric, sizeof metric);
        xp_prompt_summary(m, p.ids, p.seq, ps, sizeof ps);
        snprintf(title, sizeof title, "%s ablation: %s (%s)\nmodel: %s\nmetric: %s, change "
                                      "from the unablated run\nprompt: %s%s",
                 hk_ablate_mode_name(mode), s, r.point, dir, metric, ps,
                 p.n > 1 ? " (1 of several)" : "");
        hk_sweep_result shown = r;
        shown.values = r.change; /* the heatmap shows the change */
        st = xp_sweep_outputs(&a, s, &r, &shown, labels, NULL, false, title, res, force);
        hk_sweep_result_free(&r);
        if (st != HK_OK) {
            rc = cli_runtime_error(&a, "%s", hk_last_error());
            goto done;
        }
    }
    if (res) {
        st = hk_results_add_tokens(res, "tokens", p.ids, p.n, p.seq, (const char *const *)labels);
        if (st == HK_OK && ref.ids)
            st = hk_results_add_tokens(res, "ref_tokens", ref.ids, ref.n, ref.seq, NULL);
        st = xp_results_finish(&res, st, out_path);
        if (st != HK_OK) rc = cli_runtime_error(&a, "--out: %s", hk_last_error());
    }
done:
    if (res) hk_results_discard(res);
    rc = cli_plugins_finish(&a, &plugins, rc);
    hk_hooks_free(hooks);
    xp_free_labels(labels, p.seq);
    hk_model_free(m);
    xp_prompts_free(&p), xp_prompts_free(&ref);
    free(ans.ids), free(wro.ids);
    return rc;
}

const cli_command cmd_ablate = {
    .name = "ablate",
    .summary = "Ablation sweeps (zero, mean, resample) and the change of a logit difference.",
    .usage = "--model DIR (--tokens IDS | --prompt TEXT | --prompts FILE) (--answer ID "
             "--wrong ID | --answer-text TEXT --wrong-text TEXT) [--mode zero|mean|resample] "
             "[--ref IDS | --ref-text TEXT] [--sweep LIST] [--out FILE.h5] [--svg PREFIX]\n"
             "       [--plugin SPEC]...\n"
             "       --model DIR (--tokens IDS | ...) (--answer ID --wrong ID | ...) --sae DIR "
             "--feature LIST",
    .description =
        "Replaces one activation at a time (a head at every position, a layer's MLP output at\n"
        "one position, ... as the sweep says) by zero, by its mean over the --ref prompts\n"
        "(streamed: sums are accumulated one batch of reference prompts at a time), or by its\n"
        "value in a --ref prompt drawn per prompt (resample), and reports how the logit\n"
        "difference between --answer and --wrong at the last position changes. Several\n"
        "ablations run per forward along the batch. Sweeps as for `hookformer patch`.\n"
        "Prompts, reference prompts and answers may be text (--prompt, --prompts, --ref-text,\n"
        "--answer-text, --wrong-text), encoded with the model's tokenizer.json as for\n"
        "`hookformer patch`. --plugin (repeatable) runs a plugin's hooks first in every\n"
        "forward, the reference runs included.\n"
        "Under mpirun / srun the ranks split each sweep's forwards and rank 0 writes the\n"
        "outputs, the same as one process's (give --batch so that a sweep has >= N forwards).\n"
        "With --sae DIR --feature LIST the SAE is spliced in at its hook with the error term\n"
        "and each listed feature is zeroed in turn (hook_sae_acts_post): the metric and its\n"
        "change from the spliced run, one line per feature.\n"
        "\n"
        "example:\n"
        "  hookformer ablate --model tests/fixtures/gpt2 --tokens 227,187,164,39 \\\n"
        "      --answer 68 --wrong 100 --mode zero --sweep head_out\n"
        "  hookformer ablate --model tests/fixtures/gpt2 --tokens 227,187,164,39 \\\n"
        "      --answer 68 --wrong 100 --sae tests/fixtures/sae/gpt2_standard --feature 3,7",
    .opts = ablate_opts,
    .main = ablate_main,
};
