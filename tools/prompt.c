#include "prompt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hk_bos_mode cli_bos_mode(const cli_args *a) {
    if (cli_has(a, "prepend-bos")) return HK_BOS_YES;
    if (cli_has(a, "no-prepend-bos")) return HK_BOS_NO;
    return HK_BOS_DEFAULT;
}

static int add_text(const cli_args *a, cli_prompts *p, const char *s, size_t len) {
    cli_prompt *v = realloc(p->v, (p->n + 1) * sizeof *v);
    char *t = malloc(len + 1);
    if (!v || !t) {
        free(t);
        if (v) p->v = v;
        return cli_runtime_error(a, "out of memory reading the prompts");
    }
    p->v = v;
    memcpy(t, s, len);
    t[len] = '\0';
    p->v[p->n++] = (cli_prompt){t, len, NULL, 0};
    return 0;
}

int cli_prompts_read_file(const cli_args *a, const char *path, cli_prompts *p) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return cli_runtime_error(a, "--prompts %s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') len--;
        if (len && line[len - 1] == '\r') len--;
        if (len) rc = add_text(a, p, line, len);
    }
    const bool err = ferror(f);
    free(line);
    if (f != stdin) fclose(f);
    if (rc) return rc;
    if (err) return cli_runtime_error(a, "--prompts %s: read error", path);
    if (!p->n)
        return cli_usage_error(a, "--prompts %s: no prompt in it (every line is empty)", path);
    return 0;
}

int cli_prompts_read(const cli_args *a, cli_prompts *out) {
    memset(out, 0, sizeof *out);
    const int given = cli_has(a, "tokens") + cli_has(a, "prompt") + cli_has(a, "prompts");
    if (given == 0)
        return cli_usage_error(a, "missing required option --tokens (or --prompt TEXT, or "
                                  "--prompts FILE)");
    if (given > 1)
        return cli_usage_error(a, "give one of --tokens, --prompt and --prompts, not %s",
                               given == 3 ? "all three" : "two");
    if (cli_has(a, "prepend-bos") && cli_has(a, "no-prepend-bos"))
        return cli_usage_error(a, "--prepend-bos and --no-prepend-bos contradict each other");
    if (cli_has(a, "tokens")) {
        int64_t *ids;
        size_t n;
        int rc = cli_int_list(a, "tokens", 0, INT32_MAX, &ids, &n);
        if (rc) return rc;
        out->v = calloc(1, sizeof *out->v);
        int32_t *v = malloc(n * sizeof *v);
        if (!out->v || !v) {
            free(ids);
            free(v);
            return cli_runtime_error(a, "out of memory for %zu ids", n);
        }
        for (size_t i = 0; i < n; i++) v[i] = (int32_t)ids[i];
        free(ids);
        out->v[0].ids = v;
        out->v[0].n = n;
        out->n = 1;
        return 0;
    }
    out->text = true;
    if (cli_has(a, "prompt")) {
        const char *s = cli_str(a, "prompt");
        return add_text(a, out, s, strlen(s));
    }
    const char *path = cli_str(a, "prompts");
    if (!path || !*path) return cli_usage_error(a, "--prompts: expected a file name, got ''");
    return cli_prompts_read_file(a, path, out);
}

int cli_prompts_encode(const cli_args *a, const hk_model *m, const char *dir, cli_prompts *p) {
    const int64_t vocab = hk_model_vocab_size(m);
    const hk_bos_mode bos = cli_bos_mode(a);
    for (size_t i = 0; i < p->n; i++) {
        cli_prompt *q = &p->v[i];
        if (q->text) {
            free(q->ids);
            q->ids = NULL;
            hk_status st = hk_model_encode(m, q->text, q->len, bos, &q->ids, &q->n);
            if (st != HK_OK)
                return cli_runtime_error(a, "cannot encode the prompt: %s (%s)", hk_last_error(),
                                         hk_status_name(st));
            if (q->n == 0)
                return cli_usage_error(a, "%s %zu encodes to no tokens (and no BOS token was "
                                          "added)",
                                       cli_has(a, "prompts") ? "--prompts: line" : "--prompt",
                                       i + 1);
        }
        for (size_t j = 0; j < q->n; j++) {
            if (q->ids[j] >= vocab) {
                if (!q->text)
                    return cli_usage_error(a, "--tokens: token id %lld (item %zu) is out of "
                                              "range: the model's vocab size is %lld, so ids "
                                              "must be in [0, %lld]",
                                           (long long)q->ids[j], j + 1, (long long)vocab,
                                           (long long)vocab - 1);
                return cli_runtime_error(a, "%s: the tokenizer gave id %lld, past the model's "
                                            "vocab size %lld: tokenizer.json and the checkpoint "
                                            "do not match",
                                         dir, (long long)q->ids[j], (long long)vocab);
            }
        }
    }
    return 0;
}

size_t cli_prompts_max_len(const cli_prompts *p) {
    size_t mx = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].n > mx) mx = p->v[i].n;
    return mx;
}

void cli_prompts_free(cli_prompts *p) {
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].text);
        free(p->v[i].ids);
    }
    free(p->v);
    memset(p, 0, sizeof *p);
}

const char *cli_token_display(const hk_model *m, int32_t id, char *buf, size_t cap) {
    const hk_tokenizer *t = hk_model_tokenizer(m);
    if (!t) {
        if (cap) buf[0] = '\0';
        return buf;
    }
    return hk_tokenizer_token_display(t, id, buf, cap);
}
