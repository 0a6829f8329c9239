/* A tour of the C API: load a model, read an activation with a hook, patch one (zero an
 * attention head), cache activations like TransformerLens's run_with_cache, and feed a prompt
 * through the KV cache in chunks.
 *
 *   build/examples/hooks_tour tests/fixtures/llama
 */
#include <hookformer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hook: print the mean L2 norm of the residual stream over positions. */
static hk_hook_result print_norm(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    (void)user;
    const float *x = act->data; /* [batch, pos, d_model], contiguous */
    int64_t pos = act->shape[1], d = act->shape[2];
    double sum = 0;
    for (int64_t t = 0; t < pos; t++) {
        double sq = 0;
        for (int64_t j = 0; j < d; j++) sq += (double)x[t * d + j] * x[t * d + j];
        sum += sqrt(sq);
    }
    printf("  %-28s mean |x| = %.4f\n", ctx->name, sum / (double)pos);
    return HK_HOOK_CONTINUE;
}

/* Hook: zero head 1 of attn.hook_z ([batch, pos, head, d_head]) — a zero-ablation. */
static hk_hook_result zero_head1(hk_tensor *z, const hk_hook_ctx *ctx, void *user) {
    (void)ctx, (void)user;
    float *x = z->data;
    for (int64_t b = 0; b < z->shape[0]; b++)
        for (int64_t t = 0; t < z->shape[1]; t++)
            memset(x + b * z->stride[0] + t * z->stride[1] + 1 * z->stride[2], 0,
                   (size_t)z->shape[3] * sizeof(float));
    return HK_HOOK_CONTINUE;
}

static int fail(const char *what) {
    fprintf(stderr, "hooks_tour: %s: %s\n", what, hk_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures/llama";
    hk_model *m;
    if (hk_model_load(dir, &m) != HK_OK) return fail("load");
    const int32_t tokens[8] = {12, 7, 99, 3, 250, 41, 8, 16}; /* [1, 8] */
    const int64_t T = 8, V = hk_model_vocab_size(m);
    float *clean = malloc((size_t)(T * V) * sizeof *clean);   /* [1, T, V] */
    float *patched = malloc((size_t)(T * V) * sizeof *patched);
    hk_hooks *hooks;
    if (hk_hooks_new(m, &hooks) != HK_OK) return fail("hooks");

    puts("1. read: the residual stream after every block");
    size_t mark = hk_hooks_scope_begin(hooks);
    if (hk_hooks_add(hooks, "blocks.*.hook_resid_post", print_norm, NULL, NULL) != HK_OK)
        return fail("add");
    if (hk_model_run(m, hooks, tokens, NULL, 1, T, clean) != HK_OK) return fail("run");
    hk_hooks_scope_end(hooks, mark); /* removes what the scope added */

    puts("2. patch: zero-ablate head 1 of layer 0");
    if (hk_hooks_add(hooks, "blocks.0.attn.hook_z", zero_head1, NULL, NULL) != HK_OK)
        return fail("add");
    if (hk_model_run(m, hooks, tokens, NULL, 1, T, patched) != HK_OK) return fail("run");
    double delta = 0;
    for (int64_t v = 0; v < V; v++)
        delta = fmax(delta, fabs(patched[(T - 1) * V + v] - clean[(T - 1) * V + v]));
    printf("  max |logit change| at the last position: %.4f\n", delta);
    hk_hooks_scope_end(hooks, 0);

    puts("3. cache: attention patterns and the final residual, last position only");
    const char *names[] = {"blocks.*.attn.hook_pattern", "ln_final.hook_normalized"};
    hk_cache *cache;
    if (hk_run_with_cache(m, tokens, NULL, 1, T, names, 2, "last", clean, &cache) != HK_OK)
        return fail("run_with_cache");
    for (size_t i = 0; i < hk_cache_count(cache); i++) {
        const hk_tensor *t = hk_cache_get(cache, hk_cache_name_at(cache, i));
        printf("  %-28s [", hk_cache_name_at(cache, i));
        for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
        puts("]");
    }
    printf("  %zu bytes held\n", hk_cache_bytes(cache));
    hk_cache_free(cache);

    puts("4. chunked prefill through the KV cache gives the same logits");
    hk_session *s;
    float *last = malloc((size_t)V * sizeof *last); /* [1, V] */
    if (hk_session_new(m, 1, T, &s) != HK_OK) return fail("session");
    for (int64_t p = 0; p < T; p += 3)
        if (hk_session_feed(s, NULL, tokens + p, T - p < 3 ? T - p : 3, true, last) != HK_OK)
            return fail("feed");
    double err = 0;
    for (int64_t v = 0; v < V; v++) err = fmax(err, fabs(last[v] - clean[(T - 1) * V + v]));
    printf("  max |chunked - one forward| = %.2g\n", err);
    hk_session_free(s);

    free(last), free(clean), free(patched);
    hk_hooks_free(hooks);
    hk_model_free(m);
    return err <= 1e-4 && delta > 0 ? 0 : 1;
}
