#include "st_modules.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/json.h"

/* The folder holding the model's files: src itself, or the folder of a file. */
static void model_dir(const char *src, char *out, size_t cap) {
    struct stat sb;
    if (stat(src, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(out, cap, "%s", src);
        return;
    }
    const char *slash = strrchr(src, '/');
    snprintf(out, cap, "%.*s", slash ? (int)(slash - src) : 1, slash ? src : ".");
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* 1_Pooling/config.json: exactly one pooling_mode_* flag set. */
static hk_status read_pooling(const char *path, hk_pooling *out) {
    static const struct {
        const char *key;
        hk_pooling mode;
    } modes[] = {
        {"pooling_mode_cls_token", HK_POOL_CLS},
        {"pooling_mode_mean_tokens", HK_POOL_MEAN},
        {"pooling_mode_max_tokens", HK_POOL_MAX},
        {"pooling_mode_mean_sqrt_len_tokens", HK_POOL_MEAN_SQRT_LEN},
        {"pooling_mode_lasttoken", HK_POOL_LAST},
    };
    static const char *const unsupported[] = {"pooling_mode_weightedmean_tokens"};
    cJSON *json = NULL;
    hk_status st = hk_json_load_file(path, &json);
    if (st != HK_OK) return st;
    int n_set = 0;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0] && st == HK_OK; i++) {
        bool on;
        if ((st = hk_json_bool_opt(json, modes[i].key, path, false, &on)) == HK_OK && on) {
            *out = modes[i].mode;
            n_set++;
        }
    }
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0] && st == HK_OK; i++) {
        bool on;
        if ((st = hk_json_bool_opt(json, unsupported[i], path, false, &on)) == HK_OK && on)
            st = hk_errorf(HK_ERR_UNSUPPORTED, "%s: field '%s' is true; that pooling is not "
                                               "supported (cls, mean, max, mean_sqrt_len, "
                                               "lasttoken are)",
                           path, unsupported[i]);
    }
    cJSON_Delete(json);
    if (st != HK_OK) return st;
    if (n_set != 1)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: %d pooling_mode_* fields are true, expected exactly one", path,
                         n_set);
    return HK_OK;
}

hk_status hk_st_modules_read(const char *src, hk_pooling *pooling, bool *normalize) {
    *pooling = HK_POOL_MEAN;
    *normalize = false;
    char dir[PATH_MAX], path[PATH_MAX + 64];
    model_dir(src, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/modules.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) return HK_OK; /* not a sentence-transformers folder */
    cJSON *json = NULL;
    hk_status st = hk_json_load_file(path, &json);
    if (st != HK_OK) return st;
    if (!cJSON_IsArray(json)) {
        cJSON_Delete(json);
        return hk_errorf(HK_ERR_FORMAT, "%s: expected an array of modules", path);
    }
    const cJSON *mod;
    int i = 0;
    cJSON_ArrayForEach(mod, json) {
        char type[128], sub[256], where[PATH_MAX + 96];
        snprintf(where, sizeof where, "%s: module %d", path, i++);
        if ((st = hk_json_str(mod, "type", where, type, sizeof type))) break;
        if (ends_with(type, ".Normalize")) *normalize = true;
        if (!ends_with(type, ".Pooling")) continue;
        if ((st = hk_json_str(mod, "path", where, sub, sizeof sub))) break;
        char cfg[PATH_MAX + 300];
        snprintf(cfg, sizeof cfg, "%s/%s/config.json", dir, sub);
        if ((st = read_pooling(cfg, pooling))) break;
    }
    cJSON_Delete(json);
    return st;
}
