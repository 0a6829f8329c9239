/* Shared pieces of the memory estimate: saturating size arithmetic and the parts of a run that
 * the host (core/estimate.c) and device (core/estimate_device.c) estimates both count. */
#ifndef HK_CORE_ESTIMATE_INTERNAL_H
#define HK_CORE_ESTIMATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hookformer.h"
#include "model.h"

/* Saturating size arithmetic: an absurd request estimates as SIZE_MAX, never wraps. */
static inline size_t hk_est_mul(size_t a, size_t b) {
    return a && b > SIZE_MAX / a ? SIZE_MAX : a * b;
}
static inline size_t hk_est_add(size_t a, size_t b) { return b > SIZE_MAX - a ? SIZE_MAX : a + b; }
static inline size_t hk_est_max(size_t a, size_t b) { return a > b ? a : b; }

/* What both estimates count the same way for one run. */
typedef struct {
    bool session;        /* a KV cache (a causal model run through a session) */
    int64_t seq;         /* positions per feed */
    size_t state;        /* the forward's activation block, token ids and lengths */
    size_t extra;        /* per-layer buffers of hooked optional points and the MoE workspace */
    size_t scores;       /* the materialized scores chunk (attn_scores / pattern hooked) */
    size_t kv_cache;     /* the session's KV caches (f32, W slots on windowed layers) */
    size_t gather;       /* a windowed layer's gathered keys and values for one feed */
} hk_est_shared;

/* Sliding window of layer l under the model's mask (0: full attention). */
int64_t hk_est_layer_window(const hk_model *m, int64_t l);

/* The device memory of the run on one CUDA GPU (core/estimate_device.c): fills every part of
 * out but the host ones (runtime, mapping, load_other are 0; cached_hooks and the host copy of
 * the logits are host memory, outside the total). */
void hk_estimate_cuda(const hk_model *m, const hk_estimate_opts *o, const hk_est_shared *sh,
                      hk_estimate *out);

#endif
