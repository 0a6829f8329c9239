/* SAE features with ordinary hooks: splice an SAE into a model with the error term, read its
 * features at hook_sae_acts_post, then zero the strongest one and see the logits move.
 *
 *   build/examples/sae_features MODEL SAE [TOKENS]
 *   build/examples/sae_features tests/fixtures/gpt2 tests/fixtures/sae/gpt2_standard
 *
 * Exit status 0 when the error-term splice leaves the logits as they were (within 1e-4) and
 * zeroing a feature changes them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hookformer.h>
#include <hookformer_sae.h>

typedef struct {
    int64_t d_sae;
    float *last; /* [d_sae] the features of the last position */
} reader;

static hk_hook_result read_features(hk_tensor *acts, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    reader *r = user;
    const float *a = acts->data; /* [batch, pos, d_sae], contiguous */
    const int64_t last = acts->shape[1] - 1;
    memcpy(r->last, a + last * acts->shape[2], (size_t)r->d_sae * sizeof *r->last);
    return HK_HOOK_CONTINUE;
}

static hk_hook_result zero_feature(hk_tensor *acts, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    const int64_t f = *(const int64_t *)user;
    float *a = acts->data;
    for (int64_t r = 0; r < acts->shape[0] * acts->shape[1]; r++) a[r * acts->shape[2] + f] = 0;
    return HK_HOOK_CONTINUE;
}

static int fail(const char *what) {
    fprintf(stderr, "sae_features: %s: %s\n", what, hk_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sae_features MODEL SAE [TOKENS]\n");
        return 2;
    }
    int32_t tokens[64] = {227, 187, 164, 39, 18, 5};
    int64_t seq = 6;
    if (argc > 3) {
        seq = 0;
        for (char *p = strtok(argv[3], ","); p && seq < 64; p = strtok(NULL, ",")) tokens[seq++] = atoi(p);
    }
    hk_model *m = NULL;
    hk_sae *sae = NULL;
    if (hk_model_load(argv[1], &m) != HK_OK) return fail(argv[1]);
    if (hk_sae_load(argv[2], NULL, &sae) != HK_OK) return fail(argv[2]);
    hk_sae_info info;
    hk_sae_get_info(sae, &info);
    const int64_t vocab = hk_model_output_dim(m);
    float *plain = malloc((size_t)(seq * vocab) * sizeof *plain);   /* [1, seq, vocab] */
    float *spliced = malloc((size_t)(seq * vocab) * sizeof *spliced);
    float *ablated = malloc((size_t)(seq * vocab) * sizeof *ablated);
    reader r = {info.d_sae, calloc((size_t)info.d_sae, sizeof(float))};
    if (hk_model_run(m, NULL, tokens, NULL, 1, seq, plain) != HK_OK) return fail("plain run");

    /* 1. splice with the error term and read the features */
    hk_hooks *h = NULL;
    hk_sae_attachment *a = NULL;
    char point[256];
    snprintf(point, sizeof point, "%s.hook_sae_acts_post", info.hook);
    if (hk_hooks_new(m, &h) != HK_OK || hk_sae_attach(h, sae, HK_SAE_REPLACE_WITH_ERROR, &a) != HK_OK ||
        hk_hooks_add(h, point, read_features, &r, NULL) != HK_OK)
        return fail("attach");
    if (hk_model_run(m, h, tokens, NULL, 1, seq, spliced) != HK_OK) return fail("spliced run");
    int64_t top = 0, active = 0;
    for (int64_t j = 0; j < info.d_sae; j++) {
        active += r.last[j] != 0;
        if (r.last[j] > r.last[top]) top = j;
    }
    double d_splice = 0;
    for (int64_t i = 0; i < seq * vocab; i++) d_splice = fmax(d_splice, fabs(spliced[i] - plain[i]));
    printf("%s (%s, d_sae %lld) at %s\n", info.path, hk_sae_arch_name(info.arch),
           (long long)info.d_sae, info.hook);
    printf("last position: %lld features active, strongest %lld (%.4f)\n", (long long)active,
           (long long)top, r.last[top]);
    printf("spliced with the error term: max |logits - plain| = %.2e\n", d_splice);

    /* 2. zero the strongest feature: an ordinary hook on the same point */
    if (hk_hooks_add(h, point, zero_feature, &top, NULL) != HK_OK) return fail("ablation hook");
    if (hk_model_run(m, h, tokens, NULL, 1, seq, ablated) != HK_OK) return fail("ablated run");
    double d_abl = 0;
    for (int64_t i = 0; i < seq * vocab; i++) d_abl = fmax(d_abl, fabs(ablated[i] - plain[i]));
    printf("feature %lld zeroed: max |logits - plain| = %.4f\n", (long long)top, d_abl);

    hk_sae_detach(a);
    hk_hooks_free(h);
    hk_sae_free(sae);
    hk_model_free(m);
    free(plain), free(spliced), free(ablated), free(r.last);
    return d_splice <= 1e-4 && d_abl > 1e-3 ? 0 : 1;
}
