/* Rotary embedding tables: inverse frequencies from the canonical rope config, and cos/sin
 * rows for the positions a run actually uses (nothing is sized by max_position_embeddings). */
#ifndef HK_CORE_ROPE_H
#define HK_CORE_ROPE_H

#include <stdint.h>

#include "config.h"

/* inv_freq[rot_dim/2] for a run whose longest sequence spans `seq_len` positions (LongRoPE
 * picks short or long factors from it, as transformers does). *attn_factor receives the
 * multiplier applied to cos and sin (1 except for LongRoPE). */
void hk_rope_inv_freq(const hk_rope_config *r, int64_t seq_len, float *inv_freq,
                      float *attn_factor);

/* cos/sin rows [n, rot_dim/2] for positions pos[0..n). Matches HF: angle = f32(pos * inv_freq),
 * cos/sin of the f32 angle, times attn_factor. */
void hk_rope_table(const float *inv_freq, int64_t half, float attn_factor, const int64_t *pos,
                   int64_t n, float *cos_out, float *sin_out);

#endif
