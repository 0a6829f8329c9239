/* Device copies of the weights (core/backend_weights.h). */
#include "backend_weights.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* The device copy of host floats [n] (NULL stays NULL). */
static hk_status upload(hk_backend *be, hk_weight_upload *up, const float *host, size_t n,
                        const float **out) {
    *out = NULL;
    if (!host) return HK_OK;
    const size_t bytes = n * sizeof(float);
    for (size_t i = 0; i < up->n; i++)
        if (up->b[i].host == host && up->b[i].bytes >= bytes) {
            *out = up->b[i].dev;
            return HK_OK;
        }
    if (up->n == up->cap) {
        size_t cap = up->cap ? 2 * up->cap : 64;
        hk_weight_block *b = realloc(up->b, cap * sizeof *b);
        if (!b) return hk_errorf(HK_ERR_NOMEM, "backend %s: out of memory for weights", be->name);
        up->b = b;
        up->cap = cap;
    }
    void *dev;
    hk_status st = be->alloc(be, bytes, &dev);
    if (st != HK_OK) return st;
    if ((st = be->to_device(be, dev, host, bytes)) != HK_OK) {
        be->free(be, dev);
        return st;
    }
    up->b[up->n++] = (hk_weight_block){host, bytes, dev};
    *out = dev;
    return HK_OK;
}

/* The floats a linear's view spans: [out, in] rows of ld, or [in, out]. */
static size_t linear_extent(const hk_linear *l) {
    if (l->n_in <= 0 || l->n_out <= 0) return 0;
    return l->in_out ? (size_t)((l->n_in - 1) * l->ld + l->n_out)
                     : (size_t)((l->n_out - 1) * l->ld + l->n_in);
}

static hk_status up_linear(hk_backend *be, hk_weight_upload *up, const hk_linear *h,
                           hk_linear *d) {
    *d = *h;
    hk_status st = upload(be, up, h->w, linear_extent(h), &d->w);
    if (st == HK_OK) st = upload(be, up, h->b, (size_t)h->n_out, &d->b);
    return st;
}

static hk_status up_norm(hk_backend *be, hk_weight_upload *up, const hk_norm_weights *h,
                         int64_t n, hk_norm_weights *d) {
    hk_status st = upload(be, up, h->w, (size_t)n, &d->w);
    if (st == HK_OK) st = upload(be, up, h->b, (size_t)n, &d->b);
    return st;
}

static hk_status up_block(hk_backend *be, hk_weight_upload *up, const hk_config *c,
                          const hk_block_weights *h, hk_block_weights *d, hk_linear *experts) {
    const int64_t D = c->d_model;
    const bool full = c->qk_norm == HK_QK_NORM_FULL;
    hk_status st = HK_OK;
#define T(e) \
    if (st == HK_OK) st = (e)
    *d = *h;
    T(up_norm(be, up, &h->ln1, D, &d->ln1));
    T(up_norm(be, up, &h->ln2, D, &d->ln2));
    T(up_norm(be, up, &h->ln1_post, D, &d->ln1_post));
    T(up_norm(be, up, &h->ln2_post, D, &d->ln2_post));
    T(up_norm(be, up, &h->q_norm, full ? c->n_heads * c->d_head : c->d_head, &d->q_norm));
    T(up_norm(be, up, &h->k_norm, full ? c->n_kv_heads * c->d_head : c->d_head, &d->k_norm));
    T(up_linear(be, up, &h->q, &d->q));
    T(up_linear(be, up, &h->k, &d->k));
    T(up_linear(be, up, &h->v, &d->v));
    T(up_linear(be, up, &h->o, &d->o));
    T(up_linear(be, up, &h->mlp_in, &d->mlp_in));
    T(up_linear(be, up, &h->mlp_gate, &d->mlp_gate));
    T(up_linear(be, up, &h->mlp_out, &d->mlp_out));
    T(up_linear(be, up, &h->router, &d->router));
    for (int i = 0; i < 3; i++) T(up_linear(be, up, &h->shared[i], &d->shared[i]));
    T(up_linear(be, up, &h->shared_gate, &d->shared_gate));
    d->experts = h->experts ? experts : NULL;
    for (int64_t e = 0; h->experts && e < 3 * c->n_experts; e++)
        T(up_linear(be, up, &h->experts[e], &experts[e]));
#undef T
    return st;
}

hk_status hk_backend_weights_copy(hk_backend *be, const hk_config *c, const hk_weights *w,
                                  hk_weights *dev, hk_weight_upload *up) {
    memset(up, 0, sizeof *up);
    *dev = *w;
    const int64_t D = c->d_model, L = c->n_layers, E = c->n_experts > 0 ? c->n_experts : 0;
    up->blocks = calloc((size_t)(L > 0 ? L : 1), sizeof *up->blocks);
    up->experts = E ? calloc((size_t)(L * E * 3), sizeof *up->experts) : NULL;
    if (!up->blocks || (E && !up->experts)) {
        hk_backend_weights_release(be, up);
        return hk_errorf(HK_ERR_NOMEM, "backend %s: out of memory for weights", be->name);
    }
    dev->blocks = up->blocks;
    hk_status st = upload(be, up, w->tok_embed, (size_t)(c->d_vocab * D), &dev->tok_embed);
    if (st == HK_OK) st = upload(be, up, w->pos_embed, (size_t)(w->n_pos * D), &dev->pos_embed);
    if (st == HK_OK)
        st = upload(be, up, w->type_embed, (size_t)(c->n_token_types * D), &dev->type_embed);
    if (st == HK_OK) st = up_norm(be, up, &w->embed_ln, D, &dev->embed_ln);
    for (int64_t l = 0; l < L && st == HK_OK; l++)
        st = up_block(be, up, c, &w->blocks[l], &dev->blocks[l],
                      up->experts ? up->experts + l * E * 3 : NULL);
    if (st == HK_OK) st = up_norm(be, up, &w->ln_final, D, &dev->ln_final);
    if (st == HK_OK) st = up_linear(be, up, &w->head_dense, &dev->head_dense);
    if (st == HK_OK) st = up_norm(be, up, &w->head_ln, D, &dev->head_ln);
    if (st == HK_OK) st = up_linear(be, up, &w->unembed, &dev->unembed);
    if (st != HK_OK) {
        hk_backend_weights_release(be, up);
        memset(dev, 0, sizeof *dev);
    }
    return st;
}

void hk_backend_weights_release(hk_backend *be, hk_weight_upload *up) {
    for (size_t i = 0; i < up->n; i++) be->free(be, up->b[i].dev);
    free(up->b);
    free(up->blocks);
    free(up->experts);
    memset(up, 0, sizeof *up);
}
