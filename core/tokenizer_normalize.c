/* Normalizers of tokenizer.json (NFC/NFD/NFKC/NFKD, Lowercase, StripAccents, BertNormalizer,
 * Prepend, Replace, Strip, Sequence), with Unicode data from utf8proc. Character semantics
 * follow the Rust functions Hugging Face calls: char::to_lowercase (full mapping: U+0130
 * lowercases to "i" U+0307), char::is_whitespace, and for BERT the unicode_categories
 * "other" test, which covers Cc Cf Co Cs but not unassigned code points (Cn): those stay
 * (checked against the reference on U+0FF8 and U+3F7DA). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_impl.h"
#include "utf8.h"

static bool nf(const char *s, size_t n, utf8proc_option_t opts, hk_sbuf *out) {
    if (!n) return true;
    utf8proc_uint8_t *dst = NULL;
    const utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n,
                                            &dst, opts | UTF8PROC_STABLE);
    if (r < 0) {
        free(dst);
        /* utf8proc refuses only invalid UTF-8 or memory: the text is valid, keep it. */
        if (r == UTF8PROC_ERROR_NOMEM) return false;
        hk_sbuf_put(out, s, n);
        return !out->oom;
    }
    hk_sbuf_put(out, (const char *)dst, (size_t)r);
    free(dst);
    return !out->oom;
}

static void put_lower(hk_sbuf *out, uint32_t cp) {
    if (cp == 0x130) { /* İ: the one unconditional multi-character lowercase mapping */
        hk_sbuf_put(out, "i\xCC\x87", 3);
        return;
    }
    hk_sbuf_put_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
}

static bool is_mark(uint32_t cp, bool nonspacing_only) {
    const utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    if (nonspacing_only) return c == UTF8PROC_CATEGORY_MN;
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME;
}

static bool bert_is_control(uint32_t cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r') return false;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS: return true;
    default: return false;
    }
}

static bool is_chinese(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

#define FOR_EACH_CP(s, n, cp)                                                                 \
    for (size_t i_ = 0, cl_ = 0; i_ < (n); i_ += cl_)                                         \
        for (uint32_t cp = hk_utf8_decode((const unsigned char *)(s) + i_, &cl_), once_ = 1;   \
             once_; once_ = 0)

static bool bert(const hk_normalizer *nz, const char *s, size_t n, hk_sbuf *out) {
    hk_sbuf a = {0}, b = {0};
    const char *cur = s;
    size_t len = n;
    if (nz->clean_text) {
        FOR_EACH_CP(s, n, cp) {
            if (cp == 0 || cp == 0xFFFD || bert_is_control(cp)) continue;
            if (cp == '\t' || cp == '\n' || cp == '\r' || hk_uc_is_whitespace(cp))
                hk_sbuf_putc(&a, ' ');
            else
                hk_sbuf_put_cp(&a, cp);
        }
        cur = a.p ? a.p : "";
        len = a.len;
    }
    if (nz->chinese_chars) {
        b.len = 0;
        FOR_EACH_CP(cur, len, cp) {
            if (is_chinese(cp)) {
                hk_sbuf_putc(&b, ' ');
                hk_sbuf_put_cp(&b, cp);
                hk_sbuf_putc(&b, ' ');
            } else {
                hk_sbuf_put_cp(&b, cp);
            }
        }
        hk_sbuf t = a;
        a = b;
        b = t;
        cur = a.p ? a.p : "";
        len = a.len;
    }
    if (nz->strip_accents) {
        b.len = 0;
        hk_sbuf d = {0};
        bool ok = nf(cur, len, UTF8PROC_DECOMPOSE, &d);
        if (ok)
            FOR_EACH_CP(d.p ? d.p : "", d.len, cp) {
                if (!is_mark(cp, true)) hk_sbuf_put_cp(&b, cp);
            }
        hk_sbuf_free(&d);
        if (!ok) b.oom = true;
        hk_sbuf t = a;
        a = b;
        b = t;
        cur = a.p ? a.p : "";
        len = a.len;
    }
    if (nz->lowercase) {
        FOR_EACH_CP(cur, len, cp) put_lower(out, cp);
    } else {
        hk_sbuf_put(out, cur, len);
    }
    const bool ok = !a.oom && !b.oom && !out->oom;
    hk_sbuf_free(&a);
    hk_sbuf_free(&b);
    return ok;
}

static bool replace(const hk_pattern *pat, const char *content, size_t clen, const char *s,
                    size_t n, hk_sbuf *out) {
    pcre2_match_data *md = pat->re ? pcre2_match_data_create_from_pattern(pat->re, NULL) : NULL;
    if (pat->re && !md) return false;
    size_t pos = 0, ms, me;
    while (pos <= n && hk_pattern_next(pat, s, n, pos, md, &ms, &me)) {
        if (me == ms) { /* an empty match: step over one character */
            if (ms >= n) break;
            size_t cl = hk_utf8_valid_len((const unsigned char *)s + ms, n - ms);
            hk_sbuf_put(out, s + pos, ms + (cl ? cl : 1) - pos);
            pos = ms + (cl ? cl : 1);
            continue;
        }
        hk_sbuf_put(out, s + pos, ms - pos);
        hk_sbuf_put(out, content, clen);
        pos = me;
    }
    if (pos < n) hk_sbuf_put(out, s + pos, n - pos);
    if (md) pcre2_match_data_free(md);
    return !out->oom;
}

bool hk_normalize(const hk_normalizer *nz, const char *s, size_t n, hk_sbuf *out) {
    out->len = 0;
    out->oom = false;
    switch (nz->kind) {
    case HK_NORM_SEQUENCE: {
        hk_sbuf a = {0};
        hk_sbuf_put(&a, s, n);
        bool ok = !a.oom;
        for (size_t i = 0; ok && i < nz->n_items; i++) {
            ok = hk_normalize(&nz->items[i], a.p ? a.p : "", a.len, out);
            hk_sbuf t = a;
            a = *out;
            *out = t;
        }
        out->len = 0;
        hk_sbuf_put(out, a.p ? a.p : "", a.len);
        hk_sbuf_free(&a);
        return ok && !out->oom;
    }
    case HK_NORM_NFC: return nf(s, n, UTF8PROC_COMPOSE, out);
    case HK_NORM_NFD: return nf(s, n, UTF8PROC_DECOMPOSE, out);
    case HK_NORM_NFKC: return nf(s, n, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
    case HK_NORM_NFKD: return nf(s, n, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out);
    case HK_NORM_LOWERCASE:
        FOR_EACH_CP(s, n, cp) put_lower(out, cp);
        return !out->oom;
    case HK_NORM_STRIP_ACCENTS:
        FOR_EACH_CP(s, n, cp) {
            if (!is_mark(cp, false)) hk_sbuf_put_cp(out, cp);
        }
        return !out->oom;
    case HK_NORM_BERT: return bert(nz, s, n, out);
    case HK_NORM_PREPEND:
        if (n) hk_sbuf_put(out, nz->content, nz->content_len);
        hk_sbuf_put(out, s, n);
        return !out->oom;
    case HK_NORM_REPLACE:
        return replace(&nz->pattern, nz->content, nz->content_len, s, n, out);
    case HK_NORM_STRIP: {
        size_t a = 0, b = n;
        if (nz->left)
            while (a < b) {
                size_t cl;
                const uint32_t cp = hk_utf8_decode((const unsigned char *)s + a, &cl);
                if (!hk_uc_is_whitespace(cp)) break;
                a += cl;
            }
        if (nz->right)
            while (b > a) {
                size_t st = b - 1;
                while (st > a && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
                size_t cl;
                const uint32_t cp = hk_utf8_decode((const unsigned char *)s + st, &cl);
                if (!hk_uc_is_whitespace(cp)) break;
                b = st;
            }
        hk_sbuf_put(out, s + a, b - a);
        return !out->oom;
    }
    }
    return false;
}
