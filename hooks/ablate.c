/* Ablation sweeps: the sweep engine (sweep.c) run over the prompts themselves, with a source
 * that gives zeros, the mean over a reference set (streamed: sums accumulated one batch of
 * reference prompts at a time), or a reference prompt's activation (resample). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "experiment.h"

const char *hk_ablate_mode_name(hk_ablate_mode mode) {
    switch (mode) {
    case HK_ABLATE_ZERO: return "zero";
    case HK_ABLATE_MEAN: return "mean";
    case HK_ABLATE_RESAMPLE: return "resample";
    }
    return "unknown";
}

/* ---- zero ---- */

typedef struct {
    float *zeros;
    int64_t n;
} zero_src;

static hk_status zero_get(void *user, const char *name, int64_t prompt, int64_t pos, int64_t n,
                          const float **out) {
    (void)prompt, (void)pos;
    zero_src *z = user;
    if (n > z->n)
        return hk_errorf(HK_ERR_SHAPE, "zero source: %s has %lld floats, room for %lld", name,
                         (long long)n, (long long)z->n);
    *out = z->zeros;
    return HK_OK;
}

/* ---- mean over the reference prompts ---- */

typedef struct {
    int64_t n_layers, l0, inner;
    const char **names; /* [n_layers] the model's point names */
    double *sum;        /* [n_layers, inner] */
    float *mean;        /* [n_layers, inner] */
    int64_t count;      /* positions summed (the same at every layer) */
    const int64_t *lengths; /* of the current batch of reference prompts */
} mean_src;

static hk_hook_result mean_accumulate(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    mean_src *ms = user;
    int64_t l = ctx->layer - ms->l0, inner = ms->inner;
    if (l < 0 || l >= ms->n_layers) return HK_HOOK_CONTINUE;
    const float *x = act->data;
    for (int64_t b = 0; b < act->shape[0]; b++) {
        int64_t len = ms->lengths[ctx->batch_offset + b];
        for (int64_t t = 0; t < len && t < act->shape[1]; t++) {
            const float *row = x + b * act->stride[0] + t * act->stride[1];
            double *s = ms->sum + l * inner;
            for (int64_t j = 0; j < inner; j++) s[j] += row[j];
            if (l == 0) ms->count++;
        }
    }
    return HK_HOOK_CONTINUE;
}

static bool mean_filter(const char *name, void *user) {
    const mean_src *ms = user;
    for (int64_t l = 0; l < ms->n_layers; l++)
        if (strcmp(ms->names[l], name) == 0) return true;
    return false;
}

static hk_status mean_get(void *user, const char *name, int64_t prompt, int64_t pos, int64_t n,
                          const float **out) {
    (void)prompt, (void)pos;
    const mean_src *ms = user;
    for (int64_t l = 0; l < ms->n_layers; l++)
        if (strcmp(ms->names[l], name) == 0) {
            if (n != ms->inner)
                return hk_errorf(HK_ERR_SHAPE, "mean source: %s: %lld floats asked, %lld held",
                                 name, (long long)n, (long long)ms->inner);
            *out = ms->mean + l * ms->inner;
            return HK_OK;
        }
    return hk_errorf(HK_ERR_NOT_FOUND, "mean source: no mean of %s", name);
}

static hk_status mean_build(hk_model *m, const hk_ablate_opts *o, const hk_sweep_result *r,
                            const hk_xp_item *items, int64_t n_items, mean_src *ms) {
    memset(ms, 0, sizeof *ms);
    ms->n_layers = r->shape[0];
    ms->l0 = r->layer0;
    const hk_hook_point *pt = hk_xp_block_point(m, r->layer0, r->point);
    ms->inner = 1;
    for (int d = 2; d < pt->ndim; d++) ms->inner *= pt->shape[d];
    ms->names = malloc((size_t)ms->n_layers * sizeof *ms->names);
    ms->sum = calloc((size_t)(ms->n_layers * ms->inner), sizeof *ms->sum);
    ms->mean = malloc((size_t)(ms->n_layers * ms->inner) * sizeof *ms->mean);
    if (!ms->names || !ms->sum || !ms->mean) return hk_errorf(HK_ERR_NOMEM, "mean: out of memory");
    for (int64_t k = 0; k < n_items; k++) ms->names[items[k].layer - ms->l0] = items[k].name;
    int64_t *lens = malloc((size_t)o->n_ref * sizeof *lens);
    if (!lens) return hk_errorf(HK_ERR_NOMEM, "mean: out of memory");
    for (int64_t i = 0; i < o->n_ref; i++) lens[i] = o->ref_lengths ? o->ref_lengths[i] : o->ref_seq;
    hk_xp_hooks xh = {0};
    hk_status st = hk_xp_hooks_open(m, o->hooks, &xh);
    hk_hooks *h = xh.h;
    if (st == HK_OK) st = hk_hooks_add_filter(h, mean_filter, ms, mean_accumulate, ms, NULL);
    /* stream the reference set: a few prompts per forward, sums only are kept */
    const int64_t chunk = hk_xp_choose_batch(m, 0, o->max_bytes, 1, o->ref_seq, 16);
    for (int64_t i0 = 0; i0 < o->n_ref && st == HK_OK; i0 += chunk) {
        int64_t nb = o->n_ref - i0 < chunk ? o->n_ref - i0 : chunk;
        ms->lengths = lens + i0;
        st = hk_model_run(m, h, o->ref + i0 * o->ref_seq, lens + i0, nb, o->ref_seq, NULL);
    }
    hk_xp_hooks_close(&xh);
    free(lens);
    if (st != HK_OK) return st;
    if (ms->count == 0) return hk_errorf(HK_ERR_INVALID_ARG, "mean: no reference positions");
    for (int64_t j = 0; j < ms->n_layers * ms->inner; j++)
        ms->mean[j] = (float)(ms->sum[j] / (double)ms->count);
    return HK_OK;
}

static void mean_free(mean_src *ms) {
    free(ms->names);
    free(ms->sum);
    free(ms->mean);
}

/* ---- resample: prompt i reads reference prompt idx[i] ---- */

typedef struct {
    hk_act_source inner;
    const int64_t *idx;
} resample_src;

static hk_status resample_get(void *user, const char *name, int64_t prompt, int64_t pos,
                              int64_t n, const float **out) {
    const resample_src *rs = user;
    return rs->inner.get(rs->inner.user, name, rs->idx[prompt], pos, n, out);
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

hk_status hk_ablate_sweep(hk_model *m, const hk_prompt_set *p, const hk_ablate_opts *o,
                          const hk_sweep_spec *spec, hk_sweep_result *out) {
    if (!out || !o) return hk_errorf(HK_ERR_INVALID_ARG, "hk_ablate_sweep: NULL options or out");
    memset(out, 0, sizeof *out);
    hk_status st = hk_xp_check_prompts(m, p, "hk_ablate_sweep");
    if (st != HK_OK) return st;
    if (o->mode != HK_ABLATE_ZERO) {
        if (!o->ref || o->n_ref < 1 || o->ref_seq < 1)
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_ablate_sweep: %s ablation needs reference "
                                                 "prompts", hk_ablate_mode_name(o->mode));
        for (int64_t i = 0; i < o->n_ref * o->ref_seq; i++)
            if (o->ref[i] < 0 || o->ref[i] >= m->cfg.d_vocab)
                return hk_errorf(HK_ERR_INVALID_ARG, "hk_ablate_sweep: reference token %d "
                                                     "outside the vocabulary", o->ref[i]);
    }
    if (o->mode == HK_ABLATE_RESAMPLE) {
        if (o->ref_seq < p->seq)
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_ablate_sweep: resample needs reference "
                                                 "prompts of at least %lld tokens, got %lld",
                             (long long)p->seq, (long long)o->ref_seq);
        for (int64_t i = 0; o->resample_idx && i < p->n_prompts; i++)
            if (o->resample_idx[i] < 0 || o->resample_idx[i] >= o->n_ref)
                return hk_errorf(HK_ERR_INVALID_ARG, "hk_ablate_sweep: resample_idx[%lld] = %lld, "
                                                     "expected 0..%lld", (long long)i,
                                 (long long)o->resample_idx[i], (long long)(o->n_ref - 1));
    }
    hk_xp_item *items = NULL;
    int64_t n_items = 0;
    if ((st = hk_xp_sweep_items(m, spec, p->seq, &items, &n_items, out)) != HK_OK) return st;
    zero_src zs = {0};
    mean_src ms = {0};
    resample_src rs = {0};
    hk_cache *cache = NULL;
    int64_t *idx = NULL;
    hk_act_source src;
    if ((st = hk_prompt_metric(m, o->hooks, p, &out->baseline)) != HK_OK) goto done;
    if (o->mode == HK_ABLATE_ZERO) {
        const hk_hook_point *pt = hk_xp_block_point(m, out->layer0, spec->point);
        zs.n = 1;
        for (int d = 2; d < pt->ndim; d++) zs.n *= pt->shape[d];
        zs.zeros = calloc((size_t)zs.n, sizeof *zs.zeros);
        if (!zs.zeros) {
            st = hk_errorf(HK_ERR_NOMEM, "hk_ablate_sweep: out of memory");
            goto done;
        }
        src = (hk_act_source){zero_get, &zs};
    } else if (o->mode == HK_ABLATE_MEAN) {
        if ((st = mean_build(m, o, out, items, n_items, &ms)) != HK_OK) goto done;
        src = (hk_act_source){mean_get, &ms};
    } else if (o->mode == HK_ABLATE_RESAMPLE) {
        idx = malloc((size_t)p->n_prompts * sizeof *idx);
        if (!idx) {
            st = hk_errorf(HK_ERR_NOMEM, "hk_ablate_sweep: out of memory");
            goto done;
        }
        uint64_t s = o->seed;
        for (int64_t i = 0; i < p->n_prompts; i++)
            idx[i] = o->resample_idx ? o->resample_idx[i]
                                     : (int64_t)(splitmix64(&s) % (uint64_t)o->n_ref);
        char pattern[96];
        snprintf(pattern, sizeof pattern, "blocks.*.%s", spec->point);
        const char *pats[] = {pattern};
        if ((st = hk_xp_run_with_cache(m, o->hooks, o->ref, o->ref_lengths, o->n_ref,
                                       o->ref_seq, pats, 1, "all", NULL, &cache)) != HK_OK)
            goto done;
        rs = (resample_src){hk_act_source_cache(cache), idx};
        src = (hk_act_source){resample_get, &rs};
    } else {
        st = hk_errorf(HK_ERR_INVALID_ARG, "hk_ablate_sweep: unknown mode %d", (int)o->mode);
        goto done;
    }
    out->values = malloc((size_t)n_items * sizeof *out->values);
    if (!out->values) {
        st = hk_errorf(HK_ERR_NOMEM, "hk_ablate_sweep: out of memory");
        goto done;
    }
    out->batch = hk_xp_choose_batch(m, o->batch, o->max_bytes, p->n_prompts, p->seq, n_items);
    hk_xp_engine e = {p, NULL, &src, out->batch, o->full_forward, o->hooks, o->share};
    st = hk_xp_run_items(m, &e, items, n_items, out->values, &out->forwards);
    if (st == HK_OK) st = hk_xp_finish_result(out, false);
done:
    free(zs.zeros);
    mean_free(&ms);
    hk_cache_free(cache);
    free(idx);
    free(items);
    if (st != HK_OK) hk_sweep_result_free(out);
    return st;
}
