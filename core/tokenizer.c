/* The encode pipeline (repair UTF-8 -> added tokens on the raw text -> normalizer -> added
 * tokens on the normalized text -> pre-tokenizer -> model -> post-processor), decoding, and
 * the public hk_tokenizer_* functions. */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "tokenizer_impl.h"
#include "utf8.h"

static void set_free(hk_added_set *s) {
    for (size_t i = 0; i < s->n; i++) free(s->text[i]);
    free(s->text);
    free(s->len);
    free(s->idx);
}

void hk_tokenizer_destroy(hk_tokenizer *t) {
    if (!t) return;
    hk_strmap_free(&t->model.vocab);
    hk_u64map_free(&t->model.merges);
    free(t->model.cont_prefix);
    free(t->model.end_suffix);
    hk_normalizer_free(t->normalizer);
    hk_pretok_free(t->pretok);
    hk_decoder_free(t->decoder);
    free(t->post.pre);
    free(t->post.post);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    set_free(&t->raw_set);
    set_free(&t->norm_set);
    free(t->id_to_str);
    free(t->id_len);
    free(t->id_special);
    free(t->origin);
    free(t);
}

void hk_tokenizer_free(hk_tokenizer *tok) { hk_tokenizer_destroy(tok); }

hk_status hk_tokenizer_load_json(const char *json, size_t len, const char *origin,
                                 hk_tokenizer **out) {
    if (!json || !out)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_tokenizer_load_json: NULL argument");
    *out = NULL;
    cJSON *root = NULL;
    hk_status s = hk_json_parse(origin, json, len, &root);
    if (s) return s;
    s = hk_tokenizer_from_json(root, origin, out);
    cJSON_Delete(root);
    return s;
}

hk_status hk_tokenizer_load(const char *path, hk_tokenizer **out) {
    if (!path || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_tokenizer_load: NULL argument");
    *out = NULL;
    cJSON *root = NULL;
    hk_status s = hk_json_load_file(path, &root);
    if (s) return s;
    s = hk_tokenizer_from_json(root, path, out);
    cJSON_Delete(root);
    if (s) return s;
    /* tokenizer_config.json beside it names the special tokens. */
    const char *slash = strrchr(path, '/');
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%.*stokenizer_config.json", slash ? (int)(slash - path + 1) : 0,
             path);
    FILE *f = fopen(cfg, "rb");
    if (f) {
        fclose(f);
        cJSON *c = NULL;
        if (hk_json_load_file(cfg, &c) == HK_OK) {
            hk_tokenizer_apply_config(*out, c);
            cJSON_Delete(c);
        } else {
            hk_tokenizer_destroy(*out);
            *out = NULL;
            return HK_ERR_FORMAT;
        }
    }
    hk_error_clear();
    return HK_OK;
}

/* ---- encode ----------------------------------------------------------------------- */

static hk_status oom(const hk_tokenizer *t) {
    return hk_errorf(HK_ERR_NOMEM, "%s: encode: out of memory", t->origin);
}

hk_status hk_tokenizer_encode(const hk_tokenizer *t, const char *text, size_t len,
                              unsigned flags, int32_t **out_ids, size_t *out_count) {
    if (!t || (!text && len) || !out_ids || !out_count)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_tokenizer_encode: NULL argument");
    *out_ids = NULL;
    *out_count = 0;
    if (!text) text = "";
    char *fixed = NULL;
    if (!hk_utf8_is_valid(text, len)) {
        const size_t n = hk_utf8_repaired_len(text, len);
        if (!(fixed = malloc(n + 1))) return oom(t);
        len = hk_utf8_repair(text, len, fixed);
        text = fixed;
    }
    hk_pieces a = {0}, b = {0};
    hk_sbuf norm = {0};
    hk_ids ids = {0};
    pcre2_match_data *md = pcre2_match_data_create(32, NULL);
    bool ok = md != NULL;
    hk_tok_regex_error = 0;

    /* 1. added tokens matched on the raw text */
    if (ok) hk_added_split(t, &t->raw_set, text, len, true, &a);
    ok = ok && !a.oom;
    /* 2. normalize the other pieces, 3. match the normalized added tokens in them */
    for (size_t i = 0; ok && i < a.n; i++) {
        const hk_piece *p = &a.p[i];
        const char *s = a.text.p + p->off;
        if (p->added >= 0) {
            hk_pieces_push(&b, s, p->len, p->added, p->at_start);
            continue;
        }
        if (t->normalizer) {
            ok = hk_normalize(t->normalizer, s, p->len, &norm);
            s = norm.p ? norm.p : "";
            if (ok) hk_added_split(t, &t->norm_set, s, norm.len, p->at_start, &b);
        } else {
            hk_added_split(t, &t->norm_set, s, p->len, p->at_start, &b);
        }
    }
    ok = ok && !b.oom;
    /* 4. pre-tokenize */
    hk_pieces *words = &b;
    if (ok && t->pretok) {
        ok = hk_pretokenize(t->pretok, &b, &a, md);
        words = &a;
    }
    /* 5. model, 6. post-processor */
    if (ok && (flags & HK_TOK_ADD_SPECIAL))
        for (size_t i = 0; i < t->post.n_pre; i++) hk_ids_push(&ids, t->post.pre[i]);
    for (size_t i = 0; ok && i < words->n; i++) {
        const hk_piece *p = &words->p[i];
        if (p->added >= 0) {
            hk_ids_push(&ids, p->added);
            continue;
        }
        const char *s = words->text.p + p->off;
        ok = t->model.kind == HK_MODEL_BPE ? hk_bpe_tokenize(&t->model, s, p->len, &ids)
                                           : hk_wordpiece_tokenize(&t->model, s, p->len, &ids);
    }
    if (ok && (flags & HK_TOK_ADD_SPECIAL))
        for (size_t i = 0; i < t->post.n_post; i++) hk_ids_push(&ids, t->post.post[i]);
    ok = ok && !ids.oom;

    hk_pieces_free(&a);
    hk_pieces_free(&b);
    hk_sbuf_free(&norm);
    if (md) pcre2_match_data_free(md);
    free(fixed);
    if (ok && hk_tok_regex_error) {
        free(ids.v);
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(hk_tok_regex_error, msg, sizeof msg);
        return hk_errorf(HK_ERR_INTERNAL, "%s: encode: a regex match failed (PCRE2 error %d: %s)",
                         t->origin, hk_tok_regex_error, (const char *)msg);
    }
    if (!ok) {
        free(ids.v);
        return oom(t);
    }
    *out_ids = ids.v;
    *out_count = ids.n;
    return HK_OK;
}

/* ---- decode ----------------------------------------------------------------------- */

static hk_status decode_impl(const hk_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                             bool raw, hk_sbuf *out) {
    char **toks = malloc((n ? n : 1) * sizeof *toks);
    size_t *lens = malloc((n ? n : 1) * sizeof *lens);
    if (!toks || !lens) {
        free(toks);
        free(lens);
        return oom(t);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size) {
            free(toks);
            free(lens);
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "%s: decode: id %d (position %zu) is not in the vocabulary (%lld "
                             "ids)",
                             t->origin, ids[i], i, (long long)t->vocab_size);
        }
        /* An id inside the range that names no token (a hole in the vocabulary) is left out,
         * as Hugging Face's decode leaves it out. */
        if (!t->id_to_str[ids[i]]) continue;
        if ((flags & HK_TOK_SKIP_SPECIAL) && t->id_special[ids[i]]) continue;
        toks[k] = t->id_to_str[ids[i]];
        lens[k] = t->id_len[ids[i]];
        k++;
    }
    const bool ok = hk_decode_tokens(t->decoder, toks, lens, k, raw, out);
    free(toks);
    free(lens);
    return ok ? HK_OK : oom(t);
}

hk_status hk_tokenizer_decode(const hk_tokenizer *t, const int32_t *ids, size_t n,
                              unsigned flags, char **out_text, size_t *out_len) {
    if (!t || (!ids && n) || !out_text)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_tokenizer_decode: NULL argument");
    *out_text = NULL;
    hk_sbuf out = {0};
    const hk_status s = decode_impl(t, ids, n, flags, false, &out);
    if (s) {
        hk_sbuf_free(&out);
        return s;
    }
    if (out_len) *out_len = out.len;
    *out_text = out.p;
    return HK_OK;
}

const char *hk_tokenizer_token_str(const hk_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->vocab_size) return NULL;
    return t->id_to_str[id];
}

/* Append s[0, n) escaped Python-repr style (no quotes) to buf[*k, cap). */
static void escape_into(const char *s, size_t n, char *buf, size_t cap, size_t *k) {
    for (size_t i = 0; i < n;) {
        char tmp[16];
        size_t tl;
        const unsigned char c = (unsigned char)s[i];
        const size_t cl = hk_utf8_valid_len((const unsigned char *)s + i, n - i);
        size_t adv = 1;
        if (c == '\\' || c == '\'') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            tl = 2;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            tmp[0] = '\\';
            tmp[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
            tl = 2;
        } else if (c < 0x20 || c == 0x7f || !cl) {
            tl = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c);
        } else {
            size_t l;
            const uint32_t cp = hk_utf8_decode((const unsigned char *)s + i, &l);
            if ((cp >= 0x80 && cp < 0xA0) || cp == 0xAD || (cp >= 0x200B && cp <= 0x200F) ||
                (cp >= 0x2028 && cp <= 0x202E) || cp == 0xFEFF) {
                tl = (size_t)snprintf(tmp, sizeof tmp, cp < 0x100 ? "\\x%02x" : "\\u%04x", cp);
            } else {
                memcpy(tmp, s + i, cl);
                tl = cl;
            }
            adv = cl;
        }
        if (*k + tl >= cap) break;
        memcpy(buf + *k, tmp, tl);
        *k += tl;
        i += adv;
    }
}

char *hk_tokenizer_token_display(const hk_tokenizer *t, int32_t id, char *buf, size_t cap) {
    if (!buf || !cap) return buf;
    buf[0] = '\0';
    if (!t || id < 0 || id >= t->vocab_size || !t->id_to_str[id]) {
        snprintf(buf, cap, "<id %d?>", id);
        return buf;
    }
    hk_sbuf out = {0};
    if (decode_impl(t, &id, 1, 0, true, &out) != HK_OK) {
        hk_sbuf_free(&out);
        snprintf(buf, cap, "<id %d?>", id);
        return buf;
    }
    size_t k = 0;
    if (cap > 2) {
        buf[k++] = '\'';
        escape_into(out.p ? out.p : "", out.len, buf, cap - 1, &k);
        buf[k++] = '\'';
    }
    buf[k] = '\0';
    hk_sbuf_free(&out);
    return buf;
}

static bool has_byte_level(const hk_pretok *p) {
    if (!p) return false;
    if (p->kind == HK_PRE_BYTE_LEVEL) return true;
    for (size_t i = 0; i < p->n_items; i++)
        if (has_byte_level(&p->items[i])) return true;
    return false;
}

const char *hk_tokenizer_kind(const hk_tokenizer *t) {
    if (!t) return "";
    if (t->model.kind == HK_MODEL_WORDPIECE) return "WordPiece";
    if (has_byte_level(t->pretok)) return "BPE (byte-level)";
    if (t->model.byte_fallback) return "BPE (byte fallback)";
    return "BPE";
}

int32_t hk_tokenizer_token_to_id(const hk_tokenizer *t, const char *str, size_t len) {
    if (!t || !str) return -1;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].content, str, len) == 0)
            return t->added[i].id;
    return hk_strmap_get(&t->model.vocab, str, len);
}

int64_t hk_tokenizer_vocab_size(const hk_tokenizer *t) { return t ? t->vocab_size : 0; }

int32_t hk_tokenizer_special_id(const hk_tokenizer *t, hk_special_token which) {
    if (!t || (int)which < 0 || (int)which > 3) return -1;
    return t->special[which];
}

hk_status hk_tokenizer_set_special_id(hk_tokenizer *t, hk_special_token which, int32_t id) {
    if (!t || (int)which < 0 || (int)which > 3)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_tokenizer_set_special_id: bad argument");
    if (id < -1 || id >= t->vocab_size)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_tokenizer_set_special_id: id %d is outside the vocabulary (%lld ids)",
                         id, (long long)t->vocab_size);
    t->special[which] = id;
    return HK_OK;
}

bool hk_tokenizer_adds_bos(const hk_tokenizer *t) {
    return t && t->special[HK_TOK_BOS] >= 0 && t->post.n_pre > 0 &&
           t->post.pre[0] == t->special[HK_TOK_BOS];
}
