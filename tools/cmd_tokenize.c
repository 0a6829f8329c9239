/* hookformer tokenize: text -> ids (with each token's text), or ids -> text, with a model
 * folder's tokenizer (and its BOS rule) or a tokenizer.json file. */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

#include "cli_opts.h"
#include "hookformer.h"
#include "prompt.h"

static const cli_opt tokenize_opts[] = {
    {"model", "DIR", "model folder: its tokenizer.json and the family's BOS rule"},
    {"tokenizer", "FILE", "a tokenizer.json (instead of --model; post-processor as written)"},
    CLI_OPTS_PROMPT,
    {"no-special", NULL, "with --tokenizer: no post-processor tokens ([CLS], <s>, ...)"},
    {"ids", NULL, "print only the ids, one line per prompt (what --tokens-file reads)"},
    {NULL, NULL, NULL},
};

static void print_ids(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", (int)ids[i]);
    printf("\n");
}

static int tokenize_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    const char *dir = cli_str(&a, "model"), *file = cli_str(&a, "tokenizer");
    if (!dir == !file)
        return cli_usage_error(&a, dir ? "give --model or --tokenizer, not both"
                                       : "missing required option --model (or --tokenizer FILE)");
    if (file && (cli_has(&a, "prepend-bos") || cli_has(&a, "no-prepend-bos")))
        return cli_usage_error(&a, "--%s needs --model (the BOS rule is the model family's); "
                                   "with --tokenizer the post-processor decides (--no-special "
                                   "turns it off)",
                               cli_has(&a, "prepend-bos") ? "prepend-bos" : "no-prepend-bos");
    if (dir && cli_has(&a, "no-special"))
        return cli_usage_error(&a, "--no-special goes with --tokenizer; with --model use "
                                   "--no-prepend-bos");
    cli_prompts prompts;
    if ((rc = cli_prompts_read(&a, &prompts))) {
        cli_prompts_free(&prompts);
        return rc;
    }
    hk_model *m = NULL;
    hk_tokenizer *own = NULL;
    const hk_tokenizer *t = NULL;
    hk_status st;
    if (dir) {
        if ((st = hk_model_load(dir, &m)) != HK_OK) {
            rc = cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                                   hk_status_name(st));
            goto done;
        }
        t = hk_model_tokenizer(m);
        if (!t) {
            rc = cli_runtime_error(&a, "model '%s' has no tokenizer: %s", dir,
                                   hk_model_tokenizer_note(m));
            goto done;
        }
        if (prompts.text && (rc = cli_prompts_encode(&a, m, dir, &prompts))) goto done;
    } else {
        if ((st = hk_tokenizer_load(file, &own)) != HK_OK) {
            rc = cli_runtime_error(&a, "cannot load tokenizer: %s (%s)", hk_last_error(),
                                   hk_status_name(st));
            goto done;
        }
        t = own;
        const unsigned flags = cli_has(&a, "no-special") ? 0 : HK_TOK_ADD_SPECIAL;
        for (size_t i = 0; prompts.text && i < prompts.n; i++) {
            cli_prompt *q = &prompts.v[i];
            if ((st = hk_tokenizer_encode(t, q->text, q->len, flags, &q->ids, &q->n))) {
                rc = cli_runtime_error(&a, "cannot encode: %s (%s)", hk_last_error(),
                                       hk_status_name(st));
                goto done;
            }
        }
    }
    for (size_t i = 0; i < prompts.n; i++) {
        const cli_prompt *q = &prompts.v[i];
        /* --ids prints exactly what --tokens-file reads (cache, embed): one line of ids per
         * prompt, nothing else; seq_id i in a store is line i + 1 */
        const bool ids_only = cli_has(&a, "ids") && prompts.text;
        if (prompts.n > 1 && !ids_only)
            printf("# prompt=%zu seq_id=%zu tokens=%zu\n", i + 1, i, q->n);
        if (ids_only && q->n == 0) {
            rc = cli_usage_error(&a, "--%s: prompt %zu ('%s') encodes to no tokens: --ids would "
                                     "print an empty line, which --tokens-file skips",
                                 cli_has(&a, "prompt") ? "prompt" : "prompts", i + 1, q->text);
            goto done;
        }
        if (!prompts.text) {
            /* ids -> text */
            for (size_t j = 0; j < q->n; j++)
                if (q->ids[j] >= hk_tokenizer_vocab_size(t)) {
                    rc = cli_usage_error(&a, "--tokens: id %d (item %zu) is past the "
                                             "tokenizer's %lld ids",
                                         q->ids[j], j + 1, (long long)hk_tokenizer_vocab_size(t));
                    goto done;
                }
            char *text;
            size_t len;
            if ((st = hk_tokenizer_decode(t, q->ids, q->n, 0, &text, &len))) {
                rc = cli_runtime_error(&a, "cannot decode: %s (%s)", hk_last_error(),
                                       hk_status_name(st));
                goto done;
            }
            fwrite(text, 1, len, stdout);
            fputc('\n', stdout);
            hk_free(text);
            continue;
        }
        print_ids(q->ids, q->n);
        if (cli_has(&a, "ids")) continue;
        for (size_t j = 0; j < q->n; j++) {
            char disp[256];
            printf("%6zu %8d  %s\n", j, (int)q->ids[j],
                   hk_tokenizer_token_display(t, q->ids[j], disp, sizeof disp));
        }
    }
    rc = CLI_EXIT_OK;
done:
    cli_prompts_free(&prompts);
    hk_tokenizer_free(own);
    if (m) hk_model_free(m);
    return rc;
}

const cli_command cmd_tokenize = {
    .name = "tokenize",
    .summary = "Encode text to token ids (with each token's text), or decode ids to text.",
    .usage = "(--model DIR | --tokenizer FILE) (--prompt TEXT | --prompts FILE | --tokens IDS)\n"
             "       [--[no-]prepend-bos] [--no-special] [--ids]",
    .description =
        "Text (--prompt, --prompts) prints the ids on one line, comma-separated, then one line\n"
        "per token: position, id, and the token's text quoted and escaped (Python repr style;\n"
        "bytes that are not whole characters as \\xNN). --ids prints the ids lines only, one\n"
        "per prompt and nothing else: what --tokens-file reads (cache, embed), line i + 1\n"
        "becoming seq_id i.\n"
        "--tokens IDS prints the decoded text instead. With --model the prompt is encoded as\n"
        "run and generate encode it (tokenizer.json of the folder, the family's BOS rule);\n"
        "with --tokenizer FILE as Hugging Face's Tokenizer.encode does (post-processor on,\n"
        "--no-special turns it off).\n"
        "\n" CLI_PROMPT_HELP "\n"
        "\n"
        "examples:\n"
        "  hookformer tokenize --tokenizer tokenizer.json --prompt 'Hello, world!'\n"
        "  hookformer tokenize --model M --tokens 1,2,3",
    .opts = tokenize_opts,
    .main = tokenize_main,
};
