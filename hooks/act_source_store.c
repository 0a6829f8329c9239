/* A patching source over an HDF5 activation store: get() reads one row of the stored point
 * (hk_store_read) into a scratch buffer sized for the largest row. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "hookformer.h"

typedef struct {
    hk_store *store;
    int64_t *seq_ids; /* [n_prompts] */
    int64_t n_prompts;
    float *row;       /* [cap] */
    int64_t cap;
} store_src;

static hk_status store_get(void *user, const char *name, int64_t prompt, int64_t pos, int64_t n,
                           const float **out) {
    store_src *ss = user;
    if (prompt < 0 || prompt >= ss->n_prompts)
        return hk_errorf(HK_ERR_INVALID_ARG, "store source: prompt %lld, the source maps %lld",
                         (long long)prompt, (long long)ss->n_prompts);
    int64_t elems = hk_store_row_elems(ss->store, name);
    if (elems <= 0)
        return hk_errorf(HK_ERR_NOT_FOUND, "store source: %s is not stored as token rows", name);
    if (elems != n)
        return hk_errorf(HK_ERR_SHAPE, "store source: %s rows hold %lld floats, the model's point "
                                       "%lld", name, (long long)elems, (long long)n);
    if (elems > ss->cap) {
        float *r = realloc(ss->row, (size_t)elems * sizeof *r);
        if (!r) return hk_errorf(HK_ERR_NOMEM, "store source: out of memory");
        ss->row = r;
        ss->cap = elems;
    }
    hk_status st = hk_store_read(ss->store, name, &ss->seq_ids[prompt], &pos, 1, ss->row);
    if (st != HK_OK) return st;
    *out = ss->row;
    return HK_OK;
}

hk_status hk_act_source_store(hk_store *s, const int64_t *seq_ids, int64_t n_prompts,
                              hk_act_source *out) {
    if (!s || !out || n_prompts < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_act_source_store: NULL store or out, or no "
                                             "prompts");
    store_src *ss = calloc(1, sizeof *ss);
    if (ss) ss->seq_ids = malloc((size_t)n_prompts * sizeof *ss->seq_ids);
    if (!ss || !ss->seq_ids) {
        free(ss);
        return hk_errorf(HK_ERR_NOMEM, "hk_act_source_store: out of memory");
    }
    for (int64_t i = 0; i < n_prompts; i++) ss->seq_ids[i] = seq_ids ? seq_ids[i] : i;
    ss->store = s;
    ss->n_prompts = n_prompts;
    *out = (hk_act_source){store_get, ss};
    return HK_OK;
}

void hk_act_source_store_free(hk_act_source *src) {
    if (!src || src->get != store_get) return;
    store_src *ss = src->user;
    free(ss->seq_ids);
    free(ss->row);
    free(ss);
    src->user = NULL;
}
