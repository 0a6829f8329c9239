/* The CUDA backend (core/backend.h's interface over kernels/cuda): host code only, calling
 * the kernels through the dlopen'ed module's table (core/cuda_module.c), so a process that
 * never opens it never maps libcudart or libcublas. Internal. */
#ifndef HK_CORE_BACKEND_CUDA_H
#define HK_CORE_BACKEND_CUDA_H

#include "backend.h"

/* A CUDA backend instance on device 0: its own non-blocking stream (be->stream) and cuBLAS
 * handle. Errors, before anything is allocated: the module's (HK_ERR_NOT_FOUND naming the
 * module's path when it is missing, HK_ERR_IO with dlerror's text when libcudart cannot be
 * loaded, ...), prefixed "device cuda: "; HK_ERR_UNSUPPORTED "device cuda: no CUDA device"
 * (with the runtime's reason) on a machine without a usable GPU. */
hk_status hk_backend_cuda_open(hk_backend **out);

/* The checks of hk_backend_cuda_open alone (the module loads, a device is counted), with its
 * errors: a load asks before it reads the checkpoint, so a machine without a GPU fails at once. */
hk_status hk_backend_cuda_probe(void);

/* The same over a given kernel table (the module's, or a test's CPU stand-in of it:
 * tests/kernels/cu_fake.c, which runs this file's host logic without a GPU). */
struct hk_cu_api;
hk_status hk_backend_cuda_open_api(const struct hk_cu_api *cu, hk_backend **out);

#endif
