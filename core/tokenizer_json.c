/* tokenizer.json -> the tokenizer's parts. Every component is read from the structure Hugging
 * Face tokenizers writes (normalizer, pre_tokenizer, model, post_processor, decoder,
 * added_tokens); a component type hookformer does not implement is HK_ERR_UNSUPPORTED naming
 * it, a malformed field HK_ERR_FORMAT naming the field. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer.h"
#include "tokenizer_impl.h"
#include "utf8.h"

#define GPT2_REGEX                                                                              \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define WHITESPACE_REGEX "[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]+|[^\\p{L}\\p{M}\\p{Nd}\\p{Pc}\\s]+"

typedef struct {
    const char *origin;
} ctx;

static const cJSON *field(const cJSON *o, const char *k) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static hk_status get_str(const ctx *c, const cJSON *o, const char *k, const char *where,
                         bool required, const char **out) {
    const cJSON *v = field(o, k);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return hk_errorf(HK_ERR_FORMAT, "%s: %s: field '%s' is missing (expected a string)",
                             c->origin, where, k);
        return HK_OK;
    }
    if (!cJSON_IsString(v))
        return hk_errorf(HK_ERR_FORMAT, "%s: %s: field '%s' must be a string", c->origin, where,
                         k);
    /* Text flows into the normalized text and the decoded output: it must be UTF-8 (serde,
     * which Hugging Face parses with, refuses anything else too). */
    if (!hk_utf8_is_valid(v->valuestring, strlen(v->valuestring)))
        return hk_errorf(HK_ERR_FORMAT, "%s: %s: field '%s' is not valid UTF-8", c->origin,
                         where, k);
    *out = v->valuestring;
    return HK_OK;
}

static hk_status get_bool(const ctx *c, const cJSON *o, const char *k, const char *where,
                          bool dflt, bool *out) {
    const cJSON *v = field(o, k);
    *out = dflt;
    if (!v || cJSON_IsNull(v)) return HK_OK;
    if (!cJSON_IsBool(v))
        return hk_errorf(HK_ERR_FORMAT, "%s: %s: field '%s' must be true or false", c->origin,
                         where, k);
    *out = cJSON_IsTrue(v);
    return HK_OK;
}

static hk_status get_int(const ctx *c, const cJSON *o, const char *k, const char *where,
                         int64_t dflt, int64_t *out) {
    const cJSON *v = field(o, k);
    *out = dflt;
    if (!v || cJSON_IsNull(v)) return HK_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble)
        return hk_errorf(HK_ERR_FORMAT, "%s: %s: field '%s' must be an integer", c->origin,
                         where, k);
    *out = (int64_t)v->valuedouble;
    return HK_OK;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static hk_status compile_regex(const ctx *c, const char *where, const char *re, hk_pattern *p) {
    int err;
    PCRE2_SIZE off;
    p->re = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                          &off, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: %s: regex /%s/ does not compile with PCRE2 at offset %zu: %s",
                         c->origin, where, re, (size_t)off, (const char *)msg);
    }
    pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* best effort: falls back to the interpreter */
    return HK_OK;
}

/* {"String": "..."} or {"Regex": "..."} */
static hk_status parse_pattern(const ctx *c, const cJSON *o, const char *where, hk_pattern *p) {
    const cJSON *pat = field(o, "pattern");
    const cJSON *s = field(pat, "String"), *r = field(pat, "Regex");
    if (cJSON_IsString(s)) {
        p->lit_len = strlen(s->valuestring);
        p->lit = dup_n(s->valuestring, p->lit_len);
        return p->lit ? HK_OK : hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
    }
    if (cJSON_IsString(r)) return compile_regex(c, where, r->valuestring, p);
    return hk_errorf(HK_ERR_FORMAT,
                     "%s: %s: field 'pattern' must be {\"String\": ...} or {\"Regex\": ...}",
                     c->origin, where);
}

static hk_status parse_prepend_scheme(const ctx *c, const cJSON *o, const char *where,
                                      hk_prepend_scheme *out) {
    const char *ps;
    hk_status s = get_str(c, o, "prepend_scheme", where, false, &ps);
    if (s) return s;
    if (!ps) {
        bool add;
        if ((s = get_bool(c, o, "add_prefix_space", where, true, &add))) return s;
        *out = add ? HK_PREPEND_ALWAYS : HK_PREPEND_NEVER;
        return HK_OK;
    }
    if (!strcmp(ps, "always")) *out = HK_PREPEND_ALWAYS;
    else if (!strcmp(ps, "first")) *out = HK_PREPEND_FIRST;
    else if (!strcmp(ps, "never")) *out = HK_PREPEND_NEVER;
    else
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: %s: prepend_scheme must be \"always\", \"first\" or \"never\", got "
                         "\"%s\"",
                         c->origin, where, ps);
    return HK_OK;
}

static hk_status parse_char(const ctx *c, const cJSON *o, const char *k, const char *where,
                            const char *dflt, uint32_t *out) {
    const char *s;
    hk_status st = get_str(c, o, k, where, false, &s);
    if (st) return st;
    if (!s) s = dflt;
    const size_t n = strlen(s);
    const size_t cl = hk_utf8_valid_len((const unsigned char *)s, n);
    if (!cl || cl != n)
        return hk_errorf(HK_ERR_FORMAT, "%s: %s: field '%s' must be one character", c->origin,
                         where, k);
    size_t l;
    *out = hk_utf8_decode((const unsigned char *)s, &l);
    return HK_OK;
}

/* ---- normalizers ------------------------------------------------------------------- */

static void normalizer_clear(hk_normalizer *nz) {
    for (size_t i = 0; i < nz->n_items; i++) normalizer_clear(&nz->items[i]);
    free(nz->items);
    hk_pattern_free(&nz->pattern);
    free(nz->content);
}

void hk_normalizer_free(hk_normalizer *nz) {
    if (!nz) return;
    normalizer_clear(nz);
    free(nz);
}

static hk_status parse_normalizer(const ctx *c, const cJSON *o, const char *where,
                                  hk_normalizer *nz) {
    const char *type;
    hk_status s = get_str(c, o, "type", where, true, &type);
    if (s) return s;
    char sub[256];
    if (!strcmp(type, "Sequence")) {
        nz->kind = HK_NORM_SEQUENCE;
        const cJSON *arr = field(o, "normalizers");
        if (!cJSON_IsArray(arr))
            return hk_errorf(HK_ERR_FORMAT, "%s: %s: field 'normalizers' must be an array",
                             c->origin, where);
        const size_t n = (size_t)cJSON_GetArraySize(arr);
        nz->items = calloc(n ? n : 1, sizeof *nz->items);
        if (!nz->items) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
        for (size_t i = 0; i < n; i++) {
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", where, i);
            nz->n_items = i + 1;
            if ((s = parse_normalizer(c, cJSON_GetArrayItem(arr, (int)i), sub, &nz->items[i])))
                return s;
        }
        return HK_OK;
    }
    if (!strcmp(type, "NFC")) nz->kind = HK_NORM_NFC;
    else if (!strcmp(type, "NFD")) nz->kind = HK_NORM_NFD;
    else if (!strcmp(type, "NFKC")) nz->kind = HK_NORM_NFKC;
    else if (!strcmp(type, "NFKD")) nz->kind = HK_NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) nz->kind = HK_NORM_LOWERCASE;
    else if (!strcmp(type, "StripAccents")) nz->kind = HK_NORM_STRIP_ACCENTS;
    else if (!strcmp(type, "BertNormalizer")) {
        nz->kind = HK_NORM_BERT;
        if ((s = get_bool(c, o, "clean_text", where, true, &nz->clean_text)) ||
            (s = get_bool(c, o, "handle_chinese_chars", where, true, &nz->chinese_chars)) ||
            (s = get_bool(c, o, "lowercase", where, true, &nz->lowercase)) ||
            (s = get_bool(c, o, "strip_accents", where, nz->lowercase, &nz->strip_accents)))
            return s;
    } else if (!strcmp(type, "Prepend")) {
        nz->kind = HK_NORM_PREPEND;
        const char *p;
        if ((s = get_str(c, o, "prepend", where, true, &p))) return s;
        nz->content_len = strlen(p);
        if (!(nz->content = dup_n(p, nz->content_len)))
            return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
    } else if (!strcmp(type, "Replace")) {
        nz->kind = HK_NORM_REPLACE;
        const char *p;
        if ((s = get_str(c, o, "content", where, true, &p))) return s;
        nz->content_len = strlen(p);
        if (!(nz->content = dup_n(p, nz->content_len)))
            return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
        if ((s = parse_pattern(c, o, where, &nz->pattern))) return s;
    } else if (!strcmp(type, "Strip")) {
        nz->kind = HK_NORM_STRIP;
        if ((s = get_bool(c, o, "strip_left", where, true, &nz->left)) ||
            (s = get_bool(c, o, "strip_right", where, true, &nz->right)))
            return s;
    } else {
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: %s: normalizer type '%s' is not supported (supported: Sequence, "
                         "NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, BertNormalizer, "
                         "Prepend, Replace, Strip)",
                         c->origin, where, type);
    }
    return HK_OK;
}

/* ---- pre-tokenizers ------------------------------------------------------------------ */

static void pretok_clear(hk_pretok *pt) {
    for (size_t i = 0; i < pt->n_items; i++) pretok_clear(&pt->items[i]);
    free(pt->items);
    hk_pattern_free(&pt->pattern);
}

void hk_pretok_free(hk_pretok *pt) {
    if (!pt) return;
    pretok_clear(pt);
    free(pt);
}

static hk_status parse_behavior(const ctx *c, const cJSON *o, const char *where,
                                hk_split_behavior dflt, hk_split_behavior *out) {
    const char *b;
    hk_status s = get_str(c, o, "behavior", where, false, &b);
    if (s) return s;
    *out = dflt;
    if (!b) return HK_OK;
    if (!strcmp(b, "Removed")) *out = HK_SPLIT_REMOVED;
    else if (!strcmp(b, "Isolated")) *out = HK_SPLIT_ISOLATED;
    else if (!strcmp(b, "MergedWithPrevious")) *out = HK_SPLIT_MERGED_PREV;
    else if (!strcmp(b, "MergedWithNext")) *out = HK_SPLIT_MERGED_NEXT;
    else if (!strcmp(b, "Contiguous")) *out = HK_SPLIT_CONTIGUOUS;
    else
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: %s: behavior must be Removed, Isolated, MergedWithPrevious, "
                         "MergedWithNext or Contiguous, got \"%s\"",
                         c->origin, where, b);
    return HK_OK;
}

static hk_status parse_pretok(const ctx *c, const cJSON *o, const char *where, hk_pretok *pt) {
    const char *type;
    hk_status s = get_str(c, o, "type", where, true, &type);
    if (s) return s;
    char sub[256];
    if (!strcmp(type, "Sequence")) {
        pt->kind = HK_PRE_SEQUENCE;
        const cJSON *arr = field(o, "pretokenizers");
        if (!cJSON_IsArray(arr))
            return hk_errorf(HK_ERR_FORMAT, "%s: %s: field 'pretokenizers' must be an array",
                             c->origin, where);
        const size_t n = (size_t)cJSON_GetArraySize(arr);
        pt->items = calloc(n ? n : 1, sizeof *pt->items);
        if (!pt->items) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
        for (size_t i = 0; i < n; i++) {
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", where, i);
            pt->n_items = i + 1;
            if ((s = parse_pretok(c, cJSON_GetArrayItem(arr, (int)i), sub, &pt->items[i])))
                return s;
        }
    } else if (!strcmp(type, "ByteLevel")) {
        pt->kind = HK_PRE_BYTE_LEVEL;
        if ((s = get_bool(c, o, "add_prefix_space", where, true, &pt->add_prefix_space)) ||
            (s = get_bool(c, o, "use_regex", where, true, &pt->use_regex)))
            return s;
        if (pt->use_regex && (s = compile_regex(c, where, GPT2_REGEX, &pt->pattern))) return s;
    } else if (!strcmp(type, "Split")) {
        pt->kind = HK_PRE_SPLIT;
        if ((s = parse_pattern(c, o, where, &pt->pattern)) ||
            (s = parse_behavior(c, o, where, HK_SPLIT_ISOLATED, &pt->behavior)) ||
            (s = get_bool(c, o, "invert", where, false, &pt->invert)))
            return s;
    } else if (!strcmp(type, "Digits")) {
        pt->kind = HK_PRE_DIGITS;
        if ((s = get_bool(c, o, "individual_digits", where, false, &pt->individual_digits)))
            return s;
    } else if (!strcmp(type, "Metaspace")) {
        pt->kind = HK_PRE_METASPACE;
        if ((s = parse_char(c, o, "replacement", where, "\xE2\x96\x81", &pt->replacement)) ||
            (s = parse_prepend_scheme(c, o, where, &pt->prepend)) ||
            (s = get_bool(c, o, "split", where, true, &pt->split)))
            return s;
    } else if (!strcmp(type, "Whitespace")) {
        pt->kind = HK_PRE_WHITESPACE;
        if ((s = compile_regex(c, where, WHITESPACE_REGEX, &pt->pattern))) return s;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        pt->kind = HK_PRE_WHITESPACE_SPLIT;
    } else if (!strcmp(type, "BertPreTokenizer")) {
        pt->kind = HK_PRE_BERT;
    } else if (!strcmp(type, "Punctuation")) {
        pt->kind = HK_PRE_PUNCTUATION;
        if ((s = parse_behavior(c, o, where, HK_SPLIT_ISOLATED, &pt->behavior))) return s;
    } else {
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: %s: pre_tokenizer type '%s' is not supported (supported: "
                         "Sequence, ByteLevel, Split, Digits, Metaspace, Whitespace, "
                         "WhitespaceSplit, BertPreTokenizer, Punctuation)",
                         c->origin, where, type);
    }
    return HK_OK;
}

/* ---- decoders -------------------------------------------------------------------------- */

static void decoder_clear(hk_decoder *d) {
    for (size_t i = 0; i < d->n_items; i++) decoder_clear(&d->items[i]);
    free(d->items);
    free(d->prefix);
    free(d->content);
    hk_pattern_free(&d->pattern);
}

void hk_decoder_free(hk_decoder *d) {
    if (!d) return;
    decoder_clear(d);
    free(d);
}

static hk_status set_text(const ctx *c, const char *v, char **out, size_t *len) {
    *len = strlen(v);
    *out = dup_n(v, *len);
    return *out ? HK_OK : hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
}

static hk_status parse_decoder(const ctx *c, const cJSON *o, const char *where, hk_decoder *d) {
    const char *type;
    hk_status s = get_str(c, o, "type", where, true, &type);
    if (s) return s;
    char sub[256];
    const char *v;
    if (!strcmp(type, "Sequence")) {
        d->kind = HK_DEC_SEQUENCE;
        const cJSON *arr = field(o, "decoders");
        if (!cJSON_IsArray(arr))
            return hk_errorf(HK_ERR_FORMAT, "%s: %s: field 'decoders' must be an array",
                             c->origin, where);
        const size_t n = (size_t)cJSON_GetArraySize(arr);
        d->items = calloc(n ? n : 1, sizeof *d->items);
        if (!d->items) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
        for (size_t i = 0; i < n; i++) {
            snprintf(sub, sizeof sub, "%s.decoders[%zu]", where, i);
            d->n_items = i + 1;
            if ((s = parse_decoder(c, cJSON_GetArrayItem(arr, (int)i), sub, &d->items[i])))
                return s;
        }
    } else if (!strcmp(type, "ByteLevel")) {
        d->kind = HK_DEC_BYTE_LEVEL;
    } else if (!strcmp(type, "Metaspace")) {
        d->kind = HK_DEC_METASPACE;
        if ((s = parse_char(c, o, "replacement", where, "\xE2\x96\x81", &d->replacement)) ||
            (s = parse_prepend_scheme(c, o, where, &d->prepend)))
            return s;
    } else if (!strcmp(type, "WordPiece")) {
        d->kind = HK_DEC_WORDPIECE;
        if ((s = get_str(c, o, "prefix", where, false, &v))) return s;
        if ((s = set_text(c, v ? v : "##", &d->prefix, &d->prefix_len))) return s;
        if ((s = get_bool(c, o, "cleanup", where, true, &d->cleanup))) return s;
    } else if (!strcmp(type, "ByteFallback")) {
        d->kind = HK_DEC_BYTE_FALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        d->kind = HK_DEC_FUSE;
    } else if (!strcmp(type, "Strip")) {
        d->kind = HK_DEC_STRIP;
        uint32_t ch;
        if ((s = parse_char(c, o, "content", where, " ", &ch))) return s;
        char u[5] = {0};
        hk_utf8_encode(ch, u);
        if ((s = set_text(c, u, &d->prefix, &d->prefix_len)) ||
            (s = get_int(c, o, "start", where, 0, &d->start)) ||
            (s = get_int(c, o, "stop", where, 0, &d->stop)))
            return s;
    } else if (!strcmp(type, "Replace")) {
        d->kind = HK_DEC_REPLACE;
        if ((s = get_str(c, o, "content", where, true, &v)) ||
            (s = set_text(c, v, &d->content, &d->content_len)) ||
            (s = parse_pattern(c, o, where, &d->pattern)))
            return s;
    } else if (!strcmp(type, "BPEDecoder")) {
        d->kind = HK_DEC_BPE;
        if ((s = get_str(c, o, "suffix", where, false, &v))) return s;
        if ((s = set_text(c, v ? v : "</w>", &d->prefix, &d->prefix_len))) return s;
    } else {
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: %s: decoder type '%s' is not supported (supported: Sequence, "
                         "ByteLevel, Metaspace, WordPiece, ByteFallback, Fuse, Strip, Replace, "
                         "BPEDecoder)",
                         c->origin, where, type);
    }
    return HK_OK;
}

/* ---- model ----------------------------------------------------------------------------- */

static hk_status parse_model(const ctx *c, const cJSON *o, hk_tokenizer *t) {
    hk_tok_model *m = &t->model;
    const char *where = "model";
    if (!cJSON_IsObject(o))
        return hk_errorf(HK_ERR_FORMAT, "%s: field 'model' is missing or not an object",
                         c->origin);
    const char *type;
    hk_status s = get_str(c, o, "type", where, false, &type);
    if (s) return s;
    if (!type) type = field(o, "merges") ? "BPE" : "WordPiece";
    if (!strcmp(type, "BPE")) m->kind = HK_MODEL_BPE;
    else if (!strcmp(type, "WordPiece")) m->kind = HK_MODEL_WORDPIECE;
    else
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: model.type '%s' is not supported (supported: BPE, WordPiece)",
                         c->origin, type);
    const cJSON *vocab = field(o, "vocab");
    if (!cJSON_IsObject(vocab))
        return hk_errorf(HK_ERR_FORMAT, "%s: model.vocab must be an object of token -> id",
                         c->origin);
    const size_t nv = (size_t)cJSON_GetArraySize(vocab);
    if (!hk_strmap_init(&m->vocab, nv))
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 2147483647.0 ||
            e->valuedouble != (double)(int64_t)e->valuedouble)
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: model.vocab: the id of token \"%.60s\" must be an integer in "
                             "[0, 2^31)",
                             c->origin, e->string ? e->string : "");
        if (!hk_utf8_is_valid(e->string, strlen(e->string)))
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: model.vocab: the token of id %lld is not valid UTF-8",
                             c->origin, (long long)e->valuedouble);
        if (!hk_strmap_put(&m->vocab, e->string, strlen(e->string), (int32_t)e->valuedouble))
            return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
    }
    const char *v;
    if ((s = get_str(c, o, "unk_token", where, false, &v))) return s;
    m->unk_id = -1;
    if (v) {
        m->unk_id = hk_strmap_get(&m->vocab, v, strlen(v));
        if (m->unk_id < 0 && m->kind == HK_MODEL_WORDPIECE)
            return hk_errorf(HK_ERR_FORMAT, "%s: model.unk_token \"%s\" is not in model.vocab",
                             c->origin, v);
    } else if (m->kind == HK_MODEL_WORDPIECE) {
        return hk_errorf(HK_ERR_FORMAT, "%s: model.unk_token is missing (WordPiece needs it)",
                         c->origin);
    }
    if ((s = get_str(c, o, "continuing_subword_prefix", where, false, &v))) return s;
    if (m->kind == HK_MODEL_WORDPIECE && !v) v = "##";
    if (v && (s = set_text(c, v, &m->cont_prefix, &m->cont_prefix_len))) return s;
    if (m->kind == HK_MODEL_WORDPIECE) {
        return get_int(c, o, "max_input_chars_per_word", where, 100, &m->max_input_chars);
    }
    if ((s = get_str(c, o, "end_of_word_suffix", where, false, &v))) return s;
    if (v && (s = set_text(c, v, &m->end_suffix, &m->end_suffix_len))) return s;
    if ((s = get_bool(c, o, "fuse_unk", where, false, &m->fuse_unk)) ||
        (s = get_bool(c, o, "byte_fallback", where, false, &m->byte_fallback)) ||
        (s = get_bool(c, o, "ignore_merges", where, false, &m->ignore_merges)))
        return s;
    const cJSON *dropout = field(o, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0.0)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: model.dropout %g: BPE dropout is random; hookformer encodes "
                         "deterministically (set it to null)",
                         c->origin, dropout->valuedouble);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = hk_strmap_get(&m->vocab, name, 6);
    }
    const cJSON *merges = field(o, "merges");
    if (!cJSON_IsArray(merges))
        return hk_errorf(HK_ERR_FORMAT, "%s: model.merges must be an array", c->origin);
    const size_t nm = (size_t)cJSON_GetArraySize(merges);
    if (!hk_u64map_init(&m->merges, nm))
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
    hk_sbuf joined = {0};
    uint32_t rank = 0;
    for (const cJSON *e = merges->child; e; e = e->next, rank++) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                hk_sbuf_free(&joined);
                return hk_errorf(HK_ERR_FORMAT,
                                 "%s: model.merges[%u] \"%.60s\" must be two tokens separated "
                                 "by one space",
                                 c->origin, rank, e->valuestring);
            }
            a = e->valuestring;
            al = (size_t)(sp - a);
            b = sp + 1;
            bl = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
            a = e->child->valuestring;
            al = strlen(a);
            b = e->child->next->valuestring;
            bl = strlen(b);
        } else {
            hk_sbuf_free(&joined);
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: model.merges[%u] must be \"a b\" or [\"a\", \"b\"]", c->origin,
                             rank);
        }
        const int32_t ia = hk_strmap_get(&m->vocab, a, al), ib = hk_strmap_get(&m->vocab, b, bl);
        const size_t cut = m->cont_prefix_len < bl ? m->cont_prefix_len : bl;
        joined.len = 0;
        hk_sbuf_put(&joined, a, al);
        hk_sbuf_put(&joined, b + cut, bl - cut);
        const int32_t inew = joined.oom ? -1 : hk_strmap_get(&m->vocab, joined.p, joined.len);
        if (ia < 0 || ib < 0 || inew < 0) {
            hk_status r = hk_errorf(HK_ERR_FORMAT,
                                    "%s: model.merges[%u]: token \"%.60s\" is not in model.vocab",
                                    c->origin, rank,
                                    ia < 0 ? a : ib < 0 ? b : (joined.p ? joined.p : ""));
            hk_sbuf_free(&joined);
            return r;
        }
        if (!hk_u64map_put(&m->merges, ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib,
                           ((uint64_t)rank << 32) | (uint32_t)inew)) {
            hk_sbuf_free(&joined);
            return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
        }
    }
    hk_sbuf_free(&joined);
    return HK_OK;
}

/* ---- added tokens ---------------------------------------------------------------------- */

static hk_status parse_added(const ctx *c, const cJSON *arr, hk_tokenizer *t) {
    if (!arr || cJSON_IsNull(arr)) return HK_OK;
    if (!cJSON_IsArray(arr))
        return hk_errorf(HK_ERR_FORMAT, "%s: field 'added_tokens' must be an array", c->origin);
    const size_t n = (size_t)cJSON_GetArraySize(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        hk_added_token *a = &t->added[i];
        t->n_added = i + 1;
        const char *content;
        int64_t id;
        hk_status s;
        if ((s = get_str(c, e, "content", where, true, &content)) ||
            (s = get_int(c, e, "id", where, -1, &id)) ||
            (s = get_bool(c, e, "special", where, false, &a->special)) ||
            (s = get_bool(c, e, "single_word", where, false, &a->single_word)) ||
            (s = get_bool(c, e, "lstrip", where, false, &a->lstrip)) ||
            (s = get_bool(c, e, "rstrip", where, false, &a->rstrip)) ||
            (s = get_bool(c, e, "normalized", where, !a->special, &a->normalized)))
            return s;
        if (id < 0 || id > 2147483647)
            return hk_errorf(HK_ERR_FORMAT, "%s: %s: field 'id' must be an integer in [0, 2^31)",
                             c->origin, where);
        a->id = (int32_t)id;
        if ((s = set_text(c, content, &a->content, &a->len))) return s;
    }
    return HK_OK;
}

/* ---- post-processor --------------------------------------------------------------------- */

static hk_status push_id(const ctx *c, int32_t **v, size_t *n, int64_t id) {
    int32_t *p = realloc(*v, (*n + 1) * sizeof *p);
    if (!p) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
    p[(*n)++] = (int32_t)id;
    *v = p;
    return HK_OK;
}

/* ["[CLS]", 101] as BertProcessing/RobertaProcessing write it. */
static hk_status pair_id(const ctx *c, const cJSON *o, const char *k, const char *where,
                         int64_t *id) {
    const cJSON *v = field(o, k);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsNumber(v->child->next))
        return hk_errorf(HK_ERR_FORMAT, "%s: %s: field '%s' must be [\"token\", id]", c->origin,
                         where, k);
    *id = (int64_t)v->child->next->valuedouble;
    return HK_OK;
}

static hk_status parse_post(const ctx *c, const cJSON *o, const char *where, hk_tokenizer *t) {
    const char *type;
    hk_status s = get_str(c, o, "type", where, true, &type);
    if (s) return s;
    hk_postproc *pp = &t->post;
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = field(o, "processors");
        if (!cJSON_IsArray(arr))
            return hk_errorf(HK_ERR_FORMAT, "%s: %s: field 'processors' must be an array",
                             c->origin, where);
        int i = 0;
        for (const cJSON *e = arr->child; e; e = e->next, i++) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s.processors[%d]", where, i);
            if ((s = parse_post(c, e, sub, t))) return s;
        }
        return HK_OK;
    }
    if (!strcmp(type, "ByteLevel")) return HK_OK; /* offsets only */
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        int64_t cls, sep;
        if ((s = pair_id(c, o, "cls", where, &cls)) || (s = pair_id(c, o, "sep", where, &sep)))
            return s;
        t->has_post = true;
        if ((s = push_id(c, &pp->pre, &pp->n_pre, cls))) return s;
        return push_id(c, &pp->post, &pp->n_post, sep);
    }
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = field(o, "single"), *specials = field(o, "special_tokens");
        if (!cJSON_IsArray(single))
            return hk_errorf(HK_ERR_FORMAT, "%s: %s: field 'single' must be an array", c->origin,
                             where);
        t->has_post = true;
        bool after = false;
        int i = 0;
        for (const cJSON *e = single->child; e; e = e->next, i++) {
            const cJSON *st = field(e, "SpecialToken");
            if (field(e, "Sequence")) {
                after = true;
                continue;
            }
            const cJSON *name = field(st, "id");
            if (!cJSON_IsString(name))
                return hk_errorf(HK_ERR_FORMAT,
                                 "%s: %s.single[%d] must be {\"SpecialToken\": {\"id\": ...}} or "
                                 "{\"Sequence\": ...}",
                                 c->origin, where, i);
            const cJSON *spec = field(specials, name->valuestring);
            const cJSON *ids = field(spec, "ids");
            if (!cJSON_IsArray(ids))
                return hk_errorf(HK_ERR_FORMAT,
                                 "%s: %s.special_tokens: \"%s\" is missing or has no 'ids' array",
                                 c->origin, where, name->valuestring);
            for (const cJSON *x = ids->child; x; x = x->next) {
                if (!cJSON_IsNumber(x))
                    return hk_errorf(HK_ERR_FORMAT, "%s: %s.special_tokens.%s.ids must be integers",
                                     c->origin, where, name->valuestring);
                s = after ? push_id(c, &pp->post, &pp->n_post, (int64_t)x->valuedouble)
                          : push_id(c, &pp->pre, &pp->n_pre, (int64_t)x->valuedouble);
                if (s) return s;
            }
        }
        return HK_OK;
    }
    return hk_errorf(HK_ERR_UNSUPPORTED,
                     "%s: %s: post_processor type '%s' is not supported (supported: "
                     "TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence)",
                     c->origin, where, type);
}

/* ---- assembly ----------------------------------------------------------------------- */

static hk_status build_set(const ctx *c, hk_tokenizer *t, bool normalized, hk_added_set *set) {
    size_t n = 0;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized && t->added[i].len) n++;
    set->idx = calloc(n ? n : 1, sizeof *set->idx);
    set->text = calloc(n ? n : 1, sizeof *set->text);
    set->len = calloc(n ? n : 1, sizeof *set->len);
    if (!set->idx || !set->text || !set->len)
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
    /* Group by first byte: counting sort. */
    char **texts = calloc(n ? n : 1, sizeof *texts);
    size_t *lens = calloc(n ? n : 1, sizeof *lens), *src = calloc(n ? n : 1, sizeof *src);
    if (!texts || !lens || !src) {
        free(texts);
        free(lens);
        free(src);
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
    }
    size_t k = 0;
    hk_sbuf nb = {0};
    for (size_t i = 0; i < t->n_added; i++) {
        const hk_added_token *a = &t->added[i];
        if (a->normalized != normalized || !a->len) continue;
        const char *txt = a->content;
        size_t len = a->len;
        if (normalized && t->normalizer) {
            if (!hk_normalize(t->normalizer, a->content, a->len, &nb)) {
                hk_sbuf_free(&nb);
                free(texts);
                free(lens);
                free(src);
                return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
            }
            txt = nb.p ? nb.p : "";
            len = nb.len;
        }
        texts[k] = dup_n(txt, len);
        lens[k] = len;
        src[k] = i;
        if (!texts[k]) break;
        k++;
    }
    hk_sbuf_free(&nb);
    memset(set->count, 0, sizeof set->count);
    for (size_t i = 0; i < k; i++)
        if (lens[i]) set->count[(unsigned char)texts[i][0]]++;
    uint32_t acc = 0;
    for (int b = 0; b < 256; b++) {
        set->first[b] = acc;
        acc += set->count[b];
    }
    uint32_t fill[256];
    memcpy(fill, set->first, sizeof fill);
    size_t placed = 0;
    for (size_t i = 0; i < k; i++) {
        if (!lens[i]) {
            free(texts[i]);
            continue;
        }
        const uint32_t at = fill[(unsigned char)texts[i][0]]++;
        set->idx[at] = src[i];
        set->text[at] = texts[i];
        set->len[at] = lens[i];
        placed++;
    }
    set->n = placed;
    free(texts);
    free(lens);
    free(src);
    return k == n ? HK_OK : hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
}

static int32_t find_token(const hk_tokenizer *t, const char *s) {
    if (!s) return -1;
    return hk_tokenizer_token_to_id(t, s, strlen(s));
}

/* Special ids when no tokenizer_config.json names them. */
static void infer_specials(hk_tokenizer *t) {
    for (int i = 0; i < 4; i++) t->special[i] = -1;
    if (t->post.n_pre) t->special[HK_TOK_BOS] = t->post.pre[0];
    static const char *const bos[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>",
                                      "<|endoftext|>", NULL};
    static const char *const eos[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", NULL};
    static const char *const pad[] = {"<pad>", "[PAD]", "<|padding|>", NULL};
    for (int i = 0; t->special[HK_TOK_BOS] < 0 && bos[i]; i++)
        t->special[HK_TOK_BOS] = find_token(t, bos[i]);
    for (int i = 0; t->special[HK_TOK_EOS] < 0 && eos[i]; i++)
        t->special[HK_TOK_EOS] = find_token(t, eos[i]);
    for (int i = 0; t->special[HK_TOK_PAD] < 0 && pad[i]; i++)
        t->special[HK_TOK_PAD] = find_token(t, pad[i]);
    t->special[HK_TOK_UNK] = t->model.unk_id;
    /* WordPiece/BERT: [CLS] is not a BOS in TransformerLens's sense. */
    if (t->model.kind == HK_MODEL_WORDPIECE) t->special[HK_TOK_BOS] = -1;
}

static hk_status build_id_table(const ctx *c, hk_tokenizer *t) {
    int64_t max_id = -1;
    const hk_strmap *v = &t->model.vocab;
    for (size_t i = 0; i < v->cap; i++)
        if (v->hash[i] && v->val[i] > max_id) max_id = v->val[i];
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id > max_id) max_id = t->added[i].id;
    t->vocab_size = max_id + 1;
    const size_t n = (size_t)(max_id + 1);
    t->id_to_str = calloc(n ? n : 1, sizeof *t->id_to_str);
    t->id_len = calloc(n ? n : 1, sizeof *t->id_len);
    t->id_special = calloc(n ? n : 1, sizeof *t->id_special);
    if (!t->id_to_str || !t->id_len || !t->id_special)
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->origin);
    for (size_t i = 0; i < v->cap; i++) {
        if (!v->hash[i]) continue;
        t->id_to_str[v->val[i]] = v->arena + v->key_off[i];
        t->id_len[v->val[i]] = v->key_len[i];
    }
    for (size_t i = 0; i < t->n_added; i++) {
        t->id_to_str[t->added[i].id] = t->added[i].content;
        t->id_len[t->added[i].id] = t->added[i].len;
        t->id_special[t->added[i].id] = t->added[i].special;
    }
    return HK_OK;
}

hk_status hk_tokenizer_from_json(const cJSON *root, const char *origin, hk_tokenizer **out) {
    if (!root || !out)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_tokenizer_from_json: NULL argument");
    *out = NULL;
    ctx c = {origin ? origin : "<tokenizer.json>"};
    if (!cJSON_IsObject(root))
        return hk_errorf(HK_ERR_FORMAT, "%s: expected a JSON object at the top level", c.origin);
    hk_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->origin = dup_n(c.origin, strlen(c.origin)))) {
        free(t);
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c.origin);
    }
    hk_status s = parse_model(&c, field(root, "model"), t);
    const cJSON *o;
    if (!s && (o = field(root, "normalizer")) && !cJSON_IsNull(o)) {
        if (!(t->normalizer = calloc(1, sizeof *t->normalizer)))
            s = hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c.origin);
        else
            s = parse_normalizer(&c, o, "normalizer", t->normalizer);
    }
    if (!s && (o = field(root, "pre_tokenizer")) && !cJSON_IsNull(o)) {
        if (!(t->pretok = calloc(1, sizeof *t->pretok)))
            s = hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c.origin);
        else
            s = parse_pretok(&c, o, "pre_tokenizer", t->pretok);
    }
    if (!s && (o = field(root, "decoder")) && !cJSON_IsNull(o)) {
        if (!(t->decoder = calloc(1, sizeof *t->decoder)))
            s = hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c.origin);
        else
            s = parse_decoder(&c, o, "decoder", t->decoder);
    }
    if (!s && (o = field(root, "post_processor")) && !cJSON_IsNull(o))
        s = parse_post(&c, o, "post_processor", t);
    if (!s) s = parse_added(&c, field(root, "added_tokens"), t);
    if (!s) s = build_set(&c, t, false, &t->raw_set);
    if (!s) s = build_set(&c, t, true, &t->norm_set);
    if (!s) s = build_id_table(&c, t);
    if (!s) {
        for (size_t i = 0; i < t->post.n_pre + t->post.n_post; i++) {
            const int32_t id = i < t->post.n_pre ? t->post.pre[i] : t->post.post[i - t->post.n_pre];
            if (id < 0 || id >= t->vocab_size) {
                s = hk_errorf(HK_ERR_FORMAT,
                              "%s: post_processor: special token id %d is outside the vocabulary "
                              "(%lld ids)",
                              c.origin, id, (long long)t->vocab_size);
                break;
            }
        }
    }
    if (s) {
        hk_tokenizer_destroy(t);
        return s;
    }
    infer_specials(t);
    *out = t;
    return HK_OK;
}

static const char *token_field(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = field(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

void hk_tokenizer_apply_config(hk_tokenizer *t, const cJSON *config) {
    if (!t || !cJSON_IsObject(config)) return;
    static const char *const keys[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    for (int i = 0; i < 4; i++) {
        const cJSON *v = field(config, keys[i]);
        if (!v) continue;
        if (cJSON_IsNull(v)) {
            t->special[i] = -1;
            continue;
        }
        const int32_t id = find_token(t, token_field(v));
        if (id >= 0) t->special[i] = id;
    }
}
