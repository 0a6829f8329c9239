/* The tokenizer a GGUF file describes in its tokenizer.ggml.* metadata. */
#ifndef HK_CORE_GGUF_TOKENIZER_H
#define HK_CORE_GGUF_TOKENIZER_H

#include "gguf.h"
#include "hookformer.h"

/* Byte-level BPE ("gpt2") vocabularies with the pre-tokenizer tokenizer.ggml.pre names;
 * HK_ERR_UNSUPPORTED for other tokenizer models and unknown pre-tokenizer names,
 * HK_ERR_NOT_FOUND when the metadata has no tokenizer, HK_ERR_FORMAT for malformed keys. */
hk_status hk_gguf_tokenizer(const hk_gguf *g, hk_tokenizer **out);

#endif
