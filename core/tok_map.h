/* Hash maps for the tokenizer: byte strings -> int32 ids (vocabularies), and 64-bit keys ->
 * 64-bit values (BPE merges: (left id, right id) -> (rank, merged id)). Open addressing,
 * power-of-two tables, keys copied into one arena. */
#ifndef HK_CORE_TOK_MAP_H
#define HK_CORE_TOK_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *hash;   /* [cap] 0 = empty slot */
    size_t *key_off;  /* [cap] offset of the key in arena */
    uint32_t *key_len; /* [cap] */
    int32_t *val;     /* [cap] */
    size_t cap, n;
    char *arena;
    size_t arena_len, arena_cap;
} hk_strmap;

/* Returns false on allocation failure. */
bool hk_strmap_init(hk_strmap *m, size_t expected);
void hk_strmap_free(hk_strmap *m);
/* Insert or overwrite. false on allocation failure. */
bool hk_strmap_put(hk_strmap *m, const char *key, size_t len, int32_t val);
/* Value of key, or -1 when absent. */
int32_t hk_strmap_get(const hk_strmap *m, const char *key, size_t len);

typedef struct {
    uint64_t *keys; /* [cap] UINT64_MAX = empty */
    uint64_t *vals; /* [cap] */
    size_t cap, n;
} hk_u64map;

bool hk_u64map_init(hk_u64map *m, size_t expected);
void hk_u64map_free(hk_u64map *m);
/* Insert or overwrite (a repeated merge keeps its last rank, as Hugging Face's map does). */
bool hk_u64map_put(hk_u64map *m, uint64_t key, uint64_t val);
/* true and *val when present. key must not be UINT64_MAX. */
bool hk_u64map_get(const hk_u64map *m, uint64_t key, uint64_t *val);

uint64_t hk_hash_bytes(const char *s, size_t n);

#endif
