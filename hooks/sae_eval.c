/* SAE metrics as sae_lens/evals.py computes them (get_sparsity_and_variance_metrics,
 * ExplainedVarianceCalculator, get_recons_loss): accumulated over batches. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "sae_impl.h"

struct hk_sae_eval {
    hk_model *m;
    const hk_sae *s;
    int64_t tokens, ce_n;
    double sum_sq_res, sum_sq_norm, l0, l1;
    double *sum_y;   /* [d_out] */
    int64_t *fired;  /* [d_sae] tokens each feature was != 0 */
    double ce[3];    /* without, with, ablation: summed */
    /* the batch being run */
    const int64_t *lengths;
    int64_t seq;
    float *y;        /* [batch * seq, d_out] the target activation */
    bool have_y;
};

hk_status hk_sae_eval_new(hk_model *m, const hk_sae *s, hk_sae_eval **out) {
    if (!m || !s || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_eval_new: NULL argument");
    hk_sae_eval *e = calloc(1, sizeof *e);
    if (e) {
        e->sum_y = calloc((size_t)s->d_out, sizeof *e->sum_y);
        e->fired = calloc((size_t)s->d_sae, sizeof *e->fired);
    }
    if (!e || !e->sum_y || !e->fired) {
        hk_sae_eval_free(e);
        return hk_errorf(HK_ERR_NOMEM, "hk_sae_eval_new: out of memory");
    }
    e->m = m;
    e->s = s;
    *out = e;
    return HK_OK;
}

void hk_sae_eval_free(hk_sae_eval *e) {
    if (!e) return;
    free(e->sum_y);
    free(e->fired);
    free(e->y);
    free(e);
}

static bool valid(const hk_sae_eval *e, const hk_hook_ctx *ctx, int64_t b, int64_t p) {
    return ctx->pos_offset + p < e->lengths[ctx->batch_offset + b];
}

/* the target y (the hook_out activation, before any SAE): copied */
static hk_hook_result grab_y(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    hk_sae_eval *e = user;
    const int64_t d = e->s->d_out;
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++) {
            const float *src = (const float *)t->data + b * t->stride[0] + p * t->stride[1];
            float *dst = e->y + ((ctx->batch_offset + b) * e->seq + ctx->pos_offset + p) * d;
            if (t->ndim == 3 && t->stride[2] == 1) {
                memcpy(dst, src, (size_t)d * sizeof *dst);
            } else { /* [batch, pos, head, d_head] with strides: element by element */
                const int64_t inner = t->shape[t->ndim - 1];
                for (int64_t j = 0; j < d; j++)
                    dst[j] = src[(j / inner) * t->stride[t->ndim - 2] + (j % inner) * t->stride[t->ndim - 1]];
            }
        }
    e->have_y = true;
    return HK_HOOK_CONTINUE;
}

static hk_hook_result on_acts(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    hk_sae_eval *e = user;
    const int64_t m = t->shape[2];
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++) {
            if (!valid(e, ctx, b, p)) continue;
            const float *a = (const float *)t->data + (b * t->shape[1] + p) * m;
            for (int64_t j = 0; j < m; j++)
                if (a[j] != 0.0f) {
                    e->l0 += 1;
                    e->l1 += fabsf(a[j]);
                    e->fired[j]++;
                }
        }
    return HK_HOOK_CONTINUE;
}

static hk_hook_result on_output(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    hk_sae_eval *e = user;
    if (!e->have_y) {
        hk_hook_error("SAE eval: the output fired before its target");
        return HK_HOOK_ERROR;
    }
    const int64_t d = t->shape[2];
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++) {
            if (!valid(e, ctx, b, p)) continue;
            const float *yh = (const float *)t->data + (b * t->shape[1] + p) * d;
            const float *y = e->y + ((ctx->batch_offset + b) * e->seq + ctx->pos_offset + p) * d;
            for (int64_t j = 0; j < d; j++) {
                const double r = (double)y[j] - yh[j];
                e->sum_sq_res += r * r;
                e->sum_sq_norm += (double)y[j] * y[j];
                e->sum_y[j] += y[j];
            }
            e->tokens++;
        }
    return HK_HOOK_CONTINUE;
}

static hk_hook_result zero_fire(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    (void)user;
    const int64_t w = t->ndim > 2 ? t->shape[t->ndim - 1] : 1;
    const int64_t heads = t->ndim > 3 ? t->shape[2] : 1;
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++)
            for (int64_t h = 0; h < heads; h++) {
                float *x = (float *)t->data + b * t->stride[0] + p * t->stride[1] +
                           (t->ndim > 3 ? h * t->stride[2] : 0);
                for (int64_t j = 0; j < w; j++) x[j * t->stride[t->ndim - 1]] = 0.0f;
            }
    return HK_HOOK_CONTINUE;
}

/* Sum of next-token cross-entropies over the batch's valid positions, and their count. */
static void ce_sum(const float *logits, const int32_t *tokens, const int64_t *lengths,
                   int64_t batch, int64_t seq, int64_t vocab, double *sum, int64_t *n) {
    for (int64_t b = 0; b < batch; b++)
        for (int64_t p = 0; p + 1 < lengths[b]; p++) {
            const float *l = logits + (b * seq + p) * vocab; /* [vocab] */
            double mx = l[0], z = 0;
            for (int64_t v = 1; v < vocab; v++) mx = l[v] > mx ? l[v] : mx;
            for (int64_t v = 0; v < vocab; v++) z += exp((double)l[v] - mx);
            *sum += mx + log(z) - l[tokens[b * seq + p + 1]];
            if (n) (*n)++;
        }
}

hk_status hk_sae_eval_add(hk_sae_eval *e, const int32_t *tokens, const int64_t *lengths,
                          int64_t batch, int64_t seq) {
    if (!e || !tokens || !lengths || batch < 1 || seq < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_eval_add: bad argument");
    const hk_sae *s = e->s;
    const int64_t vocab = hk_model_output_dim(e->m);
    free(e->y);
    e->y = malloc((size_t)(batch * seq * s->d_out) * sizeof *e->y);
    float *logits = malloc((size_t)(batch * seq * vocab) * sizeof *logits);
    if (!e->y || !logits) {
        free(logits);
        return hk_errorf(HK_ERR_NOMEM, "hk_sae_eval_add: out of memory");
    }
    e->lengths = lengths;
    e->seq = seq;
    e->have_y = false;
    hk_status st = HK_OK;
    char name[200];
    for (int run = 0; run < 3 && st == HK_OK; run++) {
        hk_hooks *h = NULL;
        hk_sae_attachment *a = NULL;
        st = hk_hooks_new(e->m, &h);
        if (st == HK_OK && run == 0 && s->transcoder) {
            /* a transcoder's output fires at its input hook, before hook_out: one run takes
             * the target, the next observes the transcoder */
            st = hk_hooks_add(h, s->hook_out, grab_y, e, NULL);
            if (st == HK_OK) st = hk_model_run(e->m, h, tokens, lengths, batch, seq, logits);
            hk_hooks_free(h);
            h = NULL;
            if (st == HK_OK) st = hk_hooks_new(e->m, &h);
        } else if (st == HK_OK && run == 0) {
            st = hk_hooks_add(h, s->hook_out, grab_y, e, NULL); /* before the SAE */
        }
        if (st == HK_OK && run == 0) {
            st = hk_sae_attach(h, s, HK_SAE_OBSERVE, &a);
            snprintf(name, sizeof name, "%s.hook_sae_acts_post", s->hook);
            if (st == HK_OK) st = hk_hooks_add(h, name, on_acts, e, NULL);
            snprintf(name, sizeof name, "%s.hook_sae_output", s->hook);
            if (st == HK_OK) st = hk_hooks_add(h, name, on_output, e, NULL);
        } else if (st == HK_OK && run == 1) {
            st = hk_sae_attach(h, s, HK_SAE_REPLACE, &a);
        } else if (st == HK_OK) {
            st = hk_hooks_add(h, s->hook_out, zero_fire, NULL, NULL);
        }
        if (st == HK_OK) st = hk_model_run(e->m, h, tokens, lengths, batch, seq, logits);
        if (st == HK_OK) ce_sum(logits, tokens, lengths, batch, seq, vocab, &e->ce[run],
                                run == 0 ? &e->ce_n : NULL);
        hk_sae_detach(a);
        hk_hooks_free(h);
    }
    free(logits);
    return st;
}

hk_status hk_sae_eval_metrics(const hk_sae_eval *e, hk_sae_metrics *out) {
    if (!e || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_eval_metrics: NULL argument");
    memset(out, 0, sizeof *out);
    const double n = (double)e->tokens;
    out->tokens = e->tokens;
    out->d_sae = e->s->d_sae;
    if (e->tokens == 0) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_eval_metrics: no tokens");
    out->mse = e->sum_sq_res / n;
    double mean_sq = 0;
    for (int64_t j = 0; j < e->s->d_out; j++) mean_sq += (e->sum_y[j] / n) * (e->sum_y[j] / n);
    const double total_var = e->sum_sq_norm / n - mean_sq;
    out->explained_variance = total_var < 1e-10 ? (out->mse < 1e-10 ? 1.0 : 0.0)
                                                : 1.0 - out->mse / total_var;
    out->l0 = e->l0 / n;
    out->l1 = e->l1 / n;
    for (int64_t j = 0; j < e->s->d_sae; j++) out->dead += e->fired[j] == 0;
    const double cn = e->ce_n ? (double)e->ce_n : 1.0;
    out->ce_without = e->ce[0] / cn;
    out->ce_with = e->ce[1] / cn;
    out->ce_ablation = e->ce[2] / cn;
    out->ce_delta = out->ce_with - out->ce_without;
    const double den = out->ce_ablation - out->ce_without;
    out->ce_score = den != 0 ? (out->ce_ablation - out->ce_with) / den : NAN;
    return HK_OK;
}
