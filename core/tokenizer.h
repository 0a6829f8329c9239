/* Tokenizers from the tokenizer.json structure (internal entry points).
 * Loaders that do not read a tokenizer.json file (the GGUF reader) build a cJSON tree of the
 * same shape (model.type "BPE"/"WordPiece", model.vocab, model.merges as "a b" strings or
 * ["a", "b"] pairs, normalizer, pre_tokenizer, post_processor, decoder, added_tokens) and call
 * hk_tokenizer_from_json. */
#ifndef HK_CORE_TOKENIZER_H
#define HK_CORE_TOKENIZER_H

#include <cjson/cJSON.h>

#include "hookformer.h"

/* Build a tokenizer from a parsed tokenizer.json. origin names the source in error messages
 * ("/models/x/tokenizer.json", "model.gguf: tokenizer metadata"). root is not kept. */
hk_status hk_tokenizer_from_json(const cJSON *root, const char *origin, hk_tokenizer **out);

/* Name special tokens from a tokenizer_config.json object (bos_token, eos_token, pad_token,
 * unk_token: strings or {"content": ...}); tokens it names that the vocabulary lacks are
 * ignored. */
void hk_tokenizer_apply_config(hk_tokenizer *tok, const cJSON *config);

#endif
