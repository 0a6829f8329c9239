/* Sparse SAE feature files (`hookformer cache --sae`): per SAE a group of CSR datasets
 * (indices, values, row_ptr) whose rows are the token rows of the file (seq_id, position,
 * token_id), written to PATH.tmp and renamed onto PATH at close. docs/FORMAT.md. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/model.h"
#include "h5_util.h"
#include "sae_impl.h"

#define CHUNK_ELEMS (64 * 1024) /* 256 KiB of f32 / i32, 512 KiB of i64: small files stay small */

typedef struct {
    hk_sae_store *owner;
    const hk_sae *sae;
    hk_sae_attachment *att;
    hk_hooks *hooks;
    hk_hook_handle h_acts;
    char group[200];
    hid_t d_idx, d_val, d_ptr;
    int64_t nnz;           /* entries in the file */
    /* this batch: [rows] counts and the entries, row after row */
    int64_t *row_nnz;
    int32_t *idx;
    float *val;
    int64_t n_b, cap_b, rows_b;
    uint64_t fired;        /* batches whose acts_post fired */
} sae_slot;

struct hk_sae_store {
    char *path, *tmp;
    hid_t file;
    hid_t d_seq, d_pos, d_tok;
    sae_slot *slots;
    size_t n;
    int64_t n_rows, n_seqs;
    const int64_t *b_lengths;
    int64_t b_batch, b_seq;
    uint64_t batches;
    bool failed;
};

static hid_t new_1d(hid_t loc, const char *name, hid_t type, const char *dims) {
    hsize_t zero = 0, unl = H5S_UNLIMITED, chunk = CHUNK_ELEMS;
    hid_t sp = H5Screate_simple(1, &zero, &unl);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 1, &chunk);
    hid_t d = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    H5Sclose(sp);
    if (d >= 0 && hk_h5_attr_str(d, "dims", dims) != HK_OK) {
        H5Dclose(d);
        return -1;
    }
    return d;
}

/* Append n values of `mem` type at the end (at) of 1-D dataset d. */
static hk_status append(hid_t d, hid_t mem, int64_t at, int64_t n, const void *v,
                        const char *path, const char *name) {
    if (n == 0) return HK_OK;
    hsize_t ext = (hsize_t)(at + n), start = (hsize_t)at, count = (hsize_t)n;
    if (H5Dset_extent(d, &ext) < 0)
        return hk_errorf(HK_ERR_IO, "%s: cannot extend dataset '%s' to %lld (disk full?)", path,
                         name, (long long)(at + n));
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL);
    herr_t r = H5Dwrite(d, mem, ms, fs, H5P_DEFAULT, v);
    H5Sclose(ms);
    H5Sclose(fs);
    return r < 0 ? hk_errorf(HK_ERR_IO, "%s: writing dataset '%s' failed (disk full?)", path, name)
                 : HK_OK;
}

static void slot_close(sae_slot *sl) {
    if (sl->d_idx >= 0) H5Dclose(sl->d_idx);
    if (sl->d_val >= 0) H5Dclose(sl->d_val);
    if (sl->d_ptr >= 0) H5Dclose(sl->d_ptr);
    sl->d_idx = sl->d_val = sl->d_ptr = -1;
    if (sl->h_acts) hk_hooks_remove(sl->hooks, sl->h_acts);
    sl->h_acts = 0;
    hk_sae_detach(sl->att);
    sl->att = NULL;
    free(sl->row_nnz);
    free(sl->idx);
    free(sl->val);
    sl->row_nnz = NULL;
    sl->idx = NULL;
    sl->val = NULL;
}

static void store_free(hk_sae_store *s) {
    for (size_t i = 0; i < s->n; i++) slot_close(&s->slots[i]);
    free(s->slots);
    if (s->d_seq >= 0) H5Dclose(s->d_seq);
    if (s->d_pos >= 0) H5Dclose(s->d_pos);
    if (s->d_tok >= 0) H5Dclose(s->d_tok);
    free(s->path);
    free(s->tmp);
    free(s);
}

hk_status hk_sae_store_create(const char *path, bool force, const hk_model *m,
                              const hk_sae *const *saes, size_t n, hk_sae_store **out) {
    if (!path || !m || !saes || !n || !out)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_store_create: NULL argument or no SAE");
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(saes[i]->hook, saes[j]->hook) == 0)
                return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_store_create: two SAEs read '%s' "
                                                     "(%s, %s); store one per hook", saes[i]->hook,
                                 saes[j]->path, saes[i]->path);
    hk_sae_store *s = calloc(1, sizeof *s);
    if (!s) return hk_errorf(HK_ERR_NOMEM, "hk_sae_store_create: out of memory");
    s->file = s->d_seq = s->d_pos = s->d_tok = -1;
    s->slots = calloc(n, sizeof *s->slots);
    s->path = strdup(path);
    if (!s->slots || !s->path) {
        store_free(s);
        return hk_errorf(HK_ERR_NOMEM, "hk_sae_store_create: out of memory");
    }
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        s->slots[i] = (sae_slot){.owner = s, .sae = saes[i], .d_idx = -1, .d_val = -1, .d_ptr = -1};
        snprintf(s->slots[i].group, sizeof s->slots[i].group, "%s.hook_sae_acts_post",
                 saes[i]->hook);
    }
    hk_status st = hk_h5_create_tmp(path, force, &s->file, &s->tmp);
    if (st) {
        store_free(s);
        return st;
    }
    hid_t f = s->file;
    st = hk_h5_attr_str(f, "kind", "sae_features");
    if (!st) st = hk_h5_attr_str(f, "hookformer_version", hk_version());
    if (!st) st = hk_h5_attr_str(f, "model", m->source ? m->source : "");
    if (!st) st = hk_h5_attr_str(f, "family", hk_model_family(m));
    if (!st) {
        s->d_seq = new_1d(f, "seq_id", H5T_STD_I64LE, "row");
        s->d_pos = new_1d(f, "position", H5T_STD_I64LE, "row");
        s->d_tok = new_1d(f, "token_id", H5T_STD_I32LE, "row");
        if (s->d_seq < 0 || s->d_pos < 0 || s->d_tok < 0)
            st = hk_errorf(HK_ERR_IO, "%s: cannot create the row datasets", path);
    }
    for (size_t i = 0; !st && i < n; i++) {
        sae_slot *sl = &s->slots[i];
        const hk_sae *e = sl->sae;
        hid_t g = H5Gcreate2(f, sl->group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) {
            st = hk_errorf(HK_ERR_IO, "%s: cannot create group '%s'", path, sl->group);
            break;
        }
        st = hk_h5_attr_str(g, "format", "csr");
        if (!st) st = hk_h5_attr_str(g, "hook", e->hook);
        if (!st) st = hk_h5_attr_str(g, "sae", e->path);
        if (!st) st = hk_h5_attr_str(g, "architecture", hk_sae_arch_name(e->arch));
        if (!st) st = hk_h5_attr_i64(g, "d_sae", e->d_sae);
        if (!st) st = hk_h5_attr_i64(g, "d_in", e->d_in);
        if (!st) {
            int64_t shape[2] = {0, e->d_sae};
            hid_t sp = H5Screate(H5S_SCALAR);
            hsize_t two = 2;
            hid_t sp2 = H5Screate_simple(1, &two, NULL);
            hid_t at = H5Acreate2(g, "shape", H5T_STD_I64LE, sp2, H5P_DEFAULT, H5P_DEFAULT);
            if (at < 0 || H5Awrite(at, H5T_NATIVE_INT64, shape) < 0)
                st = hk_errorf(HK_ERR_IO, "%s: cannot write %s/shape", path, sl->group);
            if (at >= 0) H5Aclose(at);
            H5Sclose(sp2);
            H5Sclose(sp);
        }
        if (!st) {
            sl->d_idx = new_1d(g, "indices", H5T_STD_I32LE, "nnz");
            sl->d_val = new_1d(g, "values", H5T_IEEE_F32LE, "nnz");
            sl->d_ptr = new_1d(g, "row_ptr", H5T_STD_I64LE, "row+1");
            int64_t zero = 0;
            if (sl->d_idx < 0 || sl->d_val < 0 || sl->d_ptr < 0)
                st = hk_errorf(HK_ERR_IO, "%s: cannot create the CSR datasets of '%s'", path,
                               sl->group);
            else
                st = append(sl->d_ptr, H5T_NATIVE_INT64, 0, 1, &zero, path, "row_ptr");
        }
        H5Gclose(g);
    }
    if (st) {
        for (size_t i = 0; i < n; i++) slot_close(&s->slots[i]);
        if (s->d_seq >= 0) H5Dclose(s->d_seq);
        if (s->d_pos >= 0) H5Dclose(s->d_pos);
        if (s->d_tok >= 0) H5Dclose(s->d_tok);
        s->d_seq = s->d_pos = s->d_tok = -1;
        hk_h5_finish(s->file, s->tmp, path, false);
        store_free(s);
        return st;
    }
    *out = s;
    return HK_OK;
}

static bool push(sae_slot *sl, int32_t j, float v) {
    if (sl->n_b == sl->cap_b) {
        int64_t cap = sl->cap_b ? 2 * sl->cap_b : 4096;
        int32_t *i2 = realloc(sl->idx, (size_t)cap * sizeof *i2);
        if (i2) sl->idx = i2;
        float *v2 = i2 ? realloc(sl->val, (size_t)cap * sizeof *v2) : NULL;
        if (!v2) return false;
        sl->val = v2;
        sl->cap_b = cap;
    }
    sl->idx[sl->n_b] = j;
    sl->val[sl->n_b++] = v;
    return true;
}

/* acts_post [batch, pos, d_sae] of one chunk: the nonzeros of the valid positions. */
static hk_hook_result on_acts(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    sae_slot *sl = user;
    hk_sae_store *s = sl->owner;
    const int64_t d = t->shape[2];
    if (ctx->batch_offset != 0 || ctx->pos_offset != 0 || t->shape[0] != s->b_batch ||
        t->shape[1] != s->b_seq) {
        hk_hook_error("SAE feature store: expected one forward over the whole batch");
        return HK_HOOK_ERROR;
    }
    const float *a = t->data;
    int64_t r = 0;
    for (int64_t b = 0; b < s->b_batch; b++)
        for (int64_t p = 0; p < s->b_lengths[b]; p++, r++) {
            const float *row = a + (b * s->b_seq + p) * d; /* [d_sae] */
            int64_t before = sl->n_b;
            for (int64_t j = 0; j < d; j++)
                if (row[j] != 0.0f && !push(sl, (int32_t)j, row[j])) {
                    hk_hook_error("SAE feature store: out of memory");
                    return HK_HOOK_ERROR;
                }
            sl->row_nnz[r] = sl->n_b - before;
        }
    sl->fired = s->batches + 1;
    return HK_HOOK_CONTINUE;
}

hk_status hk_sae_store_attach(hk_sae_store *s, hk_hooks *hooks) {
    if (!s || !hooks) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_store_attach: NULL argument");
    for (size_t i = 0; i < s->n; i++) {
        sae_slot *sl = &s->slots[i];
        if (sl->att)
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_store_attach: already attached");
        sl->hooks = hooks;
        hk_status st = hk_sae_attach(hooks, sl->sae, HK_SAE_OBSERVE, &sl->att);
        if (!st) st = hk_hooks_add(hooks, sl->group, on_acts, sl, &sl->h_acts);
        if (st) return st;
    }
    return HK_OK;
}

hk_status hk_sae_store_run(hk_sae_store *s, hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                           const int64_t *lengths, int64_t batch, int64_t seq) {
    if (!s || !m || !hooks || !tokens || !lengths || batch < 1 || seq < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_store_run: bad argument");
    if (s->failed) return hk_errorf(HK_ERR_IO, "%s: an earlier write failed", s->path);
    int64_t rows = 0;
    for (int64_t b = 0; b < batch; b++) {
        if (lengths[b] < 1 || lengths[b] > seq)
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_store_run: lengths[%lld] = %lld, "
                                                 "expected 1..%lld", (long long)b,
                             (long long)lengths[b], (long long)seq);
        rows += lengths[b];
    }
    for (size_t i = 0; i < s->n; i++) {
        sae_slot *sl = &s->slots[i];
        free(sl->row_nnz);
        sl->row_nnz = malloc((size_t)rows * sizeof *sl->row_nnz);
        if (!sl->row_nnz) return hk_errorf(HK_ERR_NOMEM, "hk_sae_store_run: out of memory");
        sl->n_b = 0;
        sl->rows_b = rows;
    }
    s->b_lengths = lengths;
    s->b_batch = batch;
    s->b_seq = seq;
    hk_status st = hk_model_run(m, hooks, tokens, lengths, batch, seq, NULL);
    if (st) return st;
    for (size_t i = 0; i < s->n; i++)
        if (s->slots[i].fired != s->batches + 1)
            return hk_errorf(HK_ERR_INTERNAL, "%s: SAE at '%s' did not fire (were its hooks "
                                              "attached with hk_sae_store_attach?)", s->path,
                             s->slots[i].sae->hook);
    /* the rows, then each SAE's entries and row pointers */
    int64_t *seq_id = malloc((size_t)rows * sizeof *seq_id), *pos = malloc((size_t)rows * sizeof *pos);
    int32_t *tok = malloc((size_t)rows * sizeof *tok);
    if (!seq_id || !pos || !tok) st = hk_errorf(HK_ERR_NOMEM, "hk_sae_store_run: out of memory");
    for (int64_t b = 0, r = 0; !st && b < batch; b++)
        for (int64_t p = 0; p < lengths[b]; p++, r++) {
            seq_id[r] = s->n_seqs + b;
            pos[r] = p;
            tok[r] = tokens[b * seq + p];
        }
    if (!st) st = append(s->d_seq, H5T_NATIVE_INT64, s->n_rows, rows, seq_id, s->path, "seq_id");
    if (!st) st = append(s->d_pos, H5T_NATIVE_INT64, s->n_rows, rows, pos, s->path, "position");
    if (!st) st = append(s->d_tok, H5T_NATIVE_INT32, s->n_rows, rows, tok, s->path, "token_id");
    for (size_t i = 0; !st && i < s->n; i++) {
        sae_slot *sl = &s->slots[i];
        int64_t *ptr = seq_id; /* reused: [rows] end offsets */
        int64_t acc = sl->nnz;
        for (int64_t r = 0; r < rows; r++) ptr[r] = (acc += sl->row_nnz[r]);
        st = append(sl->d_idx, H5T_NATIVE_INT32, sl->nnz, sl->n_b, sl->idx, s->path, "indices");
        if (!st) st = append(sl->d_val, H5T_NATIVE_FLOAT, sl->nnz, sl->n_b, sl->val, s->path, "values");
        if (!st) st = append(sl->d_ptr, H5T_NATIVE_INT64, s->n_rows + 1, rows, ptr, s->path, "row_ptr");
        sl->nnz += sl->n_b;
    }
    free(seq_id);
    free(pos);
    free(tok);
    if (st) {
        s->failed = true;
        return st;
    }
    s->n_rows += rows;
    s->n_seqs += batch;
    s->batches++;
    return HK_OK;
}

int64_t hk_sae_store_nnz(const hk_sae_store *s, size_t i) {
    return s && i < s->n ? s->slots[i].nnz : -1;
}

hk_status hk_sae_store_close(hk_sae_store *s) {
    if (!s) return HK_OK;
    hk_status st = s->failed ? hk_errorf(HK_ERR_IO, "%s: an earlier write failed", s->path) : HK_OK;
    if (!st) st = hk_h5_attr_i64(s->file, "n_rows", s->n_rows);
    if (!st) st = hk_h5_attr_i64(s->file, "n_sequences", s->n_seqs);
    for (size_t i = 0; !st && i < s->n; i++) {
        sae_slot *sl = &s->slots[i];
        hid_t g = H5Gopen2(s->file, sl->group, H5P_DEFAULT);
        int64_t shape[2] = {s->n_rows, sl->sae->d_sae};
        hid_t at = g >= 0 ? H5Aopen(g, "shape", H5P_DEFAULT) : -1;
        if (at < 0 || H5Awrite(at, H5T_NATIVE_INT64, shape) < 0)
            st = hk_errorf(HK_ERR_IO, "%s: cannot write %s/shape", s->path, sl->group);
        if (!st) st = hk_h5_attr_i64(g, "nnz", sl->nnz);
        if (at >= 0) H5Aclose(at);
        if (g >= 0) H5Gclose(g);
    }
    for (size_t i = 0; i < s->n; i++) slot_close(&s->slots[i]);
    H5Dclose(s->d_seq);
    H5Dclose(s->d_pos);
    H5Dclose(s->d_tok);
    s->d_seq = s->d_pos = s->d_tok = -1;
    hk_status fst = hk_h5_finish(s->file, s->tmp, s->path, st == HK_OK);
    if (!st) st = fst;
    store_free(s);
    return st;
}

void hk_sae_store_discard(hk_sae_store *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) slot_close(&s->slots[i]);
    H5Dclose(s->d_seq);
    H5Dclose(s->d_pos);
    H5Dclose(s->d_tok);
    s->d_seq = s->d_pos = s->d_tok = -1;
    hk_h5_finish(s->file, s->tmp, s->path, false);
    store_free(s);
}
