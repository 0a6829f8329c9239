/* Writing a store: create / append, the hook callback that packs the selected rows of every
 * stored hook into per-hook staging buffers (in the file's dtype), batches and close.
 *
 * Rows go to the file after each batch; they become visible at commits (store_commit.c).
 * Uncompressed datasets get every batch's rows straight away (a chunk's space is fixed, so a
 * later write into a partly written chunk only fills bytes no committed row uses).
 * Compressed datasets get whole chunks only (a rewritten compressed chunk would move), and
 * their last partial chunk at close; commits then cover the rows every hook holds. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/model.h"
#include "registry.h"
#include "store.h"

hk_store_opts hk_store_default_opts(void) {
    hk_store_opts o;
    memset(&o, 0, sizeof o);
    o.dtype = HK_DTYPE_F32;
    o.commit_seconds = 1.0;
    return o;
}

static size_t esize_of(const hk_store *s) { return s->dtype == HK_DTYPE_F32 ? 4 : 2; }
static bool compressed(const hk_store *s) { return s->deflate > 0 || s->lz4; }

/* ---- lifetime ---- */

static hk_store *store_alloc(const char *path) {
    hk_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->file = s->ftype = -1;
    s->d_seq = s->d_pos = s->d_tok = s->d_slen = s->d_sfirst = s->d_sfpos = s->d_snrows = -1;
    s->d_scid = -1;
    s->fd = -1;
    s->path = strdup(path);
    if (!s->path) {
        free(s);
        return NULL;
    }
    return s;
}

void hk_store_destroy(hk_store *s) {
    if (!s) return;
    hk_store_writer_stop(s);
    for (size_t i = 0; i < s->n_hooks; i++) {
        if (s->hooks[i].dset >= 0) H5Dclose(s->hooks[i].dset);
        free(s->hooks[i].name);
        free(s->hooks[i].stage);
        free(s->hooks[i].stage_back);
    }
    free(s->hooks);
    hid_t idx[] = {s->d_seq, s->d_pos, s->d_tok, s->d_slen, s->d_sfirst, s->d_sfpos, s->d_snrows,
                   s->d_scid};
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++)
        if (idx[i] >= 0) H5Dclose(idx[i]);
    if (s->ftype >= 0) H5Tclose(s->ftype);
    if (s->file >= 0) H5Fclose(s->file);
    if (s->tmp_path) unlink(s->tmp_path);
    hk_store_restore_xfsz(s);
    hk_i64_vec *vs[] = {&s->p_seq, &s->p_pos, &s->p_tok, &s->p_slen, &s->p_sfirst, &s->p_sfpos,
                        &s->p_snrows, &s->p_scid};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) free(vs[i]->v);
    free(s->b_cids);
    hk_hooks_free(s->own_hooks);
    free(s->b_first);
    free(s->b_count);
    free(s->b_row);
    free(s->r_first);
    free(s->r_fpos);
    free(s->r_nrows);
    free(s->r_len);
    free(s->model_id);
    free(s->model_path);
    free(s->device);
    free(s->family);
    free(s->config_json);
    free(s->version);
    free(s->tmp_path);
    free(s->path);
    free(s);
}

/* ---- options ---- */

static hk_status parse_opts(hk_store *s, const hk_store_opts *o) {
    if (o->dtype != HK_DTYPE_F32 && o->dtype != HK_DTYPE_F16 && o->dtype != HK_DTYPE_BF16)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: dtype %s: expected f32, f16 or bf16", s->path,
                         hk_dtype_name(o->dtype));
    s->dtype = o->dtype;
    hk_status st = hk_selection_parse(o->positions, s->path, &s->sel);
    if (st != HK_OK) return st;
    snprintf(s->positions, sizeof s->positions, "%s", o->positions ? o->positions : "all");
    const char *c = o->compress ? o->compress : "none";
    if (strcmp(c, "none") == 0) {
        s->deflate = 0;
    } else if (strcmp(c, "deflate") == 0) {
        s->deflate = 4;
    } else if (strncmp(c, "deflate:", 8) == 0 && c[8] >= '1' && c[8] <= '9' && !c[9]) {
        s->deflate = c[8] - '0';
    } else if (strcmp(c, "lz4") == 0) {
        if (H5Zfilter_avail(32004) <= 0)
            return hk_errorf(HK_ERR_UNSUPPORTED,
                             "%s: compress lz4: the HDF5 LZ4 filter plugin (filter 32004) is not "
                             "installed (set HDF5_PLUGIN_PATH, or use deflate)",
                             s->path);
        s->lz4 = true;
    } else {
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: compress '%s': expected none, deflate, "
                                             "deflate:N (N in 1..9) or lz4",
                         s->path, c);
    }
    snprintf(s->compression, sizeof s->compression, "%s", c);
    if (o->ctx < 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: ctx %lld, expected >= 0", s->path,
                         (long long)o->ctx);
    s->ctx = o->ctx;
    s->corpus_ids = o->corpus_ids;
    if (!(o->commit_seconds >= 0))
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: commit_seconds must be >= 0", s->path);
    s->commit_seconds = o->commit_seconds;
    s->fsync = o->fsync;
    s->overlap = o->overlap && !compressed(s);
    return HK_OK;
}

/* ---- hooks ---- */

static void dim_roles(const hk_hook_point *pt, hk_store_hook *h) {
    h->batch_dim = h->pos_dim = h->key_dim = -1;
    int d = 0;
    for (const char *p = pt->dims; *p && d < pt->ndim; d++) {
        size_t len = strcspn(p, " ");
#define IS(x) (len == sizeof(x) - 1 && strncmp(p, x, len) == 0)
        if (IS("batch")) h->batch_dim = d;
        else if (IS("pos") || IS("query_pos")) h->pos_dim = d;
        else if (IS("key_pos")) h->key_dim = d;
#undef IS
        p += len;
        p += strspn(p, " ");
    }
}

/* Layers whose split inputs (hook_attn_in, hook_q/k/v_input) the store holds: a bit per layer
 * in s->split_layers. */
static void split_layer_set(hk_store *s, int64_t layer) {
    if (layer < 0 || layer >= HK_STORE_MAX_SPLIT_LAYERS) return;
    s->split_layers[layer / 64] |= 1ull << (layer % 64);
}

static bool split_layer_get(const hk_store *s, int64_t layer) {
    if (layer < 0 || layer >= HK_STORE_MAX_SPLIT_LAYERS) return false;
    return s->split_layers[layer / 64] >> (layer % 64) & 1;
}

/* The stored hooks: the model's points matching any pattern, in execution order. */
static hk_status setup_hooks(hk_store *s, const hk_model *m, const char *const *patterns,
                             size_t n, int64_t expected_rows) {
    if (!patterns || n == 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: no hook pattern given", s->path);
    const hk_points *pts = &m->points;
    for (size_t i = 0; i < n; i++) {
        bool hit = false;
        for (size_t p = 0; p < pts->n && !hit && patterns[i]; p++)
            hit = hk_glob_match(patterns[i], pts->points[p].name);
        if (!patterns[i])
            return hk_errorf(HK_ERR_INVALID_ARG, "hook pattern %zu is NULL", i);
        if (!hit) return hk_hook_not_found(pts, m->cfg.family, patterns[i], NULL);
    }
    s->hooks = calloc(pts->n ? pts->n : 1, sizeof *s->hooks);
    if (!s->hooks) return hk_errorf(HK_ERR_NOMEM, "out of memory");
    for (size_t p = 0; p < pts->n; p++) {
        if (hk_point_kind_splits_inputs(pts->kinds[p]) &&
            hk_glob_match_any(patterns, n, pts->points[p].name))
            split_layer_set(s, pts->points[p].layer);
    }
    for (size_t p = 0; p < pts->n; p++) {
        if (!hk_glob_match_any(patterns, n, pts->points[p].name)) continue;
        const hk_hook_point *pt = &pts->points[p];
        hk_store_hook *h = &s->hooks[s->n_hooks++];
        h->dset = -1;
        h->name = strdup(pt->name);
        if (!h->name) return hk_errorf(HK_ERR_NOMEM, "out of memory");
        h->point = (int32_t)p;
        dim_roles(pt, h);
        h->per_seq = h->key_dim >= 0;
        h->is_scores = pts->kinds[p] == HK_PT_ATTN_SCORES;
        if (h->batch_dim != 0 || h->pos_dim < 0 || pt->ndim < 2)
            return hk_errorf(HK_ERR_UNSUPPORTED, "%s: hook '%s' (dims %s) cannot be stored",
                             s->path, pt->name, pt->dims);
        h->row_elems = 1;
        if (h->per_seq) {
            if (s->ctx <= 0)
                return hk_errorf(HK_ERR_INVALID_ARG,
                                 "%s: hook '%s' stores attention per sequence, [sequence, head, "
                                 "query, key]: give ctx (--ctx N), the padded length",
                                 s->path, pt->name);
            if (s->sel.kind == HK_SEL_RANGE)
                return hk_errorf(HK_ERR_UNSUPPORTED,
                                 "%s: hook '%s': attention patterns are stored for positions "
                                 "\"all\" or \"last\", not a slice",
                                 s->path, pt->name);
            h->row_ndim = 3;
            h->row_shape[0] = pt->shape[1];
            h->row_shape[1] = s->sel.kind == HK_SEL_LAST ? 1 : s->ctx;
            h->row_shape[2] = s->ctx;
            snprintf(h->dims, sizeof h->dims, "sequence head_index query_pos key_pos");
        } else if ((pts->kinds[p] == HK_PT_LN1_SCALE || pts->kinds[p] == HK_PT_LN1_NORMALIZED) &&
                   split_layer_get(s, pt->layer)) {
            /* per head: the last firing's heads, v's (kv heads; hook_attn_in alone is offered
             * only without GQA, where they are the same) */
            const int32_t vp = hk_points_index(pts, pt->layer, HK_PT_V_INPUT);
            h->split_ln1 = true;
            h->row_ndim = 2;
            h->row_shape[0] = vp >= 0 ? pts->points[vp].shape[2] : m->cfg.n_kv_heads;
            h->row_shape[1] = pt->shape[2];
            snprintf(h->dims, sizeof h->dims, "row kv_head_index %s",
                     pts->kinds[p] == HK_PT_LN1_SCALE ? "1" : "d_model");
        } else {
            int k = 0;
            size_t used = (size_t)snprintf(h->dims, sizeof h->dims, "row");
            const char *p2 = pt->dims;
            for (int d = 0; d < pt->ndim; d++) {
                size_t len = strcspn(p2, " ");
                if (d != h->batch_dim && d != h->pos_dim) {
                    h->row_shape[k++] = pt->shape[d];
                    if (used < sizeof h->dims)
                        used += (size_t)snprintf(h->dims + used, sizeof h->dims - used, " %.*s",
                                                 (int)len, p2);
                }
                p2 += len;
                p2 += strspn(p2, " ");
            }
            h->row_ndim = k;
        }
        for (int d = 0; d < h->row_ndim; d++) {
            if (h->row_shape[d] <= 0)
                return hk_errorf(HK_ERR_UNSUPPORTED, "%s: hook '%s' has a run-dependent dim "
                                                     "%d (dims %s) and cannot be stored",
                                 s->path, pt->name, d, pt->dims);
            h->row_elems *= h->row_shape[d];
        }
        if (h->per_seq) {
            h->chunk_rows = 1;
        } else {
            int64_t row_bytes = h->row_elems * (int64_t)esize_of(s);
            h->chunk_rows = (int64_t)HK_STORE_CHUNK_BYTES / row_bytes;
            /* a small store: chunks of the rows it expects (a power of two, >= 16) */
            int64_t small = 16;
            while (expected_rows > 0 && small < expected_rows && small < h->chunk_rows) small *= 2;
            if (expected_rows > 0 && small < h->chunk_rows) h->chunk_rows = small;
            if (h->chunk_rows < 1) h->chunk_rows = 1;
        }
    }
    s->index_chunk = HK_STORE_INDEX_CHUNK;
    while (expected_rows > 0 && s->index_chunk / 2 >= expected_rows && s->index_chunk > 16)
        s->index_chunk /= 2;
    return HK_OK;
}

bool hk_store_needs_ctx(const hk_model *m, const char *const *patterns, size_t n) {
    if (!m || !patterns) return false;
    for (size_t p = 0; p < m->points.n; p++) {
        const hk_point_kind k = m->points.kinds[p];
        if (k != HK_PT_ATTN_SCORES && k != HK_PT_PATTERN) continue;
        if (hk_glob_match_any(patterns, n, m->points.points[p].name)) return true;
    }
    return false;
}

static hk_status model_strings(hk_store *s, const hk_model *m) {
    char resolved[PATH_MAX];
    const char *src = m->source ? m->source : "";
    s->model_path = strdup(realpath(src, resolved) ? resolved : src);
    s->family = strdup(m->cfg.family);
    s->version = strdup(hk_version());
    s->device = strdup(hk_model_device_string(m));
    hk_status st = hk_model_config_json(m, &s->config_json);
    if (st != HK_OK) return st;
    if (!s->model_path || !s->family || !s->version || !s->device)
        return hk_errorf(HK_ERR_NOMEM, "out of memory");
    return hk_store_model_id(m, s->config_json, &s->model_id);
}

static hk_status new_writer(const char *path, const hk_model *m, const char *const *patterns,
                            size_t n, const hk_store_opts *o, hk_store **out, hk_store **sp) {
    if (!path || !m || !out)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store: path, model and out are required");
    *out = NULL;
    hk_store_opts def = hk_store_default_opts();
    hk_store *s = store_alloc(path);
    if (!s) return hk_errorf(HK_ERR_NOMEM, "out of memory");
    *sp = s;
    s->writable = true;
    s->model = m;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hk_status st = parse_opts(s, o ? o : &def);
    if (st == HK_OK) st = setup_hooks(s, m, patterns, n, o ? o->expected_rows : 0);
    if (st == HK_OK) st = model_strings(s, m);
    if (st == HK_OK && (s->ftype = hk_store_file_type(s->dtype)) < 0)
        st = hk_store_h5_error(s, HK_ERR_INTERNAL, "cannot make the file dtype");
    if (st == HK_OK) st = hk_hooks_new(m, &s->own_hooks);
    if (st == HK_OK) st = hk_store_attach(s, s->own_hooks);
    return st;
}

hk_status hk_store_create(const char *path, const hk_model *m, const char *const *patterns,
                          size_t n, const hk_store_opts *o, hk_store **out) {
    hk_store *s = NULL;
    hk_status st = new_writer(path, m, patterns, n, o, out, &s);
    struct stat sb;
    if (st == HK_OK && !(o && o->force) && stat(path, &sb) == 0)
        st = hk_errorf(HK_ERR_IO, "%s: the file exists; replace it with --force (force), or add "
                                  "rows with --append",
                       path);
    if (st == HK_OK) {
        hk_store_ignore_xfsz(s);
        st = hk_store_create_tmp(s);
    }
    if (st == HK_OK) st = hk_store_write_layout(s);
    if (s) s->dirty = true;
    if (st == HK_OK) st = hk_store_commit_now(s);
    if (st == HK_OK) st = hk_store_publish(s, o && o->force);
    if (st != HK_OK) {
        if (s) {
            s->writable = false;
            hk_store_destroy(s);
        }
        return st;
    }
    *out = s;
    return HK_OK;
}

/* ---- append ---- */

static hk_status mismatch(const hk_store *s, const char *what, const char *file_v,
                          const char *given) {
    return hk_errorf(HK_ERR_INVALID_ARG, "%s: cannot append: %s differs (file: %s; this run: %s)",
                     s->path, what, file_v, given);
}

/* The file's own description, opened read-only or for writing. */
static hk_status open_file(const char *path, bool rdwr, hk_store **out) {
    hk_store *f = store_alloc(path);
    *out = f;
    if (!f) return hk_errorf(HK_ERR_NOMEM, "out of memory");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: cannot append: %s", path, strerror(errno));
    hid_t fapl = hk_store_fapl();
    f->file = H5Fopen(path, rdwr ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (f->file < 0) return hk_store_h5_error(f, HK_ERR_IO, "cannot open the store to append");
    return hk_store_open_layout(f);
}

/* The run s may add rows to the file f: same model, config, dtype, positions, ctx, hooks and
 * rows. */
static hk_status check_same(const hk_store *s, const hk_store *f) {
    /* files of hookformer 0.x named the model by its path (no model_path attribute) */
    const bool legacy = !f->model_path;
    const char *mine = legacy ? s->model_path : s->model_id;
    if (strcmp(f->model_id, mine) != 0) {
        char a[PATH_MAX + 64], b[PATH_MAX + 64];
        snprintf(a, sizeof a, "%s, loaded from %s", f->model_id,
                 f->model_path ? f->model_path : "?");
        snprintf(b, sizeof b, "%s, loaded from %s", mine, s->model_path);
        return mismatch(s, "the model", a, b);
    }
    if (strcmp(f->config_json, s->config_json) != 0)
        return mismatch(s, "the model's canonical config", "config_json attribute", "this model");
    if (f->dtype != s->dtype)
        return mismatch(s, "the dtype", hk_dtype_name(f->dtype), hk_dtype_name(s->dtype));
    if (strcmp(f->positions, s->positions) != 0)
        return mismatch(s, "the positions setting", f->positions, s->positions);
    if (f->ctx != s->ctx) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%lld", (long long)f->ctx);
        snprintf(b, sizeof b, "%lld", (long long)s->ctx);
        return mismatch(s, "ctx", a, b);
    }
    bool same = f->n_hooks == s->n_hooks;
    for (size_t i = 0; same && i < s->n_hooks; i++)
        same = strcmp(f->hooks[i].name, s->hooks[i].name) == 0;
    if (!same) {
        char a[64], b[64];
        snprintf(a, sizeof a, "%zu hooks starting '%s'", f->n_hooks,
                 f->n_hooks ? f->hooks[0].name : "");
        snprintf(b, sizeof b, "%zu hooks starting '%s'", s->n_hooks,
                 s->n_hooks ? s->hooks[0].name : "");
        return mismatch(s, "the hook list", a, b);
    }
    for (size_t i = 0; i < s->n_hooks; i++) {
        const hk_store_hook *h = &s->hooks[i], *fh = &f->hooks[i];
        bool same_row = fh->row_ndim == h->row_ndim && fh->per_seq == h->per_seq;
        for (int d = 0; same_row && d < h->row_ndim; d++)
            same_row = fh->row_shape[d] == h->row_shape[d];
        if (!same_row) return mismatch(s, "a hook's row shape", fh->name, h->name);
    }
    return HK_OK;
}

static bool grow_stage(hk_store *s, hk_store_hook *h, int64_t rows) {
    if (rows <= h->stage_cap) return true;
    int64_t cap = h->stage_cap ? h->stage_cap : 1;
    while (cap < rows) cap *= 2;
    unsigned char *p = realloc(h->stage, (size_t)(cap * h->row_elems) * esize_of(s));
    if (!p) return false;
    h->stage = p;
    h->stage_cap = cap;
    return true;
}

/* Take the datasets and counts of the file f (opened for writing) over; drop rows of an
 * interrupted run past the committed ones; stage a compressed dataset's partial chunk. */
static hk_status take_over(hk_store *s, hk_store *f) {
    s->file = f->file;
    f->file = -1;
    s->d_seq = f->d_seq, s->d_pos = f->d_pos, s->d_tok = f->d_tok;
    s->d_slen = f->d_slen, s->d_sfirst = f->d_sfirst, s->d_sfpos = f->d_sfpos;
    s->d_snrows = f->d_snrows;
    s->d_scid = f->d_scid;
    f->d_seq = f->d_pos = f->d_tok = f->d_slen = f->d_sfirst = f->d_sfpos = f->d_snrows = -1;
    f->d_scid = -1;
    snprintf(s->compression, sizeof s->compression, "%s", f->compression);
    s->deflate = strncmp(f->compression, "deflate", 7) == 0
                     ? (f->compression[7] == ':' ? f->compression[8] - '0' : 4)
                     : 0;
    s->lz4 = strcmp(f->compression, "lz4") == 0;
    s->n_rows = s->committed_rows = f->committed_rows;
    s->n_seqs = s->committed_seqs = f->committed_seqs;
    for (size_t i = 0; i < s->n_hooks; i++) {
        hk_store_hook *h = &s->hooks[i], *fh = &f->hooks[i];
        h->dset = fh->dset;
        fh->dset = -1;
        h->chunk_rows = fh->chunk_rows;
        /* rows past the committed count are from an interrupted run: drop them */
        int64_t want = h->per_seq ? s->n_seqs : s->n_rows;
        h->written = fh->written;
        if (h->written != want) {
            hsize_t dims[HK_MAX_DIMS + 1];
            dims[0] = (hsize_t)want;
            for (int d = 0; d < h->row_ndim; d++) dims[1 + d] = (hsize_t)h->row_shape[d];
            if (H5Dset_extent(h->dset, dims) < 0)
                return hk_store_h5_error(s, HK_ERR_IO, "cannot drop uncommitted rows");
            h->written = want;
            s->dirty = true;
        }
    }
    /* new rows start after the committed ones; a compressed dataset's partial last chunk is
     * rewritten whole, so its k rows are staged again, before the batch's rows (which the
     * first batch has put at the start of the stage) */
    for (size_t i = 0; i < s->n_hooks; i++) {
        hk_store_hook *h = &s->hooks[i];
        h->stage_row0 = s->n_rows;
        if (h->per_seq || !compressed(s)) continue;
        h->stage_row0 = s->n_rows / h->chunk_rows * h->chunk_rows;
        const int64_t k = s->n_rows - h->stage_row0, cur = h->staged + s->b_rows;
        if (k == 0) continue;
        const size_t rb = (size_t)h->row_elems * esize_of(s);
        if (!grow_stage(s, h, k + cur)) return hk_errorf(HK_ERR_NOMEM, "out of memory");
        memmove(h->stage + (size_t)k * rb, h->stage, (size_t)cur * rb);
        hsize_t start[HK_MAX_DIMS + 1] = {(hsize_t)h->stage_row0}, cnt[HK_MAX_DIMS + 1];
        cnt[0] = (hsize_t)k;
        for (int d = 0; d < h->row_ndim; d++) cnt[1 + d] = (hsize_t)h->row_shape[d];
        hid_t fsp = H5Dget_space(h->dset), msp = H5Screate_simple(h->row_ndim + 1, cnt, NULL);
        bool ok = fsp >= 0 && msp >= 0 &&
                  H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0 &&
                  H5Dread(h->dset, s->ftype, msp, fsp, H5P_DEFAULT, h->stage) >= 0;
        if (msp >= 0) H5Sclose(msp);
        if (fsp >= 0) H5Sclose(fsp);
        if (!ok) return hk_store_h5_error(s, HK_ERR_IO, "cannot read the last chunk back");
        h->staged += k;
        h->written = h->stage_row0;
    }
    return HK_OK;
}

/* Open the file for writing before the first rows go in (a lazy append). */
static hk_status open_for_writing(hk_store *s) {
    hk_store *f = NULL;
    const int64_t rows = s->n_rows, seqs = s->n_seqs;
    hk_status st = hk_store_check_space(s->path, hk_store_commit_slack());
    if (st == HK_OK) st = open_file(s->path, true, &f);
    if (st == HK_OK) st = check_same(s, f);
    if (st == HK_OK && (f->committed_rows != rows || f->committed_seqs != seqs))
        st = hk_errorf(HK_ERR_IO, "%s: cannot append: the file changed since it was opened "
                                  "(%lld sequences, now %lld)",
                       s->path, (long long)seqs, (long long)f->committed_seqs);
    if (st == HK_OK) st = take_over(s, f);
    if (st == HK_OK) hk_store_ignore_xfsz(s);
    /* commit the dropped rows away before anything reuses their space */
    if (st == HK_OK) st = hk_store_commit_now(s);
    s->last_commit = hk_store_now();
    hk_store_destroy(f);
    if (st != HK_OK) s->failed = true;
    return st;
}

/* Every check runs on a read-only open of the file, and the space for the first commit is
 * checked without touching it: a refused append leaves the file byte-identical (mtime
 * included). The file is opened for writing only when the first batch's rows are ready
 * (open_for_writing, from hk_store_end_batch), so an append that stores nothing leaves it
 * byte-identical too. */
hk_status hk_store_append(const char *path, const hk_model *m, const char *const *patterns,
                          size_t n, const hk_store_opts *o, hk_store **out) {
    if (!path || !m || !out)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store: path, model and out are required");
    *out = NULL;
    hk_store *s = NULL, *f = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hk_status st = open_file(path, false, &f);
    hk_store_opts oo = o ? *o : hk_store_default_opts();
    if (st == HK_OK && oo.ctx == 0) oo.ctx = f->ctx; /* ctx 0: the file's */
    if (st == HK_OK) oo.corpus_ids = f->d_scid >= 0; /* as the file was made */
    if (st == HK_OK) st = new_writer(path, m, patterns, n, &oo, out, &s);
    if (st == HK_OK) st = check_same(s, f);
    if (st == HK_OK) st = hk_store_check_space(path, hk_store_commit_slack());
    if (st == HK_OK) {
        snprintf(s->compression, sizeof s->compression, "%s", f->compression);
        s->n_rows = s->committed_rows = f->committed_rows;
        s->n_seqs = s->committed_seqs = f->committed_seqs;
        s->last_commit = hk_store_now();
    }
    hk_store_destroy(f); /* read-only: closing writes nothing */
    if (st != HK_OK) {
        if (s) {
            s->writable = false;
            hk_store_destroy(s);
        }
        return st;
    }
    *out = s;
    return HK_OK;
}

/* ---- the hook callback ---- */

static hk_store_hook *find_hook(hk_store *s, const char *name) {
    for (size_t i = 0; i < s->n_hooks; i++)
        if (strcmp(s->hooks[i].name, name) == 0) return &s->hooks[i];
    return NULL;
}

/* Convert n elements of src (dtype sdt, contiguous) into dst (the file dtype). */
static void put(const hk_store *s, hk_dtype sdt, const void *src, void *dst, size_t n) {
    if (sdt == s->dtype) {
        memcpy(dst, src, n * esize_of(s));
    } else if (sdt == HK_DTYPE_F32) {
        hk_convert_from_f32(s->dtype, src, dst, n);
    } else {
        float tmp[256];
        for (size_t i = 0; i < n; i += 256) {
            size_t k = n - i < 256 ? n - i : 256;
            hk_convert_to_f32(sdt, (const char *)src + i * hk_dtype_size(sdt), tmp, k);
            hk_convert_from_f32(s->dtype, tmp, (char *)dst + i * esize_of(s), k);
        }
    }
}

/* One element at a time: views whose row is not contiguous. */
static void put_strided(const hk_store *s, const hk_tensor *act, const char *src, int nd,
                        const int *dims, char *dst) {
    int64_t idx[HK_MAX_DIMS] = {0};
    const size_t es = hk_dtype_size(act->dtype), fes = esize_of(s);
    for (size_t k = 0;; k++) {
        int64_t off = 0;
        for (int i = 0; i < nd; i++) off += idx[i] * act->stride[dims[i]];
        put(s, act->dtype, src + off * (int64_t)es, dst + k * fes, 1);
        int i = nd - 1;
        for (; i >= 0; i--) {
            if (++idx[i] < act->shape[dims[i]]) break;
            idx[i] = 0;
        }
        if (i < 0) break;
    }
}

static hk_hook_result fire_tokens(hk_store *s, hk_store_hook *h, const hk_tensor *act,
                                  const hk_hook_ctx *ctx) {
    int rd[HK_MAX_DIMS], nr = 0; /* the row's dims in the tensor */
    for (int d = 0; d < act->ndim; d++)
        if (d != h->batch_dim && d != h->pos_dim) rd[nr++] = d;
    bool ok = act->ndim == h->row_ndim + 2 && h->pos_dim < act->ndim;
    for (int i = 0; ok && i < nr; i++) ok = act->shape[rd[i]] == h->row_shape[i];
    if (!ok && h->split_ln1 && act->ndim == 4)
        return HK_HOOK_CONTINUE; /* q's per-head firing under GQA (n_heads): v's is kept */
    if (!ok) {
        const hk_point_kind kind = ctx->model ? ctx->model->points.kinds[h->point] : HK_PT_COUNT;
        if (act->ndim == 4 && (kind == HK_PT_LN1_SCALE || kind == HK_PT_LN1_NORMALIZED))
            hk_hook_error("store: got a per-head view [batch, pos, heads, d]: another hook "
                          "(a plugin's?) hooks this layer's split inputs, so ln1 runs per head; "
                          "store the layer's hook_v_input in the same run to store ln1 per head");
        else
            hk_hook_error("store: got a %d-d view that does not match the stored row (%s)",
                          act->ndim, h->dims);
        return HK_HOOK_ERROR;
    }
    /* a repeated firing at the same offsets (split ln1: q, k, v) overwrites the same rows */
    const bool repeat = h->split_ln1 && h->split_fired && h->split_b0 == ctx->batch_offset &&
                        h->split_p0 == ctx->pos_offset;
    if (h->split_ln1) {
        h->split_fired = true;
        h->split_b0 = ctx->batch_offset;
        h->split_p0 = ctx->pos_offset;
    }
    bool contig = true;
    int64_t expect = 1;
    for (int i = nr - 1; i >= 0; i--) {
        contig = contig && (act->shape[rd[i]] == 1 || act->stride[rd[i]] == expect);
        expect *= act->shape[rd[i]];
    }
    const bool run_contig = contig && act->stride[h->pos_dim] == h->row_elems;
    const size_t es = hk_dtype_size(act->dtype), row_bytes = (size_t)h->row_elems * esize_of(s);
    const int64_t nb = act->shape[h->batch_dim], np = act->shape[h->pos_dim];
    for (int64_t ib = 0; ib < nb; ib++) {
        const int64_t b = ctx->batch_offset + ib;
        /* selected positions of b within this view */
        int64_t lo = s->b_first[b], hi = s->b_first[b] + s->b_count[b];
        if (lo < ctx->pos_offset) lo = ctx->pos_offset;
        if (hi > ctx->pos_offset + np) hi = ctx->pos_offset + np;
        if (hi <= lo) continue;
        const char *src = (const char *)act->data +
                          (ib * act->stride[h->batch_dim] +
                           (lo - ctx->pos_offset) * act->stride[h->pos_dim]) *
                              (int64_t)es;
        char *dst = (char *)h->stage +
                    (size_t)(h->staged + s->b_row[b] + lo - s->b_first[b]) * row_bytes;
        if (run_contig) {
            put(s, act->dtype, src, dst, (size_t)((hi - lo) * h->row_elems));
        } else {
            for (int64_t p = lo; p < hi; p++) {
                const char *ps = src + (p - lo) * act->stride[h->pos_dim] * (int64_t)es;
                char *pd = dst + (size_t)(p - lo) * row_bytes;
                if (contig) put(s, act->dtype, ps, pd, (size_t)h->row_elems);
                else put_strided(s, act, ps, nr, rd, pd);
            }
        }
        if (!repeat) h->delivered += hi - lo;
    }
    return HK_HOOK_CONTINUE;
}

/* Attention [batch, head, q_chunk, k_len] at (batch_offset, pos_offset, key_offset) into the
 * per-sequence rows [batch, head, Q, ctx]: valid queries and keys of each sequence only. */
static hk_hook_result fire_pattern(hk_store *s, hk_store_hook *h, const hk_tensor *act,
                                   const hk_hook_ctx *ctx) {
    if (act->ndim != 4 || act->shape[1] != h->row_shape[0]) {
        hk_hook_error("store: expected [batch, %lld heads, q, k], got a %d-d view",
                      (long long)h->row_shape[0], act->ndim);
        return HK_HOOK_ERROR;
    }
    const int64_t H = h->row_shape[0], Q = h->row_shape[1], P = h->row_shape[2];
    const size_t es = hk_dtype_size(act->dtype), fes = esize_of(s);
    for (int64_t ib = 0; ib < act->shape[0]; ib++) {
        const int64_t b = ctx->batch_offset + ib;
        const int64_t len = s->b_lengths ? s->b_lengths[b] : s->b_seq;
        for (int64_t hh = 0; hh < H; hh++)
            for (int64_t iq = 0; iq < act->shape[2]; iq++) {
                const int64_t q = ctx->pos_offset + iq;
                if (q >= len) continue;
                int64_t qi = Q == 1 ? (q == len - 1 ? 0 : -1) : q;
                if (qi < 0 || qi >= Q) continue;
                int64_t k0 = ctx->key_offset, nk = act->shape[3];
                if (k0 + nk > len) nk = len - k0;
                if (k0 + nk > P) nk = P - k0;
                if (nk <= 0) continue;
                const char *src = (const char *)act->data +
                                  (ib * act->stride[0] + hh * act->stride[1] +
                                   iq * act->stride[2]) *
                                      (int64_t)es;
                char *dst = (char *)h->stage + (size_t)(((b * H + hh) * Q + qi) * P + k0) * fes;
                if (act->stride[3] == 1) {
                    put(s, act->dtype, src, dst, (size_t)nk);
                } else {
                    for (int64_t j = 0; j < nk; j++)
                        put(s, act->dtype, src + j * act->stride[3] * (int64_t)es, dst + j * fes,
                            1);
                }
                h->delivered += nk;
            }
    }
    return HK_HOOK_CONTINUE;
}

static hk_hook_result on_fire(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    hk_store *s = user;
    hk_store_hook *h = find_hook(s, ctx->name);
    if (!h) {
        hk_hook_error("store: no dataset for this point");
        return HK_HOOK_ERROR;
    }
    if (!s->in_batch) {
        hk_hook_error("store: fired outside hk_store_begin_batch / hk_store_end_batch");
        return HK_HOOK_ERROR;
    }
    if (act->device != HK_DEVICE_CPU) {
        hk_hook_error("store: activations on device %d are not supported yet (host only)",
                      (int)act->device);
        return HK_HOOK_ERROR;
    }
    if (act->dtype != HK_DTYPE_F32 && act->dtype != HK_DTYPE_F16 && act->dtype != HK_DTYPE_BF16) {
        hk_hook_error("store: activation dtype %s is not a float", hk_dtype_name(act->dtype));
        return HK_HOOK_ERROR;
    }
    const bool seq_ok = s->b_feeds ? ctx->pos_offset + ctx->run_seq <= s->b_seq
                                   : ctx->run_seq == s->b_seq;
    if (ctx->run_batch != s->b_batch || !seq_ok || ctx->batch_offset < 0 ||
        act->ndim < 2 || ctx->batch_offset + act->shape[0] > s->b_batch || ctx->pos_offset < 0) {
        hk_hook_error("store: a run of %lld x %lld fired, but the batch declared to "
                      "hk_store_begin_batch is %lld x %lld",
                      (long long)ctx->run_batch, (long long)ctx->run_seq, (long long)s->b_batch,
                      (long long)s->b_seq);
        return HK_HOOK_ERROR;
    }
    return h->per_seq ? fire_pattern(s, h, act, ctx) : fire_tokens(s, h, act, ctx);
}

static bool covers(const char *name, void *user) { return find_hook(user, name) != NULL; }

hk_status hk_store_attach(hk_store *s, hk_hooks *hooks) {
    if (!s || !hooks || !s->writable)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_attach: a writable store and hooks are "
                                             "required");
    if (hooks->model != s->model)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_attach: the hooks were made for another "
                                             "model than the store");
    /* the store only reads: on a device, no copy goes back */
    return hk_hooks_add_filter_flags(hooks, covers, s, on_fire, s, HK_HOOK_READ_ONLY, NULL);
}

/* ---- batches ---- */

static void fill_rows(const hk_store *s, const hk_store_hook *h, int64_t rows) {
    size_t n = (size_t)(rows * h->row_elems);
    if (!h->is_scores) {
        memset(h->stage, 0, n * esize_of(s));
        return;
    }
    float ninf = -INFINITY;
    unsigned char one[4];
    put(s, HK_DTYPE_F32, &ninf, one, 1);
    for (size_t i = 0; i < n; i++) memcpy(h->stage + i * esize_of(s), one, esize_of(s));
}

hk_status hk_store_begin_batch(hk_store *s, const int32_t *tokens, const int64_t *lengths,
                               int64_t batch, int64_t seq) {
    if (!s || !s->writable || !tokens || batch < 1 || seq < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_begin_batch: a writable store, tokens "
                                             "and a positive batch and seq are required");
    if (s->failed)
        return hk_errorf(HK_ERR_IO, "%s: an earlier write failed; the store takes no more rows",
                         s->path);
    if (s->ctx > 0 && seq > s->ctx) {
        for (size_t i = 0; i < s->n_hooks; i++)
            if (s->hooks[i].per_seq)
                return hk_errorf(HK_ERR_INVALID_ARG,
                                 "%s: a batch of %lld positions is longer than the store's "
                                 "ctx %lld (the padded length of stored attention)",
                                 s->path, (long long)seq, (long long)s->ctx);
    }
    int64_t *f = realloc(s->b_first, (size_t)batch * sizeof *f);
    if (f) s->b_first = f;
    int64_t *c = f ? realloc(s->b_count, (size_t)batch * sizeof *c) : NULL;
    if (c) s->b_count = c;
    int64_t *r = c ? realloc(s->b_row, (size_t)batch * sizeof *r) : NULL;
    if (!r) return hk_errorf(HK_ERR_NOMEM, "out of memory");
    s->b_row = r;
    int64_t rows = 0;
    for (int64_t b = 0; b < batch; b++) {
        int64_t len = lengths ? lengths[b] : seq;
        if (len < 1 || len > seq)
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_begin_batch: lengths[%lld] = %lld, "
                                                 "expected 1..%lld",
                             (long long)b, (long long)len, (long long)seq);
        int64_t first = 0, count = len;
        if (s->sel.kind == HK_SEL_LAST) first = len - 1, count = 1;
        else if (s->sel.kind == HK_SEL_RANGE) hk_selection_range(&s->sel, len, &first, &count);
        s->b_first[b] = first;
        s->b_count[b] = count;
        s->b_row[b] = rows;
        rows += count;
    }
    for (size_t i = 0; i < s->n_hooks; i++) {
        hk_store_hook *h = &s->hooks[i];
        bool ok = h->per_seq ? grow_stage(s, h, batch) : grow_stage(s, h, h->staged + rows);
        if (!ok) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory for the rows of a batch", s->path);
        if (h->per_seq) fill_rows(s, h, batch);
        h->delivered = 0;
        h->split_fired = false;
    }
    s->b_tokens = tokens;
    s->b_lengths = lengths;
    s->b_batch = batch;
    s->b_seq = seq;
    s->b_rows = rows;
    s->in_batch = true;
    return HK_OK;
}

uint64_t hk_store_rows_bytes(const hk_store *s, const hk_store_hook *h, int64_t count) {
    return (uint64_t)(count * h->row_elems) * esize_of(s);
}

hk_status hk_store_write_rows(hk_store *s, hk_store_hook *h, int64_t row0, int64_t count,
                              const void *buf) {
    if (count == 0) return HK_OK;
    hsize_t dims[HK_MAX_DIMS + 1], start[HK_MAX_DIMS + 1] = {0}, cnt[HK_MAX_DIMS + 1];
    const int nd = h->row_ndim + 1;
    int64_t end = row0 + count > h->written ? row0 + count : h->written;
    dims[0] = (hsize_t)end;
    start[0] = (hsize_t)row0;
    cnt[0] = (hsize_t)count;
    for (int d = 0; d < h->row_ndim; d++) dims[1 + d] = cnt[1 + d] = (hsize_t)h->row_shape[d];
    s->dirty = true;
    if (end != h->written && H5Dset_extent(h->dset, dims) < 0)
        return hk_store_h5_error(s, HK_ERR_IO, "extending a hook dataset");
    h->written = end;
    hid_t fsp = H5Dget_space(h->dset), msp = H5Screate_simple(nd, cnt, NULL);
    bool ok = fsp >= 0 && msp >= 0 &&
              H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0 &&
              H5Dwrite(h->dset, s->ftype, msp, fsp, H5P_DEFAULT, buf) >= 0;
    if (msp >= 0) H5Sclose(msp);
    if (fsp >= 0) H5Sclose(fsp);
    if (!ok) {
        char what[300];
        snprintf(what, sizeof what, "writing %lld rows of '%s'", (long long)count, h->name);
        return hk_store_h5_error(s, HK_ERR_IO, what);
    }
    return HK_OK;
}

/* Inline: the rows and their bytes in the stats. */
static hk_status write_rows(hk_store *s, hk_store_hook *h, int64_t row0, int64_t count,
                            const void *buf) {
    hk_status st = hk_store_write_rows(s, h, row0, count, buf);
    if (st == HK_OK) s->stats.bytes_written += hk_store_rows_bytes(s, h, count);
    return st;
}

/* Staged token rows to the file: all of them (uncompressed) or whole chunks (compressed;
 * `all` at close writes the partial last chunk too). */
static hk_status flush_stage(hk_store *s, hk_store_hook *h, bool all) {
    int64_t n = h->staged;
    if (compressed(s) && !all) n = n / h->chunk_rows * h->chunk_rows;
    if (n == 0) return HK_OK;
    /* a compressed chunk rewritten in place may move: commit before its old space is reused */
    const bool rewrites = compressed(s) && h->stage_row0 < h->written;
    hk_status st = write_rows(s, h, h->stage_row0, n, h->stage);
    if (st != HK_OK) return st;
    size_t row_bytes = (size_t)h->row_elems * esize_of(s);
    memmove(h->stage, h->stage + (size_t)n * row_bytes, (size_t)(h->staged - n) * row_bytes);
    h->stage_row0 += n;
    h->staged -= n;
    return rewrites ? hk_store_commit_now(s) : HK_OK;
}

/* Bytes the batch may add to the file: rows, whole chunks around them, index, metadata. */
static uint64_t batch_bytes(const hk_store *s) {
    uint64_t total = 2u << 20; /* metadata */
    for (size_t i = 0; i < s->n_hooks; i++) {
        const hk_store_hook *h = &s->hooks[i];
        uint64_t row = (uint64_t)h->row_elems * esize_of(s);
        if (h->per_seq) total += (uint64_t)(s->b_batch + 1) * row;
        else total += (uint64_t)(s->b_rows + h->staged + h->chunk_rows) * row;
    }
    return total + (uint64_t)s->b_rows * 20 + (uint64_t)s->b_batch * 32;
}

/* Overlapped: every hook's staged rows go to the writer thread in the buffer they are in; the
 * hook stages the next batch in its other buffer. (Uncompressed: nothing is carried over.) */
static hk_status submit_batch(hk_store *s, uint64_t reserve) {
    hk_store_job_part *parts = hk_store_writer_parts(s, s->n_hooks);
    if (!parts) {
        s->failed = true;
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory for the writer's job", s->path);
    }
    for (size_t i = 0; i < s->n_hooks; i++) {
        hk_store_hook *h = &s->hooks[i];
        if (h->per_seq) {
            parts[i] = (hk_store_job_part){h, h->stage, s->n_seqs - s->b_batch, s->b_batch};
        } else {
            h->staged += s->b_rows;
            parts[i] = (hk_store_job_part){h, h->stage, h->stage_row0, h->staged};
            h->stage_row0 += h->staged;
            h->staged = 0;
        }
        unsigned char *b = h->stage;
        const int64_t cap = h->stage_cap;
        h->stage = h->stage_back;
        h->stage_cap = h->back_cap;
        h->stage_back = b;
        h->back_cap = cap;
    }
    hk_store_writer_submit(s, s->n_hooks, reserve);
    return HK_OK;
}

hk_status hk_store_end_batch(hk_store *s) {
    if (!s || !s->in_batch)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_end_batch: no batch was begun");
    s->in_batch = false;
    const int64_t n_cids = s->b_cids_n;
    s->b_cids_n = 0; /* the ids name this batch only */
    if (s->corpus_ids && n_cids != s->b_batch)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: the file records corpus ids: "
                                             "hk_store_set_corpus_ids gave %lld for a batch of "
                                             "%lld sequences; the batch was not stored",
                         s->path, (long long)n_cids, (long long)s->b_batch);
    for (size_t i = 0; i < s->n_hooks; i++) {
        const hk_store_hook *h = &s->hooks[i];
        if (h->per_seq ? h->delivered == 0 : h->delivered != s->b_rows)
            return hk_errorf(HK_ERR_HOOK, "%s: hook '%s' delivered %lld of the batch's %lld rows "
                                          "(did the run stop early?); the batch was not stored",
                             s->path, h->name, (long long)h->delivered,
                             (long long)(h->per_seq ? s->b_batch : s->b_rows));
    }
    /* the previous batch's rows are in the file: commit them when due, before this batch's
     * index joins the pending rows */
    hk_status st = hk_store_writer_wait(s);
    if (st == HK_OK && s->writer && hk_store_now() - s->last_commit >= s->commit_seconds)
        st = hk_store_commit_now(s);
    if (st != HK_OK) return st;
    double t0 = hk_store_now();
    /* an append opens its file for writing now, with the first rows */
    st = s->file < 0 ? open_for_writing(s) : HK_OK;
    if (st != HK_OK) return st;
    if (s->overlap && !s->writer && (st = hk_store_writer_start(s)) != HK_OK) return st;
    const uint64_t reserve = batch_bytes(s);
    /* a full disk stops here, before anything of the batch is written (overlapped: in the
     * writer thread, before it writes) */
    if (!s->writer && (st = hk_store_reserve(s, reserve)) != HK_OK) return st;
    for (int64_t b = 0; b < s->b_batch; b++) {
        bool ok = hk_i64_push(&s->p_slen, s->b_lengths ? s->b_lengths[b] : s->b_seq) &&
                  hk_i64_push(&s->p_sfirst, s->n_rows + s->b_row[b]) &&
                  hk_i64_push(&s->p_sfpos, s->b_first[b]) &&
                  hk_i64_push(&s->p_snrows, s->b_count[b]) &&
                  (!s->corpus_ids || hk_i64_push(&s->p_scid, s->b_cids[b]));
        for (int64_t p = s->b_first[b]; ok && p < s->b_first[b] + s->b_count[b]; p++)
            ok = hk_i64_push(&s->p_seq, s->n_seqs + b) && hk_i64_push(&s->p_pos, p) &&
                 hk_i64_push(&s->p_tok, s->b_tokens[b * s->b_seq + p]);
        if (!ok) {
            s->failed = true;
            return hk_errorf(HK_ERR_NOMEM, "%s: out of memory for the index", s->path);
        }
    }
    s->n_rows += s->b_rows;
    s->n_seqs += s->b_batch;
    if (s->writer) return submit_batch(s, reserve);
    for (size_t i = 0; st == HK_OK && i < s->n_hooks; i++) {
        hk_store_hook *h = &s->hooks[i];
        if (h->per_seq) {
            st = write_rows(s, h, s->n_seqs - s->b_batch, s->b_batch, h->stage);
        } else {
            h->staged += s->b_rows;
            st = flush_stage(s, h, false);
        }
    }
    if (st != HK_OK) {
        s->failed = true;
        return st;
    }
    s->stats.write_seconds += hk_store_now() - t0;
    if (hk_store_now() - s->last_commit >= s->commit_seconds) st = hk_store_commit_now(s);
    return st;
}

hk_status hk_store_run(hk_store *s, hk_model *m, const int32_t *tokens, const int64_t *lengths,
                       int64_t batch, int64_t seq) {
    return hk_store_run_hooks(s, m, NULL, tokens, lengths, batch, seq);
}

hk_status hk_store_run_hooks(hk_store *s, hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                             const int64_t *lengths, int64_t batch, int64_t seq) {
    if (!s || !m || m != s->model)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_run: the store's own model is required");
    if (hooks && hooks->model != m)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_run_hooks: the hooks were made for "
                                             "another model");
    hk_status st = hk_store_begin_batch(s, tokens, lengths, batch, seq);
    if (st != HK_OK) return st;
    /* logits only when unembed.hook_out is stored (the forward skips the unembedding
     * without them) */
    float *logits = NULL;
    for (size_t i = 0; i < s->n_hooks && !logits; i++)
        if (strcmp(s->hooks[i].name, "unembed.hook_out") == 0) {
            logits = malloc((size_t)(batch * seq * m->cfg.d_vocab) * sizeof *logits);
            if (!logits) {
                s->in_batch = false;
                return hk_errorf(HK_ERR_NOMEM, "%s: out of memory for the logits", s->path);
            }
        }
    st = hk_model_run(m, hooks ? hooks : s->own_hooks, tokens, lengths, batch, seq, logits);
    free(logits);
    if (st != HK_OK) {
        s->in_batch = false;
        return st;
    }
    return hk_store_end_batch(s);
}

hk_status hk_store_set_corpus_ids(hk_store *s, const int64_t *ids, int64_t n) {
    if (!s || !s->writable || (n > 0 && !ids) || n < 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_set_corpus_ids: a writable store and "
                                             "n >= 0 ids are required");
    if (!s->corpus_ids)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: the file was made without corpus ids "
                                             "(hk_store_opts.corpus_ids)", s->path);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0)
            return hk_errorf(HK_ERR_INVALID_ARG, "%s: corpus id %lld of the batch is %lld, "
                                                 "expected >= 0",
                             s->path, (long long)i, (long long)ids[i]);
    if (n > s->b_cids_cap) {
        int64_t *p = realloc(s->b_cids, (size_t)n * sizeof *p);
        if (!p) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory for corpus ids", s->path);
        s->b_cids = p;
        s->b_cids_cap = n;
    }
    if (n) memcpy(s->b_cids, ids, (size_t)n * sizeof *ids);
    s->b_cids_n = n;
    return HK_OK;
}

hk_status hk_store_commit(hk_store *s) {
    if (!s) return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_commit: NULL store");
    hk_status st = hk_store_writer_wait(s);
    return st != HK_OK ? st : hk_store_commit_now(s);
}

hk_store_stats hk_store_get_stats(const hk_store *s) {
    hk_store_stats z = {0, 0, 0};
    return s ? s->stats : z;
}

/* After a failure: shrink every dataset back to the committed counts, so that closing the
 * file writes the committed state (plus nothing). */
static void roll_back(hk_store *s) {
    for (size_t i = 0; i < s->n_hooks; i++) {
        hk_store_hook *h = &s->hooks[i];
        hsize_t dims[HK_MAX_DIMS + 1];
        dims[0] = (hsize_t)(h->per_seq ? s->committed_seqs : s->committed_rows);
        for (int d = 0; d < h->row_ndim; d++) dims[1 + d] = (hsize_t)h->row_shape[d];
        if (h->dset >= 0 && (int64_t)dims[0] < h->written) H5Dset_extent(h->dset, dims);
    }
    hid_t rows[] = {s->d_seq, s->d_pos, s->d_tok}, seqs[] = {s->d_slen, s->d_sfirst, s->d_sfpos,
                                                             s->d_snrows, s->d_scid};
    hsize_t r = (hsize_t)s->committed_rows, q = (hsize_t)s->committed_seqs;
    for (size_t i = 0; i < 3; i++)
        if (rows[i] >= 0) H5Dset_extent(rows[i], &r);
    for (size_t i = 0; i < 5; i++)
        if (seqs[i] >= 0) H5Dset_extent(seqs[i], &q);
}

hk_status hk_store_close(hk_store *s) {
    if (!s) return HK_OK;
    hk_status st = HK_OK;
    if (s->writable && s->file >= 0) {
        st = hk_store_writer_wait(s); /* the last batch's rows */
        double t0 = hk_store_now();
        for (size_t i = 0; st == HK_OK && !s->failed && i < s->n_hooks; i++)
            if (!s->hooks[i].per_seq) st = flush_stage(s, &s->hooks[i], true);
        if (st == HK_OK && !s->failed) st = hk_store_commit_now(s);
        if (st == HK_OK && !s->failed) hk_store_trim(s); /* the unused reservation */
        else if (st == HK_OK) st = hk_errorf(HK_ERR_IO, "%s: an earlier write failed", s->path);
        if (st != HK_OK) {
            /* keep the message: the roll-back's HDF5 calls may set their own */
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", hk_last_error());
            roll_back(s);
            hk_errorf(st, "%s", msg);
        }
        s->stats.write_seconds += hk_store_now() - t0;
    }
    hk_store_destroy(s);
    return st;
}
