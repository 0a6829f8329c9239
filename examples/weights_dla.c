/* Direct logit attribution per head, computed in C from the weights (hk_model_weight) and
 * cached activations, beside the library's own hk_dla:
 *
 *   build/examples/weights_dla MODEL [ANSWER WRONG]
 *
 * For the last position of one prompt, head h of layer l writes z[l, h] @ W_O[l, h] into the
 * residual stream; through ln_final (centred for LayerNorm, divided by its scale) and the
 * unembedding, its share of logit[answer] - logit[wrong] is
 *     (z @ W_O[h] - mean) / scale . (ln_final.w * (W_U[:, answer] - W_U[:, wrong])).
 * Prints the heads by |attribution| and the largest difference from hk_dla. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookformer.h"

static int fail(const char *what) {
    fprintf(stderr, "weights_dla: %s: %s\n", what, hk_last_error());
    return 1;
}

static const float *weight(hk_model *m, const char *name) {
    hk_tensor t;
    if (hk_model_weight(m, name, &t) != HK_OK) return NULL;
    return t.data;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: weights_dla MODEL [ANSWER WRONG]\n");
        return 2;
    }
    hk_model *m;
    if (hk_model_load(argv[1], &m) != HK_OK) return fail(argv[1]);
    const int32_t tokens[] = {5, 17, 3, 99, 42, 8, 1, 25}; /* [1, T] */
    const int64_t T = 8, D = hk_model_d_model(m), V = hk_model_vocab_size(m),
                  L = hk_model_n_layers(m);
    const int32_t answer = argc == 4 ? atoi(argv[2]) : 10, wrong = argc == 4 ? atoi(argv[3]) : 20;
    if (answer < 0 || answer >= V || wrong < 0 || wrong >= V) {
        fprintf(stderr, "weights_dla: answer and wrong must be ids in [0, %lld)\n", (long long)V);
        return 2;
    }
    /* dir = ln_final.w * (W_U[:, answer] - W_U[:, wrong])   [d_model] */
    const float *wu = weight(m, "unembed.W_U"), *lnw = weight(m, "ln_final.w");
    if (!wu || !lnw) return fail("unembed.W_U / ln_final.w");
    hk_tensor lnb;
    const bool layernorm = hk_model_weight(m, "ln_final.b", &lnb) == HK_OK;
    float *dir = malloc((size_t)D * sizeof *dir), *out = malloc((size_t)D * sizeof *out);
    for (int64_t i = 0; i < D; i++) dir[i] = lnw[i] * (wu[i * V + answer] - wu[i * V + wrong]);

    const char *pats[] = {"blocks.*.attn.hook_z", "ln_final.hook_scale"};
    hk_cache *c;
    if (hk_run_with_cache(m, tokens, NULL, 1, T, pats, 2, "last", NULL, &c) != HK_OK)
        return fail("run");
    const float scale = ((const float *)hk_cache_get(c, "ln_final.hook_scale")->data)[0];
    hk_prompt_set set = {1, T, tokens, &answer, &wrong};
    hk_dla_result ref;
    if (hk_dla(m, &set, &ref) != HK_OK) return fail("hk_dla");

    double worst = 0, best = 0;
    int64_t best_l = 0, best_h = 0;
    for (int64_t l = 0; l < L; l++) {
        char name[64];
        snprintf(name, sizeof name, "blocks.%lld.attn.W_O", (long long)l);
        hk_tensor wo; /* [n_heads, d_head, d_model] */
        if (hk_model_weight(m, name, &wo) != HK_OK) return fail(name);
        const int64_t H = wo.shape[0], dh = wo.shape[1];
        const float *z = hk_cache_get_layer(c, "attn.hook_z", l)->data; /* [1, 1, H, dh] */
        for (int64_t h = 0; h < H; h++) {
            double mean = 0, a = 0;
            for (int64_t j = 0; j < D; j++) { /* out = z[h] @ W_O[h] */
                double s = 0;
                for (int64_t d = 0; d < dh; d++)
                    s += (double)z[h * dh + d] * ((const float *)wo.data)[(h * dh + d) * D + j];
                out[j] = (float)s;
                mean += s / (double)D;
            }
            for (int64_t j = 0; j < D; j++)
                a += ((double)out[j] - (layernorm ? mean : 0.0)) / scale * dir[j];
            double e = fabs(a - ref.values[l * H + h]); /* components: L0H0.., one prompt */
            if (e > worst) worst = e;
            if (fabs(a) > fabs(best)) best = a, best_l = l, best_h = h;
            printf("L%lldH%lld %+.4f\n", (long long)l, (long long)h, a);
        }
    }
    printf("largest: L%lldH%lld %+.4f; max |this - hk_dla| over the heads = %.2e\n",
           (long long)best_l, (long long)best_h, best, worst);
    hk_dla_result_free(&ref);
    hk_cache_free(c);
    free(dir);
    free(out);
    hk_model_free(m);
    return worst <= 1e-4 ? 0 : 1;
}
