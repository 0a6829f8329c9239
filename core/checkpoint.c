/* Safetensors checkpoints: one file or a sharded set (index.json), mmapped read-only, tensors
 * looked up by name with bsearch over one name-sorted array spanning all shards. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "error.h"
#include "gguf.h"
#include "json.h"
#include "quant.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

typedef struct {
    char *path;
    void *map; /* NULL for an empty file */
    size_t size;
} hk_shard;

struct hk_ckpt {
    char *origin;          /* the path given to hk_ckpt_open */
    hk_shard *shards;
    size_t n_shards;
    hk_st_tensor *t;       /* [n] sorted by name; t[i].path points at a shard's path */
    size_t n;
    const float **conv;    /* [n] converted f32 copy of t[i], NULL until asked for */
    void **owned;          /* buffers freed by hk_ckpt_close */
    size_t n_owned, cap_owned;
    size_t owned_bytes;    /* bytes of the buffers in owned (hk_ckpt_owned_bytes) */
    unsigned char *read;   /* [n] how t[i]'s mapped bytes were read: READ_* */
    hk_gguf *gguf;         /* metadata of a .gguf checkpoint (its one shard), else NULL */
    bool drop_blocks;      /* !hk_ckpt_keep_blocks */
};

/* How a tensor's bytes in the mapping were used: not yet, handed out in place (resident once
 * the forward reads them), or read once to convert them (resident from then on). */
enum { READ_NONE = 0, READ_VIEW, READ_SOURCE };

/* ---- small helpers ------------------------------------------------------ */

static char *join_path(const char *dir, const char *name) {
    const size_t a = strlen(dir), b = strlen(name);
    const bool slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + slash + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

static bool ends_with(const char *s, const char *suffix) {
    const size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool is_regular(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static hk_status oom(const char *what) { return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", what); }

static bool keep_owned(hk_ckpt *c, void *p) {
    if (c->n_owned == c->cap_owned) {
        const size_t cap = c->cap_owned ? 2 * c->cap_owned : 16;
        void **o = realloc(c->owned, cap * sizeof *o);
        if (!o) return false;
        c->owned = o;
        c->cap_owned = cap;
    }
    c->owned[c->n_owned++] = p;
    return true;
}

/* ---- mapping shards ----------------------------------------------------- */

static hk_status map_file(const char *path, void **map, size_t *size) {
    *map = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const hk_status s = errno == ENOENT ? HK_ERR_NOT_FOUND : HK_ERR_IO;
        return hk_errorf(s, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        const int e = errno;
        close(fd);
        return hk_errorf(HK_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return hk_errorf(HK_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            const int e = errno;
            close(fd);
            return hk_errorf(HK_ERR_IO, "%s: mmap of %lld bytes failed: %s", path,
                             (long long)sb.st_size, strerror(e));
        }
        *map = m;
        *size = (size_t)sb.st_size;
    }
    close(fd); /* the mapping stays valid */
    return HK_OK;
}

/* Maps `path` (taking ownership of the string) and appends its tensors to c->t (unsorted). */
static hk_status add_shard(hk_ckpt *c, char *path) {
    hk_shard *sh = realloc(c->shards, (c->n_shards + 1) * sizeof *sh);
    if (!sh) {
        free(path);
        return oom(c->origin);
    }
    c->shards = sh;
    sh = &c->shards[c->n_shards++];
    sh->path = path;
    hk_status st = map_file(path, &sh->map, &sh->size);
    if (st) return st;

    hk_st_tensor *t;
    size_t n;
    if ((st = hk_st_parse(path, sh->map, sh->size, &t, &n))) return st;
    hk_st_tensor *all = realloc(c->t, (c->n + n + 1) * sizeof *all);
    if (!all) {
        hk_st_tensors_free(t, n);
        return oom(path);
    }
    memcpy(all + c->n, t, n * sizeof *t); /* names move into c->t */
    free(t);
    c->t = all;
    c->n += n;
    return HK_OK;
}

/* Maps a .gguf file (taking ownership of the path) and lists its tensors: F32/F16/BF16 keep
 * their dtype, block-quantized types become U8 blobs marked `quantized`. Shapes are turned
 * row-major (GGUF lists ne[0], the row length, first). */
static hk_status add_gguf(hk_ckpt *c, char *path) {
    hk_shard *sh = calloc(1, sizeof *sh);
    if (!sh) {
        free(path);
        return oom(c->origin);
    }
    c->shards = sh;
    c->n_shards = 1;
    sh->path = path;
    hk_status st = map_file(path, &sh->map, &sh->size);
    if (st || (st = hk_gguf_parse(path, sh->map, sh->size, &c->gguf))) return st;
    const hk_gguf *g = c->gguf;
    if (!(c->t = calloc(g->n_t + 1, sizeof *c->t))) return oom(path);
    for (size_t i = 0; i < g->n_t; i++) {
        const hk_gguf_tensor *gt = &g->t[i];
        hk_st_tensor *t = &c->t[c->n];
        if (!(t->name = strdup(gt->name))) return oom(path);
        c->n++;
        t->ggml_type = gt->type;
        t->dtype = gt->type == HK_GGML_F32   ? HK_DTYPE_F32
                   : gt->type == HK_GGML_F16 ? HK_DTYPE_F16
                   : gt->type == HK_GGML_BF16 ? HK_DTYPE_BF16
                                              : HK_DTYPE_U8;
        t->quantized = t->dtype == HK_DTYPE_U8;
        t->ndim = gt->ndim;
        for (int d = 0; d < gt->ndim; d++) t->shape[d] = gt->ne[gt->ndim - 1 - d];
        t->data = gt->data;
        t->nbytes = gt->nbytes;
        t->path = sh->path;
    }
    return HK_OK;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const hk_st_tensor *)a)->name, ((const hk_st_tensor *)b)->name);
}

/* Sorts the merged tensor list; a name in two shards is an error. */
static hk_status finish(hk_ckpt *c) {
    if (c->n) qsort(c->t, c->n, sizeof *c->t, cmp_tensor);
    for (size_t i = 1; i < c->n; i++)
        if (strcmp(c->t[i - 1].name, c->t[i].name) == 0)
            return hk_errorf(HK_ERR_FORMAT, "%s: tensor '%s' is in both %s and %s", c->origin,
                             c->t[i].name, c->t[i - 1].path, c->t[i].path);
    c->conv = calloc(c->n ? c->n : 1, sizeof *c->conv);
    c->read = calloc(c->n ? c->n : 1, sizeof *c->read);
    return c->conv && c->read ? HK_OK : oom(c->origin);
}

/* ---- sharded sets ------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Shard names are file names relative to the index's folder. */
static hk_status check_shard_name(const char *index, const char *tensor, const char *file) {
    bool dotdot = strcmp(file, "..") == 0 || strncmp(file, "../", 3) == 0 ||
                  strstr(file, "/../") != NULL || ends_with(file, "/..");
    if (file[0] == '\0' || file[0] == '/' || dotdot)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: weight_map puts tensor '%s' in '%s', which is not a file name "
                         "inside the checkpoint folder", index, tensor, file);
    return HK_OK;
}

/* Reads weight_map into a sorted array of distinct shard names (pointing into the JSON). */
static hk_status shard_names(const char *index, const cJSON *wm, const char ***out, size_t *n) {
    char found[96];
    if (!cJSON_IsObject(wm))
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: field 'weight_map' must be an object {tensor: shard file}, found %s",
                         index, hk_json_describe(wm, found, sizeof found));
    size_t count = 0;
    for (const cJSON *e = wm->child; e; e = e->next) count++;
    if (count == 0) return hk_errorf(HK_ERR_FORMAT, "%s: weight_map is empty", index);
    const char **names = malloc(count * sizeof *names);
    if (!names) return oom(index);
    size_t k = 0;
    hk_status st = HK_OK;
    for (const cJSON *e = wm->child; e && !st; e = e->next) {
        const char *tn = e->string ? e->string : "?";
        if (!cJSON_IsString(e) || !e->valuestring)
            st = hk_errorf(HK_ERR_FORMAT,
                           "%s: weight_map entry for tensor '%s' must be a shard file name, "
                           "found %s", index, tn, hk_json_describe(e, found, sizeof found));
        else if (!(st = check_shard_name(index, tn, e->valuestring)))
            names[k++] = e->valuestring;
    }
    if (st) {
        free(names);
        return st;
    }
    qsort(names, k, sizeof *names, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(names[u - 1], names[i]) != 0) names[u++] = names[i];
    *out = names;
    *n = u;
    return HK_OK;
}

/* Every tensor the weight_map names must be in the shard it names. Shards were added in the
 * order of `names`, so c->shards[i] holds names[i]. */
static hk_status check_weight_map(const hk_ckpt *c, const char *index, const cJSON *wm,
                                  const char **names, size_t n_names) {
    for (const cJSON *e = wm->child; e; e = e->next) {
        const char **hit = bsearch(&e->valuestring, names, n_names, sizeof *names, cmp_str);
        if (!hit) continue; /* cannot happen: names were collected from this map */
        const hk_shard *sh = &c->shards[hit - names];
        const hk_st_tensor *t = hk_ckpt_find(c, e->string);
        if (!t)
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: weight_map puts tensor '%s' in %s, but that shard has no such "
                             "tensor", index, e->string, sh->path);
        if (t->path != sh->path)
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: weight_map puts tensor '%s' in %s, but it is in %s", index,
                             e->string, sh->path, t->path);
    }
    return HK_OK;
}

static hk_status open_index(hk_ckpt *c, const char *index, const char *dir) {
    cJSON *root = NULL;
    hk_status st = hk_json_load_file(index, &root);
    if (st) return st;
    const char **names = NULL;
    size_t n_names = 0;
    const cJSON *wm = NULL;
    if (!cJSON_IsObject(root)) {
        char found[96];
        st = hk_errorf(HK_ERR_FORMAT, "%s: must be a JSON object with a 'weight_map', found %s",
                       index, hk_json_describe(root, found, sizeof found));
    } else if (!(wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map"))) {
        st = hk_errorf(HK_ERR_FORMAT,
                       "%s: field 'weight_map' is missing (expected an object {tensor: shard file})",
                       index);
    } else {
        st = shard_names(index, wm, &names, &n_names);
    }
    for (size_t i = 0; i < n_names && !st; i++) {
        char *p = join_path(dir, names[i]);
        st = p ? add_shard(c, p) : oom(index);
        if (st) hk_error_prefix(st, "%s: shard '%s'", index, names[i]);
    }
    if (!st) st = finish(c);
    if (!st) st = check_weight_map(c, index, wm, names, n_names);
    free(names);
    cJSON_Delete(root);
    return st;
}

/* ---- open / close ------------------------------------------------------- */

/* Folder part of a file path ("." when there is none). */
static char *parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    const size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

static hk_status open_any(hk_ckpt *c, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        const hk_status s = errno == ENOENT ? HK_ERR_NOT_FOUND : HK_ERR_IO;
        return hk_errorf(s, "%s: cannot open checkpoint: %s", path, strerror(errno));
    }
    if (S_ISREG(sb.st_mode)) {
        if (ends_with(path, ".json")) {
            char *dir = parent_dir(path);
            if (!dir) return oom(path);
            hk_status st = open_index(c, path, dir);
            free(dir);
            return st;
        }
        if (ends_with(path, ".gguf")) {
            char *p = strdup(path);
            hk_status st = p ? add_gguf(c, p) : oom(path);
            return st ? st : finish(c);
        }
        if (!ends_with(path, ".safetensors"))
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "%s: expected a checkpoint folder, a .safetensors or .gguf file or "
                             "an index .json file", path);
        char *p = strdup(path);
        hk_status st = p ? add_shard(c, p) : oom(path);
        return st ? st : finish(c);
    }
    if (!S_ISDIR(sb.st_mode))
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: not a folder or a regular file", path);

    char *index = join_path(path, INDEX_NAME);
    if (!index) return oom(path);
    if (is_regular(index)) {
        hk_status st = open_index(c, index, path);
        free(index);
        return st;
    }
    free(index);
    char *single = join_path(path, SINGLE_NAME);
    if (!single) return oom(path);
    if (!is_regular(single)) {
        free(single);
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: no checkpoint found (tried %s and %s)", path,
                         INDEX_NAME, SINGLE_NAME);
    }
    hk_status st = add_shard(c, single);
    return st ? st : finish(c);
}

hk_status hk_ckpt_open(const char *dir, hk_ckpt **out) {
    if (!dir || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_ckpt_open: NULL argument");
    *out = NULL;
    hk_ckpt *c = calloc(1, sizeof *c);
    if (!c || !(c->origin = strdup(dir))) {
        free(c);
        return oom(dir);
    }
    hk_status st = open_any(c, dir);
    if (st) {
        hk_ckpt_close(c);
        return st;
    }
    *out = c;
    return HK_OK;
}

void hk_ckpt_close(hk_ckpt *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n_owned; i++) free(c->owned[i]);
    free(c->owned);
    free(c->conv);
    free(c->read);
    hk_st_tensors_free(c->t, c->n);
    hk_gguf_free(c->gguf);
    for (size_t i = 0; i < c->n_shards; i++) {
        if (c->shards[i].map) munmap(c->shards[i].map, c->shards[i].size);
        free(c->shards[i].path);
    }
    free(c->shards);
    free(c->origin);
    free(c);
}

/* ---- lookup ------------------------------------------------------------- */

size_t hk_ckpt_count(const hk_ckpt *c) { return c ? c->n : 0; }

const char *hk_ckpt_path(const hk_ckpt *c) { return c ? c->origin : ""; }

const hk_gguf *hk_ckpt_gguf(const hk_ckpt *c) { return c ? c->gguf : NULL; }

const hk_st_tensor *hk_ckpt_at(const hk_ckpt *c, size_t i) {
    return c && i < c->n ? &c->t[i] : NULL;
}

static int cmp_key(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const hk_st_tensor *)elem)->name);
}

const hk_st_tensor *hk_ckpt_find(const hk_ckpt *c, const char *name) {
    if (!c || !name || c->n == 0) return NULL;
    return bsearch(name, c->t, c->n, sizeof *c->t, cmp_key);
}

static void format_shape(const int64_t *shape, int ndim, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static hk_status check_shape(const hk_st_tensor *t, int ndim, const int64_t *shape) {
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return HK_OK;
    char have[160], want[160];
    format_shape(t->shape, t->ndim, have, sizeof have);
    format_shape(shape, ndim, want, sizeof want);
    return hk_errorf(HK_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", t->path, t->name,
                     have, want);
}

float *hk_ckpt_alloc_f32(hk_ckpt *c, size_t n) {
    if (!c) {
        hk_errorf(HK_ERR_INVALID_ARG, "hk_ckpt_alloc_f32: NULL checkpoint");
        return NULL;
    }
    if (n > SIZE_MAX / sizeof(float)) {
        hk_errorf(HK_ERR_NOMEM, "%s: cannot allocate %zu floats", c->origin, n);
        return NULL;
    }
    float *p = calloc(n ? n : 1, sizeof(float)); /* [n] */
    if (!p || !keep_owned(c, p)) {
        free(p);
        hk_errorf(HK_ERR_NOMEM, "%s: cannot allocate %zu floats", c->origin, n);
        return NULL;
    }
    c->owned_bytes += (n ? n : 1) * sizeof(float);
    return p;
}

void hk_ckpt_set_keep_blocks(hk_ckpt *c, bool keep) {
    if (c) c->drop_blocks = !keep;
}

bool hk_ckpt_keep_blocks(const hk_ckpt *c) { return c && !c->drop_blocks; }

bool hk_ckpt_blocks_of(const hk_ckpt *c, const float *view, uint32_t *type, const void **data,
                       size_t *row_bytes) {
    if (!c || !view) return false;
    for (size_t i = 0; i < c->n; i++) {
        const hk_st_tensor *t = &c->t[i];
        if (c->conv[i] != view || !t->quantized || t->ndim < 1) continue;
        int64_t block, bytes;
        const int64_t cols = t->shape[t->ndim - 1];
        if (!hk_ggml_layout(t->ggml_type, &block, &bytes) || cols % block != 0) return false;
        *type = t->ggml_type;
        *data = t->data;
        *row_bytes = (size_t)(cols / block * bytes);
        return true;
    }
    return false;
}

size_t hk_ckpt_owned_bytes(const hk_ckpt *c) { return c ? c->owned_bytes : 0; }

static size_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

static void mark_read(hk_ckpt *c, size_t i, unsigned char how) {
    if (c->read[i] != READ_SOURCE) c->read[i] = how; /* a copied view moves to the sources */
}

typedef struct {
    uintptr_t a, b; /* [a, b) in whole pages */
} page_range;

static int cmp_range(const void *x, const void *y) {
    const page_range *p = x, *q = y;
    return (p->a > q->a) - (p->a < q->a);
}

/* Bytes of the union of the pages spanned by the tensors read one of the ways in `mask`
 * (bit 1 << READ_*), and by every shard's header when with_headers. */
static size_t pages_read(const hk_ckpt *c, unsigned mask, bool with_headers) {
    const size_t page = page_size();
    page_range *r = malloc((c->n + c->n_shards + 1) * sizeof *r);
    if (!r) return 0;
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        const hk_st_tensor *t = &c->t[i];
        if (!(mask & (1u << c->read[i])) || t->nbytes == 0) continue;
        uintptr_t a = (uintptr_t)t->data, b = a + t->nbytes;
        r[n++] = (page_range){a / page * page, (b + page - 1) / page * page};
    }
    for (size_t s = 0; with_headers && s < c->n_shards; s++) {
        /* the header: the map up to its first tensor */
        const char *map = c->shards[s].map, *first = map ? map + c->shards[s].size : NULL;
        for (size_t i = 0; map && i < c->n; i++) {
            const char *d = c->t[i].data;
            if (d >= map && d < first) first = d;
        }
        if (first > map)
            r[n++] = (page_range){(uintptr_t)map, ((uintptr_t)first + page - 1) / page * page};
    }
    qsort(r, n, sizeof *r, cmp_range);
    size_t total = 0;
    for (size_t i = 0; i < n;) {
        uintptr_t a = r[i].a, b = r[i].b;
        for (i++; i < n && r[i].a <= b; i++)
            if (r[i].b > b) b = r[i].b;
        total += (size_t)(b - a);
    }
    free(r);
    return total;
}

size_t hk_ckpt_view_bytes(const hk_ckpt *c) {
    return c ? pages_read(c, 1u << READ_VIEW, false) : 0;
}

size_t hk_ckpt_source_bytes(const hk_ckpt *c) {
    if (!c) return 0;
    const size_t all = pages_read(c, (1u << READ_VIEW) | (1u << READ_SOURCE), true);
    const size_t views = pages_read(c, 1u << READ_VIEW, false);
    return all > views ? all - views : 0;
}

static hk_status view_f32(hk_ckpt *c, const hk_st_tensor *t, int ndim, const int64_t *shape,
                          const float **out) {
    hk_status st = check_shape(t, ndim, shape);
    if (st) return st;
    if (t->quantized && !hk_ggml_can_dequantize(t->ggml_type))
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: tensor '%s' is %s, which hookformer cannot dequantize (it reads "
                         "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K "
                         "and Q6_K)",
                         t->path, t->name, hk_ggml_type_name(t->ggml_type));
    if (!t->quantized && t->dtype != HK_DTYPE_F32 && t->dtype != HK_DTYPE_F16 &&
        t->dtype != HK_DTYPE_BF16)
        return hk_errorf(HK_ERR_SHAPE, "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16",
                         t->path, t->name, hk_dtype_name(t->dtype));
    const size_t i = (size_t)(t - c->t);
    if (t->dtype == HK_DTYPE_F32 && (uintptr_t)t->data % _Alignof(float) == 0) {
        mark_read(c, i, READ_VIEW);
        *out = t->data; /* zero-copy into the mapping */
        return HK_OK;
    }
    if (!c->conv[i]) {
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
        float *buf = hk_ckpt_alloc_f32(c, n); /* [numel] */
        if (!buf) return hk_error_prefix(HK_ERR_NOMEM, "tensor '%s'", t->name);
        if (t->quantized)
            hk_dequantize(t->ggml_type, t->data, buf, (int64_t)n);
        else
            hk_convert_to_f32(t->dtype, t->data, buf, n);
        c->conv[i] = buf;
        mark_read(c, i, READ_SOURCE);
    }
    *out = c->conv[i];
    return HK_OK;
}

static hk_status check_args(const hk_ckpt *c, const char *name, int ndim, const int64_t *shape,
                            const float **out) {
    if (!c || !name || !out || ndim < 0 || ndim > HK_ST_MAX_DIMS || (ndim > 0 && !shape))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_ckpt_f32: bad argument (tensor '%s', ndim %d)",
                         name ? name : "(null)", ndim);
    return HK_OK;
}

hk_status hk_ckpt_f32(hk_ckpt *c, const char *name, int ndim, const int64_t *shape,
                      const float **out) {
    hk_status st = check_args(c, name, ndim, shape, out);
    if (st) return st;
    *out = NULL;
    const hk_st_tensor *t = hk_ckpt_find(c, name);
    if (!t)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: tensor '%s' not found in the checkpoint",
                         c->origin, name);
    return view_f32(c, t, ndim, shape, out);
}

hk_status hk_ckpt_f32_opt(hk_ckpt *c, const char *name, int ndim, const int64_t *shape,
                          const float **out) {
    hk_status st = check_args(c, name, ndim, shape, out);
    if (st) return st;
    *out = NULL;
    const hk_st_tensor *t = hk_ckpt_find(c, name);
    return t ? view_f32(c, t, ndim, shape, out) : HK_OK;
}

hk_status hk_ckpt_f32_mut(hk_ckpt *c, const char *name, int ndim, const int64_t *shape,
                          float **out) {
    const float *view;
    hk_status st = hk_ckpt_f32(c, name, ndim, shape, &view);
    if (st) return st;
    const hk_st_tensor *t = hk_ckpt_find(c, name);
    const size_t i = (size_t)(t - c->t);
    if (!c->conv[i]) { /* zero-copy F32: copy it into an owned buffer */
        size_t n = t->nbytes / sizeof(float);
        float *buf = hk_ckpt_alloc_f32(c, n); /* [numel] */
        if (!buf) return hk_error_prefix(HK_ERR_NOMEM, "tensor '%s'", t->name);
        memcpy(buf, view, n * sizeof(float));
        c->conv[i] = buf;
        mark_read(c, i, READ_SOURCE);
    }
    *out = (float *)c->conv[i]; /* owned by the checkpoint: allocated non-const above */
    return HK_OK;
}
