/* The CUDA kernels as one table of function pointers: what the CUDA module
 * (libhookformer_cuda.so, kernels/cuda/module.c) exports, so that nothing outside the module
 * links libcudart or libcublas. core/cuda_module.c dlopens the module on first use and hands
 * out the table; callers write cu->attention(...) where the module itself writes
 * hk_cu_attention(...). Each entry has the contract of the hk_cu_* function of the same name
 * in cuda_kernels.h. No CUDA header here. */
#ifndef HK_KERNELS_CUDA_API_H
#define HK_KERNELS_CUDA_API_H

#include "cuda_kernels.h"

/* Raised whenever an entry is added, removed or changes its signature (3: set_device). */
#define HK_CU_API_VERSION 3u
/* The one symbol the module exports: const hk_cu_api *HK_CU_API_SYMBOL(void). */
#define HK_CU_API_SYMBOL hk_cu_module_api
#define HK_CU_API_SYMBOL_NAME "hk_cu_module_api"

/* X(return type, name without hk_cu_, (parameters)) for every entry of the table. */
#define HK_CU_API_ENTRIES(X)                                                                 \
    X(int, device_count, (void))                                                             \
    X(int, device_probe, (int *count))                                                       \
    X(int, set_device, (int ordinal))                                                        \
    X(const char *, error_string, (int err))                                                 \
    X(const char *, error_name, (int err))                                                   \
    X(int, malloc, (void **p, size_t bytes))                                                 \
    X(int, free, (void *p))                                                                  \
    X(int, upload, (void *dst_dev, const void *src_host, size_t bytes))                      \
    X(int, download, (void *dst_host, const void *src_dev, size_t bytes))                    \
    X(int, sync, (void *stream))                                                             \
    X(int, layernorm, (const float *x, int64_t n, int64_t d, const float *w, const float *b, \
                       float eps, float *y, float *scale_out, void *stream))                 \
    X(int, rmsnorm, (const float *x, int64_t n, int64_t d, const float *w, float eps,        \
                     float *y, float *scale_out, void *stream))                              \
    X(int, gelu_new, (float *x, int64_t n, void *stream))                                    \
    X(int, gelu, (float *x, int64_t n, void *stream))                                        \
    X(int, silu, (float *x, int64_t n, void *stream))                                        \
    X(int, relu, (float *x, int64_t n, void *stream))                                        \
    X(int, mul, (float *y, const float *x, int64_t n, void *stream))                         \
    X(int, add, (float *y, const float *x, int64_t n, void *stream))                         \
    X(int, rope, (float *x, int64_t n, int64_t heads, int64_t d_head, int64_t ld_row,        \
                  int64_t rot_dim, const float *cos, const float *sin, void *stream))        \
    X(int, embed, (const float *table, int64_t d, const int32_t *ids, int64_t n, float *out, \
                   void *stream))                                                            \
    X(size_t, dtype_size, (hk_cu_dtype t))                                                   \
    X(int, convert, (void *dst, hk_cu_dtype dst_type, const void *src, hk_cu_dtype src_type, \
                     int64_t n, void *stream))                                               \
    X(int, stream_create, (void **stream))                                                   \
    X(int, stream_destroy, (void *stream))                                                   \
    X(int, memset_async, (void *dst, int value, size_t bytes, void *stream))                 \
    X(int, upload_async, (void *dst_dev, const void *src_host, size_t bytes, void *stream))  \
    X(int, download_async, (void *dst_host, const void *src_dev, size_t bytes,               \
                            void *stream))                                                   \
    X(int, host_alloc_pinned, (void **p, size_t bytes))                                      \
    X(int, host_free_pinned, (void *p))                                                      \
    X(int, mem_info, (size_t *free_bytes, size_t *total_bytes))                              \
    X(int, d2h_ring_new, (size_t bytes_per_buffer, hk_cu_d2h_ring **out))                    \
    X(void, d2h_ring_free, (hk_cu_d2h_ring *r))                                              \
    X(int, d2h_begin, (hk_cu_d2h_ring *r, const void *src_dev, size_t bytes,                 \
                       void *compute_stream, int *slot))                                     \
    X(int, d2h_wait, (hk_cu_d2h_ring *r, int slot, const void **host))                       \
    X(int, blas_new, (void *stream, hk_cu_blas **out))                                       \
    X(void, blas_free, (hk_cu_blas *b))                                                      \
    X(int, blas_allow_tf32, (hk_cu_blas *b, bool on))                                        \
    X(const char *, blas_status_string, (int status))                                        \
    X(int, linear, (hk_cu_blas *h, const float *x, int64_t n, int64_t in, const void *w,     \
                    hk_cu_dtype wtype, int64_t ldw, bool in_out, const float *b,             \
                    int64_t out, float *y, int64_t ldy, void *x_ws))                         \
    X(int, gated, (int act, float *gate, const float *up, int64_t n, void *stream))          \
    X(int, attention, (hk_cu_dtype q_type, hk_cu_dtype kv_type, const void *q, int64_t ldq,  \
                       const void *k, int64_t ldk, const void *v, int64_t ldv, int64_t sq,   \
                       int64_t sk, int64_t ring, int64_t n_heads, int64_t n_kv_heads,        \
                       int64_t d_head, float scale, const hk_mask_desc *mask, float *out,    \
                       int64_t ldo, void *stream))                                           \
    X(int, kv_write, (void *dst, hk_cu_dtype dst_type, int64_t ldd, int64_t ring,            \
                      int64_t pos0, const float *src, int64_t lds, int64_t n, int64_t width, \
                      void *stream))                                                         \
    X(void, attention_force_simt, (bool on))                                                 \
    X(void, attention_force_splits, (int n))                                                 \
    X(const char *, attention_path, (hk_cu_dtype kv_type, int64_t d_head))                   \
    X(int, block_mask_upload, (const hk_block_mask *host, hk_block_mask *dev))               \
    X(void, block_mask_free, (hk_block_mask *dev))                                           \
    X(int, attention_scores, (hk_cu_blas *h, const float *q, int64_t ldq, const float *k,    \
                              int64_t ldk, int64_t sq, int64_t sk, int64_t n_heads,          \
                              int64_t n_kv_heads, int64_t d_head, float scale,               \
                              const hk_mask_desc *mask, float *scores))                      \
    X(int, softmax_rows, (const float *scores, int64_t rows, int64_t n, float *pattern,      \
                          void *stream))                                                     \
    X(int, attention_apply, (hk_cu_blas *h, const float *pattern, const float *v,            \
                             int64_t ldv, int64_t sq, int64_t sk, int64_t n_heads,           \
                             int64_t n_kv_heads, int64_t d_head, float *out, int64_t ldo))   \
    X(size_t, sample_ws_bytes, (int64_t vocab))                                              \
    X(int, sample, (const float *logits, int64_t vocab, float temperature, int top_k,        \
                    float top_p, double u01, void *ws, int32_t *result, void *stream))       \
    X(int, embed_typed, (const void *table, hk_cu_dtype type, int64_t d, const int32_t *ids, \
                         int64_t n, float *out, void *stream)) \
    X(int, copy_async, (void *dst_dev, const void *src_dev, size_t bytes, void *stream))      \
    X(int, upload_convert, (void *dst_dev, hk_cu_dtype dst_type, const void *src_host,       \
                            hk_cu_dtype src_type, int64_t n, void *stream))                  \
    X(int, rmsnorm_offset, (const float *x, int64_t n, int64_t d, const float *w,            \
                            float w_offset, float eps, float *y, float *scale_out,           \
                            void *stream))                                                   \
    X(int, norm_stats, (const float *x, int64_t n, int64_t d, bool center, double eps,       \
                        float *mean_out, float *scale_out, void *stream))                    \
    X(int, norm_divide, (const float *x, int64_t n, int64_t d, const float *mean,            \
                         const float *scale, float *y, void *stream))                        \
    X(int, scale_bias, (float *y, int64_t n, int64_t d, const float *w, const float *b,      \
                        void *stream))                                                       \
    X(int, scale, (float *x, int64_t n, float f, void *stream))                              \
    X(int, softcap, (float *x, int64_t n, float cap, void *stream))                          \
    X(int, sigmoid, (float *x, int64_t n, void *stream))                                     \
    X(int, gather_rows, (float *dst, const float *src, int64_t d, const int64_t *idx,       \
                         int64_t div, int64_t n, void *stream))                              \
    X(int, scatter_rows, (float *dst, const float *src, int64_t d, const int64_t *idx,       \
                          int64_t n, void *stream))                                          \
    X(int, combine_rows, (float *y, const float *x, int64_t d, const int64_t *idx,           \
                          int64_t div, const float *w, int64_t n, void *stream))             \
    X(int, softmax_rows_f64, (const float *x, int64_t rows, int64_t n, float *y,             \
                              void *stream))                                                 \
    X(int, moe_route, (const float *probs, int64_t rows, int64_t n_experts, int64_t k,       \
                       bool norm_topk, float *ids, float *mix, void *stream))                \
    X(int, argmax_rows, (const float *x, int64_t rows, int64_t n, int32_t *out,              \
                         void *stream))

typedef struct hk_cu_api {
    unsigned version;     /* HK_CU_API_VERSION of the module */
    size_t struct_size;   /* sizeof(hk_cu_api) the module was built with */
    const char *hk_version; /* the hookformer version the module was built from */
#define HK_CU_API_MEMBER(ret, name, params) ret(*name) params;
    HK_CU_API_ENTRIES(HK_CU_API_MEMBER)
#undef HK_CU_API_MEMBER
} hk_cu_api;

typedef const hk_cu_api *(*hk_cu_api_fn)(void);

#endif
