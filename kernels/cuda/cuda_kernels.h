/* CUDA kernels: a plain C API over device pointers + dims, mirroring kernels/cpu/kernels.h.
 * Every kernel takes the stream to run on as a void * (a cudaStream_t; NULL = the default
 * stream) and returns 0 on success or the cudaError_t of the launch (hk_cu_error_string names
 * it). Launches are asynchronous: errors of the kernel itself show at the next synchronizing
 * call (hk_cu_sync). Nothing here includes CUDA headers, so C code may include it freely. */
#ifndef HK_KERNELS_CUDA_H
#define HK_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- device and memory ---- */
/* Number of usable CUDA devices; 0 when there is no driver or no GPU (never fails). */
int hk_cu_device_count(void);
/* The same, with the runtime's status: 0, or why no device could be counted (*count = 0).
 * Under AddressSanitizer the driver's address-space reservation collides with ASan's shadow
 * gap and this reports cudaErrorMemoryAllocation: run with ASAN_OPTIONS=protect_shadow_gap=0. */
int hk_cu_device_probe(int *count);
const char *hk_cu_error_string(int err); /* "out of memory" */
const char *hk_cu_error_name(int err);   /* "cudaErrorMemoryAllocation" */
int hk_cu_malloc(void **p, size_t bytes);
int hk_cu_free(void *p);
int hk_cu_upload(void *dst_dev, const void *src_host, size_t bytes);   /* synchronous */
int hk_cu_download(void *dst_host, const void *src_dev, size_t bytes); /* synchronous */
int hk_cu_sync(void *stream); /* waits for the stream; returns the first pending error */

/* ---- norms (as hk_k_layernorm / hk_k_rmsnorm; y may alias x; scale_out may be NULL) ---- */
int hk_cu_layernorm(const float *x, int64_t n, int64_t d, const float *w, const float *b,
                    float eps, float *y, float *scale_out, void *stream);
int hk_cu_rmsnorm(const float *x, int64_t n, int64_t d, const float *w, float eps, float *y,
                  float *scale_out, void *stream);

/* ---- activations, in place, n elements (as hk_k_*) ---- */
int hk_cu_gelu_new(float *x, int64_t n, void *stream);
int hk_cu_gelu(float *x, int64_t n, void *stream);
int hk_cu_silu(float *x, int64_t n, void *stream);
int hk_cu_relu(float *x, int64_t n, void *stream);
int hk_cu_mul(float *y, const float *x, int64_t n, void *stream); /* y[i] *= x[i] */
int hk_cu_add(float *y, const float *x, int64_t n, void *stream); /* y[i] += x[i] */

/* ---- rotary embeddings (as hk_k_rope: rotate-half, x [n, heads, d_head] row stride ld_row,
 * cos/sin [n, rot_dim/2]) ---- */
int hk_cu_rope(float *x, int64_t n, int64_t heads, int64_t d_head, int64_t ld_row,
               int64_t rot_dim, const float *cos, const float *sin, void *stream);

/* ---- embeddings (as hk_k_embed; ids on the device, in range) ---- */
int hk_cu_embed(const float *table, int64_t d, const int32_t *ids, int64_t n, float *out,
                void *stream);

#ifdef __cplusplus
}
#endif

#endif
