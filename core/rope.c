#include "rope.h"

#include <math.h>

static void inv_freq_default(const hk_rope_config *r, float *inv_freq) {
    int64_t half = r->rot_dim / 2;
    for (int64_t i = 0; i < half; i++) {
        /* HF: 1 / base ** (arange(0, dim, 2).float() / dim), computed in f32 */
        float expo = (float)(2 * i) / (float)r->rot_dim;
        inv_freq[i] = (float)(1.0 / pow(r->theta, (double)expo));
    }
}

/* transformers' _compute_llama3_parameters: long wavelengths are divided by factor, short ones
 * kept, and the band between them interpolated. */
static void apply_llama3(const hk_rope_config *r, float *inv_freq) {
    const double pi = 3.14159265358979323846;
    double old_ctx = (double)r->original_max_pos;
    double low_wavelen = old_ctx / r->low_freq_factor;
    double high_wavelen = old_ctx / r->high_freq_factor;
    for (int64_t i = 0; i < r->rot_dim / 2; i++) {
        float f = inv_freq[i];
        float wavelen = (float)(2.0 * pi) / f;
        float scaled = wavelen > (float)low_wavelen ? f / (float)r->factor : f;
        bool medium = !(wavelen < (float)high_wavelen) && !(wavelen > (float)low_wavelen);
        if (medium) {
            float smooth = (float)((old_ctx / wavelen - r->low_freq_factor) /
                                   (r->high_freq_factor - r->low_freq_factor));
            scaled = (1.0f - smooth) * scaled / (float)r->factor + smooth * scaled;
        }
        inv_freq[i] = scaled;
    }
}

void hk_rope_inv_freq(const hk_rope_config *r, int64_t seq_len, float *inv_freq,
                      float *attn_factor) {
    int64_t half = r->rot_dim / 2;
    *attn_factor = 1.0f;
    switch (r->kind) {
    case HK_ROPE_DEFAULT: inv_freq_default(r, inv_freq); break;
    case HK_ROPE_LINEAR:
        inv_freq_default(r, inv_freq);
        for (int64_t i = 0; i < half; i++) inv_freq[i] /= (float)r->factor;
        break;
    case HK_ROPE_LLAMA3:
        inv_freq_default(r, inv_freq);
        apply_llama3(r, inv_freq);
        break;
    case HK_ROPE_LONGROPE: {
        /* HF: inv_freq = 1 / (ext_factors * base ** (arange(0, dim, 2).float() / dim)),
         * long factors once the run goes past original_max_position_embeddings. */
        const double *ext = seq_len > r->original_max_pos ? r->long_factor : r->short_factor;
        for (int64_t i = 0; i < half; i++) {
            float expo = (float)(2 * i) / (float)r->rot_dim;
            float base_pow = (float)pow(r->theta, (double)expo);
            inv_freq[i] = 1.0f / ((float)ext[i] * base_pow);
        }
        *attn_factor = (float)r->attention_factor;
        break;
    }
    }
}

void hk_rope_table(const float *inv_freq, int64_t half, float attn_factor, const int64_t *pos,
                   int64_t n, float *cos_out, float *sin_out) {
    for (int64_t t = 0; t < n; t++) {
        float p = (float)pos[t];
        for (int64_t i = 0; i < half; i++) {
            float angle = p * inv_freq[i];
            cos_out[t * half + i] = (float)cos((double)angle) * attn_factor;
            sin_out[t * half + i] = (float)sin((double)angle) * attn_factor;
        }
    }
}
