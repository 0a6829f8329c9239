/* Small HDF5 helpers for the result files (results_h5.c) and steering vectors (steer.c).
 * Every function returns hk_status with a message naming the object; HDF5's own error
 * printing is switched off. */
#ifndef HK_HOOKS_H5_UTIL_H
#define HK_HOOKS_H5_UTIL_H

#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>

#include "hookformer.h"

/* Create PATH.tmp for writing (an existing PATH is HK_ERR_IO unless force). *tmp_path is
 * malloc'd. */
hk_status hk_h5_create_tmp(const char *path, bool force, hid_t *file, char **tmp_path);
/* Close the file and rename tmp onto path (or remove tmp when !keep). */
hk_status hk_h5_finish(hid_t file, const char *tmp_path, const char *path, bool keep);

hk_status hk_h5_f32(hid_t loc, const char *name, const float *data, int ndim,
                    const int64_t *shape, const char *dims);
hk_status hk_h5_i32(hid_t loc, const char *name, const int32_t *data, int ndim,
                    const int64_t *shape, const char *dims);
hk_status hk_h5_strings(hid_t loc, const char *name, const char *const *s, int64_t n);
hk_status hk_h5_attr_str(hid_t obj, const char *name, const char *value);
hk_status hk_h5_attr_f64(hid_t obj, const char *name, double value);
hk_status hk_h5_attr_i64(hid_t obj, const char *name, int64_t value);

/* Readers: an attribute that is missing or of another class is HK_ERR_FORMAT naming it. */
hk_status hk_h5_read_attr_str(hid_t obj, const char *name, char *out, size_t cap,
                              const char *path);
hk_status hk_h5_read_attr_i64(hid_t obj, const char *name, int64_t *out, const char *path);

#endif
