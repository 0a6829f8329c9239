/* hookformer patch: activation-patching sweeps of clean into corrupted prompts. */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

#include "hookformer.h"
#include "cli_opts.h"
#include "device.h"
#include "out_path.h"
#include "plugins.h"
#include "xp_common.h"
#include "xp_dist.h"

static const cli_opt patch_opts[] = {
    {"model", "DIR", "model folder; required"},
    CLI_OPTS_DEVICE,
    {"clean", "IDS", "a clean prompt (comma-separated token ids); repeat for several; required"},
    {"corrupted", "IDS", "its corrupted version, same count and (without --pos-map) length"},
    {"clean-text", "TEXT", "a clean prompt as text (instead of --clean); repeatable"},
    {"corrupted-text", "TEXT", "its corrupted version as text (instead of --corrupted)"},
    {"answer", "IDS", "correct answer token per prompt (or one for all); required"},
    {"wrong", "IDS", "incorrect answer token per prompt (or one for all); required"},
    {"answer-text", "TEXT", "the answer as text, one token (instead of --answer); repeatable"},
    {"wrong-text", "TEXT", "the wrong answer as text, one token (instead of --wrong)"},
    {"prepend-bos", NULL, "text prompts: BOS token first (default: the family's rule, as TL)"},
    {"no-prepend-bos", NULL, "text prompts: no BOS token first"},
    {"sweep", "LIST", "comma-separated sweeps (default resid_pre,attn_out,mlp_out,head_out,"
                      "head_out_by_pos)"},
    {"layer", "L", "patch this layer only (default: every layer)"},
    {"pos-map", "LIST", "clean position for each corrupted position (-1: none)"},
    {"batch", "N", "patches per forward (default: from a 512 MiB activation budget)"},
    {"out", "FILE", "write the results to this HDF5 file"},
    {"svg", "PREFIX", "write one heatmap per sweep: PREFIX<sweep>.svg"},
    {"force", NULL, "overwrite existing output files"},
    {"full-forward", NULL, "run every layer in every forward (default: start at the first "
                           "patched layer; the same numbers)"},
    {"threads", "N", "threads for GEMM and the kernels"},
    CLI_OPT_PLUGIN,
    {NULL, NULL, NULL},
};

static int parse_pos_map(const cli_args *a, int64_t seq, int64_t clean_seq, int64_t **out) {
    *out = NULL;
    const char *v = cli_str(a, "pos-map");
    if (!v) return 0;
    int64_t *map = malloc((size_t)seq * sizeof *map);
    if (!map) return cli_runtime_error(a, "--pos-map: out of memory");
    const char *p = v;
    for (int64_t t = 0; t < seq; t++) {
        size_t len = strcspn(p, ",");
        char buf[24];
        int64_t x;
        if (len == 0 || len >= sizeof buf) break;
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (!cli_parse_int64(buf, &x) || x < -1 || x >= clean_seq) {
            free(map);
            return cli_usage_error(a, "--pos-map: '%s' is not a clean position (-1..%lld)", buf,
                                   (long long)(clean_seq - 1));
        }
        map[t] = x;
        p += len;
        if (t + 1 < seq) {
            if (*p != ',') {
                free(map);
                return cli_usage_error(a, "--pos-map: expected %lld positions (one per corrupted "
                                          "token), got '%s'", (long long)seq, v);
            }
            p++;
        }
    }
    if (*p) {
        free(map);
        return cli_usage_error(a, "--pos-map: expected %lld positions (one per corrupted token), "
                                  "got '%s'", (long long)seq, v);
    }
    *out = map;
    return 0;
}

/* --pos-map, or equal lengths */
static int check_lengths(const cli_args *a, const xp_prompts *clean, const xp_prompts *bad,
                         int64_t **map) {
    int rc = parse_pos_map(a, bad->seq, clean->seq, map);
    if (rc) return rc;
    if (!*map && bad->seq != clean->seq)
        return cli_usage_error(a, "--%s: %lld tokens, --%s %lld: give --pos-map", bad->opt,
                               (long long)bad->seq, clean->opt, (long long)clean->seq);
    return 0;
}

static int patch_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    if ((rc = cli_check_outputs(&a))) return rc; /* before any work */
    const char *dir;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    hk_load_opts load_opts;
    if ((rc = cli_load_opts(&a, &load_opts))) return rc;
    xp_prompts clean = {0}, bad = {0};
    xp_answers ans = {0}, wro = {0};
    int64_t *map = NULL, layer, batch, threads;
    hk_model *m = NULL;
    hk_results *res = NULL;
    hk_hooks *hooks = NULL;
    cli_plugins plugins = {0};
    char **labels = NULL, **pairs = NULL;
    const char *sweeps = cli_str(&a, "sweep");
    if (!sweeps) sweeps = "resid_pre,attn_out,mlp_out,head_out,head_out_by_pos";
    char sweep_buf[512];
    snprintf(sweep_buf, sizeof sweep_buf, "%s", sweeps);
    if ((rc = xp_prompts_read(&a, "clean", "clean-text", NULL, true, &clean))) goto done;
    if ((rc = xp_prompts_read(&a, "corrupted", "corrupted-text", NULL, true, &bad))) goto done;
    if (bad.n != clean.n) {
        rc = cli_usage_error(&a, "--%s: %lld prompts for %lld --%s prompts", bad.opt,
                             (long long)bad.n, (long long)clean.n, clean.opt);
        goto done;
    }
    if ((rc = xp_answers_read(&a, "answer", "answer-text", clean.n, &ans))) goto done;
    if ((rc = xp_answers_read(&a, "wrong", "wrong-text", clean.n, &wro))) goto done;
    if ((rc = cli_int(&a, "layer", 0, INT32_MAX, -1, &layer))) goto done;
    if ((rc = cli_int(&a, "batch", 1, 4096, 0, &batch))) goto done;
    if ((rc = cli_int(&a, "threads", 1, 1024, 0, &threads))) goto done;
    if ((rc = cli_plugins_read(&a, &plugins))) goto done;
    /* ids are checked before the model loads; text once the tokenizer has encoded it */
    if (clean.ids && bad.ids && (rc = check_lengths(&a, &clean, &bad, &map))) goto done;
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
    cli_device_note("patch", m); /* mpirun: which device this rank runs on */
    if (!(clean.ids && bad.ids)) {
        if ((rc = xp_prompts_encode(&a, m, &clean)) || (rc = xp_prompts_encode(&a, m, &bad)) ||
            (rc = check_lengths(&a, &clean, &bad, &map)))
            goto done;
    }
    if ((rc = xp_answers_encode(&a, m, &ans)) || (rc = xp_answers_encode(&a, m, &wro)))
        goto done;
    int32_t *answer = ans.ids, *wrong = wro.ids;
    /* plugins fire first in every forward; they see the corrupted prompts as the run */
    if ((rc = cli_plugins_start(&a, &plugins, m, &hooks)) ||
        (rc = cli_plugins_begin_run(&a, &plugins, bad.ids, NULL, bad.n, bad.seq)))
        goto done;
    labels = xp_token_labels(m, bad.ids, bad.seq);
    pairs = xp_pair_labels(m, clean.ids, bad.ids, bad.seq, map);
    /* the heatmaps' title lines after the first: model, metric, prompts, what labels columns */
    char about[1024], metric[256], cs[120], bs[120];
    xp_metric_summary(m, answer, wrong, clean.n, metric, sizeof metric);
    xp_prompt_summary(m, clean.ids, clean.seq, cs, sizeof cs);
    xp_prompt_summary(m, bad.ids, bad.seq, bs, sizeof bs);
    snprintf(about, sizeof about, "model: %s\nmetric: %s, normalized: 0 = corrupted, 1 = clean"
                                  "\nclean: %s\ncorrupted: %s%s\ncolumns: position and "
                                  "token, clean/corrupted where they differ",
             dir, metric, cs, bs, clean.n > 1 ? " (prompt 1 of several)" : "");
    const char *out_path = cli_str(&a, "out");
    const bool force = cli_has(&a, "force");
    /* under mpirun rank 0 alone prints and writes (xp_dist.h) */
    if (out_path && xp_dist_root() &&
        (st = hk_results_create(out_path, force, m, "patch", &res)) != HK_OK) {
        rc = cli_runtime_error(&a, "--out: %s", hk_last_error());
        goto done;
    }
    hk_prompt_set set = {bad.n, bad.seq, bad.ids, answer, wrong};
    hk_patch_opts o = {.clean = clean.ids, .clean_seq = clean.seq, .pos_map = map,
                       .batch = batch, .full_forward = cli_has(&a, "full-forward"),
                       .hooks = hooks, .share = xp_dist_share()};
    bool first = true;
    for (char *s = strtok(sweep_buf, ","); s; s = strtok(NULL, ",")) {
        hk_sweep_spec spec;
        xp_sweep_by_name(s, &spec);
        spec.layer = layer;
        hk_sweep_result r;
        if ((st = hk_patch_sweep(m, &set, &o, &spec, &r)) != HK_OK) {
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
            printf("# model=%s prompts=%lld tokens=%lld metric: logit[answer] - logit[wrong] "
                   "at the last position, mean over prompts\n# clean %.4f  corrupted %.4f\n",
                   dir, (long long)set.n_prompts, (long long)set.seq, r.reference, r.baseline);
            first = false;
        }
        char title[1400];
        snprintf(title, sizeof title, "activation patching: %s (%s)\n%s", s, r.point, about);
        st = xp_sweep_outputs(&a, s, &r, &r, labels, pairs, true, title, res, force);
        hk_sweep_result_free(&r);
        if (st != HK_OK) {
            rc = cli_runtime_error(&a, "%s", hk_last_error());
            goto done;
        }
    }
    if (res) {
        st = hk_results_add_tokens(res, "clean_tokens", clean.ids, clean.n, clean.seq, NULL);
        if (st == HK_OK)
            st = hk_results_add_tokens(res, "corrupted_tokens", bad.ids, bad.n, bad.seq,
                                       (const char *const *)labels);
        int64_t n = set.n_prompts;
        if (st == HK_OK) st = hk_results_add_ids(res, "answer", answer, n, "prompt");
        if (st == HK_OK) st = hk_results_add_ids(res, "wrong", wrong, n, "prompt");
        st = xp_results_finish(&res, st, out_path);
        if (st != HK_OK) rc = cli_runtime_error(&a, "--out: %s", hk_last_error());
    }
done:
    if (res) hk_results_discard(res);
    rc = cli_plugins_finish(&a, &plugins, rc);
    hk_hooks_free(hooks);
    xp_free_labels(labels, bad.seq);
    xp_free_labels(pairs, bad.seq);
    hk_model_free(m);
    xp_prompts_free(&clean), xp_prompts_free(&bad);
    free(ans.ids), free(wro.ids), free(map);
    return rc;
}

const cli_command cmd_patch = {
    .name = "patch",
    .summary = "Activation patching: sweeps of clean activations into corrupted prompts.",
    .usage = "--model DIR (--clean IDS --corrupted IDS | --clean-text TEXT --corrupted-text "
             "TEXT) (--answer ID --wrong ID | --answer-text TEXT --wrong-text TEXT) "
             "[--sweep LIST] [--out FILE.h5] [--svg PREFIX] [--plugin SPEC]...",
    .description =
        "Runs the corrupted prompts with one clean activation patched in per patch, several\n"
        "patches per forward along the batch, and reports the logit difference between the\n"
        "answer and the wrong token at the last position (mean over prompts), normalized as\n"
        "(patched - corrupted) / (clean - corrupted): 1 = the patch restores the clean\n"
        "behaviour. Sweeps: resid_pre, resid_mid, resid_post, attn_out, mlp_out (layer x\n"
        "position), head_out, head_q, head_k, head_v (layer x head, every position at once),\n"
        "head_out_by_pos, ... (layer x position x head). The results equal TransformerLens's\n"
        "patching.get_act_patch_* functions. --out writes them to HDF5 (docs/FORMAT.md);\n"
        "--svg writes heatmaps a browser opens. Prompts and answers may be given as text\n"
        "(--clean-text, --corrupted-text, --answer-text, --wrong-text), encoded with the\n"
        "model's tokenizer.json: prompts with the BOS rule of --prepend-bos/--no-prepend-bos\n"
        "(default: the family's, as TransformerLens), answers without BOS and each exactly\n"
        "one token. --plugin (repeatable) runs a plugin's hooks first in every forward (clean,\n"
        "corrupted, patched): the sweep under an intervention.\n"
        "Under mpirun / srun the ranks split each sweep's forwards and rank 0 writes the\n"
        "outputs, the same as one process's (give --batch so that a sweep has >= N forwards).\n"
        "\n"
        "example:\n"
        "  hookformer patch --model tests/fixtures/gpt2 --clean 227,187,164,39 \\\n"
        "      --corrupted 227,12,164,39 --answer 68 --wrong 100 --sweep resid_pre\n"
        "  hookformer patch --model DIR --clean-text 'When Mary and John went, John gave it to' \\\n"
        "      --corrupted-text 'When Mary and John went, Mary gave it to' \\\n"
        "      --answer-text ' Mary' --wrong-text ' John' --sweep resid_pre",
    .opts = patch_opts,
    .main = patch_main,
};
