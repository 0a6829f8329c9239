/* Position selections of cached/stored hooks: "all", "last", or a Python slice "A:B".
 * Shared by the in-memory cache (cache.c) and the HDF5 store (store_writer.c). */
#ifndef HK_HOOKS_POSITIONS_H
#define HK_HOOKS_POSITIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "hookformer.h"

typedef enum { HK_SEL_ALL = 0, HK_SEL_LAST, HK_SEL_RANGE } hk_sel_kind;

typedef struct {
    hk_sel_kind kind;
    bool has_start, has_stop; /* "A:B": an omitted side is the start / end of the run */
    int64_t start, stop;
} hk_selection;

/* Parse "all" (or NULL), "last", "A:B". `who` prefixes the error message. */
hk_status hk_selection_parse(const char *s, const char *who, hk_selection *out);

/* Python slice bounds [start, start + count) of a range selection over n positions. */
void hk_selection_range(const hk_selection *sel, int64_t n, int64_t *start, int64_t *count);

#endif
