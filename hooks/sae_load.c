/* Loading SAEs: SAELens folders (cfg.json + sae_weights.safetensors) and Gemma Scope
 * params.npz. Every weight is copied into an f32 buffer the SAE owns. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/json.h"
#include "core/npz.h"
#include "sae_impl.h"

const char *hk_sae_arch_name(hk_sae_arch a) {
    switch (a) {
    case HK_SAE_STANDARD: return "standard";
    case HK_SAE_JUMPRELU: return "jumprelu";
    case HK_SAE_TOPK: return "topk";
    case HK_SAE_GATED: return "gated";
    }
    return "?";
}

void hk_sae_free(hk_sae *s) {
    if (!s) return;
    free(s->hook);
    free(s->hook_out);
    free(s->path);
    free(s->W_enc);
    free(s->W_dec);
    free(s->b_enc);
    free(s->b_dec);
    free(s->threshold);
    free(s->b_gate);
    free(s->b_mag);
    free(s->r_mag);
    free(s->W_mag);
    free(s);
}

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}
static bool is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* A copy of safetensors tensor `name` of shape [d0] or [d0, d1]; required unless opt. */
static hk_status st_copy(hk_ckpt *c, const char *file, const char *name, int ndim, int64_t d0,
                         int64_t d1, bool opt, float **out) {
    const int64_t shape[2] = {d0, d1};
    const float *v = NULL;
    hk_status st = opt ? hk_ckpt_f32_opt(c, name, ndim, shape, &v)
                       : hk_ckpt_f32(c, name, ndim, shape, &v);
    if (st == HK_ERR_NOT_FOUND)
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: tensor '%s' is missing (this architecture needs "
                                           "it)", file, name);
    if (st) return st;
    if (!v) return HK_OK;
    size_t n = (size_t)(d0 * (ndim == 2 ? d1 : 1));
    *out = malloc((n ? n : 1) * sizeof **out);
    if (!*out) return hk_errorf(HK_ERR_NOMEM, "%s: out of memory for '%s'", file, name);
    memcpy(*out, v, n * sizeof **out);
    return HK_OK;
}

/* cfg.json's hook: metadata.<key>, else the top-level <key> (SAELens < 6). */
static hk_status cfg_hook(const cJSON *root, const char *key, const char *path, char **out) {
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    const cJSON *v = cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, key) : NULL;
    if (!cJSON_IsString(v)) v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return HK_ERR_NOT_FOUND;
    if (!cJSON_IsString(v) || !v->valuestring[0]) {
        char found[96];
        return hk_errorf(HK_ERR_FORMAT, "%s: field 'metadata.%s' must be a hook name, found %s",
                         path, key, hk_json_describe(v, found, sizeof found));
    }
    *out = strdup(v->valuestring);
    return *out ? HK_OK : hk_errorf(HK_ERR_NOMEM, "%s: out of memory", path);
}

static hk_status parse_cfg(hk_sae *s, const char *cfg_path, const hk_sae_load_opts *o) {
    cJSON *root = NULL;
    hk_status st = hk_json_load_file(cfg_path, &root);
    if (st) return st;
    char arch[64], norm[64], act_fn[64], reshape[32];
    bool rescale = false;
    st = hk_json_str_opt(root, "architecture", cfg_path, "standard", arch, sizeof arch);
    if (!st) st = hk_json_int(root, "d_in", cfg_path, &s->d_in);
    if (!st) st = hk_json_int(root, "d_sae", cfg_path, &s->d_sae);
    if (!st) st = hk_json_str_opt(root, "normalize_activations", cfg_path, "none", norm, sizeof norm);
    if (!st) st = hk_json_str_opt(root, "activation_fn_str", cfg_path, "", act_fn, sizeof act_fn);
    if (!st && !act_fn[0])
        st = hk_json_str_opt(root, "activation_fn", cfg_path, "relu", act_fn, sizeof act_fn);
    if (!st) st = hk_json_str_opt(root, "reshape_activations", cfg_path, "none", reshape,
                                  sizeof reshape);
    if (!st) st = hk_json_bool_opt(root, "rescale_acts_by_decoder_norm", cfg_path, false, &rescale);
    if (st) goto done;
    if (s->d_in < 1 || s->d_sae < 1) {
        st = hk_errorf(HK_ERR_FORMAT, "%s: d_in %lld and d_sae %lld must be >= 1", cfg_path,
                       (long long)s->d_in, (long long)s->d_sae);
        goto done;
    }
    s->d_out = s->d_in;
    if (strcmp(arch, "standard") == 0) {
        s->arch = strcmp(act_fn, "topk") == 0 ? HK_SAE_TOPK : HK_SAE_STANDARD;
        if (s->arch == HK_SAE_STANDARD && strcmp(act_fn, "relu") != 0) {
            st = hk_errorf(HK_ERR_UNSUPPORTED, "%s: field 'activation_fn' is '%s' (relu and topk "
                                               "are supported)", cfg_path, act_fn);
            goto done;
        }
    } else if (strcmp(arch, "jumprelu") == 0) {
        s->arch = HK_SAE_JUMPRELU;
    } else if (strcmp(arch, "topk") == 0) {
        s->arch = HK_SAE_TOPK;
    } else if (strcmp(arch, "gated") == 0) {
        s->arch = HK_SAE_GATED;
    } else if (strcmp(arch, "transcoder") == 0) {
        s->arch = HK_SAE_STANDARD;
        s->transcoder = true;
    } else if (strcmp(arch, "jumprelu_transcoder") == 0) {
        s->arch = HK_SAE_JUMPRELU;
        s->transcoder = true;
    } else {
        st = hk_errorf(HK_ERR_UNSUPPORTED, "%s: field 'architecture' is '%s' (hookformer reads "
                                           "standard, jumprelu, topk, gated, transcoder and "
                                           "jumprelu_transcoder)", cfg_path, arch);
        goto done;
    }
    /* SAELens's default (SAEConfig); transcoders cannot have it */
    st = hk_json_bool_opt(root, "apply_b_dec_to_input", cfg_path, !s->transcoder,
                          &s->apply_b_dec_to_input);
    if (st) goto done;
    if (s->arch == HK_SAE_TOPK) {
        st = hk_json_int_opt(root, "k", cfg_path, -1, &s->k);
        const cJSON *kw = cJSON_GetObjectItemCaseSensitive(root, "activation_fn_kwargs");
        if (!st && s->k < 0 && cJSON_IsObject(kw))
            st = hk_json_int(kw, "k", cfg_path, &s->k);
        if (!st && (s->k < 1 || s->k > s->d_sae))
            st = hk_errorf(HK_ERR_FORMAT, "%s: field 'k' is %lld, expected 1..d_sae (%lld)",
                           cfg_path, (long long)s->k, (long long)s->d_sae);
        if (st) goto done;
    }
    if (rescale) {
        st = hk_errorf(HK_ERR_UNSUPPORTED, "%s: field 'rescale_acts_by_decoder_norm' is true "
                                           "(not supported)", cfg_path);
        goto done;
    }
    if (strcmp(reshape, "none") != 0 && strcmp(reshape, "hook_z") != 0) {
        st = hk_errorf(HK_ERR_UNSUPPORTED, "%s: field 'reshape_activations' is '%s' (none and "
                                           "hook_z are supported)", cfg_path, reshape);
        goto done;
    }
    if (strcmp(norm, "none") == 0)
        s->norm = HK_SAE_NORM_NONE;
    else if (strcmp(norm, "constant_norm_rescale") == 0)
        s->norm = HK_SAE_NORM_CONSTANT_NORM_RESCALE;
    else if (strcmp(norm, "layer_norm") == 0)
        s->norm = HK_SAE_NORM_LAYER_NORM;
    else {
        st = hk_errorf(HK_ERR_UNSUPPORTED, "%s: field 'normalize_activations' is '%s' (none, "
                                           "constant_norm_rescale and layer_norm are supported; "
                                           "fold other scalings into the weights)", cfg_path, norm);
        goto done;
    }
    if (s->transcoder) {
        st = hk_json_int(root, "d_out", cfg_path, &s->d_out);
        if (!st && s->d_out < 1)
            st = hk_errorf(HK_ERR_FORMAT, "%s: field 'd_out' is %lld, expected >= 1", cfg_path,
                           (long long)s->d_out);
        if (!st && s->apply_b_dec_to_input)
            st = hk_errorf(HK_ERR_FORMAT, "%s: field 'apply_b_dec_to_input' is true, which a "
                                          "transcoder cannot have (b_dec is in the output space)",
                           cfg_path);
        if (st) goto done;
    }
    if (o && o->hook) {
        if (!(s->hook = strdup(o->hook))) st = hk_errorf(HK_ERR_NOMEM, "out of memory");
    } else {
        st = cfg_hook(root, "hook_name", cfg_path, &s->hook);
        if (st == HK_ERR_NOT_FOUND)
            st = hk_errorf(HK_ERR_NOT_FOUND, "%s: field 'metadata.hook_name' is missing (or give "
                                             "the hook explicitly)", cfg_path);
    }
    if (st) goto done;
    if (s->transcoder) {
        st = cfg_hook(root, "hook_name_out", cfg_path, &s->hook_out);
        if (st == HK_ERR_NOT_FOUND)
            st = hk_errorf(HK_ERR_NOT_FOUND, "%s: field 'metadata.hook_name_out' is missing: a "
                                             "transcoder writes at another hook", cfg_path);
    } else if (!(s->hook_out = strdup(s->hook))) {
        st = hk_errorf(HK_ERR_NOMEM, "out of memory");
    }
done:
    cJSON_Delete(root);
    return st;
}

static hk_status load_saelens(hk_sae *s, const char *dir, const hk_sae_load_opts *o) {
    char cfg[4096], wts[4096];
    snprintf(cfg, sizeof cfg, "%s/cfg.json", dir);
    snprintf(wts, sizeof wts, "%s/sae_weights.safetensors", dir);
    hk_status st = parse_cfg(s, cfg, o);
    if (st) return st;
    if (!is_file(wts))
        return hk_errorf(HK_ERR_NOT_FOUND, "%s: no such file (a SAELens folder holds cfg.json and "
                                           "sae_weights.safetensors)", wts);
    hk_ckpt *c = NULL;
    if ((st = hk_ckpt_open(wts, &c))) return st;
    const int64_t di = s->d_in, ds = s->d_sae, dout = s->d_out;
    st = st_copy(c, wts, "W_enc", 2, di, ds, false, &s->W_enc);
    if (!st) st = st_copy(c, wts, "W_dec", 2, ds, dout, false, &s->W_dec);
    if (!st) st = st_copy(c, wts, "b_dec", 1, dout, 0, false, &s->b_dec);
    if (!st && s->arch != HK_SAE_GATED) st = st_copy(c, wts, "b_enc", 1, ds, 0, false, &s->b_enc);
    if (!st && s->arch == HK_SAE_JUMPRELU) {
        st = st_copy(c, wts, "threshold", 1, ds, 0, true, &s->threshold);
        if (!st && !s->threshold) { /* training checkpoints store log_threshold */
            st = st_copy(c, wts, "log_threshold", 1, ds, 0, true, &s->threshold);
            if (!st && !s->threshold)
                st = hk_errorf(HK_ERR_NOT_FOUND, "%s: tensor 'threshold' is missing (a jumprelu "
                                                 "SAE needs it)", wts);
            else if (!st)
                for (int64_t j = 0; j < ds; j++) s->threshold[j] = expf(s->threshold[j]);
        }
    }
    if (!st && s->arch == HK_SAE_GATED) {
        st = st_copy(c, wts, "b_gate", 1, ds, 0, false, &s->b_gate);
        if (!st) st = st_copy(c, wts, "b_mag", 1, ds, 0, false, &s->b_mag);
        if (!st) st = st_copy(c, wts, "r_mag", 1, ds, 0, false, &s->r_mag);
    }
    hk_ckpt_close(c);
    s->format = "saelens";
    return st;
}

/* params.npz member `name` of shape [d0] or [d0, d1] (d < 0: taken from the file). */
static hk_status npz_take(hk_npz *z, const char *path, const char *name, int ndim, int64_t *d0,
                          int64_t *d1, float **out) {
    int nd;
    int64_t shape[HK_NPY_MAX_DIMS];
    hk_status st = hk_npz_read_f32(z, name, &nd, shape, out);
    if (st) return st;
    bool ok = nd == ndim && (*d0 < 0 || shape[0] == *d0) && (ndim < 2 || *d1 < 0 || shape[1] == *d1);
    if (!ok) {
        free(*out);
        *out = NULL;
        char want[64], got[64];
        if (ndim == 2)
            snprintf(want, sizeof want, "[%lld, %lld]", (long long)*d0, (long long)*d1);
        else
            snprintf(want, sizeof want, "[%lld]", (long long)*d0);
        int k = snprintf(got, sizeof got, "[");
        for (int i = 0; i < nd && k < (int)sizeof got - 24; i++)
            k += snprintf(got + k, sizeof got - (size_t)k, "%s%lld", i ? ", " : "", (long long)shape[i]);
        snprintf(got + k, sizeof got - (size_t)k, "]");
        return hk_errorf(HK_ERR_SHAPE, "%s: array '%s' has shape %s, expected %s", path, name, got,
                         want);
    }
    *d0 = shape[0];
    if (ndim == 2) *d1 = shape[1];
    return HK_OK;
}

static hk_status load_npz(hk_sae *s, const char *path, const hk_sae_load_opts *o) {
    if (!o || !o->hook)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: a params.npz does not say which hook it reads: "
                                             "give the hook (--hook blocks.L.hook_resid_post)",
                         path);
    hk_npz *z = NULL;
    hk_status st = hk_npz_open(path, &z);
    if (st) return st;
    int64_t di = -1, ds = -1;
    st = npz_take(z, path, "W_enc", 2, &di, &ds, &s->W_enc);
    if (!st) st = npz_take(z, path, "W_dec", 2, &ds, &di, &s->W_dec);
    if (!st) st = npz_take(z, path, "b_enc", 1, &ds, NULL, &s->b_enc);
    if (!st) st = npz_take(z, path, "b_dec", 1, &di, NULL, &s->b_dec);
    if (!st) st = npz_take(z, path, "threshold", 1, &ds, NULL, &s->threshold);
    hk_npz_close(z);
    if (st) return st;
    s->arch = HK_SAE_JUMPRELU;
    s->d_in = s->d_out = di;
    s->d_sae = ds;
    s->format = "gemma-scope-npz";
    s->hook = strdup(o->hook);
    s->hook_out = strdup(o->hook);
    if (!s->hook || !s->hook_out) return hk_errorf(HK_ERR_NOMEM, "out of memory");
    return HK_OK;
}

hk_status hk_sae_load(const char *path, const hk_sae_load_opts *opts, hk_sae **out) {
    if (!path || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_load: NULL path or out");
    *out = NULL;
    hk_sae *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return hk_errorf(HK_ERR_NOMEM, "hk_sae_load: out of memory");
    }
    char buf[4096];
    hk_status st;
    size_t len = strlen(path);
    if (is_dir(path)) {
        snprintf(buf, sizeof buf, "%s/cfg.json", path);
        if (is_file(buf)) {
            st = load_saelens(s, path, opts);
        } else {
            snprintf(buf, sizeof buf, "%s/params.npz", path);
            st = is_file(buf) ? load_npz(s, buf, opts)
                              : hk_errorf(HK_ERR_NOT_FOUND, "%s: neither cfg.json (a SAELens SAE) "
                                                            "nor params.npz (Gemma Scope) is in "
                                                            "this folder", path);
        }
    } else if (len >= 4 && strcmp(path + len - 4, ".npz") == 0) {
        st = load_npz(s, path, opts);
    } else if (is_file(path)) {
        st = hk_errorf(HK_ERR_UNSUPPORTED, "%s: expected a SAELens folder (cfg.json + "
                                           "sae_weights.safetensors) or a params.npz", path);
    } else {
        st = hk_errorf(HK_ERR_NOT_FOUND, "%s: no such file or folder", path);
    }
    if (st) {
        hk_sae_free(s);
        return st;
    }
    *out = s;
    return HK_OK;
}

hk_status hk_sae_get_info(const hk_sae *s, hk_sae_info *out) {
    if (!s || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_get_info: NULL argument");
    *out = (hk_sae_info){.arch = s->arch, .transcoder = s->transcoder, .d_in = s->d_in,
                         .d_sae = s->d_sae, .d_out = s->d_out, .k = s->k,
                         .apply_b_dec_to_input = s->apply_b_dec_to_input, .norm = s->norm,
                         .hook = s->hook, .hook_out = s->hook_out, .path = s->path,
                         .format = s->format};
    return HK_OK;
}

hk_status hk_sae_weight(hk_sae *s, const char *name, hk_tensor *out) {
    if (!s || !name || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_weight: NULL argument");
    struct { const char *name; float *p; int64_t d0, d1; } w[] = {
        {"W_enc", s->W_enc, s->d_in, s->d_sae}, {"W_dec", s->W_dec, s->d_sae, s->d_out},
        {"b_enc", s->b_enc, s->d_sae, 0},       {"b_dec", s->b_dec, s->d_out, 0},
        {"threshold", s->threshold, s->d_sae, 0}, {"b_gate", s->b_gate, s->d_sae, 0},
        {"b_mag", s->b_mag, s->d_sae, 0},       {"r_mag", s->r_mag, s->d_sae, 0},
    };
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        if (strcmp(w[i].name, name) != 0) continue;
        if (!w[i].p) break;
        memset(out, 0, sizeof *out);
        out->data = w[i].p;
        out->dtype = HK_DTYPE_F32;
        out->device = HK_DEVICE_CPU;
        out->ndim = w[i].d1 ? 2 : 1;
        out->shape[0] = w[i].d0;
        out->stride[0] = w[i].d1 ? w[i].d1 : 1;
        if (w[i].d1) {
            out->shape[1] = w[i].d1;
            out->stride[1] = 1;
        }
        if (w[i].p == s->W_enc || w[i].p == s->r_mag) s->mag_dirty = true;
        return HK_OK;
    }
    return hk_errorf(HK_ERR_NOT_FOUND, "hk_sae_weight: this %s SAE has no weight '%s'",
                     hk_sae_arch_name(s->arch), name);
}
