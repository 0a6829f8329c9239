/* hk_k_attention: the production attention kernel. Splits the work into items of
 * (query heads sharing a KV head) x (a block of queries), runs them on OpenMP threads with a
 * per-thread workspace, and picks the SIMD instantiation of the tile loop at run time. */
#include "attention_internal.h"
#include "cpu_features.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* multiply-adds (sq·sk·heads·d) below which the kernel runs on one thread */
#define HK_ATTN_PAR_MIN (1 << 20)

static hk_k_attn_path forced_path;

void hk_k_attention_force_path(hk_k_attn_path path) { forced_path = path; }

static hk_attn_item_fn pick_item(void) {
#ifdef HK_ATTN_HAVE_AVX2
    if (forced_path == HK_K_ATTN_AUTO && hk_k_cpu_avx2_fma(false)) return hk_attn_item_avx2;
#endif
    return hk_attn_item_generic;
}

const char *hk_k_attention_isa(void) {
    if (forced_path == HK_K_ATTN_ROWWISE) return "rowwise";
    return pick_item() == hk_attn_item_generic ? "generic" : "avx2+fma";
}

/* Without a workspace (allocation failed, or forced): one row at a time with the online
 * softmax, accumulating in the output row itself. The query row is copied first, since out
 * may alias q. Same results up to rounding; slow but needs no heap. */
#define HK_ATTN_ROWWISE_MAX_D 1024

static void item_rowwise(const hk_attn_args *a, int64_t kvh, int64_t g0, int64_t i0) {
    const int64_t d = a->d_head;
    const int64_t nq = a->sq - i0 < a->bq ? a->sq - i0 : a->bq;
    const hk_k_mask *mask = a->mask;
    float qr[HK_ATTN_ROWWISE_MAX_D];
    for (int64_t g = 0; g < a->gs; g++)
        for (int64_t i = i0; i < i0 + nq; i++) {
            const int64_t h = kvh * a->group + g0 + g;
            float *o = a->out + i * a->ldo + h * d;
            if (d > HK_ATTN_ROWWISE_MAX_D) { /* no memory and no room: say so loudly */
                for (int64_t c = 0; c < d; c++) o[c] = NAN;
                continue;
            }
            memcpy(qr, a->q + i * a->ldq + h * d, (size_t)d * sizeof(float));
            for (int64_t c = 0; c < d; c++) o[c] = 0.0f;
            float m = -INFINITY, l = 0.0f;
            int64_t lo, hi;
            hk_k_mask_row_range(mask, a->sk, i, &lo, &hi);
            for (int64_t j = lo < 0 ? 0 : lo; j < hi; j++) {
                if (mask && mask->allowed &&
                    !mask->allowed(mask->user, h, mask->q_pos0 + i, mask->k_pos0 + j))
                    continue;
                const float *kr = a->k + j * a->ldk + kvh * d;
                const float *vr = a->v + j * a->ldv + kvh * d;
                float s = 0.0f;
                for (int64_t c = 0; c < d; c++) s += qr[c] * kr[c];
                s = hk_softcap(s * a->scale, mask ? mask->softcap : 0.0f);
                if (s > m) {
                    const float alpha = expf(m - s); /* 0 when m = -inf */
                    for (int64_t c = 0; c < d; c++) o[c] *= alpha;
                    l *= alpha;
                    m = s;
                }
                const float p = expf(s - m);
                l += p;
                for (int64_t c = 0; c < d; c++) o[c] += p * vr[c];
            }
            for (int64_t c = 0; c < d; c++) o[c] = l > 0.0f ? o[c] / l : 0.0f;
        }
}

static int64_t rows_per_item(int64_t gs) {
    int64_t bq = (HK_ATTN_ROWS + gs - 1) / gs;
    return bq < 4 ? 4 : bq;
}

void hk_k_attention(const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                    int64_t ldv, int64_t sq, int64_t sk, int64_t n_heads, int64_t n_kv_heads,
                    int64_t d_head, float scale, const hk_k_mask *mask, float *out,
                    int64_t ldo) {
    if (sq <= 0 || n_heads <= 0 || d_head <= 0) return;
    if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0) n_kv_heads = n_heads; /* caller bug */
    hk_attn_args a = {
        .q = q, .k = k, .v = v, .out = out, .ldq = ldq, .ldk = ldk, .ldv = ldv, .ldo = ldo,
        .sq = sq, .sk = sk < 0 ? 0 : sk, .n_heads = n_heads, .n_kv_heads = n_kv_heads,
        .d_head = d_head, .group = n_heads / n_kv_heads, .scale = scale, .mask = mask,
        .dp = (d_head + 15) & ~(int64_t)15,
    };

    /* Whole groups per item keep one K/V tile load per group; split the group only when
     * there would be too few items to keep the threads busy (decoding, MQA). */
    const int64_t nth = omp_get_max_threads();
    int64_t gs = a.group;
    for (;;) {
        const int64_t bq = rows_per_item(gs);
        const int64_t items = n_kv_heads * (a.group / gs) * ((sq + bq - 1) / bq);
        if (gs == 1 || items >= 2 * nth) break;
        int64_t next = gs - 1;
        while (a.group % next != 0) next--;
        gs = next;
    }
    a.gs = gs;
    a.bq = rows_per_item(gs);
    if (a.bq > sq) a.bq = sq;
    a.rp = (gs * a.bq + 15) & ~(int64_t)15;

    const int64_t n_sub = a.group / gs;         /* item groups per KV head */
    const int64_t nqt = (sq + a.bq - 1) / a.bq; /* query blocks */
    const int64_t items = n_kv_heads * n_sub * nqt;
    const size_t ws_bytes = (hk_attn_ws_floats(&a) * sizeof(float) + 63) & ~(size_t)63;
    const hk_attn_item_fn item = pick_item();

    /* Forking a team costs microseconds: small problems stay on the calling thread. */
    const bool par = items > 1 && sq * a.sk * n_heads * d_head >= HK_ATTN_PAR_MIN;
#pragma omp parallel if (par)
    {
        float *buf = forced_path == HK_K_ATTN_ROWWISE ? NULL : aligned_alloc(64, ws_bytes);
        hk_attn_ws w = {0};
        if (buf) {
            w.qt = buf;
            w.st = w.qt + d_head * a.rp;
            w.o = w.st + HK_ATTN_BK * a.rp;
            w.vp = w.o + a.rp * a.dp;
            w.m = w.vp + HK_ATTN_BK * a.dp;
            w.l = w.m + a.rp;
            w.al = w.l + a.rp;
        }
        /* Later query blocks see more keys under a causal mask: hand them out first. */
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < items; t++) {
            const int64_t qt = nqt - 1 - t / (n_kv_heads * n_sub);
            const int64_t rest = t % (n_kv_heads * n_sub);
            const int64_t kvh = rest / n_sub;
            const int64_t g0 = (rest % n_sub) * gs;
            if (buf)
                item(&a, &w, kvh, g0, qt * a.bq);
            else
                item_rowwise(&a, kvh, g0, qt * a.bq);
        }
        free(buf);
    }
}
