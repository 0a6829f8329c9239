/* The error for a hook name or glob that matches no point of a model, with the nearest names
 * ("did you mean blocks.3.hook_resid_post?"): the names at the least Levenshtein distance
 * (at most a third of the pattern's length, or 2), among the point names or, for a glob, their
 * layer-generic "blocks.*.<suffix>" forms; a layer past the last one is named as such, and a
 * bare block suffix ("hook_resid_post") is offered as "blocks.*.hook_resid_post". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "points.h"

#define MAX_NAME 128
#define MAX_SUGGEST 3

/* edit distance of a and b (each cut at MAX_NAME bytes) */
static size_t distance(const char *a, const char *b) {
    size_t n = strnlen(a, MAX_NAME), m = strnlen(b, MAX_NAME);
    size_t row[MAX_NAME + 1];
    for (size_t j = 0; j <= m; j++) row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            if (up + 1 < best) best = up + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m];
}

/* "blocks.12.attn.hook_q" -> "blocks.*.attn.hook_q"; other names as they are */
static void generic(const char *name, char *out, size_t cap) {
    const char *p = name + 7;
    if (strncmp(name, "blocks.", 7) == 0 && *p >= '0' && *p <= '9') {
        while (*p >= '0' && *p <= '9') p++;
        snprintf(out, cap, "blocks.*%s", p);
    } else {
        snprintf(out, cap, "%s", name);
    }
}

typedef struct {
    char name[MAX_NAME];
    size_t d;
} pick;

/* keep the MAX_SUGGEST nearest, nearest first (ties: the first offered) */
static void offer(pick *best, int *n, const char *name, size_t d) {
    for (int i = 0; i < *n; i++)
        if (strcmp(best[i].name, name) == 0) return;
    if (*n == MAX_SUGGEST && d >= best[MAX_SUGGEST - 1].d) return;
    int at = *n < MAX_SUGGEST ? (*n)++ : MAX_SUGGEST - 1;
    snprintf(best[at].name, MAX_NAME, "%s", name);
    best[at].d = d;
    for (int i = at; i > 0 && best[i].d < best[i - 1].d; i--) {
        pick t = best[i];
        best[i] = best[i - 1];
        best[i - 1] = t;
    }
}

hk_status hk_hook_not_found(const hk_points *pts, const char *family, const char *pattern,
                            const char *who) {
    const bool glob = strpbrk(pattern, "*?") != NULL;
    pick best[MAX_SUGGEST];
    memset(best, 0, sizeof best);
    int n = 0;
    char extra[160] = "";
    /* blocks.N.<rest> with N past the last layer, <rest> a real suffix */
    long layer;
    int used = 0;
    if (sscanf(pattern, "blocks.%ld.%n", &layer, &used) == 1 && used > 0 &&
        layer >= pts->n_layers && pts->n_layers > 0) {
        char first[MAX_NAME];
        snprintf(first, sizeof first, "blocks.0.%s", pattern + used);
        for (size_t p = 0; p < pts->n; p++)
            if (strcmp(pts->points[p].name, first) == 0) {
                snprintf(extra, sizeof extra, ": its layers are 0..%lld",
                         (long long)pts->n_layers - 1);
                break;
            }
    }
    const size_t len = strlen(pattern);
    const size_t limit = len / 3 > 2 ? len / 3 : 2;
    for (size_t p = 0; p < pts->n; p++) {
        const char *name = pts->points[p].name;
        char g[MAX_NAME];
        generic(name, g, sizeof g);
        const char *cand = glob ? g : name;
        /* a block suffix without "blocks.N." */
        size_t nl = strlen(name);
        if (nl > len && name[nl - len - 1] == '.' && strcmp(name + nl - len, pattern) == 0 &&
            strcmp(g, name) != 0)
            offer(best, &n, g, 0);
        size_t d = distance(pattern, cand);
        if (d <= limit) offer(best, &n, cand, d);
    }
    while (n > 1 && best[n - 1].d > best[0].d) n--; /* the nearest only */
    char hint[3 * MAX_NAME + 40] = "";
    if (n > 0 && !extra[0]) {
        size_t k = (size_t)snprintf(hint, sizeof hint, ": did you mean ");
        for (int i = 0; i < n && k < sizeof hint; i++)
            k += (size_t)snprintf(hint + k, sizeof hint - k, "%s%s", i == 0 ? "" :
                                  i + 1 == n ? " or " : ", ", best[i].name);
        if (k < sizeof hint) snprintf(hint + k, sizeof hint - k, "?");
    }
    return hk_errorf(HK_ERR_NOT_FOUND,
                     "%s%shook '%s' matches no hook point of this %s model (%lld layers)%s%s "
                     "(`hookformer hooks --model DIR` lists them)",
                     who ? who : "", who ? ": " : "", pattern, family,
                     (long long)pts->n_layers, extra, hint);
}
