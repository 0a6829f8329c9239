/* Position selections: parsing "all" / "last" / "A:B" and resolving Python slice bounds. */
#include "positions.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static bool parse_int(const char *s, size_t len, int64_t *out) {
    if (len == 0 || len > 20) return false;
    char buf[24];
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0' || buf[0] == '+' || buf[0] == ' ') return false;
    *out = (int64_t)v;
    return true;
}

hk_status hk_selection_parse(const char *s, const char *who, hk_selection *out) {
    memset(out, 0, sizeof *out);
    if (!s || strcmp(s, "all") == 0) return HK_OK;
    if (strcmp(s, "last") == 0) {
        out->kind = HK_SEL_LAST;
        return HK_OK;
    }
    const char *colon = strchr(s, ':');
    if (colon && !strchr(colon + 1, ':')) {
        size_t la = (size_t)(colon - s), lb = strlen(colon + 1);
        out->kind = HK_SEL_RANGE;
        out->has_start = la > 0;
        out->has_stop = lb > 0;
        if ((la == 0 || parse_int(s, la, &out->start)) &&
            (lb == 0 || parse_int(colon + 1, lb, &out->stop)))
            return HK_OK;
    }
    return hk_errorf(HK_ERR_INVALID_ARG,
                     "%s: positions '%s': expected \"all\", \"last\" or \"A:B\" "
                     "(Python slice of positions, e.g. \"2:5\", \"-3:\", \":4\")",
                     who, s);
}

void hk_selection_range(const hk_selection *sel, int64_t n, int64_t *start, int64_t *count) {
    int64_t a = sel->has_start ? sel->start : 0, b = sel->has_stop ? sel->stop : n;
    if (a < 0) a += n;
    if (b < 0) b += n;
    a = a < 0 ? 0 : a > n ? n : a;
    b = b < 0 ? 0 : b > n ? n : b;
    *start = a;
    *count = b > a ? b - a : 0;
}
