/* Order keys of the device sampler (kernels/cuda/sampling.cu), shared with its CPU emulation
 * in tests/kernels/test_sample_keys.c: integer keys whose order is the order hk_sample sorts
 * candidates in, so that top-k is a radix select and top-p and the draw are binary searches.
 * No NaN reaches these (the sampler rejects NaN first). */
#ifndef HK_KERNELS_COMMON_SAMPLE_KEYS_H
#define HK_KERNELS_COMMON_SAMPLE_KEYS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef HK_HOSTDEV
#ifdef __CUDACC__
#define HK_HOSTDEV __host__ __device__
#else
#define HK_HOSTDEV
#endif
#endif

/* Order-preserving key of a float: a < b iff key(a) < key(b); -0 counts as +0. */
static inline HK_HOSTDEV uint32_t hk_sample_fkey(float x) {
    if (x == 0.0f) x = 0.0f;
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* Larger = earlier in (logit descending, id ascending): the order of hk_sample's sort. */
static inline HK_HOSTDEV uint64_t hk_sample_okey(float x, int64_t id) {
    return ((uint64_t)hk_sample_fkey(x) << 32) | (uint64_t)(0xFFFFFFFFu - (uint32_t)id);
}

static inline HK_HOSTDEV int64_t hk_sample_okey_id(uint64_t key) {
    return (int64_t)(0xFFFFFFFFu - (uint32_t)(key & 0xFFFFFFFFu));
}

/* Unnormalized probability at temperature T of logit x, as hk_sample: exp((x - xmax) / T) in
 * double; with xmax = +inf the +inf logits weigh 1 and the rest 0. */
static inline HK_HOSTDEV double hk_sample_weight(float x, float xmax, double T) {
    if (isinf(xmax)) return x == xmax ? 1.0 : 0.0;
    return exp(((double)x - (double)xmax) / T);
}

#endif
