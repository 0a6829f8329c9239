/* steer — add a steering vector to the residual stream.
 *
 *   hookformer run --model M --tokens 1,2,3 \
 *       --plugin ./steer.so:vector=happy.f32,coef=4,layer=6,from=0
 *
 * Adds coef * v to every position p >= from of blocks.LAYER.hook_resid_pre ([batch, pos,
 * d_model]), or of the hook named by hook= (an exact name or a glob such as
 * blocks.*.hook_resid_post; its last dim must be d_model). The sum then flows on through the
 * rest of the forward.
 *
 * The vector file is raw little-endian float32, exactly d_model values and nothing else: in
 * numpy, `v.astype('<f4').tofile('happy.f32')`; in C, fwrite of a float[d_model]. A file of
 * any other size is an init error naming the expected and the actual length.
 *
 * arguments: vector=FILE (required), coef=C (default 1), layer=L (default 0),
 *            hook=NAME (instead of layer=), from=P (default 0: every position)
 *
 * Build:  cc -shared -fPIC -o steer.so steer.c $(pkg-config --cflags hookformer) */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hookformer.h>

typedef struct {
    int64_t d_model;
    float *delta;  /* [d_model] coef * v, computed once: (float)(coef * (double)v[i]) */
    double coef, v_norm;
    int64_t from;  /* first absolute position steered */
    char hook[128];
    int64_t calls;
} steering;

static hk_hook_result on_resid(hk_tensor *x, const hk_hook_ctx *ctx, void *user) {
    steering *s = user;
    if (x->dtype != HK_DTYPE_F32 || x->device != HK_DEVICE_CPU || x->ndim != 3 ||
        x->shape[2] != s->d_model) {
        hk_hook_error("steer: hook '%s' is not an f32 CPU tensor [batch, pos, d_model=%lld]",
                      ctx->name, (long long)s->d_model);
        return HK_HOOK_ERROR;
    }
    float *data = x->data;
    for (int64_t b = 0; b < x->shape[0]; b++)
        for (int64_t p = 0; p < x->shape[1]; p++) {
            if (ctx->pos_offset + p < s->from) continue; /* absolute position */
            float *row = data + b * x->stride[0] + p * x->stride[1];
            for (int64_t i = 0; i < s->d_model; i++) row[i * x->stride[2]] += s->delta[i];
        }
    s->calls++;
    return HK_HOOK_CONTINUE;
}

/* Read exactly d floats of raw little-endian float32 from path into out. */
static hk_status read_vector(const char *path, int64_t d, float *out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        hk_hook_error("vector=%s: cannot open: %s", path, strerror(errno));
        return HK_ERR_IO;
    }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        hk_hook_error("vector=%s: cannot read its size", path);
        return HK_ERR_IO;
    }
    if (size != (long)(d * 4)) {
        fclose(f);
        hk_hook_error("vector=%s: expected d_model = %lld float32 values (%lld bytes), the "
                      "file has %ld bytes (%s%ld values)", path, (long long)d,
                      (long long)(d * 4), size, size % 4 ? "not a whole number of float32: " : "",
                      size / 4);
        return HK_ERR_SHAPE;
    }
    unsigned char *raw = malloc((size_t)size + 1);
    if (!raw) {
        fclose(f);
        return HK_ERR_NOMEM;
    }
    size_t got = fread(raw, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(raw);
        hk_hook_error("vector=%s: short read (%zu of %ld bytes)", path, got, size);
        return HK_ERR_IO;
    }
    for (int64_t i = 0; i < d; i++) { /* little-endian bytes -> float, on any host */
        const unsigned char *q = raw + 4 * i;
        uint32_t u = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                     (uint32_t)q[3] << 24;
        memcpy(&out[i], &u, 4);
    }
    free(raw);
    return HK_OK;
}

/* A whole-string number: strtod / strtoll with nothing left over. */
static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return *s && !*end && !errno && isfinite(*out);
}

static int parse_nonneg(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < 0 || *s == '+' || *s == ' ') return 0;
    *out = v;
    return 1;
}

static hk_status init(const hk_model *m, hk_hooks *hooks, const hk_plugin_arg *args,
                      size_t n_args, void **state) {
    steering *s = calloc(1, sizeof *s);
    if (!s) return HK_ERR_NOMEM;
    s->d_model = hk_model_d_model(m);
    s->coef = 1.0;
    const char *vector = NULL, *hook = NULL;
    int64_t layer = 0;
    int have_layer = 0;
    hk_status st = HK_ERR_INVALID_ARG;
    for (size_t i = 0; i < n_args; i++) {
        const char *k = args[i].key, *v = args[i].value;
        if (strcmp(k, "vector") == 0) {
            vector = v;
        } else if (strcmp(k, "coef") == 0) {
            if (!parse_double(v, &s->coef)) {
                hk_hook_error("coef=%s: expected a finite number", v);
                goto fail;
            }
        } else if (strcmp(k, "layer") == 0) {
            if (!parse_nonneg(v, &layer) || layer >= hk_model_n_layers(m)) {
                hk_hook_error("layer=%s: expected an integer in [0, %lld]", v,
                              (long long)hk_model_n_layers(m) - 1);
                goto fail;
            }
            have_layer = 1;
        } else if (strcmp(k, "hook") == 0) {
            hook = v;
        } else if (strcmp(k, "from") == 0) {
            if (!parse_nonneg(v, &s->from)) {
                hk_hook_error("from=%s: expected a non-negative position", v);
                goto fail;
            }
        } else {
            hk_hook_error("unknown argument '%s' (expected vector=, coef=, layer=, hook=, "
                          "from=)", k);
            goto fail;
        }
    }
    if (!vector || !*vector) {
        hk_hook_error("vector=FILE is required (raw little-endian float32, d_model = %lld "
                      "values)", (long long)s->d_model);
        goto fail;
    }
    if (hook && have_layer) {
        hk_hook_error("give layer= or hook=, not both");
        goto fail;
    }
    if (hook && (!*hook || strlen(hook) >= sizeof s->hook)) {
        hk_hook_error("hook=%s: expected a hook name", hook);
        goto fail;
    }
    if (hook) snprintf(s->hook, sizeof s->hook, "%s", hook);
    else snprintf(s->hook, sizeof s->hook, "blocks.%lld.hook_resid_pre", (long long)layer);

    s->delta = malloc((size_t)s->d_model * sizeof *s->delta);
    if (!s->delta) {
        st = HK_ERR_NOMEM;
        goto fail;
    }
    if ((st = read_vector(vector, s->d_model, s->delta)) != HK_OK) goto fail;
    double ss = 0.0;
    for (int64_t i = 0; i < s->d_model; i++) {
        ss += (double)s->delta[i] * s->delta[i];
        s->delta[i] = (float)(s->coef * (double)s->delta[i]);
    }
    s->v_norm = sqrt(ss);

    if ((st = hk_hooks_add(hooks, s->hook, on_resid, s, NULL)) != HK_OK) {
        hk_hook_error("hook=%s: %s", s->hook, hk_last_error());
        goto fail;
    }
    *state = s;
    return HK_OK;
fail:
    free(s->delta);
    free(s);
    return st;
}

static hk_status finish(void *state) {
    steering *s = state;
    printf("# steer: added %g * v (|v| = %.6g) at %s, positions >= %lld (%lld call%s)\n",
           s->coef, s->v_norm, s->hook, (long long)s->from, (long long)s->calls,
           s->calls == 1 ? "" : "s");
    free(s->delta);
    free(s);
    return HK_OK;
}

static const hk_plugin_desc desc = {
    .abi_version = HK_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(hk_plugin_desc),
    .name = "steer",
    .usage = "add coef * v to a residual hook; args: vector=FILE (raw little-endian float32, "
             "d_model values), coef=C (1), layer=L (0: blocks.L.hook_resid_pre) or hook=NAME, "
             "from=P (0)",
    .init = init,
    .finish = finish,
};

HK_PLUGIN_EXPORT const hk_plugin_desc *hookformer_plugin(void) { return &desc; }
