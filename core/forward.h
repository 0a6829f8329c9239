/* What one call of the generic forward (core/forward.c) allocates, for the memory estimator
 * (core/estimate.c). Internal. */
#ifndef HK_CORE_FORWARD_H
#define HK_CORE_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hookformer.h"

/* Query chunk of the materialized attention path (scores/pattern hooked): the scores of one
 * chunk [n_heads, q_chunk, k_len] stay under this (at least one query row). */
#define HK_PATTERN_CHUNK_BYTES (32u << 20)

/* Bytes of the activation block one forward call allocates for tokens [batch, seq]:
 * residual, norms, q/k/v/z, attention and MLP outputs, norm scales, RoPE rows, positions. */
size_t hk_forward_state_bytes(const hk_config *c, int64_t batch, int64_t seq);
/* Bytes a mixture-of-experts layer allocates for `rows` tokens while it runs (the routed
 * experts' workspace, or the shared expert's, whichever is larger; 0 for a dense MLP). */
size_t hk_forward_moe_bytes(const hk_config *c, int64_t rows);

struct hk_model;
struct hk_hooks;
/* The forward over tokens [batch, seq] (every sequence seq long, positions from 0) from block
 * layer0 on: resid0 [batch, seq, d_model] is blocks.layer0.hook_resid_pre (hooks fire from
 * there; nothing before it runs). The patching sweeps start there from the corrupted run's
 * cached residual when no patch of a batch sits before layer0 (hooks/sweep.c). */
hk_status hk_forward_from_layer(struct hk_model *m, struct hk_hooks *hooks,
                                const int32_t *tokens, int64_t batch, int64_t seq,
                                int64_t layer0, const float *resid0, float *logits);

#endif
