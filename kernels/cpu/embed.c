/* Embedding lookup: out[i, :] = table[ids[i], :]. */
#include "kernels.h"

#include <string.h>

void hk_k_embed(const float *table, int64_t d, const int32_t *ids, int64_t n, float *out) {
    if (n <= 0 || d <= 0) return;
#pragma omp parallel for schedule(static) if (n * d >= (1 << 20))
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * d, table + (int64_t)ids[i] * d, (size_t)d * sizeof(float));
}
