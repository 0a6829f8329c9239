/* The CPU stand-in of the CUDA module's table (cu_fake.c) as a module of its own,
 * libhookformer_cuda_fake.so: with HK_CUDA_MODULE pointing at it, `--device cuda` and
 * HK_DEVICE_CUDA loads run the CUDA backend's host logic and the whole forward on the CPU. */
#include "cu_fake.h"

__attribute__((visibility("default"))) const hk_cu_api *HK_CU_API_SYMBOL(void);
const hk_cu_api *HK_CU_API_SYMBOL(void) { return cu_fake_api(); }
