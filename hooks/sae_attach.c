/* An SAE spliced into a model's hooks (SAELens's HookedSAETransformer.add_sae): a callback at
 * the SAE's hook gathers the activation's rows, runs the SAE step by step, firing the SAE's
 * own points (registered in the same hk_hooks with hk_hooks_add_point) between the steps,
 * and writes the output back (replace modes). A transcoder writes at its hook_out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "registry.h"
#include "sae_impl.h"

enum { SP_INPUT, SP_PRE, SP_POST, SP_RECONS, SP_ERROR, SP_OUTPUT, SP_N };
static const char *const sp_names[SP_N] = {"hook_sae_input", "hook_sae_acts_pre",
                                           "hook_sae_acts_post", "hook_sae_recons",
                                           "hook_sae_error", "hook_sae_output"};

struct hk_sae_attachment {
    hk_hooks *hooks;
    const hk_sae *sae;
    hk_sae_mode mode;
    int32_t pt[SP_N];
    char names[SP_N][160];
    hk_hook_handle h_in, h_out;
    hk_sae_scratch w, wc; /* hooked and clean (error term) passes */
    int64_t cap;          /* rows the buffers hold */
    float *x;     /* [n, d_in]  the activation's rows as they came */
    float *xin;   /* [n, d_in]  after hook_sae_input */
    float *pre;   /* [n, d_sae] */
    float *acts;  /* [n, d_sae] */
    float *out;   /* [n, d_out] reconstruction, then output */
    float *clean; /* [n, max(d_sae, d_out)] the clean pass (error term) */
    float *y;     /* [n, d_out] transcoders: the activation at hook_out */
    /* transcoders: what the input hook left for the output hook */
    bool pending;
    int64_t p_batch, p_pos, p_batch_offset, p_pos_offset;
};

const char *hk_sae_mode_name(hk_sae_mode m) {
    switch (m) {
    case HK_SAE_OBSERVE: return "observe";
    case HK_SAE_REPLACE: return "replace";
    case HK_SAE_REPLACE_WITH_ERROR: return "replace_error";
    }
    return "?";
}

static void free_bufs(hk_sae_attachment *a) {
    free(a->x);
    free(a->xin);
    free(a->pre);
    free(a->acts);
    free(a->out);
    free(a->clean);
    free(a->y);
    a->x = a->xin = a->pre = a->acts = a->out = a->clean = a->y = NULL;
    a->cap = 0;
}

static bool grow(hk_sae_attachment *a, int64_t n) {
    if (n <= a->cap && a->x) return true;
    free_bufs(a);
    const hk_sae *s = a->sae;
    const size_t r = (size_t)(n ? n : 1);
    const int64_t wide = s->d_sae > s->d_out ? s->d_sae : s->d_out;
    a->x = malloc(r * (size_t)s->d_in * sizeof(float));
    a->xin = malloc(r * (size_t)s->d_in * sizeof(float));
    a->pre = malloc(r * (size_t)s->d_sae * sizeof(float));
    a->acts = malloc(r * (size_t)s->d_sae * sizeof(float));
    a->out = malloc(r * (size_t)s->d_out * sizeof(float));
    a->clean = malloc(r * (size_t)wide * sizeof(float));
    a->y = malloc(r * (size_t)s->d_out * sizeof(float));
    if (!a->x || !a->xin || !a->pre || !a->acts || !a->out || !a->clean || !a->y) {
        free_bufs(a);
        return false;
    }
    a->cap = n;
    return true;
}

/* Element offset of flat inner index j of row (b, p) in a strided activation. */
static int64_t inner_offset(const hk_tensor *t, int64_t j) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 2; d--) {
        off += (j % t->shape[d]) * t->stride[d];
        j /= t->shape[d];
    }
    return off;
}

static bool inner_contiguous(const hk_tensor *t) {
    int64_t want = 1;
    for (int d = t->ndim - 1; d >= 2; d--) {
        if (t->shape[d] != 1 && t->stride[d] != want) return false;
        want *= t->shape[d];
    }
    return true;
}

static int64_t inner_width(const hk_tensor *t) {
    int64_t w = 1;
    for (int d = 2; d < t->ndim; d++) w *= t->shape[d];
    return w;
}

/* rows [batch * pos, width] <-> the activation */
static void gather(const hk_tensor *t, float *rows) {
    const float *base = t->data;
    const int64_t w = inner_width(t);
    const bool contig = inner_contiguous(t);
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++) {
            const float *src = base + b * t->stride[0] + p * t->stride[1];
            float *dst = rows + (b * t->shape[1] + p) * w;
            if (contig)
                memcpy(dst, src, (size_t)w * sizeof *dst);
            else
                for (int64_t j = 0; j < w; j++) dst[j] = src[inner_offset(t, j)];
        }
}

static void scatter(const float *rows, hk_tensor *t) {
    float *base = t->data;
    const int64_t w = inner_width(t);
    const bool contig = inner_contiguous(t);
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++) {
            float *dst = base + b * t->stride[0] + p * t->stride[1];
            const float *src = rows + (b * t->shape[1] + p) * w;
            if (contig)
                memcpy(dst, src, (size_t)w * sizeof *dst);
            else
                for (int64_t j = 0; j < w; j++) dst[inner_offset(t, j)] = src[j];
        }
}

/* Fire SAE point `sp` on rows [batch, pos, width] (contiguous). */
static hk_hook_result fire(hk_sae_attachment *a, int sp, float *rows, int64_t batch, int64_t pos,
                           int64_t width, const hk_hook_ctx *ctx) {
    if (!hk_hooks_active(a->hooks, a->pt[sp])) return HK_HOOK_CONTINUE;
    hk_tensor t = {.data = rows, .dtype = HK_DTYPE_F32, .device = HK_DEVICE_CPU, .ndim = 3,
                   .shape = {batch, pos, width}, .stride = {pos * width, width, 1}};
    hk_hook_ctx c = *ctx;
    c.name = a->names[sp];
    hk_status st = hk_hooks_fire(a->hooks, a->pt[sp], &t, &c);
    if (st == HK_OK) return HK_HOOK_CONTINUE;
    if (st == HK_STOPPED) return HK_HOOK_STOP;
    hk_hook_error("%s", hk_last_error());
    return HK_HOOK_ERROR;
}

static bool any_edit_hooks(const hk_sae_attachment *a) {
    for (int sp = SP_INPUT; sp <= SP_RECONS; sp++)
        if (hk_hooks_active(a->hooks, a->pt[sp])) return true;
    return false;
}

#define TRY(expr)                                        \
    do {                                                 \
        hk_hook_result r_ = (expr);                      \
        if (r_ != HK_HOOK_CONTINUE) return r_;           \
    } while (0)

static hk_hook_result fail_status(hk_status st) {
    (void)st;
    hk_hook_error("SAE: %s", hk_last_error());
    return HK_HOOK_ERROR;
}

/* The clean output (no SAE-point hooks) of rows x into a->clean [n, d_out]. */
static hk_status clean_output(hk_sae_attachment *a, int64_t n) {
    const hk_sae *s = a->sae;
    if (!any_edit_hooks(a)) { /* the hooked pass was the clean one */
        memcpy(a->clean, a->out, (size_t)(n * s->d_out) * sizeof(float));
        return HK_OK;
    }
    hk_status st = hk_sae_norm_in(s, &a->wc, a->x, n);
    if (st) return st;
    /* a->pre is free again: the hooked pass is past its pre-activations */
    if ((st = hk_sae_pre(s, &a->wc, n, a->pre))) return st;
    hk_sae_act(s, &a->wc, n, a->pre, a->pre);
    hk_sae_dec(s, a->pre, n, a->clean);
    hk_sae_norm_out(s, &a->wc, n, a->clean);
    return HK_OK;
}

static hk_hook_result in_fire(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    hk_sae_attachment *a = user;
    const hk_sae *s = a->sae;
    if (act->dtype != HK_DTYPE_F32 || act->device != HK_DEVICE_CPU || act->ndim < 3 ||
        inner_width(act) != s->d_in) {
        hk_hook_error("SAE %s: expected an f32 host activation [batch, pos, %lld]", s->path,
                      (long long)s->d_in);
        return HK_HOOK_ERROR;
    }
    const int64_t B = act->shape[0], P = act->shape[1], n = B * P;
    if (!grow(a, n)) {
        hk_hook_error("SAE %s: out of memory for %lld rows", s->path, (long long)n);
        return HK_HOOK_ERROR;
    }
    gather(act, a->x);
    const float *xin = a->x;
    if (hk_hooks_active(a->hooks, a->pt[SP_INPUT])) {
        memcpy(a->xin, a->x, (size_t)(n * s->d_in) * sizeof(float));
        TRY(fire(a, SP_INPUT, a->xin, B, P, s->d_in, ctx));
        xin = a->xin;
    }
    hk_status st = hk_sae_norm_in(s, &a->w, xin, n);
    if (st == HK_OK) st = hk_sae_pre(s, &a->w, n, a->pre);
    if (st) return fail_status(st);
    TRY(fire(a, SP_PRE, a->pre, B, P, s->d_sae, ctx));
    hk_sae_act(s, &a->w, n, a->pre, a->acts);
    TRY(fire(a, SP_POST, a->acts, B, P, s->d_sae, ctx));
    /* observing with nothing on the points after acts_post: the decoder has no reader */
    if (a->mode == HK_SAE_OBSERVE && !hk_hooks_active(a->hooks, a->pt[SP_RECONS]) &&
        !hk_hooks_active(a->hooks, a->pt[SP_OUTPUT]))
        return HK_HOOK_CONTINUE;
    hk_sae_dec(s, a->acts, n, a->out);
    TRY(fire(a, SP_RECONS, a->out, B, P, s->d_out, ctx));
    hk_sae_norm_out(s, &a->w, n, a->out);
    if (s->transcoder && a->mode != HK_SAE_OBSERVE) {
        if (a->mode == HK_SAE_REPLACE_WITH_ERROR && (st = clean_output(a, n))) return fail_status(st);
        a->pending = true;
        a->p_batch = B;
        a->p_pos = P;
        a->p_batch_offset = ctx->batch_offset;
        a->p_pos_offset = ctx->pos_offset;
        return HK_HOOK_CONTINUE;
    }
    if (a->mode == HK_SAE_REPLACE_WITH_ERROR) {
        if ((st = clean_output(a, n))) return fail_status(st);
        float *err = a->clean; /* [n, d_out] x - clean output */
        for (int64_t i = 0; i < n * s->d_out; i++) err[i] = a->x[i] - err[i];
        TRY(fire(a, SP_ERROR, err, B, P, s->d_out, ctx));
        for (int64_t i = 0; i < n * s->d_out; i++) a->out[i] += err[i];
    }
    TRY(fire(a, SP_OUTPUT, a->out, B, P, s->d_out, ctx));
    if (a->mode != HK_SAE_OBSERVE) scatter(a->out, act);
    return HK_HOOK_CONTINUE;
}

/* Transcoders: the output hook takes the output computed at the input hook. */
static hk_hook_result out_fire(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    hk_sae_attachment *a = user;
    const hk_sae *s = a->sae;
    if (!a->pending || act->ndim < 3 || act->shape[0] != a->p_batch || act->shape[1] != a->p_pos ||
        ctx->batch_offset != a->p_batch_offset || ctx->pos_offset != a->p_pos_offset ||
        inner_width(act) != s->d_out || act->dtype != HK_DTYPE_F32) {
        hk_hook_error("transcoder %s: %s fired without a matching %s before it in this forward "
                      "(same batch and positions)", s->path, s->hook_out, s->hook);
        return HK_HOOK_ERROR;
    }
    a->pending = false;
    const int64_t B = a->p_batch, P = a->p_pos, n = B * P;
    if (a->mode == HK_SAE_REPLACE_WITH_ERROR) {
        gather(act, a->y);
        float *err = a->clean; /* [n, d_out] the activation - clean output */
        for (int64_t i = 0; i < n * s->d_out; i++) err[i] = a->y[i] - err[i];
        TRY(fire(a, SP_ERROR, err, B, P, s->d_out, ctx));
        for (int64_t i = 0; i < n * s->d_out; i++) a->out[i] += err[i];
    }
    TRY(fire(a, SP_OUTPUT, a->out, B, P, s->d_out, ctx));
    scatter(a->out, act);
    return HK_HOOK_CONTINUE;
}

/* The model's point `name`: its width (inner dims flattened) after [batch, pos]. */
static hk_status hook_width(const hk_model *m, const char *name, const char *who, int64_t *width,
                            size_t *index) {
    for (size_t i = 0; i < hk_model_hook_count(m); i++) {
        const hk_hook_point *pt = hk_model_hook_at(m, i);
        if (strcmp(pt->name, name) != 0) continue;
        if (strncmp(pt->dims, "batch pos ", 10) != 0 || pt->ndim < 3)
            return hk_errorf(HK_ERR_SHAPE, "%s: hook '%s' has dims [%s]; an SAE reads points "
                                           "[batch, pos, ...]", who, name, pt->dims);
        *width = 1;
        for (int d = 2; d < pt->ndim; d++) *width *= pt->shape[d];
        *index = i;
        return HK_OK;
    }
    return hk_errorf(HK_ERR_NOT_FOUND, "%s: hook '%s' is not a point of this %s model (hookformer "
                                       "hooks --model DIR lists them)", who, name,
                     hk_model_family(m));
}

hk_status hk_sae_attach(hk_hooks *hooks, const hk_sae *s, hk_sae_mode mode,
                        hk_sae_attachment **out) {
    if (!hooks || !s || !out)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_attach: NULL hooks, SAE or out");
    *out = NULL;
    if (mode != HK_SAE_OBSERVE && mode != HK_SAE_REPLACE && mode != HK_SAE_REPLACE_WITH_ERROR)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_attach: mode %d is not an hk_sae_mode", mode);
    char who[512];
    snprintf(who, sizeof who, "SAE %s", s->path);
    int64_t w_in, w_out;
    size_t i_in, i_out;
    hk_status st = hook_width(hooks->model, s->hook, who, &w_in, &i_in);
    if (st) return st;
    if (w_in != s->d_in)
        return hk_errorf(HK_ERR_SHAPE, "%s: d_in is %lld but hook '%s' has width %lld", who,
                         (long long)s->d_in, s->hook, (long long)w_in);
    if (s->transcoder) {
        if ((st = hook_width(hooks->model, s->hook_out, who, &w_out, &i_out))) return st;
        if (w_out != s->d_out)
            return hk_errorf(HK_ERR_SHAPE, "%s: d_out is %lld but hook_name_out '%s' has width "
                                           "%lld", who, (long long)s->d_out, s->hook_out,
                             (long long)w_out);
        if (i_out <= i_in)
            return hk_errorf(HK_ERR_INVALID_ARG, "%s: hook_name_out '%s' does not run after "
                                                 "hook_name '%s'", who, s->hook_out, s->hook);
    }
    hk_sae_attachment *a = calloc(1, sizeof *a);
    if (!a) return hk_errorf(HK_ERR_NOMEM, "hk_sae_attach: out of memory");
    a->hooks = hooks;
    a->sae = s;
    a->mode = mode;
    for (int sp = 0; sp < SP_N && st == HK_OK; sp++) {
        snprintf(a->names[sp], sizeof a->names[sp], "%s.%s", s->hook, sp_names[sp]);
        st = hk_hooks_add_point(hooks, a->names[sp], &a->pt[sp]);
    }
    if (st == HK_OK) st = hk_hooks_add(hooks, s->hook, in_fire, a, &a->h_in);
    if (st == HK_OK && s->transcoder && mode != HK_SAE_OBSERVE) {
        st = hk_hooks_add(hooks, s->hook_out, out_fire, a, &a->h_out);
        if (st) hk_hooks_remove(hooks, a->h_in);
    }
    if (st) {
        free(a);
        return st;
    }
    *out = a;
    return HK_OK;
}

void hk_sae_detach(hk_sae_attachment *a) {
    if (!a) return;
    if (a->h_in) hk_hooks_remove(a->hooks, a->h_in);
    if (a->h_out) hk_hooks_remove(a->hooks, a->h_out);
    hk_sae_scratch_free(&a->w);
    hk_sae_scratch_free(&a->wc);
    free_bufs(a);
    free(a);
}
