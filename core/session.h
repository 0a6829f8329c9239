/* KV cache of a session: per layer, keys and values of every sequence, either for every
 * position up to max_len, or in a rolling buffer of W slots (slot = pos mod W) for
 * sliding-window layers, Mistral-style. */
#ifndef HK_CORE_SESSION_H
#define HK_CORE_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "hookformer.h"

typedef struct {
    float *k;      /* [batch, slots, n_kv_heads * d_head] */
    float *v;      /* [batch, slots, n_kv_heads * d_head] */
    int64_t slots; /* max_len, or W when rolling */
    bool rolling;
} hk_kv_layer;

struct hk_session {
    hk_model *model;
    int64_t batch, max_len;
    int64_t pos;          /* positions fed so far */
    hk_kv_layer *layers;  /* [n_layers] */
    size_t bytes;
};

#endif
