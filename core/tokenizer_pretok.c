/* Pre-tokenizers: cut normalized text into words, as Hugging Face tokenizers' pre_tokenizers
 * do (ByteLevel, Split, Digits, Metaspace, Whitespace, WhitespaceSplit, BertPreTokenizer,
 * Punctuation, Sequence). Regexes run through PCRE2 with Unicode properties (UTF + UCP).
 * Also here: the text buffers the pipeline passes around. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_impl.h"
#include "utf8.h"

/* ---- buffers ------------------------------------------------------------------------- */

static bool sbuf_reserve(hk_sbuf *b, size_t extra) {
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t nc = b->cap ? b->cap * 2 : 256;
    while (nc < b->len + extra + 1) nc *= 2;
    char *p = realloc(b->p, nc);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = nc;
    return true;
}

void hk_sbuf_put(hk_sbuf *b, const char *s, size_t n) {
    if (!sbuf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void hk_sbuf_putc(hk_sbuf *b, char c) { hk_sbuf_put(b, &c, 1); }

void hk_sbuf_put_cp(hk_sbuf *b, uint32_t cp) {
    char u[4];
    hk_sbuf_put(b, u, hk_utf8_encode(cp, u));
}

void hk_sbuf_free(hk_sbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

void hk_pieces_clear(hk_pieces *l) {
    l->text.len = 0;
    l->text.oom = false;
    l->n = 0;
    l->oom = false;
}

void hk_pieces_free(hk_pieces *l) {
    hk_sbuf_free(&l->text);
    free(l->p);
    memset(l, 0, sizeof *l);
}

void hk_pieces_push_tail(hk_pieces *l, size_t off, int32_t added, bool at_start) {
    const size_t n = l->text.len - off;
    if (!n && added < 0) return;
    if (l->n == l->cap) {
        const size_t nc = l->cap ? l->cap * 2 : 64;
        hk_piece *p = realloc(l->p, nc * sizeof *p);
        if (!p) {
            l->oom = true;
            return;
        }
        l->p = p;
        l->cap = nc;
    }
    l->p[l->n++] = (hk_piece){off, n, added, at_start};
}

void hk_pieces_push(hk_pieces *l, const char *s, size_t n, int32_t added, bool at_start) {
    if (!n && added < 0) return;
    const size_t off = l->text.len;
    hk_sbuf_put(&l->text, s, n);
    if (l->text.oom) {
        l->oom = true;
        return;
    }
    hk_pieces_push_tail(l, off, added, at_start);
}

void hk_ids_push(hk_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        const size_t nc = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, nc * sizeof *v);
        if (!v) {
            ids->oom = true;
            return;
        }
        ids->v = v;
        ids->cap = nc;
    }
    ids->v[ids->n++] = id;
}

/* ---- character classes ------------------------------------------------------------- */

bool hk_uc_is_whitespace(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool hk_uc_is_punctuation(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
               (cp >= 123 && cp <= 126);
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return true;
    default: return false;
    }
}

bool hk_uc_is_numeric(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    const utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool hk_uc_is_alnum(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    const utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

/* ---- patterns ---------------------------------------------------------------------- */

void hk_pattern_free(hk_pattern *p) {
    free(p->lit);
    if (p->re) pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}

_Thread_local int hk_tok_regex_error;

bool hk_pattern_next(const hk_pattern *p, const char *s, size_t n, size_t pos,
                     pcre2_match_data *md, size_t *ms, size_t *me) {
    if (pos > n) return false;
    if (p->re) {
        const int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0) {
            if (rc != PCRE2_ERROR_NOMATCH) hk_tok_regex_error = rc;
            return false;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        *ms = ov[0];
        *me = ov[1];
        return true;
    }
    if (!p->lit_len || n - pos < p->lit_len) return false;
    const char *f = memmem(s + pos, n - pos, p->lit, p->lit_len);
    if (!f) return false;
    *ms = (size_t)(f - s);
    *me = *ms + p->lit_len;
    return true;
}

/* ---- splitting with a behavior --------------------------------------------------------- */

typedef struct {
    size_t s, e;
    bool m;
} seg;

typedef struct {
    seg *v;
    size_t n, cap;
    bool oom;
} segs;

static void seg_push(segs *g, size_t s, size_t e, bool m) {
    if (g->n == g->cap) {
        const size_t nc = g->cap ? g->cap * 2 : 32;
        seg *v = realloc(g->v, nc * sizeof *v);
        if (!v) {
            g->oom = true;
            return;
        }
        g->v = v;
        g->cap = nc;
    }
    g->v[g->n++] = (seg){s, e, m};
}

typedef bool (*char_pred)(uint32_t cp, const void *arg);

/* Matches of a pattern (regex/literal) or of a character predicate, as (range, is_match)
 * segments covering s[0, n). An empty match is skipped (the search moves on by a char). */
static void find_segments(const char *s, size_t n, const hk_pattern *pat, char_pred pred,
                          const void *arg, pcre2_match_data *md, segs *g) {
    g->n = 0;
    size_t prev = 0;
    if (pat) {
        size_t pos = 0, ms, me;
        while (pos <= n && hk_pattern_next(pat, s, n, pos, md, &ms, &me)) {
            if (me == ms) {
                if (ms >= n) break;
                size_t cl = hk_utf8_valid_len((const unsigned char *)s + ms, n - ms);
                pos = ms + (cl ? cl : 1);
                continue;
            }
            if (prev != ms) seg_push(g, prev, ms, false);
            seg_push(g, ms, me, true);
            prev = pos = me;
        }
    } else {
        size_t i = 0;
        while (i < n) {
            size_t cl;
            const uint32_t cp = hk_utf8_decode((const unsigned char *)s + i, &cl);
            if (pred(cp, arg)) {
                if (prev < i) seg_push(g, prev, i, false);
                seg_push(g, i, i + cl, true);
                prev = i + cl;
            }
            i += cl;
        }
    }
    if (prev != n) seg_push(g, prev, n, false);
}

/* Apply invert + behavior to the segments (in place) as Hugging Face's
 * NormalizedString::split does, leaving only the ranges to keep. */
static void apply_behavior(segs *g, hk_split_behavior b, bool invert) {
    if (invert)
        for (size_t i = 0; i < g->n; i++) g->v[i].m = !g->v[i].m;
    size_t k = 0;
    bool prev_match = false;
    switch (b) {
    case HK_SPLIT_ISOLATED:
        return;
    case HK_SPLIT_REMOVED:
        for (size_t i = 0; i < g->n; i++)
            if (!g->v[i].m) g->v[k++] = g->v[i];
        break;
    case HK_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < g->n; i++) {
            const seg x = g->v[i];
            if (x.m && !prev_match && k > 0)
                g->v[k - 1].e = x.e;
            else
                g->v[k++] = x;
            prev_match = x.m;
        }
        break;
    case HK_SPLIT_MERGED_NEXT: {
        /* Walk backwards, merging a match into the piece after it; then restore order. */
        size_t w = g->n;
        for (size_t i = g->n; i-- > 0;) {
            const seg x = g->v[i];
            if (x.m && !prev_match && w < g->n)
                g->v[w].s = x.s;
            else
                g->v[--w] = x;
            prev_match = x.m;
        }
        memmove(g->v, g->v + w, (g->n - w) * sizeof *g->v);
        k = g->n - w;
        break;
    }
    case HK_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < g->n; i++) {
            const seg x = g->v[i];
            if (x.m == prev_match && k > 0)
                g->v[k - 1].e = x.e;
            else
                g->v[k++] = x;
            prev_match = x.m;
        }
        break;
    }
    g->n = k;
}

static void push_segments(const segs *g, const char *s, bool at_start, hk_pieces *out) {
    for (size_t i = 0; i < g->n; i++)
        hk_pieces_push(out, s + g->v[i].s, g->v[i].e - g->v[i].s, -1,
                       at_start && g->v[i].s == 0);
}

/* ---- the pre-tokenizers ------------------------------------------------------------ */

static bool pred_whitespace(uint32_t cp, const void *arg) {
    (void)arg;
    return hk_uc_is_whitespace(cp);
}
static bool pred_punct(uint32_t cp, const void *arg) {
    (void)arg;
    return hk_uc_is_punctuation(cp);
}
static bool pred_numeric(uint32_t cp, const void *arg) {
    (void)arg;
    return hk_uc_is_numeric(cp);
}
static bool pred_char(uint32_t cp, const void *arg) { return cp == *(const uint32_t *)arg; }

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 + k. */
static char byte_chars[256][3];
static uint8_t byte_char_len[256];
static pthread_once_t byte_chars_once = PTHREAD_ONCE_INIT;

static void fill_byte_chars(void) {
    int k = 0;
    for (int b = 0; b < 256; b++) {
        const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        const uint32_t cp = keep ? (uint32_t)b : (uint32_t)(256 + k++);
        byte_char_len[b] = (uint8_t)hk_utf8_encode(cp, byte_chars[b]);
    }
}

static void init_byte_chars(void) { pthread_once(&byte_chars_once, fill_byte_chars); }

void hk_byte_level_tables(const char (**chars)[3], const uint8_t **lens) {
    init_byte_chars();
    *chars = (const char(*)[3])byte_chars;
    *lens = byte_char_len;
}

static void byte_level_map(const char *s, size_t n, bool at_start, hk_pieces *out) {
    init_byte_chars();
    /* Append the mapped bytes to the text, then record them as one piece. */
    hk_sbuf *t = &out->text;
    const size_t off = t->len;
    for (size_t i = 0; i < n; i++) {
        const unsigned char b = (unsigned char)s[i];
        hk_sbuf_put(t, byte_chars[b], byte_char_len[b]);
    }
    if (t->oom) {
        out->oom = true;
        return;
    }
    hk_pieces_push_tail(out, off, -1, at_start);
}

static bool pretok_piece(const hk_pretok *pt, const char *s, size_t n, bool at_start,
                         hk_pieces *out, pcre2_match_data *md, segs *g, hk_sbuf *tmp);

static bool pretok_list(const hk_pretok *pt, const hk_pieces *in, hk_pieces *out,
                        pcre2_match_data *md, segs *g, hk_sbuf *tmp) {
    hk_pieces_clear(out);
    for (size_t i = 0; i < in->n; i++) {
        const hk_piece *p = &in->p[i];
        const char *s = in->text.p + p->off;
        if (p->added >= 0) {
            hk_pieces_push(out, s, p->len, p->added, p->at_start);
            continue;
        }
        if (!pretok_piece(pt, s, p->len, p->at_start, out, md, g, tmp)) return false;
    }
    return !out->oom && !g->oom;
}

static bool pretok_piece(const hk_pretok *pt, const char *s, size_t n, bool at_start,
                         hk_pieces *out, pcre2_match_data *md, segs *g, hk_sbuf *tmp) {
    switch (pt->kind) {
    case HK_PRE_SEQUENCE: {
        /* Run the items one after the other on this piece. */
        hk_pieces a = {0}, b = {0};
        hk_pieces_push(&a, s, n, -1, at_start);
        bool ok = !a.oom;
        for (size_t i = 0; ok && i < pt->n_items; i++) {
            ok = pretok_list(&pt->items[i], &a, &b, md, g, tmp);
            hk_pieces t = a;
            a = b;
            b = t;
        }
        for (size_t i = 0; ok && i < a.n; i++)
            hk_pieces_push(out, a.text.p + a.p[i].off, a.p[i].len, a.p[i].added, a.p[i].at_start);
        hk_pieces_free(&a);
        hk_pieces_free(&b);
        return ok && !out->oom;
    }
    case HK_PRE_BYTE_LEVEL: {
        const char *src = s;
        size_t len = n;
        if (pt->add_prefix_space && (n == 0 || s[0] != ' ')) {
            tmp->len = 0;
            hk_sbuf_putc(tmp, ' ');
            hk_sbuf_put(tmp, s, n);
            if (tmp->oom) return false;
            src = tmp->p;
            len = tmp->len;
        }
        if (!pt->use_regex) {
            byte_level_map(src, len, at_start, out);
            return !out->oom;
        }
        find_segments(src, len, &pt->pattern, NULL, NULL, md, g);
        if (g->oom) return false;
        for (size_t i = 0; i < g->n; i++)
            byte_level_map(src + g->v[i].s, g->v[i].e - g->v[i].s, at_start && g->v[i].s == 0,
                           out);
        return !out->oom;
    }
    case HK_PRE_SPLIT:
        find_segments(s, n, &pt->pattern, NULL, NULL, md, g);
        apply_behavior(g, pt->behavior, pt->invert);
        push_segments(g, s, at_start, out);
        return !out->oom && !g->oom;
    case HK_PRE_DIGITS:
        find_segments(s, n, NULL, pred_numeric, NULL, md, g);
        apply_behavior(g, pt->individual_digits ? HK_SPLIT_ISOLATED : HK_SPLIT_CONTIGUOUS, false);
        push_segments(g, s, at_start, out);
        return !out->oom && !g->oom;
    case HK_PRE_PUNCTUATION:
        find_segments(s, n, NULL, pred_punct, NULL, md, g);
        apply_behavior(g, pt->behavior, false);
        push_segments(g, s, at_start, out);
        return !out->oom && !g->oom;
    case HK_PRE_WHITESPACE:
        /* Keep the runs matching \w+|[^\w\s]+ (the pattern holds them). */
        find_segments(s, n, &pt->pattern, NULL, NULL, md, g);
        apply_behavior(g, HK_SPLIT_REMOVED, true);
        push_segments(g, s, at_start, out);
        return !out->oom && !g->oom;
    case HK_PRE_WHITESPACE_SPLIT:
        find_segments(s, n, NULL, pred_whitespace, NULL, md, g);
        apply_behavior(g, HK_SPLIT_REMOVED, false);
        push_segments(g, s, at_start, out);
        return !out->oom && !g->oom;
    case HK_PRE_BERT: {
        /* Whitespace removed, then punctuation isolated. */
        find_segments(s, n, NULL, pred_whitespace, NULL, md, g);
        apply_behavior(g, HK_SPLIT_REMOVED, false);
        if (g->oom) return false;
        const size_t nw = g->n;
        seg *words = malloc((nw ? nw : 1) * sizeof *words);
        if (!words) return false;
        memcpy(words, g->v, nw * sizeof *words);
        for (size_t w = 0; w < nw; w++) {
            const char *ws = s + words[w].s;
            find_segments(ws, words[w].e - words[w].s, NULL, pred_punct, NULL, md, g);
            push_segments(g, ws, at_start && words[w].s == 0, out);
        }
        free(words);
        return !out->oom && !g->oom;
    }
    case HK_PRE_METASPACE: {
        char rep[4];
        const size_t rl = hk_utf8_encode(pt->replacement, rep);
        tmp->len = 0;
        const bool starts = n >= rl && memcmp(s, rep, rl) == 0;
        /* The prepend test looks at the text after spaces became the replacement. */
        bool replaced_start = starts || (n > 0 && s[0] == ' ');
        if (!replaced_start && (pt->prepend == HK_PREPEND_ALWAYS ||
                                (pt->prepend == HK_PREPEND_FIRST && at_start)))
            hk_sbuf_put(tmp, rep, rl);
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ')
                hk_sbuf_put(tmp, rep, rl);
            else
                hk_sbuf_putc(tmp, s[i]);
        }
        if (tmp->oom) return false;
        if (!pt->split) {
            hk_pieces_push(out, tmp->p, tmp->len, -1, at_start);
            return !out->oom;
        }
        find_segments(tmp->p, tmp->len, NULL, pred_char, &pt->replacement, md, g);
        apply_behavior(g, HK_SPLIT_MERGED_NEXT, false);
        push_segments(g, tmp->p, at_start, out);
        return !out->oom && !g->oom;
    }
    }
    return false;
}

bool hk_pretokenize(const hk_pretok *pt, const hk_pieces *in, hk_pieces *out,
                    pcre2_match_data *md) {
    segs g = {0};
    hk_sbuf tmp = {0};
    const bool ok = pretok_list(pt, in, out, md, &g, &tmp);
    free(g.v);
    hk_sbuf_free(&tmp);
    return ok;
}
