/* Decoders of tokenizer.json: token strings back to text, each decoder rewriting the list of
 * strings as Hugging Face's decode_chain does, the results joined at the end. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "utf8.h"


typedef struct {
    hk_sbuf *v;
    size_t n, cap;
    bool oom;
} strlist;

static hk_sbuf *sl_add(strlist *l) {
    if (l->n == l->cap) {
        const size_t nc = l->cap ? l->cap * 2 : 16;
        hk_sbuf *v = realloc(l->v, nc * sizeof *v);
        if (!v) {
            l->oom = true;
            return NULL;
        }
        l->v = v;
        l->cap = nc;
    }
    hk_sbuf *b = &l->v[l->n++];
    memset(b, 0, sizeof *b);
    return b;
}

/* A new empty (NUL-terminated) string at the end of l; NULL when out of memory. */
static hk_sbuf *sl_new(strlist *l) {
    hk_sbuf *b = sl_add(l);
    if (b) hk_sbuf_put(b, "", 0);
    return b;
}

static void sl_push(strlist *l, const char *s, size_t n) {
    hk_sbuf *b = sl_add(l);
    if (!b) return;
    hk_sbuf_put(b, s, n);
    if (!b->p) hk_sbuf_put(b, "", 0);
    if (b->oom) l->oom = true;
}

static void sl_free(strlist *l) {
    for (size_t i = 0; i < l->n; i++) hk_sbuf_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int16_t cp_to_byte[0x144];
static pthread_once_t cp_to_byte_once = PTHREAD_ONCE_INIT;

static void fill_cp_to_byte(void) {
    const char(*chars)[3];
    const uint8_t *lens;
    hk_byte_level_tables(&chars, &lens);
    for (int i = 0; i < 0x144; i++) cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        size_t cl;
        const uint32_t cp = hk_utf8_decode((const unsigned char *)chars[b], &cl);
        cp_to_byte[cp] = (int16_t)b;
    }
}

static void init_cp_to_byte(void) { pthread_once(&cp_to_byte_once, fill_cp_to_byte); }

static void put_repaired(hk_sbuf *out, const char *s, size_t n, bool raw) {
    if (raw || hk_utf8_is_valid(s, n)) {
        hk_sbuf_put(out, s, n);
        return;
    }
    char *tmp = malloc(hk_utf8_repaired_len(s, n) + 1);
    if (!tmp) {
        out->oom = true;
        return;
    }
    hk_sbuf_put(out, tmp, hk_utf8_repair(s, n, tmp));
    free(tmp);
}

static bool utf8_char_at(const char *s, size_t n, size_t i, uint32_t *cp, size_t *cl) {
    const size_t k = hk_utf8_valid_len((const unsigned char *)s + i, n - i);
    if (!k) {
        *cp = (unsigned char)s[i];
        *cl = 1;
        return false;
    }
    *cp = hk_utf8_decode((const unsigned char *)s + i, cl);
    return true;
}

/* Rewrite `in` into `out` with one decoder. */
static void step(const hk_decoder *d, strlist *in, strlist *out, bool raw) {
    switch (d->kind) {
    case HK_DEC_SEQUENCE: break; /* handled by the caller */
    case HK_DEC_BYTE_LEVEL: {
        init_cp_to_byte();
        hk_sbuf bytes = {0};
        for (size_t t = 0; t < in->n; t++) {
            const char *s = in->v[t].p;
            const size_t n = in->v[t].len;
            const size_t mark = bytes.len;
            bool all = true;
            for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t cl;
                if (!utf8_char_at(s, n, i, &cp, &cl) || cp >= 0x144 || cp_to_byte[cp] < 0) {
                    all = false;
                    break;
                }
                hk_sbuf_putc(&bytes, (char)cp_to_byte[cp]);
                i += cl;
            }
            if (!all) {
                bytes.len = mark;
                hk_sbuf_put(&bytes, s, n);
            }
        }
        hk_sbuf *b = sl_add(out);
        if (b) {
            put_repaired(b, bytes.p ? bytes.p : "", bytes.len, raw);
            hk_sbuf_put(b, "", 0);
            if (b->oom || bytes.oom) out->oom = true;
        }
        hk_sbuf_free(&bytes);
        return;
    }
    case HK_DEC_METASPACE:
        for (size_t t = 0; t < in->n; t++) {
            hk_sbuf *b = sl_new(out);
            if (!b) return;
            const char *s = in->v[t].p;
            const size_t n = in->v[t].len;
            for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t cl;
                utf8_char_at(s, n, i, &cp, &cl);
                if (cl == hk_utf8_valid_len((const unsigned char *)s + i, n - i) &&
                    cp == d->replacement) {
                    if (!(t == 0 && d->prepend != HK_PREPEND_NEVER)) hk_sbuf_putc(b, ' ');
                } else {
                    hk_sbuf_put(b, s + i, cl);
                }
                i += cl;
            }
            if (b->oom) out->oom = true;
        }
        return;
    case HK_DEC_WORDPIECE:
        for (size_t t = 0; t < in->n; t++) {
            hk_sbuf *b = sl_new(out);
            if (!b) return;
            const char *s = in->v[t].p;
            size_t n = in->v[t].len;
            if (t != 0) {
                if (n >= d->prefix_len && memcmp(s, d->prefix, d->prefix_len) == 0) {
                    s += d->prefix_len;
                    n -= d->prefix_len;
                } else {
                    hk_sbuf_putc(b, ' ');
                }
            }
            hk_sbuf_put(b, s, n);
            if (d->cleanup) {
                /* Hugging Face's cleanup: spaces before punctuation and contractions. */
                static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm",
                                                   " do not", " 's", " 've", " 're"};
                static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m",
                                                 " don't", "'s", "'ve", "'re"};
                for (size_t r = 0; r < sizeof from / sizeof *from; r++) {
                    hk_pattern p = {(char *)from[r], strlen(from[r]), NULL};
                    hk_sbuf tmp = {0};
                    size_t pos = 0, ms, me;
                    const char *src = b->p;
                    const size_t len = b->len;
                    while (hk_pattern_next(&p, src, len, pos, NULL, &ms, &me)) {
                        hk_sbuf_put(&tmp, src + pos, ms - pos);
                        hk_sbuf_put(&tmp, to[r], strlen(to[r]));
                        pos = me;
                    }
                    hk_sbuf_put(&tmp, src + pos, len - pos);
                    hk_sbuf_free(b);
                    *b = tmp;
                }
            }
            if (b->oom) out->oom = true;
        }
        return;
    case HK_DEC_BYTE_FALLBACK: {
        hk_sbuf pending = {0};
        for (size_t t = 0; t <= in->n; t++) {
            int byte = -1;
            if (t < in->n) {
                const char *s = in->v[t].p;
                if (in->v[t].len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
                    char hex[3] = {s[3], s[4], 0};
                    char *end;
                    const long v = strtol(hex, &end, 16);
                    if (end == hex + 2 && hex[0] != '-' && hex[0] != '+' && hex[0] != ' ')
                        byte = (int)v;
                }
            }
            if (byte >= 0) {
                hk_sbuf_putc(&pending, (char)byte);
                continue;
            }
            if (pending.len) {
                if (raw || hk_utf8_is_valid(pending.p, pending.len)) {
                    sl_push(out, pending.p, pending.len);
                } else {
                    for (size_t k = 0; k < pending.len; k++) sl_push(out, "\xEF\xBF\xBD", 3);
                }
                pending.len = 0;
            }
            if (t < in->n) sl_push(out, in->v[t].p, in->v[t].len);
        }
        if (pending.oom) out->oom = true;
        hk_sbuf_free(&pending);
        return;
    }
    case HK_DEC_FUSE: {
        hk_sbuf *b = sl_new(out);
        if (!b) return;
        for (size_t t = 0; t < in->n; t++) hk_sbuf_put(b, in->v[t].p, in->v[t].len);
        if (b->oom) out->oom = true;
        return;
    }
    case HK_DEC_STRIP: {
        size_t cl0;
        const uint32_t content = hk_utf8_decode((const unsigned char *)d->prefix, &cl0);
        for (size_t t = 0; t < in->n; t++) {
            const char *s = in->v[t].p;
            const size_t n = in->v[t].len;
            size_t a = 0, b = n;
            for (int64_t k = 0; k < d->start && a < n; k++) {
                uint32_t cp;
                size_t cl;
                if (!utf8_char_at(s, n, a, &cp, &cl) || cp != content) break;
                a += cl;
            }
            for (int64_t k = 0; k < d->stop && b > a; k++) {
                size_t st = b - 1;
                while (st > a && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
                uint32_t cp;
                size_t cl;
                if (!utf8_char_at(s, n, st, &cp, &cl) || cp != content || st + cl != b) break;
                b = st;
            }
            sl_push(out, s + a, b - a);
        }
        return;
    }
    case HK_DEC_REPLACE:
        for (size_t t = 0; t < in->n; t++) {
            hk_sbuf *b = sl_new(out);
            if (!b) return;
            pcre2_match_data *md =
                d->pattern.re ? pcre2_match_data_create_from_pattern(d->pattern.re, NULL) : NULL;
            const char *s = in->v[t].p;
            const size_t n = in->v[t].len;
            size_t pos = 0, ms, me;
            while ((!d->pattern.re || md) && pos <= n &&
                   hk_pattern_next(&d->pattern, s, n, pos, md, &ms, &me) && me > ms) {
                hk_sbuf_put(b, s + pos, ms - pos);
                hk_sbuf_put(b, d->content, d->content_len);
                pos = me;
            }
            if (pos < n) hk_sbuf_put(b, s + pos, n - pos);
            if (md) pcre2_match_data_free(md);
            if (b->oom) out->oom = true;
        }
        return;
    case HK_DEC_BPE:
        for (size_t t = 0; t < in->n; t++) {
            hk_sbuf *b = sl_new(out);
            if (!b) return;
            const char *s = in->v[t].p;
            const size_t n = in->v[t].len;
            size_t pos = 0;
            const char *rep = t + 1 == in->n ? "" : " ";
            while (d->prefix_len && pos + d->prefix_len <= n) {
                const char *f = memmem(s + pos, n - pos, d->prefix, d->prefix_len);
                if (!f) break;
                hk_sbuf_put(b, s + pos, (size_t)(f - (s + pos)));
                hk_sbuf_put(b, rep, strlen(rep));
                pos = (size_t)(f - s) + d->prefix_len;
            }
            hk_sbuf_put(b, s + pos, n - pos);
            if (b->oom) out->oom = true;
        }
        return;
    }
}

static bool run(const hk_decoder *d, strlist *cur, bool raw) {
    if (d->kind == HK_DEC_SEQUENCE) {
        for (size_t i = 0; i < d->n_items; i++)
            if (!run(&d->items[i], cur, raw)) return false;
        return true;
    }
    strlist next = {0};
    step(d, cur, &next, raw);
    sl_free(cur);
    *cur = next;
    return !cur->oom;
}

bool hk_decode_tokens(const hk_decoder *d, char **toks, size_t *lens, size_t n, bool raw,
                      hk_sbuf *out) {
    out->len = 0;
    hk_sbuf_put(out, "", 0);
    strlist cur = {0};
    for (size_t i = 0; i < n; i++) sl_push(&cur, toks[i], lens[i]);
    bool ok = !cur.oom;
    if (ok && d) ok = run(d, &cur, raw);
    for (size_t i = 0; ok && i < cur.n; i++) {
        if (!d && i) hk_sbuf_putc(out, ' ');
        hk_sbuf_put(out, cur.v[i].p, cur.v[i].len);
    }
    sl_free(&cur);
    return ok && !out->oom;
}
