/* The WordPiece model (BERT): greedy longest-match-first over each word, pieces after the
 * first carrying the "##" prefix; a word with a piece outside the vocabulary, or longer than
 * max_input_chars_per_word characters, becomes the unknown token. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "utf8.h"

bool hk_wordpiece_tokenize(const hk_tok_model *m, const char *s, size_t n, hk_ids *out) {
    if (!n) return true;
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) chars++;
    if ((int64_t)chars > m->max_input_chars) {
        hk_ids_push(out, m->unk_id);
        return !out->oom;
    }
    const size_t mark = out->n;
    char stack[256];
    char *buf = stack;
    const size_t need = n + m->cont_prefix_len + 1;
    if (need > sizeof stack && !(buf = malloc(need))) return false;
    size_t start = 0;
    bool bad = false;
    while (start < n) {
        size_t end = n;
        int32_t found = -1;
        while (start < end) {
            size_t k = 0;
            if (start > 0) {
                memcpy(buf, m->cont_prefix, m->cont_prefix_len);
                k = m->cont_prefix_len;
            }
            memcpy(buf + k, s + start, end - start);
            k += end - start;
            found = hk_strmap_get(&m->vocab, buf, k);
            if (found >= 0) break;
            /* Drop the last character. */
            end--;
            while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80) end--;
        }
        if (found < 0) {
            bad = true;
            break;
        }
        hk_ids_push(out, found);
        start = end;
    }
    if (buf != stack) free(buf);
    if (bad) {
        out->n = mark;
        hk_ids_push(out, m->unk_id);
    }
    return !out->oom;
}
