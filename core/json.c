/* cJSON helpers: every error names the file, the field, what was expected and what was found. */
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#define HK_JSON_MAX_EXACT 9007199254740992.0 /* 2^53: larger integers are not exact doubles */

static const char *P(const char *path) { return path ? path : "<json>"; }

/* ---- parsing ------------------------------------------------------------ */

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* text[from, to) for a message, at most `max` characters (newlines as \n, tabs as \t, other
 * control bytes as ?); cut at the side away from the error: cut_left keeps the end. */
static void excerpt(const char *text, size_t from, size_t to, size_t max, bool cut_left,
                    char *buf, size_t cap) {
    if (to - from > max) {
        if (cut_left) from = to - max;
        else to = from + max;
    }
    size_t k = 0;
    for (size_t i = from; i < to && k + 3 < cap; i++) {
        const unsigned char ch = (unsigned char)text[i];
        if (ch == '\n' || ch == '\t') {
            buf[k++] = '\\';
            buf[k++] = ch == '\n' ? 'n' : 't';
        } else {
            buf[k++] = ch >= 0x20 && ch != 0x7f ? (char)ch : '?';
        }
    }
    buf[k] = '\0';
}

/* "line L, column C (byte offset O), after '...' at '...'" for byte offset off of
 * text[0, len): the text before the error and from it on; "at the end of the input" when only
 * whitespace is left (a file cut short). */
static void describe_offset(const char *text, size_t len, size_t off, char *buf, size_t cap) {
    size_t line = 1, col = 1;
    if (off > len) off = len;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    size_t rest = off;
    while (rest < len && is_ws(text[rest])) rest++;
    char before[96], at[64];
    excerpt(text, 0, off, 24, true, before, sizeof before);
    excerpt(text, off, len, 16, false, at, sizeof at);
    if (rest >= len || text[rest] == '\0')
        snprintf(buf, cap, "line %zu, column %zu (byte offset %zu), at the end of the input "
                           "(after '%s'): the text is cut short",
                 line, col, off, before);
    else
        snprintf(buf, cap, "line %zu, column %zu (byte offset %zu), after '%s' at '%s'", line,
                 col, off, before, at);
}

hk_status hk_json_parse(const char *path, const char *text, size_t len, cJSON **out) {
    if (!out || (!text && len)) return hk_errorf(HK_ERR_INVALID_ARG, "hk_json_parse: NULL argument");
    *out = NULL;
    size_t first = 0;
    while (first < len && is_ws(text[first])) first++;
    if (first == len || text[first] == '\0')
        return hk_errorf(HK_ERR_FORMAT, "%s: invalid JSON: empty input (no value)", P(path));

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    char where[256];
    if (!root) {
        size_t off = (end && end >= text && end <= text + len) ? (size_t)(end - text) : len;
        describe_offset(text, len, off, where, sizeof where);
        return hk_errorf(HK_ERR_FORMAT, "%s: invalid JSON at %s", P(path), where);
    }
    /* Only whitespace may follow the value (a NUL ends the text, as C strings do). */
    size_t off = (size_t)(end - text);
    while (off < len && is_ws(text[off])) off++;
    if (off < len && text[off] != '\0') {
        cJSON_Delete(root);
        describe_offset(text, len, off, where, sizeof where);
        return hk_errorf(HK_ERR_FORMAT, "%s: invalid JSON: unexpected data after the value at %s",
                         P(path), where);
    }
    *out = root;
    return HK_OK;
}

/* Reads a whole file into a malloc'd buffer. */
static hk_status read_file(const char *path, char **out, size_t *out_len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const hk_status s = errno == ENOENT ? HK_ERR_NOT_FOUND : HK_ERR_IO;
        return hk_errorf(s, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        const int e = errno;
        close(fd);
        return hk_errorf(HK_ERR_IO, "%s: not a regular file%s%s", path, e ? ": " : "",
                         e ? strerror(e) : "");
    }
    const size_t size = (size_t)sb.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return hk_errorf(HK_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size + 1);
    }
    size_t got = 0;
    while (got < size) {
        const ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            const int e = errno;
            free(buf);
            close(fd);
            return hk_errorf(HK_ERR_IO, "%s: read failed after %zu of %zu bytes: %s", path, got,
                             size, r == 0 ? "unexpected end of file" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    *out = buf;
    *out_len = size;
    return HK_OK;
}

hk_status hk_json_load_file(const char *path, cJSON **out) {
    if (!path || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_json_load_file: NULL argument");
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    hk_status st = read_file(path, &text, &len);
    if (st) return st;
    st = hk_json_parse(path, text, len, out);
    free(text);
    return st;
}

/* ---- typed access ------------------------------------------------------- */

const char *hk_json_describe(const cJSON *v, char *buf, size_t cap) {
    if (!buf || cap == 0) return "";
    if (!v || cJSON_IsInvalid(v)) {
        snprintf(buf, cap, "nothing");
    } else if (cJSON_IsNull(v)) {
        snprintf(buf, cap, "null");
    } else if (cJSON_IsBool(v)) {
        snprintf(buf, cap, "a boolean (%s)", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNumber(v)) {
        snprintf(buf, cap, "a number (%.15g)", v->valuedouble);
    } else if (cJSON_IsString(v)) {
        /* Quote at most 40 bytes, printable ASCII only. */
        char q[48];
        size_t k = 0;
        const char *s = v->valuestring ? v->valuestring : "";
        for (; s[k] && k < 40; k++) q[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
        q[k] = '\0';
        snprintf(buf, cap, "a string (\"%s\"%s)", q, s[k] ? "..." : "");
    } else if (cJSON_IsArray(v)) {
        snprintf(buf, cap, "an array of %d entries", cJSON_GetArraySize(v));
    } else if (cJSON_IsObject(v)) {
        snprintf(buf, cap, "an object");
    } else {
        snprintf(buf, cap, "a raw value");
    }
    return buf;
}

static hk_status wrong_type(const cJSON *v, const char *what, const char *path,
                            const char *expected) {
    char found[96];
    return hk_errorf(HK_ERR_FORMAT, "%s: %s must be %s, found %s", P(path), what, expected,
                     hk_json_describe(v, found, sizeof found));
}

hk_status hk_json_as_num(const cJSON *v, const char *what, const char *path, double *out) {
    if (!cJSON_IsNumber(v)) return wrong_type(v, what, path, "a number");
    /* cJSON turns 1e999 into inf: reject it rather than compute with it. */
    if (!isfinite(v->valuedouble)) return wrong_type(v, what, path, "a finite number");
    *out = v->valuedouble;
    return HK_OK;
}

hk_status hk_json_as_int(const cJSON *v, const char *what, const char *path, int64_t *out) {
    if (!cJSON_IsNumber(v)) return wrong_type(v, what, path, "an integer");
    const double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d)) return wrong_type(v, what, path, "an integer");
    if (fabs(d) > HK_JSON_MAX_EXACT)
        return wrong_type(v, what, path, "an integer within +-2^53");
    *out = (int64_t)d;
    return HK_OK;
}

/* Looks up obj[key]. *item is NULL (and HK_OK returned) when the key is absent. */
static hk_status lookup(const cJSON *obj, const char *key, const char *path, const cJSON **item) {
    *item = NULL;
    if (!obj || !key) return hk_errorf(HK_ERR_INVALID_ARG, "%s: JSON lookup with a NULL argument", P(path));
    if (!cJSON_IsObject(obj)) {
        char found[96];
        return hk_errorf(HK_ERR_FORMAT, "%s: expected a JSON object holding '%s', found %s",
                         P(path), key, hk_json_describe(obj, found, sizeof found));
    }
    *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return HK_OK;
}

/* Required field: absent -> NOT_FOUND naming what was expected. */
static hk_status require(const cJSON *obj, const char *key, const char *path, const char *expected,
                         const cJSON **item) {
    hk_status st = lookup(obj, key, path, item);
    if (st) return st;
    if (!*item)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: field '%s' is missing (expected %s)", P(path), key,
                         expected);
    return HK_OK;
}

/* Optional field: absent or null -> *item = NULL. */
static hk_status optional(const cJSON *obj, const char *key, const char *path, const cJSON **item) {
    hk_status st = lookup(obj, key, path, item);
    if (!st && *item && cJSON_IsNull(*item)) *item = NULL;
    return st;
}

#define FIELD_WHAT(buf, key) (snprintf(buf, sizeof buf, "field '%s'", key), buf)

hk_status hk_json_int(const cJSON *obj, const char *key, const char *path, int64_t *out) {
    const cJSON *it;
    char what[160];
    hk_status st = require(obj, key, path, "an integer", &it);
    return st ? st : hk_json_as_int(it, FIELD_WHAT(what, key), path, out);
}

hk_status hk_json_num(const cJSON *obj, const char *key, const char *path, double *out) {
    const cJSON *it;
    char what[160];
    hk_status st = require(obj, key, path, "a number", &it);
    return st ? st : hk_json_as_num(it, FIELD_WHAT(what, key), path, out);
}

static hk_status copy_str(const cJSON *it, const char *key, const char *path, char *buf,
                          size_t cap) {
    char what[160];
    if (!cJSON_IsString(it) || !it->valuestring)
        return wrong_type(it, FIELD_WHAT(what, key), path, "a string");
    const size_t n = strlen(it->valuestring);
    if (n >= cap)
        return hk_errorf(HK_ERR_FORMAT, "%s: field '%s' is too long (%zu bytes, at most %zu)",
                         P(path), key, n, cap - 1);
    memcpy(buf, it->valuestring, n + 1);
    return HK_OK;
}

hk_status hk_json_str(const cJSON *obj, const char *key, const char *path, char *buf,
                      size_t cap) {
    if (!buf || cap == 0) return hk_errorf(HK_ERR_INVALID_ARG, "hk_json_str: no buffer");
    const cJSON *it;
    hk_status st = require(obj, key, path, "a string", &it);
    return st ? st : copy_str(it, key, path, buf, cap);
}

/* The optional readers store the default first, so an absent (or null) field returns at once. */
hk_status hk_json_int_opt(const cJSON *obj, const char *key, const char *path, int64_t dflt,
                          int64_t *out) {
    const cJSON *it;
    char what[160];
    *out = dflt;
    hk_status st = optional(obj, key, path, &it);
    return st || !it ? st : hk_json_as_int(it, FIELD_WHAT(what, key), path, out);
}

hk_status hk_json_num_opt(const cJSON *obj, const char *key, const char *path, double dflt,
                          double *out) {
    const cJSON *it;
    char what[160];
    *out = dflt;
    hk_status st = optional(obj, key, path, &it);
    return st || !it ? st : hk_json_as_num(it, FIELD_WHAT(what, key), path, out);
}

hk_status hk_json_bool_opt(const cJSON *obj, const char *key, const char *path, bool dflt,
                           bool *out) {
    const cJSON *it;
    char what[160];
    *out = dflt;
    hk_status st = optional(obj, key, path, &it);
    if (st || !it) return st;
    if (!cJSON_IsBool(it))
        return wrong_type(it, FIELD_WHAT(what, key), path, "a boolean (true or false)");
    *out = cJSON_IsTrue(it);
    return HK_OK;
}

hk_status hk_json_str_opt(const cJSON *obj, const char *key, const char *path, const char *dflt,
                          char *buf, size_t cap) {
    if (!buf || cap == 0) return hk_errorf(HK_ERR_INVALID_ARG, "hk_json_str_opt: no buffer");
    const cJSON *it;
    hk_status st = optional(obj, key, path, &it);
    if (st) return st;
    if (it) return copy_str(it, key, path, buf, cap);
    if (!dflt) dflt = "";
    if (strlen(dflt) >= cap)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: default for '%s' does not fit in %zu bytes",
                         P(path), key, cap);
    memcpy(buf, dflt, strlen(dflt) + 1);
    return HK_OK;
}

/* Shared body of the array readers: checks the array and its size, then each element. */
static hk_status get_array(const cJSON *obj, const char *key, const char *path,
                           const char *expected, size_t cap, const cJSON **arr, size_t *n) {
    char what[160];
    hk_status st = require(obj, key, path, expected, arr);
    if (st) return st;
    if (!cJSON_IsArray(*arr)) return wrong_type(*arr, FIELD_WHAT(what, key), path, expected);
    const int size = cJSON_GetArraySize(*arr);
    if (size < 0 || (size_t)size > cap)
        return hk_errorf(HK_ERR_FORMAT, "%s: field '%s' has %d entries, at most %zu expected",
                         P(path), key, size, cap);
    *n = (size_t)size;
    return HK_OK;
}

hk_status hk_json_int_array(const cJSON *obj, const char *key, const char *path, int64_t *out,
                            size_t cap, size_t *n) {
    const cJSON *arr;
    size_t count;
    hk_status st = get_array(obj, key, path, "an array of integers", cap, &arr, &count);
    if (st) return st;
    size_t i = 0;
    for (const cJSON *e = arr->child; e && i < count; e = e->next, i++) {
        char what[192];
        snprintf(what, sizeof what, "field '%s' element %zu", key, i);
        if ((st = hk_json_as_int(e, what, path, &out[i]))) return st;
    }
    *n = count;
    return HK_OK;
}

hk_status hk_json_num_array(const cJSON *obj, const char *key, const char *path, double *out,
                            size_t cap, size_t *n) {
    const cJSON *arr;
    size_t count;
    hk_status st = get_array(obj, key, path, "an array of numbers", cap, &arr, &count);
    if (st) return st;
    size_t i = 0;
    for (const cJSON *e = arr->child; e && i < count; e = e->next, i++) {
        char what[192];
        snprintf(what, sizeof what, "field '%s' element %zu", key, i);
        if ((st = hk_json_as_num(e, what, path, &out[i]))) return st;
    }
    *n = count;
    return HK_OK;
}
