/* Safetensors header parsing: validates everything against the file image before any pointer
 * into it is handed out.
 *
 * Layout: u64 little-endian header length N | N bytes of JSON | data area.
 * Header: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *          "__metadata__": {str: str}}; offsets are relative to the data area (byte 8 + N). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "dtype.h"
#include "error.h"
#include "json.h"

#define HK_ST_MAX_HEADER ((uint64_t)100 << 20) /* real headers are well under 10 MB */

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* "[2, 3, 4]" */
static void format_shape(const int64_t *shape, int ndim, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* A missing field inside a header entry is a malformed file, not a missing thing. */
static hk_status as_format(hk_status st) { return st == HK_ERR_NOT_FOUND ? HK_ERR_FORMAT : st; }

static hk_status parse_dtype(const cJSON *e, const char *label, hk_dtype *dt) {
    char name[64];
    hk_status st = hk_json_str(e, "dtype", label, name, sizeof name);
    if (st) return as_format(st);
    if (!hk_dtype_from_name(name, dt))
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: dtype '%s' is not supported (hookformer reads F32, F16, BF16, I32, "
                         "I64 and U8)", label, name);
    return HK_OK;
}

static hk_status parse_shape(const cJSON *e, const char *label, hk_st_tensor *t) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (cJSON_IsArray(arr) && cJSON_GetArraySize(arr) > HK_ST_MAX_DIMS)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: shape has %d dims, at most %d are supported",
                         label, cJSON_GetArraySize(arr), HK_ST_MAX_DIMS);
    size_t nd = 0;
    hk_status st = hk_json_int_array(e, "shape", label, t->shape, HK_ST_MAX_DIMS, &nd);
    if (st) return as_format(st);
    t->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++)
        if (t->shape[i] < 0)
            return hk_errorf(HK_ERR_FORMAT, "%s: shape[%zu] = %lld is negative", label, i,
                             (long long)t->shape[i]);
    return HK_OK;
}

static hk_status parse_offsets(const cJSON *e, const char *label, uint64_t data_size,
                               uint64_t *begin, uint64_t *end) {
    int64_t off[2];
    size_t n = 0;
    hk_status st = hk_json_int_array(e, "data_offsets", label, off, 2, &n);
    if (st) return as_format(st);
    if (n != 2)
        return hk_errorf(HK_ERR_FORMAT, "%s: data_offsets must be [begin, end], found %zu entries",
                         label, n);
    if (off[0] < 0 || off[1] < 0)
        return hk_errorf(HK_ERR_FORMAT, "%s: data_offsets [%lld, %lld] are negative", label,
                         (long long)off[0], (long long)off[1]);
    if (off[0] > off[1])
        return hk_errorf(HK_ERR_FORMAT, "%s: data_offsets [%lld, %lld] have begin > end", label,
                         (long long)off[0], (long long)off[1]);
    if ((uint64_t)off[1] > data_size)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: data_offsets [%lld, %lld] reach beyond the data area (%llu bytes; "
                         "truncated file?)", label, (long long)off[0], (long long)off[1],
                         (unsigned long long)data_size);
    *begin = (uint64_t)off[0];
    *end = (uint64_t)off[1];
    return HK_OK;
}

/* Byte size of shape x dtype; false on overflow. */
static bool shape_bytes(const hk_st_tensor *t, uint64_t *out) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0) {
            *out = 0;
            return true;
        }
    for (int i = 0; i < t->ndim; i++) {
        const uint64_t d = (uint64_t)t->shape[i];
        if (n > UINT64_MAX / d) return false;
        n *= d;
    }
    const uint64_t es = hk_dtype_size(t->dtype);
    if (n > UINT64_MAX / es || n * es > SIZE_MAX) return false;
    *out = n * es;
    return true;
}

/* Fills t (but not t->name) from one header entry. */
static hk_status parse_entry(const char *path, const cJSON *e, const uint8_t *data,
                             uint64_t data_size, hk_st_tensor *t) {
    char label[512];
    snprintf(label, sizeof label, "%s: tensor '%s'", path, e->string);
    if (!cJSON_IsObject(e)) {
        char found[96];
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: entry must be an object with dtype, shape and data_offsets, "
                         "found %s", label, hk_json_describe(e, found, sizeof found));
    }
    uint64_t begin = 0, end = 0, nbytes = 0;
    hk_status st;
    if ((st = parse_dtype(e, label, &t->dtype)) || (st = parse_shape(e, label, t)) ||
        (st = parse_offsets(e, label, data_size, &begin, &end)))
        return st;
    char shp[160];
    format_shape(t->shape, t->ndim, shp, sizeof shp);
    if (!shape_bytes(t, &nbytes))
        return hk_errorf(HK_ERR_FORMAT, "%s: shape %s x %s overflows 64-bit byte counts", label,
                         shp, hk_dtype_name(t->dtype));
    if (nbytes != end - begin)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: shape %s x %s is %llu bytes but data_offsets [%llu, %llu] span %llu",
                         label, shp, hk_dtype_name(t->dtype), (unsigned long long)nbytes,
                         (unsigned long long)begin, (unsigned long long)end,
                         (unsigned long long)(end - begin));
    t->data = data + begin;
    t->nbytes = (size_t)nbytes;
    return HK_OK;
}

static hk_status check_metadata(const char *path, const cJSON *m) {
    char found[96];
    if (!cJSON_IsObject(m))
        return hk_errorf(HK_ERR_FORMAT, "%s: __metadata__ must be an object of strings, found %s",
                         path, hk_json_describe(m, found, sizeof found));
    for (const cJSON *e = m->child; e; e = e->next)
        if (!cJSON_IsString(e))
            return hk_errorf(HK_ERR_FORMAT, "%s: __metadata__ field '%s' must be a string, found %s",
                             path, e->string ? e->string : "?",
                             hk_json_describe(e, found, sizeof found));
    return HK_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const hk_st_tensor *)a)->name, ((const hk_st_tensor *)b)->name);
}

typedef struct {
    uint64_t begin, end;
    size_t i;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* No two non-empty tensors may share a byte. */
static hk_status check_overlap(const char *path, const hk_st_tensor *t, size_t n,
                               const uint8_t *data) {
    if (n < 2) return HK_OK;
    span *s = malloc(n * sizeof *s);
    if (!s) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        s[i].begin = (uint64_t)((const uint8_t *)t[i].data - data);
        s[i].end = s[i].begin + t[i].nbytes;
        s[i].i = i;
    }
    qsort(s, n, sizeof *s, cmp_span);
    hk_status st = HK_OK;
    size_t last = n; /* index into s of the non-empty span reaching furthest so far */
    for (size_t k = 0; k < n && !st; k++) {
        if (s[k].begin == s[k].end) continue;
        if (last < n && s[k].begin < s[last].end)
            st = hk_errorf(HK_ERR_FORMAT,
                           "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", path,
                           t[s[last].i].name, (unsigned long long)s[last].begin,
                           (unsigned long long)s[last].end, t[s[k].i].name,
                           (unsigned long long)s[k].begin, (unsigned long long)s[k].end);
        if (last == n || s[k].end > s[last].end) last = k;
    }
    free(s);
    return st;
}

static hk_status check_duplicates(const char *path, const hk_st_tensor *t, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (strcmp(t[i - 1].name, t[i].name) == 0)
            return hk_errorf(HK_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path,
                             t[i].name);
    return HK_OK;
}

/* Parses the JSON header text (copied so cJSON always sees a NUL-terminated buffer). */
static hk_status parse_header_json(const char *path, const uint8_t *hdr, size_t len,
                                   cJSON **root) {
    char *text = malloc(len + 1);
    if (!text) return hk_errorf(HK_ERR_NOMEM, "%s: cannot allocate the %zu-byte header", path, len);
    memcpy(text, hdr, len);
    text[len] = '\0';
    char label[512];
    snprintf(label, sizeof label, "%s: safetensors header", path);
    hk_status st = hk_json_parse(label, text, len, root);
    free(text);
    if (st) return st;
    if (!cJSON_IsObject(*root)) {
        char found[96];
        st = hk_errorf(HK_ERR_FORMAT, "%s: safetensors header must be a JSON object, found %s",
                       path, hk_json_describe(*root, found, sizeof found));
        cJSON_Delete(*root);
        *root = NULL;
    }
    return st;
}

hk_status hk_st_parse(const char *path, const uint8_t *file, size_t size, hk_st_tensor **out,
                      size_t *n) {
    if (!out || !n || (!file && size))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_st_parse: NULL argument");
    if (!path) path = "<safetensors>";
    *out = NULL;
    *n = 0;
    if (size < 8)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: file is %zu bytes, too short for the 8-byte safetensors header "
                         "length", path, size);
    const uint64_t hlen = read_le64(file);
    if (hlen > HK_ST_MAX_HEADER)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: header length %llu is implausibly large (> 100 MB); not a "
                         "safetensors file?", path, (unsigned long long)hlen);
    if (hlen > size - 8)
        return hk_errorf(HK_ERR_FORMAT,
                         "%s: header length %llu runs past the end of the file (%zu bytes); "
                         "truncated file?", path, (unsigned long long)hlen, size);

    cJSON *root = NULL;
    hk_status st = parse_header_json(path, file + 8, (size_t)hlen, &root);
    if (st) return st;

    const uint8_t *data = file + 8 + hlen;
    const uint64_t data_size = size - 8 - hlen;
    size_t cap = 0;
    for (const cJSON *e = root->child; e; e = e->next) cap++;
    hk_st_tensor *t = calloc(cap ? cap : 1, sizeof *t);
    if (!t) {
        cJSON_Delete(root);
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory for %zu tensors", path, cap);
    }
    size_t count = 0;
    for (const cJSON *e = root->child; e && !st; e = e->next) {
        if (!e->string) {
            st = hk_errorf(HK_ERR_FORMAT, "%s: header entry without a name", path);
        } else if (strcmp(e->string, "__metadata__") == 0) {
            st = check_metadata(path, e);
        } else {
            hk_st_tensor *ti = &t[count];
            st = parse_entry(path, e, data, data_size, ti);
            if (!st && !(ti->name = strdup(e->string)))
                st = hk_errorf(HK_ERR_NOMEM, "%s: out of memory", path);
            if (!st) {
                ti->path = path;
                count++;
            }
        }
    }
    cJSON_Delete(root);
    if (!st) st = check_overlap(path, t, count, data);
    if (!st) {
        qsort(t, count, sizeof *t, cmp_name);
        st = check_duplicates(path, t, count);
    }
    if (st) {
        hk_st_tensors_free(t, count);
        return st;
    }
    *out = t;
    *n = count;
    return HK_OK;
}

void hk_st_tensors_free(hk_st_tensor *t, size_t n) {
    if (!t) return;
    for (size_t i = 0; i < n; i++) free(t[i].name);
    free(t);
}
