/* GGUF files (versions 2 and 3, little-endian): header, metadata key/values of every type
 * (arrays included), tensor infos, alignment and data offset — validated against the file
 * image before anything points into it. */
#ifndef HK_CORE_GGUF_H
#define HK_CORE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hookformer.h"

typedef enum {
    HK_GGUF_U8 = 0, HK_GGUF_I8, HK_GGUF_U16, HK_GGUF_I16, HK_GGUF_U32, HK_GGUF_I32,
    HK_GGUF_F32, HK_GGUF_BOOL, HK_GGUF_STRING, HK_GGUF_ARRAY, HK_GGUF_U64, HK_GGUF_I64,
    HK_GGUF_F64
} hk_gguf_vtype;

#define HK_GGUF_MAX_DIMS 4

/* A string inside the file image: not NUL-terminated, may hold any bytes. */
typedef struct {
    const char *p;
    uint64_t len;
} hk_gguf_str;

typedef struct {
    char *key;              /* NUL-terminated copy */
    hk_gguf_vtype type;
    hk_gguf_vtype elem;     /* arrays: element type (never ARRAY: nested arrays are refused) */
    uint64_t n;             /* arrays: element count; scalars: 1 */
    const uint8_t *data;    /* scalars: the value; numeric arrays: the first element */
    hk_gguf_str *strs;      /* string arrays: [n] (malloc'd); a STRING scalar: [1] */
} hk_gguf_kv;

typedef struct {
    char *name;             /* NUL-terminated copy */
    uint32_t type;          /* ggml type (core/quant.h) */
    int ndim;
    int64_t ne[HK_GGUF_MAX_DIMS]; /* innermost first: ne[0] is the row length */
    uint64_t offset;        /* from the start of the data area */
    const uint8_t *data;    /* inside the image */
    size_t nbytes;
} hk_gguf_tensor;

typedef struct {
    const char *path;       /* not owned */
    uint32_t version;
    uint64_t alignment;     /* general.alignment, default 32 */
    size_t data_offset;     /* start of the data area in the file */
    hk_gguf_kv *kv;         /* [n_kv] in file order */
    size_t n_kv;
    hk_gguf_tensor *t;      /* [n_t] in file order */
    size_t n_t;
} hk_gguf;

/* Parse a GGUF image of `size` bytes. Checks magic, version, every length and count against
 * the bytes left, value types, duplicate keys and tensor names, dims (1..4, non-negative,
 * product within int64), tensor types (known layout, rows a whole number of blocks),
 * alignment (a power of two), each offset aligned and its data inside the file, tensors not
 * overlapping. Never reads outside [file, file + size). Errors name `path` and the key or
 * tensor: HK_ERR_FORMAT for defects, HK_ERR_UNSUPPORTED for big-endian files, other versions
 * and unknown tensor types. *out is NULL on error. */
hk_status hk_gguf_parse(const char *path, const uint8_t *file, size_t size, hk_gguf **out);
void hk_gguf_free(hk_gguf *g);

const hk_gguf_kv *hk_gguf_find(const hk_gguf *g, const char *key); /* NULL if absent */

/* Typed getters. A missing key gives HK_ERR_NOT_FOUND when `required`, else HK_OK with *out
 * left as it was (so callers preset defaults); a value of another type is HK_ERR_FORMAT. */
hk_status hk_gguf_get_int(const hk_gguf *g, const char *key, bool required, int64_t *out);
hk_status hk_gguf_get_num(const hk_gguf *g, const char *key, bool required, double *out);
hk_status hk_gguf_get_bool(const hk_gguf *g, const char *key, bool required, bool *out);
/* Copies a STRING value into buf (NUL-terminated); too long is HK_ERR_FORMAT. */
hk_status hk_gguf_get_str(const hk_gguf *g, const char *key, bool required, char *buf,
                          size_t cap);
/* Element i of an integer (or bool) array, as int64 (u64 above INT64_MAX clamps). */
int64_t hk_gguf_arr_int(const hk_gguf_kv *kv, uint64_t i);
/* Element i of a float array. */
double hk_gguf_arr_num(const hk_gguf_kv *kv, uint64_t i);

const char *hk_gguf_vtype_name(hk_gguf_vtype t);

#endif
