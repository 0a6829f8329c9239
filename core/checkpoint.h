/* Safetensors checkpoints: one file or a sharded set, mmapped, looked up by tensor name. */
#ifndef HK_CORE_CHECKPOINT_H
#define HK_CORE_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "hookformer.h"

#define HK_ST_MAX_DIMS 8

typedef struct {
    char *name;
    hk_dtype dtype;
    int ndim;
    int64_t shape[HK_ST_MAX_DIMS];
    const void *data;   /* inside the mmapped file */
    size_t nbytes;
    const char *path;   /* file holding it (owned by the checkpoint) */
    bool quantized;     /* GGUF block-quantized data (dtype is then U8, nbytes the blocks) */
    uint32_t ggml_type; /* GGUF tensors: the ggml type (core/quant.h); 0 for safetensors */
} hk_st_tensor;

/* Parse a safetensors file image already in memory (header + data). On success *out is a
 * malloc'd array of *n tensors whose data pointers point into `file`; free with
 * hk_st_tensors_free. Checks: header length vs file size, JSON shape, dtype names, shape x
 * dtype == byte length, offsets inside the data area, no two tensors overlapping.
 * `path` names the file in error messages and is stored (not copied) in each tensor's path.
 * Tensors come out sorted by name (strcmp), so callers may bsearch them. Never reads outside
 * [file, file+size). Unsupported dtypes (F64, I8, BOOL, F8_*) are HK_ERR_UNSUPPORTED, more than
 * HK_ST_MAX_DIMS dims too; every other defect is HK_ERR_FORMAT. */
hk_status hk_st_parse(const char *path, const uint8_t *file, size_t size, hk_st_tensor **out,
                      size_t *n);
void hk_st_tensors_free(hk_st_tensor *t, size_t n);

typedef struct hk_ckpt hk_ckpt;

/* dir/model.safetensors.index.json (sharded) if present, else dir/model.safetensors.
 * A path to a single .safetensors file (or to an index .json) is accepted too, and so is a
 * .gguf file: its tensors appear under their GGUF names with shapes in row-major order
 * (GGUF's ne[] reversed), and its metadata through hk_ckpt_gguf. Files are
 * mmapped read-only; a file truncated by someone else while open can still raise SIGBUS.
 * A checkpoint is not thread-safe: hk_ckpt_f32 may allocate. */
hk_status hk_ckpt_open(const char *dir, hk_ckpt **out);
void hk_ckpt_close(hk_ckpt *c);

/* All tensors of all shards, in name order (strcmp). */
size_t hk_ckpt_count(const hk_ckpt *c);
const hk_st_tensor *hk_ckpt_at(const hk_ckpt *c, size_t i);
const hk_st_tensor *hk_ckpt_find(const hk_ckpt *c, const char *name); /* NULL if absent */
/* What was opened: the path given to hk_ckpt_open. */
const char *hk_ckpt_path(const hk_ckpt *c);
/* The parsed GGUF file behind a checkpoint opened from a .gguf, else NULL. */
const hk_gguf *hk_ckpt_gguf(const hk_ckpt *c);

/* f32 view of tensor `name`, which must have exactly ndim dims of the given shape.
 * F32 data that is 4-byte aligned is returned zero-copy; F16/BF16 (or unaligned F32) and
 * GGUF quantized blocks (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K) are converted into a buffer owned by
 * the checkpoint. Errors name the file, the tensor and the
 * expected vs actual shape/dtype; a missing tensor is HK_ERR_NOT_FOUND. */
hk_status hk_ckpt_f32(hk_ckpt *c, const char *name, int ndim, const int64_t *shape,
                      const float **out);
/* Same, but the buffer is owned by the checkpoint and writable (a zero-copy F32 tensor is
 * copied once), for adapters that reorder rows at load. Views handed out earlier for the same
 * tensor keep the old data. */
hk_status hk_ckpt_f32_mut(hk_ckpt *c, const char *name, int ndim, const int64_t *shape,
                          float **out);
/* Same, but a missing tensor gives *out = NULL and HK_OK. */
hk_status hk_ckpt_f32_opt(hk_ckpt *c, const char *name, int ndim, const int64_t *shape,
                          const float **out);
/* GGUF blocks: whether adapters keep a quantized linear's blocks beside its f32 view
 * (default true; hk_load_opts.weights = HK_WEIGHTS_F32 turns it off before binding). */
void hk_ckpt_set_keep_blocks(hk_ckpt *c, bool keep);
bool hk_ckpt_keep_blocks(const hk_ckpt *c);
/* The quantized tensor that hk_ckpt_f32 dequantized into `view` (the pointer it returned):
 * its ggml type, blocks (in the mapping) and bytes per row (its last dim). false when view
 * is not such a conversion (f32 in the file, F16/BF16, or not from this checkpoint). */
bool hk_ckpt_blocks_of(const hk_ckpt *c, const float *view, uint32_t *type, const void **data,
                       size_t *row_bytes);
/* Allocate a zeroed float buffer owned by the checkpoint (freed by hk_ckpt_close); NULL (with
 * hk_last_error set) when out of memory. */
float *hk_ckpt_alloc_f32(hk_ckpt *c, size_t n);
/* Bytes of the buffers the checkpoint owns (converted tensors, hk_ckpt_alloc_f32), for the
 * memory estimator. */
size_t hk_ckpt_owned_bytes(const hk_ckpt *c);
/* Bytes of the mapping's pages that the zero-copy F32 views handed out so far span (resident
 * once the forward reads them), and the other pages read at load: every shard's header and
 * metadata plus the tensors converted into owned buffers (resident while the checkpoint is
 * mapped). Whole pages, each counted once; tensors never asked for count in neither. */
size_t hk_ckpt_view_bytes(const hk_ckpt *c);
size_t hk_ckpt_source_bytes(const hk_ckpt *c);

#endif
