/* Small cJSON helpers whose errors name the file and the field. */
#ifndef HK_CORE_JSON_H
#define HK_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "hookformer.h"

/* Read and parse a JSON file. Malformed JSON: HK_ERR_FORMAT with the byte offset/line. */
hk_status hk_json_load_file(const char *path, cJSON **out);
hk_status hk_json_parse(const char *path, const char *text, size_t len, cJSON **out);

/* Required fields: missing -> HK_ERR_NOT_FOUND, wrong type -> HK_ERR_FORMAT (names file+key). */
hk_status hk_json_int(const cJSON *obj, const char *key, const char *path, int64_t *out);
hk_status hk_json_num(const cJSON *obj, const char *key, const char *path, double *out);
hk_status hk_json_str(const cJSON *obj, const char *key, const char *path, char *buf,
                      size_t cap);
/* Optional fields: absent or JSON null -> dflt; present with a wrong type -> HK_ERR_FORMAT. */
hk_status hk_json_int_opt(const cJSON *obj, const char *key, const char *path, int64_t dflt,
                          int64_t *out);
hk_status hk_json_num_opt(const cJSON *obj, const char *key, const char *path, double dflt,
                          double *out);
hk_status hk_json_bool_opt(const cJSON *obj, const char *key, const char *path, bool dflt,
                           bool *out);
hk_status hk_json_str_opt(const cJSON *obj, const char *key, const char *path, const char *dflt,
                          char *buf, size_t cap);

/* Paths in messages: callers pass the file ("config.json"), or the file and an enclosing object
 * ("config.json: rope_scaling") so nested fields are named in full. Integers are JSON numbers
 * with no fractional part and |v| <= 2^53 (cJSON stores numbers as doubles). */

/* Describe a JSON value for "found ..." in messages: "a string (\"abc\")", "null",
 * "a number (3.5)", "an array", ... Writes into buf and returns it. */
const char *hk_json_describe(const cJSON *v, char *buf, size_t cap);

/* A value (an array element, say) as an integer / number; `what` names it in messages
 * ("field 'shape' element 2"). Wrong type or non-integral -> HK_ERR_FORMAT. */
hk_status hk_json_as_int(const cJSON *v, const char *what, const char *path, int64_t *out);
hk_status hk_json_as_num(const cJSON *v, const char *what, const char *path, double *out);

/* Required arrays of at most cap integers / numbers; *n receives the count. Missing ->
 * HK_ERR_NOT_FOUND; not an array, a bad element or more than cap entries -> HK_ERR_FORMAT. */
hk_status hk_json_int_array(const cJSON *obj, const char *key, const char *path, int64_t *out,
                            size_t cap, size_t *n);
hk_status hk_json_num_array(const cJSON *obj, const char *key, const char *path, double *out,
                            size_t cap, size_t *n);

#endif
