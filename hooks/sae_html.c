/* A static HTML page of SAE features' top contexts: one section per feature, one line per
 * context, each token a <span> shaded by the feature's activation. No scripts, no external
 * resources. Written to PATH.tmp, then renamed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "sae_impl.h"

static void put_escaped(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c == '<') fputs("&lt;", f);
        else if (c == '>') fputs("&gt;", f);
        else if (c == '&') fputs("&amp;", f);
        else if (c == '"') fputs("&quot;", f);
        else if (c == '\n') fputs("&#8629;", f); /* a visible newline */
        else if (c == ' ') fputs("&nbsp;", f);
        else if (c < 0x20) fprintf(f, "&#%u;", 0x2400 + c);
        else fputc(c, f);
    }
}

static void put_token(FILE *f, const hk_model *m, int32_t id) {
    const hk_tokenizer *tok = hk_model_tokenizer(m);
    char *text = NULL;
    size_t len = 0;
    if (tok && hk_tokenizer_decode(tok, &id, 1, 0, &text, &len) == HK_OK && len > 0) {
        put_escaped(f, text, len);
    } else {
        fprintf(f, "[%d]", id);
    }
    free(text);
}

hk_status hk_sae_top_html(const hk_sae_top *t, const hk_sae *s, const hk_model *m,
                          const int64_t *features, size_t n, const char *path, bool force) {
    if (!t || !s || !m || (!features && n) || !path)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_top_html: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (features[i] < 0 || features[i] >= t->d_sae)
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_top_html: feature %lld is not in [0, %lld)",
                             (long long)features[i], (long long)t->d_sae);
    if (!force && access(path, F_OK) == 0)
        return hk_errorf(HK_ERR_IO, "%s: exists (force to replace it)", path);
    const size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return hk_errorf(HK_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen + 5, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        hk_status st = hk_errorf(HK_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    const int64_t W = 2 * t->window + 1;
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>SAE features</title>\n"
          "<style>body{font-family:sans-serif;margin:16px;background:#fff;color:#111}"
          "h2{font-size:16px;margin:18px 0 4px}.meta{color:#555;font-size:12px}"
          ".ctx{font-family:monospace;font-size:14px;line-height:24px;white-space:nowrap}"
          ".ctx span{padding:2px 1px}.max{outline:2px solid #222}"
          ".val{display:inline-block;width:72px;color:#555;font-size:12px}</style>\n"
          "</head><body>\n", f);
    fputs("<h1 style=\"font-size:18px\">", f);
    put_escaped(f, s->path, strlen(s->path));
    fprintf(f, " at ");
    put_escaped(f, s->hook, strlen(s->hook));
    fprintf(f, "</h1>\n<p class=\"meta\">%lld tokens; top %lld contexts per feature, %lld tokens "
               "each side of the maximum</p>\n",
            (long long)t->tokens, (long long)t->top, (long long)t->window);
    for (size_t i = 0; i < n; i++) {
        const int64_t j = features[i];
        const float mx = t->max_act[j] > 0 ? t->max_act[j] : 1.0f;
        fprintf(f, "<section id=\"feature-%lld\"><h2>Feature %lld</h2>\n<p class=\"meta\">max "
                   "activation %.4g; active on %lld of %lld tokens (%.3g%%)</p>\n",
                (long long)j, (long long)j, t->max_act[j], (long long)t->active[j],
                (long long)t->tokens, t->tokens ? 100.0 * (double)t->active[j] / (double)t->tokens : 0);
        for (int64_t k = 0; k < t->top; k++) {
            if (t->top_seq[j * t->top + k] < 0) break;
            fprintf(f, "<div class=\"ctx\"><span class=\"val\">%.4g</span>",
                    t->top_values[j * t->top + k]);
            const int32_t *wt = t->win_tokens + (j * t->top + k) * W;
            const float *wv = t->win_values + (j * t->top + k) * W;
            for (int64_t o = 0; o < W; o++) {
                if (wt[o] < 0) continue;
                double a = wv[o] > 0 ? wv[o] / mx : 0;
                if (a > 1) a = 1;
                fprintf(f, "<span%s style=\"background:rgba(220,40,40,%.3f)\" title=\"%.4g\">",
                        o == t->window ? " class=\"max\"" : "", a, wv[o]);
                put_token(f, m, wt[o]);
                fputs("</span>", f);
            }
            fputs("</div>\n", f);
        }
        fputs("</section>\n", f);
    }
    fputs("</body></html>\n", f);
    const bool ok = !ferror(f);
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        hk_status st = hk_errorf(HK_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return HK_OK;
}
