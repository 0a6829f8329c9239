/* The root file of a sharded store: one HDF5 file whose hook datasets (and position /
 * token_id) are virtual datasets over the shards' committed rows, sequences in corpus order,
 * and whose seq_id and per-sequence tables are small real datasets (docs/FORMAT.md, "Sharded
 * stores"). The shards are ordinary stores with a seq_corpus_id dataset (hk_store_opts.corpus_ids);
 * nothing here depends on how they were written (MPI or not). */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "h5_util.h"
#include "store.h"

typedef struct {
    int64_t id;          /* corpus id */
    int32_t shard;
    int64_t q;           /* sequence in the shard */
    int64_t len, first_row, first_pos, n_rows;
} join_seq;

static int by_id(const void *a, const void *b) {
    const join_seq *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->shard < y->shard ? -1 : x->shard > y->shard;
}

/* Shards must agree on everything a reader assumes of one store. */
static hk_status check_shard(hk_store *ref, hk_store *s) {
    hk_store_info a, b;
    hk_store_get_info(ref, &a);
    hk_store_get_info(s, &b);
    const char *what = strcmp(a.model_id, b.model_id) ? "model_id"
                       : strcmp(a.dtype, b.dtype)     ? "dtype"
                       : strcmp(a.positions, b.positions) ? "positions"
                       : a.ctx != b.ctx               ? "ctx"
                       : a.n_hooks != b.n_hooks       ? "the hook count"
                                                      : NULL;
    for (size_t i = 0; !what && i < a.n_hooks; i++) {
        hk_store_hook_info x, y;
        hk_store_hook_at(ref, i, &x);
        hk_store_hook_at(s, i, &y);
        bool same = strcmp(x.name, y.name) == 0 && x.ndim == y.ndim;
        for (int d = 1; same && d < x.ndim; d++) same = x.shape[d] == y.shape[d];
        if (!same) what = "the hooks";
    }
    if (what)
        return hk_errorf(HK_ERR_FORMAT, "%s and %s differ in %s: not shards of one run", a.path,
                         b.path, what);
    return HK_OK;
}

/* Copy every root attribute of src (a shard) to dst, but for the ones we set ourselves:
 * `device` is each shard's own (the root lists them all as `shard_devices`). */
static herr_t copy_attr(hid_t loc, const char *name, const H5A_info_t *info, void *dst_p) {
    (void)info;
    if (strcmp(name, "device") == 0) return 0;
    hid_t dst = *(hid_t *)dst_p;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
    hid_t mt = t >= 0 ? H5Tget_native_type(t, H5T_DIR_ASCEND) : -1;
    herr_t rc = -1;
    if (mt >= 0) {
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        size_t sz = H5Tget_size(mt);
        void *buf = calloc((size_t)(n > 0 ? n : 1), sz);
        hid_t b = -1;
        if (buf && H5Aread(a, mt, buf) >= 0 &&
            (b = H5Acreate2(dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
            H5Awrite(b, mt, buf) >= 0)
            rc = 0;
        if (buf && H5Tis_variable_str(mt) > 0) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
        else if (buf && H5Tget_class(mt) == H5T_VLEN) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
        if (b >= 0) H5Aclose(b);
        free(buf);
    }
    if (mt >= 0) H5Tclose(mt);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
    return rc;
}

static hk_status copy_attrs(hid_t src, hid_t dst, const char *what, const char *path) {
    hsize_t idx = 0;
    if (H5Aiterate2(src, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, copy_attr, &dst) < 0)
        return hk_errorf(HK_ERR_IO, "%s: cannot copy the attributes of %s", path, what);
    return HK_OK;
}

/* A real 1-D int64 dataset. */
static hk_status write_i64(hid_t f, const char *name, const int64_t *v, int64_t n,
                           const char *path) {
    hsize_t dim = (hsize_t)n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t d = sp >= 0 ? H5Dcreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                                   H5P_DEFAULT)
                      : -1;
    bool ok = d >= 0 && (n == 0 || H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                            v) >= 0);
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    return ok ? HK_OK : hk_errorf(HK_ERR_IO, "%s: cannot write dataset '%s'", path, name);
}

/* One mapping of a virtual dataset: rows [src, src + n) of shard k go to rows [dst, dst + n). */
typedef struct {
    int32_t shard;
    int64_t src, dst, n;
} join_map;

/* The virtual dataset `name` [n_total, row...] over the shards' datasets of the same name,
 * with the type and attributes of shard 0's. maps are coalesced runs. */
static hk_status write_virtual(hid_t f, const char *name, hk_store *const *sh,
                               const char *const *rel, const join_map *maps, int64_t n_maps,
                               int64_t n_total, const char *path) {
    hid_t src0 = H5Dopen2(sh[0]->file, name, H5P_DEFAULT);
    if (src0 < 0) return hk_errorf(HK_ERR_FORMAT, "%s: no dataset '%s'", sh[0]->path, name);
    hid_t t = H5Dget_type(src0), ssp = H5Dget_space(src0);
    hsize_t dims[HK_MAX_DIMS + 2], cnt[HK_MAX_DIMS + 2], start[HK_MAX_DIMS + 2] = {0};
    int nd = ssp >= 0 ? H5Sget_simple_extent_dims(ssp, dims, NULL) : -1;
    if (ssp >= 0) H5Sclose(ssp);
    hk_status st = HK_OK;
    if (t < 0 || nd < 1) st = hk_errorf(HK_ERR_FORMAT, "%s: dataset '%s' has no shape", sh[0]->path, name);
    hid_t dcpl = -1, vsp = -1;
    if (st == HK_OK) {
        dims[0] = (hsize_t)n_total;
        vsp = H5Screate_simple(nd, dims, NULL);
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
        /* virtual even without a mapping (no rows at all): readers see one layout */
        if (vsp < 0 || dcpl < 0 || H5Pset_layout(dcpl, H5D_VIRTUAL) < 0)
            st = hk_errorf(HK_ERR_INTERNAL, "%s: HDF5 property lists", path);
    }
    for (int64_t k = 0; st == HK_OK && k < n_maps; k++) {
        const join_map *mp = &maps[k];
        hsize_t sdims[HK_MAX_DIMS + 2];
        memcpy(sdims, dims, sizeof sdims);
        hid_t sd = H5Dopen2(sh[mp->shard]->file, name, H5P_DEFAULT);
        hid_t sp = sd >= 0 ? H5Dget_space(sd) : -1;
        if (sp >= 0) H5Sget_simple_extent_dims(sp, sdims, NULL);
        if (sp >= 0) H5Sclose(sp);
        if (sd >= 0) H5Dclose(sd);
        if (sd < 0 || (int64_t)sdims[0] < mp->src + mp->n) {
            st = hk_errorf(HK_ERR_FORMAT, "%s: dataset '%s' holds %lld rows, the index names "
                                          "rows up to %lld",
                           sh[mp->shard]->path, name, (long long)sdims[0],
                           (long long)(mp->src + mp->n));
            break;
        }
        memcpy(cnt, dims, sizeof cnt);
        cnt[0] = (hsize_t)mp->n;
        hid_t src_sp = H5Screate_simple(nd, sdims, NULL);
        start[0] = (hsize_t)mp->src;
        bool ok = src_sp >= 0 &&
                  H5Sselect_hyperslab(src_sp, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0;
        start[0] = (hsize_t)mp->dst;
        ok = ok && H5Sselect_hyperslab(vsp, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0 &&
             H5Pset_virtual(dcpl, vsp, rel[mp->shard], name, src_sp) >= 0;
        if (src_sp >= 0) H5Sclose(src_sp);
        if (!ok) st = hk_errorf(HK_ERR_IO, "%s: cannot map rows of %s into '%s'", path,
                                sh[mp->shard]->path, name);
    }
    if (st == HK_OK && vsp >= 0) H5Sselect_all(vsp);
    hid_t d = st == HK_OK ? H5Dcreate2(f, name, t, vsp, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
    if (st == HK_OK && d < 0)
        st = hk_errorf(HK_ERR_IO, "%s: cannot create the virtual dataset '%s'", path, name);
    if (st == HK_OK) st = copy_attrs(src0, d, name, path);
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (vsp >= 0) H5Sclose(vsp);
    if (t >= 0) H5Tclose(t);
    H5Dclose(src0);
    return st;
}

/* Coalesced row maps of the sequences in corpus order: rows (per_seq: sequences). */
static int64_t build_maps(const join_seq *q, int64_t n, bool per_seq, join_map *out) {
    int64_t m = 0, dst = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t src = per_seq ? q[i].q : q[i].first_row, cnt = per_seq ? 1 : q[i].n_rows;
        if (cnt == 0) continue;
        if (m > 0 && out[m - 1].shard == q[i].shard && out[m - 1].src + out[m - 1].n == src &&
            out[m - 1].dst + out[m - 1].n == dst)
            out[m - 1].n += cnt;
        else
            out[m++] = (join_map){q[i].shard, src, dst, cnt};
        dst += cnt;
    }
    return m;
}

/* The shard's name as the root refers to it: relative to the root's folder when both lie in
 * it (HDF5 looks for a relative source beside the virtual dataset's file), else absolute. */
static char *relative_name(const char *root, const char *shard) {
    char *a = strdup(root), *b = strdup(shard), *c = strdup(shard);
    char *out = NULL;
    if (a && b && c) {
        const char *rd = dirname(a), *sd = dirname(b);
        out = strdup(strcmp(rd, sd) == 0 ? basename(c) : shard);
    }
    free(a), free(b), free(c);
    return out;
}

hk_status hk_store_join(const char *root, const char *const *shards, size_t n_shards,
                        bool force) {
    if (!root || !shards || n_shards == 0 || n_shards > INT32_MAX)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_join: a root path and shards are required");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hk_store **sh = calloc(n_shards, sizeof *sh);
    char **rel = calloc(n_shards, sizeof *rel);
    join_seq *seqs = NULL;
    join_map *maps = NULL;
    int64_t *cid = NULL, *v_seq = NULL, *v_len = NULL, *v_first = NULL, *v_fpos = NULL,
            *v_nr = NULL;
    hid_t f = -1;
    char *tmp = NULL;
    hk_status st = sh && rel ? HK_OK : hk_errorf(HK_ERR_NOMEM, "hk_store_join: out of memory");
    int64_t n_seq = 0, n_rows = 0;
    for (size_t k = 0; st == HK_OK && k < n_shards; k++) {
        if ((st = hk_store_open(shards[k], &sh[k])) != HK_OK) break;
        if (k && (st = check_shard(sh[0], sh[k])) != HK_OK) break;
        if (!(rel[k] = relative_name(root, shards[k])))
            st = hk_errorf(HK_ERR_NOMEM, "hk_store_join: out of memory");
        n_seq += sh[k]->committed_seqs;
    }
    if (st == HK_OK && !(seqs = malloc((size_t)(n_seq ? n_seq : 1) * sizeof *seqs)))
        st = hk_errorf(HK_ERR_NOMEM, "hk_store_join: out of memory for %lld sequences",
                       (long long)n_seq);
    int64_t j = 0;
    for (size_t k = 0; st == HK_OK && k < n_shards; k++) {
        hk_store *s = sh[k];
        free(cid);
        cid = malloc((size_t)(s->committed_seqs ? s->committed_seqs : 1) * sizeof *cid);
        if (!cid) st = hk_errorf(HK_ERR_NOMEM, "hk_store_join: out of memory");
        if (st == HK_OK) st = hk_store_corpus_ids(s, cid);
        for (int64_t q = 0; st == HK_OK && q < s->committed_seqs; q++, j++)
            seqs[j] = (join_seq){cid[q], (int32_t)k, q, s->r_len[q], s->r_first[q], s->r_fpos[q],
                                 s->r_nrows[q]};
    }
    if (st == HK_OK) qsort(seqs, (size_t)n_seq, sizeof *seqs, by_id);
    for (int64_t i = 1; st == HK_OK && i < n_seq; i++)
        if (seqs[i].id == seqs[i - 1].id)
            st = hk_errorf(HK_ERR_FORMAT, "corpus sequence %lld is in %s and in %s: shards of "
                                          "overlapping runs",
                           (long long)seqs[i].id, shards[seqs[i - 1].shard], shards[seqs[i].shard]);
    for (int64_t i = 0; st == HK_OK && i < n_seq; i++) n_rows += seqs[i].n_rows;
    /* the real index: seq_id per row, the per-sequence tables with root row numbers */
    const size_t ns = (size_t)(n_seq ? n_seq : 1), nr = (size_t)(n_rows ? n_rows : 1);
    if (st == HK_OK) {
        v_seq = malloc(nr * sizeof *v_seq), v_len = malloc(ns * sizeof *v_len);
        v_first = malloc(ns * sizeof *v_first), v_fpos = malloc(ns * sizeof *v_fpos);
        v_nr = malloc(ns * sizeof *v_nr);
        maps = malloc((size_t)(n_seq > n_rows ? ns : nr) * sizeof *maps);
        if (!v_seq || !v_len || !v_first || !v_fpos || !v_nr || !maps)
            st = hk_errorf(HK_ERR_NOMEM, "hk_store_join: out of memory for %lld rows",
                           (long long)n_rows);
    }
    for (int64_t i = 0, r = 0; st == HK_OK && i < n_seq; i++) {
        v_len[i] = seqs[i].len, v_fpos[i] = seqs[i].first_pos, v_nr[i] = seqs[i].n_rows;
        v_first[i] = r;
        for (int64_t k = 0; k < seqs[i].n_rows; k++) v_seq[r++] = seqs[i].id;
    }
    if (st == HK_OK) st = hk_h5_create_tmp(root, force, &f, &tmp);
    if (st == HK_OK) st = copy_attrs(sh[0]->file, f, "the first shard's root", root);
    if (st == HK_OK && !hk_store_attr_strs(f, "shards", (const char *const *)rel, n_shards))
        st = hk_errorf(HK_ERR_IO, "%s: cannot write attribute 'shards'", root);
    if (st == HK_OK) { /* where each shard's rank ran ("" for a shard of an older version) */
        const char **dev = malloc(n_shards * sizeof *dev);
        if (!dev) st = hk_errorf(HK_ERR_NOMEM, "hk_store_join: out of memory");
        for (size_t k = 0; dev && k < n_shards; k++) dev[k] = sh[k]->device ? sh[k]->device : "";
        if (dev && !hk_store_attr_strs(f, "shard_devices", dev, n_shards))
            st = hk_errorf(HK_ERR_IO, "%s: cannot write attribute 'shard_devices'", root);
        free(dev);
    }
    if (st == HK_OK) st = write_i64(f, "seq_id", v_seq, n_rows, root);
    if (st == HK_OK) st = write_i64(f, "seq_length", v_len, n_seq, root);
    if (st == HK_OK) st = write_i64(f, "seq_first_row", v_first, n_seq, root);
    if (st == HK_OK) st = write_i64(f, "seq_first_pos", v_fpos, n_seq, root);
    if (st == HK_OK) st = write_i64(f, "seq_n_rows", v_nr, n_seq, root);
    const int64_t n_row_maps = st == HK_OK ? build_maps(seqs, n_seq, false, maps) : 0;
    const char *row_sets[] = {"position", "token_id"};
    for (size_t i = 0; st == HK_OK && i < 2; i++)
        st = write_virtual(f, row_sets[i], sh, (const char *const *)rel, maps, n_row_maps,
                           n_rows, root);
    for (size_t i = 0; st == HK_OK && i < sh[0]->n_hooks; i++) {
        const hk_store_hook *h = &sh[0]->hooks[i];
        const int64_t nm = h->per_seq ? build_maps(seqs, n_seq, true, maps)
                                      : build_maps(seqs, n_seq, false, maps);
        st = write_virtual(f, h->name, sh, (const char *const *)rel, maps, nm,
                           h->per_seq ? n_seq : n_rows, root);
    }
    if (f >= 0) {
        hk_status fs = hk_h5_finish(f, tmp, root, st == HK_OK);
        if (st == HK_OK) st = fs;
    }
    free(tmp);
    for (size_t k = 0; sh && k < n_shards; k++) {
        hk_store_close(sh[k]);
        if (rel) free(rel[k]);
    }
    free(sh), free(rel), free(seqs), free(maps), free(cid);
    free(v_seq), free(v_len), free(v_first), free(v_fpos), free(v_nr);
    return st;
}
