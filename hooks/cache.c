/* The in-memory activation cache (TransformerLens run_with_cache).
 *
 * One hk_cache_attach adds one registration (a filter: "matches one of the patterns") whose
 * callback copies the activation it is handed into a cache-owned contiguous f32 buffer.
 * Entries are sized at their first fire from ctx->run_batch / ctx->run_seq and the incoming
 * shape; every fire writes its slice at (batch_offset, pos_offset[, key_offset]), so
 * [batch, pos, ...] views of a whole call and attention chunks [1, head, q_chunk, k_len]
 * assemble the same way. Which dim is the batch, the (query) position and the key position
 * comes from the point's dims ("batch head_index query_pos key_pos"), never from its name.
 * A call is a run (hk_model_run) or a session feed: positions are counted from the call's
 * first one (call_base), keys from position 0. Points added to the hooks (an attached SAE's
 * hook_sae_* points, hk_hooks_add_point) are cached too, as [batch, pos, width]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/model.h"
#include "experiment.h"
#include "positions.h"
#include "registry.h"

typedef struct {
    int32_t point;     /* index in the model's points, or -1 for a point added to the hooks */
    const char *name;  /* the model's name of the point (an added point's: own_name) */
    char *own_name;    /* a copy of an added point's name (it lives in the hooks), or NULL */
    const char *dims;  /* the point's dims ("batch pos d_model") */
    int batch_dim, pos_dim, key_dim; /* roles of the dims; -1 when absent */
    float fill;        /* value of keys a chunk did not deliver: -inf (scores) or 0 */
    hk_selection sel;
    bool held;         /* t holds an activation */
    hk_tensor t;       /* [.. selected ..] contiguous f32, data owned */
} cache_entry;

struct hk_cache {
    const hk_model *model;
    cache_entry *e; /* [n] in registration order */
    size_t n, cap;
    int32_t *entry_of; /* [n_points] entry index of a point, or -1 */
    size_t hint;       /* entry of the last fire: fires mostly come in registration order */
    int64_t *lengths;  /* [n_lengths] for positions "last", or NULL */
    int64_t n_lengths;
};

/* ---- lifetime ---- */

hk_status hk_cache_new(const hk_model *m, hk_cache **out) {
    if (!m || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_cache_new: NULL argument");
    *out = NULL;
    hk_cache *c = calloc(1, sizeof *c);
    size_t np = m->points.n;
    int32_t *map = c ? malloc((np ? np : 1) * sizeof *map) : NULL;
    if (!map) {
        free(c);
        return hk_errorf(HK_ERR_NOMEM, "hk_cache_new: out of memory");
    }
    for (size_t i = 0; i < np; i++) map[i] = -1;
    c->model = m;
    c->entry_of = map;
    *out = c;
    return HK_OK;
}

void hk_cache_clear(hk_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->e[i].t.data);
        c->e[i].t.data = NULL;
        c->e[i].held = false;
    }
}

void hk_cache_free(hk_cache *c) {
    if (!c) return;
    hk_cache_clear(c);
    for (size_t i = 0; i < c->n; i++) free(c->e[i].own_name);
    free(c->e);
    free(c->entry_of);
    free(c->lengths);
    free(c);
}

static hk_status store_lengths(hk_cache *c, const int64_t *lengths, int64_t batch);

hk_status hk_cache_set_lengths(hk_cache *c, const int64_t *lengths, int64_t batch) {
    if (!c) return hk_errorf(HK_ERR_INVALID_ARG, "hk_cache_set_lengths: NULL cache");
    if (!lengths) {
        free(c->lengths);
        c->lengths = NULL;
        c->n_lengths = 0;
        return HK_OK;
    }
    if (batch <= 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_cache_set_lengths: batch %lld, expected > 0",
                         (long long)batch);
    for (int64_t b = 0; b < batch; b++)
        if (lengths[b] < 1)
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "hk_cache_set_lengths: lengths[%lld] = %lld, expected >= 1",
                             (long long)b, (long long)lengths[b]);
    return store_lengths(c, lengths, batch);
}

/* Copy lengths[0..batch) (batch > 0) into the cache. */
static hk_status store_lengths(hk_cache *c, const int64_t *lengths, int64_t batch) {
    int64_t *copy = malloc((size_t)batch * sizeof *copy);
    if (!copy) return hk_errorf(HK_ERR_NOMEM, "hk_cache_set_lengths: out of memory");
    memcpy(copy, lengths, (size_t)batch * sizeof *copy);
    free(c->lengths);
    c->lengths = copy;
    c->n_lengths = batch;
    return HK_OK;
}

/* ---- attach ---- */

typedef struct {
    const char *const *patterns;
    size_t n;
} pattern_set;

static bool matches_any(const char *name, void *user) {
    const pattern_set *ps = user;
    return hk_glob_match_any(ps->patterns, ps->n, name);
}

/* Roles of the dims from the point's dims string ("batch pos head_index d_head"). */
static void dim_roles(const char *dims, int ndim, cache_entry *e) {
    e->batch_dim = e->pos_dim = e->key_dim = -1;
    int d = 0;
    for (const char *p = dims; *p && d < ndim; d++) {
        size_t len = strcspn(p, " ");
#define IS(s) (len == sizeof(s) - 1 && strncmp(p, s, len) == 0)
        if (IS("batch")) e->batch_dim = d;
        else if (IS("pos") || IS("query_pos")) e->pos_dim = d;
        else if (IS("key_pos")) e->key_dim = d;
#undef IS
        p += len;
        p += strspn(p, " ");
    }
}

static hk_hook_result on_fire(hk_tensor *act, const hk_hook_ctx *ctx, void *user);

/* The dims of a point added to the hooks (hk_hooks_add_point: an SAE's hook_sae_* points,
 * rows of the activation it reads): [batch, pos, width]. */
static const char added_dims[] = "batch pos d";

static bool cached(const hk_cache *c, const char *name) {
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].name, name) == 0) return true;
    return false;
}

hk_status hk_cache_attach(hk_cache *c, hk_hooks *hooks, const char *const *patterns, size_t n,
                          const char *positions) {
    if (!c || !hooks || (!patterns && n > 0))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_cache_attach: cache, hooks and patterns are "
                                             "required");
    if (n == 0) return hk_errorf(HK_ERR_INVALID_ARG, "hk_cache_attach: no pattern given");
    if (hooks->model != c->model)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_cache_attach: the hooks were made for another "
                                             "model than the cache");
    hk_selection sel;
    hk_status st = hk_selection_parse(positions, "hk_cache_attach", &sel);
    if (st != HK_OK) return st;
    const hk_points *pts = &c->model->points;
    for (size_t i = 0; i < n; i++) {
        if (!patterns[i])
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_cache_attach: patterns[%zu] is NULL", i);
        bool hit = false;
        for (size_t p = 0; p < pts->n && !hit; p++)
            hit = hk_glob_match(patterns[i], pts->points[p].name);
        for (size_t p = hooks->n_model_points; p < hooks->n_points && !hit; p++)
            hit = hk_glob_match(patterns[i], hk_hooks_point_name(hooks, p));
        if (!hit) return hk_hook_not_found(pts, c->model->cfg.family, patterns[i], NULL);
    }
    pattern_set ps = {patterns, n};
    size_t added = 0;
    for (size_t p = 0; p < hooks->n_points; p++) {
        const char *name = hk_hooks_point_name(hooks, p);
        if (!matches_any(name, &ps)) continue;
        if (p < pts->n ? c->entry_of[p] >= 0 : cached(c, name))
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "hk_cache_attach: '%s' is already cached by an earlier "
                             "hk_cache_attach (a cache holds one copy of each point)", name);
        added++;
    }
    if (c->n + added > c->cap) {
        size_t cap = c->cap ? c->cap : 16;
        while (cap < c->n + added) cap *= 2;
        cache_entry *e = realloc(c->e, cap * sizeof *e);
        if (!e) return hk_errorf(HK_ERR_NOMEM, "hk_cache_attach: out of memory");
        c->e = e;
        c->cap = cap;
    }
    /* the cache only reads: on a device, no copy goes back */
    st = hk_hooks_add_filter_flags(hooks, matches_any, &ps, on_fire, c, HK_HOOK_READ_ONLY, NULL);
    if (st != HK_OK) return st;
    for (size_t p = 0; p < pts->n; p++) {
        if (!matches_any(pts->points[p].name, &ps)) continue;
        cache_entry *e = &c->e[c->n];
        memset(e, 0, sizeof *e);
        e->point = (int32_t)p;
        e->name = pts->points[p].name;
        e->dims = pts->points[p].dims;
        e->sel = sel;
        e->fill = pts->kinds[p] == HK_PT_ATTN_SCORES ? -INFINITY : 0.0f;
        dim_roles(e->dims, pts->points[p].ndim, e);
        c->entry_of[p] = (int32_t)c->n++;
    }
    /* points added to the hooks (an attached SAE's), after the model's */
    for (size_t p = hooks->n_model_points; p < hooks->n_points; p++) {
        const char *name = hk_hooks_point_name(hooks, p);
        if (!matches_any(name, &ps)) continue;
        cache_entry *e = &c->e[c->n];
        memset(e, 0, sizeof *e);
        /* the name lives in the hooks, which may go before the cache does */
        if (!(e->own_name = strdup(name)))
            return hk_errorf(HK_ERR_NOMEM, "hk_cache_attach: out of memory");
        e->point = -1;
        e->name = e->own_name;
        e->dims = added_dims;
        e->sel = sel;
        dim_roles(e->dims, 3, e);
        c->n++;
    }
    return HK_OK;
}

/* ---- the callback ---- */

static cache_entry *find_entry(hk_cache *c, const char *name) {
    for (size_t k = 0; k < 2 && c->hint + k < c->n; k++) {
        cache_entry *e = &c->e[c->hint + k];
        if (e->name == name || strcmp(e->name, name) == 0) {
            c->hint += k;
            return e;
        }
    }
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].name, name) == 0) {
            c->hint = i;
            return &c->e[i];
        }
    return NULL;
}

/* Selected index of position p (within the call) of sequence b, or -1. */
static int64_t select_pos(const hk_cache *c, const cache_entry *e, int64_t b, int64_t p,
                          int64_t run_seq, int64_t start, int64_t count) {
    switch (e->sel.kind) {
    case HK_SEL_ALL: return p;
    case HK_SEL_LAST: return p == (c->lengths ? c->lengths[b] : run_seq) - 1 ? 0 : -1;
    case HK_SEL_RANGE: return p >= start && p < start + count ? p - start : -1;
    }
    return -1;
}

/* Size (or re-size) the entry for this run: the incoming shape with batch, (query) position
 * and key dims set to the run's; contents are the fill value when fresh. */
static bool ensure_shape(cache_entry *e, const hk_tensor *act, const hk_hook_ctx *ctx,
                         int64_t n_sel, int64_t n_keys) {
    int64_t shape[HK_MAX_DIMS] = {0};
    for (int d = 0; d < act->ndim; d++)
        shape[d] = d == e->batch_dim ? ctx->run_batch
                 : d == e->pos_dim   ? n_sel
                 : d == e->key_dim   ? n_keys
                                     : act->shape[d];
    if (e->held && e->t.ndim == act->ndim &&
        memcmp(e->t.shape, shape, (size_t)act->ndim * sizeof *shape) == 0)
        return true;
    size_t numel = 1;
    for (int d = 0; d < act->ndim; d++) {
        if (numel && (uint64_t)shape[d] > SIZE_MAX / sizeof(float) / numel) {
            hk_hook_error("cache: the activation is too large to hold");
            return false;
        }
        numel *= (size_t)shape[d];
    }
    float *data = NULL;
    if (numel) {
        data = malloc(numel * sizeof *data);
        if (!data) {
            hk_hook_error("cache: out of memory for %zu bytes", numel * sizeof *data);
            return false;
        }
        for (size_t i = 0; i < numel; i++) data[i] = e->fill;
    }
    free(e->t.data);
    e->t = (hk_tensor){.data = data, .dtype = HK_DTYPE_F32, .device = HK_DEVICE_CPU,
                       .ndim = act->ndim};
    int64_t stride = 1;
    for (int d = act->ndim - 1; d >= 0; d--) {
        e->t.shape[d] = shape[d];
        e->t.stride[d] = stride;
        stride *= shape[d];
    }
    e->held = true;
    return true;
}

/* Where this call's positions start. A call covers positions base .. base + run_seq - 1
 * (base 0 for hk_model_run, the feed's first position for a session feed). The forward
 * delivers keys base - k .. base + run_seq - 1 (key_offset, k_len), and [batch, pos, ...]
 * rows that end at the call's last position (every row, or the last one for last-only
 * logits), so either gives the base. */
static int64_t call_base(const cache_entry *e, const hk_tensor *act, const hk_hook_ctx *ctx) {
    if (e->key_dim >= 0) return ctx->key_offset + act->shape[e->key_dim] - ctx->run_seq;
    return ctx->pos_offset + act->shape[e->pos_dim] - ctx->run_seq;
}

static hk_hook_result on_fire(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    hk_cache *c = user;
    cache_entry *e = find_entry(c, ctx->name);
    if (!e) {
        hk_hook_error("cache: no entry for this point");
        return HK_HOOK_ERROR;
    }
    if (act->device != HK_DEVICE_CPU) {
        hk_hook_error("cache: activations on device %d are not supported yet (host only)",
                      (int)act->device);
        return HK_HOOK_ERROR;
    }
    const int nd = act->ndim;
    /* The roles come from the table; other dims are taken as they come (ln1.hook_* gain a
     * head dim when the split attention inputs are hooked). */
    if (nd < 2 || nd > HK_MAX_DIMS || e->batch_dim < 0 || e->pos_dim < 0 ||
        e->batch_dim >= nd - 1 || e->pos_dim >= nd - 1 ||
        (e->key_dim >= 0 && e->key_dim != nd - 1)) {
        hk_hook_error("cache: got a %d-d tensor, expected dims %s", nd, e->dims);
        return HK_HOOK_ERROR;
    }
    for (int d = 0; d < nd; d++)
        if (act->shape[d] < 0) {
            hk_hook_error("cache: negative size in dim %d", d);
            return HK_HOOK_ERROR;
        }
    const int64_t rb = ctx->run_batch, rs = ctx->run_seq, boff = ctx->batch_offset;
    const int64_t base = call_base(e, act, ctx);
    const int64_t poff = ctx->pos_offset - base; /* position of row 0 within the call */
    const int64_t koff = e->key_dim >= 0 ? ctx->key_offset : 0;
    const int64_t n_keys = base + rs; /* keys 0 .. the call's last position */
    if (rb < 1 || rs < 1 || boff < 0 || boff + act->shape[e->batch_dim] > rb || base < 0 ||
        poff < 0 || poff + act->shape[e->pos_dim] > rs || koff < 0) {
        hk_hook_error("cache: a [%s] view of %lld sequences x %lld positions at sequence "
                      "%lld, position %lld does not fit a call of %lld x %lld",
                      e->dims, (long long)act->shape[e->batch_dim],
                      (long long)act->shape[e->pos_dim], (long long)boff,
                      (long long)ctx->pos_offset, (long long)rb, (long long)rs);
        return HK_HOOK_ERROR;
    }
    int64_t start = 0, n_sel = rs;
    if (e->sel.kind == HK_SEL_LAST) {
        n_sel = 1;
        if (c->lengths && c->n_lengths != rb) {
            hk_hook_error("cache: positions \"last\": lengths were set for %lld sequences but "
                          "the run has %lld (hk_cache_set_lengths)",
                          (long long)c->n_lengths, (long long)rb);
            return HK_HOOK_ERROR;
        }
        for (int64_t b = 0; c->lengths && b < rb; b++)
            if (c->lengths[b] > rs) {
                hk_hook_error("cache: positions \"last\": lengths[%lld] = %lld exceeds the "
                              "run's %lld positions",
                              (long long)b, (long long)c->lengths[b], (long long)rs);
                return HK_HOOK_ERROR;
            }
    } else if (e->sel.kind == HK_SEL_RANGE) {
        hk_selection_range(&e->sel, rs, &start, &n_sel);
    }
    if (!ensure_shape(e, act, ctx, n_sel, n_keys)) return HK_HOOK_ERROR;

    const size_t esize = hk_dtype_size(act->dtype);
    const char *base_ptr = act->data;
    for (int d = 0; d < nd; d++)
        if (act->shape[d] == 0) return HK_HOOK_CONTINUE;

    /* Odometer over every dim but the last; the last is copied as a row. A key row lands at
     * keys koff .. koff + k_len - 1; the keys around it are masked (the fill value). */
    const int inner = nd - 1;
    const int64_t n_in = act->shape[inner], s_in = act->stride[inner];
    const int64_t full_in = e->t.shape[inner], at_in = e->key_dim == inner ? koff : 0;
    float *dst = e->t.data;
    int64_t idx[HK_MAX_DIMS] = {0};
    for (;;) {
        int64_t b = boff + idx[e->batch_dim];
        int64_t s = select_pos(c, e, b, poff + idx[e->pos_dim], rs, start, n_sel);
        if (s >= 0) {
            int64_t so = 0, dof = 0;
            for (int d = 0; d < inner; d++) {
                so += idx[d] * act->stride[d];
                int64_t di = d == e->batch_dim ? b : d == e->pos_dim ? s : idx[d];
                dof += di * e->t.stride[d];
            }
            const char *src = base_ptr + so * (int64_t)esize;
            float *row = dst + dof;
            for (int64_t j = 0; j < at_in; j++) row[j] = e->fill;
            if (s_in == 1)
                hk_convert_to_f32(act->dtype, src, row + at_in, (size_t)n_in);
            else
                for (int64_t j = 0; j < n_in; j++)
                    hk_convert_to_f32(act->dtype, src + j * s_in * (int64_t)esize,
                                      row + at_in + j, 1);
            for (int64_t j = at_in + n_in; j < full_in; j++) row[j] = e->fill;
        }
        int d = inner - 1;
        for (; d >= 0; d--) {
            if (++idx[d] < act->shape[d]) break;
            idx[d] = 0;
        }
        if (d < 0) break;
    }
    return HK_HOOK_CONTINUE;
}

/* ---- lookup ---- */

const hk_tensor *hk_cache_get(const hk_cache *c, const char *name) {
    if (!c || !name) return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].name, name) == 0) return c->e[i].held ? &c->e[i].t : NULL;
    return NULL;
}

const hk_tensor *hk_cache_get_layer(const hk_cache *c, const char *point, int64_t layer) {
    if (!c || !point) return NULL;
    if (layer < 0) return hk_cache_get(c, point);
    char name[256];
    int len = snprintf(name, sizeof name, "blocks.%lld.%s", (long long)layer, point);
    if (len < 0 || (size_t)len >= sizeof name) return NULL;
    return hk_cache_get(c, name);
}

size_t hk_cache_count(const hk_cache *c) { return c ? c->n : 0; }

const char *hk_cache_name_at(const hk_cache *c, size_t i) {
    return c && i < c->n ? c->e[i].name : NULL;
}

size_t hk_cache_bytes(const hk_cache *c) {
    size_t total = 0;
    for (size_t i = 0; c && i < c->n; i++) {
        if (!c->e[i].held) continue;
        size_t numel = 1;
        for (int d = 0; d < c->e[i].t.ndim; d++) numel *= (size_t)c->e[i].t.shape[d];
        total += numel * sizeof(float);
    }
    return total;
}

/* ---- one call ---- */

hk_status hk_xp_hooks_open(hk_model *m, hk_hooks *base, hk_xp_hooks *out) {
    memset(out, 0, sizeof *out);
    if (base) {
        if (base->model != m)
            return hk_errorf(HK_ERR_INVALID_ARG, "experiment: the hooks given were made for "
                                                 "another model");
        out->h = base;
        out->mark = hk_hooks_scope_begin(base);
        return HK_OK;
    }
    hk_status st = hk_hooks_new(m, &out->own);
    out->h = out->own;
    return st;
}

void hk_xp_hooks_close(hk_xp_hooks *x) {
    if (x->own) hk_hooks_free(x->own);
    else if (x->h) hk_hooks_scope_end(x->h, x->mark);
    memset(x, 0, sizeof *x);
}

hk_status hk_run_with_cache(hk_model *m, const int32_t *tokens, const int64_t *lengths,
                            int64_t batch, int64_t seq, const char *const *patterns, size_t n,
                            const char *positions, float *logits, hk_cache **out) {
    return hk_xp_run_with_cache(m, NULL, tokens, lengths, batch, seq, patterns, n, positions,
                                logits, out);
}

hk_status hk_xp_run_with_cache(hk_model *m, hk_hooks *base, const int32_t *tokens,
                               const int64_t *lengths, int64_t batch, int64_t seq,
                               const char *const *patterns, size_t n, const char *positions,
                               float *logits, hk_cache **out) {
    if (!out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_run_with_cache: out is NULL");
    *out = NULL;
    hk_cache *c = NULL;
    hk_xp_hooks xh = {0};
    hk_status st = hk_cache_new(m, &c);
    if (st == HK_OK) st = hk_xp_hooks_open(m, base, &xh);
    if (st == HK_OK) st = hk_cache_attach(c, xh.h, patterns, n, positions);
    /* the run checks the lengths themselves, with its own message */
    if (st == HK_OK && lengths && batch > 0) st = store_lengths(c, lengths, batch);
    if (st == HK_OK) st = hk_model_run(m, xh.h, tokens, lengths, batch, seq, logits);
    hk_xp_hooks_close(&xh);
    if (st != HK_OK) {
        hk_cache_free(c);
        return st;
    }
    *out = c;
    return HK_OK;
}
