/* Shared pieces of the experiment commands (see xp_common.h). */
#include "xp_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "text_cell.h"

int xp_parse_id_list(const cli_args *a, const char *opt, const char *s, int32_t **out,
                     int64_t *n) {
    *out = NULL;
    *n = 0;
    int64_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return cli_runtime_error(a, "--%s: out of memory", opt);
    const char *p = s;
    for (int64_t i = 0; i < cap; i++) {
        size_t len = strcspn(p, ",");
        char buf[32];
        int64_t v;
        if (len == 0 || len >= sizeof buf) {
            free(ids);
            return cli_usage_error(a, "--%s: expected a comma-separated list of token ids, got "
                                      "'%s' (item %lld is %s)", opt, s, (long long)(i + 1),
                                   len ? "too long" : "empty");
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (!cli_parse_int64(buf, &v) || v < 0 || v > INT32_MAX) {
            free(ids);
            return cli_usage_error(a, "--%s: expected non-negative token ids, got '%s' in '%s'",
                                   opt, buf, s);
        }
        ids[i] = (int32_t)v;
        p += len + (p[len] == ',');
    }
    *out = ids;
    *n = cap;
    return 0;
}

int xp_parse_prompts(const cli_args *a, const char *opt, xp_prompts *out) {
    memset(out, 0, sizeof *out);
    const char *vals[CLI_MAX_VALUES];
    size_t n = cli_strs(a, opt, vals, CLI_MAX_VALUES);
    if (n == 0) return cli_usage_error(a, "missing required option --%s", opt);
    if (n > CLI_MAX_VALUES)
        return cli_usage_error(a, "--%s: at most %d prompts", opt, CLI_MAX_VALUES);
    int rc;
    for (size_t i = 0; i < n; i++) {
        int32_t *ids;
        int64_t len;
        if ((rc = xp_parse_id_list(a, opt, vals[i], &ids, &len))) {
            free(out->ids);
            return rc;
        }
        if (i == 0) {
            out->seq = len;
            out->ids = malloc((size_t)((int64_t)n * len) * sizeof *out->ids);
            if (!out->ids) {
                free(ids);
                return cli_runtime_error(a, "--%s: out of memory", opt);
            }
        } else if (len != out->seq) {
            free(ids);
            free(out->ids);
            out->ids = NULL;
            return cli_usage_error(a, "--%s: every prompt needs the same number of tokens: "
                                      "prompt 1 has %lld, prompt %zu has %lld", opt,
                                   (long long)out->seq, i + 1, (long long)len);
        }
        memcpy(out->ids + (int64_t)i * len, ids, (size_t)len * sizeof *ids);
        free(ids);
    }
    out->n = (int64_t)n;
    return 0;
}

int xp_parse_ids(const cli_args *a, const char *opt, int64_t n, int32_t **out) {
    const char *v = cli_str(a, opt);
    *out = NULL;
    if (!v) return cli_usage_error(a, "missing required option --%s", opt);
    int32_t *ids;
    int64_t k;
    int rc = xp_parse_id_list(a, opt, v, &ids, &k);
    if (rc) return rc;
    if (k != n && k != 1) {
        free(ids);
        return cli_usage_error(a, "--%s: expected one id per prompt (%lld) or one for all, got "
                                  "%lld", opt, (long long)n, (long long)k);
    }
    if (k == 1 && n > 1) {
        int32_t *all = malloc((size_t)n * sizeof *all);
        if (!all) {
            free(ids);
            return cli_runtime_error(a, "--%s: out of memory", opt);
        }
        for (int64_t i = 0; i < n; i++) all[i] = ids[0];
        free(ids);
        ids = all;
    }
    *out = ids;
    return 0;
}

/* one token's label into buf */
static void xp_token_labels_one(const hk_model *m, int32_t id, char *buf, size_t cap) {
    const hk_tokenizer *tok = m ? hk_model_tokenizer(m) : NULL;
    if (tok) /* the token's text, quoted as Python's repr (' Mary') */
        hk_tokenizer_token_display(tok, id, buf, cap);
    else
        snprintf(buf, cap, "%d", id);
}

char **xp_token_labels(const hk_model *m, const int32_t *ids, int64_t n) {
    char **out = calloc((size_t)n, sizeof *out);
    for (int64_t i = 0; out && i < n; i++) {
        char buf[64];
        xp_token_labels_one(m, ids[i], buf, sizeof buf);
        if (!(out[i] = strdup(buf))) {
            xp_free_labels(out, i);
            return NULL;
        }
    }
    return out;
}

void xp_free_labels(char **labels, int64_t n) {
    for (int64_t i = 0; labels && i < n; i++) free(labels[i]);
    free(labels);
}

char **xp_pair_labels(const hk_model *m, const int32_t *clean, const int32_t *bad, int64_t seq,
                      const int64_t *map) {
    char **out = calloc((size_t)seq, sizeof *out);
    for (int64_t t = 0; out && t < seq; t++) {
        const int64_t c = map ? map[t] : t;
        char cb[64], bb[64], buf[140];
        xp_token_labels_one(m, bad[t], bb, sizeof bb);
        if (c >= 0 && clean[c] == bad[t]) {
            snprintf(buf, sizeof buf, "%s", bb);
        } else {
            if (c >= 0) xp_token_labels_one(m, clean[c], cb, sizeof cb);
            snprintf(buf, sizeof buf, "%s/%s", c >= 0 ? cb : "-", bb);
        }
        if (!(out[t] = strdup(buf))) {
            xp_free_labels(out, t);
            return NULL;
        }
    }
    return out;
}

void xp_prompt_summary(const hk_model *m, const int32_t *ids, int64_t n, char *buf, size_t cap) {
    const hk_tokenizer *tok = m ? hk_model_tokenizer(m) : NULL;
    char *text = NULL;
    size_t len = 0, used = 0;
    if (cap == 0) return;
    buf[0] = '\0';
    if (!tok || hk_tokenizer_decode(tok, ids, (size_t)n, 0, &text, &len) != HK_OK) {
        hk_free(text);
        for (int64_t i = 0; i < n; i++) {
            if (used + 16 >= cap) { /* no room for another id: an ellipsis */
                if (used + 4 <= cap) snprintf(buf + used, cap - used, "\xE2\x80\xA6");
                break;
            }
            used += (size_t)snprintf(buf + used, cap - used, "%s%d", i ? "," : "", ids[i]);
        }
        return;
    }
    /* room for the quotes, an ellipsis and the NUL */
    const size_t room = cap > 8 ? cap - 6 : 0;
    buf[used++] = '\'';
    bool cut = false;
    for (size_t i = 0; i < len && room;) {
        unsigned char c = (unsigned char)text[i];
        char esc[8];
        size_t k = 1;
        if (c == '\n') snprintf(esc, sizeof esc, "\\n");
        else if (c == '\t') snprintf(esc, sizeof esc, "\\t");
        else if (c == '\\' || c == '\'') snprintf(esc, sizeof esc, "\\%c", c);
        else if (c < 0x20 || c == 0x7f) snprintf(esc, sizeof esc, "\\x%02x", c);
        else { /* one whole UTF-8 character */
            while (i + k < len && ((unsigned char)text[i + k] & 0xC0) == 0x80 && k < 4) k++;
            memcpy(esc, text + i, k);
            esc[k] = '\0';
        }
        if (used + strlen(esc) > room) {
            cut = true;
            break;
        }
        memcpy(buf + used, esc, strlen(esc));
        used += strlen(esc);
        i += k;
    }
    hk_free(text);
    snprintf(buf + used, cap - used, "%s'", cut ? "\xE2\x80\xA6" : "");
}

void xp_metric_summary(const hk_model *m, const int32_t *answer, const int32_t *wrong,
                       int64_t n, char *buf, size_t cap) {
    bool same = true;
    for (int64_t i = 1; i < n; i++) same = same && answer[i] == answer[0] && wrong[i] == wrong[0];
    char a[64], w[64];
    xp_token_labels_one(m, answer[0], a, sizeof a);
    xp_token_labels_one(m, wrong[0], w, sizeof w);
    if (same)
        snprintf(buf, cap, "logit[%s] - logit[%s] at the last position%s", a, w,
                 n > 1 ? ", mean over prompts" : "");
    else
        snprintf(buf, cap, "logit[answer] - logit[wrong] at the last position, mean over %lld "
                           "prompts (prompt 1: %s, %s)", (long long)n, a, w);
}

void xp_print_token_texts(FILE *f, const char *indent, const hk_model *m, const int32_t *ids,
                          int64_t n) {
    const hk_tokenizer *tok = m ? hk_model_tokenizer(m) : NULL;
    if (!tok) return;
    fputs(indent, f);
    for (int64_t i = 0; i < n; i++) {
        char buf[96];
        fprintf(f, "%s%s", i ? " " : "", hk_tokenizer_token_display(tok, ids[i], buf, sizeof buf));
    }
    fputc('\n', f);
}

bool xp_sweep_by_name(const char *name, hk_sweep_spec *out) {
    return hk_sweep_by_name(name, out) == HK_OK;
}

void xp_print_sweep(FILE *f, const char *name, const hk_sweep_result *r,
                    char *const *pos_labels) {
    const float *v = r->normalized ? r->normalized : r->change;
    const char *what = r->normalized ? "normalized (patched - corrupted) / (clean - corrupted)"
                                     : "change of the metric";
    fprintf(f, "## %s: %s [", name, r->point);
    for (int d = 0; d < r->ndim; d++)
        fprintf(f, "%s%s %lld", d ? " x " : "", r->dims[d], (long long)r->shape[d]);
    fprintf(f, "], %lld patches in %lld forwards (%lld per forward)\n", (long long)r->patches,
            (long long)r->forwards, (long long)r->batch);
    const bool has_pos = r->ndim >= 2 && strcmp(r->dims[1], "pos") == 0;
    const int64_t cols = r->ndim == 2 ? r->shape[1] : 0;
    if (r->ndim == 2 && cols <= 24) {
        fprintf(f, "%s; rows: layers, columns: %s\n", what, has_pos ? "positions" : "heads");
        fprintf(f, "%6s", has_pos ? "pos" : "head");
        for (int64_t c = 0; c < cols; c++) {
            if (has_pos && pos_labels) text_cell_print(f, pos_labels[c], 7);
            else fprintf(f, " %7lld", (long long)c);
        }
        fprintf(f, "\n%6s\n", "layer");
        for (int64_t l = 0; l < r->shape[0]; l++) {
            fprintf(f, "%6lld", (long long)(r->layer0 + l));
            for (int64_t c = 0; c < cols; c++) {
                float x = v[l * cols + c];
                fprintf(f, " %7.3f", fabsf(x) < 5e-4f ? 0.0f : x); /* no "-0.000" */
            }
            fputc('\n', f);
        }
        return;
    }
    /* the 10 largest |v| */
    fprintf(f, "largest |%s|:\n", what);
    int64_t n = r->patches, shown[10];
    int k = 0;
    for (; k < 10 && k < n; k++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++) {
            bool used = false;
            for (int j = 0; j < k; j++) used |= shown[j] == i;
            if (!used && (best < 0 || fabsf(v[i]) > fabsf(v[best]))) best = i;
        }
        shown[k] = best;
        int64_t rem = best, idx[3];
        for (int d = r->ndim - 1; d >= 0; d--) {
            idx[d] = rem % r->shape[d];
            rem /= r->shape[d];
        }
        fprintf(f, "  layer %lld", (long long)(r->layer0 + idx[0]));
        for (int d = 1; d < r->ndim; d++) {
            if (strcmp(r->dims[d], "pos") == 0)
                fprintf(f, "  pos %lld (%s)", (long long)idx[d],
                        pos_labels ? pos_labels[idx[d]] : "");
            else
                fprintf(f, "  head %lld", (long long)idx[d]);
        }
        fprintf(f, "  %+.4f\n", v[best]);
    }
}

/* ---- text forms: encoded once the model (and its tokenizer) is loaded ---- */

static int both_forms(const cli_args *a, const char *ids_opt, const char *t1, const char *t2) {
    const bool text = (t1 && cli_has(a, t1)) || (t2 && cli_has(a, t2));
    if (cli_has(a, ids_opt) && text)
        return cli_usage_error(a, "give --%s IDS or --%s TEXT, not both", ids_opt,
                               t1 && cli_has(a, t1) ? t1 : t2);
    if (t1 && t2 && cli_has(a, t1) && cli_has(a, t2))
        return cli_usage_error(a, "give --%s TEXT or --%s FILE, not both", t1, t2);
    if (cli_has(a, "prepend-bos") && cli_has(a, "no-prepend-bos"))
        return cli_usage_error(a, "--prepend-bos and --no-prepend-bos contradict each other");
    return 0;
}

static int add_texts(const cli_args *a, const char *opt, cli_prompts *p) {
    const char *vals[CLI_MAX_VALUES];
    size_t n = cli_strs(a, opt, vals, CLI_MAX_VALUES);
    for (size_t i = 0; i < n && i < CLI_MAX_VALUES; i++) {
        cli_prompt *v = realloc(p->v, (p->n + 1) * sizeof *v);
        if (v) p->v = v;
        char *t = v ? strdup(vals[i]) : NULL;
        if (!t) return cli_runtime_error(a, "--%s: out of memory", opt);
        p->v[p->n++] = (cli_prompt){t, strlen(t), NULL, 0};
    }
    return 0;
}

int xp_prompts_read(const cli_args *a, const char *ids_opt, const char *text_opt,
                    const char *file_opt, bool required, xp_prompts *out) {
    memset(out, 0, sizeof *out);
    out->opt = ids_opt;
    int rc = both_forms(a, ids_opt, text_opt, file_opt);
    if (rc) return rc;
    const bool text = text_opt && cli_has(a, text_opt);
    const bool file = file_opt && cli_has(a, file_opt);
    if (!text && !file) {
        if (!cli_has(a, ids_opt) && !required) return 0;
        if (!cli_has(a, ids_opt))
            return cli_usage_error(a, "missing required option --%s IDS (or --%s TEXT%s%s%s)",
                                   ids_opt, text_opt, file_opt ? ", or --" : "",
                                   file_opt ? file_opt : "", file_opt ? " FILE" : "");
        rc = xp_parse_prompts(a, ids_opt, out);
        out->opt = ids_opt;
        return rc;
    }
    out->opt = text ? text_opt : file_opt;
    out->text.text = true;
    if (text) rc = add_texts(a, text_opt, &out->text);
    else rc = cli_prompts_read_file(a, cli_str(a, file_opt), &out->text);
    if (!rc && out->text.n > CLI_MAX_VALUES)
        rc = cli_usage_error(a, "--%s: at most %d prompts", out->opt, CLI_MAX_VALUES);
    out->n = (int64_t)out->text.n;
    return rc;
}

/* the model's tokenizer, or an error naming the option and the folder */
static int need_tokenizer(const cli_args *a, const hk_model *m, const char *opt) {
    if (hk_model_tokenizer(m)) return 0;
    return cli_runtime_error(a, "--%s needs the model's tokenizer: %s", opt,
                             hk_model_tokenizer_note(m));
}

int xp_prompts_encode(const cli_args *a, const hk_model *m, xp_prompts *p) {
    if (!p->text.text || p->ids) return 0;
    int rc = need_tokenizer(a, m, p->opt);
    if (rc) return rc;
    const int64_t vocab = hk_model_vocab_size(m);
    const hk_bos_mode bos = cli_bos_mode(a);
    for (size_t i = 0; i < p->text.n; i++) {
        cli_prompt *q = &p->text.v[i];
        hk_status st = hk_model_encode(m, q->text, q->len, bos, &q->ids, &q->n);
        if (st != HK_OK)
            return cli_runtime_error(a, "--%s '%s': cannot encode: %s (%s)", p->opt, q->text,
                                     hk_last_error(), hk_status_name(st));
        if (q->n == 0)
            return cli_usage_error(a, "--%s '%s' encodes to no tokens", p->opt, q->text);
        if (i > 0 && (int64_t)q->n != p->seq)
            return cli_usage_error(a, "--%s: every prompt needs the same number of tokens: "
                                      "'%s' gives %lld, '%s' gives %zu", p->opt,
                                   p->text.v[0].text, (long long)p->seq, q->text, q->n);
        p->seq = (int64_t)q->n;
        for (size_t j = 0; j < q->n; j++)
            if (q->ids[j] >= vocab)
                return cli_runtime_error(a, "--%s: the tokenizer gave id %d, past the model's "
                                            "vocab size %lld: tokenizer.json and the checkpoint "
                                            "do not match", p->opt, q->ids[j], (long long)vocab);
    }
    p->ids = malloc((size_t)(p->n * p->seq) * sizeof *p->ids);
    if (!p->ids) return cli_runtime_error(a, "--%s: out of memory", p->opt);
    for (int64_t i = 0; i < p->n; i++)
        memcpy(p->ids + i * p->seq, p->text.v[i].ids, (size_t)p->seq * sizeof *p->ids);
    return 0;
}

void xp_prompts_free(xp_prompts *p) {
    free(p->ids);
    cli_prompts_free(&p->text);
    memset(p, 0, sizeof *p);
}

int xp_answers_read(const cli_args *a, const char *ids_opt, const char *text_opt, int64_t n,
                    xp_answers *out) {
    memset(out, 0, sizeof *out);
    out->ids_opt = ids_opt;
    out->text_opt = text_opt;
    out->n = n;
    int rc = both_forms(a, ids_opt, text_opt, NULL);
    if (rc) return rc;
    if (!cli_has(a, text_opt)) return xp_parse_ids(a, ids_opt, n, &out->ids);
    const char *vals[CLI_MAX_VALUES];
    size_t k = cli_strs(a, text_opt, vals, CLI_MAX_VALUES);
    if ((int64_t)k != n && k != 1)
        return cli_usage_error(a, "--%s: expected one text per prompt (%lld) or one for all, "
                                  "got %zu", text_opt, (long long)n, k);
    return 0;
}

int xp_answers_encode(const cli_args *a, const hk_model *m, xp_answers *ans) {
    if (ans->ids) return 0;
    int rc = need_tokenizer(a, m, ans->text_opt);
    if (rc) return rc;
    const char *vals[CLI_MAX_VALUES];
    size_t k = cli_strs(a, ans->text_opt, vals, CLI_MAX_VALUES);
    int32_t *ids = malloc((size_t)ans->n * sizeof *ids);
    if (!ids) return cli_runtime_error(a, "--%s: out of memory", ans->text_opt);
    for (size_t i = 0; i < k; i++) {
        int32_t *t = NULL;
        size_t nt = 0;
        hk_status st = hk_tokenizer_encode(hk_model_tokenizer(m), vals[i], strlen(vals[i]), 0,
                                           &t, &nt);
        if (st != HK_OK) {
            free(ids);
            return cli_runtime_error(a, "--%s '%s': cannot encode: %s (%s)", ans->text_opt,
                                     vals[i], hk_last_error(), hk_status_name(st));
        }
        if (nt != 1) {
            char list[256] = "";
            size_t used = 0;
            for (size_t j = 0; j < nt && used < sizeof list - 16; j++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", j ? "," : "",
                                         t[j]);
            hk_free(t);
            free(ids);
            return cli_usage_error(a, "--%s '%s' must be exactly one token, it encodes to %zu "
                                      "(%s)", ans->text_opt, vals[i], nt, nt ? list : "none");
        }
        ids[i] = t[0];
        hk_free(t);
    }
    for (int64_t i = (int64_t)k; i < ans->n; i++) ids[i] = ids[0];
    ans->ids = ids;
    return 0;
}

hk_status xp_sweep_outputs(const cli_args *a, const char *name, const hk_sweep_result *r,
                           const hk_sweep_result *shown, char *const *labels,
                           char *const *svg_labels, bool normalized, const char *title,
                           hk_results *res, bool force) {
    xp_print_sweep(stdout, name, r, labels);
    hk_status st = res ? hk_results_add_sweep(res, name, r) : HK_OK;
    const char *prefix = cli_str(a, "svg");
    if (st == HK_OK && prefix) {
        char path[1024];
        snprintf(path, sizeof path, "%s%s.svg", prefix, name);
        st = hk_sweep_heatmap_svg(shown, (const char *const *)(svg_labels ? svg_labels : labels),
                                  normalized, title, path, force);
        if (st == HK_OK) printf("wrote %s\n", path);
    }
    return st;
}

hk_status xp_results_finish(hk_results **res, hk_status st, const char *path) {
    hk_results *r = *res;
    *res = NULL;
    if (!r) return st;
    if (st != HK_OK) {
        hk_results_discard(r);
        return st;
    }
    if ((st = hk_results_close(r)) == HK_OK) printf("wrote %s\n", path);
    return st;
}
