/* The CUDA module's one export: the table of its kernels (cuda_api.h). Built into
 * libhookformer_cuda.so with the .cu files; core/cuda_module.c loads it with dlopen. */
#include "cuda_api.h"

#ifndef HK_CU_MODULE_HK_VERSION
#error "HK_CU_MODULE_HK_VERSION (the project version) must be defined by the build"
#endif

static const hk_cu_api table = {
    .version = HK_CU_API_VERSION,
    .struct_size = sizeof(hk_cu_api),
    .hk_version = HK_CU_MODULE_HK_VERSION,
#define HK_CU_API_INIT(ret, name, params) .name = hk_cu_##name,
    HK_CU_API_ENTRIES(HK_CU_API_INIT)
#undef HK_CU_API_INIT
};

__attribute__((visibility("default"))) const hk_cu_api *HK_CU_API_SYMBOL(void);
const hk_cu_api *HK_CU_API_SYMBOL(void) { return &table; }
