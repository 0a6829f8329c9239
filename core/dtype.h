/* dtype names, sizes and conversions to f32 (f16, bf16). */
#ifndef HK_CORE_DTYPE_H
#define HK_CORE_DTYPE_H

#include "hookformer.h"

float hk_f16_to_f32(uint16_t h);
float hk_bf16_to_f32(uint16_t h);
uint16_t hk_f32_to_f16(float f);   /* round to nearest even */
uint16_t hk_f32_to_bf16(float f);  /* round to nearest even */

/* Convert n elements of src (dtype dt, any alignment) to f32 in dst. dt must be F32/F16/BF16. */
void hk_convert_to_f32(hk_dtype dt, const void *src, float *dst, size_t n);

#endif
