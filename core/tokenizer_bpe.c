/* The BPE model of tokenizer.json: a word becomes its characters' ids (with byte fallback or
 * the unknown token for characters outside the vocabulary), then merges apply lowest rank
 * first, leftmost first among equal ranks, as Hugging Face's Word::merge_all does. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "utf8.h"

typedef struct {
    int32_t id;
    int32_t prev, next; /* neighbour indexes, -1 at the ends */
    uint32_t len;       /* bytes covered; 0 once merged into its left neighbour */
} sym;

typedef struct {
    uint32_t rank, pos;
    int32_t new_id;
} merge_entry;

typedef struct {
    merge_entry *v;
    size_t n, cap;
} heap;

static bool entry_less(const merge_entry *a, const merge_entry *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static bool heap_push(heap *h, merge_entry e) {
    if (h->n == h->cap) {
        const size_t nc = h->cap ? h->cap * 2 : 32;
        merge_entry *v = realloc(h->v, nc * sizeof *v);
        if (!v) return false;
        h->v = v;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        const size_t p = (i - 1) / 2;
        if (!entry_less(&e, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = e;
    return true;
}

static merge_entry heap_pop(heap *h) {
    const merge_entry top = h->v[0];
    const merge_entry last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && entry_less(&h->v[c + 1], &h->v[c])) c++;
        if (!entry_less(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static bool lookup_merge(const hk_tok_model *m, int32_t a, int32_t b, uint32_t *rank,
                         int32_t *new_id) {
    uint64_t v;
    if (!hk_u64map_get(&m->merges, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b, &v))
        return false;
    *rank = (uint32_t)(v >> 32);
    *new_id = (int32_t)(uint32_t)v;
    return true;
}

typedef struct {
    sym *v;
    size_t n, cap;
} syms;

static bool sym_add(syms *w, int32_t id, uint32_t len) {
    if (w->n == w->cap) {
        const size_t nc = w->cap ? w->cap * 2 : 32;
        sym *v = realloc(w->v, nc * sizeof *v);
        if (!v) return false;
        w->v = v;
        w->cap = nc;
    }
    const int32_t i = (int32_t)w->n;
    w->v[w->n++] = (sym){id, i - 1, -1, len};
    if (i > 0) w->v[i - 1].next = i;
    return true;
}

static bool merge_all(const hk_tok_model *m, syms *w) {
    heap h = {0};
    bool ok = true;
    for (size_t i = 0; ok && i + 1 < w->n; i++) {
        uint32_t rank;
        int32_t nid;
        if (lookup_merge(m, w->v[i].id, w->v[i + 1].id, &rank, &nid))
            ok = heap_push(&h, (merge_entry){rank, (uint32_t)i, nid});
    }
    while (ok && h.n) {
        const merge_entry top = heap_pop(&h);
        sym *cur = &w->v[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        const int32_t next_pos = cur->next;
        const sym right = w->v[next_pos];
        uint32_t rank;
        int32_t nid;
        /* A stale entry: the pair it was made for has changed. */
        if (!lookup_merge(m, cur->id, right.id, &rank, &nid) || nid != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        w->v[next_pos].len = 0;
        if (right.next >= 0) w->v[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0 && lookup_merge(m, w->v[cur->prev].id, cur->id, &rank, &nid))
            ok = heap_push(&h, (merge_entry){rank, (uint32_t)cur->prev, nid});
        if (ok && cur->next >= 0 && lookup_merge(m, cur->id, w->v[cur->next].id, &rank, &nid))
            ok = heap_push(&h, (merge_entry){rank, top.pos, nid});
    }
    free(h.v);
    return ok;
}

bool hk_bpe_tokenize(const hk_tok_model *m, const char *s, size_t n, hk_ids *out) {
    if (!n) return true;
    if (m->ignore_merges) {
        const int32_t id = hk_strmap_get(&m->vocab, s, n);
        if (id >= 0) {
            hk_ids_push(out, id);
            return !out->oom;
        }
    }
    syms w = {0};
    char stack[256];
    char *buf = stack;
    const size_t need = n + m->cont_prefix_len + m->end_suffix_len + 8;
    if (need > sizeof stack && !(buf = malloc(need))) return false;
    bool ok = true;
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    bool have_unk = false;
    size_t i = 0;
    while (ok && i < n) {
        size_t cl = hk_utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!cl) cl = 1; /* not reached: text is repaired before it gets here */
        const bool first = i == 0, last = i + cl == n;
        size_t k = 0;
        if (!first && m->cont_prefix_len) {
            memcpy(buf, m->cont_prefix, m->cont_prefix_len);
            k = m->cont_prefix_len;
        }
        memcpy(buf + k, s + i, cl);
        k += cl;
        if (last && m->end_suffix_len) {
            memcpy(buf + k, m->end_suffix, m->end_suffix_len);
            k += m->end_suffix_len;
        }
        const int32_t id = hk_strmap_get(&m->vocab, buf, k);
        if (id >= 0) {
            if (have_unk) {
                ok = sym_add(&w, unk_id, unk_len);
                have_unk = false;
            }
            ok = ok && sym_add(&w, id, (uint32_t)cl);
            i += cl;
            continue;
        }
        if (m->byte_fallback) {
            /* Every byte of the (prefixed) string must have its <0xAB> token. */
            bool all = true;
            for (size_t j = 0; j < k; j++)
                if (m->byte_ids[(unsigned char)buf[j]] < 0) all = false;
            if (all) {
                for (size_t j = 0; ok && j < k; j++)
                    ok = sym_add(&w, m->byte_ids[(unsigned char)buf[j]], 1);
                i += cl;
                continue;
            }
        }
        if (m->unk_id >= 0) {
            if (have_unk && m->fuse_unk) {
                unk_len += (uint32_t)cl;
            } else {
                if (have_unk) ok = sym_add(&w, unk_id, unk_len);
                unk_id = m->unk_id;
                unk_len = (uint32_t)cl;
                have_unk = true;
            }
        }
        i += cl;
    }
    if (ok && have_unk) ok = sym_add(&w, unk_id, unk_len);
    if (ok) ok = merge_all(m, &w);
    for (size_t j = 0; ok && j < w.n; j++)
        if (w.v[j].len) hk_ids_push(out, w.v[j].id);
    if (buf != stack) free(buf);
    free(w.v);
    return ok && !out->oom;
}
