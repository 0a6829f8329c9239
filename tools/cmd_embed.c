/* hookformer embed: sentence embeddings (pooled final hidden states) of token-id sequences,
 * batched together with right padding; printed, or written as a .npy file. */
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_opts.h"
#include "device.h"
#include "hookformer.h"
#include "out_path.h"
#include "plugins.h"

static const cli_opt embed_opts[] = {
    {"model", "DIR", "Hugging Face checkpoint folder (config.json + *.safetensors); required"},
    CLI_OPTS_DEVICE,
    {"tokens", "IDS", "one sequence of comma-separated token ids (repeat for more sequences)"},
    {"tokens-file", "FILE", "sequences of token ids, one a line (ids split by commas/spaces)"},
    {"prompt", "TEXT", "one text, encoded with the model's tokenizer (repeat for more)"},
    {"prompts", "FILE", "texts, one a line ('-': stdin; empty lines skipped); raw text"},
    {"pooling", "MODE", "model (default: the folder's 1_Pooling config, else mean), mean, cls, "
                        "max, mean_sqrt_len, last"},
    {"normalize", "WHEN", "model (default: as modules.json says), yes, no: L2-normalize"},
    {"out", "FILE", "write the embeddings as a float32 .npy [sequences, d_model] (not stdout)"},
    {"force", NULL, "overwrite --out if it exists"},
    CLI_OPT_PLUGIN,
    {NULL, NULL, NULL},
};

typedef struct {
    int32_t **ids; /* [n] sequences */
    int64_t *len;  /* [n] */
    size_t n, cap;
} seqs;

static void seqs_free(seqs *s) {
    for (size_t i = 0; i < s->n; i++) free(s->ids[i]);
    free(s->ids);
    free(s->len);
}

/* Parse "1,2,3" / "1 2 3" into a new sequence. Returns 0, or CLI_EXIT_USAGE after a message
 * naming `where`. An empty text is an error. */
static int parse_seq(const cli_args *a, const char *text, const char *where, seqs *s) {
    size_t cap = 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return cli_runtime_error(a, "out of memory");
    const char *p = text;
    for (;;) {
        p += strspn(p, " \t,\r\n");
        if (!*p) break;
        size_t len = strcspn(p, " \t,\r\n");
        char item[32];
        int64_t v;
        if (len >= sizeof item || (snprintf(item, sizeof item, "%.*s", (int)len, p),
                                   !cli_parse_int64(item, &v)) ||
            v < 0 || v > INT32_MAX) {
            free(ids);
            return cli_usage_error(a, "%s: expected token ids (integers >= 0), got '%.*s'",
                                   where, (int)len, p);
        }
        if (n == cap) {
            int32_t *grown = realloc(ids, 2 * cap * sizeof *ids);
            if (!grown) {
                free(ids);
                return cli_runtime_error(a, "out of memory");
            }
            ids = grown, cap *= 2;
        }
        ids[n++] = (int32_t)v;
        p += len;
    }
    if (n == 0) {
        free(ids);
        return cli_usage_error(a, "%s: an empty sequence", where);
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 16;
        int32_t **gi = realloc(s->ids, nc * sizeof *gi);
        if (gi) s->ids = gi;
        int64_t *gl = gi ? realloc(s->len, nc * sizeof *gl) : NULL;
        if (!gi || !gl) {
            free(ids);
            return cli_runtime_error(a, "out of memory");
        }
        s->len = gl, s->cap = nc;
    }
    s->ids[s->n] = ids;
    s->len[s->n++] = (int64_t)n;
    return 0;
}

static int read_tokens_file(const cli_args *a, const char *path, seqs *s) {
    FILE *f = fopen(path, "r");
    if (!f) return cli_runtime_error(a, "--tokens-file: cannot open '%s': %s", path,
                                     strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue; /* blank lines are skipped */
        char where[600];
        snprintf(where, sizeof where, "--tokens-file %s:%ld", path, lineno);
        rc = parse_seq(a, line, where, s);
    }
    free(line);
    fclose(f);
    return rc;
}

typedef struct {
    char **v; /* [n] NUL-terminated texts */
    size_t n, cap;
} texts;

static void texts_free(texts *t) {
    for (size_t i = 0; i < t->n; i++) free(t->v[i]);
    free(t->v);
}

static int add_text(const cli_args *a, texts *t, const char *s, size_t len) {
    if (t->n == t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 16;
        char **g = realloc(t->v, nc * sizeof *g);
        if (!g) return cli_runtime_error(a, "out of memory");
        t->v = g, t->cap = nc;
    }
    if (!(t->v[t->n] = strndup(s, len))) return cli_runtime_error(a, "out of memory");
    t->n++;
    return 0;
}

static int read_prompts_file(const cli_args *a, const char *path, texts *t) {
    bool std_in = strcmp(path, "-") == 0;
    FILE *f = std_in ? stdin : fopen(path, "r");
    if (!f) return cli_runtime_error(a, "--prompts %s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, before = t->n;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') len--;
        if (len && line[len - 1] == '\r') len--;
        if (len) rc = add_text(a, t, line, len);
    }
    free(line);
    if (!std_in) fclose(f);
    if (rc == 0 && t->n == before)
        rc = cli_usage_error(a, "--prompts %s: no text in it (every line is empty)", path);
    return rc;
}

/* Encode every text with the model's tokenizer, special tokens included ([CLS] .. [SEP] for
 * BERT: what sentence-transformers feeds the model), as more sequences. */
static int encode_texts(const cli_args *a, const hk_model *m, const char *dir, const texts *t,
                        seqs *s) {
    if (!t->n) return 0;
    const hk_tokenizer *tok = hk_model_tokenizer(m);
    if (!tok)
        return cli_runtime_error(a, "--prompt/--prompts need a tokenizer, and model '%s' has "
                                    "none: %s",
                                 dir, hk_model_tokenizer_note(m));
    for (size_t i = 0; i < t->n; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        hk_status st = hk_tokenizer_encode(tok, t->v[i], strlen(t->v[i]), HK_TOK_ADD_SPECIAL,
                                           &ids, &n);
        if (st != HK_OK)
            return cli_runtime_error(a, "text %zu: %s (%s)", i + 1, hk_last_error(),
                                     hk_status_name(st));
        if (n == 0) {
            hk_free(ids);
            return cli_usage_error(a, "text %zu encodes to no tokens", i + 1);
        }
        char where[64];
        snprintf(where, sizeof where, "text %zu", i + 1);
        /* through the same path as --tokens: "id,id,..." */
        size_t cap = n * 12 + 1, at = 0;
        char *csv = malloc(cap);
        if (!csv) {
            hk_free(ids);
            return cli_runtime_error(a, "out of memory");
        }
        for (size_t j = 0; j < n; j++)
            at += (size_t)snprintf(csv + at, cap - at, "%s%d", j ? "," : "", ids[j]);
        hk_free(ids);
        int rc = parse_seq(a, csv, where, s);
        free(csv);
        if (rc) return rc;
    }
    return 0;
}

static int parse_pooling(const cli_args *a, hk_pooling *out) {
    const char *v = cli_str(a, "pooling");
    *out = HK_POOL_MODEL;
    if (!v) return 0;
    for (int p = HK_POOL_MODEL; p <= HK_POOL_LAST; p++)
        if (strcmp(v, hk_pooling_name((hk_pooling)p)) == 0) {
            *out = (hk_pooling)p;
            return 0;
        }
    return cli_usage_error(a, "--pooling: expected model, mean, cls, max, mean_sqrt_len or "
                              "last, got '%s'", v);
}

static int parse_normalize(const cli_args *a, int *out) {
    const char *v = cli_str(a, "normalize");
    *out = -1;
    if (!v || strcmp(v, "model") == 0) return 0;
    if (strcmp(v, "yes") == 0) return *out = 1, 0;
    if (strcmp(v, "no") == 0) return *out = 0, 0;
    return cli_usage_error(a, "--normalize: expected model, yes or no, got '%s'", v);
}

/* float32 [n, d] as a NumPy .npy file (format 1.0: magic, header dict padded to 64 bytes). */
static int write_npy(const cli_args *a, const char *path, bool force, const float *x, size_t n,
                     size_t d) {
    FILE *f = fopen(path, force ? "wb" : "wbx");
    if (!f) return cli_runtime_error(a, "--out: cannot create '%s': %s%s", path, strerror(errno),
                                     errno == EEXIST ? " (use --force to overwrite)" : "");
    char header[128];
    int len = snprintf(header, sizeof header,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", n, d);
    size_t total = 10 + (size_t)len + 1, padded = (total + 63) / 64 * 64;
    memset(header + len, ' ', padded - total);
    header[len + (padded - total)] = '\n';
    uint16_t hlen = (uint16_t)(padded - 10);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    bool ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre &&
              fwrite(header, 1, padded - 10, f) == padded - 10 &&
              fwrite(x, sizeof *x, n * d, f) == n * d; /* x86/arm64 are little-endian */
    if (fclose(f) != 0) ok = false;
    if (!ok) return cli_runtime_error(a, "--out: writing '%s' failed: %s", path, strerror(errno));
    return 0;
}

static int embed_main(const cli_command *cmd, int argc, char **argv) {
    cli_args a;
    int rc;
    if (!cli_parse(&a, cmd, argc, argv, &rc)) return rc;
    if ((rc = cli_check_outputs(&a))) return rc; /* before any work */
    const char *dir;
    if ((rc = cli_require_str(&a, "model", &dir))) return rc;
    hk_load_opts load_opts;
    if ((rc = cli_load_opts(&a, &load_opts))) return rc;
    hk_pooling pooling;
    int normalize;
    if ((rc = parse_pooling(&a, &pooling)) || (rc = parse_normalize(&a, &normalize))) return rc;
    if (!cli_has(&a, "tokens") && !cli_has(&a, "tokens-file") && !cli_has(&a, "prompt") &&
        !cli_has(&a, "prompts"))
        return cli_usage_error(&a, "give the sequences with --tokens IDS / --prompt TEXT "
                                   "(repeatable), --tokens-file FILE or --prompts FILE");
    cli_plugins plugins;
    if ((rc = cli_plugins_read(&a, &plugins))) return rc;
    seqs s = {0};
    texts tx = {0};
    const char *items[CLI_MAX_VALUES];
    size_t n_items = cli_strs(&a, "tokens", items, CLI_MAX_VALUES);
    for (size_t i = 0; i < n_items && rc == 0; i++) rc = parse_seq(&a, items[i], "--tokens", &s);
    if (rc == 0 && cli_has(&a, "tokens-file"))
        rc = read_tokens_file(&a, cli_str(&a, "tokens-file"), &s);
    if (rc == 0 && cli_has(&a, "tokens-file") && s.n == n_items)
        rc = cli_usage_error(&a, "--tokens-file: no sequences");
    n_items = cli_strs(&a, "prompt", items, CLI_MAX_VALUES);
    for (size_t i = 0; i < n_items && rc == 0; i++)
        rc = add_text(&a, &tx, items[i], strlen(items[i]));
    if (rc == 0 && cli_has(&a, "prompts"))
        rc = read_prompts_file(&a, cli_str(&a, "prompts"), &tx);
    if (rc) {
        seqs_free(&s);
        texts_free(&tx);
        return rc;
    }

    hk_model *m = NULL;
    hk_hooks *hooks = NULL; /* --plugin: the plugins' hooks fire in the forward */
    int32_t *batch = NULL;
    float *out = NULL;
    hk_status st = hk_model_load_opts(dir, &load_opts, &m);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                               hk_status_name(st));
        goto done;
    }
    if ((rc = encode_texts(&a, m, dir, &tx, &s))) goto done;
    int64_t T = 0, d = hk_model_d_model(m);
    for (size_t i = 0; i < s.n; i++)
        if (s.len[i] > T) T = s.len[i];
    batch = calloc(s.n * (size_t)T, sizeof *batch); /* [n, T] right-padded with 0 */
    out = malloc(s.n * (size_t)d * sizeof *out);    /* [n, d_model] */
    if (!batch || !out) {
        rc = cli_runtime_error(&a, "out of memory for %zu sequences of %lld tokens", s.n,
                               (long long)T);
        goto done;
    }
    for (size_t i = 0; i < s.n; i++)
        memcpy(batch + i * (size_t)T, s.ids[i], (size_t)s.len[i] * sizeof *batch);
    if ((rc = cli_plugins_start(&a, &plugins, m, &hooks)) ||
        (rc = cli_plugins_begin_run(&a, &plugins, batch, s.len, (int64_t)s.n, T)))
        goto done;
    st = hk_model_embed(m, hooks, batch, NULL, s.len, (int64_t)s.n, T, pooling, normalize, out);
    if (st != HK_OK) {
        rc = cli_runtime_error(&a, "%s (%s)", hk_last_error(), hk_status_name(st));
        goto done;
    }
    bool model_norm;
    hk_pooling model_pool = hk_model_pooling(m, &model_norm);
    hk_pooling used = pooling == HK_POOL_MODEL ? model_pool : pooling;
    bool l2 = normalize == -1 ? model_norm : normalize == 1;
    if (cli_has(&a, "out")) {
        rc = write_npy(&a, cli_str(&a, "out"), cli_has(&a, "force"), out, s.n, (size_t)d);
        if (rc == 0)
            printf("# model=%s family=%s sequences=%zu d_model=%lld pooling=%s normalize=%s: "
                   "wrote %s\n",
                   dir, hk_model_family(m), s.n, (long long)d, hk_pooling_name(used),
                   l2 ? "yes" : "no", cli_str(&a, "out"));
        goto done;
    }
    printf("# model=%s family=%s sequences=%zu d_model=%lld pooling=%s normalize=%s\n", dir,
           hk_model_family(m), s.n, (long long)d, hk_pooling_name(used), l2 ? "yes" : "no");
    for (size_t i = 0; i < s.n; i++) {
        printf("%zu", i);
        for (int64_t j = 0; j < d; j++) printf(" %.8g", out[i * (size_t)d + (size_t)j]);
        printf("\n");
    }
done:
    rc = cli_plugins_finish(&a, &plugins, rc);
    hk_hooks_free(hooks);
    free(out);
    free(batch);
    hk_model_free(m);
    seqs_free(&s);
    texts_free(&tx);
    return rc;
}

const cli_command cmd_embed = {
    .name = "embed",
    .summary = "Sentence embeddings: a model's pooled final hidden states.",
    .usage = "--model DIR (--tokens IDS ... | --tokens-file FILE | --prompt TEXT ... | "
             "--prompts FILE) [--pooling MODE] [--normalize WHEN] [--out FILE.npy]\n"
             "       [--plugin SPEC]...",
    .description =
        "Runs every sequence in one right-padded batch and pools each one's final hidden\n"
        "states over its own tokens (padding never counts). For a sentence-transformers folder\n"
        "(modules.json, 1_Pooling/config.json) the defaults are its pooling and its Normalize\n"
        "module, so the output is what sentence-transformers' encode() gives for the same ids\n"
        "(all-MiniLM-L6-v2: mean pooling, L2-normalized). Text (--prompt, --prompts) is\n"
        "encoded with the folder's tokenizer.json, special tokens included ([CLS] .. [SEP]).\n"
        "Sequences come in this order: --tokens, --tokens-file, --prompt, --prompts.\n"
        "Works for decoders too (e.g. --pooling last). Prints one line per sequence: its\n"
        "index and d_model numbers;\n"
        "--out writes a float32 .npy [sequences, d_model] instead (numpy.load reads it).\n"
        "--plugin (repeatable) loads a plugin whose hooks run in the forward (an intervention\n"
        "the embeddings are then taken under).\n"
        "\n"
        "example:\n"
        "  hookformer embed --model ~/.cache/hookformer/minilm --prompt 'hello world' \\\n"
        "      --prompt 'A man is eating food.' --out emb.npy",
    .opts = embed_opts,
    .main = embed_main,
};
