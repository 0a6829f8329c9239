/* Uploading the weights to a device backend: every tensor of hk_weights allocated with the
 * backend's alloc and copied with to_device, once per host tensor (views sharing a host
 * pointer and extent share the device copy: tied embeddings). f32 only (a backend with other
 * weight dtypes converts matrices itself). Internal. */
#ifndef HK_CORE_BACKEND_WEIGHTS_H
#define HK_CORE_BACKEND_WEIGHTS_H

#include "backend.h"

typedef struct {
    const void *host; /* host tensor */
    size_t bytes;
    void *dev;        /* its device copy */
} hk_weight_block;

/* What an upload allocated, to free it. */
typedef struct {
    hk_weight_block *b;
    size_t n, cap;
    hk_block_weights *blocks; /* dev->blocks */
    hk_linear *experts;       /* every block's experts, [n_layers * n_experts * 3] */
} hk_weight_upload;

hk_status hk_backend_weights_copy(hk_backend *be, const hk_config *c, const hk_weights *w,
                                  hk_weights *dev, hk_weight_upload *up);
void hk_backend_weights_release(hk_backend *be, hk_weight_upload *up);

#endif
