/* Batched activation patching. A forward runs `batch` patches at once: the prompt set is
 * replicated along the batch (item k owns rows k*n_prompts .. +n_prompts-1), and one filter
 * registration over the sweep's points writes, in each item's rows, the source's value at
 * that item's (layer, position[, head]). The metric is read at unembed.hook_in (metric.c);
 * no [rows, vocab] logits are built. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/forward.h"
#include "experiment.h"

/* ---- points ---- */

const hk_hook_point *hk_xp_block_point(const hk_model *m, int64_t layer, const char *suffix) {
    char name[160];
    snprintf(name, sizeof name, "blocks.%lld.%s", (long long)layer, suffix);
    for (size_t i = 0; i < hk_model_hook_count(m); i++) {
        const hk_hook_point *pt = hk_model_hook_at(m, i);
        if (strcmp(pt->name, name) == 0) return pt;
    }
    return NULL;
}

static bool is_head_point(const hk_hook_point *pt) {
    return pt->ndim == 4 && (strncmp(pt->dims, "batch pos head_index ", 21) == 0 ||
                             strncmp(pt->dims, "batch pos kv_head_index ", 24) == 0);
}

hk_status hk_xp_sweep_items(const hk_model *m, const hk_sweep_spec *spec, int64_t seq,
                            hk_xp_item **items, int64_t *n_items, hk_sweep_result *r) {
    if (!spec || !spec->point || !spec->point[0])
        return hk_errorf(HK_ERR_INVALID_ARG, "sweep: the spec needs a point "
                                             "(\"hook_resid_pre\", \"attn.hook_z\", ...)");
    if (strlen(spec->point) >= sizeof r->point)
        return hk_errorf(HK_ERR_INVALID_ARG, "sweep: point name '%s' is too long", spec->point);
    const int64_t L = m->cfg.n_layers;
    if (spec->layer >= L || spec->layer < -1)
        return hk_errorf(HK_ERR_INVALID_ARG, "sweep: layer %lld, expected -1 (every layer) or "
                                             "0..%lld", (long long)spec->layer,
                         (long long)(L - 1));
    const int64_t l0 = spec->layer >= 0 ? spec->layer : 0;
    const int64_t nl = spec->layer >= 0 ? 1 : L;
    const hk_hook_point *pt = hk_xp_block_point(m, l0, spec->point);
    if (!pt)
        return hk_errorf(HK_ERR_NOT_FOUND, "sweep: the model has no point 'blocks.%lld.%s' "
                                           "(a block point without its 'blocks.L.' prefix, "
                                           "e.g. hook_resid_pre or attn.hook_z)",
                         (long long)l0, spec->point);
    if (pt->ndim < 3 || strncmp(pt->dims, "batch pos ", 10) != 0)
        return hk_errorf(HK_ERR_UNSUPPORTED, "sweep: point %s has dims [%s]; patching needs "
                                             "[batch, pos, ...]", pt->name, pt->dims);
    if (spec->per_head && !is_head_point(pt))
        return hk_errorf(HK_ERR_INVALID_ARG, "sweep: per_head needs a per-head point such as "
                                             "attn.hook_z; %s has dims [%s]",
                         pt->name, pt->dims);
    const int64_t nh = spec->per_head ? pt->shape[2] : 1;
    const int64_t np = spec->per_position ? seq : 1;
    memset(r, 0, sizeof *r);
    snprintf(r->point, sizeof r->point, "%s", spec->point);
    r->layer0 = l0;
    r->dims[0] = "layer";
    r->shape[0] = nl;
    r->ndim = 1;
    if (spec->per_position) {
        r->dims[r->ndim] = "pos";
        r->shape[r->ndim++] = seq;
    }
    if (spec->per_head) {
        r->dims[r->ndim] = "head";
        r->shape[r->ndim++] = nh;
    }
    r->reference = NAN;
    const int64_t n = nl * np * nh;
    hk_xp_item *it = malloc((size_t)n * sizeof *it);
    if (!it) return hk_errorf(HK_ERR_NOMEM, "sweep: out of memory for %lld patches", (long long)n);
    int64_t k = 0;
    for (int64_t l = 0; l < nl; l++) {
        const hk_hook_point *pl = hk_xp_block_point(m, l0 + l, spec->point);
        if (!pl) {
            free(it);
            return hk_errorf(HK_ERR_NOT_FOUND, "sweep: the model has no point 'blocks.%lld.%s'",
                             (long long)(l0 + l), spec->point);
        }
        for (int64_t p = 0; p < np; p++)
            for (int64_t h = 0; h < nh; h++)
                it[k++] = (hk_xp_item){pl->name, l0 + l, spec->per_position ? p : -1,
                                       spec->per_head ? h : -1};
    }
    *items = it;
    *n_items = n;
    r->patches = n;
    return HK_OK;
}

int64_t hk_xp_choose_batch(const hk_model *m, int64_t o_batch, size_t max_bytes,
                           int64_t n_prompts, int64_t seq, int64_t n_items) {
    if (o_batch > 0) return o_batch < n_items ? o_batch : n_items;
    if (!max_bytes) max_bytes = (size_t)512 << 20;
    int64_t best = 1;
    for (int64_t b = 1; b <= 64 && b <= n_items; b++) {
        if (b > 1 && b * n_prompts * seq > 4096) break;
        hk_estimate e;
        if (hk_estimate_run(m, b * n_prompts, seq, 0, NULL, 0, true, &e) != HK_OK) break;
        if (e.activations + e.attention > max_bytes) break;
        best = b;
    }
    return best;
}

/* ---- the engine ---- */

typedef struct {
    const hk_xp_engine *e;
    const hk_xp_item *items; /* this forward's items */
    int64_t n;
} patch_state;

static bool in_sweep(const char *name, void *user) {
    const hk_xp_item *items = ((const patch_state *)user)->items;
    int64_t n = ((const patch_state *)user)->n;
    for (int64_t k = 0; k < n; k++)
        if (strcmp(items[k].name, name) == 0) return true;
    return false;
}

static hk_hook_result patch_fire(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    const patch_state *ps = user;
    const hk_xp_engine *e = ps->e;
    const int64_t np = e->p->n_prompts, T = act->shape[1];
    int64_t inner = 1;
    for (int d = 2; d < act->ndim; d++) inner *= act->shape[d];
    /* inner dims contiguous (the forward hands contiguous views) */
    if (act->stride[act->ndim - 1] != 1 || (act->ndim == 4 && act->stride[2] != act->shape[3])) {
        hk_hook_error("patch: %s is not contiguous in its inner dims", ctx->name);
        return HK_HOOK_ERROR;
    }
    const int64_t hd = act->ndim == 4 ? act->shape[3] : inner; /* floats of one head */
    float *x = act->data;
    for (int64_t k = 0; k < ps->n; k++) {
        const hk_xp_item *it = &ps->items[k];
        if (strcmp(it->name, ctx->name) != 0) continue;
        int64_t p_lo = it->pos >= 0 ? it->pos : 0, p_hi = it->pos >= 0 ? it->pos + 1 : T;
        for (int64_t i = 0; i < np; i++) {
            int64_t b = k * np + i;
            if (b < ctx->batch_offset || b >= ctx->batch_offset + act->shape[0]) continue;
            for (int64_t p = p_lo; p < p_hi; p++) {
                int64_t src_pos = e->pos_map ? e->pos_map[p] : p;
                if (src_pos < 0) continue;
                const float *v;
                hk_status st = e->src->get(e->src->user, ctx->name, i, src_pos, inner, &v);
                if (st != HK_OK) {
                    hk_hook_error("patch source: %s", hk_last_error());
                    return HK_HOOK_ERROR;
                }
                float *dst = x + (b - ctx->batch_offset) * act->stride[0] + p * act->stride[1];
                if (it->head >= 0)
                    memcpy(dst + it->head * hd, v + it->head * hd, (size_t)hd * sizeof(float));
                else
                    memcpy(dst, v, (size_t)inner * sizeof(float));
            }
        }
    }
    return HK_HOOK_CONTINUE;
}

hk_status hk_xp_run_items(hk_model *m, const hk_xp_engine *e, const hk_xp_item *items,
                          int64_t n_items, float *metric, int64_t *forwards) {
    const hk_prompt_set *p = e->p;
    const int64_t np = p->n_prompts, T = p->seq, bs = e->batch, d = m->cfg.d_model;
    hk_xp_metric mt;
    hk_status st = hk_xp_metric_init(&mt, m, p, bs * np);
    if (st != HK_OK) return st;
    int32_t *tokens = malloc((size_t)(bs * np * T) * sizeof *tokens); /* [bs * np, T] */
    float *resid0 = NULL;                                              /* [bs * np, T, d] */
    hk_cache *pre = NULL;
    hk_hooks *h = NULL;
    if (!tokens) st = hk_errorf(HK_ERR_NOMEM, "patch: out of memory for a batch of %lld rows",
                                (long long)(bs * np));
    int64_t lo = INT64_MAX, hi = -1; /* the layers patched */
    for (int64_t k = 0; k < n_items; k++) {
        if (items[k].layer < lo) lo = items[k].layer;
        if (items[k].layer > hi) hi = items[k].layer;
    }
    if (st == HK_OK && !e->full_forward && hi > 0) {
        /* the unpatched run's residual before the patched blocks: a batch starts at its first
         * layer. Cached without logits, that run stops at the last block cached (one layer:
         * only that one's resid_pre). */
        char one[64];
        snprintf(one, sizeof one, "blocks.%lld.hook_resid_pre", (long long)lo);
        const char *pats[] = {lo == hi ? one : "blocks.*.hook_resid_pre"};
        st = hk_xp_run_with_cache(m, e->hooks, p->tokens, NULL, np, T, pats, 1, "all", NULL,
                                  &pre);
        resid0 = st == HK_OK ? malloc((size_t)(bs * np * T * d) * sizeof *resid0) : NULL;
        if (st == HK_OK && !resid0) st = hk_errorf(HK_ERR_NOMEM, "patch: out of memory");
    }
    hk_xp_hooks xh = {0};
    if (st == HK_OK) st = hk_xp_hooks_open(m, e->hooks, &xh);
    h = xh.h;
    if (st == HK_OK) st = hk_xp_metric_attach(&mt, h);
    for (int64_t k = 0; k < bs && st == HK_OK; k++)
        memcpy(tokens + k * np * T, p->tokens, (size_t)(np * T) * sizeof *tokens);
    int64_t n_fw = 0;
    const hk_sweep_part sh = e->share;
    for (int64_t k0 = 0; k0 < n_items && st == HK_OK; k0 += bs) {
        patch_state ps = {e, items + k0, n_items - k0 < bs ? n_items - k0 : bs};
        if (sh.n_parts > 1 && (k0 / bs) % sh.n_parts != sh.part) {
            for (int64_t k = 0; k < ps.n; k++) metric[k0 + k] = NAN; /* another share's */
            continue;
        }
        int64_t layer0 = INT64_MAX;
        for (int64_t k = 0; k < ps.n; k++)
            if (ps.items[k].layer < layer0) layer0 = ps.items[k].layer;
        hk_hook_handle hh;
        st = hk_hooks_add_filter(h, in_sweep, &ps, patch_fire, &ps, &hh);
        if (st != HK_OK) break;
        if (pre && layer0 > 0) {
            const hk_tensor *t = hk_cache_get_layer(pre, "hook_resid_pre", layer0);
            for (int64_t k = 0; k < ps.n; k++)
                memcpy(resid0 + k * np * T * d, t->data, (size_t)(np * T * d) * sizeof *resid0);
            st = hk_forward_from_layer(m, h, tokens, ps.n * np, T, layer0, resid0, NULL);
        } else {
            st = hk_model_run(m, h, tokens, NULL, ps.n * np, T, NULL);
        }
        hk_hooks_remove(h, hh);
        n_fw++;
        for (int64_t k = 0; k < ps.n && st == HK_OK; k++) metric[k0 + k] = hk_xp_metric_item(&mt, k);
    }
    if (forwards) *forwards = n_fw;
    hk_xp_hooks_close(&xh);
    hk_cache_free(pre);
    free(resid0);
    free(tokens);
    hk_xp_metric_free(&mt);
    return st;
}

/* change and normalized (when allocated) from values */
static void derive(hk_sweep_result *r) {
    const double span = (double)r->reference - (double)r->baseline;
    for (int64_t k = 0; k < r->patches; k++) {
        r->change[k] = r->values[k] - r->baseline;
        if (r->normalized)
            r->normalized[k] = span != 0 ? (float)((r->values[k] - (double)r->baseline) / span)
                                         : NAN;
    }
}

hk_status hk_xp_finish_result(hk_sweep_result *r, bool with_normalized) {
    int64_t n = r->patches;
    r->change = malloc((size_t)n * sizeof *r->change);
    if (with_normalized) r->normalized = malloc((size_t)n * sizeof *r->normalized);
    if (!r->change || (with_normalized && !r->normalized))
        return hk_errorf(HK_ERR_NOMEM, "sweep: out of memory");
    derive(r);
    return HK_OK;
}

hk_status hk_sweep_merge(hk_sweep_result *r, const float *values, const int64_t *forwards,
                         int64_t n_parts) {
    if (!r || !r->values || !r->change || !values || !forwards || n_parts < 1 || r->batch < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sweep_merge: a sweep result, the shares' "
                                             "values and forwards, n_parts >= 1 are required");
    r->forwards = 0;
    for (int64_t p = 0; p < n_parts; p++) r->forwards += forwards[p];
    for (int64_t k = 0; k < r->patches; k++)
        r->values[k] = values[((k / r->batch) % n_parts) * r->patches + k];
    derive(r);
    return HK_OK;
}

void hk_sweep_result_free(hk_sweep_result *r) {
    if (!r) return;
    free(r->values);
    free(r->change);
    free(r->normalized);
    r->values = r->change = r->normalized = NULL;
}

/* ---- a source over an in-memory cache ---- */

static hk_status cache_get(void *user, const char *name, int64_t prompt, int64_t pos, int64_t n,
                           const float **out) {
    const hk_tensor *t = hk_cache_get(user, name);
    if (!t) return hk_errorf(HK_ERR_NOT_FOUND, "cache source: %s is not in the cache", name);
    int64_t inner = 1;
    for (int d = 2; d < t->ndim; d++) inner *= t->shape[d];
    if (t->ndim < 3 || inner != n || prompt < 0 || prompt >= t->shape[0] || pos < 0 ||
        pos >= t->shape[1])
        return hk_errorf(HK_ERR_SHAPE, "cache source: %s holds [%lld, %lld, %lld floats]; asked "
                                       "for prompt %lld, position %lld, %lld floats",
                         name, (long long)t->shape[0], (long long)t->shape[1], (long long)inner,
                         (long long)prompt, (long long)pos, (long long)n);
    *out = (const float *)t->data + (prompt * t->shape[1] + pos) * inner;
    return HK_OK;
}

hk_act_source hk_act_source_cache(const hk_cache *c) {
    return (hk_act_source){cache_get, (void *)c};
}

/* ---- activation patching ---- */

hk_status hk_patch_sweep(hk_model *m, const hk_prompt_set *corrupted, const hk_patch_opts *o,
                         const hk_sweep_spec *spec, hk_sweep_result *out) {
    if (!out || !o) return hk_errorf(HK_ERR_INVALID_ARG, "hk_patch_sweep: NULL options or out");
    memset(out, 0, sizeof *out);
    hk_status st = hk_xp_check_prompts(m, corrupted, "hk_patch_sweep");
    if (st != HK_OK) return st;
    const int64_t np = corrupted->n_prompts, T = corrupted->seq;
    if (!o->clean || o->clean_seq < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_patch_sweep: the clean prompts are missing");
    if (!o->pos_map && o->clean_seq != T)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_patch_sweep: clean prompts have %lld tokens and "
                                             "corrupted ones %lld: give a pos_map",
                         (long long)o->clean_seq, (long long)T);
    for (int64_t t = 0; o->pos_map && t < T; t++)
        if (o->pos_map[t] < -1 || o->pos_map[t] >= o->clean_seq)
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_patch_sweep: pos_map[%lld] = %lld, expected "
                                                 "-1..%lld", (long long)t,
                             (long long)o->pos_map[t], (long long)(o->clean_seq - 1));
    hk_prompt_set clean = {np, o->clean_seq, o->clean, corrupted->answer, corrupted->wrong};
    if ((st = hk_xp_check_prompts(m, &clean, "hk_patch_sweep (clean prompts)")) != HK_OK)
        return st;
    hk_xp_item *items = NULL;
    int64_t n_items = 0;
    if ((st = hk_xp_sweep_items(m, spec, T, &items, &n_items, out)) != HK_OK) return st;
    hk_cache *cache = NULL;
    hk_act_source cache_src;
    const hk_act_source *src = o->source;
    if ((st = hk_prompt_metric(m, o->hooks, corrupted, &out->baseline)) != HK_OK) goto done;
    if (!src) {
        char pattern[96];
        snprintf(pattern, sizeof pattern, "blocks.*.%s", spec->point);
        const char *pats[] = {pattern};
        if ((st = hk_cache_new(m, &cache)) != HK_OK) goto done;
        hk_xp_hooks xh = {0};
        hk_xp_metric mt;
        if ((st = hk_xp_metric_init(&mt, m, &clean, np)) != HK_OK) goto done;
        st = hk_xp_hooks_open(m, o->hooks, &xh);
        if (st == HK_OK) st = hk_cache_attach(cache, xh.h, pats, 1, "all");
        if (st == HK_OK) st = hk_xp_metric_attach(&mt, xh.h);
        if (st == HK_OK) st = hk_model_run(m, xh.h, o->clean, NULL, np, o->clean_seq, NULL);
        if (st == HK_OK) out->reference = hk_xp_metric_item(&mt, 0);
        hk_xp_hooks_close(&xh);
        hk_xp_metric_free(&mt);
        if (st != HK_OK) goto done;
        cache_src = hk_act_source_cache(cache);
        src = &cache_src;
    } else if ((st = hk_prompt_metric(m, o->hooks, &clean, &out->reference)) != HK_OK) {
        goto done;
    }
    out->values = malloc((size_t)n_items * sizeof *out->values);
    if (!out->values) {
        st = hk_errorf(HK_ERR_NOMEM, "hk_patch_sweep: out of memory");
        goto done;
    }
    out->batch = hk_xp_choose_batch(m, o->batch, o->max_bytes, np, T, n_items);
    hk_xp_engine e = {corrupted, o->pos_map, src, out->batch, o->full_forward, o->hooks,
                      o->share};
    st = hk_xp_run_items(m, &e, items, n_items, out->values, &out->forwards);
    if (st == HK_OK) st = hk_xp_finish_result(out, true);
done:
    hk_cache_free(cache);
    free(items);
    if (st != HK_OK) hk_sweep_result_free(out);
    return st;
}
