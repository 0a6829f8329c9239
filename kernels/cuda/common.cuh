/* Internal to kernels/cuda: launch helpers. */
#ifndef HK_KERNELS_CUDA_COMMON_CUH
#define HK_KERNELS_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_kernels.h"

#define HK_CU_THREADS 256

static inline cudaStream_t hk_cu_stream(void *s) { return (cudaStream_t)s; }

/* Blocks for a grid-stride loop over n elements (capped: the loop covers the rest). */
static inline unsigned hk_cu_blocks(int64_t n) {
    int64_t b = (n + HK_CU_THREADS - 1) / HK_CU_THREADS;
    if (b < 1) b = 1;
    if (b > 65535 * 8) b = 65535 * 8;
    return (unsigned)b;
}

/* The launch status, cleared so it does not leak into the next call. */
static inline int hk_cu_launch_status(void) { return (int)cudaGetLastError(); }

#endif
