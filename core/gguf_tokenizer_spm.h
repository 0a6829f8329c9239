/* SentencePiece GGUF vocabularies as a tokenizer.json tree (core/gguf_tokenizer_spm.c); the
 * rest of the tree (special ids, BOS post-processor) is gguf_tokenizer.c's. */
#ifndef HK_CORE_GGUF_TOKENIZER_SPM_H
#define HK_CORE_GGUF_TOKENIZER_SPM_H

#include <cjson/cJSON.h>

#include "gguf.h"

typedef enum { SPM_LLAMA = 0, SPM_PHI3, SPM_GEMMA } spm_shape;

/* Adds model, added_tokens, normalizer, pre_tokenizer and decoder to root. *texts: the n
 * token spellings (malloc'd array of malloc'd strings, also on error; free each and it). */
hk_status hk_gguf_spm_tree(const hk_gguf *g, spm_shape shape, cJSON *root, int64_t *n_tokens,
                           char ***texts);

#endif
