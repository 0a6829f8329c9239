/* One batch of the store fed through a session (hookformer cache --chunk): the KV cache holds
 * what earlier chunks computed (a rolling buffer of W slots on sliding-window layers), so a
 * long sequence runs at the activation memory of one chunk; the store's hooks place each
 * chunk's rows by ctx->pos_offset as they do for one forward. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/model.h"
#include "registry.h"
#include "store.h"

hk_status hk_store_run_chunked(hk_store *s, hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                               const int64_t *lengths, int64_t batch, int64_t seq,
                               int64_t chunk) {
    if (!s || !m || m != s->model)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_store_run_chunked: the store's own model is required");
    if (hooks && hooks->model != m)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_store_run_chunked: the hooks were made for "
                                             "another model");
    if (chunk < 1 || batch < 1 || seq < 1 || !tokens)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_store_run_chunked: chunk (%lld), batch (%lld) and seq (%lld) must "
                         "be positive, tokens given",
                         (long long)chunk, (long long)batch, (long long)seq);
    if (!m->cfg.causal)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_store_run_chunked: %s is bidirectional: it has no KV cache to "
                         "feed in chunks (store it without a chunk)",
                         m->cfg.family);
    const int64_t step = chunk < seq ? chunk : seq;
    bool want_logits = false;
    for (size_t i = 0; i < s->n_hooks; i++)
        want_logits = want_logits || strcmp(s->hooks[i].name, "unembed.hook_out") == 0;
    int32_t *part = malloc((size_t)(batch * step) * sizeof *part); /* [batch, step] */
    float *logits = want_logits ? malloc((size_t)(batch * step * m->cfg.d_vocab) *
                                         sizeof *logits) /* [batch, step, vocab] */
                                : NULL;
    if (!part || (want_logits && !logits)) {
        free(part);
        free(logits);
        return hk_errorf(HK_ERR_NOMEM, "%s: out of memory for a chunk of %lld x %lld", s->path,
                         (long long)batch, (long long)step);
    }
    hk_session *sess = NULL;
    hk_status st = hk_session_new(m, batch, seq, &sess);
    if (st == HK_OK) st = hk_store_begin_batch(s, tokens, lengths, batch, seq);
    const bool begun = st == HK_OK;
    s->b_feeds = begun;
    for (int64_t p = 0; st == HK_OK && p < seq; p += step) {
        const int64_t k = seq - p < step ? seq - p : step;
        for (int64_t b = 0; b < batch; b++)
            memcpy(part + b * k, tokens + b * seq + p, (size_t)k * sizeof *part);
        st = hk_session_feed(sess, hooks ? hooks : s->own_hooks, part, k, false, logits);
    }
    s->b_feeds = false;
    hk_session_free(sess);
    free(part);
    free(logits);
    if (st != HK_OK) {
        if (begun) s->in_batch = false;
        return st;
    }
    return hk_store_end_batch(s);
}
