/* hookformer steer: an ActAdd steering vector from a prompt pair (or an HDF5 file), added at
 * one layer from a position on, in the prompt and in every generated token. */
#include "device.h"
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hookformer.h"
#include "out_path.h"
#include "sae_opts.h"
#include "xp_common.h"

static const cli_opt steer_opts[] = {
    {"model", "DIR", "model folder; required"},
    CLI_OPTS_DEVICE,
    {"tokens", "IDS", "the prompt to steer (comma-separated token ids); required"},
    {"pos", "IDS", "prompt of the direction to add (with --neg)"},
    {"neg", "IDS", "prompt of the direction to subtract"},
    {"prompt", "TEXT", "the prompt to steer as text (instead of --tokens)"},
    {"pos-text", "TEXT", "prompt of the direction to add, as text (instead of --pos)"},
    {"neg-text", "TEXT", "prompt of the direction to subtract, as text (instead of --neg)"},
    {"prepend-bos", NULL, "text prompts: BOS token first (default: the family's rule, as TL)"},
    {"no-prepend-bos", NULL, "text prompts: no BOS token first"},
    {"layer", "L", "layer of the vector (with --pos/--neg); required with them"},
    {"point", "NAME", "point of the vector (default hook_resid_pre)"},
    {"vector-mode", "MODE", "last (default: last positions), mean (over positions) or aligned "
                            "(one row per position, ActAdd)"},
    {"vector", "FILE", "load the vector from an HDF5 file (instead of --pos/--neg)"},
    {"save", "FILE", "save the vector to an HDF5 file"},
    {"coef", "C", "coefficient (default 4)"},
    {"from", "A", "first position steered (default 0)"},
    {"max-new", "N", "tokens to generate, greedy (default 10)"},
    {"force", NULL, "overwrite an existing --save file"},
    CLI_OPT_SAE,
    CLI_OPT_SAE_HOOK,
    {"feature", "N", "with --sae: steer by adding coef to this feature's activation"},
    {"threads", "N", "threads for GEMM and the kernels"},
    {NULL, NULL, NULL},
};

/* --sae --feature N: coef added to feature N of hook_sae_acts_post from position `from` on */
typedef struct {
    int64_t feature, from;
    float coef;
} feature_steer;

static hk_hook_result steer_feature(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    const feature_steer *f = user;
    float *x = t->data; /* [batch, pos, d_sae] contiguous */
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++)
            if (ctx->pos_offset + p >= f->from)
                x[(b * t->shape[1] + p) * t->shape[2] + f->feature] += f->coef;
    return HK_HOOK_CONTINUE;
}

/* the ids line, then (with a tokenizer) the tokens' texts under it */
static void print_ids(const hk_model *m, const char *what, const int32_t *ids, int64_t n) {
    printf("%-9s", what);
    for (int64_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
    putchar('\n');
    xp_print_token_texts(stdout, "         ", m, ids, n);
}

/* --sae DIR --feature N: generate without and with the SAE spliced (error term kept, so only
 * the feature's change reaches the model) and coef added to feature N. */
static int steer_by_sae(const cli_args *a, const char *dir, xp_prompts *pr, int64_t feature,
                        float coef, int64_t from, int64_t max_new) {
    hk_model *m = NULL;
    hk_sae *s = NULL;
    hk_hooks *h = NULL;
    hk_sae_attachment *att = NULL;
    int32_t *plain = NULL, *steered = NULL;
    int rc = cli_sae_load(a, cli_str(a, "sae"), &s);
    hk_status st = HK_OK;
    if (!rc && (st = hk_model_load(dir, &m)) != HK_OK)
        rc = cli_runtime_error(a, "cannot load model '%s': %s", dir, hk_last_error());
    if (!rc) rc = xp_prompts_encode(a, m, pr);
    hk_sae_info in;
    if (!rc) {
        hk_sae_get_info(s, &in);
        if (feature >= in.d_sae)
            rc = cli_usage_error(a, "--feature %lld: the SAE has %lld features", (long long)feature,
                                 (long long)in.d_sae);
    }
    if (!rc && (st = hk_hooks_new(m, &h)) != HK_OK)
        rc = cli_runtime_error(a, "%s", hk_last_error());
    if (!rc) rc = cli_sae_attach(a, h, s, HK_SAE_REPLACE_WITH_ERROR, &att);
    feature_steer fs = {feature, from, coef};
    char name[256];
    snprintf(name, sizeof name, "%s.hook_sae_acts_post", s ? in.hook : "");
    if (!rc && (st = hk_hooks_add(h, name, steer_feature, &fs, NULL)) != HK_OK)
        rc = cli_runtime_error(a, "%s", hk_last_error());
    plain = malloc((size_t)(max_new + 1) * sizeof *plain);
    steered = malloc((size_t)(max_new + 1) * sizeof *steered);
    if (!rc && (!plain || !steered)) rc = cli_runtime_error(a, "out of memory");
    int64_t n_plain = 0, n_steered = 0;
    if (!rc) {
        st = hk_generate(m, NULL, pr->ids, pr->seq, max_new, 0, NULL, NULL, 0, plain, &n_plain);
        if (st == HK_OK)
            st = hk_generate(m, h, pr->ids, pr->seq, max_new, 0, NULL, NULL, 0, steered,
                             &n_steered);
        if (st != HK_OK) rc = cli_runtime_error(a, "%s (%s)", hk_last_error(), hk_status_name(st));
    }
    if (!rc) {
        printf("# model=%s sae=%s feature %lld of %lld at %s, coef %g, from position %lld\n", dir,
               in.path, (long long)feature, (long long)in.d_sae, in.hook, coef, (long long)from);
        print_ids(m, "plain", plain, n_plain);
        print_ids(m, "steered", steered, n_steered);
    }
    hk_sae_detach(att);
    hk_hooks_free(h);
    hk_sae_free(s);
    hk_model_free(m);
    free(plain);
    free(steered);
    return rc;
}

static int steer_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    if ((rc = cli_check_outputs(&a))) return rc; /* before any work */
    const char *dir;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    hk_load_opts load_opts;
    if ((rc = cli_load_opts(&a, &load_opts))) return rc;
    int32_t *plain = NULL, *steered = NULL;
    xp_prompts pr = {0}, pp = {0}, np = {0};
    int64_t layer, from, max_new, threads;
    hk_model *m = NULL;
    hk_hooks *h = NULL;
    hk_steer_vector v = {0};
    const char *coef_s = cli_str(&a, "coef");
    const char *point = cli_str(&a, "point") ? cli_str(&a, "point") : "hook_resid_pre";
    const char *vm = cli_str(&a, "vector-mode") ? cli_str(&a, "vector-mode") : "last";
    const char *vec_path = cli_str(&a, "vector");
    hk_steer_mode mode;
    if (!strcmp(vm, "last")) mode = HK_STEER_LAST;
    else if (!strcmp(vm, "mean")) mode = HK_STEER_MEAN;
    else if (!strcmp(vm, "aligned")) mode = HK_STEER_ALIGNED;
    else return cli_usage_error(&a, "--vector-mode: expected last, mean or aligned, got '%s'", vm);
    float coef = 4.0f;
    if (coef_s) {
        char *end;
        coef = strtof(coef_s, &end);
        if (*end || end == coef_s || !isfinite(coef))
            return cli_usage_error(&a, "--coef: expected a number, got '%s'", coef_s);
    }
    if ((rc = xp_prompts_read(&a, "tokens", "prompt", NULL, true, &pr))) goto done;
    if ((rc = cli_int(&a, "layer", 0, INT32_MAX, -1, &layer))) goto done;
    if ((rc = cli_int(&a, "from", 0, INT64_MAX, 0, &from))) goto done;
    if ((rc = cli_int(&a, "max-new", 0, 1 << 20, 10, &max_new))) goto done;
    if ((rc = cli_int(&a, "threads", 1, 1024, 0, &threads))) goto done;
    if (pr.n != 1) {
        rc = cli_usage_error(&a, "--%s: steer takes one prompt, got %lld", pr.opt,
                             (long long)pr.n);
        goto done;
    }
    const bool has_pos = cli_has(&a, "pos") || cli_has(&a, "pos-text");
    const bool has_neg = cli_has(&a, "neg") || cli_has(&a, "neg-text");
    const bool from_prompts = has_pos || has_neg;
    const bool by_sae = cli_has(&a, "sae");
    int64_t feature = -1;
    if ((rc = cli_int(&a, "feature", 0, INT32_MAX, -1, &feature))) goto done;
    if (by_sae != (feature >= 0) || (!by_sae && cli_has(&a, "sae-hook"))) {
        rc = cli_usage_error(&a, "--sae and --feature go together (--sae-hook with them)");
        goto done;
    }
    if (by_sae && (from_prompts || vec_path || cli_has(&a, "save") || cli_has(&a, "layer"))) {
        rc = cli_usage_error(&a, "--sae --feature steers by an SAE feature: it goes without "
                                 "--pos/--neg, --layer, --vector and --save");
        goto done;
    }
    if (by_sae) {
        rc = steer_by_sae(&a, dir, &pr, feature, coef, from, max_new);
        goto done;
    }
    if (from_prompts == (vec_path != NULL)) {
        rc = cli_usage_error(&a, "give either --pos and --neg (with --layer) or --vector FILE");
        goto done;
    }
    if (from_prompts) {
        if (!has_pos || !has_neg || layer < 0) {
            rc = cli_usage_error(&a, "--pos, --neg (or their -text forms) and --layer go "
                                     "together");
            goto done;
        }
        if ((rc = xp_prompts_read(&a, "pos", "pos-text", NULL, true, &pp))) goto done;
        if ((rc = xp_prompts_read(&a, "neg", "neg-text", NULL, true, &np))) goto done;
        if (pp.n != 1 || np.n != 1) {
            rc = cli_usage_error(&a, "--pos and --neg: one prompt each");
            goto done;
        }
    }
    if (threads) hk_set_num_threads((int)threads);
    hk_status st = hk_model_load_opts(dir, &load_opts, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s", dir, hk_last_error());
        goto done;
    }
    if ((rc = xp_prompts_encode(&a, m, &pr)) || (rc = xp_prompts_encode(&a, m, &pp)) ||
        (rc = xp_prompts_encode(&a, m, &np)))
        goto done;
    const int32_t *prompt = pr.ids;
    const int64_t n_prompt = pr.seq;
    st = from_prompts ? hk_steer_from_prompts(m, point, layer, pp.ids, pp.seq, np.ids, np.seq,
                                              mode, &v)
                      : hk_steer_load(vec_path, &v);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
        goto done;
    }
    if (cli_str(&a, "save") &&
        (st = hk_steer_save(&v, m, cli_str(&a, "save"), cli_has(&a, "force"))) != HK_OK) {
        rc = cli_runtime_error(&a, "--save: %s", hk_last_error());
        goto done;
    }
    double norm = 0;
    for (int64_t i = 0; i < v.n_pos * v.d_model; i++) norm += (double)v.vec[i] * v.vec[i];
    printf("# model=%s vector blocks.%lld.%s [%lld x %lld], |v| = %.4f, coef %g, from position "
           "%lld\n", dir, (long long)v.layer, v.point, (long long)v.n_pos, (long long)v.d_model,
           sqrt(norm), coef, (long long)from);
    if (cli_str(&a, "save")) printf("# saved %s\n", cli_str(&a, "save"));
    plain = malloc((size_t)(max_new + 1) * sizeof *plain);
    steered = malloc((size_t)(max_new + 1) * sizeof *steered);
    if (!plain || !steered) {
        rc = cli_runtime_error(&a, "out of memory");
        goto done;
    }
    int64_t n_plain = 0, n_steered = 0;
    if ((st = hk_generate(m, NULL, prompt, n_prompt, max_new, 0, NULL, NULL, 0, plain,
                          &n_plain)) == HK_OK &&
        (st = hk_hooks_new(m, &h)) == HK_OK) {
        hk_steer_apply ap = {&v, coef, from};
        st = hk_steer_add(h, &ap, NULL);
        if (st == HK_OK)
            st = hk_generate(m, h, prompt, n_prompt, max_new, 0, NULL, NULL, 0, steered,
                             &n_steered);
    }
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
        goto done;
    }
    print_ids(m, "plain", plain, n_plain);
    print_ids(m, "steered", steered, n_steered);
done:
    hk_hooks_free(h);
    hk_steer_vector_free(&v);
    hk_model_free(m);
    xp_prompts_free(&pr), xp_prompts_free(&pp), xp_prompts_free(&np);
    free(plain), free(steered);
    return rc;
}

const cli_command cmd_steer = {
    .name = "steer",
    .summary = "Steering (ActAdd): add a vector from a prompt pair at a layer while generating.",
    .usage = "--model DIR (--tokens IDS | --prompt TEXT) (--pos IDS --neg IDS --layer L | "
             "--pos-text TEXT --neg-text TEXT --layer L | --vector FILE) "
             "[--coef C] [--from A] [--max-new N] [--save FILE]\n"
             "       --model DIR (--tokens IDS | --prompt TEXT) --sae DIR --feature N [--coef C] ...",
    .description =
        "Builds a steering vector as the difference of the activations of two prompts at\n"
        "blocks.L.<point> (default hook_resid_pre): at their last positions (last), averaged\n"
        "over positions (mean), or one row per position (aligned, ActAdd; equal lengths), or\n"
        "loads one saved with --save. Generates greedily from --tokens twice, without and with\n"
        "coef x the vector added from position --from on (an aligned vector: its row i at\n"
        "position from + i), in the prompt and at every generated token, and prints both.\n"
        "The prompts may be text (--prompt, --pos-text, --neg-text), encoded with the model's\n"
        "tokenizer.json and the BOS rule of --prepend-bos/--no-prepend-bos.\n"
        "With --sae DIR --feature N the SAE is spliced in at its hook with the error term (the\n"
        "model's own activation until a feature changes) and coef is added to feature N's\n"
        "activation (hook_sae_acts_post) from --from on: coef x its decoder row in the stream.\n"
        "\n"
        "example:\n"
        "  hookformer steer --model tests/fixtures/gpt2 --tokens 227,187,164,39 \\\n"
        "      --pos 10,11 --neg 20,21 --layer 1 --coef 4 --from 1 --max-new 8\n"
        "  hookformer steer --model tests/fixtures/gpt2 --tokens 227,187,164,39 \\\n"
        "      --sae tests/fixtures/sae/gpt2_standard --feature 3 --coef 8 --max-new 8",
    .opts = steer_opts,
    .main = steer_main,
};
