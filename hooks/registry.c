#include "registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/error.h"
#include "core/model.h"

static _Thread_local char hook_message[512];

void hk_hook_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hook_message, sizeof hook_message, fmt, ap);
    va_end(ap);
}

const char *hk_hook_error_message(void) { return hook_message; }

bool hk_glob_match_any(const char *const *patterns, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (patterns[i] && hk_glob_match(patterns[i], name)) return true;
    return false;
}

bool hk_glob_match(const char *p, const char *s) {
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == '?' || *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*') p++;
    return *p == '\0';
}

hk_status hk_hooks_new(const hk_model *m, hk_hooks **out) {
    if (!m || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_hooks_new: NULL argument");
    hk_hooks *h = calloc(1, sizeof *h);
    if (!h) return hk_errorf(HK_ERR_NOMEM, "hk_hooks_new: out of memory");
    h->model = m;
    h->n_points = h->n_model_points = m->points.n;
    h->next_handle = 1;
    h->active = calloc(h->n_points ? h->n_points : 1, sizeof *h->active);
    if (!h->active) {
        free(h);
        return hk_errorf(HK_ERR_NOMEM, "hk_hooks_new: out of memory");
    }
    *out = h;
    return HK_OK;
}

void hk_hooks_free(hk_hooks *h) {
    if (!h) return;
    for (size_t i = 0; i < h->n_regs; i++) free(h->regs[i].covers);
    free(h->regs);
    free(h->active);
    for (size_t i = 0; i < h->n_points - h->n_model_points; i++) free(h->extra[i]);
    free(h->extra);
    free(h);
}

const char *hk_hooks_point_name(const hk_hooks *h, size_t i) {
    if (!h || i >= h->n_points) return NULL;
    return i < h->n_model_points ? h->model->points.points[i].name
                                 : h->extra[i - h->n_model_points];
}

hk_status hk_hooks_add_point(hk_hooks *h, const char *name, int32_t *index) {
    if (!h || !name || !index)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_hooks_add_point: NULL argument");
    for (size_t i = 0; i < h->n_points; i++)
        if (strcmp(hk_hooks_point_name(h, i), name) == 0) {
            *index = (int32_t)i;
            return HK_OK;
        }
    const size_t n = h->n_points + 1, n_extra = n - h->n_model_points;
    char *copy = strdup(name);
    char **extra = copy ? realloc(h->extra, n_extra * sizeof *extra) : NULL;
    if (extra) h->extra = extra;
    uint32_t *active = extra ? realloc(h->active, n * sizeof *active) : NULL;
    if (active) h->active = active;
    bool ok = active != NULL;
    for (size_t r = 0; ok && r < h->n_regs; r++) {
        uint8_t *c = realloc(h->regs[r].covers, n);
        if (c) h->regs[r].covers = c;
        ok = c != NULL;
    }
    if (!ok) {
        free(copy);
        return hk_errorf(HK_ERR_NOMEM, "hooks: out of memory adding point '%s'", name);
    }
    for (size_t r = 0; r < h->n_regs; r++) h->regs[r].covers[n - 1] = 0;
    h->active[n - 1] = 0;
    h->extra[n_extra - 1] = copy;
    h->n_points = n;
    *index = (int32_t)(n - 1);
    return HK_OK;
}

/* Append a registration whose coverage is already computed. */
static hk_status push_reg(hk_hooks *h, uint8_t *covers, hk_hook_fn fn, void *user,
                          unsigned flags, hk_hook_handle *out) {
    if (h->n_regs == h->cap_regs) {
        size_t cap = h->cap_regs ? 2 * h->cap_regs : 8;
        hk_reg *r = realloc(h->regs, cap * sizeof *r);
        if (!r) {
            free(covers);
            return hk_errorf(HK_ERR_NOMEM, "hooks: out of memory");
        }
        h->regs = r;
        h->cap_regs = cap;
    }
    hk_reg *r = &h->regs[h->n_regs++];
    *r = (hk_reg){.handle = h->next_handle++, .fn = fn, .user = user, .flags = flags,
                  .covers = covers};
    for (size_t i = 0; i < h->n_points; i++) h->active[i] += covers[i];
    if (out) *out = r->handle;
    return HK_OK;
}

typedef bool (*match_fn)(const char *name, const void *arg, void *user);

static bool match_glob(const char *name, const void *pattern, void *user) {
    (void)user;
    return hk_glob_match(pattern, name);
}

static bool match_filter(const char *name, const void *filter, void *user) {
    hk_hook_filter_fn f;
    memcpy(&f, filter, sizeof f);
    return f(name, user);
}

static hk_status add_matching(hk_hooks *h, match_fn match, const void *arg, void *match_user,
                              hk_hook_fn fn, void *user, unsigned flags, hk_hook_handle *out,
                              size_t *n_hit) {
    uint8_t *covers = calloc(h->n_points ? h->n_points : 1, 1);
    if (!covers) return hk_errorf(HK_ERR_NOMEM, "hooks: out of memory");
    *n_hit = 0;
    for (size_t i = 0; i < h->n_points; i++)
        if (match(hk_hooks_point_name(h, i), arg, match_user)) {
            covers[i] = 1;
            (*n_hit)++;
        }
    if (*n_hit == 0) {
        free(covers);
        return HK_ERR_NOT_FOUND;
    }
    return push_reg(h, covers, fn, user, flags, out);
}

hk_status hk_hooks_add_flags(hk_hooks *h, const char *pattern, hk_hook_fn fn, void *user,
                             unsigned flags, hk_hook_handle *out) {
    if (!h || !pattern || !fn)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_hooks_add: hooks, pattern and fn are required");
    if (flags & ~(unsigned)(HK_HOOK_READ_ONLY | HK_HOOK_ON_DEVICE))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_hooks_add_flags: flags 0x%x: expected a "
                                             "combination of HK_HOOK_READ_ONLY (0x%x) and "
                                             "HK_HOOK_ON_DEVICE (0x%x)",
                         flags, HK_HOOK_READ_ONLY, HK_HOOK_ON_DEVICE);
    size_t hits;
    hk_status st = add_matching(h, match_glob, pattern, NULL, fn, user, flags, out, &hits);
    if (st == HK_ERR_NOT_FOUND)
        return hk_hook_not_found(&h->model->points, h->model->cfg.family, pattern, NULL);
    return st;
}

hk_status hk_hooks_add_filter(hk_hooks *h, hk_hook_filter_fn filter, void *filter_user,
                              hk_hook_fn fn, void *user, hk_hook_handle *out) {
    return hk_hooks_add_filter_flags(h, filter, filter_user, fn, user, 0, out);
}

hk_status hk_hooks_add_filter_flags(hk_hooks *h, hk_hook_filter_fn filter, void *filter_user,
                                    hk_hook_fn fn, void *user, unsigned flags,
                                    hk_hook_handle *out) {
    if (!h || !filter || !fn)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_hooks_add_filter: hooks, filter and fn are required");
    if (flags & ~(unsigned)(HK_HOOK_READ_ONLY | HK_HOOK_ON_DEVICE))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_hooks_add_filter_flags: flags 0x%x: expected a "
                                             "combination of HK_HOOK_READ_ONLY (0x%x) and "
                                             "HK_HOOK_ON_DEVICE (0x%x)",
                         flags, HK_HOOK_READ_ONLY, HK_HOOK_ON_DEVICE);
    size_t hits;
    hk_status st =
        add_matching(h, match_filter, &filter, filter_user, fn, user, flags, out, &hits);
    if (st == HK_ERR_NOT_FOUND)
        return hk_errorf(HK_ERR_NOT_FOUND, "hook filter accepted no hook point of this model");
    return st;
}

hk_status hk_hooks_add(hk_hooks *h, const char *pattern, hk_hook_fn fn, void *user,
                       hk_hook_handle *out) {
    return hk_hooks_add_flags(h, pattern, fn, user, 0, out);
}

static void drop_reg(hk_hooks *h, size_t i) {
    for (size_t p = 0; p < h->n_points; p++) h->active[p] -= h->regs[i].covers[p];
    free(h->regs[i].covers);
    memmove(&h->regs[i], &h->regs[i + 1], (h->n_regs - i - 1) * sizeof *h->regs);
    h->n_regs--;
}

hk_status hk_hooks_remove(hk_hooks *h, hk_hook_handle handle) {
    if (!h) return hk_errorf(HK_ERR_INVALID_ARG, "hk_hooks_remove: NULL hooks");
    for (size_t i = 0; i < h->n_regs; i++)
        if (h->regs[i].handle == handle) {
            drop_reg(h, i);
            return HK_OK;
        }
    return hk_errorf(HK_ERR_NOT_FOUND, "hk_hooks_remove: no registration with handle %llu",
                     (unsigned long long)handle);
}

size_t hk_hooks_scope_begin(const hk_hooks *h) { return h ? (size_t)h->next_handle : 0; }

void hk_hooks_scope_end(hk_hooks *h, size_t mark) {
    if (!h) return;
    while (h->n_regs > 0 && h->regs[h->n_regs - 1].handle >= mark) drop_reg(h, h->n_regs - 1);
}

size_t hk_hooks_count(const hk_hooks *h) { return h ? h->n_regs : 0; }

/* A host-side callback's view of a device tensor: the same shape, dense, in host memory. */
static hk_tensor host_view(const hk_tensor *t, void *host) {
    hk_tensor h = *t;
    h.data = host;
    h.device = HK_DEVICE_CPU;
    int64_t stride = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        h.stride[d] = stride;
        stride *= t->shape[d];
    }
    return h;
}

static size_t tensor_bytes(const hk_tensor *t) {
    size_t n = hk_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

hk_status hk_hooks_fire(hk_hooks *h, int32_t point, hk_tensor *t, const hk_hook_ctx *ctx) {
    const bool device = t->device != HK_DEVICE_CPU;
    /* copies go through the model's own backend (its stream, its GPU), whatever other
     * instances of the same kind are open */
    hk_backend *be = device ? hk_model_backend(h->model) : NULL;
    if (be && be->device != t->device) be = hk_backend_for_device(t->device);
    hk_host_stage stage = {0};  /* the host copy of a device tensor, made on first need
                                   (the backend's pinned staging buffer where it is free) */
    void *host = NULL;
    bool host_valid = false;    /* it holds the device tensor's current values */
    bool host_dirty = false;    /* a host callback may have changed it: copy it back */
    hk_status st = HK_OK;
    for (size_t i = 0; i < h->n_regs && st == HK_OK; i++) {
        hk_reg *r = &h->regs[i];
        if (!r->covers[point]) continue;
        hk_tensor *arg = t, hv;
        if (device && (r->flags & HK_HOOK_ON_DEVICE)) {
            if (host_dirty && (st = hk_backend_tensor_copy(be, t, host, false)) != HK_OK) break;
            host_dirty = false;
            if (!(r->flags & HK_HOOK_READ_ONLY)) host_valid = false;
        } else if (device) {
            if (!host) {
                if (hk_host_stage_get_from(be, tensor_bytes(t), &stage) != HK_OK) {
                    st = hk_errorf(HK_ERR_NOMEM, "hook at '%s': no memory for a host copy of "
                                                 "the activation (%zu bytes)",
                                   ctx->name, tensor_bytes(t));
                    break;
                }
                host = stage.p;
            }
            if (!host_valid && (st = hk_backend_tensor_copy(be, t, host, true)) != HK_OK) break;
            host_valid = true;
            hv = host_view(t, host);
            arg = &hv;
            if (!(r->flags & HK_HOOK_READ_ONLY)) host_dirty = true;
        }
        hook_message[0] = '\0';
        hk_hook_result res = r->fn(arg, ctx, r->user);
        if (res == HK_HOOK_CONTINUE) continue;
        if (res == HK_HOOK_STOP) /* not an error; the message says which hook stopped */
            st = hk_errorf(HK_STOPPED, "the hook at '%s' stopped the forward", ctx->name);
        else
            st = hk_errorf(HK_ERR_HOOK, "hook at '%s' failed: %s", ctx->name,
                           hook_message[0] ? hook_message : "(the callback gave no message)");
    }
    if (host_dirty && st == HK_OK) st = hk_backend_tensor_copy(be, t, host, false);
    if (host) hk_host_stage_put(&stage);
    return st;
}
