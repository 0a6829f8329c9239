/* The CUDA module loader: the CUDA kernels live in libhookformer_cuda.so (kernels/cuda,
 * built when nvcc is found), which nothing links; the first caller that needs them loads it
 * with dlopen, so a CPU process never maps libcudart or libcublas. */
#ifndef HK_CORE_CUDA_MODULE_H
#define HK_CORE_CUDA_MODULE_H

#include "hookformer.h"
#include "kernels/cuda/cuda_api.h"

/* Environment variable naming the module's path; set, it is the only place looked at. */
#define HK_CUDA_MODULE_ENV "HK_CUDA_MODULE"

/* The CUDA kernel table, loading the module on the first successful call (thread-safe; the
 * module stays loaded until exit, later calls return the same table). Where it is looked for:
 * $HK_CUDA_MODULE if set, else (cuda_module_path.h) the build tree's module then the installed
 * one for a program in the build tree, and for an installed program the module installed
 * beside its code (<libdir>/hookformer/libhookformer_cuda.so, found with dladdr) then the
 * configured install path, never the build tree's. Errors, with the path in the message:
 * HK_ERR_NOT_FOUND (no module file: a build without nvcc, or the override points at nothing),
 * HK_ERR_IO (dlopen failed: the dlerror() text, e.g. libcudart.so.13 missing),
 * HK_ERR_FORMAT (no hk_cu_module_api symbol), HK_ERR_UNSUPPORTED (a module of another table
 * version or hookformer version). A failure is not remembered: a later call tries again. */
hk_status hk_cuda_module(const hk_cu_api **out);

/* The path the loaded module came from ("" before a successful load). */
const char *hk_cuda_module_path(void);

#endif
