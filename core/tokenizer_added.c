/* Added tokens: found in the text before the model runs, leftmost-longest (as Hugging Face's
 * Aho-Corasick matcher with MatchKind::LeftmostLongest), then filtered and widened by their
 * single_word / lstrip / rstrip flags. Tokens with normalized=false are matched on the raw
 * text; those with normalized=true on each normalized piece, by their normalized content. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "utf8.h"

static uint32_t last_char(const char *s, size_t n) {
    size_t st = n - 1;
    while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
    size_t cl;
    return hk_utf8_decode((const unsigned char *)s + st, &cl);
}

static bool ends_with_word(const char *s, size_t n) {
    if (!n) return false;
    const uint32_t c = last_char(s, n);
    return hk_uc_is_alnum(c) || c == '_';
}

static bool starts_with_word(const char *s, size_t n) {
    if (!n) return false;
    size_t cl;
    const uint32_t c = hk_utf8_decode((const unsigned char *)s, &cl);
    return hk_uc_is_alnum(c) || c == '_';
}

/* Longest token of the set matching at s[pos..]; -1 when none. */
static long match_at(const hk_added_set *set, const char *s, size_t n, size_t pos) {
    const unsigned char c = (unsigned char)s[pos];
    long best = -1;
    size_t best_len = 0;
    for (uint32_t k = set->first[c]; k < set->first[c] + set->count[c]; k++) {
        const size_t len = set->len[k];
        if (len > best_len && len <= n - pos && memcmp(s + pos, set->text[k], len) == 0) {
            best = (long)k;
            best_len = len;
        }
    }
    return best;
}

void hk_added_split(const hk_tokenizer *t, const hk_added_set *set, const char *s, size_t n,
                    bool at_start, hk_pieces *out) {
    size_t start_offset = 0;
    size_t pos = 0;
    while (set->n && pos < n) {
        const long k = match_at(set, s, n, pos);
        if (k < 0) {
            pos++;
            continue;
        }
        const hk_added_token *tok = &t->added[set->idx[k]];
        size_t start = pos, stop = pos + set->len[k];
        pos = stop; /* matches never overlap */
        if (tok->single_word) {
            const bool start_space = start == 0 || !ends_with_word(s, start);
            const bool stop_space = stop == n || !starts_with_word(s + stop, n - stop);
            if (!start_space || !stop_space) continue;
        }
        if (tok->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t st = ns - 1;
                while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
                size_t cl;
                if (!hk_uc_is_whitespace(hk_utf8_decode((const unsigned char *)s + st, &cl)))
                    break;
                ns = st;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (tok->rstrip) {
            while (stop < n) {
                size_t cl;
                if (!hk_uc_is_whitespace(hk_utf8_decode((const unsigned char *)s + stop, &cl)))
                    break;
                stop += cl;
            }
        }
        if (start_offset < start)
            hk_pieces_push(out, s + start_offset, start - start_offset, -1,
                           at_start && start_offset == 0);
        hk_pieces_push(out, s + start, stop - start, tok->id, at_start && start == 0);
        start_offset = stop;
        if (pos < stop) pos = stop;
    }
    if (start_offset < n)
        hk_pieces_push(out, s + start_offset, n - start_offset, -1, at_start && start_offset == 0);
}
