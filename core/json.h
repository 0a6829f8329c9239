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

#endif
