/* The SAE as loaded (hooks/sae_load.c), its maths (hooks/sae_math.c) and the splice into a
 * model's hooks (hooks/sae_attach.c). */
#ifndef HK_HOOKS_SAE_IMPL_H
#define HK_HOOKS_SAE_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "hookformer_sae.h"

struct hk_sae {
    hk_sae_arch arch;
    bool transcoder;
    int64_t d_in, d_sae, d_out, k;
    bool apply_b_dec_to_input;
    hk_sae_norm norm;
    char *hook, *hook_out, *path;
    const char *format;
    float *W_enc;     /* [d_in, d_sae] */
    float *W_dec;     /* [d_sae, d_out] */
    float *b_enc;     /* [d_sae] (gated: NULL) */
    float *b_dec;     /* [d_out] */
    float *threshold; /* [d_sae] jumprelu */
    float *b_gate, *b_mag, *r_mag; /* [d_sae] gated */
    float *W_mag;     /* [d_in, d_sae] gated: W_enc * exp(r_mag), rebuilt when mag_dirty */
    bool mag_dirty;
};

/* Scratch of one encode/decode over n rows; grown as needed. */
typedef struct {
    int64_t cap_rows;
    float *in;    /* [n, d_in] normalized input minus b_dec */
    float *gate;  /* [n, d_sae] gated: the gate pre-activation */
    float *scale; /* [n, 2] the norm's per-row factors (coeff, or mu and std) */
    float *idx;   /* [d_sae] topk: a work row */
} hk_sae_scratch;

void hk_sae_scratch_free(hk_sae_scratch *w);

/* The steps of SAELens's encode/decode, on contiguous rows:
 *   norm_in:  x [n, d_in] -> w->in (normalized, b_dec subtracted); remembers the factors
 *   pre:      w->in -> pre [n, d_sae]           (sae_in @ W_enc + b_enc; gated: magnitude path)
 *   act:      pre -> acts [n, d_sae]            (the architecture's activation; may alias pre
 *                                                except for gated and jumprelu — no: any alias)
 *   decode:   acts -> out [n, d_out]            (acts @ W_dec + b_dec)
 *   norm_out: out in place                      (undoes norm_in's scaling) */
hk_status hk_sae_norm_in(const hk_sae *s, hk_sae_scratch *w, const float *x, int64_t n);
hk_status hk_sae_pre(const hk_sae *s, hk_sae_scratch *w, int64_t n, float *pre);
void hk_sae_act(const hk_sae *s, hk_sae_scratch *w, int64_t n, const float *pre, float *acts);
void hk_sae_dec(const hk_sae *s, const float *acts, int64_t n, float *out);
void hk_sae_norm_out(const hk_sae *s, const hk_sae_scratch *w, int64_t n, float *out);

#endif
