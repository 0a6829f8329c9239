/* hookformer info: what a checkpoint is (family, architecture, canonical config, size). */
#include "commands.h"

#include <stdlib.h>

#include <cjson/cJSON.h>

#include "hookformer.h"

static const cli_opt info_opts[] = {
    {"model", "DIR",
     "Hugging Face checkpoint folder (config.json + *.safetensors) or a .gguf file; required"},
    {"json", NULL, "print one JSON object instead of text"},
    {NULL, NULL, NULL},
};

/* 134.5 M, 7.24 B, 950.0 K, 12; the bounds keep 999,990 from printing as "1000.0 K" */
static void human_count(int64_t n, char *buf, size_t cap) {
    if (n < 1000)
        snprintf(buf, cap, "%lld", (long long)n);
    else if (n < 999950)
        snprintf(buf, cap, "%.1f K", (double)n / 1e3);
    else if (n < 999950000)
        snprintf(buf, cap, "%.1f M", (double)n / 1e6);
    else
        snprintf(buf, cap, "%.2f B", (double)n / 1e9);
}

static const char *const special_names[4] = {"bos", "eos", "pad", "unk"};

static void print_tokenizer(const hk_model *m) {
    const hk_tokenizer *t = hk_model_tokenizer(m);
    if (!t) {
        printf("tokenizer:     none (%s)\n", hk_model_tokenizer_note(m));
        return;
    }
    printf("tokenizer:     %s, %lld ids", hk_tokenizer_kind(t),
           (long long)hk_tokenizer_vocab_size(t));
    for (int i = 0; i < 4; i++) {
        const int32_t id = hk_tokenizer_special_id(t, (hk_special_token)i);
        char disp[96];
        if (id >= 0)
            printf(", %s %s (%d)", special_names[i],
                   hk_tokenizer_token_display(t, id, disp, sizeof disp), id);
    }
    printf("\n");
    printf("prompts:       %s first by default (%s)\n",
           hk_model_default_prepend_bos(m) ? "BOS" : "no BOS",
           hk_tokenizer_adds_bos(t) ? "the tokenizer's post-processor adds it"
                                    : "TransformerLens's default_prepend_bos");
}

static cJSON *tokenizer_json(const hk_model *m) {
    const hk_tokenizer *t = hk_model_tokenizer(m);
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!t) {
        cJSON_AddNullToObject(o, "kind");
        cJSON_AddStringToObject(o, "note", hk_model_tokenizer_note(m));
        return o;
    }
    cJSON_AddStringToObject(o, "kind", hk_tokenizer_kind(t));
    cJSON_AddNumberToObject(o, "vocab_size", (double)hk_tokenizer_vocab_size(t));
    for (int i = 0; i < 4; i++) {
        const int32_t id = hk_tokenizer_special_id(t, (hk_special_token)i);
        if (id >= 0)
            cJSON_AddNumberToObject(o, special_names[i], id);
        else
            cJSON_AddNullToObject(o, special_names[i]);
    }
    cJSON_AddBoolToObject(o, "adds_bos", hk_tokenizer_adds_bos(t));
    cJSON_AddBoolToObject(o, "default_prepend_bos", hk_model_default_prepend_bos(m));
    return o;
}

static int info_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    const char *dir;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    const bool as_json = cli_has(&a, "json");

    hk_model *m = NULL;
    char *cfg_text = NULL;
    cJSON *cfg = NULL, *out = NULL;
    char *out_text = NULL;

    hk_status st = hk_model_load(dir, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        goto done;
    }
    st = hk_model_config_json(m, &cfg_text);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot describe model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        goto done;
    }
    cfg = cJSON_Parse(cfg_text);
    if (!cfg) {
        rc = cli_runtime_error(&a, "model '%s': the canonical config is not valid JSON", dir);
        goto done;
    }
    /* the HF architectures[0], carried by the canonical config */
    const cJSON *arch_item = cJSON_GetObjectItemCaseSensitive(cfg, "architecture");
    const char *arch = cJSON_IsString(arch_item) && arch_item->valuestring[0]
                           ? arch_item->valuestring
                           : NULL;

    const int64_t n_params = hk_model_n_params(m);
    char count[32];
    human_count(n_params, count, sizeof count);

    if (as_json) {
        out = cJSON_CreateObject();
        if (!out) goto oom;
        cJSON_AddStringToObject(out, "model", dir);
        cJSON_AddStringToObject(out, "family", hk_model_family(m));
        if (arch)
            cJSON_AddStringToObject(out, "architecture", arch);
        else
            cJSON_AddNullToObject(out, "architecture");
        cJSON_AddNumberToObject(out, "n_params", (double)n_params);
        cJSON_AddStringToObject(out, "n_params_human", count);
        cJSON_AddNumberToObject(out, "n_layers", (double)hk_model_n_layers(m));
        cJSON_AddNumberToObject(out, "d_model", (double)hk_model_d_model(m));
        cJSON_AddNumberToObject(out, "vocab_size", (double)hk_model_vocab_size(m));
        cJSON *tj = tokenizer_json(m);
        if (!tj) goto oom;
        cJSON_AddItemToObject(out, "tokenizer", tj);
        cJSON_AddItemToObject(out, "config", cfg);
        cfg = NULL;
        out_text = cJSON_Print(out);
        if (!out_text) goto oom;
        printf("%s\n", out_text);
    } else {
        out_text = cJSON_Print(cfg);
        if (!out_text) goto oom;
        printf("model:         %s\n", dir);
        printf("family:        %s\n", hk_model_family(m));
        printf("architecture:  %s\n", arch ? arch : "(unknown)");
        printf("parameters:    %s (%lld)\n", count, (long long)n_params);
        printf("layers:        %lld\n", (long long)hk_model_n_layers(m));
        printf("d_model:       %lld\n", (long long)hk_model_d_model(m));
        printf("vocab size:    %lld\n", (long long)hk_model_vocab_size(m));
        print_tokenizer(m);
        printf("canonical config:\n%s\n", out_text);
    }
    rc = CLI_EXIT_OK;
    goto done;

oom:
    rc = cli_runtime_error(&a, "out of memory while printing the config of '%s'", dir);
done:
    cJSON_free(out_text);
    cJSON_Delete(out);
    cJSON_Delete(cfg);
    if (cfg_text) hk_free(cfg_text);
    if (m) hk_model_free(m);
    return rc;
}

const cli_command cmd_info = {
    .name = "info",
    .summary = "Print a model's family, architecture, canonical config and parameter count.",
    .usage = "--model DIR [--json]",
    .description =
        "The canonical config is what the generic forward pass runs on: the family adapter's\n"
        "translation of the checkpoint's config.json (norm, positions, MLP, attention, ...).\n"
        "The tokenizer line says what tokenizer.json holds (or why there is none), its special\n"
        "tokens, and whether prompts get a BOS token first.\n"
        "\n"
        "example:\n"
        "  hookformer info --model tests/fixtures/gpt2 --json",
    .opts = info_opts,
    .main = info_main,
};
