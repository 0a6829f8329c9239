/* What one call of the generic forward (core/forward.c) allocates, for the memory estimator
 * (core/estimate.c). Internal. */
#ifndef HK_CORE_FORWARD_H
#define HK_CORE_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Query chunk of the materialized attention path (scores/pattern hooked): the scores of one
 * chunk [n_heads, q_chunk, k_len] stay under this (at least one query row). */
#define HK_PATTERN_CHUNK_BYTES (32u << 20)

/* Bytes of the activation block one forward call allocates for tokens [batch, seq]:
 * residual, norms, q/k/v/z, attention and MLP outputs, norm scales, RoPE rows, positions. */
size_t hk_forward_state_bytes(const hk_config *c, int64_t batch, int64_t seq);

#endif
