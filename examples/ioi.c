/* Indirect object identification (Wang et al. 2022) on SmolLM2-135M with the patching API.
 *
 *   build/examples/ioi MODEL [OUT_DIR] [--quick | --all]
 *
 * MODEL: SmolLM2-135M-Instruct (the GGUF of scripts/fetch_models.sh, or an HF folder with its
 * tokenizer.json); "smollm2" means the GGUF in $HK_MODEL_CACHE (default
 * ${XDG_CACHE_HOME:-$HOME/.cache}/hookformer), and exits 77 (a skip for meson) when absent. Eight name-swapped prompt pairs on one template:
 *   clean      "When Mary and John went to the store, John gave a drink to"   -> " Mary"
 *   corrupted  "When Mary and John went to the store, Mary gave a drink to"   -> " John"
 * (the second mention of the subject swapped for the indirect object, so the answer flips).
 * Metric: logit(" Mary") - logit(" John") at the last position, mean over the eight pairs (each
 * pair with its own names). Writes to OUT_DIR (default "."): ioi.h5 (every result),
 * ioi_resid_pre.svg (layer x position), ioi_head_out.svg (layer x head), ioi_dla.svg (direct
 * logit attribution per head and MLP); with --all also ioi_attn_out.svg and ioi_mlp_out.svg.
 * --quick (the test suite): only the last two layers' sweeps and the attribution.
 * docs/IOI.md reads the numbers. */
#include <hookformer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_PAIRS 8

static const char *const NAMES[N_PAIRS][2] = {
    {"Mary", "John"}, {"Tom", "James"}, {"Anna", "Paul"}, {"Sarah", "Mike"}, {"Kate", "David"},
    {"Lisa", "Mark"}, {"Emma", "Peter"}, {"John", "Mary"},
};
static const char *const TEMPLATE = "When %s and %s went to the store, %s gave a drink to";

static int fail(const char *what) {
    fprintf(stderr, "ioi: %s: %s\n", what, hk_last_error());
    return 1;
}

/* the single token of " Name" */
static int name_token(hk_model *m, const char *name, int32_t *out) {
    char buf[64];
    snprintf(buf, sizeof buf, " %s", name);
    int32_t *ids;
    size_t n;
    if (hk_model_encode(m, buf, strlen(buf), HK_BOS_NO, &ids, &n) != HK_OK) return fail("encode");
    if (n != 1) {
        fprintf(stderr, "ioi: '%s' is %zu tokens, expected 1\n", buf, n);
        hk_free(ids);
        return 1;
    }
    *out = ids[0];
    hk_free(ids);
    return 0;
}

static hk_status sweep(hk_model *m, const hk_prompt_set *bad, const int32_t *clean,
                       const char *point, bool per_pos, bool per_head, int64_t layer,
                       hk_sweep_result *r) {
    hk_sweep_spec spec = {point, per_pos, per_head, layer};
    hk_patch_opts o = {.clean = clean, .clean_seq = bad->seq};
    return hk_patch_sweep(m, bad, &o, &spec, r);
}

/* the three largest normalized effects of a sweep */
static void print_top(const hk_sweep_result *r, bool per_head, char **labels) {
    int64_t shown[3] = {-1, -1, -1};
    const int64_t inner = r->ndim > 1 ? r->shape[1] : 1;
    for (int k = 0; k < 3 && k < r->patches; k++) {
        int64_t best = -1;
        for (int64_t i = 0; i < r->patches; i++) {
            if (i == shown[0] || i == shown[1]) continue;
            if (best < 0 || fabsf(r->normalized[i]) > fabsf(r->normalized[best])) best = i;
        }
        shown[k] = best;
        printf("  layer %2lld %s %2lld %-10s %+.3f\n", (long long)(r->layer0 + best / inner),
               per_head ? "head" : "pos ", (long long)(best % inner),
               per_head ? "" : labels[best % inner], r->normalized[best]);
    }
}

/* position labels: the tokens of the first clean prompt, quoted */
static char **position_labels(const hk_model *m, const int32_t *ids, int64_t n) {
    const hk_tokenizer *tok = hk_model_tokenizer(m);
    char **l = calloc((size_t)n, sizeof *l);
    for (int64_t i = 0; l && i < n; i++) {
        char buf[64];
        l[i] = strdup(hk_tokenizer_token_display(tok, ids[i], buf, sizeof buf));
    }
    return l;
}

/* "smollm2": where scripts/fetch_models.sh puts the GGUF */
static const char *default_model(char *buf, size_t cap) {
    const char *cache = getenv("HK_MODEL_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (cache && cache[0])
        snprintf(buf, cap, "%s/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else if (xdg && xdg[0])
        snprintf(buf, cap, "%s/hookformer/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", xdg);
    else
        snprintf(buf, cap, "%s/.cache/hookformer/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                 home ? home : ".");
    return buf;
}

int main(int argc, char **argv) {
    const char *model = NULL, *out_dir = ".";
    bool quick = false, all = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--all")) all = true;
        else if (!model) model = argv[i];
        else out_dir = argv[i];
    }
    if (!model) {
        fprintf(stderr, "usage: ioi MODEL [OUT_DIR] [--quick | --all]\n");
        return 2;
    }
    char path_buf[1024];
    if (!strcmp(model, "smollm2")) {
        model = default_model(path_buf, sizeof path_buf);
        FILE *probe = fopen(model, "rb");
        if (!probe) {
            fprintf(stderr, "ioi: %s not found (scripts/fetch_models.sh smollm2): skipped\n",
                    model);
            return 77;
        }
        fclose(probe);
    }
    hk_model *m;
    if (hk_model_load(model, &m) != HK_OK) return fail("load");
    if (!hk_model_tokenizer(m)) {
        fprintf(stderr, "ioi: %s has no tokenizer\n", model);
        return 1;
    }
    /* prompts: clean with S2 = B (answer A), corrupted with S2 = A (answer B) */
    int32_t *clean = NULL, *bad = NULL, answer[N_PAIRS], wrong[N_PAIRS];
    int64_t T = 0;
    for (int i = 0; i < N_PAIRS; i++) {
        const char *A = NAMES[i][0], *B = NAMES[i][1];
        char text[256];
        int32_t *ids;
        size_t n;
        for (int c = 0; c < 2; c++) {
            snprintf(text, sizeof text, TEMPLATE, A, B, c == 0 ? B : A);
            if (hk_model_encode(m, text, strlen(text), HK_BOS_NO, &ids, &n) != HK_OK)
                return fail("encode");
            if (i == 0 && c == 0) {
                T = (int64_t)n;
                clean = malloc((size_t)(N_PAIRS * T) * sizeof *clean);
                bad = malloc((size_t)(N_PAIRS * T) * sizeof *bad);
            }
            if ((int64_t)n != T) {
                fprintf(stderr, "ioi: prompt '%s' has %zu tokens, the first %lld\n", text, n,
                        (long long)T);
                return 1;
            }
            memcpy((c == 0 ? clean : bad) + i * T, ids, n * sizeof *ids);
            hk_free(ids);
        }
        if (name_token(m, A, &answer[i]) || name_token(m, B, &wrong[i])) return 1;
    }
    char **labels = position_labels(m, clean, T);
    hk_prompt_set corrupted = {N_PAIRS, T, bad, answer, wrong};
    hk_prompt_set clean_set = {N_PAIRS, T, clean, answer, wrong};
    char path[1024];
    snprintf(path, sizeof path, "%s/ioi.h5", out_dir);
    hk_results *res;
    if (hk_results_create(path, true, m, "patch", &res) != HK_OK) return fail("results");
    hk_results_add_tokens(res, "clean_tokens", clean, N_PAIRS, T, (const char *const *)labels);
    hk_results_add_tokens(res, "corrupted_tokens", bad, N_PAIRS, T, NULL);

    const int64_t L = hk_model_n_layers(m);
    const struct {
        const char *name, *point;
        bool per_pos, per_head;
    } sweeps[4] = {
        {"resid_pre", "hook_resid_pre", true, false},
        {"attn_out", "hook_attn_out", true, false},
        {"mlp_out", "hook_mlp_out", true, false},
        {"head_out", "attn.hook_z", false, true},
    };
    for (int s = 0; s < 4; s++) {
        if (!all && s != 0 && s != 3) continue;
        hk_sweep_result r;
        for (int64_t layer = quick ? L - 2 : -1; layer < (quick ? L : 0); layer++) {
            if (sweep(m, &corrupted, clean, sweeps[s].point, sweeps[s].per_pos,
                      sweeps[s].per_head, layer, &r) != HK_OK)
                return fail(sweeps[s].name);
            if (layer == (quick ? L - 2 : -1))
                printf("%-9s clean %.3f corrupted %.3f (mean logit diff over %d pairs); %lld "
                       "patches in %lld forwards of %lld\n", sweeps[s].name, r.reference,
                       r.baseline, N_PAIRS, (long long)r.patches, (long long)r.forwards,
                       (long long)r.batch);
            print_top(&r, sweeps[s].per_head, labels);
            char name[64], title[160];
            snprintf(name, sizeof name, quick ? "%s_L%lld" : "%s", sweeps[s].name, (long long)layer);
            if (hk_results_add_sweep(res, name, &r) != HK_OK) return fail("write");
            snprintf(path, sizeof path, "%s/ioi_%s.svg", out_dir, name);
            snprintf(title, sizeof title, "IOI on SmolLM2-135M: patching %s, clean into corrupted "
                     "(normalized logit diff, %d pairs)", sweeps[s].name, N_PAIRS);
            if (hk_sweep_heatmap_svg(&r, (const char *const *)labels, true, title, path, true) !=
                HK_OK)
                return fail("svg");
            hk_sweep_result_free(&r);
        }
    }
    /* direct logit attribution on the clean prompts: which heads write the answer */
    hk_dla_result dla;
    if (hk_dla(m, &clean_set, &dla) != HK_OK) return fail("dla");
    hk_results_add_dla(res, "dla", &dla);
    {
        const int64_t H = dla.n_heads, C = H + 1, np = dla.n_prompts;
        float *v = malloc((size_t)(L * C) * sizeof *v);
        char **rl = calloc((size_t)L, sizeof *rl), **cl = calloc((size_t)C, sizeof *cl);
        char buf[32];
        for (int64_t l = 0; l < L; l++) {
            for (int64_t c = 0; c < C; c++) {
                int64_t comp = c < H ? l * H + c : L * H + l;
                double s = 0;
                for (int64_t i = 0; i < np; i++) s += dla.values[comp * np + i];
                v[l * C + c] = (float)(s / (double)np);
            }
            snprintf(buf, sizeof buf, "%lld", (long long)l);
            rl[l] = strdup(buf);
        }
        for (int64_t c = 0; c < C; c++) {
            if (c < H) snprintf(buf, sizeof buf, "H%lld", (long long)c);
            else snprintf(buf, sizeof buf, "MLP");
            cl[c] = strdup(buf);
        }
        char title[160];
        snprintf(title, sizeof title, "IOI on SmolLM2-135M: direct logit attribution of "
                 "logit(IO) - logit(S), mean over %d prompts", N_PAIRS);
        hk_heatmap hm = {.values = v, .rows = L, .cols = C,
                         .row_labels = (const char *const *)rl,
                         .col_labels = (const char *const *)cl,
                         .title = title,
                         .row_axis = "layer", .col_axis = "head (and the layer's MLP)",
                         .value_label = "logit diff", .diverging = true};
        snprintf(path, sizeof path, "%s/ioi_dla.svg", out_dir);
        if (hk_heatmap_svg(&hm, path, true) != HK_OK) return fail("svg");
        double total = 0;
        for (int64_t i = 0; i < np; i++) total += dla.total[i];
        printf("dla       logit diff %.3f (clean, mean); largest components:", total / (double)np);
        for (int k = 0; k < 5; k++) {
            int64_t best = 0;
            for (int64_t i = 1; i < L * C; i++)
                if (fabsf(v[i]) > fabsf(v[best])) best = i;
            printf(" L%lld%s%s %+.2f", (long long)(best / C), best % C < H ? "H" : " ",
                   best % C < H ? cl[best % C] + 1 : "MLP", v[best]);
            v[best] = 0;
        }
        putchar('\n');
        for (int64_t l = 0; l < L; l++) free(rl[l]);
        for (int64_t c = 0; c < C; c++) free(cl[c]);
        free(rl), free(cl), free(v);
    }
    hk_dla_result_free(&dla);
    if (hk_results_close(res) != HK_OK) return fail("results");
    for (int64_t i = 0; i < T; i++) free(labels[i]);
    free(labels), free(clean), free(bad);
    hk_model_free(m);
    return 0;
}
