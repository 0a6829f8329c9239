/* Device copies of the weights in the weights dtype (backend_cuda_weights.h). */
#include "backend_cuda_weights.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"

/* One pointer field of dev to rewrite: it points at host floats [lo, lo + n). */
typedef struct {
    const float **slot;
    uintptr_t lo;
    size_t n;
    int kind;    /* 1: a matrix in a non-f32 dtype; 0: f32 */
    size_t span; /* index of the merged span holding it */
} wref;

typedef struct {
    wref *r;
    size_t n, cap;
    hk_dtype mdtype;
    bool oom;
} wrefs;

size_t hk_wset_esize(hk_dtype t) { return t == HK_DTYPE_F32 ? 4 : 2; }

static void add(wrefs *rs, const float **slot, size_t n, bool matrix) {
    if (!*slot || n == 0 || rs->oom) return;
    if (rs->n == rs->cap) {
        const size_t cap = rs->cap ? 2 * rs->cap : 256;
        wref *r = realloc(rs->r, cap * sizeof *r);
        if (!r) {
            rs->oom = true;
            return;
        }
        rs->r = r;
        rs->cap = cap;
    }
    rs->r[rs->n++] = (wref){slot, (uintptr_t)*slot, n, matrix && rs->mdtype != HK_DTYPE_F32, 0};
}

/* The floats a linear's view spans: [out, in] rows of ld, or [in, out]. */
static size_t extent(const hk_linear *l) {
    if (l->n_in <= 0 || l->n_out <= 0) return 0;
    return l->in_out ? (size_t)((l->n_in - 1) * l->ld + l->n_out)
                     : (size_t)((l->n_out - 1) * l->ld + l->n_in);
}

static void add_linear(wrefs *rs, hk_linear *l) {
    l->qw = NULL; /* a GGUF linear's blocks stay on the host: the device runs cuBLAS on w */
    add(rs, &l->w, extent(l), true);
    add(rs, &l->b, l->n_out > 0 ? (size_t)l->n_out : 0, false);
}

static void add_norm(wrefs *rs, hk_norm_weights *nw, int64_t d) {
    add(rs, &nw->w, (size_t)d, false);
    add(rs, &nw->b, (size_t)d, false);
}

static void collect(const hk_config *c, hk_weights *dev, wrefs *rs) {
    const size_t dm = (size_t)c->d_model;
    add(rs, &dev->tok_embed, (size_t)c->d_vocab * dm, false);
    add(rs, &dev->pos_embed, (size_t)dev->n_pos * dm, false);
    add(rs, &dev->type_embed, (size_t)c->n_token_types * dm, false);
    add_norm(rs, &dev->embed_ln, c->d_model);
    const bool full = c->qk_norm == HK_QK_NORM_FULL;
    for (int64_t l = 0; l < c->n_layers; l++) {
        hk_block_weights *b = &dev->blocks[l];
        add_norm(rs, &b->ln1, c->d_model);
        add_norm(rs, &b->ln2, c->d_model);
        add_norm(rs, &b->ln1_post, c->d_model);
        add_norm(rs, &b->ln2_post, c->d_model);
        add_norm(rs, &b->q_norm, full ? c->n_heads * c->d_head : c->d_head);
        add_norm(rs, &b->k_norm, full ? c->n_kv_heads * c->d_head : c->d_head);
        hk_linear *ls[] = {&b->q,         &b->k,         &b->v,         &b->o,
                           &b->mlp_in,    &b->mlp_gate,  &b->mlp_out,   &b->router,
                           &b->shared[0], &b->shared[1], &b->shared[2], &b->shared_gate};
        for (size_t i = 0; i < sizeof ls / sizeof *ls; i++) add_linear(rs, ls[i]);
        for (int64_t e = 0; b->experts && e < 3 * c->n_experts; e++)
            add_linear(rs, &b->experts[e]);
    }
    add_norm(rs, &dev->ln_final, c->d_model);
    add_linear(rs, &dev->head_dense);
    add_norm(rs, &dev->head_ln, c->d_model);
    add_linear(rs, &dev->unembed);
}

static int by_kind_then_host(const void *a, const void *b) {
    const wref *x = a, *y = b;
    if (x->kind != y->kind) return x->kind - y->kind;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int by_dev(const void *a, const void *b) {
    const uintptr_t x = (uintptr_t)((const hk_wblock *)a)->dev;
    const uintptr_t y = (uintptr_t)((const hk_wblock *)b)->dev;
    return x < y ? -1 : x > y;
}

void hk_wset_free(const hk_wsink *sink, hk_wset *set) {
    for (size_t i = 0; i < set->n; i++) sink->free(sink->user, set->b[i].dev);
    free(set->b);
    free(set->blocks);
    free(set->experts);
    memset(set, 0, sizeof *set);
}

hk_status hk_wset_upload(const hk_config *c, const hk_weights *w, hk_dtype mdtype,
                         const hk_wsink *sink, hk_weights *dev, hk_wset *set) {
    memset(set, 0, sizeof *set);
    memset(dev, 0, sizeof *dev);
    if (mdtype != HK_DTYPE_F32 && mdtype != HK_DTYPE_F16 && mdtype != HK_DTYPE_BF16)
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "backend cuda: weights dtype %d: expected f32, f16 or bf16", (int)mdtype);
    *dev = *w;
    const int64_t L = c->n_layers, E = c->n_experts > 0 ? c->n_experts : 0;
    set->blocks = calloc((size_t)(L > 0 ? L : 1), sizeof *set->blocks);
    set->experts = E ? calloc((size_t)(L * E * 3), sizeof *set->experts) : NULL;
    wrefs rs = {NULL, 0, 0, mdtype, false};
    hk_status st = HK_OK;
    if (!set->blocks || (E && !set->experts)) goto oom;
    for (int64_t l = 0; l < L; l++) {
        set->blocks[l] = w->blocks[l];
        if (E && w->blocks[l].experts) {
            memcpy(set->experts + l * E * 3, w->blocks[l].experts, (size_t)(E * 3) * sizeof(hk_linear));
            set->blocks[l].experts = set->experts + l * E * 3;
        }
    }
    dev->blocks = set->blocks;
    collect(c, dev, &rs);
    if (rs.oom) goto oom;
    qsort(rs.r, rs.n, sizeof *rs.r, by_kind_then_host);
    /* merge overlapping views into spans, then one device block per span */
    set->b = calloc(rs.n ? rs.n : 1, sizeof *set->b);
    uintptr_t *span_lo = calloc(rs.n ? rs.n : 1, sizeof *span_lo);
    if (!set->b || !span_lo) {
        free(span_lo);
        goto oom;
    }
    size_t ns = 0;
    uintptr_t hi = 0;
    for (size_t i = 0; i < rs.n; i++) {
        const uintptr_t lo = rs.r[i].lo, end = lo + rs.r[i].n * sizeof(float);
        if (ns == 0 || rs.r[i].kind != rs.r[i - 1].kind || lo >= hi) {
            span_lo[ns] = lo;
            set->b[ns].dtype = rs.r[i].kind ? mdtype : HK_DTYPE_F32;
            hi = end;
            ns++;
        } else if (end > hi) {
            hi = end;
        }
        set->b[ns - 1].n = (hi - span_lo[ns - 1]) / sizeof(float);
        rs.r[i].span = ns - 1;
    }
    for (size_t s = 0; s < ns && st == HK_OK; s++) {
        hk_wblock *b = &set->b[s];
        st = sink->alloc(sink->user, b->n * hk_wset_esize(b->dtype), &b->dev);
        if (st != HK_OK) break;
        set->n = s + 1;
        st = sink->put(sink->user, b->dev, b->dtype, (const float *)span_lo[s], b->n);
    }
    for (size_t i = 0; st == HK_OK && i < rs.n; i++) {
        const hk_wblock *b = &set->b[rs.r[i].span];
        const size_t off = (rs.r[i].lo - span_lo[rs.r[i].span]) / sizeof(float);
        *rs.r[i].slot = (const float *)(void *)((char *)b->dev + off * hk_wset_esize(b->dtype));
    }
    free(span_lo);
    free(rs.r);
    if (st != HK_OK) {
        hk_wset_free(sink, set);
        memset(dev, 0, sizeof *dev);
        return st;
    }
    qsort(set->b, set->n, sizeof *set->b, by_dev);
    return HK_OK;
oom:
    free(rs.r);
    hk_wset_free(sink, set);
    memset(dev, 0, sizeof *dev);
    return hk_errorf(HK_ERR_NOMEM, "backend cuda: out of host memory for the weights' views");
}

hk_dtype hk_wset_dtype(const hk_wset *set, const void *p, const hk_wblock **blk) {
    if (blk) *blk = NULL;
    const uintptr_t x = (uintptr_t)p;
    size_t lo = 0, hi = set->n; /* the last block starting at or before x */
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)set->b[mid].dev <= x) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return HK_DTYPE_F32;
    const hk_wblock *b = &set->b[lo - 1];
    if (x >= (uintptr_t)b->dev + b->n * hk_wset_esize(b->dtype)) return HK_DTYPE_F32;
    if (blk) *blk = b;
    return b->dtype;
}

hk_dtype hk_wset_checkpoint_dtype(const struct hk_ckpt *ck) {
    hk_dtype seen = HK_DTYPE_U8; /* none yet */
    for (size_t i = 0; ck && i < hk_ckpt_count(ck); i++) {
        const hk_st_tensor *t = hk_ckpt_at(ck, i);
        if (t->ndim != 2) continue;
        if (t->quantized) return HK_DTYPE_F32;
        if (t->dtype != HK_DTYPE_F32 && t->dtype != HK_DTYPE_F16 && t->dtype != HK_DTYPE_BF16)
            continue; /* integer tensors (position ids, masks) say nothing */
        if (seen == HK_DTYPE_U8) seen = t->dtype;
        else if (seen != t->dtype) return HK_DTYPE_F32;
    }
    return seen == HK_DTYPE_F16 || seen == HK_DTYPE_BF16 ? seen : HK_DTYPE_F32;
}
