/* hookformer hooks: the hook points of a model, in execution order, with their shapes. */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

#include "cli_opts.h"
#include "hookformer.h"
#include "prompt.h"

static const cli_opt hooks_opts[] = {
    CLI_OPT_MODEL,
    {"all", NULL, "also list the optional points (attn.hook_result, split inputs, ...)"},
    CLI_OPTS_PROMPT,
    {NULL, NULL, NULL},
};

/* "[batch, pos, 4, 16]" and "(head_index, d_head)": run-dependent dims by name (or, for a run
 * of one prompt of n_pos tokens, by size: batch 1, positions n_pos), the model's dims by size,
 * then the names of the model's sized dims (a dim of size 1 is not named). */
static void describe(const hk_hook_point *pt, int64_t n_pos, char *shape, size_t shape_cap,
                     char *names, size_t names_cap) {
    size_t ns = 0, nn = 0;
    ns += (size_t)snprintf(shape, shape_cap, "[");
    names[0] = '\0';
    const char *p = pt->dims;
    for (int d = 0; d < pt->ndim && ns < shape_cap; d++) {
        size_t len = strcspn(p, " ");
        const char *sep = d ? ", " : "";
        if (pt->shape[d] < 0 && n_pos > 0) {
            const bool batch = len == 5 && strncmp(p, "batch", 5) == 0;
            ns += (size_t)snprintf(shape + ns, shape_cap - ns, "%s%lld", sep,
                                   batch ? 1LL : (long long)n_pos);
        } else if (pt->shape[d] < 0) {
            ns += (size_t)snprintf(shape + ns, shape_cap - ns, "%s%.*s", sep, (int)len, p);
        } else {
            ns += (size_t)snprintf(shape + ns, shape_cap - ns, "%s%lld", sep,
                                   (long long)pt->shape[d]);
            if (!(len == 1 && p[0] == '1') && nn < names_cap)
                nn += (size_t)snprintf(names + nn, names_cap - nn, "%s%.*s", nn ? ", " : "(",
                                       (int)len, p);
        }
        p += len;
        p += strspn(p, " ");
    }
    if (ns < shape_cap) snprintf(shape + ns, shape_cap - ns, "]");
    if (nn && nn < names_cap) snprintf(names + nn, names_cap - nn, ")");
}

static int hooks_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    const char *dir;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    const bool all = cli_has(&a, "all");
    const bool by_prompt = cli_has(&a, "tokens") || cli_has(&a, "prompt") || cli_has(&a, "prompts");
    cli_prompts prompts = {0};
    if (by_prompt && (rc = cli_prompts_read(&a, &prompts))) {
        cli_prompts_free(&prompts);
        return rc;
    }

    hk_model *m = NULL;
    hk_status st = hk_model_load(dir, &m);
    if (st != HK_OK) {
        cli_prompts_free(&prompts);
        return cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                                 hk_status_name(st));
    }
    int64_t n_pos = 0;
    if (by_prompt) {
        rc = cli_prompts_encode(&a, m, dir, &prompts);
        n_pos = (int64_t)cli_prompts_max_len(&prompts);
        cli_prompts_free(&prompts);
        if (rc) {
            hk_model_free(m);
            return rc;
        }
        printf("# shapes for one prompt of %lld tokens\n", (long long)n_pos);
    }
    const size_t n = hk_model_hook_count(m);
    int name_w = 0, shape_w = 0, names_w = 0;
    size_t hidden = 0;
    char shape[160], names[160];
    for (size_t i = 0; i < n; i++) {
        const hk_hook_point *pt = hk_model_hook_at(m, i);
        if (pt->optional && !all) {
            hidden++;
            continue;
        }
        describe(pt, n_pos, shape, sizeof shape, names, sizeof names);
        int nw = (int)strlen(pt->name), sw = (int)strlen(shape), mw = (int)strlen(names);
        if (nw > name_w) name_w = nw;
        if (sw > shape_w) shape_w = sw;
        if (mw > names_w) names_w = mw;
    }
    /* name, shape, sized dims, "optional": aligned columns, trailing blanks trimmed */
    for (size_t i = 0; i < n; i++) {
        const hk_hook_point *pt = hk_model_hook_at(m, i);
        if (pt->optional && !all) continue;
        describe(pt, n_pos, shape, sizeof shape, names, sizeof names);
        char line[640];
        int len = snprintf(line, sizeof line, "%-*s   %-*s   %-*s   %s", name_w, pt->name,
                           shape_w, shape, names_w, names, pt->optional ? "optional" : "");
        if (len < 0) len = 0;
        if ((size_t)len >= sizeof line) len = (int)sizeof line - 1;
        while (len > 0 && line[len - 1] == ' ') line[--len] = '\0';
        printf("%s\n", line);
    }
    if (hidden)
        printf("(%zu optional points not listed: they cost extra compute when hooked; "
               "--all lists them)\n",
               hidden);
    hk_model_free(m);
    return CLI_EXIT_OK;
}

const cli_command cmd_hooks = {
    .name = "hooks",
    .summary = "List a model's hook points in execution order, with their shapes.",
    .usage = "--model DIR [--all] [--tokens IDS | --prompt TEXT | --prompts FILE]",
    .description =
        "One line per point: its TransformerLens name, its shape (dims set by the run by name,\n"
        "the model's dims by size) and the names of the sized dims. Optional points\n"
        "(attn.hook_result, hook_attn_in, hook_q_input, hook_k_input, hook_v_input,\n"
        "hook_mlp_in) switch a layer to a slower path when hooked; --all lists them too,\n"
        "marked 'optional'. docs/HOOKS.md says what each point holds. With a prompt, the\n"
        "shapes are those of a run over it: batch 1, positions = its tokens (the longest line\n"
        "of --prompts), encoded as 'hookformer run' encodes it.\n"
        "\n"
        "example:\n"
        "  hookformer hooks --model tests/fixtures/gpt2\n"
        "  blocks.0.attn.hook_q   [batch, pos, 4, 16]   (head_index, d_head)",
    .opts = hooks_opts,
    .main = hooks_main,
};
