/* GGUF parsing. Layout (little-endian):
 *   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x  { string key | u32 type | value }        string = u64 len | bytes
 *                                                     array  = u32 elem type | u64 n | elems
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset }
 *   padding to general.alignment (default 32) | data area (offsets are relative to it) */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quant.h"

#define MAX_NAME 4096 /* keys and tensor names; ggml's own limit on names is 64 */

typedef struct {
    const char *path;
    const uint8_t *base, *p;
    size_t left;
} cursor;

static const size_t vsize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8}; /* by hk_gguf_vtype */

const char *hk_gguf_vtype_name(hk_gguf_vtype t) {
    static const char *const names[] = {"uint8", "int8",   "uint16", "int16", "uint32",
                                        "int32", "float32", "bool",  "string", "array",
                                        "uint64", "int64", "float64"};
    return (unsigned)t <= HK_GGUF_F64 ? names[t] : "?";
}

static uint64_t le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = v << 8 | p[i];
    return v;
}

/* `what` names the field being read; the byte offset goes in the message. */
static hk_status need(cursor *c, size_t n, const char *what) {
    if (c->left >= n) return HK_OK;
    return hk_errorf(HK_ERR_FORMAT,
                     "%s: file ends inside %s (needs %zu bytes at offset %zu, %zu left): "
                     "truncated file?",
                     c->path, what, n, (size_t)(c->p - c->base), c->left);
}

static hk_status rd(cursor *c, size_t n, const char *what, uint64_t *v) {
    hk_status st = need(c, n, what);
    if (st) return st;
    *v = le(c->p, n);
    c->p += n;
    c->left -= n;
    return HK_OK;
}

static hk_status rd_str(cursor *c, const char *what, hk_gguf_str *s) {
    uint64_t len;
    hk_status st = rd(c, 8, what, &len);
    if (st) return st;
    if (len > c->left)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: %s claims %llu bytes at offset %zu but only %zu remain", c->path,
                         what, (unsigned long long)len, (size_t)(c->p - c->base), c->left);
    s->p = (const char *)c->p;
    s->len = len;
    c->p += len;
    c->left -= len;
    return HK_OK;
}

/* A key or tensor name: bounded, no NUL bytes, copied. */
static hk_status rd_name(cursor *c, const char *what, char **out) {
    hk_gguf_str s = {NULL, 0};
    hk_status st = rd_str(c, what, &s);
    if (st) return st;
    if (s.len == 0 || s.len > MAX_NAME || memchr(s.p, 0, s.len))
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: %s at offset %zu must be 1..%d bytes without NUL (length %llu)",
                         c->path, what, (size_t)((const uint8_t *)s.p - c->base), MAX_NAME,
                         (unsigned long long)s.len);
    if (!(*out = malloc(s.len + 1))) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->path);
    memcpy(*out, s.p, s.len);
    (*out)[s.len] = '\0';
    return HK_OK;
}

static hk_status rd_vtype(cursor *c, const char *key, const char *what, hk_gguf_vtype *t) {
    uint64_t v;
    hk_status st = rd(c, 4, what, &v);
    if (st) return st;
    if (v > HK_GGUF_F64)
        return hk_errorf(HK_ERR_FORMAT, "%s: key '%s': unknown value type %llu (expected 0..12)",
                         c->path, key, (unsigned long long)v);
    *t = (hk_gguf_vtype)v;
    return HK_OK;
}

static hk_status rd_value(cursor *c, hk_gguf_kv *kv) {
    char what[MAX_NAME + 32];
    snprintf(what, sizeof what, "the value of key '%s'", kv->key);
    hk_status st = rd_vtype(c, kv->key, what, &kv->type);
    if (st) return st;
    kv->n = 1;
    kv->elem = kv->type;
    if (kv->type == HK_GGUF_STRING) {
        if (!(kv->strs = malloc(sizeof *kv->strs)))
            return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", c->path);
        kv->data = c->p;
        return rd_str(c, what, kv->strs);
    }
    if (kv->type != HK_GGUF_ARRAY) {
        kv->data = c->p;
        if ((st = need(c, vsize[kv->type], what))) return st;
        c->p += vsize[kv->type];
        c->left -= vsize[kv->type];
        if (kv->type == HK_GGUF_BOOL && *kv->data > 1)
            return hk_errorf(HK_ERR_FORMAT, "%s: key '%s': bool value %u (expected 0 or 1)",
                             c->path, kv->key, *kv->data);
        return HK_OK;
    }
    if ((st = rd_vtype(c, kv->key, what, &kv->elem)) || (st = rd(c, 8, what, &kv->n))) return st;
    if (kv->elem == HK_GGUF_ARRAY)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: key '%s': arrays of arrays are not supported",
                         c->path, kv->key);
    const size_t min_size = kv->elem == HK_GGUF_STRING ? 8 : vsize[kv->elem];
    if (kv->n > c->left / min_size)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: key '%s': array of %llu %s elements cannot fit in the %zu bytes "
                         "left", c->path, kv->key, (unsigned long long)kv->n,
                         hk_gguf_vtype_name(kv->elem), c->left);
    kv->data = c->p;
    if (kv->elem != HK_GGUF_STRING) {
        const size_t bytes = (size_t)kv->n * min_size;
        if (kv->elem == HK_GGUF_BOOL)
            for (size_t i = 0; i < bytes; i++)
                if (c->p[i] > 1)
                    return hk_errorf(HK_ERR_FORMAT, "%s: key '%s'[%zu]: bool value %u", c->path,
                                     kv->key, i, c->p[i]);
        c->p += bytes;
        c->left -= bytes;
        return HK_OK;
    }
    if (!(kv->strs = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->strs)))
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory (key '%s', %llu strings)", c->path,
                         kv->key, (unsigned long long)kv->n);
    for (uint64_t i = 0; i < kv->n; i++)
        if ((st = rd_str(c, what, &kv->strs[i])))
            return hk_error_prefix(st, "element %llu", (unsigned long long)i);
    return HK_OK;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

/* Both arrays start with a char* (key / name); finds a name given twice. */
static hk_status check_unique(const char *path, const char *what, char **first, size_t stride,
                              size_t n) {
    if (n < 2) return HK_OK;
    char ***idx = malloc(n * sizeof *idx);
    if (!idx) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) idx[i] = (char **)((char *)first + i * stride);
    qsort(idx, n, sizeof *idx, cmp_names);
    hk_status st = HK_OK;
    for (size_t i = 1; i < n && !st; i++)
        if (strcmp(*idx[i - 1], *idx[i]) == 0)
            st = hk_errorf(HK_ERR_FORMAT, "%s: %s '%s' appears twice", path, what, *idx[i]);
    free(idx);
    return st;
}

static hk_status rd_tensor_info(cursor *c, size_t index, hk_gguf_tensor *t) {
    char what[96];
    snprintf(what, sizeof what, "tensor info %zu", index);
    uint64_t nd, type;
    hk_status st = rd_name(c, what, &t->name);
    if (st) return st;
    snprintf(what, sizeof what, "tensor info %zu ('%.32s')", index, t->name);
    if ((st = rd(c, 4, what, &nd))) return st;
    if (nd < 1 || nd > HK_GGUF_MAX_DIMS)
        return hk_errorf(HK_ERR_FORMAT, "%s: tensor '%s' has %llu dims (expected 1..%d)",
                         c->path, t->name, (unsigned long long)nd, HK_GGUF_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t ne;
        if ((st = rd(c, 8, what, &ne))) return st;
        if (ne > (uint64_t)INT64_MAX || (ne && numel > (uint64_t)INT64_MAX / ne))
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: tensor '%s': dims overflow 64 bits (ne[%d] = %llu)", c->path,
                             t->name, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        numel *= ne;
    }
    if ((st = rd(c, 4, what, &type)) || (st = rd(c, 8, what, &t->offset))) return st;
    t->type = (uint32_t)type;
    int64_t block, bytes;
    if (type > UINT32_MAX || !hk_ggml_layout(t->type, &block, &bytes))
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: tensor '%s' has ggml type %llu, which hookformer does not know "
                         "(known: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K..Q8_K)",
                         c->path, t->name, (unsigned long long)type);
    if (t->ne[0] % block != 0)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: tensor '%s': row length ne[0] = %lld is not a multiple of the %s "
                         "block size %lld", c->path, t->name, (long long)t->ne[0],
                         hk_ggml_type_name(t->type), (long long)block);
    /* numel / block blocks of `bytes`; numel < 2^63 and bytes <= 292 keep this in range */
    const uint64_t nb = numel / (uint64_t)block;
    if (nb > SIZE_MAX / (uint64_t)bytes)
        return hk_errorf(HK_ERR_FORMAT, "%s: tensor '%s' is too large", c->path, t->name);
    t->nbytes = (size_t)(nb * (uint64_t)bytes);
    return HK_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const hk_gguf_tensor *x = *(const hk_gguf_tensor *const *)a;
    const hk_gguf_tensor *y = *(const hk_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static hk_status place_tensors(hk_gguf *g, const uint8_t *file, size_t size) {
    if (g->n_t == 0) return HK_OK;
    if (g->data_offset > size)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: the data area starts at offset %zu, past the end of the file "
                         "(%zu bytes): truncated file?", g->path, g->data_offset, size);
    const size_t data_size = size - g->data_offset;
    for (size_t i = 0; i < g->n_t; i++) {
        hk_gguf_tensor *t = &g->t[i];
        if (t->offset % g->alignment != 0)
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: tensor '%s': data offset %llu is not a multiple of the "
                             "alignment %llu", g->path, t->name,
                             (unsigned long long)t->offset, (unsigned long long)g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return hk_errorf(HK_ERR_FORMAT,
                             "%s: tensor '%s': data [%llu, +%zu) lies outside the %zu-byte data "
                             "area: truncated file or bad offset?", g->path, t->name,
                             (unsigned long long)t->offset, t->nbytes, data_size);
        t->data = file + g->data_offset + t->offset;
    }
    const hk_gguf_tensor **by = malloc(g->n_t * sizeof *by);
    if (!by) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", g->path);
    for (size_t i = 0; i < g->n_t; i++) by[i] = &g->t[i];
    qsort(by, g->n_t, sizeof *by, cmp_offset);
    hk_status st = HK_OK;
    for (size_t i = 1; i < g->n_t && !st; i++)
        if (by[i - 1]->offset + by[i - 1]->nbytes > by[i]->offset)
            st = hk_errorf(HK_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data area",
                           g->path, by[i - 1]->name, by[i]->name);
    free(by);
    return st;
}

static hk_status read_alignment(hk_gguf *g) {
    g->alignment = 32;
    const hk_gguf_kv *kv = hk_gguf_find(g, "general.alignment");
    if (!kv) return HK_OK;
    if (kv->type != HK_GGUF_U32)
        return hk_errorf(HK_ERR_FORMAT, "%s: key 'general.alignment' must be uint32, found %s",
                         g->path, hk_gguf_vtype_name(kv->type));
    const uint64_t a = le(kv->data, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: key 'general.alignment' is %llu, expected a power of two", g->path,
                         (unsigned long long)a);
    g->alignment = a;
    return HK_OK;
}

static hk_status parse(hk_gguf *g, const uint8_t *file, size_t size) {
    cursor c = {g->path, file, file, size};
    uint64_t magic, version, n_t, n_kv;
    hk_status st = rd(&c, 4, "the magic number", &magic);
    if (st) return st;
    if (memcmp(file, "GGUF", 4) != 0)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: not a GGUF file (magic bytes %02x %02x %02x %02x, expected "
                         "\"GGUF\")", g->path, file[0], file[1], file[2], file[3]);
    if ((st = rd(&c, 4, "the version", &version))) return st;
    if (version == 0x02000000u || version == 0x03000000u)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: big-endian GGUF files are not supported",
                         g->path);
    if (version != 2 && version != 3)
        return hk_errorf(version == 1 ? HK_ERR_UNSUPPORTED : HK_ERR_FORMAT,
                         "%s: GGUF version %llu (hookformer reads versions 2 and 3)", g->path,
                         (unsigned long long)version);
    g->version = (uint32_t)version;
    if ((st = rd(&c, 8, "the tensor count", &n_t)) || (st = rd(&c, 8, "the key count", &n_kv)))
        return st;
    /* smallest key/value: 8-byte length + 1 byte + 4-byte type + 1-byte value; smallest
     * tensor info: 8 + 1 + 4 + 8 + 4 + 8 */
    if (n_kv > c.left / 14 || n_t > c.left / 33)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: header claims %llu keys and %llu tensors, more than the %zu bytes "
                         "left can hold", g->path, (unsigned long long)n_kv,
                         (unsigned long long)n_t, c.left);
    g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kv);
    g->t = calloc(n_t ? (size_t)n_t : 1, sizeof *g->t);
    if (!g->kv || !g->t) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", g->path);
    for (size_t i = 0; i < n_kv; i++) {
        char what[48];
        snprintf(what, sizeof what, "the key of entry %zu", i);
        g->n_kv = i + 1;
        if ((st = rd_name(&c, what, &g->kv[i].key)) || (st = rd_value(&c, &g->kv[i])))
            return st;
    }
    if ((st = check_unique(g->path, "key", &g->kv[0].key, sizeof *g->kv, g->n_kv)) ||
        (st = read_alignment(g)))
        return st;
    for (size_t i = 0; i < n_t; i++) {
        g->n_t = i + 1;
        if ((st = rd_tensor_info(&c, i, &g->t[i]))) return st;
    }
    if ((st = check_unique(g->path, "tensor", &g->t[0].name, sizeof *g->t, g->n_t))) return st;
    const size_t end = (size_t)(c.p - file);
    const size_t pad = (size_t)((g->alignment - end % g->alignment) % g->alignment);
    if (pad > SIZE_MAX - end) return hk_errorf(HK_ERR_FORMAT, "%s: bad alignment", g->path);
    g->data_offset = end + pad;
    return place_tensors(g, file, size);
}

hk_status hk_gguf_parse(const char *path, const uint8_t *file, size_t size, hk_gguf **out) {
    if (!out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_gguf_parse: NULL argument");
    *out = NULL;
    if (!path) path = "(gguf)";
    if (!file && size) return hk_errorf(HK_ERR_INVALID_ARG, "hk_gguf_parse: NULL file image");
    hk_gguf *g = calloc(1, sizeof *g);
    if (!g) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", path);
    g->path = path;
    hk_status st = parse(g, file ? file : (const uint8_t *)"", size);
    if (st) {
        hk_gguf_free(g);
        return st;
    }
    *out = g;
    return HK_OK;
}

void hk_gguf_free(hk_gguf *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].strs);
    }
    for (size_t i = 0; i < g->n_t; i++) free(g->t[i].name);
    free(g->kv);
    free(g->t);
    free(g);
}

const hk_gguf_kv *hk_gguf_find(const hk_gguf *g, const char *key) {
    if (!g || !key) return NULL;
    for (size_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

static bool is_int(hk_gguf_vtype t) {
    return t <= HK_GGUF_I32 || t == HK_GGUF_U64 || t == HK_GGUF_I64;
}

static int64_t int_at(hk_gguf_vtype t, const uint8_t *p) {
    const uint64_t v = le(p, vsize[t]);
    switch (t) {
    case HK_GGUF_I8: return (int8_t)v;
    case HK_GGUF_I16: return (int16_t)v;
    case HK_GGUF_I32: return (int32_t)v;
    case HK_GGUF_I64: return (int64_t)v;
    case HK_GGUF_U64: return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
    default: return (int64_t)v;
    }
}

static double num_at(hk_gguf_vtype t, const uint8_t *p) {
    if (t == HK_GGUF_F32) {
        const uint32_t v = (uint32_t)le(p, 4);
        float f;
        memcpy(&f, &v, 4);
        return f;
    }
    if (t == HK_GGUF_F64) {
        const uint64_t v = le(p, 8);
        double d;
        memcpy(&d, &v, 8);
        return d;
    }
    return (double)int_at(t, p);
}

int64_t hk_gguf_arr_int(const hk_gguf_kv *kv, uint64_t i) {
    if (!kv || i >= kv->n || kv->elem == HK_GGUF_STRING || kv->elem == HK_GGUF_ARRAY) return 0;
    return int_at(kv->elem, kv->data + i * vsize[kv->elem]);
}

double hk_gguf_arr_num(const hk_gguf_kv *kv, uint64_t i) {
    if (!kv || i >= kv->n || kv->elem == HK_GGUF_STRING || kv->elem == HK_GGUF_ARRAY) return 0;
    return num_at(kv->elem, kv->data + i * vsize[kv->elem]);
}

static hk_status lookup(const hk_gguf *g, const char *key, bool required, const char *want,
                        const hk_gguf_kv **kv) {
    *kv = hk_gguf_find(g, key);
    if (*kv || !required) return HK_OK;
    return hk_errorf(HK_ERR_NOT_FOUND, "%s: metadata key '%s' (%s) is missing", g->path, key,
                     want);
}

static hk_status wrong_type(const hk_gguf *g, const hk_gguf_kv *kv, const char *want) {
    return hk_errorf(HK_ERR_FORMAT, "%s: metadata key '%s' is %s, expected %s", g->path, kv->key,
                     kv->type == HK_GGUF_ARRAY ? "an array" : hk_gguf_vtype_name(kv->type),
                     want);
}

hk_status hk_gguf_get_int(const hk_gguf *g, const char *key, bool required, int64_t *out) {
    const hk_gguf_kv *kv;
    hk_status st = lookup(g, key, required, "an integer", &kv);
    if (st || !kv) return st;
    if (!is_int(kv->type)) return wrong_type(g, kv, "an integer");
    *out = int_at(kv->type, kv->data);
    return HK_OK;
}

hk_status hk_gguf_get_num(const hk_gguf *g, const char *key, bool required, double *out) {
    const hk_gguf_kv *kv;
    hk_status st = lookup(g, key, required, "a number", &kv);
    if (st || !kv) return st;
    if (!is_int(kv->type) && kv->type != HK_GGUF_F32 && kv->type != HK_GGUF_F64)
        return wrong_type(g, kv, "a number");
    *out = num_at(kv->type, kv->data);
    return HK_OK;
}

hk_status hk_gguf_get_bool(const hk_gguf *g, const char *key, bool required, bool *out) {
    const hk_gguf_kv *kv;
    hk_status st = lookup(g, key, required, "a bool", &kv);
    if (st || !kv) return st;
    if (kv->type != HK_GGUF_BOOL) return wrong_type(g, kv, "a bool");
    *out = *kv->data != 0;
    return HK_OK;
}

hk_status hk_gguf_get_str(const hk_gguf *g, const char *key, bool required, char *buf,
                          size_t cap) {
    const hk_gguf_kv *kv;
    hk_status st = lookup(g, key, required, "a string", &kv);
    if (st || !kv) return st;
    if (kv->type != HK_GGUF_STRING) return wrong_type(g, kv, "a string");
    if (kv->strs[0].len >= cap || memchr(kv->strs[0].p, 0, kv->strs[0].len))
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: metadata key '%s': string of %llu bytes (expected at most %zu, "
                         "no NUL)", g->path, key, (unsigned long long)kv->strs[0].len, cap - 1);
    memcpy(buf, kv->strs[0].p, kv->strs[0].len);
    buf[kv->strs[0].len] = '\0';
    return HK_OK;
}
