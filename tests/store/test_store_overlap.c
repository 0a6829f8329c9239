/* The store's writer thread (hk_store_opts.overlap): the files it writes are byte-identical
 * to those written inline; with a slow disk (a delay in each write job) end_batch returns
 * before the rows are written and the next batch's forward runs while the writer is busy;
 * a writer's failure comes back from the next call, with its message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <signal.h>
#include <time.h>

#include <cmocka.h>

#include "fixtures.h"
#include "hookformer.h"
#include "hooks/store.h"
#include "test_util.h"

static char g_tmp[512];

typedef struct {
    hk_model *m;
    int64_t batch, seq;
    int32_t *tokens;
    int64_t *lengths;
} fixture;

static fixture g_f;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The probe at hook_embed (first point of every forward): was the writer busy? */
typedef struct {
    hk_store *s;
    int fired, busy;
} probe;

static hk_hook_result on_embed(hk_tensor *act, const hk_hook_ctx *ctx, void *user) {
    (void)act;
    (void)ctx;
    probe *p = user;
    p->fired++;
    if (hk_store_writer_busy(p->s)) p->busy++;
    return HK_HOOK_CONTINUE;
}

static const char *const PATTERNS[] = {"blocks.*.hook_resid_post", "blocks.0.attn.hook_pattern",
                                       "hook_embed"};

/* 4 batches of the fixture's prompts into path; *end0: how long the first end_batch took. */
static void write_store(const char *path, bool overlap, double delay, probe *p, double *end0) {
    hk_store_opts o = hk_store_default_opts();
    o.overlap = overlap;
    o.ctx = g_f.seq;
    o.commit_seconds = 1e9; /* commits at close only: the same HDF5 calls either way */
    hk_store *s = NULL;
    assert_int_equal(hk_store_create(path, g_f.m, PATTERNS, 3, &o, &s), HK_OK);
    hk_store_writer_test_delay(s, delay);
    hk_hooks *hooks = NULL;
    assert_int_equal(hk_hooks_new(g_f.m, &hooks), HK_OK);
    p->s = s;
    assert_int_equal(hk_hooks_add(hooks, "hook_embed", on_embed, p, NULL), HK_OK);
    assert_int_equal(hk_store_attach(s, hooks), HK_OK);
    for (int b = 0; b < 4; b++) {
        assert_int_equal(hk_store_begin_batch(s, g_f.tokens, g_f.lengths, g_f.batch, g_f.seq),
                         HK_OK);
        assert_int_equal(hk_model_run(g_f.m, hooks, g_f.tokens, g_f.lengths, g_f.batch,
                                      g_f.seq, NULL),
                         HK_OK);
        const double t0 = now();
        assert_int_equal(hk_store_end_batch(s), HK_OK);
        if (b == 0) *end0 = now() - t0;
    }
    assert_int_equal(hk_store_close(s), HK_OK);
    hk_hooks_free(hooks);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void expect_same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(x, y, na);
    free(x);
    free(y);
}

static void path_of(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", g_tmp, name);
}

/* Inline and overlapped writes give the same bytes; only the overlapped one has a writer. */
static void test_overlap_same_bytes(void **state) {
    (void)state;
    char a[600], b[600];
    path_of("inline.h5", a, sizeof a);
    path_of("overlap.h5", b, sizeof b);
    probe pa = {0}, pb = {0};
    double ea, eb;
    write_store(a, false, 0, &pa, &ea);
    write_store(b, true, 0, &pb, &eb);
    assert_int_equal(pa.fired, 4);
    assert_int_equal(pa.busy, 0);
    expect_same_file(a, b);
    hk_store *r = NULL;
    assert_int_equal(hk_store_open(b, &r), HK_OK);
    hk_store_info info;
    assert_int_equal(hk_store_get_info(r, &info), HK_OK);
    assert_int_equal(info.n_sequences, 4 * g_f.batch);
    hk_store_close(r);
}

/* A slow disk: each write job sleeps 0.4 s. end_batch returns without waiting for it, and the
 * next batch's forward sees the writer busy; the file is still the inline one's. */
static void test_overlap_slow_writer(void **state) {
    (void)state;
    char a[600], b[600];
    path_of("inline2.h5", a, sizeof a);
    path_of("slow.h5", b, sizeof b);
    probe pa = {0}, pb = {0};
    double ea, eb;
    write_store(a, false, 0, &pa, &ea);
    const double t0 = now();
    write_store(b, true, 0.4, &pb, &eb);
    const double total = now() - t0;
    print_message("slow writer: %d of %d forwards overlapped a write; first end_batch %.3f s, "
                  "4 batches %.3f s\n",
                  pb.busy, pb.fired, eb, total);
    assert_int_equal(pb.fired, 4);
    assert_true(eb < 0.3);      /* the first batch's end did not wait for its 0.4 s write */
    assert_true(pb.busy >= 3);  /* batches 2..4 ran while the previous batch was written */
    assert_true(total >= 1.6); /* 4 writes of 0.4 s did happen */
    expect_same_file(a, b);
}

/* A write that fails in the writer thread (the file-size limit) comes back from the next
 * call naming the store, and the store takes no more rows. */
static void test_overlap_error(void **state) {
    (void)state;
    char p[600];
    path_of("limited.h5", p, sizeof p);
    hk_store_opts o = hk_store_default_opts();
    o.overlap = true;
    o.ctx = g_f.seq;
    hk_store *s = NULL;
    assert_int_equal(hk_store_create(p, g_f.m, PATTERNS, 3, &o, &s), HK_OK);
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit lim = old;
    lim.rlim_cur = 4096; /* below the next batch's reservation */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    hk_status st = HK_OK;
    int b = 0;
    for (; b < 3 && st == HK_OK; b++) st = hk_store_run(s, g_f.m, g_f.tokens, g_f.lengths,
                                                       g_f.batch, g_f.seq);
    if (st == HK_OK) st = hk_store_close(s), s = NULL;
    setrlimit(RLIMIT_FSIZE, &old);
    print_message("overlapped failure after %d batches: %s\n", b, hk_last_error());
    assert_int_not_equal(st, HK_OK);
    assert_non_null(strstr(hk_last_error(), p));
    if (s) {
        assert_int_not_equal(hk_store_run(s, g_f.m, g_f.tokens, g_f.lengths, g_f.batch, g_f.seq),
                             HK_OK);
        hk_store_close(s);
    }
}

static int setup(void **state) {
    (void)state;
    signal(SIGXFSZ, SIG_IGN);
    make_tmpdir(g_tmp, sizeof g_tmp);
    g_f.m = fixture_model("gpt2");
    hk_ckpt *ck = fixture_ckpt("gpt2", "reference.safetensors");
    const hk_st_tensor *ids = hk_ckpt_find(ck, "input_ids"), *lens = hk_ckpt_find(ck, "lengths");
    assert_non_null(ids);
    assert_non_null(lens);
    g_f.batch = ids->shape[0];
    g_f.seq = ids->shape[1];
    g_f.tokens = ids_from_i64(ids->data, g_f.batch * g_f.seq);
    g_f.lengths = malloc((size_t)g_f.batch * sizeof *g_f.lengths);
    memcpy(g_f.lengths, lens->data, (size_t)g_f.batch * 8);
    hk_ckpt_close(ck);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(g_f.tokens);
    free(g_f.lengths);
    hk_model_free(g_f.m);
    remove_tree(g_tmp);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlap_same_bytes),
        cmocka_unit_test(test_overlap_slow_writer),
        cmocka_unit_test(test_overlap_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
