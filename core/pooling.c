/* Sentence embeddings: the final hidden states pooled over each sequence's valid tokens, then
 * optionally L2-normalized (sentence-transformers' Pooling and Normalize modules). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"

hk_pooling hk_model_pooling(const hk_model *m, bool *normalize) {
    if (normalize) *normalize = m && m->pool_normalize;
    return m ? m->pooling : HK_POOL_MEAN;
}

const char *hk_pooling_name(hk_pooling p) {
    switch (p) {
    case HK_POOL_MODEL: return "model";
    case HK_POOL_MEAN: return "mean";
    case HK_POOL_CLS: return "cls";
    case HK_POOL_MAX: return "max";
    case HK_POOL_MEAN_SQRT_LEN: return "mean_sqrt_len";
    case HK_POOL_LAST: return "last";
    }
    return "unknown";
}

/* hidden [len, d] (one sequence's valid rows) -> out [d] */
static void pool_one(hk_pooling p, const float *hidden, int64_t len, int64_t d, float *out) {
    if (p == HK_POOL_CLS || p == HK_POOL_LAST) {
        memcpy(out, hidden + (p == HK_POOL_CLS ? 0 : len - 1) * d, (size_t)d * sizeof(float));
        return;
    }
    for (int64_t j = 0; j < d; j++) {
        double acc = p == HK_POOL_MAX ? -INFINITY : 0.0;
        for (int64_t t = 0; t < len; t++) {
            double v = hidden[t * d + j];
            acc = p == HK_POOL_MAX ? fmax(acc, v) : acc + v;
        }
        if (p == HK_POOL_MEAN) acc /= (double)len;
        if (p == HK_POOL_MEAN_SQRT_LEN) acc /= sqrt((double)len);
        out[j] = (float)acc;
    }
}

/* x / max(|x|, 1e-12), as torch.nn.functional.normalize */
static void l2_normalize(float *x, int64_t d) {
    double sq = 0;
    for (int64_t j = 0; j < d; j++) sq += (double)x[j] * x[j];
    double n = fmax(sqrt(sq), 1e-12);
    for (int64_t j = 0; j < d; j++) x[j] = (float)(x[j] / n);
}

hk_status hk_model_embed(hk_model *m, hk_hooks *hooks, const int32_t *tokens,
                         const int32_t *token_types, const int64_t *lengths, int64_t batch,
                         int64_t seq, hk_pooling pooling, int normalize, float *out) {
    if (!m || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_embed: NULL model or output");
    if ((unsigned)pooling > HK_POOL_LAST)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_embed: pooling %d is not a hk_pooling",
                         (int)pooling);
    if (normalize < -1 || normalize > 1)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_model_embed: normalize must be -1, 0 or 1, got %d", normalize);
    if (batch <= 0 || seq <= 0) /* checked again by the forward; here before the allocation */
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_model_embed: batch (%lld) and seq (%lld) must be positive",
                         (long long)batch, (long long)seq);
    bool norm_model;
    hk_pooling model_pool = hk_model_pooling(m, &norm_model);
    if (pooling == HK_POOL_MODEL) pooling = model_pool;
    bool l2 = normalize == -1 ? norm_model : normalize == 1;
    int64_t d = m->cfg.d_model;
    float *hidden = malloc((size_t)(batch * seq * d) * sizeof *hidden); /* [batch, seq, d] */
    if (!hidden)
        return hk_errorf(HK_ERR_NOMEM, "hk_model_embed: no memory for %lld x %lld hidden states",
                         (long long)batch, (long long)seq);
    hk_status st = hk_model_hidden(m, hooks, tokens, token_types, lengths, batch, seq, hidden);
    if (st == HK_OK) {
        for (int64_t b = 0; b < batch; b++) {
            int64_t len = lengths ? lengths[b] : seq;
            pool_one(pooling, hidden + b * seq * d, len, d, out + b * d);
            if (l2) l2_normalize(out + b * d, d);
        }
    }
    free(hidden);
    return st;
}
