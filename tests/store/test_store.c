/* The HDF5 activation store (hk_store_*) on the fixture models: what is stored equals the
 * in-memory cache (hk_run_with_cache) — read back through hk_store_read and, by
 * store_h5py_check.py, through plain h5py + numpy — exactly for f32 and as the f16/bf16
 * rounding of the cache for 16-bit stores; position selections; attention patterns per
 * sequence; append (matching and refused); never overwriting without force; a file-size
 * limit ending the run with a clear error and a readable file; the CLI (cache, inspect). */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_run.h"
#include "core/checkpoint.h"
#include "core/dtype.h"
#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"

static const char *g_exe;   /* the hookformer CLI */
static char g_tmp[512];     /* a fresh directory for this run's files */

static void tmp_file(const char *name, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s/%s", g_tmp, name);
    assert_true(n > 0 && (size_t)n < cap);
}

typedef struct {
    hk_model *m;
    int64_t batch, seq;
    int32_t *tokens;  /* [batch, seq] */
    int64_t *lengths; /* [batch] */
} fixture;

static void fixture_load(const char *name, fixture *f) {
    memset(f, 0, sizeof *f);
    f->m = fixture_model(name);
    hk_ckpt *ck = fixture_ckpt(name, "reference.safetensors");
    const hk_st_tensor *ids = hk_ckpt_find(ck, "input_ids"), *lens = hk_ckpt_find(ck, "lengths");
    assert_non_null(ids);
    assert_non_null(lens);
    f->batch = ids->shape[0];
    f->seq = ids->shape[1];
    f->tokens = ids_from_i64(ids->data, f->batch * f->seq);
    f->lengths = malloc((size_t)f->batch * sizeof *f->lengths);
    assert_non_null(f->lengths);
    memcpy(f->lengths, lens->data, (size_t)f->batch * 8);
    hk_ckpt_close(ck);
}

static void fixture_free(fixture *f) {
    free(f->tokens);
    free(f->lengths);
    hk_model_free(f->m);
}

static float rounded(hk_dtype dt, float x) {
    if (dt == HK_DTYPE_F16) return hk_f16_to_f32(hk_f32_to_f16(x));
    if (dt == HK_DTYPE_BF16) return hk_bf16_to_f32(hk_f32_to_bf16(x));
    return x;
}

/* Python slice [first, first + count) of positions over a sequence of len. */
static void selected(const char *positions, int64_t len, int64_t *first, int64_t *count) {
    if (!positions || strcmp(positions, "all") == 0) *first = 0, *count = len;
    else if (strcmp(positions, "last") == 0) *first = len - 1, *count = 1;
    else { /* "1:3" in these tests */
        int64_t a = positions[0] - '0', b = positions[2] - '0';
        a = a > len ? len : a;
        b = b > len ? len : b;
        *first = a;
        *count = b > a ? b - a : 0;
    }
}

/* Run python3 SCRIPT ARGS; 0 ok, 77 skip (no python3 / h5py / numpy), else failure. */
static int run_python(const char *script, const char *a1, const char *a2) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execlp("python3", "python3", script, a1, a2, (char *)NULL);
        _exit(77);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void python_verdict(int rc, const char *what) {
    if (rc == 77) {
        /* CI must run the check: scripts/setup.sh test installs h5py and sets this */
        const char *req = getenv("HK_REQUIRE_H5PY");
        if (req && strcmp(req, "1") == 0) fail_msg("%s: python3 with h5py and numpy is required", what);
        print_message("%s: skipped (python3 with h5py and numpy not found)\n", what);
        return;
    }
    if (rc != 0) fail_msg("%s: store_h5py_check.py failed (exit %d)", what, rc);
}

static float g_dummy[1 << 16];
static float *got_dummy(void) { return g_dummy; }

static const char *const HOOKS[] = {"blocks.*.hook_resid_post", "blocks.0.attn.hook_z",
                                    "blocks.1.mlp.hook_post"};
#define N_HOOKS (sizeof HOOKS / sizeof HOOKS[0])

/* Store the fixture batch, read every stored row back and compare with the cache; with
 * refdir, dump the cache's rows for store_h5py_check.py. */
static void roundtrip(const char *family, hk_dtype dt, const char *positions, bool h5py) {
    fixture f;
    fixture_load(family, &f);
    hk_cache *c = NULL;
    EXPECT_OK(hk_run_with_cache(f.m, f.tokens, f.lengths, f.batch, f.seq, HOOKS, N_HOOKS, "all",
                                NULL, &c));
    char path[600];
    char name[128];
    snprintf(name, sizeof name, "rt_%s_%s_%s.h5", family, hk_dtype_name(dt),
             positions ? (strcmp(positions, "1:3") == 0 ? "slice" : positions) : "all");
    tmp_file(name, path, sizeof path);
    hk_store_opts o = hk_store_default_opts();
    o.dtype = dt;
    o.positions = positions;
    o.force = true;
    o.commit_seconds = 0;
    hk_store *s = NULL;
    EXPECT_OK(hk_store_create(path, f.m, HOOKS, N_HOOKS, &o, &s));
    /* two batches (ids continue), each computed as the cache's batch, so values are equal */
    EXPECT_OK(hk_store_run(s, f.m, f.tokens, f.lengths, f.batch, f.seq));
    EXPECT_OK(hk_store_run(s, f.m, f.tokens, f.lengths, f.batch, f.seq));
    EXPECT_OK(hk_store_close(s));

    EXPECT_OK(hk_store_open(path, &s));
    hk_store_info info;
    EXPECT_OK(hk_store_get_info(s, &info));
    assert_int_equal(info.n_sequences, 2 * f.batch);
    int64_t rows = 0;
    for (int64_t b = 0; b < f.batch; b++) {
        int64_t first, count;
        selected(positions, f.lengths[b], &first, &count);
        rows += count;
    }
    assert_int_equal(info.n_rows, 2 * rows);

    char refdir[600];
    FILE *manifest = NULL, *index = NULL;
    if (h5py) {
        int n = snprintf(refdir, sizeof refdir, "%.590s.ref", path);
        assert_true(n > 0 && (size_t)n < sizeof refdir);
        mkdir(refdir, 0755);
        char p[700];
        snprintf(p, sizeof p, "%s/manifest.txt", refdir);
        manifest = fopen(p, "w");
        snprintf(p, sizeof p, "%s/index.i64", refdir);
        index = fopen(p, "wb");
        assert_non_null(manifest);
        assert_non_null(index);
        fprintf(manifest, "dtype %s\n",
                dt == HK_DTYPE_F32 ? "f32" : dt == HK_DTYPE_F16 ? "f16" : "bf16");
        /* index rows of both passes */
        for (int pass = 0; pass < 2; pass++)
            for (int64_t b = 0; b < f.batch; b++) {
                int64_t first, count;
                selected(positions, f.lengths[b], &first, &count);
                for (int64_t p2 = first; p2 < first + count; p2++) {
                    int64_t v[3] = {pass * f.batch + b, p2, f.tokens[b * f.seq + p2]};
                    fwrite(v, sizeof v, 1, index);
                }
            }
        fclose(index);
    }
    for (size_t i = 0; i < info.n_hooks; i++) {
        hk_store_hook_info hi;
        EXPECT_OK(hk_store_hook_at(s, i, &hi));
        const hk_tensor *t = hk_cache_get(c, hi.name);
        assert_non_null(t);
        const int64_t elems = hk_store_row_elems(s, hi.name);
        assert_int_equal(elems, t->stride[1]); /* [batch, pos, ...] contiguous */
        float *got = malloc((size_t)elems * sizeof *got);
        FILE *ref = NULL;
        if (h5py) {
            char p[800];
            snprintf(p, sizeof p, "%s/%s.f32", refdir, hi.name);
            ref = fopen(p, "wb");
            assert_non_null(ref);
            fprintf(manifest, "%s %lld %lld\n", hi.name, (long long)(2 * rows), (long long)elems);
        }
        for (int pass = 0; pass < 2; pass++)
            for (int64_t b = 0; b < f.batch; b++) {
                int64_t first, count;
                selected(positions, f.lengths[b], &first, &count);
                for (int64_t p2 = first; p2 < first + count; p2++) {
                    int64_t q = pass * f.batch + b;
                    EXPECT_OK(hk_store_read(s, hi.name, &q, &p2, 1, got));
                    const float *want = (const float *)t->data + (b * f.seq + p2) * elems;
                    if (ref) fwrite(want, sizeof *want, (size_t)elems, ref);
                    for (int64_t e = 0; e < elems; e++)
                        if (memcmp(&got[e], &(float){rounded(dt, want[e])}, 4) != 0)
                            fail_msg("%s %s %s: sequence %lld position %lld element %lld: "
                                     "stored %g, cache %g",
                                     family, hk_dtype_name(dt), hi.name, (long long)q,
                                     (long long)p2, (long long)e, (double)got[e],
                                     (double)want[e]);
                }
            }
        if (ref) fclose(ref);
        free(got);
    }
    if (manifest) fclose(manifest);
    /* a batch read of several pairs (runs of rows and jumps) equals the single reads */
    int64_t q[3] = {f.batch, 0, f.batch}, p3[3] = {-1, -1, -1};
    int64_t elems = hk_store_row_elems(s, "blocks.0.hook_resid_post");
    float *three = malloc((size_t)(3 * elems) * sizeof *three), *one = malloc((size_t)elems * 4);
    EXPECT_OK(hk_store_read(s, "blocks.0.hook_resid_post", q, p3, 3, three));
    for (int k = 0; k < 3; k++) {
        EXPECT_OK(hk_store_read(s, "blocks.0.hook_resid_post", &q[k], &p3[k], 1, one));
        assert_memory_equal(one, three + k * elems, (size_t)elems * 4);
    }
    free(three);
    free(one);
    /* errors name what is missing */
    int64_t bad_q = 2 * f.batch, zero = 0, far = 1000;
    expect_error(hk_store_read(s, "blocks.0.hook_resid_post", &bad_q, &zero, 1, got_dummy()),
                 HK_ERR_NOT_FOUND, "is not stored", NULL, NULL);
    expect_error(hk_store_read(s, "blocks.0.hook_resid_post", &zero, &far, 1, got_dummy()),
                 HK_ERR_NOT_FOUND, "position 1000 of sequence 0", NULL, NULL);
    expect_error(hk_store_read(s, "blocks.0.hook_nope", &zero, &zero, 1, got_dummy()),
                 HK_ERR_NOT_FOUND, "no stored hook", NULL, NULL);
    EXPECT_OK(hk_store_close(s));
    hk_cache_free(c);
    fixture_free(&f);
    if (h5py) python_verdict(run_python(getenv("HK_STORE_H5PY_CHECK"), path, refdir), path);
}

static void test_roundtrip_f32(void **state) {
    (void)state;
    roundtrip("gpt2", HK_DTYPE_F32, NULL, true);
    roundtrip("llama", HK_DTYPE_F32, NULL, true);
}
static void test_roundtrip_f16(void **state) {
    (void)state;
    roundtrip("gpt2", HK_DTYPE_F16, NULL, true);
    roundtrip("neox", HK_DTYPE_F16, NULL, true);
}
static void test_roundtrip_bf16(void **state) {
    (void)state;
    roundtrip("gpt2", HK_DTYPE_BF16, NULL, true);
    roundtrip("qwen2", HK_DTYPE_BF16, NULL, true);
}
static void test_positions(void **state) {
    (void)state;
    roundtrip("gpt2", HK_DTYPE_F32, "last", false);
    roundtrip("llama", HK_DTYPE_F32, "1:3", false);
}

/* Attention patterns per sequence: [sequence, head, Q, ctx], valid queries and keys of each
 * sequence equal the cache's, the rest 0. */
static void test_patterns(void **state) {
    (void)state;
    fixture f;
    fixture_load("gpt2", &f);
    const char *pat[] = {"blocks.1.attn.hook_pattern"};
    hk_cache *c = NULL;
    EXPECT_OK(hk_run_with_cache(f.m, f.tokens, f.lengths, f.batch, f.seq, pat, 1, "all", NULL, &c));
    const hk_tensor *t = hk_cache_get(c, pat[0]); /* [batch, head, q, k] */
    assert_non_null(t);
    const int64_t H = t->shape[1], ctx = f.seq + 3;
    for (int last = 0; last < 2; last++) {
        char path[600];
        tmp_file(last ? "pattern_last.h5" : "pattern_all.h5", path, sizeof path);
        hk_store_opts o = hk_store_default_opts();
        o.ctx = ctx;
        o.positions = last ? "last" : "all";
        o.force = true;
        hk_store *s;
        EXPECT_OK(hk_store_create(path, f.m, pat, 1, &o, &s));
        EXPECT_OK(hk_store_run(s, f.m, f.tokens, f.lengths, f.batch, f.seq));
        EXPECT_OK(hk_store_close(s));
        EXPECT_OK(hk_store_open(path, &s));
        hk_store_hook_info hi;
        EXPECT_OK(hk_store_hook_at(s, 0, &hi));
        assert_true(hi.per_sequence);
        assert_int_equal(hi.ndim, 4);
        const int64_t Q = last ? 1 : ctx;
        assert_int_equal(hi.shape[0], f.batch);
        assert_int_equal(hi.shape[1], H);
        assert_int_equal(hi.shape[2], Q);
        assert_int_equal(hi.shape[3], ctx);
        float *row = malloc((size_t)(H * Q * ctx) * sizeof *row);
        for (int64_t b = 0; b < f.batch; b++) {
            EXPECT_OK(hk_store_read(s, pat[0], &b, NULL, 1, row));
            const int64_t len = f.lengths[b];
            for (int64_t h = 0; h < H; h++)
                for (int64_t qi = 0; qi < Q; qi++)
                    for (int64_t k = 0; k < ctx; k++) {
                        int64_t q = last ? len - 1 : qi;
                        float want = q < len && k < len
                                         ? ((const float *)t->data)[((b * H + h) * f.seq + q) * f.seq + k]
                                         : 0.0f;
                        float got = row[(h * Q + qi) * ctx + k];
                        if (got != want)
                            fail_msg("pattern %s: seq %lld head %lld q %lld k %lld: %g, want %g",
                                     o.positions, (long long)b, (long long)h, (long long)q,
                                     (long long)k, (double)got, (double)want);
                    }
        }
        free(row);
        int64_t zero = 0;
        expect_error(hk_store_read(s, pat[0], &zero, &zero, 1, g_dummy), HK_ERR_INVALID_ARG,
                     "positions NULL", NULL, NULL);
        EXPECT_OK(hk_store_close(s));
    }
    /* patterns need ctx and refuse slices */
    char path[600];
    tmp_file("pattern_bad.h5", path, sizeof path);
    hk_store_opts o = hk_store_default_opts();
    hk_store *s = NULL;
    expect_error(hk_store_create(path, f.m, pat, 1, &o, &s),
                 HK_ERR_INVALID_ARG, "--ctx", NULL, NULL);
    o.ctx = 8;
    o.positions = "0:2";
    expect_error(hk_store_create(path, f.m, pat, 1, &o, &s),
                 HK_ERR_UNSUPPORTED, "not a slice", NULL, NULL);
    assert_null(s);
    hk_cache_free(c);
    fixture_free(&f);
}

/* Append: rows continue with new sequence ids; a store is refused for another dtype, other
 * hooks, positions, or another model; create never overwrites without force. */
static void test_append_and_refusals(void **state) {
    (void)state;
    fixture f;
    fixture_load("gpt2", &f);
    const char *h1[] = {"blocks.0.hook_resid_post"};
    char path[600];
    tmp_file("append.h5", path, sizeof path);
    unlink(path);
    hk_store_opts o = hk_store_default_opts();
    hk_store *s = NULL;
    EXPECT_OK(hk_store_create(path, f.m, h1, 1, &o, &s));
    EXPECT_OK(hk_store_run(s, f.m, f.tokens, f.lengths, f.batch, f.seq));
    EXPECT_OK(hk_store_close(s));
    expect_error(hk_store_create(path, f.m, h1, 1, &o, &s), HK_ERR_IO, "exists", NULL, NULL);
    assert_null(s);

    EXPECT_OK(hk_store_append(path, f.m, h1, 1, &o, &s));
    EXPECT_OK(hk_store_run(s, f.m, f.tokens, f.lengths, f.batch, f.seq));
    EXPECT_OK(hk_store_close(s));
    EXPECT_OK(hk_store_open(path, &s));
    hk_store_info info;
    EXPECT_OK(hk_store_get_info(s, &info));
    assert_int_equal(info.n_sequences, 2 * f.batch);
    /* sequence b and b + batch hold the same rows (same tokens, same batch) */
    int64_t elems = hk_store_row_elems(s, h1[0]);
    float *a = malloc((size_t)elems * 4), *b2 = malloc((size_t)elems * 4);
    for (int64_t b = 0; b < f.batch; b++) {
        int64_t q1 = b, q2 = b + f.batch, p = -1;
        EXPECT_OK(hk_store_read(s, h1[0], &q1, &p, 1, a));
        EXPECT_OK(hk_store_read(s, h1[0], &q2, &p, 1, b2));
        assert_memory_equal(a, b2, (size_t)elems * 4);
    }
    free(a);
    free(b2);
    EXPECT_OK(hk_store_close(s));

    hk_store_opts o16 = o;
    o16.dtype = HK_DTYPE_F16;
    expect_error(hk_store_append(path, f.m, h1, 1, &o16, &s),
                 HK_ERR_INVALID_ARG, "the dtype differs", NULL, NULL);
    const char *h2[] = {"blocks.1.hook_resid_post"};
    expect_error(hk_store_append(path, f.m, h2, 1, &o, &s),
                 HK_ERR_INVALID_ARG, "the hook list differs", NULL, NULL);
    hk_store_opts olast = o;
    olast.positions = "last";
    expect_error(hk_store_append(path, f.m, h1, 1, &olast, &s), HK_ERR_INVALID_ARG,
                 "the positions setting differs", NULL, NULL);
    hk_model *other = fixture_model("neox");
    expect_error(hk_store_append(path, other, h1, 1, &o, &s),
                 HK_ERR_INVALID_ARG, "the model differs", NULL, NULL);
    hk_model_free(other);
    assert_null(s);
    /* bad options and hooks */
    hk_store_opts oc = o;
    oc.compress = "zstd";
    oc.force = true;
    expect_error(hk_store_create(path, f.m, h1, 1, &oc, &s),
                 HK_ERR_INVALID_ARG, "compress 'zstd'", NULL, NULL);
    const char *nope[] = {"blocks.*.hook_nope"};
    oc.compress = NULL;
    expect_error(hk_store_create(path, f.m, nope, 1, &oc, &s),
                 HK_ERR_NOT_FOUND, "matches no hook", NULL, NULL);
    /* the refused calls left the file as it was */
    EXPECT_OK(hk_store_open(path, &s));
    EXPECT_OK(hk_store_get_info(s, &info));
    assert_int_equal(info.n_sequences, 2 * f.batch);
    EXPECT_OK(hk_store_close(s));
    /* deflate: same values as the uncompressed store */
    char zpath[600];
    tmp_file("deflate.h5", zpath, sizeof zpath);
    oc.compress = "deflate";
    EXPECT_OK(hk_store_create(zpath, f.m, h1, 1, &oc, &s));
    EXPECT_OK(hk_store_run(s, f.m, f.tokens, f.lengths, f.batch, f.seq));
    EXPECT_OK(hk_store_close(s));
    EXPECT_OK(hk_store_append(zpath, f.m, h1, 1, &oc, &s));
    EXPECT_OK(hk_store_run(s, f.m, f.tokens, f.lengths, f.batch, f.seq));
    EXPECT_OK(hk_store_close(s));
    hk_store *u;
    EXPECT_OK(hk_store_open(zpath, &s));
    EXPECT_OK(hk_store_open(path, &u));
    a = malloc((size_t)elems * 4);
    b2 = malloc((size_t)elems * 4);
    for (int64_t q = 0; q < 2 * f.batch; q++) {
        int64_t p = -1;
        EXPECT_OK(hk_store_read(s, h1[0], &q, &p, 1, a));
        EXPECT_OK(hk_store_read(u, h1[0], &q, &p, 1, b2));
        assert_memory_equal(a, b2, (size_t)elems * 4);
    }
    free(a);
    free(b2);
    EXPECT_OK(hk_store_close(s));
    EXPECT_OK(hk_store_close(u));
    fixture_free(&f);
}

/* A file-size limit (RLIMIT_FSIZE) in a child: the run ends with HK_ERR_IO naming the file,
 * the child is not killed by SIGXFSZ, and the file opens and holds the committed rows. */
static void test_file_size_limit(void **state) {
    (void)state;
    char path[600];
    tmp_file("limit.h5", path, sizeof path);
    unlink(path);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct rlimit rl = {24u << 20, 24u << 20};
        setrlimit(RLIMIT_FSIZE, &rl);
        hk_model *m = NULL;
        if (hk_model_load(getenv("HK_STORE_MODEL"), &m) != HK_OK) _exit(3);
        const char *h[] = {"unembed.hook_out", "blocks.*.hook_resid_post"};
        hk_store_opts o = hk_store_default_opts();
        o.commit_seconds = 0;
        hk_store *s = NULL;
        if (hk_store_create(path, m, h, 2, &o, &s) != HK_OK) _exit(4);
        int32_t tokens[16 * 64];
        for (int i = 0; i < 16 * 64; i++) tokens[i] = i % 200;
        hk_status st = HK_OK;
        int64_t batches = 0;
        while (st == HK_OK && batches < 10000) {
            st = hk_store_run(s, m, tokens, NULL, 16, 64);
            batches += st == HK_OK;
        }
        char msg[1024];
        snprintf(msg, sizeof msg, "%s|%lld|%s", hk_status_name(st), (long long)batches,
                 hk_last_error());
        hk_status cst = hk_store_close(s);
        (void)cst;
        hk_model_free(m);
        if (write(fds[1], msg, strlen(msg)) < 0) _exit(5);
        _exit(0);
    }
    close(fds[1]);
    char msg[1024] = {0};
    size_t got = 0;
    ssize_t k;
    while ((k = read(fds[0], msg + got, sizeof msg - 1 - got)) > 0) got += (size_t)k;
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the writer under RLIMIT_FSIZE died (status %d, signal %d): %s", status,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0, msg);
    print_message("under a 24 MiB file-size limit: %s\n", msg);
    assert_non_null(strstr(msg, "HK_ERR_IO|"));
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "cannot reserve"));
    int64_t batches = strtoll(strchr(msg, '|') + 1, NULL, 10);
    assert_true(batches > 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size <= (24 << 20));
    hk_store *s;
    EXPECT_OK(hk_store_open(path, &s));
    hk_store_info info;
    EXPECT_OK(hk_store_get_info(s, &info));
    assert_int_equal(info.n_sequences, 16 * batches); /* every finished batch was committed */
    float *row = malloc((size_t)hk_store_row_elems(s, "unembed.hook_out") * 4);
    int64_t q = info.n_sequences - 1, p = 63;
    EXPECT_OK(hk_store_read(s, "unembed.hook_out", &q, &p, 1, row));
    free(row);
    EXPECT_OK(hk_store_close(s));
}

/* The CLI: cache writes what inspect summarizes; refusals and their exit statuses. */
static void test_cli(void **state) {
    (void)state;
    char ids[600], out[600], model[600];
    tmp_file("ids.txt", ids, sizeof ids);
    tmp_file("cli.h5", out, sizeof out);
    fixture_path("gpt2", model, sizeof model);
    unlink(out);
    FILE *fh = fopen(ids, "w");
    fprintf(fh, "1,2,3\n\n4 5 6 7\n8, 9\n10\n");
    fclose(fh);
    cli_result r = cli_run(g_exe, "cache", "--model", model, "--tokens-file", ids, "--hooks",
                           "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern", "--out", out,
                           "--batch", "2", "--dtype", "bf16", NULL);
    cli_expect_status(&r, 0, "cache");
    assert_string_equal(r.out, ""); /* stdout stays clean */
    cli_expect_contains(r.err, "4/4 sequences", "plain progress line off a terminal");
    cli_result_free(&r);
    r = cli_run(g_exe, "inspect", out, NULL);
    cli_expect_status(&r, 0, "inspect");
    cli_expect_contains(r.out, "sequences:   4", "inspect");
    cli_expect_contains(r.out, "rows:        10", "inspect");
    cli_expect_contains(r.out, "bfloat16", "inspect");
    cli_expect_contains(r.out, "[4, 4, 4, 4]", "pattern [sequence, head, ctx, ctx]");
    cli_expect_contains(r.out, "[10, 64]", "resid rows");
    /* the bytes of the 10 bf16 rows of 64, not the 2 MiB chunk they sit in */
    const char *line = cli_expect_contains(r.out, "blocks.0.hook_resid_post", "inspect");
    const char *eol = strchr(line, '\n');
    if (!strstr(line, "1.25 KiB") || strstr(line, "1.25 KiB") > eol)
        fail_msg("inspect: the stored bytes of [10, 64] bf16 are 1.25 KiB: %.*s",
                 (int)(eol - line), line);
    cli_result_free(&r);
    /* a 10-token store is small: chunks sized from the rows to come */
    struct stat sb;
    assert_int_equal(stat(out, &sb), 0);
    if (sb.st_size > 256 * 1024) fail_msg("a 10-token store takes %lld bytes", (long long)sb.st_size);
    r = cli_run(g_exe, "cache", "--model", model, "--tokens-file", ids, "--hooks",
                "blocks.*.hook_resid_post", "--out", out, NULL);
    cli_expect_status(&r, 1, "existing file without --force");
    cli_expect_contains(r.err, "exists", "existing file");
    cli_result_free(&r);
    r = cli_run(g_exe, "cache", "--model", model, "--tokens-file", ids, "--hooks",
                "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern", "--out", out, "--append",
                NULL);
    cli_expect_status(&r, 1, "append with another dtype");
    cli_expect_contains(r.err, "dtype differs", "append with another dtype");
    cli_result_free(&r);
    r = cli_run(g_exe, "cache", "--model", model, "--tokens-file", ids, "--hooks",
                "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern", "--out", out, "--append",
                "--dtype", "bf16", NULL);
    cli_expect_status(&r, 0, "append");
    cli_result_free(&r);
    r = cli_run(g_exe, "inspect", out, NULL);
    cli_expect_contains(r.out, "sequences:   8", "inspect after append");
    cli_result_free(&r);
    r = cli_run(g_exe, "cache", "--model", model, "--tokens-file", ids, "--hooks",
                "blocks.*.hook_resid_post", "--out", out, "--force", "--positions", "last", NULL);
    cli_expect_status(&r, 0, "--force");
    cli_result_free(&r);
    r = cli_run(g_exe, "inspect", out, NULL);
    cli_expect_contains(r.out, "rows:        4 (tokens)", "positions last");
    cli_result_free(&r);
    fh = fopen(ids, "w");
    fprintf(fh, "1,2,x\n");
    fclose(fh);
    r = cli_run(g_exe, "cache", "--model", model, "--tokens-file", ids, "--hooks",
                "blocks.*.hook_resid_post", "--out", out, "--force", NULL);
    cli_expect_status(&r, 2, "bad token id");
    cli_expect_contains(r.err, "line 1", "bad token line");
    cli_result_free(&r);
    r = cli_run(g_exe, "inspect", ids, NULL);
    cli_expect_status(&r, 1, "inspect of a text file");
    cli_result_free(&r);
    /* without patterns nothing is padded: the stored ctx does not depend on the lines a run
     * sees, and a later run with longer lines appends without restating --ctx */
    char grow[600];
    tmp_file("grow.h5", grow, sizeof grow);
    write_text(ids, "1,2\n3\n");
    r = cli_run(g_exe, "cache", "--model", model, "--tokens-file", ids, "--hooks",
                "blocks.0.hook_resid_post", "--out", grow, NULL);
    cli_expect_status(&r, 0, "cache of short lines");
    cli_result_free(&r);
    write_text(ids, "1,2,3,4,5,6\n");
    r = cli_run(g_exe, "cache", "--model", model, "--tokens-file", ids, "--hooks",
                "blocks.0.hook_resid_post", "--out", grow, "--append", NULL);
    cli_expect_status(&r, 0, "--append of a longer line");
    cli_result_free(&r);
    r = cli_run(g_exe, "inspect", grow, NULL);
    cli_expect_contains(r.out, "rows:        9 (tokens)", "inspect after a longer line");
    cli_result_free(&r);
    /* a results file: inspect describes it; answer / wrong are [prompts] with dims "prompt" */
    char res[600];
    tmp_file("patch_results.h5", res, sizeof res);
    r = cli_run(g_exe, "patch", "--model", model, "--clean", "1,2,3,4", "--clean", "5,6,7,8",
                "--corrupted", "1,2,9,4", "--corrupted", "5,6,9,8", "--answer", "7,8",
                "--wrong", "9", "--sweep", "resid_pre", "--out", res, NULL);
    cli_expect_status(&r, 0, "patch --out");
    cli_result_free(&r);
    r = cli_run(g_exe, "inspect", res, NULL);
    cli_expect_status(&r, 0, "inspect of a results file");
    cli_expect_contains(r.out, "kind:        patch", "inspect of a results file");
    cli_expect_contains(r.out, "resid_pre/values", "inspect of a results file");
    const char *names[] = {"  answer ", "  wrong "};
    for (int i = 0; i < 2; i++) {
        line = cli_expect_contains(r.out, names[i], "inspect: answers");
        eol = strchr(line, '\n');
        const char *shape = strstr(line, "[2]"), *dims = strstr(line, "prompt");
        if (!shape || shape > eol || !dims || dims > eol || (strstr(line, "pos") && strstr(line, "pos") < eol))
            fail_msg("inspect: expected %s as [2] with dims \"prompt\": %.*s", names[i],
                     (int)(eol - line), line);
    }
    cli_result_free(&r);
}

/* ---- refused commands leave the file as it was ---- */

/* Every refused `cache --append` (other hooks, dtype, positions, ctx, model; a disk that is
 * full at the start) and an append that stores nothing leave the file byte-identical, mtime
 * included. */
static void test_refusals_leave_file(void **state) {
    (void)state;
    char ids[600], out[600], model[600], other[600];
    tmp_file("refuse_ids.txt", ids, sizeof ids);
    tmp_file("refuse.h5", out, sizeof out);
    fixture_path("gpt2", model, sizeof model);
    fixture_path("neox", other, sizeof other);
    unlink(out);
    write_text(ids, "1,2,3\n4 5 6 7\n8, 9\n10\n11 12 13 14 15\n");
    const char *hooks = "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern";
    cli_result r = cli_run(g_exe, "cache", "--model", model, "--tokens-file", ids, "--hooks",
                           hooks, "--out", out, "--batch", "2", NULL);
    cli_expect_status(&r, 0, "cache");
    cli_result_free(&r);
    sleep(1); /* a rewrite within the same second would still show in the nanoseconds */
    file_snap before = snap(out);
    struct {
        const char *what, *a1, *a2, *a3, *a4, *model, *needle;
    } cases[] = {
        {"other hooks", "--hooks", "blocks.0.hook_resid_post", NULL, NULL, model, "hook list differs"},
        {"other dtype", "--hooks", hooks, "--dtype", "f16", model, "dtype differs"},
        {"other positions", "--hooks", hooks, "--positions", "last", model, "positions setting differs"},
        {"other ctx", "--hooks", hooks, "--ctx", "3", model, "ctx differs"},
        {"other model", "--hooks", "blocks.0.hook_resid_post", NULL, NULL, other, "differs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[] = {"cache", "--model", cases[i].model, "--tokens-file", ids, "--out",
                              out, "--append", cases[i].a1, cases[i].a2, cases[i].a3,
                              cases[i].a4, NULL};
        r = cli_run_argv(g_exe, argv);
        cli_expect_status(&r, 1, cases[i].what);
        cli_expect_contains(r.err, cases[i].needle, cases[i].what);
        cli_result_free(&r);
        expect_unchanged(out, &before, cases[i].what);
    }
    /* a disk full at the start (a file-size limit at the file's size): refused, unchanged */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)before.n;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    r = cli_run(g_exe, "cache", "--model", model, "--tokens-file", ids, "--hooks", hooks, "--out",
                out, "--append", NULL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    cli_expect_status(&r, 1, "append on a full disk");
    cli_expect_contains(r.err, "cannot reserve", "append on a full disk");
    cli_expect_contains(r.err, "File too large", "append on a full disk: errno text");
    cli_result_free(&r);
    expect_unchanged(out, &before, "append on a full disk");
    /* an append that stores nothing (open, close) */
    fixture f;
    fixture_load("gpt2", &f);
    const char *h[] = {"blocks.*.hook_resid_post", "blocks.0.attn.hook_pattern"};
    hk_store *s = NULL;
    EXPECT_OK(hk_store_append(out, f.m, h, 2, NULL, &s));
    EXPECT_OK(hk_store_close(s));
    expect_unchanged(out, &before, "an append of nothing");
    fixture_free(&f);
    free(before.bytes);
}

/* Copy dir/name to dir2/name, flipping the last byte when `flip`. */
static void copy_file(const char *dir, const char *dir2, const char *name, bool flip) {
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/%s", dir, name);
    snprintf(b, sizeof b, "%s/%s", dir2, name);
    file_snap s = snap(a);
    if (flip && s.n) s.bytes[s.n - 1] ^= 0x01;
    write_bytes(b, s.bytes, s.n);
    free(s.bytes);
}

/* The model is identified by its content: an identical copy in another folder may append
 * (its path is kept as information), a copy with one byte of a weight changed may not. */
static void test_model_identity(void **state) {
    (void)state;
    char model[600], same[600], changed[600], path[600];
    fixture_path("gpt2", model, sizeof model);
    tmp_file("gpt2_copy", same, sizeof same);
    tmp_file("gpt2_changed", changed, sizeof changed);
    assert_int_equal(mkdir(same, 0755), 0);
    assert_int_equal(mkdir(changed, 0755), 0);
    copy_file(model, same, "config.json", false);
    copy_file(model, same, "model.safetensors", false);
    copy_file(model, changed, "config.json", false);
    copy_file(model, changed, "model.safetensors", true);
    tmp_file("identity.h5", path, sizeof path);
    fixture f;
    fixture_load("gpt2", &f);
    const char *h1[] = {"blocks.0.hook_resid_post"};
    hk_store *s = NULL;
    EXPECT_OK(hk_store_create(path, f.m, h1, 1, NULL, &s));
    EXPECT_OK(hk_store_run(s, f.m, f.tokens, f.lengths, f.batch, f.seq));
    EXPECT_OK(hk_store_close(s));
    hk_model *copy = NULL, *other = NULL;
    EXPECT_OK(hk_model_load(same, &copy));
    EXPECT_OK(hk_model_load(changed, &other));
    EXPECT_OK(hk_store_append(path, copy, h1, 1, NULL, &s));
    EXPECT_OK(hk_store_run(s, copy, f.tokens, f.lengths, f.batch, f.seq));
    EXPECT_OK(hk_store_close(s));
    file_snap before = snap(path);
    expect_error(hk_store_append(path, other, h1, 1, NULL, &s), HK_ERR_INVALID_ARG,
                 "the model differs", "gpt2_changed", NULL);
    assert_null(s);
    expect_unchanged(path, &before, "append with a changed model");
    free(before.bytes);
    EXPECT_OK(hk_store_open(path, &s));
    hk_store_info info;
    EXPECT_OK(hk_store_get_info(s, &info));
    assert_int_equal(info.n_sequences, 2 * f.batch);
    assert_true(strncmp(info.model_id, "hk1:", 4) == 0);
    assert_non_null(strstr(info.model_path, "tests/fixtures/gpt2")); /* the creator's path */
    EXPECT_OK(hk_store_close(s));
    hk_model_free(copy);
    hk_model_free(other);
    fixture_free(&f);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(int argc, char **argv) {
    g_exe = cli_exe_from_argv(argc, argv);
    if (!g_exe) return 2;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/hk_store_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 2;
    }
    char model[600];
    fixture_path("gpt2", model, sizeof model);
    setenv("HK_STORE_MODEL", model, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_f32),     cmocka_unit_test(test_roundtrip_f16),
        cmocka_unit_test(test_roundtrip_bf16),    cmocka_unit_test(test_positions),
        cmocka_unit_test(test_patterns),          cmocka_unit_test(test_append_and_refusals),
        cmocka_unit_test(test_file_size_limit),   cmocka_unit_test(test_cli),
        cmocka_unit_test(test_refusals_leave_file), cmocka_unit_test(test_model_identity),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed) nftw(g_tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS); /* kept when a test failed */
    return failed;
}
