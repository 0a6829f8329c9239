/* Backend instances (core/backend.h), the device of a model, and the public tensor copies
 * (hk_tensor_to_host / hk_tensor_from_host / hk_backend_stream). */
#include "backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
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

/* ---- device names, indices and counts ---- */

hk_status hk_device_parse(const char *text, hk_device *device, int *index) {
    if (!text || !device || !index)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_device_parse: NULL argument");
    static const struct {
        const char *name;
        hk_device d;
    } kinds[] = {{"cpu", HK_DEVICE_CPU}, {"cuda", HK_DEVICE_CUDA}, {"test", HK_DEVICE_TEST}};
    const char *colon = strchr(text, ':');
    const size_t len = colon ? (size_t)(colon - text) : strlen(text);
    size_t k = 0;
    while (k < sizeof kinds / sizeof *kinds &&
           !(strlen(kinds[k].name) == len && strncmp(kinds[k].name, text, len) == 0))
        k++;
    if (k == sizeof kinds / sizeof *kinds)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "device '%s': expected cpu, cuda or cuda:N (N: a GPU's index, 0, 1, ...)",
                         text);
    if (!colon) {
        *device = kinds[k].d;
        *index = HK_DEVICE_INDEX_AUTO;
        return HK_OK;
    }
    const char *n = colon + 1;
    if (kinds[k].d == HK_DEVICE_CPU)
        return hk_errorf(HK_ERR_INVALID_ARG, "device '%s': the CPU is one device, without an "
                                             "index (expected cpu)",
                         text);
    if (!*n)
        return hk_errorf(HK_ERR_INVALID_ARG, "device '%s': no index after ':' (expected %s:N, "
                                             "N = 0, 1, ...)",
                         text, kinds[k].name);
    long v = 0;
    for (const char *c = n; *c; c++) {
        if (*c < '0' || *c > '9')
            return hk_errorf(HK_ERR_INVALID_ARG, "device '%s': the index '%s' is not a number "
                                                 ">= 0 (expected %s:N, N = 0, 1, ...)",
                             text, n, kinds[k].name);
        if ((v = v * 10 + (*c - '0')) > HK_DEVICE_MAX_INDEX)
            return hk_errorf(HK_ERR_INVALID_ARG, "device '%s': index past %d", text,
                             HK_DEVICE_MAX_INDEX);
    }
    *device = kinds[k].d;
    *index = (int)v;
    return HK_OK;
}

/* HK_TEST_DEVICES: the test backend's device count (default 1). */
static hk_status test_device_count(int *count) {
    const char *e = getenv("HK_TEST_DEVICES");
    *count = 1;
    if (!e || !*e) return HK_OK;
    char *end;
    errno = 0;
    const long v = strtol(e, &end, 10);
    if (*end || errno || v < 0 || v > HK_DEVICE_MAX_INDEX + 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "environment HK_TEST_DEVICES='%s': expected a "
                                             "number of test devices, 0 to %d",
                         e, HK_DEVICE_MAX_INDEX + 1);
    *count = (int)v;
    return HK_OK;
}

hk_status hk_device_count(hk_device device, int *count) {
    if (!count) return hk_errorf(HK_ERR_INVALID_ARG, "hk_device_count: count is NULL");
    *count = 0;
    switch (device) {
    case HK_DEVICE_CPU: *count = 1; return HK_OK;
    case HK_DEVICE_TEST: return test_device_count(count);
    case HK_DEVICE_CUDA: return hk_backend_cuda_count(count);
    }
    return hk_errorf(HK_ERR_INVALID_ARG, "hk_device_count: device %d, expected cpu (%d), cuda "
                                         "(%d) or test (%d)",
                     (int)device, HK_DEVICE_CPU, HK_DEVICE_CUDA, HK_DEVICE_TEST);
}

hk_status hk_backend_check(hk_device device, int index) {
    const char *name = hk_device_name(device);
    if (!name)
        return hk_errorf(HK_ERR_INVALID_ARG, "device %d: expected cpu (%d), cuda (%d) or test "
                                             "(%d)",
                         (int)device, HK_DEVICE_CPU, HK_DEVICE_CUDA, HK_DEVICE_TEST);
    if (index < HK_DEVICE_INDEX_AUTO)
        return hk_errorf(HK_ERR_INVALID_ARG, "device %s: index %d, expected 0, 1, ... or "
                                             "HK_DEVICE_INDEX_AUTO (%d)",
                         name, index, HK_DEVICE_INDEX_AUTO);
    if (device == HK_DEVICE_CPU) {
        if (index > 0)
            return hk_errorf(HK_ERR_INVALID_ARG, "device cpu: index %d, but the CPU is one "
                                                 "device (index 0 or auto)",
                             index);
        return HK_OK;
    }
    /* CUDA: the module loads, a GPU is counted, the index is below the count */
    if (device == HK_DEVICE_CUDA) return hk_backend_cuda_probe(index);
    int n = 0;
    hk_status st = test_device_count(&n);
    if (st != HK_OK) return st;
    const int i = index == HK_DEVICE_INDEX_AUTO ? 0 : index;
    if (i < n) return HK_OK;
    const char *env = getenv("HK_TEST_DEVICES");
    if (n == 0)
        return hk_errorf(HK_ERR_UNSUPPORTED, "device test: no test device (HK_TEST_DEVICES=%s)",
                         env);
    char span[48] = "test:0";
    if (n > 1) snprintf(span, sizeof span, "test:0 to test:%d", n - 1);
    if (!env || !*env)
        return hk_errorf(HK_ERR_INVALID_ARG, "device test:%d: index %d is past the last test "
                                             "device: there is 1 (test:0; HK_TEST_DEVICES=N "
                                             "makes N)",
                         i, i);
    return hk_errorf(HK_ERR_INVALID_ARG, "device test:%d: index %d is past the last test device: "
                                         "HK_TEST_DEVICES=%s makes %d (%s)",
                     i, i, env, n, span);
}

hk_status hk_backend_open(hk_device device, int index, hk_backend **out) {
    if (!out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_backend_open: NULL argument");
    *out = NULL;
    if (!hk_device_name(device))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_backend_open: device %d, expected cpu (%d), "
                                             "cuda (%d) or test (%d)",
                         (int)device, HK_DEVICE_CPU, HK_DEVICE_CUDA, HK_DEVICE_TEST);
    hk_status st = hk_backend_check(device, index);
    if (st != HK_OK) return st;
    const int i = index == HK_DEVICE_INDEX_AUTO ? 0 : index;
    switch (device) {
    case HK_DEVICE_CPU: st = hk_backend_cpu_open(out); break;
    case HK_DEVICE_TEST: st = hk_backend_test_open(out); break;
    case HK_DEVICE_CUDA: st = hk_backend_cuda_open(i, out); break;
    }
    if (st != HK_OK) return st;
    (*out)->index = i;
    if (device == HK_DEVICE_CPU)
        snprintf((*out)->label, sizeof (*out)->label, "cpu");
    else
        snprintf((*out)->label, sizeof (*out)->label, "%s:%d", hk_device_name(device), i);
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
    return hk_host_stage_get_from(hk_backend_for_device(d), bytes, s);
}

hk_status hk_host_stage_get_from(hk_backend *be, size_t bytes, hk_host_stage *s) {
    s->be = NULL;
    s->p = NULL;
    if (!bytes) bytes = 1;
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

hk_status hk_backend_env_device(hk_device *out, int *index) {
    const char *e = getenv("HK_DEVICE");
    *out = HK_DEVICE_CPU;
    if (!e || !*e || !strcmp(e, "cpu")) return HK_OK;
    hk_device d;
    int i;
    if (hk_device_parse(e, &d, &i) == HK_OK && d == HK_DEVICE_TEST) {
        *out = HK_DEVICE_TEST;
        if (i != HK_DEVICE_INDEX_AUTO) *index = i;
        return HK_OK;
    }
    return hk_errorf(HK_ERR_INVALID_ARG, "environment HK_DEVICE='%s': expected cpu, test or "
                                         "test:N (the test-only backend; choose cuda with the "
                                         "load option / --device cuda)",
                     e);
}

/* A model built without hk_model_load (no instance attached) runs on a shared CPU table. */
static hk_backend *cpu_fallback(void) {
    static hk_backend be;
    if (!be.alloc) {
        be.name = "cpu";
        be.device = HK_DEVICE_CPU;
        be.host_memory = true;
        snprintf(be.label, sizeof be.label, "cpu");
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

hk_status hk_model_attach_backend(struct hk_model *m, hk_device device, int index,
                                  hk_dtype weights_dtype) {
    hk_backend *be;
    hk_status st = hk_backend_open(device, index, &be);
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

int hk_model_device_index(const hk_model *m) { return hk_model_backend(m)->index; }

const char *hk_model_device_string(const hk_model *m) {
    return hk_model_backend(m)->label;
}

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

static hk_status tensor_copy(const char *fn, hk_backend *be, const hk_tensor *t, void *host,
                             bool to_host) {
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
    if (!be || be->device != t->device) be = hk_backend_for_device(t->device);
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
    return tensor_copy("hk_tensor_to_host", NULL, t, dst, true);
}

hk_status hk_tensor_from_host(hk_tensor *t, const void *src) {
    return tensor_copy("hk_tensor_from_host", NULL, t, (void *)src, false);
}

hk_status hk_backend_tensor_copy(hk_backend *be, const hk_tensor *t, void *host, bool to_host) {
    return tensor_copy(to_host ? "hk_tensor_to_host" : "hk_tensor_from_host", be, t, host,
                       to_host);
}
