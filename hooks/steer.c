/* Steering (ActAdd): a difference of activations of a prompt pair at one layer, added back
 * with a coefficient from a position on. The hook reads ctx->pos_offset, so chunked prefill
 * and every generated token (hk_generate) are steered at their absolute positions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "experiment.h"
#include "h5_util.h"
#include "registry.h"

void hk_steer_vector_free(hk_steer_vector *v) {
    if (!v) return;
    free(v->vec);
    v->vec = NULL;
}

static hk_status check_point(const hk_model *m, const char *point, int64_t layer,
                             const char *who) {
    if (!point || strlen(point) >= 64)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: bad point name", who);
    if (layer < 0 || layer >= m->cfg.n_layers)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: layer %lld, expected 0..%lld", who,
                         (long long)layer, (long long)(m->cfg.n_layers - 1));
    const hk_hook_point *pt = hk_xp_block_point(m, layer, point);
    if (!pt)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: the model has no point blocks.%lld.%s", who,
                         (long long)layer, point);
    if (strcmp(pt->dims, "batch pos d_model") != 0)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: %s has dims [%s]; steering needs "
                                             "[batch, pos, d_model]", who, pt->name, pt->dims);
    return HK_OK;
}

hk_status hk_steer_from_prompts(hk_model *m, const char *point, int64_t layer,
                                const int32_t *pos, int64_t n_pos, const int32_t *neg,
                                int64_t n_neg, hk_steer_mode mode, hk_steer_vector *out) {
    if (!m || !pos || !neg || !out || n_pos < 1 || n_neg < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_steer_from_prompts: NULL or empty argument");
    memset(out, 0, sizeof *out);
    hk_status st = check_point(m, point, layer, "hk_steer_from_prompts");
    if (st != HK_OK) return st;
    if (mode == HK_STEER_ALIGNED && n_pos != n_neg)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_steer_from_prompts: aligned vectors need prompts "
                                             "of equal length (%lld and %lld tokens)",
                         (long long)n_pos, (long long)n_neg);
    const int64_t d = m->cfg.d_model;
    char name[96];
    snprintf(name, sizeof name, "blocks.%lld.%s", (long long)layer, point);
    const char *pats[] = {name};
    hk_cache *cp = NULL, *cn = NULL;
    if ((st = hk_run_with_cache(m, pos, NULL, 1, n_pos, pats, 1, "all", NULL, &cp)) != HK_OK)
        return st;
    if ((st = hk_run_with_cache(m, neg, NULL, 1, n_neg, pats, 1, "all", NULL, &cn)) != HK_OK) {
        hk_cache_free(cp);
        return st;
    }
    const float *a = hk_cache_get(cp, name)->data, *b = hk_cache_get(cn, name)->data;
    out->n_pos = mode == HK_STEER_ALIGNED ? n_pos : 1;
    out->d_model = d;
    out->layer = layer;
    snprintf(out->point, sizeof out->point, "%s", point);
    out->vec = calloc((size_t)(out->n_pos * d), sizeof *out->vec);
    if (!out->vec) {
        st = hk_errorf(HK_ERR_NOMEM, "hk_steer_from_prompts: out of memory");
    } else if (mode == HK_STEER_ALIGNED) {
        for (int64_t i = 0; i < n_pos * d; i++) out->vec[i] = a[i] - b[i];
    } else if (mode == HK_STEER_LAST) {
        for (int64_t j = 0; j < d; j++) out->vec[j] = a[(n_pos - 1) * d + j] - b[(n_neg - 1) * d + j];
    } else if (mode == HK_STEER_MEAN) {
        for (int64_t j = 0; j < d; j++) {
            double sa = 0, sb = 0;
            for (int64_t t = 0; t < n_pos; t++) sa += a[t * d + j];
            for (int64_t t = 0; t < n_neg; t++) sb += b[t * d + j];
            out->vec[j] = (float)(sa / (double)n_pos - sb / (double)n_neg);
        }
    } else {
        st = hk_errorf(HK_ERR_INVALID_ARG, "hk_steer_from_prompts: unknown mode %d", (int)mode);
    }
    hk_cache_free(cp);
    hk_cache_free(cn);
    if (st != HK_OK) hk_steer_vector_free(out);
    return st;
}

static hk_hook_result steer_fire(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    const hk_steer_apply *a = user;
    const hk_steer_vector *v = a->v;
    const int64_t d = v->d_model;
    if (act->shape[2] != d || act->stride[2] != 1) {
        hk_hook_error("steer: %s has %lld features, the vector %lld", ctx->name,
                      (long long)act->shape[2], (long long)d);
        return HK_HOOK_ERROR;
    }
    float *x = act->data;
    for (int64_t t = 0; t < act->shape[1]; t++) {
        int64_t at = ctx->pos_offset + t - a->from; /* offset into the vector's positions */
        if (at < 0 || (v->n_pos > 1 && at >= v->n_pos)) continue;
        const float *row = v->vec + (v->n_pos > 1 ? at : 0) * d;
        for (int64_t b = 0; b < act->shape[0]; b++) {
            float *y = x + b * act->stride[0] + t * act->stride[1];
            for (int64_t j = 0; j < d; j++) y[j] += a->coef * row[j];
        }
    }
    return HK_HOOK_CONTINUE;
}

hk_status hk_steer_add(hk_hooks *h, const hk_steer_apply *a, hk_hook_handle *out) {
    if (!h || !a || !a->v || !a->v->vec)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_steer_add: NULL hooks, apply or vector");
    const hk_model *m = h->model;
    hk_status st = check_point(m, a->v->point, a->v->layer, "hk_steer_add");
    if (st != HK_OK) return st;
    if (a->v->d_model != m->cfg.d_model)
        return hk_errorf(HK_ERR_SHAPE, "hk_steer_add: the vector has %lld features, the model's "
                                       "d_model is %lld", (long long)a->v->d_model,
                         (long long)m->cfg.d_model);
    if (a->from < 0 || !isfinite(a->coef))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_steer_add: from %lld must be >= 0 and coef "
                                             "finite", (long long)a->from);
    char name[96];
    snprintf(name, sizeof name, "blocks.%lld.%s", (long long)a->v->layer, a->v->point);
    return hk_hooks_add(h, name, steer_fire, (void *)a, out);
}

hk_status hk_steer_save(const hk_steer_vector *v, const hk_model *m, const char *path,
                        bool force) {
    if (!v || !v->vec || !path)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_steer_save: NULL vector or path");
    hid_t f;
    char *tmp;
    hk_status st = hk_h5_create_tmp(path, force, &f, &tmp);
    if (st != HK_OK) return st;
    int64_t shape[2] = {v->n_pos, v->d_model};
    st = hk_h5_attr_str(f, "kind", "steering_vector");
    if (st == HK_OK) st = hk_h5_attr_str(f, "hookformer_version", hk_version());
    if (st == HK_OK) st = hk_h5_attr_str(f, "model", m && m->source ? m->source : "");
    if (st == HK_OK) st = hk_h5_attr_str(f, "point", v->point);
    if (st == HK_OK) st = hk_h5_attr_i64(f, "layer", v->layer);
    if (st == HK_OK) st = hk_h5_f32(f, "vector", v->vec, 2, shape, "pos d_model");
    if (st != HK_OK) {
        hk_error_prefix(st, "%s", path);
        hk_h5_finish(f, tmp, path, false);
    } else {
        st = hk_h5_finish(f, tmp, path, true);
    }
    free(tmp);
    return st;
}

hk_status hk_steer_load(const char *path, hk_steer_vector *out) {
    if (!path || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_steer_load: NULL path or out");
    memset(out, 0, sizeof *out);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return hk_errorf(HK_ERR_IO, "%s: cannot open as an HDF5 file", path);
    char kind[64];
    hk_status st = hk_h5_read_attr_str(f, "kind", kind, sizeof kind, path);
    if (st == HK_OK && strcmp(kind, "steering_vector") != 0)
        st = hk_errorf(HK_ERR_FORMAT, "%s: kind is '%s', expected 'steering_vector'", path, kind);
    if (st == HK_OK) st = hk_h5_read_attr_str(f, "point", out->point, sizeof out->point, path);
    if (st == HK_OK) st = hk_h5_read_attr_i64(f, "layer", &out->layer, path);
    hid_t ds = -1, space = -1;
    if (st == HK_OK) {
        ds = H5Lexists(f, "vector", H5P_DEFAULT) > 0 ? H5Dopen2(f, "vector", H5P_DEFAULT) : -1;
        space = ds >= 0 ? H5Dget_space(ds) : -1;
        hsize_t dims[2];
        if (space < 0 || H5Sget_simple_extent_ndims(space) != 2 ||
            H5Sget_simple_extent_dims(space, dims, NULL) < 0 || dims[0] < 1 || dims[1] < 1) {
            st = hk_errorf(HK_ERR_FORMAT, "%s: dataset 'vector' is missing or not [pos, d_model]",
                           path);
        } else {
            out->n_pos = (int64_t)dims[0];
            out->d_model = (int64_t)dims[1];
            out->vec = malloc((size_t)(out->n_pos * out->d_model) * sizeof *out->vec);
            if (!out->vec)
                st = hk_errorf(HK_ERR_NOMEM, "%s: out of memory", path);
            else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->vec) < 0)
                st = hk_errorf(HK_ERR_FORMAT, "%s: cannot read dataset 'vector' as floats", path);
        }
    }
    if (space >= 0) H5Sclose(space);
    if (ds >= 0) H5Dclose(ds);
    H5Fclose(f);
    if (st != HK_OK) hk_steer_vector_free(out);
    return st;
}
