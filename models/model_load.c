/* hk_model_load: config.json -> adapter -> canonical config -> weight views. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adapter.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/gguf_tokenizer.h"
#include "core/json.h"
#include "core/model.h"
#include "core/rss.h"
#include "st_modules.h"

static const hk_adapter *const adapters[] = {&hk_adapter_gpt2, &hk_adapter_llama,
                                             &hk_adapter_phi3, &hk_adapter_neox,
                                             &hk_adapter_bert, &hk_adapter_olmo2,
                                             &hk_adapter_gemma, &hk_adapter_moe};

const hk_adapter *hk_adapter_find(const char *model_type) {
    for (size_t a = 0; a < sizeof adapters / sizeof adapters[0]; a++)
        for (const char *const *t = adapters[a]->model_types; *t; t++)
            if (strcmp(*t, model_type) == 0) return adapters[a];
    return NULL;
}

const char *hk_adapter_known_types(void) {
    static char buf[512];
    buf[0] = '\0';
    for (size_t a = 0; a < sizeof adapters / sizeof adapters[0]; a++)
        for (const char *const *t = adapters[a]->model_types; *t; t++) {
            if (buf[0]) strncat(buf, ", ", sizeof buf - strlen(buf) - 1);
            strncat(buf, *t, sizeof buf - strlen(buf) - 1);
        }
    return buf;
}

/* The folder holding config.json: `src` itself, or the folder of a .safetensors file. */
static hk_status config_path(const char *src, char *out, size_t cap) {
    struct stat sb;
    if (stat(src, &sb) != 0)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: no such model folder or file", src);
    if (S_ISDIR(sb.st_mode)) {
        snprintf(out, cap, "%s/config.json", src);
    } else {
        const char *slash = strrchr(src, '/');
        int dir_len = slash ? (int)(slash - src) : 1;
        snprintf(out, cap, "%.*s/config.json", dir_len, slash ? src : ".");
    }
    return HK_OK;
}

static hk_status read_config(const char *cfg_path, const hk_adapter **adapter, hk_config *cfg) {
    cJSON *json = NULL;
    hk_status st = hk_json_load_file(cfg_path, &json);
    if (st != HK_OK) return st;
    char type[64], arch[64] = "";
    if (!cJSON_IsObject(json)) {
        st = hk_errorf(HK_ERR_FORMAT, "%s: expected a JSON object at the top level", cfg_path);
        goto done;
    }
    if ((st = hk_json_str(json, "model_type", cfg_path, type, sizeof type))) goto done;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(json, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (cJSON_IsString(a0)) snprintf(arch, sizeof arch, "%s", a0->valuestring);
    *adapter = hk_adapter_find(type);
    if (!*adapter) {
        st = hk_errorf(HK_ERR_UNSUPPORTED,
                       "%s: unknown architecture: model_type \"%s\"%s%s%s (supported: %s)",
                       cfg_path, type, arch[0] ? " (" : "", arch, arch[0] ? ")" : "",
                       hk_adapter_known_types());
        goto done;
    }
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->family, sizeof cfg->family, "%.31s", type);
    snprintf(cfg->architecture, sizeof cfg->architecture, "%s", arch);
    if ((st = (*adapter)->read_config(json, cfg_path, cfg))) goto done;
    st = hk_config_validate(cfg, cfg_path);
done:
    cJSON_Delete(json);
    return st;
}

static int64_t count_params(const hk_ckpt *ck) {
    int64_t total = 0;
    for (size_t i = 0; i < hk_ckpt_count(ck); i++) {
        const hk_st_tensor *t = hk_ckpt_at(ck, i);
        int64_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
        total += n;
    }
    return total;
}

static const hk_gguf_adapter *const gguf_adapters[] = {&hk_gguf_adapter_llama,
                                                       &hk_gguf_adapter_qwen2,
                                                       &hk_gguf_adapter_qwen3,
                                                       &hk_gguf_adapter_gemma2,
                                                       &hk_gguf_adapter_gemma3,
                                                       &hk_gguf_adapter_phi3};

static bool is_gguf_path(const char *src) {
    const size_t n = strlen(src);
    return n >= 5 && strcmp(src + n - 5, ".gguf") == 0;
}

/* general.architecture -> GGUF adapter -> canonical config. */
static hk_status gguf_config(const hk_ckpt *ck, const hk_gguf_adapter **adapter,
                             hk_config *cfg) {
    const hk_gguf *g = hk_ckpt_gguf(ck);
    char arch[64];
    hk_status st = hk_gguf_get_str(g, "general.architecture", true, arch, sizeof arch);
    if (st) return st;
    *adapter = NULL;
    char known[128] = "";
    for (size_t a = 0; a < sizeof gguf_adapters / sizeof gguf_adapters[0]; a++) {
        if (strcmp(gguf_adapters[a]->arch, arch) == 0) *adapter = gguf_adapters[a];
        if (known[0]) strncat(known, ", ", sizeof known - strlen(known) - 1);
        strncat(known, gguf_adapters[a]->arch, sizeof known - strlen(known) - 1);
    }
    if (!*adapter)
        return hk_errorf(HK_ERR_UNSUPPORTED,
                         "%s: unknown architecture: general.architecture \"%s\" (supported "
                         "in GGUF files: %s)", g->path, arch, known);
    memset(cfg, 0, sizeof *cfg);
    if ((st = (*adapter)->read_config(ck, cfg))) return st;
    return hk_config_validate(cfg, g->path);
}

static hk_status load_gguf(struct hk_model *m, const hk_load_opts *opts) {
    const hk_gguf_adapter *adapter = NULL;
    hk_status st = hk_ckpt_open(m->source, &m->ckpt);
    if (st || (st = gguf_config(m->ckpt, &adapter, &m->cfg))) return st;
    hk_ckpt_set_keep_blocks(m->ckpt, opts->weights == HK_WEIGHTS_BLOCKS);
    if (!(m->w.blocks = calloc((size_t)m->cfg.n_layers, sizeof *m->w.blocks)))
        return hk_errorf(HK_ERR_NOMEM, "hk_model_load: out of memory");
    if ((st = adapter->bind_weights(m->ckpt, &m->cfg, &m->w)))
        return hk_error_prefix(st, "%s (gguf %s)", m->source, m->cfg.family);
    /* The tokenizer from the metadata; a file without a usable one still loads (token ids
     * work, text input says why it cannot). */
    hk_tokenizer *tok = NULL;
    if (hk_gguf_tokenizer(hk_ckpt_gguf(m->ckpt), &tok) == HK_OK) {
        hk_model_set_tokenizer(m, tok);
    } else if (!(m->tok_note = strdup(hk_last_error()))) {
        return hk_errorf(HK_ERR_NOMEM, "hk_model_load: out of memory");
    }
    hk_error_clear();
    return HK_OK;
}

static hk_status load_model(const char *src, const hk_load_opts *opts, hk_model **out) {
    *out = NULL;
    if (is_gguf_path(src)) {
        struct hk_model *m = calloc(1, sizeof *m);
        if (!m || !(m->source = strdup(src))) {
            free(m);
            return hk_errorf(HK_ERR_NOMEM, "hk_model_load: out of memory");
        }
        hk_status st = load_gguf(m, opts);
        if (!st) {
            m->n_params = count_params(m->ckpt);
            st = hk_points_build(&m->cfg, &m->points);
        }
        if (st) {
            hk_model_destroy(m);
            return st;
        }
        *out = m;
        return HK_OK;
    }
    char cfg_path[PATH_MAX];
    hk_status st = config_path(src, cfg_path, sizeof cfg_path);
    if (st != HK_OK) return st;

    struct hk_model *m = calloc(1, sizeof *m);
    if (!m || !(m->source = strdup(src))) {
        free(m);
        return hk_errorf(HK_ERR_NOMEM, "hk_model_load: out of memory");
    }
    const hk_adapter *adapter = NULL;
    if ((st = read_config(cfg_path, &adapter, &m->cfg))) goto fail;
    if ((st = hk_ckpt_open(src, &m->ckpt))) goto fail;
    m->w.blocks = calloc((size_t)m->cfg.n_layers, sizeof *m->w.blocks);
    if (!m->w.blocks) {
        st = hk_errorf(HK_ERR_NOMEM, "hk_model_load: out of memory");
        goto fail;
    }
    if ((st = adapter->bind_weights(m->ckpt, &m->cfg, &m->w))) {
        hk_error_prefix(st, "%s (%s)", src, m->cfg.family);
        goto fail;
    }
    m->n_params = count_params(m->ckpt);
    if ((st = hk_points_build(&m->cfg, &m->points))) goto fail;
    if ((st = hk_st_modules_read(src, &m->pooling, &m->pool_normalize))) goto fail;
    hk_model_load_tokenizer(m, src);
    *out = m;
    return HK_OK;
fail:
    hk_model_destroy(m);
    return st;
}

hk_load_opts hk_load_default_opts(void) {
    return (hk_load_opts){.weights = HK_WEIGHTS_BLOCKS,
                          .device = HK_DEVICE_CPU,
                          .weights_dtype = HK_DTYPE_F32,
                          .device_index = HK_DEVICE_INDEX_AUTO};
}

hk_status hk_model_load_opts(const char *src, const hk_load_opts *opts, hk_model **out) {
    if (!src || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_load: NULL argument");
    *out = NULL;
    const hk_load_opts o = opts ? *opts : hk_load_default_opts();
    if (o.weights != HK_WEIGHTS_BLOCKS && o.weights != HK_WEIGHTS_F32)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "hk_model_load: hk_load_opts.weights is %d, expected HK_WEIGHTS_BLOCKS "
                         "(0) or HK_WEIGHTS_F32 (1)", (int)o.weights);
    if (!hk_device_name(o.device))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_load_opts: device %d, expected "
                                             "HK_DEVICE_CPU, HK_DEVICE_CUDA or HK_DEVICE_TEST",
                         (int)o.device);
    if (o.weights_dtype != HK_DTYPE_F32 && o.weights_dtype != HK_DTYPE_F16 &&
        o.weights_dtype != HK_DTYPE_BF16)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_load_opts: weights_dtype %s, expected "
                                             "f32, f16 or bf16",
                         hk_dtype_name(o.weights_dtype));
    hk_device device = o.device;
    int index = o.device_index;
    if (index < HK_DEVICE_INDEX_AUTO)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_load_opts: device_index %d, expected 0, "
                                             "1, ... or HK_DEVICE_INDEX_AUTO (%d)",
                         index, HK_DEVICE_INDEX_AUTO);
    if (device == HK_DEVICE_CPU) {
        if (index > 0) /* before HK_DEVICE=test could make it a test index */
            return hk_backend_check(device, index);
        /* HK_DEVICE=test or test:N: the devtest setup's test backend */
        hk_status st = hk_backend_env_device(&device, &index);
        if (st != HK_OK) return st;
    }
    /* no GPU or no module, or an index past the devices: say so before reading the
     * checkpoint */
    {
        hk_status st = hk_backend_check(device, index);
        if (st != HK_OK) return st;
    }
    /* what the process held before, and what loading added: the estimate's runtime and load
     * rows (core/estimate.c) */
    const size_t before = hk_rss_now();
    hk_status st = load_model(src, &o, out);
    if (st == HK_OK) {
        const size_t after = hk_rss_now();
        (*out)->rss_before_load = before;
        (*out)->load_growth = after > before ? after - before : 0;
        st = hk_model_attach_backend(*out, device, index, o.weights_dtype);
        if (st != HK_OK) {
            hk_model_free(*out);
            *out = NULL;
        }
    }
    return st;
}

hk_status hk_model_load(const char *src, hk_model **out) {
    return hk_model_load_opts(src, NULL, out);
}
