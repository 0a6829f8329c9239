/* Plugins through hk_plugin_load: the three example plugins on the gpt2 and llama fixtures,
 * each checked against a run with a hand-written callback doing the same thing, and every
 * loader error (spec, dlopen, symbol, descriptor, ABI, init) with its status and message.
 *
 * The plugins' paths come from the environment (tests/plugins/meson.build): HK_PLUGIN_<NAME>. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixtures.h"
#include "float_compare.h"
#include "hookformer.h"

#define B 2
#define T 7

/* Two right-padded sequences: 7 and 4 valid tokens. */
static const int32_t tokens[B * T] = {5, 17, 3, 99, 42, 8, 1,
                                      9, 9, 120, 4, 0, 0, 0};
static const int64_t lengths[B] = {T, 4};

static const char *const families[] = {"gpt2", "llama"};
#define N_FAMILIES (sizeof families / sizeof families[0])

static const char *plugin_path(const char *name) {
    char var[64];
    snprintf(var, sizeof var, "HK_PLUGIN_%s", name);
    for (char *c = var; *c; c++)
        if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    return require_env(var);
}

static size_t n_logits(const hk_model *m) { return (size_t)(B * T * hk_model_vocab_size(m)); }

static float *run(hk_model *m, hk_hooks *h) {
    float *logits = calloc(n_logits(m), sizeof *logits);
    assert_non_null(logits);
    hk_status st = hk_model_run(m, h, tokens, lengths, B, T, logits);
    if (st != HK_OK) fail_msg("run: %s (%s)", hk_status_name(st), hk_last_error());
    return logits;
}

/* Load spec (a plugin name from the environment, then ":args" if any) and expect st. */
static hk_plugin *load_plugin(hk_model *m, hk_hooks *h, const char *name, const char *args,
                              hk_status want) {
    char spec[2048];
    snprintf(spec, sizeof spec, "%s%s%s", plugin_path(name), args ? ":" : "", args ? args : "");
    hk_plugin *p = (hk_plugin *)0x1;
    hk_status st = hk_plugin_load(spec, m, h, &p);
    if (st != want)
        fail_msg("load '%s': %s (%s), wanted %s", spec, hk_status_name(st), hk_last_error(),
                 hk_status_name(want));
    if (st == HK_OK) {
        assert_non_null(p);
        assert_string_equal(hk_plugin_path(p), plugin_path(name));
    } else {
        assert_null(p);
    }
    return p;
}

static void assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("'%s' does not contain '%s'", haystack, needle);
}

static char *temp_path(const char *tag) {
    const char *tmp = getenv("TMPDIR");
    char *path = malloc(4096);
    assert_non_null(path);
    snprintf(path, 4096, "%s/hk-plugin-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    return path;
}

/* ---- resid_norms -------------------------------------------------------- */

typedef struct {
    int last_only;
    double norm[8][B]; /* [layer, seq] */
    int count[8][B];
} hand_norms;

static hk_hook_result hand_norm_cb(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    hand_norms *hn = user;
    const float *x = t->data;
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++) {
            int64_t len = lengths[ctx->batch_offset + b], pos = ctx->pos_offset + p;
            if (pos >= len || (hn->last_only && pos != len - 1)) continue;
            double ss = 0;
            for (int64_t i = 0; i < t->shape[2]; i++) {
                double v = x[b * t->stride[0] + p * t->stride[1] + i * t->stride[2]];
                ss += v * v;
            }
            hn->norm[ctx->layer][ctx->batch_offset + b] += sqrt(ss);
            hn->count[ctx->layer][ctx->batch_offset + b]++;
        }
    return HK_HOOK_CONTINUE;
}

/* The table resid_norms wrote: "layer  v(seq 0)  v(seq 1)" rows after two header lines. */
static void check_table(const char *path, const hand_norms *hn, int64_t n_layers) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    assert_non_null(fgets(line, sizeof line, f));
    assert_contains(line, "# resid_norms: L2 norm of blocks.*.hook_resid_post");
    assert_contains(line, hn->last_only ? "last valid position" : "mean over the valid");
    assert_non_null(fgets(line, sizeof line, f));
    assert_contains(line, "layer");
    assert_contains(line, "seq 1");
    for (int64_t l = 0; l < n_layers; l++) {
        long long layer;
        double v[B];
        assert_non_null(fgets(line, sizeof line, f));
        assert_int_equal(sscanf(line, "%lld %lf %lf", &layer, &v[0], &v[1]), 3);
        assert_int_equal(layer, l);
        for (int b = 0; b < B; b++) {
            assert_int_equal(hn->count[l][b], hn->last_only ? 1 : (int)lengths[b]);
            double want = hn->norm[l][b] / hn->count[l][b];
            if (fabs(v[b] - want) > 1e-5 * (1 + want))
                fail_msg("layer %lld seq %d: table %f, by hand %f", (long long)l, b, v[b], want);
        }
    }
    assert_null(fgets(line, sizeof line, f));
    fclose(f);
}

static void test_resid_norms(void **unused) {
    (void)unused;
    for (size_t fi = 0; fi < N_FAMILIES; fi++) {
        hk_model *m = fixture_model(families[fi]);
        float *base = run(m, NULL);
        for (int last = 0; last <= 1; last++) {
            char *out = temp_path("norms");
            char args[4200];
            snprintf(args, sizeof args, "pos=%s,out=%s", last ? "last" : "all", out);
            hk_hooks *h;
            assert_int_equal(hk_hooks_new(m, &h), HK_OK);
            hk_plugin *p = load_plugin(m, h, "resid_norms", args, HK_OK);
            assert_string_equal(hk_plugin_name(p), "resid_norms");
            assert_int_equal(hk_hooks_count(h), 1);
            assert_int_equal(hk_plugin_begin_run(p, tokens, lengths, B, T), HK_OK);
            float *logits = run(m, h);
            /* a probe only reads: bit-identical logits */
            assert_memory_equal(logits, base, n_logits(m) * sizeof *logits);

            hand_norms hn = {.last_only = last};
            hk_hooks *hh;
            assert_int_equal(hk_hooks_new(m, &hh), HK_OK);
            assert_int_equal(hk_hooks_add(hh, "blocks.*.hook_resid_post", hand_norm_cb, &hn,
                                          NULL), HK_OK);
            free(run(m, hh));
            hk_hooks_free(hh);

            assert_int_equal(hk_plugin_finish(p), HK_OK);
            assert_int_equal(hk_hooks_count(h), 0); /* finish removed its hooks */
            check_table(out, &hn, hk_model_n_layers(m));
            hk_hooks_free(h);
            free(logits);
            unlink(out);
            free(out);
        }
        free(base);
        hk_model_free(m);
    }
}

static void test_resid_norms_bad_args(void **unused) {
    (void)unused;
    hk_model *m = fixture_model("gpt2");
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    load_plugin(m, h, "resid_norms", "pos=first", HK_ERR_INVALID_ARG);
    assert_contains(hk_last_error(), plugin_path("resid_norms"));
    assert_contains(hk_last_error(), "resid_norms: pos=first: expected 'all' or 'last'");
    assert_contains(hk_last_error(), "usage: ");
    load_plugin(m, h, "resid_norms", "colour=red", HK_ERR_INVALID_ARG);
    assert_contains(hk_last_error(), "unknown argument 'colour'");
    /* an empty value is passed through to the plugin, which decides */
    load_plugin(m, h, "resid_norms", "out=", HK_ERR_IO);
    assert_contains(hk_last_error(), "out=: cannot open");
    assert_int_equal(hk_hooks_count(h), 0);
    hk_hooks_free(h);
    hk_model_free(m);
}

/* ---- ablate_heads ------------------------------------------------------- */

typedef struct {
    int layer, head;
} head_id;

static const head_id ablated[] = {{0, 1}, {1, 3}};

static hk_hook_result hand_zero_cb(hk_tensor *z, const hk_hook_ctx *ctx, void *user) {
    (void)user;
    float *x = z->data;
    for (size_t k = 0; k < sizeof ablated / sizeof ablated[0]; k++) {
        if (ablated[k].layer != ctx->layer) continue;
        for (int64_t b = 0; b < z->shape[0]; b++)
            for (int64_t p = 0; p < z->shape[1]; p++)
                for (int64_t i = 0; i < z->shape[3]; i++)
                    x[b * z->stride[0] + p * z->stride[1] + ablated[k].head * z->stride[2] +
                      i * z->stride[3]] = 0.0f;
    }
    return HK_HOOK_CONTINUE;
}

static void test_ablate_heads(void **unused) {
    (void)unused;
    for (size_t fi = 0; fi < N_FAMILIES; fi++) {
        hk_model *m = fixture_model(families[fi]);
        float *base = run(m, NULL);

        hk_hooks *h;
        assert_int_equal(hk_hooks_new(m, &h), HK_OK);
        hk_plugin *p = load_plugin(m, h, "ablate_heads", "heads=0.1+1.3", HK_OK);
        assert_int_equal(hk_hooks_count(h), 2); /* one registration per layer touched */
        float *abl = run(m, h);
        if (!(max_abs_diff(abl, base, n_logits(m)) > 1e-4f))
            fail_msg("%s: ablating heads 0.1 and 1.3 left the logits unchanged", families[fi]);

        hk_hooks *hh;
        assert_int_equal(hk_hooks_new(m, &hh), HK_OK);
        assert_int_equal(hk_hooks_add(hh, "blocks.*.attn.hook_z", hand_zero_cb, NULL, NULL),
                         HK_OK);
        float *hand = run(m, hh);
        assert_memory_equal(abl, hand, n_logits(m) * sizeof *abl);
        hk_hooks_free(hh);

        /* ';' is a separator too, and naming a head twice is harmless */
        assert_int_equal(hk_plugin_finish(p), HK_OK);
        assert_int_equal(hk_hooks_count(h), 0);
        p = load_plugin(m, h, "ablate_heads", "heads=1.3;0.1;1.3", HK_OK);
        float *abl2 = run(m, h);
        assert_memory_equal(abl2, hand, n_logits(m) * sizeof *abl2);
        assert_int_equal(hk_plugin_finish(p), HK_OK);

        /* after finish the hooks object runs clean again */
        float *again = run(m, h);
        assert_memory_equal(again, base, n_logits(m) * sizeof *again);

        free(again);
        free(abl2);
        free(hand);
        free(abl);
        free(base);
        hk_hooks_free(h);
        hk_model_free(m);
    }
}

static void test_ablate_heads_bad(void **unused) {
    (void)unused;
    hk_model *m = fixture_model("gpt2"); /* 2 layers, 4 heads */
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    static const struct {
        const char *args, *msg;
    } cases[] = {
        {"heads=2.0", "head '2.0': layer 2 is out of range, the model has 2 layers (0..1)"},
        {"heads=0.1+0.4", "head '0.4': head 4 is out of range, layer 0 has 4 heads (0..3)"},
        {"heads=0.x", "head '0.x': expected LAYER.HEAD"},
        {"heads=1", "head '1': expected LAYER.HEAD"},
        {"heads=0.1+", "ends with a separator"},
        {"heads=", "heads= is required"},
        {NULL, "heads= is required"},
        {"head=0.1", "unknown argument 'head'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        load_plugin(m, h, "ablate_heads", cases[i].args, HK_ERR_INVALID_ARG);
        const char *e = hk_last_error();
        assert_contains(e, plugin_path("ablate_heads"));
        assert_contains(e, "plugin init failed (HK_ERR_INVALID_ARG): ablate_heads: ");
        assert_contains(e, cases[i].msg);
        assert_int_equal(hk_hooks_count(h), 0);
    }
    hk_hooks_free(h);
    hk_model_free(m);
}

/* ---- steer -------------------------------------------------------------- */

static char *write_vector(const float *v, size_t n) {
    char *path = temp_path("vec");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) { /* little-endian, whatever the host */
        uint32_t u;
        memcpy(&u, &v[i], 4);
        unsigned char q[4] = {(unsigned char)u, (unsigned char)(u >> 8),
                              (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
        assert_int_equal(fwrite(q, 1, 4, f), 4);
    }
    assert_int_equal(fclose(f), 0);
    return path;
}

typedef struct {
    const float *v;
    double coef;
    int64_t from, layer;
} hand_steer;

static hk_hook_result hand_steer_cb(hk_tensor *t, const hk_hook_ctx *ctx, void *user) {
    const hand_steer *s = user;
    if (s->layer >= 0 && ctx->layer != s->layer) return HK_HOOK_CONTINUE;
    float *x = t->data;
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t p = 0; p < t->shape[1]; p++) {
            if (ctx->pos_offset + p < s->from) continue;
            for (int64_t i = 0; i < t->shape[2]; i++)
                x[b * t->stride[0] + p * t->stride[1] + i * t->stride[2]] +=
                    (float)(s->coef * (double)s->v[i]);
        }
    return HK_HOOK_CONTINUE;
}

static void test_steer(void **unused) {
    (void)unused;
    for (size_t fi = 0; fi < N_FAMILIES; fi++) {
        hk_model *m = fixture_model(families[fi]);
        const int64_t d = hk_model_d_model(m);
        float *base = run(m, NULL);
        float *zero = calloc((size_t)d, sizeof *zero), *v = malloc((size_t)d * sizeof *v);
        for (int64_t i = 0; i < d; i++) v[i] = (float)sin(0.37 * (double)i + 0.5);
        char *zero_path = write_vector(zero, (size_t)d), *v_path = write_vector(v, (size_t)d);
        char args[4300];
        hk_hooks *h;
        assert_int_equal(hk_hooks_new(m, &h), HK_OK);

        /* a zero vector changes nothing, bit for bit */
        snprintf(args, sizeof args, "vector=%s,coef=3,layer=1", zero_path);
        hk_plugin *p = load_plugin(m, h, "steer", args, HK_OK);
        float *same = run(m, h);
        assert_memory_equal(same, base, n_logits(m) * sizeof *same);
        assert_int_equal(hk_plugin_finish(p), HK_OK);

        /* a real one at blocks.1.hook_resid_pre from position 2 == the same by hand */
        snprintf(args, sizeof args, "vector=%s,coef=2.5,layer=1,from=2", v_path);
        p = load_plugin(m, h, "steer", args, HK_OK);
        float *steered = run(m, h);
        assert_int_equal(hk_plugin_finish(p), HK_OK);
        if (!(max_abs_diff(steered, base, n_logits(m)) > 1e-4f))
            fail_msg("%s: steering left the logits unchanged", families[fi]);
        /* positions before from= are untouched (causal): logits at pos 0, 1 unchanged */
        const int64_t V = hk_model_vocab_size(m);
        for (int64_t b = 0; b < B; b++)
            assert_memory_equal(steered + b * T * V, base + b * T * V,
                                2 * (size_t)V * sizeof(float));
        hand_steer hs = {.v = v, .coef = 2.5, .from = 2, .layer = 1};
        hk_hooks *hh;
        assert_int_equal(hk_hooks_new(m, &hh), HK_OK);
        assert_int_equal(hk_hooks_add(hh, "blocks.1.hook_resid_pre", hand_steer_cb, &hs, NULL),
                         HK_OK);
        float *hand = run(m, hh);
        assert_memory_equal(steered, hand, n_logits(m) * sizeof *hand);
        hk_hooks_free(hh);

        /* hook= with a glob: every layer's resid_post */
        snprintf(args, sizeof args, "vector=%s,coef=-0.5,hook=blocks.*.hook_resid_post",
                 v_path);
        p = load_plugin(m, h, "steer", args, HK_OK);
        float *glob = run(m, h);
        assert_int_equal(hk_plugin_finish(p), HK_OK);
        hs = (hand_steer){.v = v, .coef = -0.5, .from = 0, .layer = -1};
        assert_int_equal(hk_hooks_new(m, &hh), HK_OK);
        assert_int_equal(hk_hooks_add(hh, "blocks.*.hook_resid_post", hand_steer_cb, &hs, NULL),
                         HK_OK);
        float *hand2 = run(m, hh);
        assert_memory_equal(glob, hand2, n_logits(m) * sizeof *glob);
        hk_hooks_free(hh);

        assert_int_equal(hk_hooks_count(h), 0);
        hk_hooks_free(h);
        unlink(zero_path);
        unlink(v_path);
        free(zero_path);
        free(v_path);
        free(hand2);
        free(glob);
        free(hand);
        free(steered);
        free(same);
        free(zero);
        free(v);
        free(base);
        hk_model_free(m);
    }
}

static void test_steer_bad(void **unused) {
    (void)unused;
    hk_model *m = fixture_model("gpt2"); /* d_model 64 */
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    float v[65] = {0};
    char *short_path = write_vector(v, 63), *long_path = write_vector(v, 65);
    char args[4300];

    snprintf(args, sizeof args, "vector=%s", short_path);
    load_plugin(m, h, "steer", args, HK_ERR_SHAPE);
    assert_contains(hk_last_error(), plugin_path("steer"));
    assert_contains(hk_last_error(), short_path);
    assert_contains(hk_last_error(), "expected d_model = 64 float32 values (256 bytes), the "
                                     "file has 252 bytes (63 values)");
    snprintf(args, sizeof args, "vector=%s", long_path);
    load_plugin(m, h, "steer", args, HK_ERR_SHAPE);
    assert_contains(hk_last_error(), "the file has 260 bytes (65 values)");

    load_plugin(m, h, "steer", "vector=/nonexistent/v.f32", HK_ERR_IO);
    assert_contains(hk_last_error(), "vector=/nonexistent/v.f32: cannot open");
    load_plugin(m, h, "steer", "coef=2", HK_ERR_INVALID_ARG);
    assert_contains(hk_last_error(), "vector=FILE is required");
    snprintf(args, sizeof args, "vector=%s,coef=x", short_path);
    load_plugin(m, h, "steer", args, HK_ERR_INVALID_ARG);
    assert_contains(hk_last_error(), "coef=x: expected a finite number");
    snprintf(args, sizeof args, "vector=%s,layer=2", short_path);
    load_plugin(m, h, "steer", args, HK_ERR_INVALID_ARG);
    assert_contains(hk_last_error(), "layer=2: expected an integer in [0, 1]");

    float *ok = calloc(64, sizeof *ok);
    char *ok_path = write_vector(ok, 64);
    snprintf(args, sizeof args, "vector=%s,hook=blocks.9.hook_resid_pre", ok_path);
    load_plugin(m, h, "steer", args, HK_ERR_NOT_FOUND);
    assert_contains(hk_last_error(), "hook=blocks.9.hook_resid_pre: hook 'blocks.9.hook_resid_pre' "
                                     "matches no hook point");
    /* a hook whose last dim is not d_model fails at the run, naming the hook */
    snprintf(args, sizeof args, "vector=%s,hook=blocks.0.mlp.hook_post", ok_path);
    hk_plugin *p = load_plugin(m, h, "steer", args, HK_OK);
    float *logits = calloc(n_logits(m), sizeof *logits);
    assert_int_equal(hk_model_run(m, h, tokens, lengths, B, T, logits), HK_ERR_HOOK);
    assert_contains(hk_last_error(), "blocks.0.mlp.hook_post");
    assert_contains(hk_last_error(), "d_model=64");
    assert_int_equal(hk_plugin_finish(p), HK_OK);
    assert_int_equal(hk_hooks_count(h), 0);

    free(logits);
    unlink(ok_path);
    unlink(short_path);
    unlink(long_path);
    free(ok_path);
    free(ok);
    free(short_path);
    free(long_path);
    hk_hooks_free(h);
    hk_model_free(m);
}

/* ---- the loader's own errors --------------------------------------------- */

static void test_bad_plugins(void **unused) {
    (void)unused;
    hk_model *m = fixture_model("gpt2");
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    hk_plugin *p = (hk_plugin *)0x1;

    assert_int_equal(hk_plugin_load("/nonexistent/probe.so", m, h, &p), HK_ERR_IO);
    assert_null(p);
    assert_contains(hk_last_error(), "/nonexistent/probe.so: cannot load plugin: ");
    assert_contains(hk_last_error(), "No such file"); /* dlerror()'s words */

    load_plugin(m, h, "bad_nosym", NULL, HK_ERR_NOT_FOUND);
    assert_contains(hk_last_error(), plugin_path("bad_nosym"));
    assert_contains(hk_last_error(), "not a hookformer plugin: it exports no symbol "
                                     "'hookformer_plugin'");

    load_plugin(m, h, "bad_null", NULL, HK_ERR_FORMAT);
    assert_contains(hk_last_error(), plugin_path("bad_null"));
    assert_contains(hk_last_error(), "hookformer_plugin() returned NULL");

    load_plugin(m, h, "bad_abi", NULL, HK_ERR_UNSUPPORTED);
    assert_contains(hk_last_error(), plugin_path("bad_abi"));
    char want[256];
    snprintf(want, sizeof want, "built for plugin ABI 999, this hookformer speaks %d: rebuild "
                                "it against hookformer %s", HK_PLUGIN_ABI_VERSION,
             HK_VERSION_STRING);
    assert_contains(hk_last_error(), want);

    load_plugin(m, h, "bad_size", NULL, HK_ERR_FORMAT);
    assert_contains(hk_last_error(), plugin_path("bad_size"));
    assert_contains(hk_last_error(), "declares struct_size 8");

    load_plugin(m, h, "bad_init", "alpha=1,beta=", HK_ERR_INVALID_ARG);
    assert_contains(hk_last_error(), plugin_path("bad_init"));
    assert_contains(hk_last_error(), "plugin init failed (HK_ERR_INVALID_ARG): bad_init: "
                                     "cannot work with 2 arguments (first: alpha); "
                                     "usage: always fails");
    /* the hook it registered before failing is gone: a run does not call it (it aborts) */
    assert_int_equal(hk_hooks_count(h), 0);
    free(run(m, h));

    /* plugins that fail leave other plugins' hooks alone */
    hk_plugin *ok = load_plugin(m, h, "ablate_heads", "heads=0.0", HK_OK);
    load_plugin(m, h, "bad_init", NULL, HK_ERR_INVALID_ARG);
    assert_contains(hk_last_error(), "cannot work with 0 arguments (first: none)");
    assert_int_equal(hk_hooks_count(h), 1);
    assert_int_equal(hk_plugin_finish(ok), HK_OK);
    assert_int_equal(hk_hooks_count(h), 0);

    /* begin_run and finish failures: status and message, path and name */
    p = load_plugin(m, h, "bad_finish", "fail=begin", HK_OK);
    assert_int_equal(hk_plugin_begin_run(p, tokens, lengths, B, T), HK_ERR_UNSUPPORTED);
    assert_contains(hk_last_error(), plugin_path("bad_finish"));
    assert_contains(hk_last_error(), "plugin 'bad_finish' failed before the run: will not run "
                                     "2 x 7");
    assert_int_equal(hk_plugin_finish(p), HK_OK);
    p = load_plugin(m, h, "bad_finish", NULL, HK_OK);
    assert_int_equal(hk_plugin_begin_run(p, tokens, lengths, B, T), HK_OK);
    assert_int_equal(hk_plugin_finish(p), HK_ERR_IO);
    assert_contains(hk_last_error(), plugin_path("bad_finish"));
    assert_contains(hk_last_error(), "plugin 'bad_finish' failed to finish: the summary could "
                                     "not be written");

    assert_int_equal(hk_plugin_finish(NULL), HK_OK);
    assert_int_equal(hk_plugin_begin_run(NULL, tokens, lengths, B, T), HK_OK);
    assert_int_equal(hk_plugin_load(NULL, m, h, &p), HK_ERR_INVALID_ARG);
    assert_int_equal(hk_plugin_load(plugin_path("resid_norms"), m, NULL, &p),
                     HK_ERR_INVALID_ARG);
    hk_hooks_free(h);
    hk_model_free(m);
}

static void test_spec_errors(void **unused) {
    (void)unused;
    hk_model *m = fixture_model("gpt2");
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    const char *path = plugin_path("resid_norms");
    static const struct {
        const char *args, *msg;
    } cases[] = {
        {"foo", ": argument 1, 'foo': expected key=value"},
        {"pos=all,foo", ": argument 2, 'foo': expected key=value"},
        {"pos=all,", ": argument 2, '': expected key=value"},
        {"", ": argument 1, '': expected key=value"},
        {"=all", ": argument 1, '=all': expected key=value, the key is empty"},
        {"pos=all,pos=last", ": argument 'pos' is given twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char spec[2048], want[2048];
        snprintf(spec, sizeof spec, "%s:%s", path, cases[i].args);
        hk_plugin *p = (hk_plugin *)0x1;
        assert_int_equal(hk_plugin_load(spec, m, h, &p), HK_ERR_INVALID_ARG);
        assert_null(p);
        snprintf(want, sizeof want, "%s%s", path, cases[i].msg);
        assert_contains(hk_last_error(), want);
    }
    hk_plugin *p;
    assert_int_equal(hk_plugin_load(":pos=all", m, h, &p), HK_ERR_INVALID_ARG);
    assert_contains(hk_last_error(), "the path is empty");
    assert_int_equal(hk_plugin_load("", m, h, &p), HK_ERR_INVALID_ARG);
    assert_int_equal(hk_hooks_count(h), 0);

    /* a bare file name is a file in the current directory, not a library search */
    char cwd[4096], dir_of[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(dir_of, sizeof dir_of, "%s", path);
    *strrchr(dir_of, '/') = '\0';
    assert_int_equal(chdir(dir_of), 0);
    assert_int_equal(hk_plugin_load("resid_norms.so:pos=last", m, h, &p), HK_OK);
    assert_string_equal(hk_plugin_path(p), "resid_norms.so");
    assert_int_equal(hk_plugin_finish(p), HK_OK);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(hk_plugin_load("resid_norms.so", m, h, &p), HK_ERR_IO);
    assert_contains(hk_last_error(), "resid_norms.so: cannot load plugin: ./resid_norms.so: ");

    /* a value may hold '=' and ':' (only ',' ends it) */
    char *dir = temp_path("a=b:c");
    char spec[8192];
    snprintf(spec, sizeof spec, "%s:out=%s", path, dir);
    assert_int_equal(hk_plugin_load(spec, m, h, &p), HK_OK);
    assert_int_equal(hk_plugin_finish(p), HK_OK);
    unlink(dir);
    free(dir);
    hk_hooks_free(h);
    hk_model_free(m);
}

/* Two plugins on one hooks object: both act, in load order; the same .so twice is fine. */
static void test_plugins_together(void **unused) {
    (void)unused;
    hk_model *m = fixture_model("llama");
    hk_hooks *h;
    assert_int_equal(hk_hooks_new(m, &h), HK_OK);
    char *out = temp_path("norms");
    char args[4200];
    snprintf(args, sizeof args, "out=%s", out);
    hk_plugin *norms = load_plugin(m, h, "resid_norms", args, HK_OK);
    hk_plugin *a1 = load_plugin(m, h, "ablate_heads", "heads=0.1", HK_OK);
    hk_plugin *a2 = load_plugin(m, h, "ablate_heads", "heads=1.3", HK_OK);
    assert_int_equal(hk_hooks_count(h), 3);
    float *both = run(m, h);

    hk_hooks *hh;
    assert_int_equal(hk_hooks_new(m, &hh), HK_OK);
    assert_int_equal(hk_hooks_add(hh, "blocks.*.attn.hook_z", hand_zero_cb, NULL, NULL), HK_OK);
    float *hand = run(m, hh);
    assert_memory_equal(both, hand, n_logits(m) * sizeof *both);
    hk_hooks_free(hh);

    assert_int_equal(hk_plugin_finish(a1), HK_OK);
    assert_int_equal(hk_hooks_count(h), 2);
    assert_int_equal(hk_plugin_finish(norms), HK_OK);
    assert_int_equal(hk_hooks_count(h), 1);
    assert_int_equal(hk_plugin_finish(a2), HK_OK);
    assert_int_equal(hk_hooks_count(h), 0);
    hk_hooks_free(h);
    unlink(out);
    free(out);
    free(hand);
    free(both);
    hk_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resid_norms),
        cmocka_unit_test(test_resid_norms_bad_args),
        cmocka_unit_test(test_ablate_heads),
        cmocka_unit_test(test_ablate_heads_bad),
        cmocka_unit_test(test_steer),
        cmocka_unit_test(test_steer_bad),
        cmocka_unit_test(test_bad_plugins),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_plugins_together),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
