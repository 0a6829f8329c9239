/* A model's tokenizer: found beside the checkpoint or attached by a loader, and prompts
 * encoded with TransformerLens's BOS rule (default_prepend_bos per family). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "model.h"
#include "tokenizer_impl.h"

void hk_model_load_tokenizer(struct hk_model *m, const char *src) {
    struct stat sb;
    char dir[4096], path[4200];
    if (stat(src, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(dir, sizeof dir, "%s", src);
    } else {
        const char *slash = strrchr(src, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - src) : 1, slash ? src : ".");
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char note[4400];
    if (stat(path, &sb) != 0) {
        snprintf(note, sizeof note, "no tokenizer.json in %s", dir);
    } else {
        hk_tokenizer *tok = NULL;
        if (hk_tokenizer_load(path, &tok) == HK_OK) {
            m->tok = tok;
            hk_error_clear();
            return;
        }
        snprintf(note, sizeof note, "%s", hk_last_error());
        hk_error_clear();
    }
    free(m->tok_note);
    m->tok_note = strdup(note);
}

const hk_tokenizer *hk_model_tokenizer(const hk_model *m) { return m ? m->tok : NULL; }

void hk_model_set_tokenizer(hk_model *m, hk_tokenizer *tok) {
    if (!m) return;
    if (m->tok != tok) hk_tokenizer_free(m->tok);
    m->tok = tok;
    if (tok) {
        free(m->tok_note);
        m->tok_note = NULL;
    }
}

const char *hk_model_tokenizer_note(const hk_model *m) {
    if (!m || m->tok) return "";
    return m->tok_note ? m->tok_note : "no tokenizer attached";
}

bool hk_model_default_prepend_bos(const hk_model *m) {
    if (!m) return true;
    /* TransformerLens 3.9 (loading_from_pretrained.py): GPTNeoX, Qwen2 (and Bloom, Phi-1/2,
     * Qwen3, ...) set default_prepend_bos = False; everything else keeps True. */
    const char *f = m->cfg.family;
    return !(strcmp(f, "qwen2") == 0 || strcmp(f, "gpt_neox") == 0);
}

/* TransformerLens strips the EOS a post-processor appends (OLMo's tokenizer), keeping at
 * least one token: a prompt for a causal model does not end a document. */
static void strip_appended_eos(const hk_tokenizer *t, const int32_t *ids, size_t *n) {
    const int32_t eos = t->special[HK_TOK_EOS];
    if (eos < 0 || !t->post.n_post || t->post.post[t->post.n_post - 1] != eos) return;
    while (*n > 1 && ids[*n - 1] == eos) (*n)--;
}

hk_status hk_model_encode(const hk_model *m, const char *text, size_t len, hk_bos_mode bos,
                          int32_t **out_ids, size_t *out_count) {
    if (!m || (!text && len) || !out_ids || !out_count)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_encode: NULL argument");
    *out_ids = NULL;
    *out_count = 0;
    if (!m->tok)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: no tokenizer for text input (%s); pass token ids "
                         "instead",
                         m->source, m->tok_note ? m->tok_note : "none attached");
    const bool want = bos == HK_BOS_DEFAULT ? hk_model_default_prepend_bos(m) : bos == HK_BOS_YES;
    const int32_t bos_id = hk_tokenizer_special_id(m->tok, HK_TOK_BOS);
    const bool adds = hk_tokenizer_adds_bos(m->tok);
    if (!text) text = "";
    if (want && !adds && bos_id >= 0) {
        /* TransformerLens prepends the BOS token's text and encodes the whole. */
        const char *bs = hk_tokenizer_token_str(m->tok, bos_id);
        const size_t bl = strlen(bs);
        char *joined = malloc(bl + len + 1);
        if (!joined) return hk_errorf(HK_ERR_NOMEM, "hk_model_encode: out of memory");
        memcpy(joined, bs, bl);
        memcpy(joined + bl, text, len);
        const hk_status s =
            hk_tokenizer_encode(m->tok, joined, bl + len, HK_TOK_ADD_SPECIAL, out_ids, out_count);
        free(joined);
        if (s == HK_OK) strip_appended_eos(m->tok, *out_ids, out_count);
        return s;
    }
    const hk_status s = hk_tokenizer_encode(m->tok, text, len, HK_TOK_ADD_SPECIAL, out_ids,
                                            out_count);
    if (s) return s;
    if (!want && adds && *out_count > 0 && (*out_ids)[0] == bos_id) {
        memmove(*out_ids, *out_ids + 1, (*out_count - 1) * sizeof **out_ids);
        (*out_count)--;
    }
    strip_appended_eos(m->tok, *out_ids, out_count);
    return HK_OK;
}
