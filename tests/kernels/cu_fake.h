/* A CPU stand-in for the CUDA module's table (kernels/cuda/cuda_api.h): "device" memory is
 * host memory and every entry the CUDA backend calls runs the CPU kernel of the same contract
 * (f16/bf16 weights and conversions rounded as the device rounds them), so core/backend_cuda.c's
 * host logic — device choice, weights upload and slicing, dtype dispatch, masks to block masks, KV writes,
 * greedy and sampled choices — runs and is checked without a GPU. Entries the backend never
 * calls (the d2h ring, the device sampler, the attention path switches) are NULL. */
#ifndef HK_TESTS_KERNELS_CU_FAKE_H
#define HK_TESTS_KERNELS_CU_FAKE_H

#include "kernels/cuda/cuda_api.h"

/* The table; live_blocks() counts its allocations not yet freed. Devices: HK_TEST_DEVICES
 * (default 1); device_mismatches() counts the ops that were queued on a stream or cuBLAS
 * handle of another device than the calling thread's current one (each failed, as CUDA fails
 * them); current_device() is the calling thread's. */
const hk_cu_api *cu_fake_api(void);
long cu_fake_live_blocks(void);
long cu_fake_device_mismatches(void);
int cu_fake_current_device(void);

#endif
