/* The CUDA backend (core/backend.h's interface over kernels/cuda): host code only, calling
 * the kernels through the dlopen'ed module's table (core/cuda_module.c), so a process that
 * never opens it never maps libcudart or libcublas. Internal. */
#ifndef HK_CORE_BACKEND_CUDA_H
#define HK_CORE_BACKEND_CUDA_H

#include "backend.h"

/* A CUDA backend instance on GPU `index` (cudaSetDevice's ordinal, relative to
 * CUDA_VISIBLE_DEVICES; HK_DEVICE_INDEX_AUTO: 0): its own non-blocking stream (be->stream)
 * and cuBLAS handle, made on that device; every op makes it the calling thread's current
 * device first. Errors, before anything is allocated: the module's (HK_ERR_NOT_FOUND naming
 * the module's path when it is missing, HK_ERR_IO with dlerror's text when libcudart cannot
 * be loaded, ...), prefixed "device cuda: "; HK_ERR_UNSUPPORTED "device cuda: no CUDA
 * device" (with the runtime's reason) on a machine without a usable GPU; HK_ERR_INVALID_ARG
 * naming the index and the count when index is past the last GPU. */
hk_status hk_backend_cuda_open(int index, hk_backend **out);

/* The checks of hk_backend_cuda_open alone (the module loads, a device is counted, index is
 * below the count), with its errors: a load asks before it reads the checkpoint, so a
 * machine without a GPU, or a wrong index, fails at once. */
hk_status hk_backend_cuda_probe(int index);

/* The GPUs the runtime counts (0 without a usable one); an error only when the module cannot
 * be loaded (hk_device_count). */
hk_status hk_backend_cuda_count(int *count);

/* The same over a given kernel table (the module's, or a test's CPU stand-in of it:
 * tests/kernels/cu_fake.c, which runs this file's host logic without a GPU). */
struct hk_cu_api;
hk_status hk_backend_cuda_open_api(const struct hk_cu_api *cu, int index, hk_backend **out);

#endif
