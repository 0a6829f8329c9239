/* tests/support/fixtures.h: paths, environment and ids (libc and cmocka only). */
#include "fixtures.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

const char *require_env(const char *name) {
    const char *v = getenv(name);
    if (!v) fail_msg("%s is not set (run through meson test)", name);
    return v;
}

const char *fixtures_root(void) {
    const char *d = getenv("HK_FIXTURES");
    return d ? d : "tests/fixtures";
}

void fixture_path(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", fixtures_root(), name);
}

int32_t *ids_from_i64(const void *data, int64_t n) {
    int32_t *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    assert_non_null(ids);
    for (int64_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const char *)data + i * 8, 8);
        ids[i] = (int32_t)v;
    }
    return ids;
}
