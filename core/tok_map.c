#include "tok_map.h"

#include <stdlib.h>
#include <string.h>

uint64_t hk_hash_bytes(const char *s, size_t n) {
    /* FNV-1a with a final avalanche (splitmix64), never 0 (0 marks empty slots). */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h ? h : 1;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static bool strmap_alloc(hk_strmap *m, size_t cap) {
    m->hash = calloc(cap, sizeof *m->hash);
    m->key_off = malloc(cap * sizeof *m->key_off);
    m->key_len = malloc(cap * sizeof *m->key_len);
    m->val = malloc(cap * sizeof *m->val);
    m->cap = cap;
    return m->hash && m->key_off && m->key_len && m->val;
}

bool hk_strmap_init(hk_strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    return strmap_alloc(m, pow2_at_least(expected * 2 + 1));
}

void hk_strmap_free(hk_strmap *m) {
    free(m->hash);
    free(m->key_off);
    free(m->key_len);
    free(m->val);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

static size_t strmap_find(const hk_strmap *m, uint64_t h, const char *key, size_t len) {
    size_t i = (size_t)h & (m->cap - 1);
    for (;;) {
        if (!m->hash[i]) return i;
        if (m->hash[i] == h && m->key_len[i] == len &&
            memcmp(m->arena + m->key_off[i], key, len) == 0)
            return i;
        i = (i + 1) & (m->cap - 1);
    }
}

static bool strmap_grow(hk_strmap *m) {
    hk_strmap old = *m;
    if (!strmap_alloc(m, old.cap * 2)) {
        free(m->hash);
        free(m->key_off);
        free(m->key_len);
        free(m->val);
        *m = old;
        return false;
    }
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.hash[i]) continue;
        size_t j = (size_t)old.hash[i] & (m->cap - 1);
        while (m->hash[j]) j = (j + 1) & (m->cap - 1);
        m->hash[j] = old.hash[i];
        m->key_off[j] = old.key_off[i];
        m->key_len[j] = old.key_len[i];
        m->val[j] = old.val[i];
    }
    free(old.hash);
    free(old.key_off);
    free(old.key_len);
    free(old.val);
    return true;
}

bool hk_strmap_put(hk_strmap *m, const char *key, size_t len, int32_t val) {
    if ((m->n + 1) * 2 > m->cap && !strmap_grow(m)) return false;
    const uint64_t h = hk_hash_bytes(key, len);
    const size_t i = strmap_find(m, h, key, len);
    if (m->hash[i]) {
        m->val[i] = val;
        return true;
    }
    if (m->arena_len + len + 1 > m->arena_cap) {
        size_t nc = m->arena_cap ? m->arena_cap * 2 : 4096;
        while (nc < m->arena_len + len + 1) nc *= 2;
        char *a = realloc(m->arena, nc);
        if (!a) return false;
        m->arena = a;
        m->arena_cap = nc;
    }
    memcpy(m->arena + m->arena_len, key, len);
    m->arena[m->arena_len + len] = '\0';
    m->hash[i] = h;
    m->key_off[i] = m->arena_len;
    m->key_len[i] = (uint32_t)len;
    m->val[i] = val;
    m->arena_len += len + 1;
    m->n++;
    return true;
}

int32_t hk_strmap_get(const hk_strmap *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    const size_t i = strmap_find(m, hk_hash_bytes(key, len), key, len);
    return m->hash[i] ? m->val[i] : -1;
}

/* ---- u64 -> u64 ---------------------------------------------------------- */

static inline size_t mix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

static bool u64_alloc(hk_u64map *m, size_t cap) {
    m->keys = malloc(cap * sizeof *m->keys);
    m->vals = malloc(cap * sizeof *m->vals);
    if (!m->keys || !m->vals) return false;
    memset(m->keys, 0xff, cap * sizeof *m->keys);
    m->cap = cap;
    return true;
}

bool hk_u64map_init(hk_u64map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    return u64_alloc(m, pow2_at_least(expected * 2 + 1));
}

void hk_u64map_free(hk_u64map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static bool u64_grow(hk_u64map *m) {
    hk_u64map old = *m;
    if (!u64_alloc(m, old.cap * 2)) {
        free(m->keys);
        free(m->vals);
        *m = old;
        return false;
    }
    for (size_t i = 0; i < old.cap; i++) {
        if (old.keys[i] == UINT64_MAX) continue;
        size_t j = mix64(old.keys[i]) & (m->cap - 1);
        while (m->keys[j] != UINT64_MAX) j = (j + 1) & (m->cap - 1);
        m->keys[j] = old.keys[i];
        m->vals[j] = old.vals[i];
    }
    free(old.keys);
    free(old.vals);
    return true;
}

bool hk_u64map_put(hk_u64map *m, uint64_t key, uint64_t val) {
    if ((m->n + 1) * 2 > m->cap && !u64_grow(m)) return false;
    size_t i = mix64(key) & (m->cap - 1);
    while (m->keys[i] != UINT64_MAX) {
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return true;
        }
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return true;
}

bool hk_u64map_get(const hk_u64map *m, uint64_t key, uint64_t *val) {
    size_t i = mix64(key) & (m->cap - 1);
    while (m->keys[i] != UINT64_MAX) {
        if (m->keys[i] == key) {
            *val = m->vals[i];
            return true;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return false;
}
