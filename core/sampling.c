/* Next-token choice (greedy, temperature, top-k, top-p with a seeded PRNG) and generation
 * through a session: prefill in chunks, then one position per step with last_only logits.
 *
 * Sampling follows Hugging Face's logits warpers (generation/logits_process.py) in the order
 * generate() applies them: TemperatureLogitsWarper (scores / T), TopKLogitsWarper (remove
 * scores < the k-th largest, so ties with it stay), TopPLogitsWarper (sort ascending, remove
 * where the cumulative probability <= 1 - top_p, keep the most likely token), then a draw
 * from softmax of what is left. The PRNG is splitmix64 (Steele, Lea, Flood 2014): one 64-bit
 * word of state, so a caller can hold it in a uint64_t. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hookformer.h"

hk_sampler_opts hk_sampler_default(void) {
    return (hk_sampler_opts){.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform01(uint64_t *s) { return (double)(splitmix64(s) >> 11) * 0x1.0p-53; }

static hk_status check_opts(const char *fn, const hk_sampler_opts *o) {
    if (!o) return HK_OK;
    if (!(o->temperature >= 0.0f) || isinf(o->temperature))
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "%s: temperature = %g: expected a finite number >= 0 (0 = greedy)", fn,
                         (double)o->temperature);
    if (o->top_k < 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "%s: top_k = %d: expected >= 0 (0 = off)", fn,
                         o->top_k);
    if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        return hk_errorf(HK_ERR_INVALID_ARG,
                         "%s: top_p = %g: expected a value in (0, 1] (1 = off; "
                         "hk_sampler_default() sets it)",
                         fn, (double)o->top_p);
    return HK_OK;
}

typedef struct {
    float x;
    int32_t id;
} cand;

/* Descending x, ties by ascending id: a total order, so results do not depend on qsort. */
static int cmp_cand_desc(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->x != b->x) return a->x > b->x ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* The k-th largest (k >= 1) of v[0..n) (no NaN); v is reordered. Quickselect, Hoare
 * partition around a median of three. */
static float kth_largest(float *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, want = k - 1; /* index of the answer in descending order */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        float a = v[lo], b = v[mid], c = v[hi];
        float pivot = (a > b) ? ((b > c) ? b : (a > c ? c : a)) : ((a > c) ? a : (b > c ? c : b));
        int64_t i = lo, j = hi;
        while (i <= j) { /* descending: left part >= pivot >= right part */
            while (v[i] > pivot) i++;
            while (v[j] < pivot) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return v[want];
    }
    return v[want];
}

/* Unnormalized probability of logit x at temperature T: exp((x - xmax) / T) in double, so
 * that a tiny T tends to greedy instead of overflowing (logits / T in float32 would reach
 * +inf). Dividing by T > 0 keeps the order, so top-k and the sort work on the raw logits.
 * With xmax = +inf the +inf logits weigh 1 each and the others 0. */
static double weight(float x, float xmax, double T) {
    if (isinf(xmax)) return x == xmax ? 1.0 : 0.0;
    return exp(((double)x - (double)xmax) / T);
}

hk_status hk_sample(const float *logits, int64_t vocab, const hk_sampler_opts *o,
                    uint64_t *rng_state, int32_t *out) {
    if (!logits || !out) return hk_errorf(HK_ERR_INVALID_ARG, "hk_sample: NULL argument");
    if (vocab < 1 || vocab > INT32_MAX)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sample: vocab = %lld, expected 1..%d",
                         (long long)vocab, INT32_MAX);
    hk_status st = check_opts("hk_sample", o);
    if (st != HK_OK) return st;

    int64_t best = 0;
    for (int64_t i = 0; i < vocab; i++) {
        if (isnan(logits[i]))
            return hk_errorf(HK_ERR_INVALID_ARG, "hk_sample: logit of token %lld is NaN",
                             (long long)i);
        if (logits[i] > logits[best]) best = i; /* strict: ties keep the lowest id */
    }
    if (!o || o->temperature == 0.0f) {
        *out = (int32_t)best;
        return HK_OK;
    }
    if (isinf(logits[best]) && logits[best] < 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_sample: every logit is -inf; nothing to sample");

    uint64_t local = o->seed, *rng = rng_state ? rng_state : &local;
    const double T = (double)o->temperature;
    const float xmax = logits[best];
    cand *c = malloc((size_t)vocab * sizeof *c);
    if (!c) return hk_errorf(HK_ERR_NOMEM, "hk_sample: out of memory for %lld candidates",
                             (long long)vocab);
    for (int64_t i = 0; i < vocab; i++) c[i] = (cand){logits[i], (int32_t)i};
    int64_t n = vocab;

    /* top-k: keep x >= the k-th largest */
    if (o->top_k > 0 && o->top_k < vocab) {
        float *v = malloc((size_t)vocab * sizeof *v);
        if (!v) {
            free(c);
            return hk_errorf(HK_ERR_NOMEM, "hk_sample: out of memory for top-k");
        }
        memcpy(v, logits, (size_t)vocab * sizeof *v);
        float thr = kth_largest(v, vocab, o->top_k);
        free(v);
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (c[i].x >= thr) c[m++] = c[i];
        n = m;
    }

    /* top-p: with probabilities p (softmax of the candidates) in descending order, keep a token
     * while the mass of the tokens before it is < top_p (HF removes the ascending prefix whose
     * cumulative mass is <= 1 - top_p). A token with p < (1 - top_p) / n lies in that removed
     * tail whatever the others are (the tail from it holds at most n such tokens), so only
     * the rest is sorted; the most likely token (p >= 1/n) always survives. */
    if (o->top_p < 1.0f) {
        double z = 0.0;
        for (int64_t i = 0; i < n; i++) z += weight(c[i].x, xmax, T);
        const double top_p = (double)o->top_p, eps = (1.0 - top_p) / (double)n;
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (weight(c[i].x, xmax, T) / z >= eps) c[m++] = c[i];
        qsort(c, (size_t)m, sizeof *c, cmp_cand_desc);
        double before = 0.0;
        int64_t keep = 0;
        while (keep < m && (keep == 0 || before < top_p))
            before += weight(c[keep++].x, xmax, T) / z;
        n = keep;
    }

    double z = 0.0;
    for (int64_t i = 0; i < n; i++) z += weight(c[i].x, xmax, T);
    const double u = uniform01(rng) * z;
    double acc = 0.0;
    int32_t pick = c[0].id;
    for (int64_t i = 0; i < n; i++) {
        double w = weight(c[i].x, xmax, T);
        if (w <= 0.0) continue;
        pick = c[i].id; /* the last token of positive weight if rounding leaves u >= acc */
        acc += w;
        if (u < acc) break;
    }
    free(c);
    *out = pick;
    return HK_OK;
}

hk_status hk_generate(hk_model *m, hk_hooks *hooks, const int32_t *prompt, int64_t n_prompt,
                      int64_t max_new, int64_t chunk, const hk_sampler_opts *o,
                      const int32_t *stop_ids, size_t n_stop, int32_t *out, int64_t *n_out) {
    if (n_out) *n_out = 0;
    if (!m || !prompt || !n_out || (max_new > 0 && !out) || (n_stop > 0 && !stop_ids))
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_generate: NULL argument");
    if (n_prompt < 1)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_generate: n_prompt = %lld, expected >= 1",
                         (long long)n_prompt);
    if (max_new < 0 || max_new > INT64_MAX - n_prompt)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_generate: max_new = %lld, expected >= 0",
                         (long long)max_new);
    if (chunk < 0)
        return hk_errorf(HK_ERR_INVALID_ARG, "hk_generate: chunk = %lld, expected >= 0 "
                                             "(0 = the whole prompt at once)",
                         (long long)chunk);
    hk_status st = check_opts("hk_generate", o);
    if (st != HK_OK) return st;
    const int64_t vocab = hk_model_vocab_size(m);
    for (size_t i = 0; i < n_stop; i++)
        if (stop_ids[i] < 0 || stop_ids[i] >= vocab)
            return hk_errorf(HK_ERR_INVALID_ARG,
                             "hk_generate: stop_ids[%zu] = %d is outside the vocabulary [0, %lld)",
                             i, stop_ids[i], (long long)vocab);
    if (chunk == 0 || chunk > n_prompt) chunk = n_prompt;

    /* The last token chosen is never fed: the session holds n_prompt + max_new - 1 positions.
     * That length also fixes LongRoPE's factors, as transformers picks them from the longest
     * forward generate() runs. */
    const int64_t max_len = max_new > 0 ? n_prompt + max_new - 1 : n_prompt;
    hk_session *s = NULL;
    if ((st = hk_session_new(m, 1, max_len, &s)) != HK_OK)
        return hk_error_prefix(st, "hk_generate: %lld prompt + %lld new tokens",
                               (long long)n_prompt, (long long)max_new);
    float *logits = max_new > 0 ? malloc((size_t)vocab * sizeof *logits) : NULL; /* [vocab] */
    if (max_new > 0 && !logits) {
        hk_session_free(s);
        return hk_errorf(HK_ERR_NOMEM, "hk_generate: out of memory for the logits");
    }

    for (int64_t p = 0; p < n_prompt; p += chunk) {
        int64_t n = n_prompt - p < chunk ? n_prompt - p : chunk;
        st = hk_session_feed(s, hooks, prompt + p, n, true, logits);
        if (st != HK_OK) {
            if (st != HK_STOPPED)
                hk_error_prefix(st, "hk_generate: prefill of positions %lld..%lld",
                                (long long)p, (long long)(p + n - 1));
            goto done;
        }
    }
    uint64_t rng = o ? o->seed : 0;
    for (int64_t i = 0; i < max_new; i++) {
        int32_t tok;
        if ((st = hk_sample(logits, vocab, o, &rng, &tok)) != HK_OK) {
            hk_error_prefix(st, "hk_generate: step %lld", (long long)i);
            goto done;
        }
        out[i] = tok;
        *n_out = i + 1;
        bool stop = i + 1 == max_new;
        for (size_t j = 0; j < n_stop && !stop; j++) stop = tok == stop_ids[j];
        if (stop) break;
        st = hk_session_feed(s, hooks, &tok, 1, true, logits);
        if (st != HK_OK) {
            if (st != HK_STOPPED)
                hk_error_prefix(st, "hk_generate: decode step %lld (position %lld)",
                                (long long)i + 1, (long long)hk_session_pos(s));
            goto done;
        }
    }
    st = HK_OK;
done:
    free(logits);
    hk_session_free(s);
    return st;
}
