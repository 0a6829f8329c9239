/* dtype names, sizes and conversions to f32 (f16, bf16). */
#ifndef HK_CORE_DTYPE_H
#define HK_CORE_DTYPE_H

#include <stdbool.h>

#include "hookformer.h"

float hk_f16_to_f32(uint16_t h);
float hk_bf16_to_f32(uint16_t h);
uint16_t hk_f32_to_f16(float f);   /* round to nearest even */
uint16_t hk_f32_to_bf16(float f);  /* round to nearest even */

/* Convert n elements of src (dtype dt, any alignment) to f32 in dst. dt must be F32/F16/BF16.
 * (Integer dtypes are converted by value; src and dst must not overlap.) Little-endian data. */
void hk_convert_to_f32(hk_dtype dt, const void *src, float *dst, size_t n);

/* Inverse of hk_convert_to_f32 for dt in F32/F16/BF16 (round to nearest even); dst may be
 * unaligned. Other dtypes: dst is left untouched and false is returned. */
bool hk_convert_from_f32(hk_dtype dt, const float *src, void *dst, size_t n);

/* Safetensors dtype name ("F32", "BF16", ...) -> dtype. false for names hookformer does not
 * support (F64, I8, BOOL, F8_E4M3, ...) and for unknown names. hk_dtype_name is the inverse. */
bool hk_dtype_from_name(const char *name, hk_dtype *out);

#endif
