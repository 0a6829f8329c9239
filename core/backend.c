/* Backend instances (core/backend.h), the device of a model, and the public tensor copies
 * (hk_tensor_to_host / hk_tensor_from_host / hk_backend_stream). */
#include "backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"
#include "backend_cuda.h"
#include "backend_test.h"
#include "error.h"
#include "model.h"

/* The open instances, in opening order (hk_backend_for_device: the last of a kind). */
static hk_backend **open_list;
static size_t n_open, cap_open;
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;

const char *hk_device_name(hk_device d) {
    switch (d) {
    case HK_DEVICE_CPU: return "cpu";
    case HK_DEVICE_CUDA: return "cuda";
    case HK_DEVICE_TEST: return "test";
    }
    return NULL;
}

hk_status hk_backend_open(hk_device device, hk_backend **out) {
    if (!out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_backend_open: NULL argument");
    *out = NULL;
    hk_status st;
    switch (device) {
    case HK_DEVICE_CPU: st = hk_backend_cpu_open(out); break;
    case HK_DEVICE_TEST: st = hk_backend_test_open(out); break;
    case HK_DEVICE_CUDA: st = hk_backend_cuda_open(out); break;
    default:
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_backend_open: device %d, expected cpu (%d), "
                                             "cuda (%d) or test (%d)",
                         (int)device, HK_DEVICE_CPU, HK_DEVICE_CUDA, HK_DEVICE_TEST);
    }
    if (st != HK_OK) return st;
    pthread_mutex_lock(&open_lock);
    if (n_open == cap_open) {
        size_t cap = cap_open ? 2 * cap_open : 8;
        hk_backend **l = realloc(open_list, cap * sizeof *l);
        if (!l) {
            pthread_mutex_unlock(&open_lock);
            (*out)->close(*out);
            *out = NULL;
            return hk_errorf(HK_ERR_NOMEM, "hk_backend_open: out of memory");
        }
        open_list = l;
        cap_open = cap;
    }
    open_list[n_open++] = *out;
    pthread_mutex_unlock(&open_lock);
    return HK_OK;
}

void hk_backend_close(hk_backend *be) {
    if (!be) return;
    pthread_mutex_lock(&open_lock);
    for (size_t i = 0; i < n_open; i++)
        if (open_list[i] == be) {
            memmove(open_list + i, open_list + i + 1, (n_open - i - 1) * sizeof *open_list);
            n_open--;
            break;
        }
    if (n_open == 0) {
        free(open_list);
        open_list = NULL;
        cap_open = 0;
    }
    pthread_mutex_unlock(&open_lock);
    if (be->stage) {
        if (be->host_free) be->host_free(be, be->stage);
        else free(be->stage);
        be->stage = NULL;
    }
    be->close(be);
}

hk_status hk_host_stage_get(hk_device d, size_t bytes, hk_host_stage *s) {
    s->be = NULL;
    s->p = NULL;
    if (!bytes) bytes = 1;
    hk_backend *be = hk_backend_for_device(d);
    if (be && !atomic_exchange(&be->stage_busy, true)) {
        if (be->stage_bytes < bytes) {
            void *p = NULL;
            hk_status st = be->host_alloc ? be->host_alloc(be, bytes, &p)
                                          : ((p = malloc(bytes)) ? HK_OK : HK_ERR_NOMEM);
            if (st == HK_OK && p) {
                if (be->stage) {
                    if (be->host_free) be->host_free(be, be->stage);
                    else free(be->stage);
                }
                be->stage = p;
                be->stage_bytes = bytes;
            }
        }
        if (be->stage_bytes >= bytes) {
            s->be = be;
            s->p = be->stage;
            return HK_OK;
        }
        atomic_store(&be->stage_busy, false); /* no bigger buffer: fall back to malloc */
    }
    if (!(s->p = malloc(bytes)))
        return hk_errorf(HK_ERR_NOMEM, "no host memory for a copy of a device tensor (%zu bytes)",
                         bytes);
    return HK_OK;
}

void hk_host_stage_put(hk_host_stage *s) {
    if (s->be) atomic_store(&s->be->stage_busy, false);
    else free(s->p);
    s->be = NULL;
    s->p = NULL;
}

hk_backend *hk_backend_for_device(hk_device d) {
    hk_backend *be = NULL;
    pthread_mutex_lock(&open_lock);
    for (size_t i = n_open; i-- > 0 && !be;)
        if (open_list[i]->device == d) be = open_list[i];
    pthread_mutex_unlock(&open_lock);
    return be;
}

hk_status hk_backend_env_device(hk_device *out) {
    const char *e = getenv("HK_DEVICE");
    *out = HK_DEVICE_CPU;
    if (!e || !*e || !strcmp(e, "cpu")) return HK_OK;
    if (!strcmp(e, "test")) {
        *out = HK_DEVICE_TEST;
        return HK_OK;
    }
    return hk_errorf(HK_ERR_INVALID_ARG, "environment HK_DEVICE='%s': expected cpu or test (the "
                                         "test-only backend; choose cuda with the load "
                                         "option / --device cuda)",
                     e);
}

/* A model built without hk_model_load (no instance attached) runs on a shared CPU table. */
static hk_backend *cpu_fallback(void) {
    static hk_backend be;
    if (!be.alloc) {
        be.name = "cpu";
        be.device = HK_DEVICE_CPU;
        be.host_memory = true;
        hk_backend_cpu_fill(&be);
    }
    return &be;
}

hk_backend *hk_model_backend(const struct hk_model *m) {
    return m && m->be ? m->be : cpu_fallback();
}

const hk_weights *hk_backend_weights(const struct hk_model *m) {
    return m->be && m->dw_set ? &m->dw : &m->w;
}

hk_status hk_model_attach_backend(struct hk_model *m, hk_device device, hk_dtype weights_dtype) {
    hk_backend *be;
    hk_status st = hk_backend_open(device, &be);
    if (st != HK_OK) return st;
    if ((st = be->weights_upload(be, &m->cfg, &m->w, weights_dtype, &m->dw)) != HK_OK) {
        hk_backend_close(be);
        return st;
    }
    m->be = be;
    m->dw_set = true;
    return HK_OK;
}

/* ---- public API ---- */

hk_device hk_model_device(const hk_model *m) { return hk_model_backend(m)->device; }

void *hk_backend_stream(const hk_model *m) {
    hk_backend *be = hk_model_backend(m);
    return be->stream(be);
}

/* Elements of t, and whether its strides are row-major contiguous. */
static int64_t tensor_numel(const hk_tensor *t, bool *contiguous) {
    int64_t n = 1, stride = 1;
    *contiguous = true;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != stride) *contiguous = false;
        stride *= t->shape[d];
        n *= t->shape[d];
    }
    return n;
}

/* Strided element copy on the host: dst contiguous <-> t (to_dense) */
static void host_strided(const hk_tensor *t, void *dense, bool to_dense) {
    const size_t es = hk_dtype_size(t->dtype);
    int64_t idx[HK_MAX_DIMS] = {0}, n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    char *base = t->data, *flat = dense;
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
        if (to_dense)
            memcpy(flat + (size_t)i * es, base + (size_t)off * es, es);
        else
            memcpy(base + (size_t)off * es, flat + (size_t)i * es, es);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static hk_status tensor_copy(const char *fn, const hk_tensor *t, void *host, bool to_host) {
    if (!t || !host || (!t->data && t->ndim > 0))
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (t->ndim < 0 || t->ndim > HK_MAX_DIMS)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: ndim %d, expected 0..%d", fn, t->ndim,
                         HK_MAX_DIMS);
    const size_t es = hk_dtype_size(t->dtype);
    if (!es) return hk_errorf(HK_ERR_INVALID_ARG, "%s: tensor of unsupported dtype %d", fn,
                              (int)t->dtype);
    bool contiguous;
    const int64_t n = tensor_numel(t, &contiguous);
    if (n <= 0) return HK_OK;
    if (t->device == HK_DEVICE_CPU) {
        if (contiguous) {
            if (to_host)
                memcpy(host, t->data, (size_t)n * es);
            else
                memcpy(t->data, host, (size_t)n * es);
        } else {
            host_strided(t, host, to_host);
        }
        return HK_OK;
    }
    hk_backend *be = hk_backend_for_device(t->device);
    if (!be)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: the tensor is on device %s, but no backend of "
                                             "that device is open",
                         fn, hk_device_name(t->device) ? hk_device_name(t->device) : "?");
    if (!contiguous)
        return hk_errorf(HK_ERR_UNSUPPORTED, "%s: a strided (non-contiguous) %s tensor; device "
                                             "tensors handed to hooks are contiguous",
                         fn, be->name);
    return to_host ? be->to_host(be, host, t->data, (size_t)n * es)
                   : be->to_device(be, t->data, host, (size_t)n * es);
}

hk_status hk_tensor_to_host(const hk_tensor *t, void *dst) {
    return tensor_copy("hk_tensor_to_host", t, dst, true);
}

hk_status hk_tensor_from_host(hk_tensor *t, const void *src) {
    return tensor_copy("hk_tensor_from_host", t, (void *)src, false);
}
