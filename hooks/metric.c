/* The metric of the patching experiments: the logit difference between two answer tokens at
 * the last position, mean over the prompts. It is read at unembed.hook_in (the final norm's
 * output) as x . (W_U[answer] - W_U[wrong]) + bias difference, so batched runs never build
 * [rows, vocab] logits. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "experiment.h"

hk_status hk_xp_check_prompts(const hk_model *m, const hk_prompt_set *p, const char *who) {
    if (!m || !p || !p->tokens || !p->answer || !p->wrong)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: model, prompts, tokens, answer and wrong must "
                                             "not be NULL", who);
    if (p->n_prompts < 1 || p->seq < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: n_prompts (%lld) and seq (%lld) must be "
                                             "positive", who, (long long)p->n_prompts,
                         (long long)p->seq);
    const int64_t V = m->cfg.d_vocab;
    for (int64_t i = 0; i < p->n_prompts; i++) {
        if (p->answer[i] < 0 || p->answer[i] >= V || p->wrong[i] < 0 || p->wrong[i] >= V)
            return hk_errorf(HK_ERR_INVALID_ARG, "%s: prompt %lld: answer %d / wrong %d outside "
                                                 "the vocabulary [0, %lld)", who, (long long)i,
                             p->answer[i], p->wrong[i], (long long)V);
        for (int64_t t = 0; t < p->seq; t++) {
            int32_t id = p->tokens[i * p->seq + t];
            if (id < 0 || id >= V)
                return hk_errorf(HK_ERR_INVALID_ARG, "%s: prompt %lld position %lld: token %d "
                                                     "outside the vocabulary [0, %lld)", who,
                                 (long long)i, (long long)t, id, (long long)V);
        }
    }
    return HK_OK;
}

void hk_xp_unembed_row(const hk_model *m, int32_t t, float *out, float *bias) {
    const hk_linear *u = &m->w.unembed;
    const int64_t d = m->cfg.d_model;
    for (int64_t j = 0; j < d; j++)
        out[j] = u->in_out ? u->w[j * u->ld + t] : u->w[(int64_t)t * u->ld + j];
    *bias = u->b ? u->b[t] : 0.0f;
}

hk_status hk_xp_metric_init(hk_xp_metric *mt, const hk_model *m, const hk_prompt_set *p,
                            int64_t cap_rows) {
    memset(mt, 0, sizeof *mt);
    const int64_t d = m->cfg.d_model, n = p->n_prompts;
    mt->n_prompts = n;
    mt->d = d;
    mt->cap_rows = cap_rows;
    mt->dir = malloc((size_t)(n * d) * sizeof *mt->dir);
    mt->bias = malloc((size_t)n * sizeof *mt->bias);
    mt->rows = calloc((size_t)cap_rows, sizeof *mt->rows);
    float *wrong = malloc((size_t)d * sizeof *wrong);
    if (!mt->dir || !mt->bias || !mt->rows || !wrong) {
        free(wrong);
        hk_xp_metric_free(mt);
        return hk_errorf(HK_ERR_NOMEM, "metric: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        float ba, bw;
        hk_xp_unembed_row(m, p->answer[i], mt->dir + i * d, &ba);
        hk_xp_unembed_row(m, p->wrong[i], wrong, &bw);
        for (int64_t j = 0; j < d; j++) mt->dir[i * d + j] -= wrong[j];
        mt->bias[i] = ba - bw;
    }
    free(wrong);
    return HK_OK;
}

void hk_xp_metric_free(hk_xp_metric *mt) {
    free(mt->dir);
    free(mt->bias);
    free(mt->rows);
    memset(mt, 0, sizeof *mt);
}

/* unembed.hook_in [batch, pos, d_model]: the last position of every row */
static hk_hook_result metric_fire(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    hk_xp_metric *mt = user;
    const int64_t B = act->shape[0], T = act->shape[1], d = act->shape[2];
    if (B > mt->cap_rows || d != mt->d || act->stride[2] != 1) {
        hk_hook_error("metric: unexpected unembed.hook_in [%lld, %lld, %lld] (room for %lld rows)",
                      (long long)B, (long long)T, (long long)d, (long long)mt->cap_rows);
        return HK_HOOK_ERROR;
    }
    const float *x = act->data;
    for (int64_t b = 0; b < B; b++) {
        const float *row = x + b * act->stride[0] + (T - 1) * act->stride[1];
        const float *dir = mt->dir + (b % mt->n_prompts) * d;
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += (double)row[j] * dir[j];
        mt->rows[b] = (float)(s + mt->bias[b % mt->n_prompts]);
    }
    return HK_HOOK_CONTINUE;
}

hk_status hk_xp_metric_attach(hk_xp_metric *mt, hk_hooks *h) {
    return hk_hooks_add(h, "unembed.hook_in", metric_fire, mt, NULL);
}

float hk_xp_metric_item(const hk_xp_metric *mt, int64_t k) {
    double s = 0;
    for (int64_t i = 0; i < mt->n_prompts; i++) s += mt->rows[k * mt->n_prompts + i];
    return (float)(s / (double)mt->n_prompts);
}

hk_status hk_prompt_metric(hk_model *m, hk_hooks *hooks, const hk_prompt_set *p, float *out) {
    hk_status st = hk_xp_check_prompts(m, p, "hk_prompt_metric");
    if (st != HK_OK) return st;
    if (!out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_prompt_metric: out must not be NULL");
    hk_xp_metric mt;
    if ((st = hk_xp_metric_init(&mt, m, p, p->n_prompts)) != HK_OK) return st;
    hk_hooks *own = NULL, *h = hooks;
    if (!h && (st = hk_hooks_new(m, &own)) != HK_OK) {
        hk_xp_metric_free(&mt);
        return st;
    }
    if (own) h = own;
    size_t mark = hk_hooks_scope_begin(h);
    st = hk_xp_metric_attach(&mt, h);
    if (st == HK_OK) st = hk_model_run(m, h, p->tokens, NULL, p->n_prompts, p->seq, NULL);
    if (st == HK_OK) *out = hk_xp_metric_item(&mt, 0);
    hk_hooks_scope_end(h, mark);
    hk_hooks_free(own);
    hk_xp_metric_free(&mt);
    return st;
}
