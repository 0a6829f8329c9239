/* The store's HDF5 format: types, property lists, datasets and attributes (docs/FORMAT.md).
 *
 * Choices that crash safety rests on (docs/ARCHITECTURE.md, "HDF5 store"):
 *  - library version bounds earliest..v18: superblock v0/v2 without the status flags that make
 *    h5py refuse a file whose writer died ("use h5clear");
 *  - metadata cache evictions off: no metadata reaches the file between commits;
 *  - raw-data chunk cache of 0 bytes and fill time "never": rows go to their chunk's place in
 *    the file when written, and a chunk is never read back or filled.
 * Every object and attribute is made before the first commit; appends only extend datasets,
 * so the file never frees (and so never reuses) space that committed metadata points at. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "store.h"

#define H5Z_FILTER_LZ4 32004 /* registered id of the LZ4 filter plugin */

hid_t hk_store_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    H5AC_cache_config_t mdc;
    memset(&mdc, 0, sizeof mdc);
    mdc.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_V18) < 0 ||
        H5Pget_mdc_config(fapl, &mdc) < 0)
        goto fail;
    /* A fixed cache that never evicts: dirty metadata stays in memory until H5Fflush. */
    mdc.evictions_enabled = false;
    mdc.incr_mode = H5C_incr__off;
    mdc.flash_incr_mode = H5C_flash_incr__off;
    mdc.decr_mode = H5C_decr__off;
    mdc.set_initial_size = true;
    mdc.initial_size = 32u << 20;
    mdc.max_size = 32u << 20;
    mdc.min_size = 1u << 20;
    if (H5Pset_mdc_config(fapl, &mdc) < 0) goto fail;
    return fapl;
fail:
    H5Pclose(fapl);
    return -1;
}

hid_t hk_store_file_type(hk_dtype dt) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0 || dt == HK_DTYPE_F32) return t;
    herr_t e;
    if (dt == HK_DTYPE_F16) /* sign 15, exponent 10..14, mantissa 0..9, bias 15 */
        e = H5Tset_fields(t, 15, 10, 5, 0, 10);
    else /* bfloat16: sign 15, exponent 7..14, mantissa 0..6, bias 127 */
        e = H5Tset_fields(t, 15, 7, 8, 0, 7);
    if (e >= 0) e = H5Tset_precision(t, 16);
    if (e >= 0) e = H5Tset_size(t, 2);
    if (e >= 0) e = H5Tset_ebias(t, dt == HK_DTYPE_F16 ? 15 : 127);
    if (e < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static size_t file_esize(const hk_store *s) { return s->dtype == HK_DTYPE_F32 ? 4 : 2; }

hid_t hk_store_hook_dcpl(const hk_store *s, const hk_store_hook *h) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0) return -1;
    hsize_t chunk[HK_MAX_DIMS + 1];
    chunk[0] = (hsize_t)h->chunk_rows;
    for (int d = 0; d < h->row_ndim; d++) chunk[1 + d] = (hsize_t)h->row_shape[d];
    if (h->per_seq) {
        /* [1, head, Q, P] rows: chunks of one head and as many query rows as fit */
        const size_t row_bytes = (size_t)h->row_shape[2] * file_esize(s);
        size_t q = HK_STORE_CHUNK_BYTES / (row_bytes ? row_bytes : 1);
        if (q < 1) q = 1;
        chunk[1] = 1;
        if ((hsize_t)q < chunk[2]) chunk[2] = (hsize_t)q;
    }
    if (H5Pset_chunk(dcpl, h->row_ndim + 1, chunk) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
        H5Pset_obj_track_times(dcpl, false) < 0)
        goto fail;
    if (s->deflate > 0 && H5Pset_deflate(dcpl, (unsigned)s->deflate) < 0) goto fail;
    if (s->lz4 && H5Pset_filter(dcpl, H5Z_FILTER_LZ4, H5Z_FLAG_MANDATORY, 0, NULL) < 0)
        goto fail;
    return dcpl;
fail:
    H5Pclose(dcpl);
    return -1;
}

hid_t hk_store_dapl(void) {
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    /* no raw-data chunk cache: writes go straight to the chunk's place in the file */
    if (dapl >= 0 &&
        H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, H5D_CHUNK_CACHE_W0_DEFAULT) <
            0) {
        H5Pclose(dapl);
        return -1;
    }
    return dapl;
}

/* ---- errors ---- */

typedef struct {
    char msg[256];
} h5_walk;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *user) {
    h5_walk *w = user;
    /* innermost first: keep the first description that says something */
    if (n == 0 && e->desc && e->desc[0]) snprintf(w->msg, sizeof w->msg, "%s", e->desc);
    return 0;
}

hk_status hk_store_h5_error(const hk_store *s, hk_status st, const char *what) {
    h5_walk w = {{0}};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    return hk_errorf(st, "%s: %s%s%s", s && s->path ? s->path : "hdf5", what,
                     w.msg[0] ? ": " : "", w.msg);
}

/* ---- attributes ---- */

static hid_t vlen_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static bool set_attr_str(hid_t obj, const char *name, const char *value) {
    hid_t t = vlen_str_type(), sp = H5Screate(H5S_SCALAR), a = -1;
    bool ok = t >= 0 && sp >= 0;
    if (ok) a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && a >= 0 && H5Awrite(a, t, &value) >= 0;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return ok;
}

bool hk_store_attr_strs(hid_t obj, const char *name, const char *const *values, size_t n) {
    hsize_t dim = n;
    hid_t t = vlen_str_type(), sp = H5Screate_simple(1, &dim, NULL), a = -1;
    bool ok = t >= 0 && sp >= 0;
    if (ok) a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && a >= 0 && H5Awrite(a, t, values) >= 0;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return ok;
}

static bool set_attr_i64(hid_t obj, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR), a = -1;
    bool ok = sp >= 0;
    if (ok) a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return ok;
}

char *hk_store_attr_str(hid_t obj, const char *name) {
    if (H5Aexists(obj, name) <= 0) return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return NULL;
    char *out = NULL;
    hid_t ft = H5Aget_type(a), t = vlen_str_type();
    if (ft >= 0 && t >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) > 0) {
        char *v = NULL;
        if (H5Aread(a, t, &v) >= 0 && v) {
            out = strdup(v);
            H5free_memory(v);
        }
    }
    if (t >= 0) H5Tclose(t);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return out;
}

static bool attr_i64(hid_t obj, const char *name, int64_t *out) {
    if (H5Aexists(obj, name) <= 0) return false;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    bool ok = a >= 0 && H5Aread(a, H5T_NATIVE_INT64, out) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok;
}

/* ---- datasets ---- */

static hid_t create_1d(hk_store *s, const char *name, hid_t type) {
    hsize_t dim = 0, maxdim = H5S_UNLIMITED,
            chunk = (hsize_t)(s->index_chunk > 0 ? s->index_chunk : HK_STORE_INDEX_CHUNK);
    hid_t sp = H5Screate_simple(1, &dim, &maxdim), dcpl = H5Pcreate(H5P_DATASET_CREATE),
          dapl = hk_store_dapl(), d = -1;
    if (sp >= 0 && dcpl >= 0 && dapl >= 0 && H5Pset_chunk(dcpl, 1, &chunk) >= 0 &&
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0 &&
        H5Pset_obj_track_times(dcpl, false) >= 0)
        d = H5Dcreate2(s->file, name, type, sp, H5P_DEFAULT, dcpl, dapl);
    if (dapl >= 0) H5Pclose(dapl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return d;
}

int64_t hk_store_dset_len(hid_t d) {
    hid_t sp = H5Dget_space(d);
    hsize_t dims[HK_MAX_DIMS + 1] = {0};
    int nd = sp >= 0 ? H5Sget_simple_extent_dims(sp, dims, NULL) : -1;
    if (sp >= 0) H5Sclose(sp);
    return nd >= 1 ? (int64_t)dims[0] : -1;
}

static const char *dtype_attr(hk_dtype dt) {
    return dt == HK_DTYPE_F16 ? "float16" : dt == HK_DTYPE_BF16 ? "bfloat16" : "float32";
}

static bool hook_attrs(const hk_store *s, const hk_store_hook *h) {
    return set_attr_str(h->dset, "hook_name", h->name) &&
           set_attr_str(h->dset, "dtype", dtype_attr(s->dtype)) &&
           set_attr_str(h->dset, "layout", h->per_seq ? "sequence" : "token_rows") &&
           set_attr_str(h->dset, "dims", h->dims) &&
           set_attr_str(h->dset, "model_id", s->model_id) &&
           set_attr_str(h->dset, "hookformer_version", s->version);
}

static const char *const INDEX_NAMES[] = {"seq_id", "position", "token_id", "seq_length",
                                          "seq_first_row", "seq_first_pos", "seq_n_rows"};

hk_status hk_store_write_layout(hk_store *s) {
    hid_t *idx[] = {&s->d_seq, &s->d_pos, &s->d_tok, &s->d_slen, &s->d_sfirst, &s->d_sfpos,
                    &s->d_snrows};
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        *idx[i] = create_1d(s, INDEX_NAMES[i], i == 2 ? H5T_STD_I32LE : H5T_STD_I64LE);
        if (*idx[i] < 0) {
            char what[80];
            snprintf(what, sizeof what, "cannot create dataset '%s'", INDEX_NAMES[i]);
            return hk_store_h5_error(s, HK_ERR_IO, what);
        }
    }
    if (s->corpus_ids && (s->d_scid = create_1d(s, "seq_corpus_id", H5T_STD_I64LE)) < 0)
        return hk_store_h5_error(s, HK_ERR_IO, "cannot create dataset 'seq_corpus_id'");
    for (size_t i = 0; i < s->n_hooks; i++) {
        hk_store_hook *h = &s->hooks[i];
        hsize_t dims[HK_MAX_DIMS + 1], maxd[HK_MAX_DIMS + 1];
        dims[0] = 0;
        maxd[0] = H5S_UNLIMITED;
        for (int d = 0; d < h->row_ndim; d++) dims[1 + d] = maxd[1 + d] = (hsize_t)h->row_shape[d];
        hid_t sp = H5Screate_simple(h->row_ndim + 1, dims, maxd);
        hid_t dcpl = hk_store_hook_dcpl(s, h), dapl = hk_store_dapl();
        if (sp >= 0 && dcpl >= 0 && dapl >= 0)
            h->dset = H5Dcreate2(s->file, h->name, s->ftype, sp, H5P_DEFAULT, dcpl, dapl);
        if (dapl >= 0) H5Pclose(dapl);
        if (dcpl >= 0) H5Pclose(dcpl);
        if (sp >= 0) H5Sclose(sp);
        char what[200];
        snprintf(what, sizeof what, "cannot create dataset '%s'%s", h->name,
                 s->lz4 ? " (is the LZ4 filter plugin installed?)" : "");
        if (h->dset < 0 || !hook_attrs(s, h)) return hk_store_h5_error(s, HK_ERR_IO, what);
    }
    const char **names = malloc((s->n_hooks ? s->n_hooks : 1) * sizeof *names);
    if (!names) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", s->path);
    for (size_t i = 0; i < s->n_hooks; i++) names[i] = s->hooks[i].name;
    hid_t root = s->file;
    bool ok = set_attr_str(root, "format", HK_STORE_FORMAT) &&
              set_attr_i64(root, "format_version", HK_STORE_FORMAT_VERSION) &&
              set_attr_str(root, "hookformer_version", s->version) &&
              set_attr_str(root, "model_id", s->model_id) &&
              set_attr_str(root, "model_path", s->model_path) &&
              set_attr_str(root, "model_family", s->family) &&
              (!s->device || set_attr_str(root, "device", s->device)) &&
              set_attr_str(root, "config_json", s->config_json) &&
              set_attr_str(root, "dtype", dtype_attr(s->dtype)) &&
              set_attr_str(root, "positions", s->positions) &&
              set_attr_str(root, "compression", s->compression) &&
              set_attr_i64(root, "ctx", s->ctx) &&
              hk_store_attr_strs(root, "hooks", names, s->n_hooks);
    free(names);
    return ok ? HK_OK : hk_store_h5_error(s, HK_ERR_IO, "cannot write the file attributes");
}

static bool parse_dtype_attr(const char *v, hk_dtype *out) {
    if (!v) return false;
    if (strcmp(v, "float32") == 0) *out = HK_DTYPE_F32;
    else if (strcmp(v, "float16") == 0) *out = HK_DTYPE_F16;
    else if (strcmp(v, "bfloat16") == 0) *out = HK_DTYPE_BF16;
    else return false;
    return true;
}

/* Row shape, dims and chunking of an existing hook dataset. */
static hk_status open_hook(hk_store *s, hk_store_hook *h, hid_t dapl) {
    h->dset = H5Dopen2(s->file, h->name, dapl);
    if (h->dset < 0) {
        char what[160];
        snprintf(what, sizeof what, "the file lists hook '%s' but has no such dataset", h->name);
        return hk_store_h5_error(s, HK_ERR_FORMAT, what);
    }
    hid_t sp = H5Dget_space(h->dset), dcpl = H5Dget_create_plist(h->dset);
    hsize_t dims[HK_MAX_DIMS + 1], chunk[HK_MAX_DIMS + 1];
    int nd = sp >= 0 ? H5Sget_simple_extent_dims(sp, dims, NULL) : -1;
    /* the root of a sharded store holds virtual datasets (store_join.c): no chunks */
    const bool virt = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_VIRTUAL;
    int cnd = virt ? nd : dcpl >= 0 ? H5Pget_chunk(dcpl, HK_MAX_DIMS + 1, chunk) : -1;
    if (virt) chunk[0] = 0;
    if (sp >= 0) H5Sclose(sp);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (nd < 2 || nd > HK_MAX_DIMS + 1 || cnd != nd)
        return hk_errorf(HK_ERR_FORMAT, "%s: dataset '%s': expected a chunked or virtual dataset "
                                        "of 2 to %d dims, got %d dims",
                         s->path, h->name, HK_MAX_DIMS + 1, nd);
    h->row_ndim = nd - 1;
    h->row_elems = 1;
    for (int d = 0; d < h->row_ndim; d++) {
        h->row_shape[d] = (int64_t)dims[1 + d];
        h->row_elems *= h->row_shape[d];
    }
    h->chunk_rows = (int64_t)chunk[0];
    h->written = (int64_t)dims[0];
    char *layout = hk_store_attr_str(h->dset, "layout"), *dims_s = hk_store_attr_str(h->dset, "dims");
    h->per_seq = layout && strcmp(layout, "sequence") == 0;
    snprintf(h->dims, sizeof h->dims, "%s", dims_s ? dims_s : "");
    free(layout);
    free(dims_s);
    return HK_OK;
}

hk_status hk_store_open_layout(hk_store *s) {
    char *format = hk_store_attr_str(s->file, "format");
    bool ours = format && strcmp(format, HK_STORE_FORMAT) == 0;
    free(format);
    int64_t version = 0;
    if (!ours || !attr_i64(s->file, "format_version", &version))
        return hk_errorf(HK_ERR_FORMAT, "%s: not a hookformer store (root attribute 'format' is "
                                        "not \"%s\")",
                         s->path, HK_STORE_FORMAT);
    if (version != HK_STORE_FORMAT_VERSION)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: store format version %lld, this hookformer "
                                             "reads version %d",
                         s->path, (long long)version, HK_STORE_FORMAT_VERSION);
    s->model_id = hk_store_attr_str(s->file, "model_id");
    s->model_path = hk_store_attr_str(s->file, "model_path"); /* NULL in older files */
    s->device = hk_store_attr_str(s->file, "device");         /* NULL in older files */
    s->family = hk_store_attr_str(s->file, "model_family");
    s->config_json = hk_store_attr_str(s->file, "config_json");
    s->version = hk_store_attr_str(s->file, "hookformer_version");
    char *dt = hk_store_attr_str(s->file, "dtype"), *pos = hk_store_attr_str(s->file, "positions"),
         *comp = hk_store_attr_str(s->file, "compression");
    bool dt_ok = parse_dtype_attr(dt, &s->dtype);
    snprintf(s->positions, sizeof s->positions, "%s", pos ? pos : "");
    snprintf(s->compression, sizeof s->compression, "%s", comp ? comp : "");
    free(dt);
    free(pos);
    free(comp);
    if (!s->model_id || !s->config_json || !s->version || !dt_ok || !attr_i64(s->file, "ctx", &s->ctx))
        return hk_errorf(HK_ERR_FORMAT, "%s: a root attribute (model_id, config_json, "
                                        "hookformer_version, dtype, ctx) is missing or malformed",
                         s->path);
    if (!s->family && !(s->family = strdup(""))) return hk_errorf(HK_ERR_NOMEM, "out of memory");

    /* hooks: the string array attribute */
    hid_t a = H5Aopen(s->file, "hooks", H5P_DEFAULT);
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1, t = vlen_str_type();
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    char **names = n > 0 ? calloc((size_t)n, sizeof *names) : NULL;
    bool ok = n > 0 && names && t >= 0 && H5Aread(a, t, names) >= 0;
    if (ok) {
        s->hooks = calloc((size_t)n, sizeof *s->hooks);
        ok = s->hooks != NULL;
        for (hssize_t i = 0; ok && i < n; i++) {
            s->hooks[i].dset = -1;
            ok = names[i] && (s->hooks[i].name = strdup(names[i])) != NULL;
            if (ok) s->n_hooks++;
        }
    }
    if (names && n > 0) {
        hid_t rsp = H5Screate_simple(1, (hsize_t[]){(hsize_t)n}, NULL);
        if (rsp >= 0) {
            H5Dvlen_reclaim(t, rsp, H5P_DEFAULT, names);
            H5Sclose(rsp);
        }
    }
    free(names);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
    if (!ok) return hk_errorf(HK_ERR_FORMAT, "%s: root attribute 'hooks' is missing or malformed",
                              s->path);
    hid_t dapl = hk_store_dapl();
    hid_t *idx[] = {&s->d_seq, &s->d_pos, &s->d_tok, &s->d_slen, &s->d_sfirst, &s->d_sfpos,
                    &s->d_snrows};
    hk_status st = HK_OK;
    for (size_t i = 0; st == HK_OK && i < sizeof idx / sizeof idx[0]; i++) {
        *idx[i] = H5Dopen2(s->file, INDEX_NAMES[i], dapl);
        if (*idx[i] < 0) {
            char what[80];
            snprintf(what, sizeof what, "dataset '%s' is missing", INDEX_NAMES[i]);
            st = hk_store_h5_error(s, HK_ERR_FORMAT, what);
        }
    }
    /* shards of a distributed run: the corpus id of each sequence */
    if (st == HK_OK && H5Lexists(s->file, "seq_corpus_id", H5P_DEFAULT) > 0) {
        s->corpus_ids = true;
        if ((s->d_scid = H5Dopen2(s->file, "seq_corpus_id", dapl)) < 0)
            st = hk_store_h5_error(s, HK_ERR_FORMAT, "dataset 'seq_corpus_id' does not open");
        else if (hk_store_dset_len(s->d_scid) < hk_store_dset_len(s->d_slen))
            st = hk_errorf(HK_ERR_FORMAT, "%s: seq_corpus_id holds %lld ids for %lld sequences",
                           s->path, (long long)hk_store_dset_len(s->d_scid),
                           (long long)hk_store_dset_len(s->d_slen));
    }
    for (size_t i = 0; st == HK_OK && i < s->n_hooks; i++) st = open_hook(s, &s->hooks[i], dapl);
    if (dapl >= 0) H5Pclose(dapl);
    if (st != HK_OK) return st;
    /* committed = the lengths of the index datasets (extended last at every commit) */
    s->n_rows = s->committed_rows = hk_store_dset_len(s->d_seq);
    s->n_seqs = s->committed_seqs = hk_store_dset_len(s->d_slen);
    if (s->n_rows < 0 || s->n_seqs < 0)
        return hk_store_h5_error(s, HK_ERR_FORMAT, "cannot read the index dataset lengths");
    return HK_OK;
}

hk_status hk_store_write_1d(const hk_store *s, hid_t d, const char *what, int64_t at,
                            int64_t count, hid_t mem, const void *vals, int64_t new_len) {
    hsize_t len = (hsize_t)new_len;
    if (H5Dset_extent(d, &len) < 0) return hk_store_h5_error(s, HK_ERR_IO, what);
    if (count == 0) return HK_OK;
    hsize_t start = (hsize_t)at, cnt = (hsize_t)count;
    hid_t fsp = H5Dget_space(d), msp = H5Screate_simple(1, &cnt, NULL);
    bool ok = fsp >= 0 && msp >= 0 &&
              H5Sselect_hyperslab(fsp, H5S_SELECT_SET, &start, NULL, &cnt, NULL) >= 0 &&
              H5Dwrite(d, mem, msp, fsp, H5P_DEFAULT, vals) >= 0;
    if (msp >= 0) H5Sclose(msp);
    if (fsp >= 0) H5Sclose(fsp);
    return ok ? HK_OK : hk_store_h5_error(s, HK_ERR_IO, what);
}
