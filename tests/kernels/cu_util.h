/* Helpers of the CUDA kernel tests (test_cuda_kernels.c, test_cuda_ops.c): the module's
 * table, device copies, NMSE bounds against the CPU references, skips without a GPU. Include
 * after cmocka.h. */
#ifndef HK_TESTS_KERNELS_CU_UTIL_H
#define HK_TESTS_KERNELS_CU_UTIL_H

#include <stdint.h>
#include <string.h>

#include "core/cuda_module.h" /* the kernels come from the CUDA module, loaded with dlopen */
#include "kt_util.h"

/* The CUDA module's kernel table (NULL when it did not load: every test skips). */
static const hk_cu_api *cu;

#define NMSE_MAX 1e-6
#define NMSE_LOWP 1e-5
/* tensor-core attention rounds the probabilities to bf16/f16 (2^-9 / 2^-11 relative) before
 * P·V: about 1e-6 NMSE in bf16 */
#define NMSE_TC 2e-5
/* ... and f32 queries rounded to the K/V type as well */
#define NMSE_TC_Q 1e-4

/* Σ(a-b)² / Σb² (plain squared error when b is all zeros) */
static inline double nmse(const float *a, const float *b, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0.0 ? num / den : num;
}

#define CU_OK(call)                                                                         \
    do {                                                                                    \
        const int err_ = (call);                                                            \
        if (err_ != 0) {                                                                    \
            print_error("%s: %s\n", #call, cu->error_string(err_));                       \
            fail();                                                                         \
        }                                                                                   \
    } while (0)

static inline void *to_dev(const void *host, size_t bytes) {
    void *p = NULL;
    CU_OK(cu->malloc(&p, bytes ? bytes : 4));
    if (bytes) CU_OK(cu->upload(p, host, bytes));
    return p;
}

static inline void from_dev(void *host, const void *dev, size_t bytes) {
    CU_OK(cu->sync(NULL));
    CU_OK(cu->download(host, dev, bytes));
}

static inline void expect_within(const float *gpu, const float *cpu, int64_t n, double bound,
                          const char *what) {
    const double e = nmse(gpu, cpu, n);
    if (!(e <= bound)) {
        print_error("%s: NMSE %g > %g\n", what, e, bound);
        fail();
    }
}

static inline void expect_close(const float *gpu, const float *cpu, int64_t n, const char *what) {
    expect_within(gpu, cpu, n, NMSE_MAX, what);
}

/* The tests that never touch the device still need the module. */
static inline void need_module(void) {
    if (!cu) skip();
}

static inline int need_gpu(void **state) {
    (void)state;
    need_module();
    if (cu->device_count() == 0) skip();
    return 0;
}

/* Host copies of values rounded through a device type (f32 -> t -> f32 on the device). */
static inline void round_through(float *x, int64_t n, hk_cu_dtype t) {
    if (t == HK_CU_F32) return;
    float *d = to_dev(x, (size_t)n * 4);
    void *lp = to_dev(NULL, (size_t)n * 2);
    CU_OK(cu->convert(lp, t, d, HK_CU_F32, n, NULL));
    CU_OK(cu->convert(d, HK_CU_F32, lp, t, n, NULL));
    from_dev(x, d, (size_t)n * 4);
    CU_OK(cu->free(d));
    CU_OK(cu->free(lp));
}

/* A device copy of x in type t (x already representable in t). */
static inline void *to_dev_as(const float *x, int64_t n, hk_cu_dtype t) {
    float *d = to_dev(x, (size_t)n * 4);
    if (t == HK_CU_F32) return d;
    void *lp = to_dev(NULL, (size_t)n * 2);
    CU_OK(cu->convert(lp, t, d, HK_CU_F32, n, NULL));
    CU_OK(cu->sync(NULL));
    CU_OK(cu->free(d));
    return lp;
}

/* bf16 by bit manipulation, round to nearest even: an independent check of hk_cu_convert. */
static inline float host_bf16(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    b += 0x7fffu + ((b >> 16) & 1u);
    b &= 0xffff0000u;
    memcpy(&x, &b, 4);
    return x;
}

#endif
