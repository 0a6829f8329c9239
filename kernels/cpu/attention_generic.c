/* The attention tile loop for any target: GCC/Clang vector extensions, 4 floats per vector,
 * the SIMD width every baseline has (SSE2 on x86-64, NEON on aarch64). */
#define HK_ATTN_ITEM hk_attn_item_generic
#define HK_VL 4
#include "attention_tile.h"
