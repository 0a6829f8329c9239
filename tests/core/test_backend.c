/* The backend interface through the test-only backend (core/backend_test.c): its pointer
 * checks, its counted copies (only hooked points copy), hooks on device tensors, and the
 * forward on it bit for bit against the CPU backend on several fixtures (logits, every hook
 * activation, KV-cache feeds). */
#include "core/backend.h"
#include "core/backend_test.h"
#include "fixtures.h"
#include "test_util.h"

#include <math.h>

static hk_model *load_on(const char *name, hk_device device) {
    char dir[1024];
    fixture_path(name, dir, sizeof dir);
    hk_load_opts o = hk_load_default_opts();
    o.device = device;
    hk_model *m = NULL;
    EXPECT_OK(hk_model_load_opts(dir, &o, &m));
    return m;
}

/* ---- the test backend's checks ---- */

static void test_pointer_checks(void **state) {
    (void)state;
    hk_backend *be;
    EXPECT_OK(hk_backend_open(HK_DEVICE_TEST, HK_DEVICE_INDEX_AUTO, &be));
    assert_false(be->host_memory);
    assert_null(be->stream(be));
    float host[16] = {0};
    float *dev = NULL;
    EXPECT_OK(be->alloc(be, sizeof host, (void **)&dev));
    assert_true(hk_backend_test_is_device(dev, sizeof host));
    assert_false(hk_backend_test_is_device(host, 4));
    EXPECT_OK(be->to_device(be, dev, host, sizeof host));
    EXPECT_OK(be->add(be, dev, dev, 16));
    /* a host pointer where a device pointer belongs */
    expect_error(be->add(be, host, dev, 16), HK_ERR_INVALID_ARG, "add", "'y'", "device block");
    expect_error(be->add(be, dev, host, 16), HK_ERR_INVALID_ARG, "add", "'x'", NULL);
    /* past the block's end */
    expect_error(be->scale(be, dev, 17, 2.0f), HK_ERR_INVALID_ARG, "scale", "'x'", NULL);
    expect_error(be->scale(be, dev + 1, 16, 2.0f), HK_ERR_INVALID_ARG, "scale", NULL, NULL);
    /* copies are explicit: device memory where host memory belongs, and the reverse */
    expect_error(be->to_device(be, dev, dev, 4), HK_ERR_INVALID_ARG, "to_device", "'src'",
                 NULL);
    expect_error(be->to_host(be, host, host, 4), HK_ERR_INVALID_ARG, "to_host", "'src'", NULL);
    expect_error(be->copy(be, dev, host, 4), HK_ERR_INVALID_ARG, "copy", "'src'", NULL);
    /* a linear whose weights are host memory */
    hk_linear l = {.w = host, .b = NULL, .n_in = 4, .n_out = 4, .ld = 4, .in_out = false};
    expect_error(be->linear(be, &l, dev, 2, dev + 8, 4), HK_ERR_INVALID_ARG, "linear", "'w'",
                 NULL);
    /* attention's K in host memory */
    expect_error(be->attention(be, dev, 4, host, 4, dev, 4, 1, 1, 1, 1, 4, 1.0f, NULL, dev + 8,
                               4),
                 HK_ERR_INVALID_ARG, "attention", "'k'", NULL);
    /* the counters */
    assert_int_equal(be->counters.h2d, 1);
    assert_int_equal(be->counters.h2d_bytes, sizeof host);
    assert_int_equal(be->counters.live_blocks, 1);
    float back[16];
    EXPECT_OK(be->to_host(be, back, dev, sizeof back));
    assert_int_equal(be->counters.d2h, 1);
    /* a freed block is no device memory any more */
    be->free(be, dev);
    assert_int_equal(be->counters.live_blocks, 0);
    expect_error(be->scale(be, dev, 1, 2.0f), HK_ERR_INVALID_ARG, "scale", NULL, NULL);
    hk_backend_close(be);
}

/* sample on device logits chooses what hk_sample chooses */
static void test_sample(void **state) {
    (void)state;
    hk_backend *be;
    EXPECT_OK(hk_backend_open(HK_DEVICE_TEST, HK_DEVICE_INDEX_AUTO, &be));
    float logits[50];
    for (int i = 0; i < 50; i++) logits[i] = sinf((float)i * 1.7f) * 3.0f;
    float *dev;
    EXPECT_OK(be->alloc(be, sizeof logits, (void **)&dev));
    EXPECT_OK(be->to_device(be, dev, logits, sizeof logits));
    hk_sampler_opts o = hk_sampler_default();
    o.temperature = 0.8f;
    o.top_k = 10;
    uint64_t rng_a = 7, rng_b = 7;
    for (int i = 0; i < 20; i++) {
        int32_t a, b;
        EXPECT_OK(be->sample(be, dev, 50, &o, &rng_a, &a));
        EXPECT_OK(hk_sample(logits, 50, &o, &rng_b, &b));
        assert_int_equal(a, b);
    }
    assert_int_equal(rng_a, rng_b);
    int32_t t;
    expect_error(be->sample(be, logits, 50, &o, &rng_a, &t), HK_ERR_INVALID_ARG, "sample",
                 "'logits'", NULL);
    be->free(be, dev);
    hk_backend_close(be);
}

/* ---- hooks on device tensors ---- */

static hk_hook_result touch(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    int *calls = user;
    (*calls)++;
    /* a plain callback always gets host memory */
    return act->device == HK_DEVICE_CPU && !hk_backend_test_is_device(act->data, 4)
               ? HK_HOOK_CONTINUE
               : HK_HOOK_ERROR;
}

static void test_only_hooked_points_copy(void **state) {
    (void)state;
    hk_model *m = load_on("gpt2", HK_DEVICE_TEST);
    assert_int_equal(hk_model_device(m), HK_DEVICE_TEST);
    assert_null(hk_backend_stream(m));
    hk_backend *be = hk_model_backend(m);
    const int32_t tokens[5] = {1, 7, 3, 9, 2};
    float logits[5 * 1000];
    assert_true(hk_model_vocab_size(m) <= 1000);
    hk_hooks *h;
    EXPECT_OK(hk_hooks_new(m, &h));
    /* no hook: the token ids go up and the logits come back, nothing else */
    hk_backend_counters c0 = be->counters;
    EXPECT_OK(hk_model_run(m, h, tokens, NULL, 1, 5, logits));
    hk_backend_counters c1 = be->counters;
    assert_int_equal(c1.h2d - c0.h2d, 1);
    assert_int_equal(c1.d2h - c0.d2h, 1);
    /* a read-only hook at one point: one more copy down, none back */
    int calls = 0;
    hk_hook_handle hd;
    EXPECT_OK(hk_hooks_add_flags(h, "blocks.0.hook_resid_mid", touch, &calls, HK_HOOK_READ_ONLY,
                                 &hd));
    EXPECT_OK(hk_model_run(m, h, tokens, NULL, 1, 5, logits));
    hk_backend_counters c2 = be->counters;
    assert_int_equal(calls, 1);
    assert_int_equal(c2.h2d - c1.h2d, 1);
    assert_int_equal(c2.d2h - c1.d2h, 2);
    assert_int_equal(c2.d2h_bytes - c1.d2h_bytes, (5 * hk_model_vocab_size(m) + 5 * 64) * 4);
    /* a second read-only callback at the same point shares the copy */
    EXPECT_OK(hk_hooks_add_flags(h, "blocks.0.hook_resid_mid", touch, &calls, HK_HOOK_READ_ONLY,
                                 NULL));
    EXPECT_OK(hk_model_run(m, h, tokens, NULL, 1, 5, logits));
    hk_backend_counters c3 = be->counters;
    assert_int_equal(calls, 3);
    assert_int_equal(c3.d2h - c2.d2h, 2);
    assert_int_equal(c3.h2d - c2.h2d, 1);
    /* a plain (may modify) callback at another point: a copy down and one back */
    EXPECT_OK(hk_hooks_add(h, "blocks.1.hook_resid_post", touch, &calls, NULL));
    EXPECT_OK(hk_model_run(m, h, tokens, NULL, 1, 5, logits));
    hk_backend_counters c4 = be->counters;
    assert_int_equal(calls, 6);
    assert_int_equal(c4.d2h - c3.d2h, 3);
    assert_int_equal(c4.h2d - c3.h2d, 2);
    /* the in-memory cache only reads: a copy down per cached point, none back */
    hk_hooks *hc;
    EXPECT_OK(hk_hooks_new(m, &hc));
    hk_cache *cache;
    EXPECT_OK(hk_cache_new(m, &cache));
    const char *pat[1] = {"blocks.0.hook_resid_post"};
    EXPECT_OK(hk_cache_attach(cache, hc, pat, 1, NULL));
    hk_backend_counters c5 = be->counters;
    EXPECT_OK(hk_model_run(m, hc, tokens, NULL, 1, 5, logits));
    hk_backend_counters c6 = be->counters;
    assert_int_equal(c6.d2h - c5.d2h, 2);
    assert_int_equal(c6.h2d - c5.h2d, 1);
    assert_non_null(hk_cache_get(cache, "blocks.0.hook_resid_post"));
    hk_cache_free(cache);
    hk_hooks_free(hc);
    /* every block freed after each run */
    assert_int_equal(c6.live_blocks, c0.live_blocks);
    expect_error(hk_hooks_add_flags(h, "hook_embed", touch, &calls, 8, NULL), HK_ERR_INVALID_ARG,
                 "flags", NULL, NULL);
    hk_hooks_free(h);
    hk_model_free(m);
}

/* a device-aware callback: sees the device view, copies with hk_tensor_to_host, and writes
 * back with hk_tensor_from_host (here: the residual's first row zeroed) */
typedef struct {
    int calls;
    bool saw_device;
    float first[64];
} dev_probe;

static hk_hook_result on_device(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    dev_probe *p = user;
    p->calls++;
    p->saw_device = act->device == HK_DEVICE_TEST && hk_backend_test_is_device(act->data, 4);
    const int64_t n = act->shape[0] * act->shape[1] * act->shape[2];
    float *host = malloc((size_t)n * sizeof *host);
    if (!host || hk_tensor_to_host(act, host) != HK_OK) {
        free(host);
        return HK_HOOK_ERROR;
    }
    memcpy(p->first, host, 64 * sizeof(float));
    memset(host, 0, (size_t)act->shape[2] * sizeof *host);
    hk_status st = hk_tensor_from_host(act, host);
    free(host);
    return st == HK_OK ? HK_HOOK_CONTINUE : HK_HOOK_ERROR;
}

static hk_hook_result zero_first_row(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    float *first = user;
    memcpy(first, act->data, 64 * sizeof(float));
    memset(act->data, 0, (size_t)act->shape[2] * sizeof(float));
    return HK_HOOK_CONTINUE;
}

/* Where each plain callback's host copy was, fire by fire. */
typedef struct {
    const void *data[8];
    int n;
} seen_ptrs;

static hk_hook_result record_ptr(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    (void)ctx;
    seen_ptrs *s = user;
    if (s->n < 8) s->data[s->n++] = act->data;
    return act->device == HK_DEVICE_CPU ? HK_HOOK_CONTINUE : HK_HOOK_ERROR;
}

/* Host copies of device tensors go through the backend's staging buffer (pinned memory on
 * CUDA): one buffer, allocated once and reused by every fire that fits, freed with the
 * backend; a nested or concurrent copy while it is taken falls back to its own buffer. */
static void test_host_stage_reused(void **state) {
    (void)state;
    hk_model *m = load_on("gpt2", HK_DEVICE_TEST);
    hk_backend *be = hk_model_backend(m);
    const int32_t tokens[5] = {1, 7, 3, 9, 2};
    float logits[5 * 1000];
    hk_hooks *h;
    EXPECT_OK(hk_hooks_new(m, &h));
    seen_ptrs seen = {0};
    EXPECT_OK(hk_hooks_add(h, "blocks.0.hook_resid_pre", record_ptr, &seen, NULL));
    EXPECT_OK(hk_hooks_add(h, "blocks.1.hook_resid_post", record_ptr, &seen, NULL));
    EXPECT_OK(hk_model_run(m, h, tokens, NULL, 1, 5, logits));
    EXPECT_OK(hk_model_run(m, h, tokens, NULL, 1, 5, logits));
    assert_int_equal(seen.n, 4);
    assert_non_null(be->stage);
    for (int i = 0; i < 4; i++) assert_ptr_equal(seen.data[i], be->stage);
    assert_false(atomic_load(&be->stage_busy));
    /* taken: the next copy gets its own buffer; given back: the staging buffer again */
    hk_host_stage a, b;
    EXPECT_OK(hk_host_stage_get(HK_DEVICE_TEST, 64, &a));
    assert_ptr_equal(a.p, be->stage);
    EXPECT_OK(hk_host_stage_get(HK_DEVICE_TEST, 64, &b));
    assert_ptr_not_equal(b.p, be->stage);
    assert_null(b.be);
    hk_host_stage_put(&b);
    hk_host_stage_put(&a);
    /* a bigger copy grows the one buffer */
    EXPECT_OK(hk_host_stage_get(HK_DEVICE_TEST, be->stage_bytes + 4096, &a));
    assert_ptr_equal(a.p, be->stage);
    assert_true(be->stage_bytes >= 4096);
    hk_host_stage_put(&a);
    hk_hooks_free(h);
    hk_model_free(m);
}

/* Two models on test devices 0 and 1 (HK_TEST_DEVICES=2): each reports its device, and the
 * host copies of a hook on the first go through its own instance (its counters, its staging
 * buffer), not through the one opened last; device 2 is past the count. */
static void test_device_index(void **state) {
    (void)state;
    setenv("HK_TEST_DEVICES", "2", 1);
    char dir[1024];
    fixture_path("gpt2", dir, sizeof dir);
    hk_load_opts o = hk_load_default_opts();
    assert_int_equal(o.device_index, HK_DEVICE_INDEX_AUTO);
    o.device = HK_DEVICE_TEST;
    hk_model *a = NULL, *b = NULL, *c = (hk_model *)&c;
    EXPECT_OK(hk_model_load_opts(dir, &o, &a));
    o.device_index = 1;
    EXPECT_OK(hk_model_load_opts(dir, &o, &b));
    assert_int_equal(hk_model_device_index(a), 0);
    assert_string_equal(hk_model_device_string(a), "test:0");
    assert_int_equal(hk_model_device_index(b), 1);
    assert_string_equal(hk_model_device_string(b), "test:1");
    hk_backend *ba = hk_model_backend(a), *bb = hk_model_backend(b);
    const uint64_t d2h_b = bb->counters.d2h;
    const uint64_t d2h_a = ba->counters.d2h;
    const int32_t tokens[5] = {1, 7, 3, 9, 2};
    float logits[5 * 1000];
    hk_hooks *h;
    EXPECT_OK(hk_hooks_new(a, &h));
    seen_ptrs seen = {0};
    EXPECT_OK(hk_hooks_add(h, "blocks.0.hook_resid_pre", record_ptr, &seen, NULL));
    EXPECT_OK(hk_model_run(a, h, tokens, NULL, 1, 5, logits));
    assert_int_equal(seen.n, 1);
    assert_ptr_equal(seen.data[0], ba->stage); /* a's staging buffer, not b's */
    assert_null(bb->stage);
    assert_int_equal(bb->counters.d2h, d2h_b); /* b copied nothing */
    assert_true(ba->counters.d2h > d2h_a);
    hk_hooks_free(h);
    o.device_index = 2;
    assert_int_equal(hk_model_load_opts("/nonexistent", &o, &c), HK_ERR_INVALID_ARG);
    assert_null(c);
    assert_non_null(strstr(hk_last_error(), "device test:2: index 2 is past the last test "
                                            "device: HK_TEST_DEVICES=2 makes 2"));
    /* the CPU is one device; an index below auto is no index */
    o.device = HK_DEVICE_CPU;
    o.device_index = 1;
    assert_int_equal(hk_model_load_opts(dir, &o, &c), HK_ERR_INVALID_ARG);
    o.device_index = 0;
    EXPECT_OK(hk_model_load_opts(dir, &o, &c));
    hk_model_free(c);
    o.device_index = -2;
    assert_int_equal(hk_model_load_opts(dir, &o, &c), HK_ERR_INVALID_ARG);
    int n = 0;
    EXPECT_OK(hk_device_count(HK_DEVICE_TEST, &n));
    assert_int_equal(n, 2);
    EXPECT_OK(hk_device_count(HK_DEVICE_CPU, &n));
    assert_int_equal(n, 1);
    hk_device d;
    int i;
    EXPECT_OK(hk_device_parse("cuda:12", &d, &i));
    assert_int_equal(d, HK_DEVICE_CUDA);
    assert_int_equal(i, 12);
    EXPECT_OK(hk_device_parse("test", &d, &i));
    assert_int_equal(d, HK_DEVICE_TEST);
    assert_int_equal(i, HK_DEVICE_INDEX_AUTO);
    assert_int_equal(hk_device_parse("cuda:+1", &d, &i), HK_ERR_INVALID_ARG);
    assert_int_equal(hk_device_parse("", &d, &i), HK_ERR_INVALID_ARG);
    hk_model_free(b);
    hk_model_free(a);
    unsetenv("HK_TEST_DEVICES");
}

static void test_device_aware_hook(void **state) {
    (void)state;
    /* the CPU model first: hk_tensor_to_host copies through the last test instance opened, whose
     * counters this test reads (under devtest the CPU load is a test load too) */
    hk_model *mc = load_on("gpt2", HK_DEVICE_CPU), *mt = load_on("gpt2", HK_DEVICE_TEST);
    const int32_t tokens[4] = {5, 2, 8, 1};
    const int64_t V = hk_model_vocab_size(mt);
    float *lt = malloc((size_t)(4 * V) * sizeof *lt), *lc = malloc((size_t)(4 * V) * sizeof *lc);
    hk_hooks *ht, *hc;
    EXPECT_OK(hk_hooks_new(mt, &ht));
    EXPECT_OK(hk_hooks_new(mc, &hc));
    dev_probe p = {0};
    float first_cpu[64];
    EXPECT_OK(hk_hooks_add_flags(ht, "blocks.1.hook_resid_pre", on_device, &p, HK_HOOK_ON_DEVICE,
                                 NULL));
    EXPECT_OK(hk_hooks_add(hc, "blocks.1.hook_resid_pre", zero_first_row, first_cpu, NULL));
    hk_backend_counters c0 = hk_model_backend(mt)->counters;
    EXPECT_OK(hk_model_run(mt, ht, tokens, NULL, 1, 4, lt));
    hk_backend_counters c1 = hk_model_backend(mt)->counters;
    EXPECT_OK(hk_model_run(mc, hc, tokens, NULL, 1, 4, lc));
    assert_int_equal(p.calls, 1);
    assert_true(p.saw_device);
    /* the runtime copied nothing for it: only the callback's own two copies */
    assert_int_equal(c1.d2h - c0.d2h, 2);
    assert_int_equal(c1.h2d - c0.h2d, 2);
    /* hk_tensor_to_host gave the activation, hk_tensor_from_host's edit flowed on */
    assert_memory_equal(p.first, first_cpu, sizeof first_cpu);
    assert_memory_equal(lt, lc, (size_t)(4 * V) * sizeof *lt);
    hk_hooks_free(ht);
    hk_hooks_free(hc);
    free(lt);
    free(lc);
    hk_model_free(mt);
    hk_model_free(mc);
}

/* ---- bit equality, cpu vs test ---- */

typedef struct {
    size_t n;           /* activations recorded */
    char **names;
    float **data;
    size_t *count;
} recording;

static hk_hook_result record(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    recording *r = user;
    size_t n = 1;
    for (int d = 0; d < act->ndim; d++) n *= (size_t)act->shape[d];
    r->names = realloc(r->names, (r->n + 1) * sizeof *r->names);
    r->data = realloc(r->data, (r->n + 1) * sizeof *r->data);
    r->count = realloc(r->count, (r->n + 1) * sizeof *r->count);
    r->names[r->n] = strdup(ctx->name);
    r->data[r->n] = malloc(n * sizeof(float));
    EXPECT_OK(hk_tensor_to_host(act, r->data[r->n]));
    r->count[r->n] = n;
    r->n++;
    return HK_HOOK_CONTINUE;
}

static void recording_free(recording *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->names[i]);
        free(r->data[i]);
    }
    free(r->names);
    free(r->data);
    free(r->count);
}

static void expect_same_recordings(const char *what, const recording *a, const recording *b) {
    if (a->n != b->n) print_error("%s: %zu vs %zu activations\n", what, a->n, b->n);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->names[i], b->names[i]);
        assert_int_equal(a->count[i], b->count[i]);
        if (memcmp(a->data[i], b->data[i], a->count[i] * sizeof(float))) {
            print_error("%s: %s differs between the cpu and test backends\n", what,
                        a->names[i]);
            fail();
        }
    }
}

/* One run over every hook point (glob "*": the optional points too, so the split-input and
 * per-head paths run) with every activation recorded, plus a plain run's logits. The run is
 * a right-padded batch of 2 (lengths 6 and 4); decoders also feed a session in chunks of 5,
 * 1 and 3 positions (KV-cache writes, rolling buffers where the model has windows). */
typedef struct {
    recording hooked, session;
    float *logits, *sess_logits;
    size_t n_logits, n_sess;
} run_result;

static void run_all(hk_model *m, const char *pattern, run_result *out) {
    memset(out, 0, sizeof *out);
    const int32_t tokens[2 * 6] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 0, 0};
    const int64_t lengths[2] = {6, 4};
    const int64_t V = hk_model_output_dim(m);
    hk_hooks *h;
    EXPECT_OK(hk_hooks_new(m, &h));
    EXPECT_OK(hk_hooks_add_flags(h, pattern, record, &out->hooked, HK_HOOK_READ_ONLY, NULL));
    out->n_logits = (size_t)(2 * 6 * V);
    out->logits = malloc(out->n_logits * sizeof(float));
    EXPECT_OK(hk_model_run(m, h, tokens, lengths, 2, 6, out->logits));
    hk_hooks_free(h);
    if (hk_model_is_encoder(m)) return;
    hk_session *s;
    EXPECT_OK(hk_session_new(m, 1, 16, &s));
    EXPECT_OK(hk_hooks_new(m, &h));
    EXPECT_OK(hk_hooks_add_flags(h, pattern, record, &out->session,
                                 HK_HOOK_READ_ONLY, NULL));
    const int64_t chunks[3] = {5, 1, 3};
    const int32_t feed[9] = {7, 2, 9, 4, 4, 1, 8, 3, 6};
    out->n_sess = (size_t)(9 * V);
    out->sess_logits = malloc(out->n_sess * sizeof(float));
    for (int64_t c = 0, at = 0; c < 3; at += chunks[c], c++)
        EXPECT_OK(hk_session_feed(s, h, feed + at, chunks[c], false, out->sess_logits + at * V));
    hk_hooks_free(h);
    hk_session_free(s);
}

static void run_free(run_result *r) {
    recording_free(&r->hooked);
    recording_free(&r->session);
    free(r->logits);
    free(r->sess_logits);
}

static void compare_fixture(const char *name, const char *pattern) {
    hk_model *mc = load_on(name, HK_DEVICE_CPU), *mt = load_on(name, HK_DEVICE_TEST);
    run_result rc, rt;
    run_all(mc, pattern, &rc);
    run_all(mt, pattern, &rt);
    assert_true(rc.hooked.n > 10);
    expect_same_recordings(name, &rc.hooked, &rt.hooked);
    expect_same_recordings(name, &rc.session, &rt.session);
    assert_int_equal(rc.n_logits, rt.n_logits);
    assert_memory_equal(rc.logits, rt.logits, rc.n_logits * sizeof(float));
    assert_int_equal(rc.n_sess, rt.n_sess);
    if (rc.n_sess) assert_memory_equal(rc.sess_logits, rt.sess_logits, rc.n_sess * sizeof(float));
    run_free(&rc);
    run_free(&rt);
    hk_model_free(mc);
    hk_model_free(mt);
}

static void test_bitwise_gpt2(void **state) {
    (void)state;
    compare_fixture("gpt2", "*");
}
static void test_bitwise_llama(void **state) {
    (void)state;
    compare_fixture("llama", "*");
}
static void test_bitwise_gemma2(void **state) {
    (void)state;
    compare_fixture("gemma2", "*");
}
static void test_bitwise_mixtral(void **state) {
    (void)state;
    compare_fixture("mixtral", "*");
}
static void test_bitwise_mistral(void **state) { /* sliding window: rolling KV buffers */
    (void)state;
    compare_fixture("mistral", "*");
}
static void test_bitwise_bert(void **state) {
    (void)state;
    compare_fixture("bert", "*");
}
static void test_bitwise_qwen2_moe(void **state) { /* the shared expert */
    (void)state;
    compare_fixture("qwen2_moe", "*");
}

/* --device cuda without the CUDA module: a clear error naming what is missing (the CUDA
 * backend's own errors, no GPU included, are tests/kernels/test_backend_cuda.c's) */
static void test_cuda_missing(void **state) {
    (void)state;
    char dir[1024];
    fixture_path("gpt2", dir, sizeof dir);
    hk_load_opts o = hk_load_default_opts();
    o.device = HK_DEVICE_CUDA;
    hk_model *m = (hk_model *)&o; /* must come back NULL */
    setenv("HK_CUDA_MODULE", "/nonexistent/libhookformer_cuda.so", 1);
    expect_error(hk_model_load_opts(dir, &o, &m), HK_ERR_NOT_FOUND, "device cuda",
                 "/nonexistent/libhookformer_cuda.so", NULL);
    unsetenv("HK_CUDA_MODULE");
    assert_null(m);
    o.device = HK_DEVICE_CPU;
    o.weights_dtype = HK_DTYPE_BF16;
    expect_error(hk_model_load_opts(dir, &o, &m), HK_ERR_UNSUPPORTED, "BF16", "f32", NULL);
    o.device = (hk_device)7;
    expect_error(hk_model_load_opts(dir, &o, &m), HK_ERR_INVALID_ARG, "device 7", NULL, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pointer_checks),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_only_hooked_points_copy),
        cmocka_unit_test(test_host_stage_reused),
        cmocka_unit_test(test_device_index),
        cmocka_unit_test(test_device_aware_hook),
        cmocka_unit_test(test_bitwise_gpt2),
        cmocka_unit_test(test_bitwise_llama),
        cmocka_unit_test(test_bitwise_gemma2),
        cmocka_unit_test(test_bitwise_mixtral),
        cmocka_unit_test(test_bitwise_mistral),
        cmocka_unit_test(test_bitwise_bert),
        cmocka_unit_test(test_bitwise_qwen2_moe),
        cmocka_unit_test(test_cuda_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
