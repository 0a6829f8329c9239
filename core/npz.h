/* NumPy .npz archives (a zip of .npy members, as np.savez / np.savez_compressed write them):
 * the zip central directory (zip64 extras included), stored and deflated members (zlib, CRC
 * checked), and the .npy header (versions 1-3). Used for Gemma Scope's params.npz. */
#ifndef HK_CORE_NPZ_H
#define HK_CORE_NPZ_H

#include <stddef.h>
#include <stdint.h>

#include "hookformer.h"

#define HK_NPY_MAX_DIMS 8

typedef struct hk_npz hk_npz;

/* mmap the archive and read its central directory. Errors name the file. */
hk_status hk_npz_open(const char *path, hk_npz **out);
void hk_npz_close(hk_npz *z);

/* Members, named without their ".npy" suffix, in archive order. */
size_t hk_npz_count(const hk_npz *z);
const char *hk_npz_name(const hk_npz *z, size_t i);
/* 0 stored, 8 deflated (the zip method of member i). */
int hk_npz_method(const hk_npz *z, size_t i);

/* Member `name` as f32 (<f4, <f2, <f8, C order): *data malloc'd (free it), shape [*ndim].
 * A missing member is HK_ERR_NOT_FOUND; a bad header, a CRC mismatch, a corrupt deflate
 * stream or a size that disagrees with the header is HK_ERR_FORMAT naming file and member. */
hk_status hk_npz_read_f32(hk_npz *z, const char *name, int *ndim, int64_t *shape, float **data);

/* Parse an .npy image (header + data) of `size` bytes; `label` names it in errors. On success
 * *descr is the dtype string ("<f4"), shape/ndim filled, *payload points at the data and
 * *payload_size its length (checked against shape x item size). */
hk_status hk_npy_parse(const char *label, const uint8_t *img, size_t size, char *descr,
                       size_t descr_cap, int *ndim, int64_t *shape, const uint8_t **payload,
                       size_t *payload_size);

#endif
