/* Memory: nothing at load scales with the maximum context, and hk_estimate_run predicts the
 * peak resident memory of a run. Each measurement runs in a forked child, so that what this
 * process held before (and what other tests touched) stays out of its numbers: growth is the
 * child's VmHWM (reset to VmRSS just before hk_model_load) minus its VmRSS at that point.
 * Under AddressSanitizer resident sizes mean nothing (shadow memory, quarantine): the RSS
 * assertions skip there with a message; the runs themselves still execute. */
#include "mem_util.h"
#include "fixtures.h"

/* ---- a Phi-3.5-mini-shaped config: 128k positions, a window past them, LongRoPE ---- */

#define PHI_LAYERS 4
#define PHI_D 256
#define PHI_HEADS 8
#define PHI_MLP 512
#define PHI_VOCAB 2000

static char phi_dir[256];
static size_t phi_weight_bytes;

static void write_phi3(const char *dir) {
    char factors_s[512] = "", factors_l[512] = "";
    int half = PHI_D / PHI_HEADS / 2; /* rot_dim / 2 */
    for (int i = 0; i < half; i++) {
        char x[32];
        snprintf(x, sizeof x, "%s%.3f", i ? ", " : "", 1.0 + 0.05 * i);
        strcat(factors_s, x);
        snprintf(x, sizeof x, "%s%.3f", i ? ", " : "", 1.0 + 2.5 * i);
        strcat(factors_l, x);
    }
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"Phi3ForCausalLM\"], \"model_type\": \"phi3\",\n"
             " \"hidden_act\": \"silu\", \"hidden_size\": %d, \"intermediate_size\": %d,\n"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d,\n"
             " \"num_hidden_layers\": %d, \"vocab_size\": %d, \"rms_norm_eps\": 1e-05,\n"
             " \"max_position_embeddings\": 131072,\n"
             " \"original_max_position_embeddings\": 4096, \"sliding_window\": 262144,\n"
             " \"rope_theta\": 10000.0, \"tie_word_embeddings\": false,\n"
             " \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [%s],\n"
             "                  \"long_factor\": [%s]}}\n",
             PHI_D, PHI_MLP, PHI_HEADS, PHI_HEADS, PHI_LAYERS, PHI_VOCAB, factors_s, factors_l);
    mem_write_text(dir, "config.json", cfg);
    mem_tensor_list l = {0};
    mem_llama_tensors(&l, PHI_LAYERS, PHI_D, PHI_HEADS, PHI_HEADS, PHI_MLP, PHI_VOCAB, true);
    phi_weight_bytes = mem_write_safetensors(dir, &l);
    free(l.t);
}

typedef struct {
    bool ok;
    bool peak_reset;
    char config[160]; /* what the canonical config says about positions and the window */
    size_t weights;   /* bytes of tensor data in the file */
    size_t before, after_load, after_forward, after_session; /* VmHWM growth, bytes */
    size_t kv_bytes;  /* the 16-slot session's cache */
    hk_estimate est16;
} load_result;

static void load_child(const void *arg, void *out) {
    (void)arg;
    load_result *r = out;
    r->weights = phi_weight_bytes;
    r->before = mem_status_bytes("VmRSS:");
    r->peak_reset = mem_reset_peak();
    hk_model *m = NULL;
    if (hk_model_load(phi_dir, &m) != HK_OK) {
        snprintf(r->config, sizeof r->config, "load failed: %s", hk_last_error());
        return;
    }
    r->after_load = mem_status_bytes("VmHWM:") - r->before;
    char *json = NULL;
    if (hk_model_config_json(m, &json) == HK_OK) {
        const char *mp = strstr(json, "\"max_pos\""), *w = strstr(json, "\"window\"");
        const char *k = strstr(json, "longrope");
        snprintf(r->config, sizeof r->config, "%.20s | %.20s | %s", mp ? mp : "?",
                 w ? w : "?", k ? "longrope" : "no longrope");
        hk_free(json);
    }
    int32_t tokens[16];
    for (int i = 0; i < 16; i++) tokens[i] = (i * 37 + 11) % PHI_VOCAB;
    float *logits = malloc(16 * PHI_VOCAB * sizeof *logits); /* [1, 16, vocab] */
    bool ok = logits && hk_model_forward(m, tokens, NULL, 1, 16, logits) == HK_OK;
    r->after_forward = mem_status_bytes("VmHWM:") - r->before;
    hk_session *s = NULL;
    ok = ok && hk_session_new(m, 1, 16, &s) == HK_OK;
    ok = ok && hk_session_feed(s, NULL, tokens, 10, true, logits) == HK_OK;
    ok = ok && hk_session_feed(s, NULL, tokens + 10, 6, true, logits) == HK_OK;
    r->kv_bytes = hk_session_cache_bytes(s);
    r->after_session = mem_status_bytes("VmHWM:") - r->before;
    ok = ok && hk_estimate_run(m, 1, 16, 0, NULL, 0, false, &r->est16) == HK_OK;
    hk_session_free(s);
    free(logits);
    hk_model_free(m);
    r->ok = ok;
}

static void test_load_ignores_max_context(void **state) {
    (void)state;
    load_result r;
    assert_true(mem_in_child(load_child, NULL, &r, sizeof r));
    print_message("phi3 128k config: %s\n", r.config);
    print_message("weights %.2f MiB; VmHWM growth: load %.2f MiB, 16-token forward %.2f MiB, "
                  "session %.2f MiB (KV %.1f KiB); estimate(1 x 16) %.2f MiB\n",
                  r.weights / MIB, r.after_load / MIB, r.after_forward / MIB,
                  r.after_session / MIB, r.kv_bytes / 1024.0, r.est16.total / MIB);
    assert_true(r.ok);
    assert_non_null(strstr(r.config, "131072"));
    assert_non_null(strstr(r.config, "262144"));
    assert_non_null(strstr(r.config, "longrope"));
    /* the session is sized by its 16 positions: the 262144 window is past them, no rolling */
    assert_int_equal(r.kv_bytes, (size_t)PHI_LAYERS * 2 * 16 * PHI_D * sizeof(float));
    assert_false(r.est16.kv_rolling);
    assert_int_equal(r.est16.kv_cache, r.kv_bytes);
    if (MEM_UNDER_ASAN) {
        print_message("skipped: resident sizes mean nothing under AddressSanitizer (shadow "
                      "memory, quarantine); the RSS assertions run in the release build\n");
        skip();
        return;
    }
    if (mem_on_test_device()) {
        print_message("skipped: HK_DEVICE=test keeps a device copy of the weights and "
                      "activations; the RSS assertions run in the release setup\n");
        skip();
        return;
    }
    if (!r.peak_reset) print_message("note: VmHWM could not be reset; using the fork's\n");
    const size_t slack = 4u << 20;
    assert_true(r.est16.total - r.est16.runtime < r.weights + slack);
    assert_true(r.after_load <= r.weights + slack);
    assert_true(r.after_forward <= r.weights + slack);
    assert_true(r.after_session <= r.weights + slack);
}

/* ---- estimate vs measured peak ---- */

#define M_LAYERS 4
#define M_D 512
#define M_HEADS 8
#define M_KV 2
#define M_MLP 1536
#define M_VOCAB 2048
#define M_WINDOW 512

static char full_dir[256], swa_dir[256];

static void write_mistral(const char *dir, int window, const char *weights_from) {
    char cfg[1024], win[32];
    if (window)
        snprintf(win, sizeof win, "%d", window);
    else
        snprintf(win, sizeof win, "null");
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"MistralForCausalLM\"], \"model_type\": \"mistral\",\n"
             " \"hidden_act\": \"silu\", \"hidden_size\": %d, \"intermediate_size\": %d,\n"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d,\n"
             " \"num_hidden_layers\": %d, \"vocab_size\": %d, \"rms_norm_eps\": 1e-05,\n"
             " \"max_position_embeddings\": 32768, \"rope_theta\": 10000.0,\n"
             " \"sliding_window\": %s, \"tie_word_embeddings\": false}\n",
             M_D, M_MLP, M_HEADS, M_KV, M_LAYERS, M_VOCAB, win);
    mem_write_text(dir, "config.json", cfg);
    if (weights_from) {
        char src[512], dst[512];
        snprintf(src, sizeof src, "%s/model.safetensors", weights_from);
        snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
        assert_int_equal(symlink(src, dst), 0);
        return;
    }
    mem_tensor_list l = {0};
    mem_llama_tensors(&l, M_LAYERS, M_D, M_HEADS, M_KV, M_MLP, M_VOCAB, false);
    mem_write_safetensors(dir, &l);
    free(l.t);
}

/* A long-context model: small enough that 10k positions run in seconds. */
#define L_LAYERS 2
#define L_D 128
#define L_HEADS 4
#define L_KV 2
#define L_MLP 384

static char long_dir[256];

static void write_long(const char *dir) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"MistralForCausalLM\"], \"model_type\": \"mistral\",\n"
             " \"hidden_act\": \"silu\", \"hidden_size\": %d, \"intermediate_size\": %d,\n"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d,\n"
             " \"num_hidden_layers\": %d, \"vocab_size\": %d, \"rms_norm_eps\": 1e-05,\n"
             " \"max_position_embeddings\": 32768, \"rope_theta\": 10000.0,\n"
             " \"sliding_window\": null, \"tie_word_embeddings\": false}\n",
             L_D, L_MLP, L_HEADS, L_KV, L_LAYERS, M_VOCAB);
    mem_write_text(dir, "config.json", cfg);
    mem_tensor_list l = {0};
    mem_llama_tensors(&l, L_LAYERS, L_D, L_HEADS, L_KV, L_MLP, M_VOCAB, false);
    mem_write_safetensors(dir, &l);
    free(l.t);
}

/* MODEL_MOE: the mixtral fixture (8 experts, top-2), whose routed experts' workspace is the
 * largest buffer of a long forward; MODEL_GEMMA2: the gemma2 fixture, a window on alternate
 * layers (rolling caches there, every position on the global layers) */
typedef enum { MODEL_FULL, MODEL_SWA, MODEL_LONG, MODEL_MOE, MODEL_GEMMA2 } which_model;

typedef struct {
    const char *what;
    which_model model;
    bool session; /* through a session (KV cache, feeds of chunk), else one forward */
    int64_t batch, ctx, chunk;
    const char *hooks; /* one pattern or NULL */
    bool all_logits;
} shape;

typedef struct {
    bool ok;
    char err[200];
    size_t peak;   /* the process's VmHWM (reset to VmRSS just before hk_model_load) */
    size_t growth; /* VmHWM - VmRSS before hk_model_load */
    hk_estimate est;
    size_t kv_bytes, cache_bytes;
} shape_result;

static void shape_child(const void *arg, void *out) {
    const shape *sh = arg;
    shape_result *r = out;
    size_t before = mem_status_bytes("VmRSS:");
    mem_reset_peak();
    hk_model *m = NULL;
    hk_session *s = NULL;
    hk_hooks *hooks = NULL;
    hk_cache *cache = NULL;
    int32_t *tokens = NULL;
    float *logits = NULL;
    char moe_dir[512], gemma_dir[512];
    fixture_path("mixtral", moe_dir, sizeof moe_dir);
    fixture_path("gemma2", gemma_dir, sizeof gemma_dir);
    const char *dirs[] = {full_dir, swa_dir, long_dir, moe_dir, gemma_dir};
    hk_status st = hk_model_load(dirs[sh->model], &m);
    const int64_t vocab = st ? M_VOCAB : hk_model_vocab_size(m); /* <= M_VOCAB */
    const char *pats[1] = {sh->hooks};
    const hk_estimate_opts o = {.batch = sh->batch, .ctx = sh->ctx, .session = sh->session,
                                .chunk = sh->chunk, .hooks = pats,
                                .n_hooks = sh->hooks ? 1 : 0, .all_logits = sh->all_logits};
    if (!st) st = hk_estimate_memory(m, &o, &r->est);
    int64_t chunk = sh->chunk ? sh->chunk : sh->ctx, B = sh->batch;
    size_t n_logits = (size_t)B * (sh->all_logits ? (size_t)sh->ctx : 1) * M_VOCAB;
    int64_t n_tokens = B * (sh->session ? chunk : sh->ctx);
    tokens = malloc((size_t)(n_tokens > 16 ? n_tokens : 16) * sizeof *tokens); /* the feeds */
    logits = malloc((n_logits > M_VOCAB ? n_logits : M_VOCAB) * sizeof *logits);
    /* [batch, ctx | 1, vocab] */
    if (!st && (!tokens || !logits)) st = HK_ERR_NOMEM;
    /* Warm up: one short feed reads every layer's weights (and first-touches OpenBLAS), as
     * any earlier run would; the peak of the run proper then has them resident. */
    if (!st) st = hk_session_new(m, 1, 16, &s);
    for (int32_t t = 0; !st && t < 16; t++) tokens[t] = t;
    if (!st) st = hk_session_feed(s, NULL, tokens, 16, true, logits);
    hk_session_free(s);
    s = NULL;
    if (!st && sh->hooks) {
        st = hk_hooks_new(m, &hooks);
        if (!st) st = hk_cache_new(m, &cache);
        if (!st) st = hk_cache_attach(cache, hooks, pats, 1, "all");
    }
    if (!st && !sh->session) { /* one forward over [batch, ctx] */
        for (int64_t i = 0; i < B * sh->ctx; i++) tokens[i] = (int32_t)((i * 7 + 3) % vocab);
        st = sh->all_logits ? hk_model_run(m, hooks, tokens, NULL, B, sh->ctx, logits)
                            : hk_model_run_last(m, hooks, tokens, NULL, B, sh->ctx, logits);
    }
    if (!st && sh->session) st = hk_session_new(m, B, sh->ctx, &s);
    for (int64_t p0 = 0; !st && sh->session && p0 < sh->ctx; p0 += chunk) {
        int64_t n = sh->ctx - p0 < chunk ? sh->ctx - p0 : chunk;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < n; t++)
                tokens[b * n + t] = (int32_t)((b * 1000 + p0 + t) % vocab);
        float *dst = sh->all_logits ? logits + (size_t)(B * p0) * M_VOCAB : logits;
        st = hk_session_feed(s, hooks, tokens, n, !sh->all_logits, dst);
    }
    if (st) snprintf(r->err, sizeof r->err, "%s: %s", hk_status_name(st), hk_last_error());
    r->peak = mem_status_bytes("VmHWM:");
    r->growth = r->peak - before;
    r->kv_bytes = hk_session_cache_bytes(s);
    r->cache_bytes = hk_cache_bytes(cache);
    r->ok = st == HK_OK;
    hk_cache_free(cache);
    hk_hooks_free(hooks);
    hk_session_free(s);
    free(logits);
    free(tokens);
    hk_model_free(m);
}

/* The estimate's total against the process's peak resident set size, and what it adds to the
 * process before the load against the measured growth: both within 10%, at 2, 4k and 10k
 * positions, in one forward and through a session, chunked and not. */
static void test_estimate_matches_peak_rss(void **state) {
    (void)state;
    static const shape shapes[] = {
        {"2 tokens, one forward", MODEL_FULL, false, 1, 2, 0, NULL, false},
        {"2 tokens, session", MODEL_FULL, true, 1, 2, 0, NULL, false},
        {"one forward of 3k", MODEL_FULL, false, 1, 3072, 0, NULL, false},
        {"one prefill of 3k", MODEL_FULL, true, 1, 3072, 0, NULL, false},
        {"chunks of 1k to 4k, W=512", MODEL_SWA, true, 1, 4096, 1024, NULL, false},
        {"batch 2 x 1k, resid_post cached, all logits", MODEL_FULL, true, 2, 1024, 0,
         "blocks.*.hook_resid_post", true},
        {"2k, pattern cached", MODEL_FULL, true, 1, 2048, 0, "blocks.1.attn.hook_pattern", false},
        {"chunks of 512 to 3k", MODEL_FULL, true, 1, 3072, 512, NULL, false},
        {"4k, one forward", MODEL_LONG, false, 1, 4096, 0, NULL, false},
        {"4k, chunks of 1k", MODEL_LONG, true, 1, 4096, 1024, NULL, false},
        {"10k, one forward", MODEL_LONG, false, 1, 10000, 0, NULL, false},
        {"10k, one forward, all logits", MODEL_LONG, false, 1, 10000, 0, NULL, true},
        {"10k, chunks of 2k", MODEL_LONG, true, 1, 10000, 2048, NULL, false},
        /* the tiny fixtures at 12k: OpenBLAS's per-thread pool (counted whole, ~1 MiB a thread,
         * hardly touched by their narrow products) stays a small share of the peak */
        {"mixture of experts, 12k, one forward", MODEL_MOE, false, 1, 12288, 0, NULL, false},
        {"mixture of experts, 12k, chunks of 4k", MODEL_MOE, true, 1, 12288, 4096, NULL, false},
        {"gemma2 per-layer windows, 12k, chunks of 2k", MODEL_GEMMA2, true, 1, 12288, 2048, NULL,
         false},
    };
    bool all_ok = true;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *sh = &shapes[i];
        shape_result r;
        assert_true(mem_in_child(shape_child, sh, &r, sizeof r));
        if (!r.ok) print_error("%s: %s\n", sh->what, r.err);
        assert_true(r.ok);
        const size_t added = r.est.total - r.est.runtime;
        double err = ((double)r.est.total - (double)r.peak) / (double)r.peak;
        double err_growth = ((double)added - (double)r.growth) / (double)r.growth;
        print_message("%-44s estimate %7.1f MiB (runtime %.1f, weights %.1f, mapping %.1f, "
                      "load other %.1f, kv %.1f%s, act %.1f, attn %.1f, hooks %.1f, logits "
                      "%.1f)  peak %7.1f MiB  error %+.1f%%; above the runtime %+.1f%%\n",
                      sh->what, r.est.total / MIB, r.est.runtime / MIB, r.est.weights / MIB,
                      r.est.mapping / MIB, r.est.load_other / MIB, r.est.kv_cache / MIB,
                      r.est.kv_rolling ? " rolling" : "", r.est.activations / MIB,
                      r.est.attention / MIB, r.est.cached_hooks / MIB, r.est.logits / MIB,
                      r.peak / MIB, 100.0 * err, 100.0 * err_growth);
        /* the parts that are exact */
        assert_int_equal(r.est.kv_cache, r.kv_bytes);
        assert_int_equal(r.est.kv_rolling, sh->model == MODEL_SWA || sh->model == MODEL_GEMMA2);
        if (sh->hooks) assert_int_equal(r.est.cached_hooks, r.cache_bytes);
        if (err < -0.10 || err > 0.10 || err_growth < -0.10 || err_growth > 0.10) all_ok = false;
    }
    if (MEM_UNDER_ASAN) {
        print_message("skipped: resident sizes mean nothing under AddressSanitizer (shadow "
                      "memory, quarantine); the RSS assertions run in the release build\n");
        skip();
        return;
    }
    if (mem_on_test_device()) {
        print_message("skipped: HK_DEVICE=test keeps a device copy of the weights and "
                      "activations; the RSS assertions run in the release setup\n");
        skip();
        return;
    }
    assert_true(all_ok);
}

/* ---- the estimate's arguments and parts ---- */

static void test_estimate_api(void **state) {
    (void)state;
    hk_model *m = NULL;
    EXPECT_OK(hk_model_load(swa_dir, &m));
    hk_estimate e;
    assert_int_equal(hk_estimate_run(NULL, 1, 16, 0, NULL, 0, true, &e), HK_ERR_INVALID_ARG);
    assert_int_equal(hk_estimate_run(m, 0, 16, 0, NULL, 0, true, &e), HK_ERR_INVALID_ARG);
    assert_int_equal(hk_estimate_run(m, 1, -1, 0, NULL, 0, true, &e), HK_ERR_INVALID_ARG);
    assert_int_equal(hk_estimate_run(m, 1, 16, -1, NULL, 0, true, &e), HK_ERR_INVALID_ARG);
    const char *bad[] = {"blocks.*.hook_nothing"};
    assert_int_equal(hk_estimate_run(m, 1, 16, 0, bad, 1, true, &e), HK_ERR_NOT_FOUND);
    assert_non_null(strstr(hk_last_error(), "blocks.*.hook_nothing"));

    /* rolling: W slots per layer whatever the context; full below W */
    const size_t dkv = M_KV * (M_D / M_HEADS);
    EXPECT_OK(hk_estimate_run(m, 2, 100000, 2048, NULL, 0, true, &e));
    assert_true(e.kv_rolling);
    assert_int_equal(e.kv_window, M_WINDOW);
    assert_int_equal(e.kv_cache, (size_t)M_LAYERS * 2 * 2 * M_WINDOW * dkv * 4);
    assert_int_equal(e.logits, (size_t)2 * M_VOCAB * 4);
    size_t act_2048 = e.activations;
    EXPECT_OK(hk_estimate_run(m, 2, 400, 0, NULL, 0, false, &e));
    assert_false(e.kv_rolling);
    assert_int_equal(e.kv_cache, (size_t)M_LAYERS * 2 * 2 * 400 * dkv * 4);
    assert_int_equal(e.logits, (size_t)2 * 400 * M_VOCAB * 4);
    /* activations follow the chunk, not the context */
    EXPECT_OK(hk_estimate_run(m, 2, 1000000, 2048, NULL, 0, true, &e));
    assert_int_equal(e.activations, act_2048);
    /* hooks: resid_post of every layer, for every position */
    const char *resid[] = {"blocks.*.hook_resid_post"};
    EXPECT_OK(hk_estimate_run(m, 3, 100, 0, resid, 1, true, &e));
    assert_int_equal(e.cached_hooks, (size_t)M_LAYERS * 3 * 100 * M_D * 4);
    size_t total = e.runtime + e.weights + e.mapping + e.load_other + e.kv_cache +
                   e.activations + e.attention + e.cached_hooks + e.logits;
    assert_int_equal(e.total, total);
    /* weights: every tensor of the F32 checkpoint, read in place (whole pages: at most two
     * more per tensor); the mapping read at load is the header alone */
    const int64_t dq = M_D, n = M_LAYERS * (2 * M_D + 2 * dq * M_D + 2 * (int64_t)dkv * M_D +
                                           3 * M_MLP * M_D) +
                                M_D + 2 * M_VOCAB * M_D;
    const size_t n_tensors = M_LAYERS * 9 + 3, page = (size_t)sysconf(_SC_PAGESIZE);
    assert_true(e.weights >= (size_t)n * 4);
    assert_true(e.weights <= (size_t)n * 4 + 2 * page * n_tensors);
    assert_true(e.mapping > 0 && e.mapping < 160 * n_tensors);
    assert_int_equal(hk_model_n_params(m), n);
    /* the process before the load, measured by hk_model_load (Linux: /proc/self/statm) */
    assert_true(e.runtime > 0);

    /* one forward (hk_model_run): no KV cache; a chunk needs a session */
    hk_estimate_opts o = {.batch = 2, .ctx = 400, .session = false, .all_logits = true};
    hk_estimate one;
    EXPECT_OK(hk_estimate_memory(m, &o, &one));
    EXPECT_OK(hk_estimate_run(m, 2, 400, 0, NULL, 0, false, &e));
    assert_int_equal(one.kv_cache, 0);
    assert_int_equal(one.total, e.total - e.kv_cache);
    o.chunk = 100;
    assert_int_equal(hk_estimate_memory(m, &o, &one), HK_ERR_INVALID_ARG);
    assert_non_null(strstr(hk_last_error(), "chunk 100 without a session"));
    assert_int_equal(hk_estimate_memory(m, NULL, &one), HK_ERR_INVALID_ARG);
    hk_model_free(m);
}

/* A quantized GGUF: the weights are the dequantized f32 buffers, the mapping the quantized
 * blocks they were read from (and the header); the F32 norms are read in place. */
static void test_estimate_gguf_parts(void **state) {
    (void)state;
    char path[512];
    fixture_path("gguf/llama_q4_1.gguf", path, sizeof path);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    hk_model *m = NULL;
    EXPECT_OK(hk_model_load(path, &m));
    hk_estimate e;
    EXPECT_OK(hk_estimate_run(m, 1, 16, 0, NULL, 0, true, &e));
    print_message("%s (%lld bytes): weights %zu, mapping %zu, load other %zu, runtime %zu\n",
                  path, (long long)sb.st_size, e.weights, e.mapping, e.load_other, e.runtime);
    assert_true(e.weights >= (size_t)hk_model_n_params(m) * 4);
    /* Q4_1: 20 bytes per 32 weights, so the blocks are well under the f32 weights */
    assert_true(e.mapping > (size_t)sb.st_size / 2);
    assert_true(e.mapping <= (size_t)sb.st_size + 2 * 4096 * 64);
    assert_true(e.mapping < e.weights / 4);
    hk_model_free(m);
}

static int setup(void **state) {
    (void)state;
    make_tmpdir(phi_dir, sizeof phi_dir);
    write_phi3(phi_dir);
    make_tmpdir(full_dir, sizeof full_dir);
    write_mistral(full_dir, 0, NULL);
    make_tmpdir(swa_dir, sizeof swa_dir);
    write_mistral(swa_dir, M_WINDOW, full_dir);
    make_tmpdir(long_dir, sizeof long_dir);
    write_long(long_dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    remove_tree(long_dir);
    remove_tree(phi_dir);
    remove_tree(swa_dir);
    remove_tree(full_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_ignores_max_context),
        cmocka_unit_test(test_estimate_matches_peak_rss),
        cmocka_unit_test(test_estimate_api),
        cmocka_unit_test(test_estimate_gguf_parts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
