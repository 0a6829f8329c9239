/* Describing the HDF5 files of the experiments (results of patch / ablate / lens, steering
 * vectors; docs/FORMAT.md) for `hookformer inspect`: their root attributes and every dataset
 * with its type, shape, `dims` attribute and bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "h5_util.h"

typedef struct {
    hk_results_info *info;
    hid_t file;
    size_t cap;
    hk_status st;
} walk;

static const char *type_name(hid_t t) {
    const size_t n = H5Tget_size(t);
    switch (H5Tget_class(t)) {
    case H5T_FLOAT: return n == 8 ? "f64" : n == 4 ? "f32" : n == 2 ? "f16" : "float";
    case H5T_INTEGER:
        if (H5Tget_sign(t) == H5T_SGN_NONE) return n == 1 ? "u8" : n == 4 ? "u32" : "uint";
        return n == 8 ? "i64" : n == 4 ? "i32" : n == 2 ? "i16" : n == 1 ? "i8" : "int";
    case H5T_STRING: return "string";
    default: return "other";
    }
}

static herr_t visit(hid_t loc, const char *name, const H5L_info_t *li, void *user) {
    (void)li;
    walk *w = user;
    hid_t o = H5Oopen(loc, name, H5P_DEFAULT);
    if (o < 0) return 0;
    const bool is_dset = H5Iget_type(o) == H5I_DATASET;
    H5Oclose(o);
    if (!is_dset) return 0;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return 0;
    if (w->info->n_items == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        hk_results_item *p = realloc(w->info->items, cap * sizeof *p);
        if (!p) {
            H5Dclose(d);
            w->st = hk_errorf(HK_ERR_NOMEM, "out of memory");
            return -1;
        }
        w->info->items = p;
        w->cap = cap;
    }
    hk_results_item *it = &w->info->items[w->info->n_items++];
    memset(it, 0, sizeof *it);
    snprintf(it->name, sizeof it->name, "%s", name);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    snprintf(it->type, sizeof it->type, "%s", t >= 0 ? type_name(t) : "?");
    hsize_t dims[HK_MAX_DIMS];
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (nd >= 0 && nd <= HK_MAX_DIMS && H5Sget_simple_extent_dims(sp, dims, NULL) >= 0) {
        it->ndim = nd;
        for (int i = 0; i < nd; i++) it->shape[i] = (int64_t)dims[i];
    }
    if (H5Aexists(d, "dims") > 0 &&
        hk_h5_read_attr_str(d, "dims", it->dims, sizeof it->dims, "") != HK_OK)
        it->dims[0] = '\0';
    it->stored_bytes = (uint64_t)H5Dget_storage_size(d);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return 0;
}

hk_status hk_results_info_read(const char *path, hk_results_info *out) {
    if (!path || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_results_info_read: NULL argument");
    memset(out, 0, sizeof *out);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return hk_errorf(HK_ERR_FORMAT, "%s: not an HDF5 file that opens", path);
    hk_status st = hk_h5_read_attr_str(f, "kind", out->kind, sizeof out->kind, path);
    if (st == HK_OK && strcmp(out->kind, "patch") != 0 && strcmp(out->kind, "ablate") != 0 &&
        strcmp(out->kind, "lens") != 0 && strcmp(out->kind, "steering_vector") != 0)
        st = hk_errorf(HK_ERR_FORMAT, "%s: root attribute 'kind' is '%s', expected patch, ablate, "
                                      "lens or steering_vector",
                       path, out->kind);
    if (st != HK_OK) {
        H5Fclose(f);
        return hk_errorf(HK_ERR_FORMAT, "%s: neither an activation store (root attribute 'format') "
                                        "nor an experiment results file (root attribute 'kind')",
                         path);
    }
    /* optional: steering vectors have no family */
    if (hk_h5_read_attr_str(f, "model", out->model, sizeof out->model, path) != HK_OK)
        out->model[0] = '\0';
    if (hk_h5_read_attr_str(f, "family", out->family, sizeof out->family, path) != HK_OK)
        out->family[0] = '\0';
    if (hk_h5_read_attr_str(f, "hookformer_version", out->version, sizeof out->version, path) !=
        HK_OK)
        out->version[0] = '\0';
    H5Eclear2(H5E_DEFAULT);
    walk w = {out, f, 0, HK_OK};
    if (H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit, &w) < 0 && w.st == HK_OK)
        w.st = hk_errorf(HK_ERR_FORMAT, "%s: cannot list the file's datasets", path);
    H5Fclose(f);
    if (w.st != HK_OK) hk_results_info_free(out);
    return w.st;
}

void hk_results_info_free(hk_results_info *info) {
    if (!info) return;
    free(info->items);
    info->items = NULL;
    info->n_items = 0;
}
