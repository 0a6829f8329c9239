#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define HK_ERR_CAP 1024

static _Thread_local char last_error[HK_ERR_CAP];

hk_status hk_errorf(hk_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

hk_status hk_error_prefix(hk_status s, const char *fmt, ...) {
    char prefix[HK_ERR_CAP / 2];
    char old[HK_ERR_CAP / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    snprintf(last_error, sizeof last_error, "%.*s: %.*s", HK_ERR_CAP / 2 - 2, prefix,
             HK_ERR_CAP / 2 - 1, old);
    return s;
}

void hk_error_clear(void) { last_error[0] = '\0'; }

const char *hk_last_error(void) { return last_error; }

const char *hk_status_name(hk_status s) {
    switch (s) {
    case HK_OK: return "HK_OK";
    case HK_ERR_INVALID_ARG: return "HK_ERR_INVALID_ARG";
    case HK_ERR_IO: return "HK_ERR_IO";
    case HK_ERR_FORMAT: return "HK_ERR_FORMAT";
    case HK_ERR_UNSUPPORTED: return "HK_ERR_UNSUPPORTED";
    case HK_ERR_SHAPE: return "HK_ERR_SHAPE";
    case HK_ERR_NOT_FOUND: return "HK_ERR_NOT_FOUND";
    case HK_ERR_NOMEM: return "HK_ERR_NOMEM";
    case HK_ERR_INTERNAL: return "HK_ERR_INTERNAL";
    case HK_ERR_HOOK: return "HK_ERR_HOOK";
    case HK_STOPPED: return "HK_STOPPED";
    }
    return "HK_ERR_UNKNOWN";
}
