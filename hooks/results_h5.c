/* Result files of the patching experiments (docs/FORMAT.md, "Experiment results"): one HDF5
 * file per command, a group per sweep / lens / attribution, dimension names as attributes.
 * Written to PATH.tmp and renamed on close. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "experiment.h"
#include "h5_util.h"

struct hk_results {
    hid_t file;
    char *tmp, *path;
    hk_status failed; /* first failure: close then discards */
};

#define TRY_H5(f, expr)                                   \
    do {                                                  \
        hk_status st_ = (expr);                           \
        if (st_ != HK_OK) {                               \
            if ((f)->failed == HK_OK) (f)->failed = st_;  \
            return hk_error_prefix(st_, "%s", (f)->path); \
        }                                                 \
    } while (0)

hk_status hk_results_create(const char *path, bool force, const hk_model *m, const char *kind,
                            hk_results **out) {
    if (!out || !m || !kind)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_results_create: NULL model, kind or out");
    *out = NULL;
    hk_results *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path ? path : ""))) {
        free(f);
        return hk_errorf(HK_ERR_NOMEM, "hk_results_create: out of memory");
    }
    hk_status st = hk_h5_create_tmp(path, force, &f->file, &f->tmp);
    if (st != HK_OK) {
        free(f->path);
        free(f);
        return st;
    }
    char *cfg = NULL;
    if (st == HK_OK) st = hk_h5_attr_str(f->file, "kind", kind);
    if (st == HK_OK) st = hk_h5_attr_str(f->file, "hookformer_version", hk_version());
    if (st == HK_OK) st = hk_h5_attr_str(f->file, "model", m->source ? m->source : "");
    if (st == HK_OK) st = hk_h5_attr_str(f->file, "family", hk_model_family(m));
    if (st == HK_OK) st = hk_model_config_json(m, &cfg);
    if (st == HK_OK) st = hk_h5_attr_str(f->file, "config", cfg);
    hk_free(cfg);
    if (st != HK_OK) {
        hk_results_discard(f);
        return st;
    }
    *out = f;
    return HK_OK;
}

static hid_t new_group(hk_results *f, const char *name) {
    return H5Gcreate2(f->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

static hk_status group_error(hk_results *f, const char *name) {
    hk_status st = hk_errorf(HK_ERR_IO, "%s: cannot create group '%s' (exists already?)", f->path,
                             name);
    if (f->failed == HK_OK) f->failed = st;
    return st;
}

hk_status hk_results_add_sweep(hk_results *f, const char *name, const hk_sweep_result *r) {
    if (!f || !name || !r || !r->values)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_results_add_sweep: NULL argument");
    hid_t g = new_group(f, name);
    if (g < 0) return group_error(f, name);
    char dims[32] = "";
    for (int i = 0; i < r->ndim; i++)
        snprintf(dims + strlen(dims), sizeof dims - strlen(dims), "%s%s", i ? " " : "", r->dims[i]);
    hk_status st = hk_h5_f32(g, "values", r->values, r->ndim, r->shape, dims);
    if (st == HK_OK && r->change) st = hk_h5_f32(g, "change", r->change, r->ndim, r->shape, dims);
    if (st == HK_OK && r->normalized)
        st = hk_h5_f32(g, "normalized", r->normalized, r->ndim, r->shape, dims);
    if (st == HK_OK) st = hk_h5_attr_str(g, "point", r->point);
    if (st == HK_OK) st = hk_h5_attr_str(g, "dims", dims);
    if (st == HK_OK) st = hk_h5_attr_i64(g, "layer0", r->layer0);
    if (st == HK_OK) st = hk_h5_attr_f64(g, "baseline", r->baseline);
    if (st == HK_OK) st = hk_h5_attr_f64(g, "reference", r->reference);
    if (st == HK_OK) st = hk_h5_attr_i64(g, "patches", r->patches);
    if (st == HK_OK) st = hk_h5_attr_i64(g, "forwards", r->forwards);
    if (st == HK_OK) st = hk_h5_attr_i64(g, "batch", r->batch);
    H5Gclose(g);
    TRY_H5(f, st);
    return HK_OK;
}

hk_status hk_results_add_tokens(hk_results *f, const char *name, const int32_t *ids,
                                int64_t rows, int64_t seq, const char *const *labels) {
    if (!f || !name || !ids || rows < 1 || seq < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_results_add_tokens: bad argument");
    int64_t shape[2] = {rows, seq};
    TRY_H5(f, hk_h5_i32(f->file, name, ids, 2, shape, "prompt pos"));
    if (labels) {
        char lname[128];
        snprintf(lname, sizeof lname, "%s_labels", name);
        TRY_H5(f, hk_h5_strings(f->file, lname, labels, seq));
    }
    return HK_OK;
}

hk_status hk_results_add_ids(hk_results *f, const char *name, const int32_t *ids, int64_t n,
                             const char *dims) {
    if (!f || !name || !ids || n < 1 || !dims)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_results_add_ids: bad argument");
    TRY_H5(f, hk_h5_i32(f->file, name, ids, 1, &n, dims));
    return HK_OK;
}

hk_status hk_results_add_lens(hk_results *f, const char *name, const hk_lens_result *r) {
    if (!f || !name || !r || !r->top_ids)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_results_add_lens: NULL argument");
    hid_t g = new_group(f, name);
    if (g < 0) return group_error(f, name);
    int64_t shape[3] = {r->n_rows, r->seq, r->k};
    hk_status st = hk_h5_i32(g, "top_ids", r->top_ids, 3, shape, "layer pos rank");
    if (st == HK_OK) st = hk_h5_f32(g, "top_logits", r->top_logits, 3, shape, "layer pos rank");
    if (st == HK_OK && r->top_probs)
        st = hk_h5_f32(g, "top_probs", r->top_probs, 3, shape, "layer pos rank");
    if (st == HK_OK)
        st = hk_h5_attr_str(g, "rows", "blocks.l.hook_resid_pre for l < n_layers, then the last "
                                       "hook_resid_post; each through ln_final and the unembed");
    H5Gclose(g);
    TRY_H5(f, st);
    return HK_OK;
}

hk_status hk_results_add_dla(hk_results *f, const char *name, const hk_dla_result *r) {
    if (!f || !name || !r || !r->values)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_results_add_dla: NULL argument");
    hid_t g = new_group(f, name);
    if (g < 0) return group_error(f, name);
    int64_t shape[2] = {r->n_components, r->n_prompts};
    hk_status st = hk_h5_f32(g, "values", r->values, 2, shape, "component prompt");
    if (st == HK_OK) st = hk_h5_f32(g, "total", r->total, 1, shape + 1, "prompt");
    if (st == HK_OK)
        st = hk_h5_strings(g, "labels", (const char *const *)r->labels, r->n_components);
    H5Gclose(g);
    TRY_H5(f, st);
    return HK_OK;
}

static void results_free(hk_results *f) {
    free(f->tmp);
    free(f->path);
    free(f);
}

hk_status hk_results_close(hk_results *f) {
    if (!f) return hk_errorf(HK_ERR_INVALID_ARG, "hk_results_close: NULL file");
    hk_status st = f->failed;
    if (st != HK_OK) {
        hk_h5_finish(f->file, f->tmp, f->path, false);
        st = hk_errorf(st, "%s: not written: an earlier write failed", f->path);
    } else {
        st = hk_h5_finish(f->file, f->tmp, f->path, true);
    }
    results_free(f);
    return st;
}

void hk_results_discard(hk_results *f) {
    if (!f) return;
    hk_h5_finish(f->file, f->tmp, f->path, false);
    results_free(f);
}
