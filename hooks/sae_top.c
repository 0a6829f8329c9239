/* Top-activating contexts of SAE features: pass 1 keeps, per feature, the `top` sequences
 * with the largest maximum; pass 2 reruns those sequences and reads each window. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/model.h"
#include "h5_util.h"
#include "sae_impl.h"

void hk_sae_top_free(hk_sae_top *t) {
    if (!t) return;
    free(t->active);
    free(t->max_act);
    free(t->top_values);
    free(t->top_seq);
    free(t->top_pos);
    free(t->win_tokens);
    free(t->win_values);
    memset(t, 0, sizeof *t);
}

typedef struct {
    hk_sae_top *t;
    const int64_t *ids;     /* [batch] sequence index of each batch row */
    const int64_t *lengths; /* [batch] */
    const int32_t *tokens;  /* [batch, seq] */
    int64_t seq;
    bool fill;              /* pass 2: windows */
} top_run;

/* Insert (v, seq, pos) into feature j's descending list if it makes the cut. */
static void offer(hk_sae_top *t, int64_t j, float v, int64_t seq, int64_t pos) {
    float *val = t->top_values + j * t->top;
    int64_t *sq = t->top_seq + j * t->top, *ps = t->top_pos + j * t->top;
    if (!(v > val[t->top - 1]) && sq[t->top - 1] >= 0) return;
    int64_t k = t->top - 1;
    while (k > 0 && (sq[k - 1] < 0 || val[k - 1] < v)) {
        val[k] = val[k - 1], sq[k] = sq[k - 1], ps[k] = ps[k - 1];
        k--;
    }
    val[k] = v, sq[k] = seq, ps[k] = pos;
}

static hk_hook_result on_acts(hk_tensor *a, const hk_hook_ctx *ctx, void *user) {
    top_run *r = user;
    hk_sae_top *t = r->t;
    const int64_t m = a->shape[2], W = 2 * t->window + 1;
    if (ctx->batch_offset != 0 || ctx->pos_offset != 0) {
        hk_hook_error("SAE top contexts: expected one forward over the whole batch");
        return HK_HOOK_ERROR;
    }
    for (int64_t b = 0; b < a->shape[0]; b++) {
        const float *rows = (const float *)a->data + b * a->shape[1] * m; /* [pos, d_sae] */
        const int64_t L = r->lengths[b], g = r->ids[b];
        if (r->fill) {
            for (int64_t j = 0; j < m; j++)
                for (int64_t k = 0; k < t->top; k++) {
                    if (t->top_seq[j * t->top + k] != g) continue;
                    const int64_t p0 = t->top_pos[j * t->top + k] - t->window;
                    int32_t *wt = t->win_tokens + (j * t->top + k) * W;
                    float *wv = t->win_values + (j * t->top + k) * W;
                    for (int64_t o = 0; o < W; o++) {
                        const int64_t p = p0 + o;
                        wt[o] = p >= 0 && p < L ? r->tokens[b * r->seq + p] : -1;
                        wv[o] = p >= 0 && p < L ? rows[p * m + j] : 0.0f;
                    }
                }
            continue;
        }
        for (int64_t j = 0; j < m; j++) {
            float best = 0;
            int64_t at = -1;
            for (int64_t p = 0; p < L; p++) {
                const float v = rows[p * m + j];
                if (v != 0.0f) t->active[j]++;
                if (v > best) best = v, at = p;
            }
            if (at >= 0) {
                if (best > t->max_act[j]) t->max_act[j] = best;
                offer(t, j, best, g, at);
            }
        }
        t->tokens += L;
    }
    return HK_HOOK_CONTINUE;
}

/* Run sequences idx[0..n) in batches with the SAE observing and r's hook. */
static hk_status run_pass(hk_model *m, const hk_sae *s, const int32_t *const *seqs,
                          const int64_t *lens, const int64_t *idx, int64_t n, int64_t batch,
                          top_run *r) {
    hk_hooks *h = NULL;
    hk_sae_attachment *a = NULL;
    char name[200];
    snprintf(name, sizeof name, "%s.hook_sae_acts_post", s->hook);
    hk_status st = hk_hooks_new(m, &h);
    if (!st) st = hk_sae_attach(h, s, HK_SAE_OBSERVE, &a);
    if (!st) st = hk_hooks_add(h, name, on_acts, r, NULL);
    int64_t longest = 1;
    for (int64_t i = 0; i < n; i++) longest = lens[idx[i]] > longest ? lens[idx[i]] : longest;
    int32_t *tok = malloc((size_t)(batch * longest) * sizeof *tok); /* [batch, seq] */
    int64_t *len = malloc((size_t)batch * sizeof *len);
    if (!st && (!tok || !len)) st = hk_errorf(HK_ERR_NOMEM, "SAE top contexts: out of memory");
    for (int64_t i = 0; !st && i < n; i += batch) {
        const int64_t nb = n - i < batch ? n - i : batch;
        int64_t seq = 1;
        for (int64_t b = 0; b < nb; b++) seq = lens[idx[i + b]] > seq ? lens[idx[i + b]] : seq;
        for (int64_t b = 0; b < nb; b++) {
            len[b] = lens[idx[i + b]];
            memcpy(tok + b * seq, seqs[idx[i + b]], (size_t)len[b] * sizeof *tok);
            for (int64_t p = len[b]; p < seq; p++) tok[b * seq + p] = 0;
        }
        r->ids = idx + i;
        r->lengths = len;
        r->tokens = tok;
        r->seq = seq;
        st = hk_model_run(m, h, tok, len, nb, seq, NULL);
    }
    free(tok);
    free(len);
    hk_sae_detach(a);
    hk_hooks_free(h);
    return st;
}

hk_status hk_sae_top_contexts(hk_model *m, const hk_sae *s, const int32_t *const *seqs,
                              const int64_t *lens, int64_t n_seqs, int64_t top, int64_t window,
                              int64_t batch, hk_sae_top *out) {
    if (!m || !s || !seqs || !lens || !out || n_seqs < 1 || top < 1 || window < 0 || batch < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_top_contexts: bad argument");
    for (int64_t i = 0; i < n_seqs; i++)
        if (lens[i] < 1 || !seqs[i])
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_top_contexts: sequence %lld is empty",
                             (long long)i);
    memset(out, 0, sizeof *out);
    hk_sae_top *t = out;
    const int64_t d = s->d_sae, W = 2 * window + 1;
    t->d_sae = d, t->top = top, t->window = window;
    t->active = calloc((size_t)d, sizeof *t->active);
    t->max_act = calloc((size_t)d, sizeof *t->max_act);
    t->top_values = calloc((size_t)(d * top), sizeof *t->top_values);
    t->top_seq = malloc((size_t)(d * top) * sizeof *t->top_seq);
    t->top_pos = malloc((size_t)(d * top) * sizeof *t->top_pos);
    t->win_tokens = malloc((size_t)(d * top * W) * sizeof *t->win_tokens);
    t->win_values = calloc((size_t)(d * top * W), sizeof *t->win_values);
    int64_t *idx = malloc((size_t)n_seqs * sizeof *idx);
    if (!t->active || !t->max_act || !t->top_values || !t->top_seq || !t->top_pos ||
        !t->win_tokens || !t->win_values || !idx) {
        free(idx);
        hk_sae_top_free(t);
        return hk_errorf(HK_ERR_NOMEM, "hk_sae_top_contexts: out of memory for %lld x %lld "
                                       "contexts", (long long)d, (long long)top);
    }
    for (int64_t i = 0; i < d * top; i++) t->top_seq[i] = t->top_pos[i] = -1;
    for (int64_t i = 0; i < d * top * W; i++) t->win_tokens[i] = -1;
    for (int64_t i = 0; i < n_seqs; i++) idx[i] = i;
    top_run r = {.t = t};
    hk_status st = run_pass(m, s, seqs, lens, idx, n_seqs, batch, &r);
    /* pass 2: only the sequences some list holds */
    int64_t n2 = 0;
    if (!st) {
        uint8_t *need = calloc((size_t)n_seqs, 1);
        if (!need) st = hk_errorf(HK_ERR_NOMEM, "hk_sae_top_contexts: out of memory");
        for (int64_t i = 0; need && i < d * top; i++)
            if (t->top_seq[i] >= 0) need[t->top_seq[i]] = 1;
        for (int64_t i = 0; need && i < n_seqs; i++)
            if (need[i]) idx[n2++] = i;
        free(need);
    }
    r.fill = true;
    if (!st && n2) st = run_pass(m, s, seqs, lens, idx, n2, batch, &r);
    free(idx);
    if (st) hk_sae_top_free(t);
    return st;
}

static hk_status h5_i64(hid_t loc, const char *name, const int64_t *v, int ndim,
                        const int64_t *shape, const char *dims) {
    hsize_t dd[3];
    for (int i = 0; i < ndim; i++) dd[i] = (hsize_t)shape[i];
    hid_t sp = H5Screate_simple(ndim, dd, NULL);
    hid_t ds = H5Dcreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t w = ds >= 0 ? H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) : -1;
    hk_status st = w < 0 ? hk_errorf(HK_ERR_IO, "cannot write dataset '%s'", name)
                         : hk_h5_attr_str(ds, "dims", dims);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    return st;
}

hk_status hk_sae_top_save(const hk_sae_top *t, const hk_sae *s, const hk_model *m,
                          const char *path, bool force) {
    if (!t || !s || !m || !path) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_top_save: NULL argument");
    hid_t f;
    char *tmp;
    hk_status st = hk_h5_create_tmp(path, force, &f, &tmp);
    if (st) return st;
    const int64_t d = t->d_sae, K = t->top, W = 2 * t->window + 1;
    const int64_t s1[1] = {d}, s2[2] = {d, K}, s3[3] = {d, K, W};
    st = hk_h5_attr_str(f, "kind", "sae_top_contexts");
    if (!st) st = hk_h5_attr_str(f, "hookformer_version", hk_version());
    if (!st) st = hk_h5_attr_str(f, "model", m->source ? m->source : "");
    if (!st) st = hk_h5_attr_str(f, "sae", s->path);
    if (!st) st = hk_h5_attr_str(f, "hook", s->hook);
    if (!st) st = hk_h5_attr_i64(f, "top", K);
    if (!st) st = hk_h5_attr_i64(f, "window", t->window);
    if (!st) st = hk_h5_attr_i64(f, "tokens", t->tokens);
    if (!st) st = hk_h5_f32(f, "max_activation", t->max_act, 1, s1, "feature");
    if (!st) st = h5_i64(f, "active_tokens", t->active, 1, s1, "feature");
    if (!st) st = hk_h5_f32(f, "top_values", t->top_values, 2, s2, "feature rank");
    if (!st) st = h5_i64(f, "top_seq", t->top_seq, 2, s2, "feature rank");
    if (!st) st = h5_i64(f, "top_pos", t->top_pos, 2, s2, "feature rank");
    if (!st) st = hk_h5_i32(f, "window_tokens", t->win_tokens, 3, s3, "feature rank offset");
    if (!st) st = hk_h5_f32(f, "window_values", t->win_values, 3, s3, "feature rank offset");
    if (st) hk_error_prefix(st, "%s", path);
    hk_status fst = hk_h5_finish(f, tmp, path, st == HK_OK);
    free(tmp);
    return st ? st : fst;
}
