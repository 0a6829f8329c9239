/* SentencePiece vocabularies in GGUF metadata (tokenizer.ggml.model "llama": Llama 2, Mistral,
 * Gemma, Phi-3): tokens, scores and token types but no merges. Built as the tokenizer.json tree
 * transformers' GGUF loader builds for them:
 *   model      BPE over the tokens as spelled, byte_fallback, fuse_unk; merges recovered from
 *              the vocabulary: every split of a token into two tokens (at code-point
 *              boundaries), ordered by the merged token's score (highest first), then the
 *              longer left and right pieces, then token order — transformers'
 *              generate_merges. Gemma's scores do not follow its merge order: the token's
 *              position does (score = -id), and its all-space tokens are spelled with U+2581.
 *   llama etc. Metaspace pre-tokenizer (prepend "first" unless add_space_prefix is false)
 *   phi3       Prepend U+2581 + Replace " " normalizer, no pre-tokenizer
 *   gemma*     Replace " " normalizer, Split " " (merged with previous), no prefix
 *   decoder    Replace U+2581 -> " ", ByteFallback, Fuse (+ Strip one leading space but Gemma) */
#include "gguf_tokenizer_spm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_map.h"

#define SPACE_MARK "\xE2\x96\x81" /* U+2581 */

typedef struct {
    int32_t l, r, merged; /* token ids */
    float score;          /* the merged token's */
    int32_t len_l, len_r; /* code points */
    int64_t order;        /* extraction order: stable ties */
} merge_cand;

static int cmp_cand(const void *pa, const void *pb) {
    const merge_cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->len_l != b->len_l) return a->len_l > b->len_l ? -1 : 1;
    if (a->len_r != b->len_r) return a->len_r > b->len_r ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* Within one token: by (left id, right id), as transformers sorts them. */
static int cmp_local(const void *pa, const void *pb) {
    const merge_cand *a = pa, *b = pb;
    if (a->l != b->l) return a->l < b->l ? -1 : 1;
    return a->r < b->r ? -1 : a->r > b->r;
}

static int32_t code_points(const char *s, size_t n) {
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static hk_status nomem(const hk_gguf *g) {
    return hk_errorf(HK_ERR_NOMEM, "%s: out of memory building the tokenizer", g->path);
}

/* texts[i] (NUL-terminated, owned by the caller): token i as the vocabulary spells it. */
static hk_status add_merges(const hk_gguf *g, char **texts, const float *scores, int64_t n,
                            cJSON *mlist) {
    hk_strmap map;
    if (!hk_strmap_init(&map, (size_t)n)) return nomem(g);
    for (int64_t i = 0; i < n; i++)
        if (!hk_strmap_put(&map, texts[i], strlen(texts[i]), (int32_t)i)) {
            hk_strmap_free(&map);
            return nomem(g);
        }
    size_t cap = (size_t)n + 16, count = 0;
    merge_cand *c = malloc(cap * sizeof *c);
    hk_status st = c ? HK_OK : nomem(g);
    for (int64_t i = 0; i < n && st == HK_OK; i++) {
        const char *t = texts[i];
        const size_t len = strlen(t);
        if (hk_strmap_get(&map, t, len) != (int32_t)i) continue; /* a duplicate spelling */
        const size_t first = count;
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)t[k] & 0xC0) == 0x80) continue; /* inside a code point */
            const int32_t l = hk_strmap_get(&map, t, k), r = hk_strmap_get(&map, t + k, len - k);
            if (l < 0 || r < 0) continue;
            if (count == cap) {
                merge_cand *grown = realloc(c, 2 * cap * sizeof *c);
                if (!grown) {
                    st = nomem(g);
                    break;
                }
                c = grown;
                cap *= 2;
            }
            c[count++] = (merge_cand){.l = l, .r = r, .merged = (int32_t)i, .score = scores[i],
                                      .len_l = code_points(t, k),
                                      .len_r = code_points(t + k, len - k)};
        }
        qsort(c + first, count - first, sizeof *c, cmp_local);
        for (size_t q = first; q < count; q++) c[q].order = (int64_t)q;
    }
    if (st == HK_OK) {
        qsort(c, count, sizeof *c, cmp_cand);
        for (size_t q = 0; q < count && st == HK_OK; q++) {
            cJSON *pair = cJSON_CreateArray();
            if (!pair || !cJSON_AddItemToArray(pair, cJSON_CreateString(texts[c[q].l])) ||
                !cJSON_AddItemToArray(pair, cJSON_CreateString(texts[c[q].r])) ||
                !cJSON_AddItemToArray(mlist, pair))
                st = nomem(g);
        }
    }
    free(c);
    hk_strmap_free(&map);
    return st;
}

static cJSON *replace(const char *from, const char *to) {
    cJSON *o = cJSON_CreateObject(), *pat = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "Replace");
    cJSON_AddStringToObject(pat, "String", from);
    cJSON_AddItemToObject(o, "pattern", pat);
    cJSON_AddStringToObject(o, "content", to);
    return o;
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

/* normalizer, pre_tokenizer and decoder of the family's shape */
static void add_pipeline(cJSON *root, spm_shape shape, bool prefix) {
    cJSON *dec = typed("Sequence"), *decs = cJSON_AddArrayToObject(dec, "decoders");
    cJSON_AddItemToArray(decs, replace(SPACE_MARK, " "));
    cJSON_AddItemToArray(decs, typed("ByteFallback"));
    cJSON_AddItemToArray(decs, typed("Fuse"));
    if (shape != SPM_GEMMA) {
        cJSON *strip = typed("Strip");
        cJSON_AddStringToObject(strip, "content", " ");
        cJSON_AddNumberToObject(strip, "start", 1);
        cJSON_AddNumberToObject(strip, "stop", 0);
        cJSON_AddItemToArray(decs, strip);
    }
    if (shape == SPM_GEMMA) {
        cJSON_AddItemToObject(root, "normalizer", replace(" ", SPACE_MARK));
        cJSON *split = typed("Split"), *pat = cJSON_CreateObject();
        cJSON_AddStringToObject(pat, "String", " ");
        cJSON_AddItemToObject(split, "pattern", pat);
        cJSON_AddStringToObject(split, "behavior", "MergedWithPrevious");
        cJSON_AddBoolToObject(split, "invert", false);
        cJSON_AddItemToObject(root, "pre_tokenizer", split);
    } else if (shape == SPM_PHI3) {
        cJSON *seq = typed("Sequence"), *list = cJSON_AddArrayToObject(seq, "normalizers");
        cJSON *pre = typed("Prepend");
        cJSON_AddStringToObject(pre, "prepend", SPACE_MARK);
        cJSON_AddItemToArray(list, pre);
        cJSON_AddItemToArray(list, replace(" ", SPACE_MARK));
        cJSON_AddItemToObject(root, "normalizer", seq);
        cJSON_AddItemToObject(root, "pre_tokenizer", cJSON_CreateNull());
    } else {
        cJSON_AddItemToObject(root, "normalizer", cJSON_CreateNull());
        cJSON *ms = typed("Metaspace");
        cJSON_AddStringToObject(ms, "replacement", SPACE_MARK);
        cJSON_AddStringToObject(ms, "prepend_scheme", prefix ? "first" : "never");
        cJSON_AddBoolToObject(ms, "split", false);
        cJSON_AddItemToObject(root, "pre_tokenizer", ms);
    }
    cJSON_AddItemToObject(root, "decoder", dec);
}

hk_status hk_gguf_spm_tree(const hk_gguf *g, spm_shape shape, cJSON *root, int64_t *n_tokens,
                           char ***texts_out) {
    const hk_gguf_kv *tokens = hk_gguf_find(g, "tokenizer.ggml.tokens");
    const hk_gguf_kv *scores = hk_gguf_find(g, "tokenizer.ggml.scores");
    const hk_gguf_kv *types = hk_gguf_find(g, "tokenizer.ggml.token_type");
    *texts_out = NULL;
    if (!tokens || tokens->type != HK_GGUF_ARRAY || tokens->elem != HK_GGUF_STRING ||
        tokens->n == 0 || tokens->n > INT32_MAX)
        return hk_errorf(HK_ERR_FORMAT, "%s: tokenizer.ggml.tokens must be a non-empty array of "
                                        "strings", g->path);
    const int64_t n = (int64_t)tokens->n;
    if (scores && (scores->type != HK_GGUF_ARRAY || scores->n != tokens->n ||
                   scores->elem == HK_GGUF_STRING))
        return hk_errorf(HK_ERR_FORMAT, "%s: tokenizer.ggml.scores must be a number array of "
                                        "%lld entries (one per token)", g->path, (long long)n);
    if (types && (types->type != HK_GGUF_ARRAY || types->n != tokens->n ||
                  types->elem == HK_GGUF_STRING))
        return hk_errorf(HK_ERR_FORMAT, "%s: tokenizer.ggml.token_type must be an integer array "
                                        "of %lld entries", g->path, (long long)n);
    bool prefix = true;
    hk_status st = hk_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", false, &prefix);
    if (st) return st;
    *n_tokens = n;
    char **texts = calloc((size_t)n, sizeof *texts);
    float *sc = malloc((size_t)n * sizeof *sc);
    if (!texts || !sc) {
        free(texts);
        free(sc);
        return nomem(g);
    }
    *texts_out = texts;
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *vocab = model ? cJSON_AddObjectToObject(model, "vocab") : NULL;
    if (!vocab || !added) st = nomem(g);
    for (int64_t i = 0; i < n && st == HK_OK; i++) {
        const hk_gguf_str *t = &tokens->strs[i];
        if (memchr(t->p, 0, (size_t)t->len)) {
            st = hk_errorf(HK_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%lld] holds a NUL byte",
                           g->path, (long long)i);
            break;
        }
        bool spaces = shape == SPM_GEMMA && t->len > 0;
        for (uint64_t k = 0; k < t->len && spaces; k++) spaces = t->p[k] == ' ';
        /* Gemma stores its all-space tokens with real spaces; the normalizer makes U+2581 */
        texts[i] = malloc(spaces ? 3 * (size_t)t->len + 1 : (size_t)t->len + 1);
        if (!texts[i]) {
            st = nomem(g);
            break;
        }
        if (spaces) {
            for (uint64_t k = 0; k < t->len; k++) memcpy(texts[i] + 3 * k, SPACE_MARK, 3);
            texts[i][3 * t->len] = '\0';
        } else {
            memcpy(texts[i], t->p, (size_t)t->len);
            texts[i][t->len] = '\0';
        }
        sc[i] = shape == SPM_GEMMA ? (float)-i : scores ? (float)hk_gguf_arr_num(scores, (uint64_t)i)
                                                        : 0.0f;
        const int64_t type = types ? hk_gguf_arr_int(types, (uint64_t)i) : 1;
        if (type == 2 || type == 3 || type == 4) { /* unknown, control, user-defined */
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", texts[i]);
            cJSON_AddBoolToObject(a, "special", type != 4);
            cJSON_AddBoolToObject(a, "normalized", false);
            cJSON_AddItemToArray(added, a);
        }
        cJSON_AddItemToObject(vocab, texts[i], cJSON_CreateNumber((double)i));
    }
    if (st == HK_OK) {
        cJSON_AddStringToObject(model, "type", "BPE");
        cJSON_AddBoolToObject(model, "byte_fallback", true);
        cJSON_AddBoolToObject(model, "fuse_unk", true);
        cJSON *mlist = cJSON_AddArrayToObject(model, "merges");
        st = mlist ? add_merges(g, texts, sc, n, mlist) : nomem(g);
    }
    if (st == HK_OK) add_pipeline(root, shape, prefix);
    free(sc);
    return st;
}
