/* SAE encode/decode as SAELens computes them (the sae_lens.saes modules), on contiguous f32 rows.
 * The two matrix products go through OpenBLAS sgemm. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "sae_impl.h"

void hk_sae_scratch_free(hk_sae_scratch *w) {
    free(w->in);
    free(w->gate);
    free(w->scale);
    free(w->idx);
    memset(w, 0, sizeof *w);
}

static hk_status scratch_grow(const hk_sae *s, hk_sae_scratch *w, int64_t n) {
    if (n <= w->cap_rows && w->in) return HK_OK;
    hk_sae_scratch_free(w);
    w->in = malloc((size_t)(n * s->d_in) * sizeof *w->in);
    w->scale = malloc((size_t)(2 * n) * sizeof *w->scale);
    w->idx = malloc((size_t)s->d_sae * sizeof *w->idx);
    if (s->arch == HK_SAE_GATED) w->gate = malloc((size_t)(n * s->d_sae) * sizeof *w->gate);
    if (!w->in || !w->scale || !w->idx || (s->arch == HK_SAE_GATED && !w->gate)) {
        hk_sae_scratch_free(w);
        return hk_errorf(HK_ERR_NOMEM, "SAE: out of memory for %lld rows of %lld features",
                         (long long)n, (long long)s->d_sae);
    }
    w->cap_rows = n;
    return HK_OK;
}

hk_status hk_sae_norm_in(const hk_sae *s, hk_sae_scratch *w, const float *x, int64_t n) {
    hk_status st = scratch_grow(s, w, n);
    if (st) return st;
    const int64_t d = s->d_in;
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * d; /* [d_in] */
        float *y = w->in + r * d;
        if (s->norm == HK_SAE_NORM_CONSTANT_NORM_RESCALE) {
            double ss = 0;
            for (int64_t j = 0; j < d; j++) ss += (double)xr[j] * xr[j];
            const float coeff = (float)(sqrt((double)d) / sqrt(ss));
            w->scale[2 * r] = coeff;
            for (int64_t j = 0; j < d; j++) y[j] = xr[j] * coeff;
        } else if (s->norm == HK_SAE_NORM_LAYER_NORM) {
            double mu = 0, var = 0;
            for (int64_t j = 0; j < d; j++) mu += xr[j];
            mu /= (double)d;
            for (int64_t j = 0; j < d; j++) var += ((double)xr[j] - mu) * ((double)xr[j] - mu);
            /* torch's x.std(): the unbiased (n - 1) estimate; eps added to std */
            const double sd = sqrt(var / (double)(d > 1 ? d - 1 : 1));
            w->scale[2 * r] = (float)mu;
            w->scale[2 * r + 1] = (float)sd;
            for (int64_t j = 0; j < d; j++) y[j] = (float)(((double)xr[j] - mu) / (sd + 1e-5));
        } else {
            memcpy(y, xr, (size_t)d * sizeof *y);
        }
        if (s->apply_b_dec_to_input)
            for (int64_t j = 0; j < d; j++) y[j] -= s->b_dec[j];
    }
    return HK_OK;
}

/* out [n, cols] = a [n, inner] @ b [inner, cols] + bias[cols] (bias may be NULL) */
static void gemm_bias(const float *a, const float *b, const float *bias, int64_t n,
                      int64_t inner, int64_t cols, float *out) {
    for (int64_t r = 0; r < n; r++) {
        if (bias)
            memcpy(out + r * cols, bias, (size_t)cols * sizeof *out);
        else
            memset(out + r * cols, 0, (size_t)cols * sizeof *out);
    }
    if (n == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)cols, (int)inner, 1.0f, a,
                (int)inner, b, (int)cols, 1.0f, out, (int)cols);
}

hk_status hk_sae_pre(const hk_sae *s, hk_sae_scratch *w, int64_t n, float *pre) {
    if (s->arch == HK_SAE_GATED) {
        hk_sae *ms = (hk_sae *)s; /* the cached W_enc * exp(r_mag) */
        if (ms->mag_dirty || !ms->W_mag) {
            if (!ms->W_mag) ms->W_mag = malloc((size_t)(s->d_in * s->d_sae) * sizeof *ms->W_mag);
            if (!ms->W_mag) return hk_errorf(HK_ERR_NOMEM, "SAE: out of memory");
            for (int64_t i = 0; i < s->d_in; i++)
                for (int64_t j = 0; j < s->d_sae; j++)
                    ms->W_mag[i * s->d_sae + j] = s->W_enc[i * s->d_sae + j] * expf(s->r_mag[j]);
            ms->mag_dirty = false;
        }
        gemm_bias(w->in, s->W_enc, s->b_gate, n, s->d_in, s->d_sae, w->gate);
        gemm_bias(w->in, s->W_mag, s->b_mag, n, s->d_in, s->d_sae, pre);
    } else {
        gemm_bias(w->in, s->W_enc, s->b_enc, n, s->d_in, s->d_sae, pre);
    }
    return HK_OK;
}

/* The k-th largest of v[0..n) (1 <= k <= n), reordering v: quickselect, O(n) on average. */
static float kth_largest(float *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        const float pivot = v[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pivot) i++;
            while (v[j] < pivot) j--;
            if (i <= j) {
                float t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return v[want];
    }
    return v[want];
}

void hk_sae_act(const hk_sae *s, hk_sae_scratch *w, int64_t n, const float *pre, float *acts) {
    const int64_t m = s->d_sae;
    for (int64_t r = 0; r < n; r++) {
        const float *p = pre + r * m; /* [d_sae] */
        float *a = acts + r * m;
        switch (s->arch) {
        case HK_SAE_STANDARD:
            for (int64_t j = 0; j < m; j++) a[j] = p[j] > 0 ? p[j] : 0;
            break;
        case HK_SAE_JUMPRELU:
            for (int64_t j = 0; j < m; j++) a[j] = p[j] > s->threshold[j] && p[j] > 0 ? p[j] : 0;
            break;
        case HK_SAE_GATED: {
            const float *g = w->gate + r * m;
            for (int64_t j = 0; j < m; j++) a[j] = g[j] > 0 && p[j] > 0 ? p[j] : 0;
            break;
        }
        case HK_SAE_TOPK: {
            /* the k-th largest value; entries above it are kept, then ties in index order */
            int64_t k = s->k < m ? s->k : m;
            memcpy(w->idx, p, (size_t)m * sizeof *w->idx);
            const float kth = k > 0 ? kth_largest(w->idx, m, k) : INFINITY;
            int64_t above = 0;
            for (int64_t j = 0; j < m; j++) above += p[j] > kth;
            int64_t ties = k - above;
            for (int64_t j = 0; j < m; j++) {
                bool keep = p[j] > kth || (p[j] == kth && ties-- > 0);
                a[j] = keep && p[j] > 0 ? p[j] : 0;
            }
            break;
        }
        }
    }
}

void hk_sae_dec(const hk_sae *s, const float *acts, int64_t n, float *out) {
    gemm_bias(acts, s->W_dec, s->b_dec, n, s->d_sae, s->d_out, out);
}

void hk_sae_norm_out(const hk_sae *s, const hk_sae_scratch *w, int64_t n, float *out) {
    if (s->transcoder) return; /* SAELens's Transcoder.decode skips the out-normalization */
    const int64_t d = s->d_out;
    for (int64_t r = 0; r < n; r++) {
        float *y = out + r * d;
        if (s->norm == HK_SAE_NORM_CONSTANT_NORM_RESCALE)
            for (int64_t j = 0; j < d; j++) y[j] /= w->scale[2 * r];
        else if (s->norm == HK_SAE_NORM_LAYER_NORM)
            for (int64_t j = 0; j < d; j++) y[j] = y[j] * w->scale[2 * r + 1] + w->scale[2 * r];
    }
}

hk_status hk_sae_encode(const hk_sae *s, const float *x, int64_t n, float *acts) {
    if (!s || (!x && n) || (!acts && n) || n < 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_encode: NULL SAE, input or output");
    hk_sae_scratch w = {0};
    hk_status st = hk_sae_norm_in(s, &w, x, n);
    if (st == HK_OK) st = hk_sae_pre(s, &w, n, acts);
    if (st == HK_OK) hk_sae_act(s, &w, n, acts, acts);
    hk_sae_scratch_free(&w);
    return st;
}

hk_status hk_sae_decode(const hk_sae *s, const float *acts, int64_t n, float *recons) {
    if (!s || (!acts && n) || (!recons && n) || n < 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sae_decode: NULL SAE, input or output");
    hk_sae_dec(s, acts, n, recons);
    return HK_OK;
}
