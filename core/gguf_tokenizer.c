/* A tokenizer from GGUF metadata (tokenizer.ggml.*), built as the tokenizer.json tree that
 * describes the same tokenizer and handed to hk_tokenizer_from_json.
 *
 *   tokenizer.ggml.model "gpt2"  -> model BPE (vocab from tokens, merges "a b"), ByteLevel
 *                                   decoder; the pre-tokenizer follows tokenizer.ggml.pre as
 *                                   llama.cpp does (see pre_tokenizer below)
 *   tokenizer.ggml.token_type    -> 3 (control) = special added token, 4 (user-defined) =
 *                                   plain added token, both matched whole and not normalized
 *   bos/eos/unknown/padding_token_id -> the special ids
 *   add_bos_token                -> a TemplateProcessing post-processor that puts BOS first
 *   tokenizer.ggml.model "llama" -> SentencePiece: gguf_tokenizer_spm.c (merges recovered
 *                                   from the scores), BOS added unless add_bos_token is false */
#include "gguf_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gguf_tokenizer_spm.h"
#include "tokenizer.h"

/* Split patterns of the pre-tokenizer types llama.cpp names in tokenizer.ggml.pre. */
#define LLAMA3_SPLIT                                                                         \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_SPLIT                                                                          \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"     \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef enum { PRE_GPT2, PRE_DIGITS_GPT2, PRE_LLAMA3, PRE_QWEN2 } pre_kind;

static const struct {
    const char *name;
    pre_kind kind;
} pre_names[] = {
    {"default", PRE_GPT2},         {"gpt-2", PRE_GPT2},          {"gpt2", PRE_GPT2},
    {"mpt", PRE_GPT2},             {"olmo", PRE_GPT2},           {"jais", PRE_GPT2},
    /* a lone \p{N} split first, then GPT-2's regex (llama.cpp's "smollm" group; the same as
     * the Digits(individual_digits) + ByteLevel of SmolLM2's tokenizer.json) */
    {"smollm", PRE_DIGITS_GPT2},   {"starcoder", PRE_DIGITS_GPT2}, {"refact", PRE_DIGITS_GPT2},
    {"command-r", PRE_DIGITS_GPT2}, {"codeshell", PRE_DIGITS_GPT2}, {"exaone", PRE_DIGITS_GPT2},
    {"minerva-7b", PRE_DIGITS_GPT2},
    {"llama-bpe", PRE_LLAMA3},     {"llama3", PRE_LLAMA3},       {"llama-v3", PRE_LLAMA3},
    {"smaug-bpe", PRE_LLAMA3},     {"dbrx", PRE_LLAMA3},         {"falcon3", PRE_LLAMA3},
    {"pixtral", PRE_LLAMA3},
    {"qwen2", PRE_QWEN2},          {"deepseek-r1-qwen", PRE_QWEN2}, {"megrez", PRE_QWEN2},
};

static cJSON *byte_level(bool use_regex) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", false);
    cJSON_AddBoolToObject(o, "trim_offsets", true);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

static cJSON *pre_tokenizer(pre_kind kind) {
    if (kind == PRE_GPT2) return byte_level(true);
    cJSON *seq = cJSON_CreateObject(), *list = cJSON_CreateArray(), *first = cJSON_CreateObject();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON_AddItemToObject(seq, "pretokenizers", list);
    if (kind == PRE_DIGITS_GPT2) {
        cJSON_AddStringToObject(first, "type", "Digits");
        cJSON_AddBoolToObject(first, "individual_digits", true);
    } else {
        cJSON *pat = cJSON_CreateObject();
        cJSON_AddStringToObject(pat, "Regex", kind == PRE_LLAMA3 ? LLAMA3_SPLIT : QWEN2_SPLIT);
        cJSON_AddStringToObject(first, "type", "Split");
        cJSON_AddItemToObject(first, "pattern", pat);
        cJSON_AddStringToObject(first, "behavior", "Isolated");
        cJSON_AddBoolToObject(first, "invert", false);
    }
    cJSON_AddItemToArray(list, first);
    cJSON_AddItemToArray(list, byte_level(kind == PRE_DIGITS_GPT2));
    return seq;
}

/* GPT-2's byte-to-character map: bytes 33..126, 161..172, 174..255 stand for themselves; the
 * other 68 bytes take code points 256.. in byte order. */
static unsigned byte_char(unsigned b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256 + n;
}

static size_t put_utf8(unsigned cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | cp >> 6); /* every mapped code point is below 0x800 */
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* Is every character of s one of the 256 byte-level characters? (UTF-8 decoded; anything
 * malformed or outside U+0000..U+0143 says no.) */
static bool byte_level_spelled(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)s[i];
        unsigned cp;
        if (c < 0x80) {
            cp = c;
            i++;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < n && ((unsigned char)s[i + 1] & 0xC0) == 0x80) {
            cp = (unsigned)(c & 0x1F) << 6 | ((unsigned char)s[i + 1] & 0x3F);
            i += 2;
        } else {
            return false;
        }
        if (cp > 323 || !((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || cp >= 174))
            return false;
    }
    return true;
}

/* The token as a NUL-terminated string: as stored when byte-level spelled, else each UTF-8
 * byte respelled (as transformers' GGUF loader does for such tokens). NULL when out of memory
 * or the token holds a NUL byte. */
static char *token_text(const hk_gguf_str *t, bool *respelled) {
    *respelled = !byte_level_spelled(t->p, (size_t)t->len);
    if (memchr(t->p, 0, (size_t)t->len)) return NULL;
    char *s = malloc(*respelled ? 2 * (size_t)t->len + 1 : (size_t)t->len + 1);
    if (!s) return NULL;
    if (!*respelled) {
        memcpy(s, t->p, (size_t)t->len);
        s[t->len] = '\0';
        return s;
    }
    size_t k = 0;
    for (uint64_t i = 0; i < t->len; i++) k += put_utf8(byte_char((unsigned char)t->p[i]), s + k);
    s[k] = '\0';
    return s;
}

static hk_status nomem(const hk_gguf *g) {
    return hk_errorf(HK_ERR_NOMEM, "%s: out of memory building the tokenizer", g->path);
}

static hk_status string_array(const hk_gguf *g, const char *key, bool required,
                              const hk_gguf_kv **out) {
    *out = hk_gguf_find(g, key);
    if (!*out)
        return required ? hk_errorf(HK_ERR_NOT_FOUND, "%s: tokenizer metadata '%s' is missing",
                                    g->path, key)
                        : HK_OK;
    if ((*out)->type != HK_GGUF_ARRAY || (*out)->elem != HK_GGUF_STRING)
        return hk_errorf(HK_ERR_FORMAT, "%s: tokenizer metadata '%s' must be an array of strings",
                         g->path, key);
    return HK_OK;
}

/* model {type BPE, vocab, merges} and added_tokens from the token list and token types. */
static hk_status build_vocab(const hk_gguf *g, cJSON *root, int64_t *n_tokens) {
    const hk_gguf_kv *tokens, *merges, *types = hk_gguf_find(g, "tokenizer.ggml.token_type");
    hk_status st;
    if ((st = string_array(g, "tokenizer.ggml.tokens", true, &tokens)) ||
        (st = string_array(g, "tokenizer.ggml.merges", true, &merges)))
        return st;
    if (types && (types->type != HK_GGUF_ARRAY || types->n != tokens->n ||
                  types->elem == HK_GGUF_STRING || types->elem == HK_GGUF_F32 ||
                  types->elem == HK_GGUF_F64))
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: tokenizer.ggml.token_type must be an integer array of %llu entries "
                         "(one per token)", g->path, (unsigned long long)tokens->n);
    if (tokens->n == 0 || tokens->n > INT32_MAX)
        return hk_errorf(HK_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", g->path,
                         (unsigned long long)tokens->n);
    *n_tokens = (int64_t)tokens->n;
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    if (!model || !added) return nomem(g);
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *mlist = cJSON_AddArrayToObject(model, "merges");
    if (!vocab || !mlist) return nomem(g);
    for (uint64_t i = 0; i < tokens->n; i++) {
        bool respelled;
        char *text = token_text(&tokens->strs[i], &respelled);
        if (!text) {
            if (memchr(tokens->strs[i].p, 0, (size_t)tokens->strs[i].len))
                return hk_errorf(HK_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%llu] holds a NUL byte",
                                 g->path, (unsigned long long)i);
            return nomem(g);
        }
        const int64_t type = types ? hk_gguf_arr_int(types, i) : 1;
        /* control tokens that are not byte-level spelled are llama.cpp mislabels (transformers
         * skips them too) */
        if (type == 4 || (type == 3 && !respelled)) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", text);
            cJSON_AddBoolToObject(a, "special", type == 3);
            cJSON_AddBoolToObject(a, "normalized", false);
            cJSON_AddItemToArray(added, a);
        }
        cJSON *id = cJSON_CreateNumber((double)i);
        if (!id) {
            free(text);
            return nomem(g);
        }
        cJSON_AddItemToObject(vocab, text, id);
        free(text);
    }
    for (uint64_t i = 0; i < merges->n; i++) {
        const hk_gguf_str *m = &merges->strs[i];
        if (memchr(m->p, 0, (size_t)m->len) || !memchr(m->p, ' ', (size_t)m->len))
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: tokenizer.ggml.merges[%llu] must be two tokens separated by a "
                             "space", g->path, (unsigned long long)i);
        char *s = malloc((size_t)m->len + 1);
        if (!s) return nomem(g);
        memcpy(s, m->p, (size_t)m->len);
        s[m->len] = '\0';
        cJSON_AddItemToArray(mlist, cJSON_CreateString(s));
        free(s);
    }
    return HK_OK;
}

/* A special id key, checked against the vocabulary (-1 when absent). */
static hk_status special_id(const hk_gguf *g, const char *key, int64_t n_tokens, int32_t *out) {
    int64_t v = -1;
    hk_status st = hk_gguf_get_int(g, key, false, &v);
    if (st) return st;
    if (v >= n_tokens)
        return hk_errorf(HK_ERR_FORMAT, "%s: %s is %lld, past the %lld tokens", g->path, key,
                         (long long)v, (long long)n_tokens);
    *out = v < 0 ? -1 : (int32_t)v;
    return HK_OK;
}

static void add_bos_post(cJSON *root, int32_t bos, const char *bos_text) {
    cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(post, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(post, "single");
    cJSON *s0 = cJSON_CreateObject(), *s1 = cJSON_CreateObject();
    cJSON *st = cJSON_AddObjectToObject(s0, "SpecialToken");
    cJSON_AddStringToObject(st, "id", bos_text);
    cJSON_AddNumberToObject(st, "type_id", 0);
    cJSON *seq = cJSON_AddObjectToObject(s1, "Sequence");
    cJSON_AddStringToObject(seq, "id", "A");
    cJSON_AddNumberToObject(seq, "type_id", 0);
    cJSON_AddItemToArray(single, s0);
    cJSON_AddItemToArray(single, s1);
    cJSON *specials = cJSON_AddObjectToObject(post, "special_tokens");
    cJSON *entry = cJSON_AddObjectToObject(specials, bos_text);
    cJSON_AddStringToObject(entry, "id", bos_text);
    cJSON *ids = cJSON_AddArrayToObject(entry, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateNumber(bos));
    cJSON *toks = cJSON_AddArrayToObject(entry, "tokens");
    cJSON_AddItemToArray(toks, cJSON_CreateString(bos_text));
}

/* Special ids, then the tokenizer, from a finished tree (both paths). */
static hk_status finish(const hk_gguf *g, cJSON *root, int32_t bos, int32_t eos, int32_t unk,
                        int32_t pad, hk_tokenizer **out) {
    char origin[1100];
    snprintf(origin, sizeof origin, "%s: tokenizer metadata", g->path);
    hk_status st = hk_tokenizer_from_json(root, origin, out);
    if (st) return st;
    const struct {
        hk_special_token which;
        int32_t id;
    } specials[] = {{HK_TOK_BOS, bos}, {HK_TOK_EOS, eos}, {HK_TOK_UNK, unk}, {HK_TOK_PAD, pad}};
    for (size_t i = 0; i < 4 && !st; i++)
        st = hk_tokenizer_set_special_id(*out, specials[i].which, specials[i].id);
    if (st) {
        hk_tokenizer_free(*out);
        *out = NULL;
    }
    return st;
}

static hk_status spm_tokenizer(const hk_gguf *g, hk_tokenizer **out) {
    char arch[64] = "";
    hk_status st = hk_gguf_get_str(g, "general.architecture", false, arch, sizeof arch);
    if (st) return st;
    const spm_shape shape = strncmp(arch, "gemma", 5) == 0 ? SPM_GEMMA
                            : strcmp(arch, "phi3") == 0    ? SPM_PHI3
                                                           : SPM_LLAMA;
    cJSON *root = cJSON_CreateObject();
    if (!root) return nomem(g);
    int64_t n = 0;
    char **texts = NULL;
    int32_t bos = -1, eos = -1, unk = -1, pad = -1;
    bool add_bos = true; /* llama.cpp and transformers add BOS unless the file says not to */
    if ((st = hk_gguf_spm_tree(g, shape, root, &n, &texts)) ||
        (st = special_id(g, "tokenizer.ggml.bos_token_id", n, &bos)) ||
        (st = special_id(g, "tokenizer.ggml.eos_token_id", n, &eos)) ||
        (st = special_id(g, "tokenizer.ggml.unknown_token_id", n, &unk)) ||
        (st = special_id(g, "tokenizer.ggml.padding_token_id", n, &pad)) ||
        (st = hk_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", false, &add_bos)))
        goto done;
    if (shape == SPM_GEMMA && unk >= 0) /* GemmaTokenizer names its unknown token */
        cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(root, "model"), "unk_token",
                                texts[unk]);
    if (add_bos && bos >= 0) add_bos_post(root, bos, texts[bos]);
    st = finish(g, root, bos, eos, unk, pad, out);
done:
    for (int64_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
    cJSON_Delete(root);
    return st;
}

hk_status hk_gguf_tokenizer(const hk_gguf *g, hk_tokenizer **out) {
    if (!g || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_gguf_tokenizer: NULL argument");
    *out = NULL;
    char model[32] = "", pre[64] = "default";
    hk_status st = hk_gguf_get_str(g, "tokenizer.ggml.model", true, model, sizeof model);
    if (st || (st = hk_gguf_get_str(g, "tokenizer.ggml.pre", false, pre, sizeof pre))) return st;
    const bool spm = strcmp(model, "llama") == 0;
    if (strcmp(model, "gpt2") != 0 && !spm)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: tokenizer.ggml.model \"%s\" is not supported (hookformer builds "
                         "\"gpt2\" (byte-level BPE) and \"llama\" (SentencePiece) tokenizers "
                         "from GGUF metadata)", g->path, model);
    if (spm) return spm_tokenizer(g, out);
    int kind = -1;
    for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++)
        if (strcmp(pre, pre_names[i].name) == 0) kind = (int)pre_names[i].kind;
    if (kind < 0)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: tokenizer.ggml.pre \"%s\" is not a pre-tokenizer hookformer knows "
                         "(gpt-2, smollm, llama-bpe, qwen2 and their aliases)", g->path, pre);
    cJSON *root = cJSON_CreateObject();
    if (!root) return nomem(g);
    int64_t n_tokens = 0;
    int32_t bos = -1, eos = -1, unk = -1, pad = -1;
    bool add_bos = false;
    if ((st = build_vocab(g, root, &n_tokens)) ||
        (st = special_id(g, "tokenizer.ggml.bos_token_id", n_tokens, &bos)) ||
        (st = special_id(g, "tokenizer.ggml.eos_token_id", n_tokens, &eos)) ||
        (st = special_id(g, "tokenizer.ggml.unknown_token_id", n_tokens, &unk)) ||
        (st = special_id(g, "tokenizer.ggml.padding_token_id", n_tokens, &pad)) ||
        (st = hk_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", false, &add_bos)))
        goto done;
    cJSON_AddItemToObject(root, "normalizer", cJSON_CreateNull());
    cJSON_AddItemToObject(root, "pre_tokenizer", pre_tokenizer((pre_kind)kind));
    cJSON *dec = byte_level(true);
    cJSON_AddItemToObject(root, "decoder", dec);
    if (add_bos && bos >= 0) {
        const hk_gguf_kv *tokens = hk_gguf_find(g, "tokenizer.ggml.tokens");
        bool respelled;
        char *text = token_text(&tokens->strs[bos], &respelled);
        if (!text) {
            st = nomem(g);
            goto done;
        }
        add_bos_post(root, bos, text);
        free(text);
    }
    st = finish(g, root, bos, eos, unk, pad, out);
done:
    cJSON_Delete(root);
    return st;
}
