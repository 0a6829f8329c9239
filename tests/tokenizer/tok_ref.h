/* Reader of the tokenizer fixtures of tests/fixtures/tokenizers (see
 * make_tokenizer_fixtures.py): gzip'd blobs of n items with u32 offsets. */
#ifndef HK_TESTS_TOK_REF_H
#define HK_TESTS_TOK_REF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;
    uint32_t *off;      /* [n + 1] */
    unsigned char *data; /* bytes (corpus, decoded text) or u16 ids */
    size_t elem;         /* 1 for bytes, 2 for ids */
} tok_blob;

/* Load <fixtures>/tokenizers/<file>; false when the file is missing (other errors fail). */
bool tok_blob_load(const char *file, tok_blob *b);
void tok_blob_free(tok_blob *b);
/* Item i: pointer and element count. */
const unsigned char *tok_blob_item(const tok_blob *b, size_t i, size_t *count);
/* Id j of item i (ids blobs). */
int32_t tok_blob_id(const tok_blob *b, size_t i, size_t j);
/* "<fixtures>/tokenizers/<file>" */
void tok_fixture(const char *file, char *out, size_t cap);
/* A model folder in /tmp (dir, cap >= 32): fixture model `family`'s config.json and
 * model.safetensors, copied, and tokenizers/<tok>.json as tokenizer.json (tok NULL: none). */
void tok_model_dir(const char *family, const char *tok, char *dir, size_t cap);
/* rm -rf dir */
void tok_remove_dir(const char *dir);
/* s[0, n) escaped for a failure message (static buffer). */
const char *tok_escape(const void *s, size_t n);

#endif
