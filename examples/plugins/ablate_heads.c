/* ablate_heads — zero-ablation of chosen attention heads.
 *
 *   hookformer run --model M --tokens 1,2,3 --plugin ./ablate_heads.so:heads=0.1+1.3
 *
 * heads= lists LAYER.HEAD pairs separated by '+' or ';' (',' separates plugin arguments).
 * For every layer that has a chosen head it hooks blocks.L.attn.hook_z ([batch, pos, head,
 * d_head], the per-head attention output before the output projection W_O) and writes zeros
 * over the chosen heads at every position, so those heads contribute nothing to
 * hook_attn_out (the output bias b_O, shared by all heads, is still added). As in
 * TransformerLens, `head` counts query heads; under grouped-query attention the shared k/v
 * heads are untouched. Every pair is checked against the model at init: a layer or head out
 * of range is an init error naming the pair.
 *
 * Build:  cc -shared -fPIC -o ablate_heads.so ablate_heads.c $(pkg-config --cflags hookformer)
 * A starting point for any intervention: change what on_z() writes (mean-ablation, scaling,
 * patching in a stored value...). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hookformer.h>

typedef struct {
    int64_t n_layers, n_heads;
    bool *ablate;   /* [n_layers, n_heads] true where the head is zeroed */
    size_t n_ablated;
    int64_t calls;  /* how many times a hook fired (layers x chunks x runs) */
} ablation;

/* The callback: zero z[:, :, h, :] for every chosen head h of this layer. */
static hk_hook_result on_z(hk_tensor *z, const hk_hook_ctx *ctx, void *user) {
    ablation *s = user;
    if (z->dtype != HK_DTYPE_F32 || z->device != HK_DEVICE_CPU || z->ndim != 4) {
        hk_hook_error("ablate_heads: expected an f32 CPU tensor [batch, pos, head, d_head]");
        return HK_HOOK_ERROR;
    }
    const bool *row = s->ablate + ctx->layer * s->n_heads;
    float *x = z->data;
    for (int64_t h = 0; h < z->shape[2]; h++) {
        if (!row[h]) continue;
        for (int64_t b = 0; b < z->shape[0]; b++)
            for (int64_t p = 0; p < z->shape[1]; p++)
                for (int64_t i = 0; i < z->shape[3]; i++)
                    x[b * z->stride[0] + p * z->stride[1] + h * z->stride[2] +
                      i * z->stride[3]] = 0.0f;
    }
    s->calls++;
    return HK_HOOK_CONTINUE;
}

/* A non-negative decimal integer, the whole of [s, end). */
static bool parse_index(const char *s, const char *end, int64_t *out) {
    if (s == end) return false;
    int64_t v = 0;
    for (const char *c = s; c < end; c++) {
        if (*c < '0' || *c > '9' || v > (INT64_MAX - 9) / 10) return false;
        v = v * 10 + (*c - '0');
    }
    *out = v;
    return true;
}

/* Heads per layer, read from the shape of blocks.0.attn.hook_z: [batch, pos, head, d_head]. */
static int64_t heads_of(const hk_model *m) {
    for (size_t i = 0; i < hk_model_hook_count(m); i++) {
        const hk_hook_point *pt = hk_model_hook_at(m, i);
        if (strcmp(pt->name, "blocks.0.attn.hook_z") == 0) return pt->shape[2];
    }
    return 0;
}

static hk_status init(const hk_model *m, hk_hooks *hooks, const hk_plugin_arg *args,
                      size_t n_args, void **state) {
    const char *heads = NULL;
    for (size_t i = 0; i < n_args; i++) {
        if (strcmp(args[i].key, "heads") == 0) {
            heads = args[i].value;
        } else {
            hk_hook_error("unknown argument '%s' (expected heads=L.H[+L.H...])", args[i].key);
            return HK_ERR_INVALID_ARG;
        }
    }
    if (!heads || !*heads) {
        hk_hook_error("heads= is required: LAYER.HEAD pairs separated by '+' or ';', "
                      "e.g. heads=0.1+1.3");
        return HK_ERR_INVALID_ARG;
    }

    ablation *s = calloc(1, sizeof *s);
    if (!s) return HK_ERR_NOMEM;
    s->n_layers = hk_model_n_layers(m);
    s->n_heads = heads_of(m);
    s->ablate = calloc((size_t)(s->n_layers * s->n_heads) + 1, sizeof *s->ablate);
    if (!s->ablate) {
        free(s);
        return HK_ERR_NOMEM;
    }

    /* "0.1+1.3": split on '+' / ';', then each item on '.'. */
    hk_status st = HK_ERR_INVALID_ARG;
    for (const char *p = heads; *p;) {
        const char *end = p + strcspn(p, "+;");
        const char *dot = memchr(p, '.', (size_t)(end - p));
        int item_len = (int)(end - p);
        int64_t l, h;
        if (!dot || !parse_index(p, dot, &l) || !parse_index(dot + 1, end, &h)) {
            hk_hook_error("head '%.*s': expected LAYER.HEAD, e.g. 1.3", item_len, p);
            goto fail;
        }
        if (l >= s->n_layers) {
            hk_hook_error("head '%.*s': layer %lld is out of range, the model has %lld layers "
                          "(0..%lld)", item_len, p, (long long)l, (long long)s->n_layers,
                          (long long)s->n_layers - 1);
            goto fail;
        }
        if (h >= s->n_heads) {
            hk_hook_error("head '%.*s': head %lld is out of range, layer %lld has %lld heads "
                          "(0..%lld)", item_len, p, (long long)h, (long long)l,
                          (long long)s->n_heads, (long long)s->n_heads - 1);
            goto fail;
        }
        if (!s->ablate[l * s->n_heads + h]) s->n_ablated++;
        s->ablate[l * s->n_heads + h] = true;
        p = *end ? end + 1 : end;
        if (*end && !*p) {
            hk_hook_error("heads=%s: ends with a separator", heads);
            goto fail;
        }
    }

    /* One registration per layer that has something to zero. */
    for (int64_t l = 0; l < s->n_layers; l++) {
        bool any = false;
        for (int64_t h = 0; h < s->n_heads; h++) any |= s->ablate[l * s->n_heads + h];
        if (!any) continue;
        char name[64];
        snprintf(name, sizeof name, "blocks.%lld.attn.hook_z", (long long)l);
        if ((st = hk_hooks_add(hooks, name, on_z, s, NULL)) != HK_OK) {
            hk_hook_error("%s", hk_last_error());
            goto fail; /* the host removes the registrations already made */
        }
    }
    *state = s;
    return HK_OK;
fail:
    free(s->ablate);
    free(s);
    return st;
}

static hk_status finish(void *state) {
    ablation *s = state;
    printf("# ablate_heads: zeroed %zu head%s:", s->n_ablated, s->n_ablated == 1 ? "" : "s");
    for (int64_t l = 0; l < s->n_layers; l++)
        for (int64_t h = 0; h < s->n_heads; h++)
            if (s->ablate[l * s->n_heads + h]) printf(" %lld.%lld", (long long)l, (long long)h);
    printf(" (blocks.*.attn.hook_z, %lld call%s)\n", (long long)s->calls,
           s->calls == 1 ? "" : "s");
    free(s->ablate);
    free(s);
    return HK_OK;
}

static const hk_plugin_desc desc = {
    .abi_version = HK_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(hk_plugin_desc),
    .name = "ablate_heads",
    .usage = "zero-ablate attention heads at attn.hook_z; args: heads=L.H[+L.H...] "
             "(separators '+' or ';')",
    .init = init,
    .finish = finish,
};

HK_PLUGIN_EXPORT const hk_plugin_desc *hookformer_plugin(void) { return &desc; }
