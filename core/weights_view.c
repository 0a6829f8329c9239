/* Read-only views of the canonical weights under TransformerLens's state-dict names and
 * shapes (hk_model_weight). The forward's weights are f32 already (converted or dequantized
 * at load); a weight whose TransformerLens layout is the stored one is handed out zero-copy,
 * any other (a transpose, per-head split, GQA expansion, a missing bias as zeros) is gathered
 * once into a contiguous buffer the model owns (struct hk_weight_copy, freed with it). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"

struct hk_weight_copy {
    struct hk_weight_copy *next;
    char name[96];
    hk_tensor t; /* contiguous; t.data owned */
};

void hk_weight_copies_free(struct hk_weight_copy *c) {
    while (c) {
        struct hk_weight_copy *next = c->next;
        free(c->t.data);
        free(c);
        c = next;
    }
}

/* What a name asks for. */
typedef enum {
    W_EMBED,      /* embed.W_E [d_vocab, d_model] */
    W_POS,        /* pos_embed.W_pos [n_ctx, d_model] (learned positions) */
    W_UNEMBED,    /* unembed.W_U [d_model, d_vocab] */
    W_UNEMBED_B,  /* unembed.b_U [d_vocab] */
    W_NORM_W,     /* ln_final.w, blocks.L.ln1.w, blocks.L.ln2.w [d_model] */
    W_NORM_B,     /* ... .b [d_model] (LayerNorm only) */
    W_HEADS_IN,   /* attn.W_Q/W_K/W_V [heads, d_model, d_head]; _W_K/_W_V [n_kv_heads, ...] */
    W_HEADS_B,    /* attn.b_Q/b_K/b_V [heads, d_head]; _b_K/_b_V [n_kv_heads, d_head] */
    W_HEADS_OUT,  /* attn.W_O [n_heads, d_head, d_model] */
    W_LINEAR,     /* mlp.W_in / W_gate [d_model, d_mlp], mlp.W_out [d_mlp, d_model] */
    W_BIAS        /* attn.b_O [d_model], mlp.b_in [d_mlp], mlp.b_out [d_model] */
} w_kind;

typedef struct {
    const char *suffix; /* after "blocks.L." for block weights */
    w_kind kind;
    char which;         /* q, k, v (head weights); 1, 2, f (norms: ln1, ln2, final);
                           i, g, o (MLP: in, gate, out); O (attn output bias) */
    bool kv_only;       /* _W_K, _W_V, _b_K, _b_V: the n_kv_heads stored heads (GQA only) */
} w_entry;

static const w_entry global_entries[] = {
    {"embed.W_E", W_EMBED, 0, false},       {"pos_embed.W_pos", W_POS, 0, false},
    {"ln_final.w", W_NORM_W, 'f', false},   {"ln_final.b", W_NORM_B, 'f', false},
    {"unembed.W_U", W_UNEMBED, 0, false},   {"unembed.b_U", W_UNEMBED_B, 0, false},
};

static const w_entry block_entries[] = {
    {"ln1.w", W_NORM_W, '1', false},         {"ln1.b", W_NORM_B, '1', false},
    {"attn.W_Q", W_HEADS_IN, 'q', false},    {"attn.W_K", W_HEADS_IN, 'k', false},
    {"attn.W_V", W_HEADS_IN, 'v', false},    {"attn._W_K", W_HEADS_IN, 'k', true},
    {"attn._W_V", W_HEADS_IN, 'v', true},    {"attn.W_O", W_HEADS_OUT, 0, false},
    {"attn.b_Q", W_HEADS_B, 'q', false},     {"attn.b_K", W_HEADS_B, 'k', false},
    {"attn.b_V", W_HEADS_B, 'v', false},     {"attn._b_K", W_HEADS_B, 'k', true},
    {"attn._b_V", W_HEADS_B, 'v', true},     {"attn.b_O", W_BIAS, 'O', false},
    {"ln2.w", W_NORM_W, '2', false},         {"ln2.b", W_NORM_B, '2', false},
    {"mlp.W_in", W_LINEAR, 'i', false},      {"mlp.W_gate", W_LINEAR, 'g', false},
    {"mlp.W_out", W_LINEAR, 'o', false},     {"mlp.b_in", W_BIAS, 'i', false},
    {"mlp.b_out", W_BIAS, 'o', false},
};

#define N_GLOBAL (sizeof global_entries / sizeof *global_entries)
#define N_BLOCK (sizeof block_entries / sizeof *block_entries)

static const hk_norm_weights *entry_norm(const hk_model *m, const w_entry *e, int64_t layer) {
    if (e->which == 'f') return &m->w.ln_final;
    return e->which == '1' ? &m->w.blocks[layer].ln1 : &m->w.blocks[layer].ln2;
}

static const hk_linear *entry_linear(const hk_model *m, const w_entry *e, int64_t layer) {
    const hk_block_weights *b = &m->w.blocks[layer];
    switch (e->which) {
    case 'q': return &b->q;
    case 'k': return &b->k;
    case 'v': return &b->v;
    case 'O': return &b->o;
    case 'i': return &b->mlp_in;
    case 'g': return &b->mlp_gate;
    case 'o': return &b->mlp_out;
    default: return &m->w.unembed;
    }
}

/* Why this model has no such weight, or NULL when it has it. */
static const char *entry_missing(const hk_model *m, const w_entry *e) {
    const hk_config *c = &m->cfg;
    switch (e->kind) {
    case W_POS:
        return c->pos == HK_POS_LEARNED ? NULL : "its positions are not a learned table";
    case W_UNEMBED:
    case W_UNEMBED_B:
        return c->head == HK_HEAD_NONE ? "it has no output head" : NULL;
    case W_NORM_W:
    case W_NORM_B:
        if (e->which == 'f' && c->head != HK_HEAD_LM) return "it has no final norm";
        if (e->kind == W_NORM_B && c->norm != HK_NORM_LAYERNORM) return "RMSNorm has no bias";
        return NULL;
    case W_HEADS_IN:
    case W_HEADS_B:
        if (e->kv_only && c->n_kv_heads == c->n_heads)
            return "it has no grouped-query attention (n_kv_heads = n_heads: use W_K / W_V)";
        return NULL;
    case W_LINEAR:
        return e->which == 'g' && !c->gated_mlp ? "its MLP is not gated" : NULL;
    default: return NULL;
    }
}

/* element (out o, in i) of a linear */
static inline float lin_at(const hk_linear *l, int64_t o, int64_t i) {
    return l->in_out ? l->w[i * l->ld + o] : l->w[o * l->ld + i];
}

static void set_contiguous(hk_tensor *t, int ndim, const int64_t *shape) {
    t->dtype = HK_DTYPE_F32;
    t->device = HK_DEVICE_CPU;
    t->ndim = ndim;
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        t->shape[d] = shape[d];
        t->stride[d] = stride;
        stride *= shape[d];
    }
}

static int64_t numel(const hk_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* Fill t (shape set, data NULL): point it at the stored data when the layout matches, else
 * gather into *copy (malloc'd, [numel]). */
static hk_status build(const hk_model *m, const w_entry *e, int64_t layer, hk_tensor *t,
                       float **copy) {
    const hk_config *c = &m->cfg;
    const int64_t D = c->d_model, H = c->n_heads, K = c->n_kv_heads, dh = c->d_head;
    const int64_t heads = e->kv_only ? K : H;
    *copy = NULL;
    const float *view = NULL;
    switch (e->kind) {
    case W_EMBED: {
        int64_t s[2] = {c->d_vocab, D};
        set_contiguous(t, 2, s);
        view = m->w.tok_embed;
        break;
    }
    case W_POS: {
        int64_t s[2] = {m->w.n_pos, D};
        set_contiguous(t, 2, s);
        view = m->w.pos_embed;
        break;
    }
    case W_NORM_W:
    case W_NORM_B: {
        const hk_norm_weights *nw = entry_norm(m, e, layer);
        set_contiguous(t, 1, &D);
        view = e->kind == W_NORM_W ? nw->w : nw->b;
        break;
    }
    case W_UNEMBED:
    case W_LINEAR: {
        const hk_linear *l = entry_linear(m, e, layer);
        int64_t s[2] = {l->n_in, l->n_out}; /* TransformerLens: x @ W, W [in, out] */
        set_contiguous(t, 2, s);
        if (l->in_out && l->ld == l->n_out) view = l->w;
        break;
    }
    case W_UNEMBED_B:
    case W_BIAS: {
        const hk_linear *l = entry_linear(m, e, layer);
        set_contiguous(t, 1, &l->n_out);
        view = l->b;
        if (!view) { /* TransformerLens keeps absent biases as zeros */
            *copy = calloc((size_t)l->n_out, sizeof **copy);
            if (!*copy) return hk_errorf(HK_ERR_NOMEM, "hk_model_weight: out of memory");
            return HK_OK;
        }
        break;
    }
    case W_HEADS_IN:
    case W_HEADS_B:
    case W_HEADS_OUT: break;
    }
    if (view) {
        t->data = (void *)view; /* read-only: may be the mmapped file */
        return HK_OK;
    }
    if (e->kind == W_HEADS_IN || e->kind == W_HEADS_B) {
        int64_t s[3] = {heads, D, dh}, sb[2] = {heads, dh};
        if (e->kind == W_HEADS_IN) set_contiguous(t, 3, s);
        else set_contiguous(t, 2, sb);
    } else if (e->kind == W_HEADS_OUT) {
        int64_t s[3] = {H, dh, D};
        set_contiguous(t, 3, s);
    }
    float *out = malloc((size_t)numel(t) * sizeof *out);
    if (!out) return hk_errorf(HK_ERR_NOMEM, "hk_model_weight: out of memory for %lld floats",
                               (long long)numel(t));
    const hk_linear *l = entry_linear(m, e, layer);
    /* W_K / W_V of a GQA model: TransformerLens's repeat_interleave of the n_kv_heads heads */
    const int64_t group = (e->which == 'k' || e->which == 'v') && !e->kv_only ? H / K : 1;
    switch (e->kind) {
    case W_HEADS_IN: /* [heads, d_model, d_head]: (h, i, d) = W[out = src(h)*dh + d, in = i] */
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < D; i++)
                for (int64_t d = 0; d < dh; d++)
                    out[(h * D + i) * dh + d] = lin_at(l, (h / group) * dh + d, i);
        break;
    case W_HEADS_B:
        for (int64_t h = 0; h < heads; h++)
            for (int64_t d = 0; d < dh; d++)
                out[h * dh + d] = l->b ? l->b[(h / group) * dh + d] : 0.0f;
        break;
    case W_HEADS_OUT: { /* [n_heads, d_head, d_model]: (h, d, o) = W_o[out = o, in = h*dh + d] */
        const hk_linear *o = &m->w.blocks[layer].o;
        for (int64_t h = 0; h < H; h++)
            for (int64_t d = 0; d < dh; d++)
                for (int64_t j = 0; j < D; j++) out[(h * dh + d) * D + j] = lin_at(o, j, h * dh + d);
        break;
    }
    default: /* [in, out] of a linear */
        for (int64_t i = 0; i < l->n_in; i++)
            for (int64_t j = 0; j < l->n_out; j++) out[i * l->n_out + j] = lin_at(l, j, i);
        break;
    }
    *copy = out;
    return HK_OK;
}

/* "blocks.L.<suffix>" -> layer and suffix; else layer -1 and the whole name. */
static const char *split_name(const char *name, int64_t *layer, bool *bad_layer) {
    *layer = -1;
    *bad_layer = false;
    if (strncmp(name, "blocks.", 7) != 0) return name;
    const char *p = name + 7;
    char *end;
    if (*p < '0' || *p > '9') {
        *bad_layer = true;
        return name;
    }
    long long v = strtoll(p, &end, 10);
    if (*end != '.') {
        *bad_layer = true;
        return name;
    }
    *layer = v;
    return end + 1;
}

static void suffix_list(const w_entry *entries, size_t n, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        int w = snprintf(buf + k, cap - k, "%s%s", i ? ", " : "", entries[i].suffix);
        if (w < 0) break;
        k += (size_t)w;
    }
}

hk_status hk_model_weight(hk_model *m, const char *name, hk_tensor *out) {
    if (!m || !name || !out)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_weight: model, name and out are required");
    memset(out, 0, sizeof *out);
    for (struct hk_weight_copy *c = m->weight_copies; c; c = c->next)
        if (strcmp(c->name, name) == 0) {
            *out = c->t;
            return HK_OK;
        }
    int64_t layer;
    bool bad_layer;
    const char *suffix = split_name(name, &layer, &bad_layer);
    const w_entry *e = NULL;
    const w_entry *table = layer >= 0 ? block_entries : global_entries;
    const size_t n = layer >= 0 ? N_BLOCK : N_GLOBAL;
    for (size_t i = 0; i < n && !bad_layer; i++)
        if (strcmp(table[i].suffix, suffix) == 0) e = &table[i];
    if (!e) {
        char g[256], b[512];
        suffix_list(global_entries, N_GLOBAL, g, sizeof g);
        suffix_list(block_entries, N_BLOCK, b, sizeof b);
        return hk_errorf(HK_ERR_NOT_FOUND,
                         "hk_model_weight: no weight named '%s'; TransformerLens names are %s, "
                         "and blocks.L.{%s}",
                         name, g, b);
    }
    if (layer >= m->cfg.n_layers)
        return hk_errorf(HK_ERR_NOT_FOUND,
                         "hk_model_weight: '%s': layer %lld is out of range: this %s model has "
                         "%lld blocks (0..%lld)",
                         name, (long long)layer, m->cfg.family, (long long)m->cfg.n_layers,
                         (long long)m->cfg.n_layers - 1);
    const char *why = entry_missing(m, e);
    if (why)
        return hk_errorf(HK_ERR_NOT_FOUND, "hk_model_weight: this %s model has no '%s': %s",
                         m->cfg.family, name, why);
    float *copy;
    hk_tensor t = {0};
    hk_status st = build(m, e, layer, &t, &copy);
    if (st != HK_OK) return st;
    if (!copy) {
        *out = t;
        return HK_OK;
    }
    struct hk_weight_copy *c = calloc(1, sizeof *c);
    if (!c) {
        free(copy);
        return hk_errorf(HK_ERR_NOMEM, "hk_model_weight: out of memory");
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    t.data = copy;
    c->t = t;
    c->next = m->weight_copies;
    m->weight_copies = c;
    *out = t;
    return HK_OK;
}

/* Candidate i of every name (globals, then each block's), whether or not the model has it. */
static const w_entry *candidate(const hk_model *m, size_t i, int64_t *layer) {
    *layer = -1;
    if (i < N_GLOBAL) return &global_entries[i];
    i -= N_GLOBAL;
    if (i >= (size_t)m->cfg.n_layers * N_BLOCK) return NULL;
    *layer = (int64_t)(i / N_BLOCK);
    return &block_entries[i % N_BLOCK];
}

size_t hk_model_weight_count(const hk_model *m) {
    if (!m) return 0;
    size_t n = 0, k = 0;
    int64_t layer;
    for (const w_entry *e; (e = candidate(m, k, &layer)); k++) n += entry_missing(m, e) == NULL;
    return n;
}

hk_status hk_model_weight_name(const hk_model *m, size_t i, char *buf, size_t cap) {
    if (!m || !buf || cap == 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_weight_name: model and buf are required");
    buf[0] = '\0';
    size_t seen = 0, k = 0;
    int64_t layer;
    for (const w_entry *e; (e = candidate(m, k, &layer)); k++) {
        if (entry_missing(m, e) || seen++ != i) continue;
        int w = layer < 0 ? snprintf(buf, cap, "%s", e->suffix)
                          : snprintf(buf, cap, "blocks.%" PRId64 ".%s", layer, e->suffix);
        if (w < 0 || (size_t)w >= cap) {
            buf[0] = '\0';
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_model_weight_name: %zu bytes are too few "
                                                 "for name %zu",
                             cap, i);
        }
        return HK_OK;
    }
    return hk_errorf(HK_ERR_NOT_FOUND, "hk_model_weight_name: index %zu is past this model's "
                                       "%zu weights",
                     i, seen);
}
