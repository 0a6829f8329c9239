/* Session lifetime: KV caches sized by the run (max_len), rolling buffers of W slots for
 * sliding-window layers. The feeding itself lives with the forward (core/forward.c). */
#include "session.h"

#include <stdlib.h>

#include "backend.h"
#include "error.h"
#include "model.h"

hk_status hk_session_new(hk_model *m, int64_t batch, int64_t max_len, hk_session **out) {
    if (!m || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_session_new: NULL argument");
    *out = NULL;
    if (batch <= 0 || max_len <= 0)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_session_new: batch (%lld) and max_len (%lld) must be positive",
                         (long long)batch, (long long)max_len);
    const hk_config *c = &m->cfg;
    if (c->pos == HK_POS_LEARNED && max_len > m->w.n_pos)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_session_new: max_len %lld exceeds the %lld learned positions of "
                         "this model",
                         (long long)max_len, (long long)m->w.n_pos);
    bool causal = m->has_mask && m->mask.causal >= 0 ? m->mask.causal == 1 : c->causal;
    if (!causal)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "hk_session_new: a KV cache needs causal attention; this model's mask "
                         "is bidirectional (run the whole input with hk_model_run)");
    hk_session *s = calloc(1, sizeof *s);
    if (!s || !(s->layers = calloc((size_t)c->n_layers, sizeof *s->layers))) {
        free(s);
        return hk_errorf(HK_ERR_NOMEM, "hk_session_new: out of memory");
    }
    s->model = m;
    s->batch = batch;
    s->max_len = max_len;
    size_t dkv = (size_t)(c->n_kv_heads * c->d_head);
    hk_backend *be = hk_model_backend(m); /* the caches are device memory */
    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_kv_layer *L = &s->layers[l];
        int64_t W = c->layer_window[l] ? c->window : 0;
        if (m->has_mask && m->mask.window >= 0) W = m->mask.window;
        L->rolling = W > 0 && W < max_len;
        L->slots = L->rolling ? W : max_len;
        size_t n = (size_t)batch * (size_t)L->slots * dkv;
        if (be->alloc(be, n * sizeof(float), (void **)&L->k) != HK_OK ||
            be->alloc(be, n * sizeof(float), (void **)&L->v) != HK_OK) {
            hk_session_free(s);
            return hk_errorf(HK_ERR_NOMEM,
                             "hk_session_new: cannot allocate the KV cache (%zu bytes per layer)",
                             2 * n * sizeof(float));
        }
        s->bytes += 2 * n * sizeof(float);
    }
    *out = s;
    return HK_OK;
}

void hk_session_free(hk_session *s) {
    if (!s) return;
    hk_backend *be = hk_model_backend(s->model);
    if (s->layers)
        for (int64_t l = 0; l < s->model->cfg.n_layers; l++) {
            be->free(be, s->layers[l].k);
            be->free(be, s->layers[l].v);
        }
    free(s->layers);
    free(s);
}

int64_t hk_session_pos(const hk_session *s) { return s ? s->pos : 0; }
size_t hk_session_cache_bytes(const hk_session *s) { return s ? s->bytes : 0; }
