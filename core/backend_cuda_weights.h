/* Device copies of the weights for the CUDA backend, in the weights dtype: every host tensor
 * the forward reads is uploaded once — views of one host tensor (q/k/v of a fused c_attn,
 * gate/up of gate_up_proj) share one device block — matrices in the matrix dtype (f32, f16,
 * bf16: converted on the device), norms, biases and embedding tables in f32. A matrix that
 * is also a table (tied embeddings) is one block when the matrix dtype is f32 and two
 * otherwise (the table stays f32 for the gathers). The device side is a sink of three
 * functions, so that the planning and pointer rewriting are tested on the CPU.
 * Internal (core/backend_cuda.c). */
#ifndef HK_CORE_BACKEND_CUDA_WEIGHTS_H
#define HK_CORE_BACKEND_CUDA_WEIGHTS_H

#include <stddef.h>

#include "config.h"
#include "hookformer.h"
#include "weights.h"

typedef struct {
    void *user;
    hk_status (*alloc)(void *user, size_t bytes, void **out);
    void (*free)(void *user, void *p);
    /* dst (device, n elements of dst_type) = src (host f32 [n]), converted */
    hk_status (*put)(void *user, void *dst, hk_dtype dst_type, const float *src, size_t n);
} hk_wsink;

/* One device block: [dev, dev + n * size of dtype). */
typedef struct {
    void *dev;
    size_t n;
    hk_dtype dtype;
} hk_wblock;

/* What an upload made: the device blocks (sorted by device address, for hk_wset_dtype) and
 * the host arrays of dev (blocks, experts) it allocated. */
typedef struct {
    hk_wblock *b;
    size_t n;
    hk_block_weights *blocks; /* dev->blocks [n_layers] */
    hk_linear *experts;       /* every layer's experts [n_layers * n_experts * 3] */
} hk_wset;

/* dev = device copies of w (config c) through sink, matrices in mdtype (HK_DTYPE_F32, F16 or
 * BF16). On error nothing stays allocated (*set empty, *dev zeroed). */
hk_status hk_wset_upload(const hk_config *c, const hk_weights *w, hk_dtype mdtype,
                         const hk_wsink *sink, hk_weights *dev, hk_wset *set);
void hk_wset_free(const hk_wsink *sink, hk_wset *set);

/* The dtype of the device block holding p, and (optionally) the block: F32 with *blk NULL
 * when p lies in no weight block (device memory of the run). */
hk_dtype hk_wset_dtype(const hk_wset *set, const void *p, const hk_wblock **blk);

/* The dtype the checkpoint stores its matrices in, for a load that names none: BF16 (F16)
 * when every 2-D floating tensor is BF16 (F16) — uploading them so is exact, and half the
 * bytes — else F32 (f32 or mixed files, GGUF's quantized blocks). */
struct hk_ckpt;
hk_dtype hk_wset_checkpoint_dtype(const struct hk_ckpt *ck);

/* Bytes of one element of a weights dtype (4 or 2). */
size_t hk_wset_esize(hk_dtype t);

#endif
