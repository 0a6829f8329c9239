/* ggml tensor types as stored in GGUF files: block sizes, and dequantization to f32 of the
 * block formats hookformer reads (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K,
 * Q4_K, Q5_K, Q6_K). */
#ifndef HK_CORE_QUANT_H
#define HK_CORE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ggml_type numbers (the values GGUF tensor infos carry). */
enum {
    HK_GGML_F32 = 0,
    HK_GGML_F16 = 1,
    HK_GGML_Q4_0 = 2,
    HK_GGML_Q4_1 = 3,
    HK_GGML_Q5_0 = 6,
    HK_GGML_Q5_1 = 7,
    HK_GGML_Q8_0 = 8,
    HK_GGML_Q8_1 = 9,
    HK_GGML_Q2_K = 10,
    HK_GGML_Q3_K = 11,
    HK_GGML_Q4_K = 12,
    HK_GGML_Q5_K = 13,
    HK_GGML_Q6_K = 14,
    HK_GGML_Q8_K = 15,
    HK_GGML_BF16 = 30,
};

/* Block layout of a ggml type: `block` elements take `bytes` bytes. false for type numbers
 * hookformer does not know the layout of. */
bool hk_ggml_layout(uint32_t type, int64_t *block, int64_t *bytes);
/* "Q4_K", "F32", ... ("?" for unknown numbers). */
const char *hk_ggml_type_name(uint32_t type);
/* Can hk_dequantize convert this type? */
bool hk_ggml_can_dequantize(uint32_t type);

/* Dequantize n elements (a multiple of the type's block) from src (any alignment, blocks laid
 * out one after another) into dst[n]. The type must satisfy hk_ggml_can_dequantize. */
void hk_dequantize(uint32_t type, const void *src, float *dst, int64_t n);

#endif
