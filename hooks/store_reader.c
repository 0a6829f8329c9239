/* Reading a store: read-only open, summary, and rows of a hook at (sequence, position) pairs
 * (the patching source). Only committed rows are seen: counts come from the index datasets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/dtype.h"
#include "core/error.h"
#include "store.h"

static hk_status read_i64(hk_store *s, hid_t d, int64_t n, int64_t *out) {
    if (n == 0) return HK_OK;
    hsize_t start = 0, cnt = (hsize_t)n;
    hid_t fsp = H5Dget_space(d), msp = H5Screate_simple(1, &cnt, NULL);
    bool ok = fsp >= 0 && msp >= 0 &&
              H5Sselect_hyperslab(fsp, H5S_SELECT_SET, &start, NULL, &cnt, NULL) >= 0 &&
              H5Dread(d, H5T_NATIVE_INT64, msp, fsp, H5P_DEFAULT, out) >= 0;
    if (msp >= 0) H5Sclose(msp);
    if (fsp >= 0) H5Sclose(fsp);
    return ok ? HK_OK : hk_store_h5_error(s, HK_ERR_IO, "reading the sequence table");
}

hk_status hk_store_open(const char *path, hk_store **out) {
    if (!path || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_open: NULL argument");
    *out = NULL;
    hk_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return hk_errorf(HK_ERR_NOMEM, "out of memory");
    }
    s->file = s->ftype = -1;
    s->d_seq = s->d_pos = s->d_tok = s->d_slen = s->d_sfirst = s->d_sfpos = s->d_snrows = -1;
    s->d_scid = -1;
    s->fd = -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hk_status st = HK_OK;
    struct stat sb;
    if (stat(path, &sb) != 0) st = hk_errorf(HK_ERR_NOT_FOUND, "%s: no such file", path);
    if (st == HK_OK) {
        s->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (s->file < 0) st = hk_store_h5_error(s, HK_ERR_FORMAT, "not an HDF5 file that opens");
    }
    if (st == HK_OK) st = hk_store_open_layout(s);
    if (st == HK_OK && (s->ftype = hk_store_file_type(s->dtype)) < 0)
        st = hk_store_h5_error(s, HK_ERR_INTERNAL, "cannot make the file dtype");
    if (st == HK_OK) {
        size_t n = (size_t)(s->committed_seqs ? s->committed_seqs : 1);
        s->r_first = malloc(n * sizeof *s->r_first);
        s->r_fpos = malloc(n * sizeof *s->r_fpos);
        s->r_nrows = malloc(n * sizeof *s->r_nrows);
        if (!s->r_first || !s->r_fpos || !s->r_nrows) st = hk_errorf(HK_ERR_NOMEM, "out of memory");
    }
    if (st == HK_OK) st = read_i64(s, s->d_sfirst, s->committed_seqs, s->r_first);
    if (st == HK_OK) st = read_i64(s, s->d_sfpos, s->committed_seqs, s->r_fpos);
    if (st == HK_OK) st = read_i64(s, s->d_snrows, s->committed_seqs, s->r_nrows);
    if (st == HK_OK && !(s->r_len = malloc((size_t)(s->committed_seqs ? s->committed_seqs : 1) *
                                           sizeof *s->r_len)))
        st = hk_errorf(HK_ERR_NOMEM, "out of memory");
    if (st == HK_OK) st = read_i64(s, s->d_slen, s->committed_seqs, s->r_len);
    if (st != HK_OK) {
        hk_store_destroy(s);
        return st;
    }
    *out = s;
    return HK_OK;
}

hk_status hk_store_get_info(const hk_store *s, hk_store_info *out) {
    if (!s || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_get_info: NULL argument");
    memset(out, 0, sizeof *out);
    out->path = s->path;
    out->model_id = s->model_id;
    out->model_path = s->model_path ? s->model_path : "";
    out->family = s->family;
    out->dtype = s->dtype == HK_DTYPE_F16 ? "float16" : s->dtype == HK_DTYPE_BF16 ? "bfloat16"
                                                                                 : "float32";
    out->positions = s->positions;
    out->compression = s->compression;
    out->version = s->version;
    out->n_rows = s->committed_rows;
    out->n_sequences = s->committed_seqs;
    out->ctx = s->ctx;
    out->n_hooks = s->n_hooks;
    struct stat sb;
    if (stat(s->path, &sb) == 0) out->file_bytes = (uint64_t)sb.st_size;
    return HK_OK;
}

hk_status hk_store_hook_at(const hk_store *s, size_t i, hk_store_hook_info *out) {
    if (!s || !out || i >= s->n_hooks)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_hook_at: index %zu out of range", i);
    const hk_store_hook *h = &s->hooks[i];
    memset(out, 0, sizeof *out);
    out->name = h->name;
    out->per_sequence = h->per_seq;
    out->ndim = h->row_ndim + 1;
    out->shape[0] = h->per_seq ? s->committed_seqs : s->committed_rows;
    for (int d = 0; d < h->row_ndim && d + 1 < HK_MAX_DIMS; d++) out->shape[1 + d] = h->row_shape[d];
    out->dims = h->dims;
    out->chunk_rows = h->chunk_rows;
    out->data_bytes = (uint64_t)out->shape[0] * (uint64_t)h->row_elems *
                      (s->dtype == HK_DTYPE_F32 ? 4u : 2u);
    out->stored_bytes = h->dset >= 0 ? (uint64_t)H5Dget_storage_size(h->dset) : 0;
    return HK_OK;
}

static const hk_store_hook *hook_named(const hk_store *s, const char *name) {
    for (size_t i = 0; name && i < s->n_hooks; i++)
        if (strcmp(s->hooks[i].name, name) == 0) return &s->hooks[i];
    return NULL;
}

int64_t hk_store_row_elems(const hk_store *s, const char *name) {
    const hk_store_hook *h = s ? hook_named(s, name) : NULL;
    return h ? h->row_elems : -1;
}

/* Rows [row0, row0 + count) of h as f32 into out. */
static hk_status read_rows(hk_store *s, const hk_store_hook *h, int64_t row0, int64_t count,
                           float *out) {
    hsize_t start[HK_MAX_DIMS + 1] = {(hsize_t)row0}, cnt[HK_MAX_DIMS + 1];
    cnt[0] = (hsize_t)count;
    for (int d = 0; d < h->row_ndim; d++) cnt[1 + d] = (hsize_t)h->row_shape[d];
    size_t n = (size_t)(count * h->row_elems);
    /* 16-bit rows are read as stored into the tail of out, then widened front to back */
    void *raw = s->dtype == HK_DTYPE_F32 ? (void *)out : (void *)((char *)out + n * 2);
    hid_t fsp = H5Dget_space(h->dset), msp = H5Screate_simple(h->row_ndim + 1, cnt, NULL);
    bool ok = fsp >= 0 && msp >= 0 &&
              H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0 &&
              H5Dread(h->dset, s->ftype, msp, fsp, H5P_DEFAULT, raw) >= 0;
    if (msp >= 0) H5Sclose(msp);
    if (fsp >= 0) H5Sclose(fsp);
    if (!ok) {
        char what[300];
        snprintf(what, sizeof what, "reading rows of '%s'", h->name);
        return hk_store_h5_error(s, HK_ERR_IO, what);
    }
    if (s->dtype != HK_DTYPE_F32) {
        /* element i's source (byte 2n + 2i) is never below its destination (4i) */
        const unsigned char *src = raw;
        for (size_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, src + 2 * i, 2);
            out[i] = s->dtype == HK_DTYPE_F16 ? hk_f16_to_f32(v) : hk_bf16_to_f32(v);
        }
    }
    return HK_OK;
}

hk_status hk_store_read(hk_store *s, const char *name, const int64_t *seq_ids,
                        const int64_t *positions, size_t n, float *out) {
    if (!s || !seq_ids || (!out && n))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_read: NULL argument");
    const hk_store_hook *h = hook_named(s, name);
    if (!h)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: no stored hook '%s' (%zu hooks are stored; "
                                           "`hookformer inspect` lists them)",
                         s->path, name ? name : "(null)", s->n_hooks);
    if (h->per_seq && positions)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: hook '%s' is stored per sequence: pass "
                                             "positions NULL",
                         s->path, h->name);
    if (!h->per_seq && !positions)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: hook '%s': positions are required", s->path,
                         h->name);
    if (s->writable)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: open the store with hk_store_open to read it",
                         s->path);
    /* consecutive rows are read with one H5Dread */
    size_t i = 0;
    while (i < n) {
        int64_t rows[2];
        size_t k = i;
        int64_t run0 = -1, run = 0;
        for (; k < n; k++) {
            int64_t q = seq_ids[k];
            if (q < 0 || q >= s->committed_seqs)
                return hk_errorf(HK_ERR_NOT_FOUND, "%s: sequence %lld is not stored (%lld "
                                                   "sequences)",
                                 s->path, (long long)q, (long long)s->committed_seqs);
            int64_t row;
            if (h->per_seq) {
                row = q;
            } else {
                int64_t p = positions[k], off = p == -1 ? s->r_nrows[q] - 1 : p - s->r_fpos[q];
                if (off < 0 || off >= s->r_nrows[q])
                    return hk_errorf(HK_ERR_NOT_FOUND, "%s: position %lld of sequence %lld is "
                                                       "not stored (positions %lld..%lld are)",
                                     s->path, (long long)p, (long long)q,
                                     (long long)s->r_fpos[q],
                                     (long long)(s->r_fpos[q] + s->r_nrows[q] - 1));
                row = s->r_first[q] + off;
            }
            if (run0 < 0) run0 = row;
            else if (row != run0 + run) break;
            run++;
        }
        rows[0] = run0;
        rows[1] = run;
        hk_status st = read_rows(s, h, rows[0], rows[1], out + i * (size_t)h->row_elems);
        if (st != HK_OK) return st;
        i += (size_t)run;
    }
    return HK_OK;
}

hk_status hk_store_sequence(const hk_store *s, int64_t q, int64_t *length, int64_t *first_row,
                            int64_t *first_pos, int64_t *n_rows) {
    if (!s || s->writable || !s->r_len)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_sequence: a store opened with "
                                             "hk_store_open is required");
    if (q < 0 || q >= s->committed_seqs)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: sequence %lld is not stored (%lld sequences)",
                         s->path, (long long)q, (long long)s->committed_seqs);
    if (length) *length = s->r_len[q];
    if (first_row) *first_row = s->r_first[q];
    if (first_pos) *first_pos = s->r_fpos[q];
    if (n_rows) *n_rows = s->r_nrows[q];
    return HK_OK;
}

hk_status hk_store_read_token_ids(hk_store *s, int64_t row0, int64_t n, int32_t *out) {
    if (!s || s->writable || (!out && n))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_read_token_ids: a store opened with "
                                             "hk_store_open and an output are required");
    if (row0 < 0 || n < 0 || row0 + n > s->committed_rows)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: rows %lld..%lld are not stored (%lld rows)",
                         s->path, (long long)row0, (long long)(row0 + n),
                         (long long)s->committed_rows);
    if (n == 0) return HK_OK;
    hsize_t start = (hsize_t)row0, cnt = (hsize_t)n;
    hid_t fsp = H5Dget_space(s->d_tok), msp = H5Screate_simple(1, &cnt, NULL);
    bool ok = fsp >= 0 && msp >= 0 &&
              H5Sselect_hyperslab(fsp, H5S_SELECT_SET, &start, NULL, &cnt, NULL) >= 0 &&
              H5Dread(s->d_tok, H5T_NATIVE_INT32, msp, fsp, H5P_DEFAULT, out) >= 0;
    if (msp >= 0) H5Sclose(msp);
    if (fsp >= 0) H5Sclose(fsp);
    return ok ? HK_OK : hk_store_h5_error(s, HK_ERR_IO, "reading token_id");
}

hk_status hk_store_corpus_ids(hk_store *s, int64_t *out) {
    if (!s || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_corpus_ids: NULL argument");
    if (s->d_scid < 0)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: no seq_corpus_id dataset (not a shard of a "
                                           "distributed run)", s->path);
    return read_i64(s, s->d_scid, s->committed_seqs, out);
}
