/* hookformer steer: an ActAdd steering vector from a prompt pair (or an HDF5 file), added at
 * one layer from a position on, in the prompt and in every generated token. */
#include "device.h"
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hookformer.h"
#include "out_path.h"
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
    {"threads", "N", "threads for GEMM and the kernels"},
    {NULL, NULL, NULL},
};

/* the ids line, then (with a tokenizer) the tokens' texts under it */
static void print_ids(const hk_model *m, const char *what, const int32_t *ids, int64_t n) {
    printf("%-9s", what);
    for (int64_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
    putchar('\n');
    xp_print_token_texts(stdout, "         ", m, ids, n);
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
             "[--coef C] [--from A] [--max-new N] [--save FILE]",
    .description =
        "Builds a steering vector as the difference of the activations of two prompts at\n"
        "blocks.L.<point> (default hook_resid_pre): at their last positions (last), averaged\n"
        "over positions (mean), or one row per position (aligned, ActAdd; equal lengths), or\n"
        "loads one saved with --save. Generates greedily from --tokens twice, without and with\n"
        "coef x the vector added from position --from on (an aligned vector: its row i at\n"
        "position from + i), in the prompt and at every generated token, and prints both.\n"
        "The prompts may be text (--prompt, --pos-text, --neg-text), encoded with the model's\n"
        "tokenizer.json and the BOS rule of --prepend-bos/--no-prepend-bos.\n"
        "\n"
        "example:\n"
        "  hookformer steer --model tests/fixtures/gpt2 --tokens 227,187,164,39 \\\n"
        "      --pos 10,11 --neg 20,21 --layer 1 --coef 4 --from 1 --max-new 8",
    .opts = steer_opts,
    .main = steer_main,
};
