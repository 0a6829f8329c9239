/* HDF5 helpers shared by the result files and steering vectors (see h5_util.h). */
#include "h5_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

hk_status hk_h5_create_tmp(const char *path, bool force, hid_t *file, char **tmp_path) {
    quiet();
    if (!path || !path[0]) return hk_errorf(HK_ERR_INVALID_ARG, "HDF5 output: empty path");
    if (!force && access(path, F_OK) == 0)
        return hk_errorf(HK_ERR_IO, "%s: file exists (pass force / --force to overwrite)", path);
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    if (!tmp) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmp", path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        hk_status st = hk_errorf(HK_ERR_IO, "%s: cannot create (%s)", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    *file = f;
    *tmp_path = tmp;
    return HK_OK;
}

hk_status hk_h5_finish(hid_t file, const char *tmp_path, const char *path, bool keep) {
    herr_t e = H5Fclose(file);
    if (!keep) {
        unlink(tmp_path);
        return HK_OK;
    }
    if (e < 0) {
        unlink(tmp_path);
        return hk_errorf(HK_ERR_IO, "%s: closing the HDF5 file failed (disk full?)", tmp_path);
    }
    if (rename(tmp_path, path) != 0) {
        hk_status st = hk_errorf(HK_ERR_IO, "%s: cannot rename %s onto it (%s)", path, tmp_path,
                                 strerror(errno));
        unlink(tmp_path);
        return st;
    }
    return HK_OK;
}

static hk_status write_ds(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                          const void *data, int ndim, const int64_t *shape, const char *dims) {
    hsize_t dimsz[8];
    for (int i = 0; i < ndim; i++) dimsz[i] = (hsize_t)shape[i];
    hid_t space = H5Screate_simple(ndim, dimsz, NULL);
    hid_t ds = space < 0 ? -1
                         : H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT,
                                      H5P_DEFAULT);
    herr_t e = ds < 0 ? -1 : H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    hk_status st = e < 0 ? hk_errorf(HK_ERR_IO, "HDF5: cannot write dataset '%s'", name) : HK_OK;
    if (st == HK_OK && dims) st = hk_h5_attr_str(ds, "dims", dims);
    if (ds >= 0) H5Dclose(ds);
    if (space >= 0) H5Sclose(space);
    return st;
}

hk_status hk_h5_f32(hid_t loc, const char *name, const float *data, int ndim,
                    const int64_t *shape, const char *dims) {
    return write_ds(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, ndim, shape, dims);
}

hk_status hk_h5_i32(hid_t loc, const char *name, const int32_t *data, int ndim,
                    const int64_t *shape, const char *dims) {
    return write_ds(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT32, data, ndim, shape, dims);
}

static hid_t vlen_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

hk_status hk_h5_strings(hid_t loc, const char *name, const char *const *s, int64_t n) {
    hid_t t = vlen_str_type();
    hsize_t dim = (hsize_t)n;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    hid_t ds = H5Dcreate2(loc, name, t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = ds < 0 ? -1 : H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    H5Tclose(t);
    return e < 0 ? hk_errorf(HK_ERR_IO, "HDF5: cannot write strings '%s'", name) : HK_OK;
}

hk_status hk_h5_attr_str(hid_t obj, const char *name, const char *value) {
    hid_t t = vlen_str_type();
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, t, &value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    H5Tclose(t);
    return e < 0 ? hk_errorf(HK_ERR_IO, "HDF5: cannot write attribute '%s'", name) : HK_OK;
}

static hk_status attr_num(hid_t obj, const char *name, hid_t ft, hid_t mt, const void *v) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ft, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, mt, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return e < 0 ? hk_errorf(HK_ERR_IO, "HDF5: cannot write attribute '%s'", name) : HK_OK;
}

hk_status hk_h5_attr_f64(hid_t obj, const char *name, double value) {
    return attr_num(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

hk_status hk_h5_attr_i64(hid_t obj, const char *name, int64_t value) {
    return attr_num(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

hk_status hk_h5_read_attr_str(hid_t obj, const char *name, char *out, size_t cap,
                              const char *path) {
    quiet();
    hid_t a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT) : -1;
    if (a < 0) return hk_errorf(HK_ERR_FORMAT, "%s: attribute '%s' is missing", path, name);
    hid_t t = H5Aget_type(a);
    hk_status st = HK_OK;
    if (H5Tget_class(t) != H5T_STRING) {
        st = hk_errorf(HK_ERR_FORMAT, "%s: attribute '%s' is not a string", path, name);
    } else if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;
        hid_t mt = vlen_str_type();
        if (H5Aread(a, mt, &v) < 0 || !v) {
            st = hk_errorf(HK_ERR_FORMAT, "%s: cannot read attribute '%s'", path, name);
        } else {
            snprintf(out, cap, "%s", v);
            H5free_memory(v);
        }
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        char *buf = calloc(n + 1, 1);
        if (!buf || H5Aread(a, t, buf) < 0)
            st = hk_errorf(HK_ERR_FORMAT, "%s: cannot read attribute '%s'", path, name);
        else
            snprintf(out, cap, "%s", buf);
        free(buf);
    }
    H5Tclose(t);
    H5Aclose(a);
    return st;
}

hk_status hk_h5_read_attr_i64(hid_t obj, const char *name, int64_t *out, const char *path) {
    quiet();
    hid_t a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT) : -1;
    if (a < 0) return hk_errorf(HK_ERR_FORMAT, "%s: attribute '%s' is missing", path, name);
    hid_t t = H5Aget_type(a);
    hk_status st = HK_OK;
    if (H5Tget_class(t) != H5T_INTEGER || H5Aread(a, H5T_NATIVE_INT64, out) < 0)
        st = hk_errorf(HK_ERR_FORMAT, "%s: attribute '%s' is not an integer", path, name);
    H5Tclose(t);
    H5Aclose(a);
    return st;
}
