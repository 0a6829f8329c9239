/* Logit lens and direct logit attribution, both from one cached run.
 *
 * Lens: every blocks.l.hook_resid_pre and the last hook_resid_post go through ln_final (its
 * statistics recomputed per vector) and the unembedding as one [(L+1) * seq, d_model] batch.
 * DLA: the last position's residual split into heads (attn.hook_result), MLPs, embeddings and
 * the summed attention output biases, scaled as TransformerLens's apply_ln_to_stack does (centred
 * for LayerNorm, divided by ln_final.hook_scale of the whole residual) and projected on
 * w_ln_final * (W_U[answer] - W_U[wrong]). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "experiment.h"
#include "kernels/cpu/kernels.h"

void hk_lens_result_free(hk_lens_result *r) {
    if (!r) return;
    free(r->top_ids);
    free(r->top_logits);
    free(r->top_probs);
    r->top_ids = NULL;
    r->top_logits = NULL;
    r->top_probs = NULL;
}

/* top k of logits[V] by value (ties: lower id first), descending */
static void top_k(const float *logits, int64_t V, int64_t k, int32_t *ids, float *vals) {
    int64_t n = 0;
    for (int64_t v = 0; v < V; v++) {
        float x = logits[v];
        if (n == k && !(x > vals[k - 1])) continue;
        int64_t i = n < k ? n++ : k - 1;
        while (i > 0 && x > vals[i - 1]) {
            vals[i] = vals[i - 1];
            ids[i] = ids[i - 1];
            i--;
        }
        vals[i] = x;
        ids[i] = (int32_t)v;
    }
}

hk_status hk_logit_lens(hk_model *m, const int32_t *tokens, int64_t seq, int64_t k,
                        hk_lens_result *out) {
    return hk_logit_lens_hooked(m, NULL, tokens, seq, k, out);
}

hk_status hk_logit_lens_hooked(hk_model *m, hk_hooks *hooks, const int32_t *tokens, int64_t seq,
                               int64_t k, hk_lens_result *out) {
    if (!m || !tokens || !out)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_logit_lens: NULL model, tokens or out");
    memset(out, 0, sizeof *out);
    const hk_config *c = &m->cfg;
    const int64_t L = c->n_layers, d = c->d_model, V = c->d_vocab;
    if (seq < 1 || k < 1 || k > V)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_logit_lens: seq %lld and k %lld: expected seq "
                                             ">= 1 and 1 <= k <= %lld", (long long)seq,
                         (long long)k, (long long)V);
    char last[64];
    snprintf(last, sizeof last, "blocks.%lld.hook_resid_post", (long long)(L - 1));
    const char *pats[] = {"blocks.*.hook_resid_pre", last};
    hk_cache *cache = NULL;
    hk_status st =
        hk_xp_run_with_cache(m, hooks, tokens, NULL, 1, seq, pats, 2, "all", NULL, &cache);
    if (st != HK_OK) return st;
    const int64_t rows = (L + 1) * seq;
    float *x = malloc((size_t)(rows * d) * sizeof *x);       /* [L+1, seq, d_model] */
    float *logits = malloc((size_t)(seq * V) * sizeof *logits); /* [seq, V] one row of the lens */
    out->top_ids = malloc((size_t)(rows * k) * sizeof *out->top_ids);
    out->top_logits = malloc((size_t)(rows * k) * sizeof *out->top_logits);
    out->top_probs = malloc((size_t)(rows * k) * sizeof *out->top_probs);
    if (!x || !logits || !out->top_ids || !out->top_logits || !out->top_probs) {
        st = hk_errorf(HK_ERR_NOMEM, "hk_logit_lens: out of memory");
        goto done;
    }
    for (int64_t l = 0; l <= L; l++) {
        const hk_tensor *t = l < L ? hk_cache_get_layer(cache, "hook_resid_pre", l)
                                   : hk_cache_get(cache, last);
        if (!t) {
            st = hk_errorf(HK_ERR_INTERNAL, "hk_logit_lens: layer %lld not cached", (long long)l);
            goto done;
        }
        memcpy(x + l * seq * d, t->data, (size_t)(seq * d) * sizeof(float));
    }
    if (c->norm == HK_NORM_LAYERNORM)
        hk_k_layernorm(x, rows, d, m->w.ln_final.w, m->w.ln_final.b, (float)c->norm_eps, x, NULL);
    else
        hk_k_rmsnorm(x, rows, d, m->w.ln_final.w, (float)c->norm_eps, x, NULL);
    const hk_linear *u = &m->w.unembed;
    for (int64_t l = 0; l <= L; l++) {
        hk_k_linear(x + l * seq * d, seq, d, u->w, u->ld, u->in_out, u->b, V, logits, V);
        for (int64_t t = 0; t < seq; t++) {
            const int64_t o = (l * seq + t) * k;
            top_k(logits + t * V, V, k, out->top_ids + o, out->top_logits + o);
            /* softmax over the whole vocabulary: log-sum-exp from the largest logit */
            const double mx = out->top_logits[o];
            double sum = 0;
            for (int64_t v = 0; v < V; v++) sum += exp((double)logits[t * V + v] - mx);
            for (int64_t j = 0; j < k; j++)
                out->top_probs[o + j] = (float)(exp((double)out->top_logits[o + j] - mx) / sum);
        }
    }
    out->n_rows = L + 1;
    out->seq = seq;
    out->k = k;
done:
    free(x);
    free(logits);
    hk_cache_free(cache);
    if (st != HK_OK) hk_lens_result_free(out);
    return st;
}

/* ---- direct logit attribution ---- */

void hk_dla_result_free(hk_dla_result *r) {
    if (!r) return;
    for (int64_t i = 0; r->labels && i < r->n_components; i++) free(r->labels[i]);
    free(r->labels);
    free(r->values);
    free(r->total);
    memset(r, 0, sizeof *r);
}

static char *dup_label(const char *fmt, long long a, long long b) {
    char buf[48];
    snprintf(buf, sizeof buf, fmt, a, b);
    return strdup(buf);
}

/* (x - mean(x) when centre) / scale . dir */
static float project(const float *x, int64_t d, bool centre, float scale, const float *dir) {
    double mean = 0, s = 0;
    if (centre) {
        for (int64_t j = 0; j < d; j++) mean += x[j];
        mean /= (double)d;
    }
    for (int64_t j = 0; j < d; j++) s += ((double)x[j] - mean) * dir[j];
    return (float)(s / scale);
}

hk_status hk_dla(hk_model *m, const hk_prompt_set *p, hk_dla_result *out) {
    return hk_dla_hooked(m, NULL, p, out);
}

hk_status hk_dla_hooked(hk_model *m, hk_hooks *hooks, const hk_prompt_set *p,
                        hk_dla_result *out) {
    if (!out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_dla: out must not be NULL");
    memset(out, 0, sizeof *out);
    hk_status st = hk_xp_check_prompts(m, p, "hk_dla");
    if (st != HK_OK) return st;
    const hk_config *c = &m->cfg;
    const int64_t L = c->n_layers, H = c->n_heads, d = c->d_model, np = p->n_prompts;
    const bool learned = c->pos == HK_POS_LEARNED, centre = c->norm == HK_NORM_LAYERNORM;
    const int64_t nc = L * H + L + 1 + (learned ? 1 : 0) + 1;
    const char *pats[] = {"blocks.*.attn.hook_result", "blocks.*.hook_mlp_out", "hook_embed",
                          "ln_final.hook_scale", "hook_pos_embed"};
    hk_cache *cache = NULL;
    hk_xp_metric mt = {0};
    float *dir = malloc((size_t)d * sizeof *dir), *bias = calloc((size_t)d, sizeof *bias);
    out->labels = calloc((size_t)nc, sizeof *out->labels);
    out->values = calloc((size_t)(nc * np), sizeof *out->values);
    out->total = calloc((size_t)np, sizeof *out->total);
    out->n_components = nc;
    out->n_prompts = np;
    out->n_layers = L;
    out->n_heads = H;
    if (!dir || !bias || !out->labels || !out->values || !out->total) {
        st = hk_errorf(HK_ERR_NOMEM, "hk_dla: out of memory");
        goto done;
    }
    int64_t ci = 0;
    for (int64_t l = 0; l < L; l++)
        for (int64_t h = 0; h < H; h++) out->labels[ci++] = dup_label("L%lldH%lld", l, h);
    for (int64_t l = 0; l < L; l++) out->labels[ci++] = dup_label("%lld_mlp_out", l, 0);
    out->labels[ci++] = strdup("embed");
    if (learned) out->labels[ci++] = strdup("pos_embed");
    out->labels[ci++] = strdup("bias");
    for (int64_t i = 0; i < nc; i++)
        if (!out->labels[i]) {
            st = hk_errorf(HK_ERR_NOMEM, "hk_dla: out of memory");
            goto done;
        }
    for (int64_t l = 0; l < L; l++) /* the attention output biases, summed over layers */
        if (m->w.blocks[l].o.b) hk_k_add(bias, m->w.blocks[l].o.b, d);
    /* positions "last": every prompt has seq tokens */
    if ((st = hk_xp_run_with_cache(m, hooks, p->tokens, NULL, np, p->seq, pats, learned ? 5 : 4,
                                   "last", NULL, &cache)) != HK_OK)
        goto done;
    if ((st = hk_xp_metric_init(&mt, m, p, np)) != HK_OK) goto done;
    const hk_tensor *scale = hk_cache_get(cache, "ln_final.hook_scale");   /* [np, 1, 1] */
    const hk_tensor *embed = hk_cache_get(cache, "hook_embed");            /* [np, 1, d] */
    const hk_tensor *pos = learned ? hk_cache_get(cache, "hook_pos_embed") : NULL;
    for (int64_t i = 0; i < np; i++) {
        const float s = ((const float *)scale->data)[i];
        for (int64_t j = 0; j < d; j++) dir[j] = mt.dir[i * d + j] * m->w.ln_final.w[j];
        double total = 0;
        ci = 0;
        for (int64_t l = 0; l < L; l++) {
            const hk_tensor *r = hk_cache_get_layer(cache, "attn.hook_result", l); /* [np,1,H,d] */
            for (int64_t h = 0; h < H; h++)
                out->values[(ci++) * np + i] =
                    project((const float *)r->data + (i * H + h) * d, d, centre, s, dir);
        }
        for (int64_t l = 0; l < L; l++) {
            const hk_tensor *r = hk_cache_get_layer(cache, "hook_mlp_out", l); /* [np, 1, d] */
            out->values[(ci++) * np + i] = project((const float *)r->data + i * d, d, centre, s, dir);
        }
        out->values[(ci++) * np + i] = project((const float *)embed->data + i * d, d, centre, s, dir);
        if (learned)
            out->values[(ci++) * np + i] = project((const float *)pos->data + i * d, d, centre, s, dir);
        out->values[(ci++) * np + i] = project(bias, d, centre, s, dir);
        for (int64_t k = 0; k < nc; k++) total += out->values[k * np + i];
        /* what the components leave out: ln_final's bias and the unembedding's */
        double rest = mt.bias[i];
        if (m->w.ln_final.b)
            for (int64_t j = 0; j < d; j++) rest += (double)m->w.ln_final.b[j] * mt.dir[i * d + j];
        out->total[i] = (float)(total + rest);
    }
done:
    free(dir);
    free(bias);
    hk_xp_metric_free(&mt);
    hk_cache_free(cache);
    if (st != HK_OK) hk_dla_result_free(out);
    return st;
}
