/* Sharded stores (hk_store_opts.corpus_ids, hk_store_set_corpus_ids, hk_store_join): shards
 * that hold a corpus's sequences out of order, joined, read back through the root file equal
 * the store of one process that ran the same batches in corpus order, bit for bit (token rows
 * and an attention pattern); and the refusals: a batch without its ids, ids for a store
 * without them, overlapping shards, shards of other settings, an existing root without force
 * (left byte-identical). The MPI runs that write such shards are tests/mpi. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixtures.h"
#include "hookformer.h"
#include "test_util.h"

#define N_SEQ 6
#define CTX 8
static const char *const HOOKS[] = {"blocks.*.hook_resid_post", "blocks.0.attn.hook_pattern"};
static const int64_t LENS[N_SEQ] = {3, 8, 5, 1, 7, 4};

static char g_tmp[512];
static hk_model *g_m;

static void path_of(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", g_tmp, name);
}

/* corpus sequence i: LENS[i] tokens, (7 * i + 3 * p + 1) % 50 at position p */
static void batch_of(const int64_t *ids, int64_t n, int32_t *tokens, int64_t *lengths) {
    for (int64_t b = 0; b < n; b++) {
        lengths[b] = LENS[ids[b]];
        for (int64_t p = 0; p < CTX; p++)
            tokens[b * CTX + p] = p < lengths[b] ? (int32_t)((7 * ids[b] + 3 * p + 1) % 50) : 0;
    }
}

/* A store over batches[k] (n_per[k] sequences each), with corpus ids when `ids`. */
static void write_store(const char *path, bool ids, const int64_t (*batches)[2],
                        const int64_t *n_per, int n_batches, const char *const *hooks,
                        size_t n_hooks) {
    hk_store_opts o = hk_store_default_opts();
    o.ctx = CTX;
    o.commit_seconds = 0;
    o.corpus_ids = ids;
    hk_store *s = NULL;
    EXPECT_OK(hk_store_create(path, g_m, hooks, n_hooks, &o, &s));
    for (int k = 0; k < n_batches; k++) {
        int32_t tokens[2 * CTX];
        int64_t lengths[2];
        batch_of(batches[k], n_per[k], tokens, lengths);
        if (ids) EXPECT_OK(hk_store_set_corpus_ids(s, batches[k], n_per[k]));
        EXPECT_OK(hk_store_run(s, g_m, tokens, lengths, n_per[k], CTX));
    }
    EXPECT_OK(hk_store_close(s));
}

static const int64_t IN_ORDER[3][2] = {{0, 1}, {2, 3}, {4, 5}};
static const int64_t TWO[3] = {2, 2, 2};

/* shard a: batches {4, 5} then {0, 1}; shard b: {2, 3} (the same batches, another order) */
static const int64_t SHARD_A[2][2] = {{4, 5}, {0, 1}};
static const int64_t SHARD_B[1][2] = {{2, 3}};

static void read_all(hk_store *s, const char *hook, int64_t n, float **out, int64_t *elems) {
    hk_store_info info;
    EXPECT_OK(hk_store_get_info(s, &info));
    const int64_t e = hk_store_row_elems(s, hook);
    assert_true(e > 0);
    bool per_seq = strstr(hook, "hook_pattern") != NULL;
    int64_t rows = per_seq ? info.n_sequences : info.n_rows;
    int64_t *seq = malloc((size_t)rows * sizeof *seq), *pos = malloc((size_t)rows * sizeof *pos);
    float *v = malloc((size_t)(rows * e) * sizeof *v);
    assert_non_null(seq), assert_non_null(pos), assert_non_null(v);
    int64_t r = 0;
    for (int64_t q = 0; q < info.n_sequences; q++) {
        int64_t len, first, fpos, nr;
        EXPECT_OK(hk_store_sequence(s, q, &len, &first, &fpos, &nr));
        if (per_seq) {
            seq[r++] = q;
            continue;
        }
        for (int64_t k = 0; k < nr; k++) seq[r] = q, pos[r++] = fpos + k;
    }
    assert_int_equal(r, rows);
    EXPECT_OK(hk_store_read(s, hook, seq, per_seq ? NULL : pos, (size_t)rows, v));
    free(seq), free(pos);
    *out = v;
    *elems = rows * e;
    (void)n;
}

static void test_join_equals_single(void **state) {
    (void)state;
    char single[600], a[600], b[600], root[600];
    path_of("single.h5", single, sizeof single);
    path_of("out.h5.rank0000", a, sizeof a);
    path_of("out.h5.rank0001", b, sizeof b);
    path_of("out.h5", root, sizeof root);
    write_store(single, false, IN_ORDER, TWO, 3, HOOKS, 2);
    write_store(a, true, SHARD_A, TWO, 2, HOOKS, 2);
    write_store(b, true, SHARD_B, TWO, 1, HOOKS, 2);
    const char *shards[] = {a, b};
    EXPECT_OK(hk_store_join(root, shards, 2, false));

    hk_store *x = NULL, *y = NULL;
    EXPECT_OK(hk_store_open(single, &x));
    EXPECT_OK(hk_store_open(root, &y));
    hk_store_info ix, iy;
    EXPECT_OK(hk_store_get_info(x, &ix));
    EXPECT_OK(hk_store_get_info(y, &iy));
    assert_int_equal(iy.n_sequences, N_SEQ);
    assert_int_equal(iy.n_rows, ix.n_rows);
    assert_string_equal(iy.dtype, ix.dtype);
    assert_int_equal(iy.n_hooks, ix.n_hooks);
    for (int64_t q = 0; q < N_SEQ; q++) {
        int64_t l1, f1, p1, n1, l2, f2, p2, n2;
        EXPECT_OK(hk_store_sequence(x, q, &l1, &f1, &p1, &n1));
        EXPECT_OK(hk_store_sequence(y, q, &l2, &f2, &p2, &n2));
        assert_int_equal(l1, LENS[q]);
        assert_true(l1 == l2 && f1 == f2 && p1 == p2 && n1 == n2);
    }
    int32_t t1[64], t2[64];
    assert_true(ix.n_rows <= 64);
    EXPECT_OK(hk_store_read_token_ids(x, 0, ix.n_rows, t1));
    EXPECT_OK(hk_store_read_token_ids(y, 0, iy.n_rows, t2));
    assert_memory_equal(t1, t2, (size_t)ix.n_rows * sizeof *t1);
    for (size_t i = 0; i < ix.n_hooks; i++) {
        hk_store_hook_info h;
        EXPECT_OK(hk_store_hook_at(x, i, &h));
        float *v1, *v2;
        int64_t e1, e2;
        read_all(x, h.name, N_SEQ, &v1, &e1);
        read_all(y, h.name, N_SEQ, &v2, &e2);
        assert_int_equal(e1, e2);
        assert_memory_equal(v1, v2, (size_t)e1 * sizeof *v1); /* bit for bit */
        free(v1), free(v2);
    }
    hk_store_close(x);
    hk_store_close(y);

    /* the shard alone: its corpus ids in the order it ran them */
    hk_store *sa = NULL;
    EXPECT_OK(hk_store_open(a, &sa));
    int64_t cid[4];
    EXPECT_OK(hk_store_corpus_ids(sa, cid));
    const int64_t want[4] = {4, 5, 0, 1};
    assert_memory_equal(cid, want, sizeof want);
    hk_store_close(sa);
    hk_store *plain = NULL;
    EXPECT_OK(hk_store_open(single, &plain));
    expect_error(hk_store_corpus_ids(plain, cid), HK_ERR_NOT_FOUND, "seq_corpus_id", NULL, NULL);
    hk_store_close(plain);

    /* an existing root is not replaced without force, and stays byte-identical */
    file_snap before = snap(root);
    expect_error(hk_store_join(root, shards, 2, false), HK_ERR_IO, "exists", NULL, NULL);
    expect_unchanged(root, &before, "a join onto an existing root without force");
    free(before.bytes);
    EXPECT_OK(hk_store_join(root, shards, 2, true));

    /* overlapping shards: a sequence twice */
    const char *twice[] = {a, b, a};
    char root2[600];
    path_of("twice.h5", root2, sizeof root2);
    expect_error(hk_store_join(root2, twice, 3, false), HK_ERR_FORMAT, "is in", a, NULL);
    assert_int_equal(access(root2, F_OK), -1);
}

static void test_refusals(void **state) {
    (void)state;
    char p[600], q[600], root[600];
    path_of("ids.h5", p, sizeof p);
    path_of("other.h5", q, sizeof q);
    path_of("mixed.h5", root, sizeof root);
    hk_store_opts o = hk_store_default_opts();
    o.ctx = CTX;
    o.corpus_ids = true;
    hk_store *s = NULL;
    EXPECT_OK(hk_store_create(p, g_m, HOOKS, 1, &o, &s));
    int32_t tokens[2 * CTX];
    int64_t lengths[2];
    const int64_t ids[2] = {0, 1};
    batch_of(ids, 2, tokens, lengths);
    /* a batch without its ids is not stored */
    expect_error(hk_store_run(s, g_m, tokens, lengths, 2, CTX), HK_ERR_INVALID_ARG,
                 "hk_store_set_corpus_ids", "batch of 2", NULL);
    const int64_t neg[1] = {-4};
    expect_error(hk_store_set_corpus_ids(s, neg, 1), HK_ERR_INVALID_ARG, "-4", NULL, NULL);
    EXPECT_OK(hk_store_set_corpus_ids(s, ids, 2));
    EXPECT_OK(hk_store_run(s, g_m, tokens, lengths, 2, CTX));
    EXPECT_OK(hk_store_close(s));
    /* ids for a store made without them */
    hk_store_opts plain = hk_store_default_opts();
    EXPECT_OK(hk_store_create(q, g_m, HOOKS, 1, &plain, &s));
    expect_error(hk_store_set_corpus_ids(s, ids, 2), HK_ERR_INVALID_ARG,
                 "without corpus ids", NULL, NULL);
    hk_store_close(s);
    /* an append keeps the file's ids: its batches need them too */
    hk_store_opts ao = hk_store_default_opts();
    EXPECT_OK(hk_store_append(p, g_m, HOOKS, 1, &ao, &s));
    const int64_t more[2] = {2, 3};
    batch_of(more, 2, tokens, lengths);
    EXPECT_OK(hk_store_set_corpus_ids(s, more, 2));
    EXPECT_OK(hk_store_run(s, g_m, tokens, lengths, 2, CTX));
    EXPECT_OK(hk_store_close(s));
    hk_store *r = NULL;
    int64_t cid[4];
    EXPECT_OK(hk_store_open(p, &r));
    EXPECT_OK(hk_store_corpus_ids(r, cid));
    const int64_t want[4] = {0, 1, 2, 3};
    assert_memory_equal(cid, want, sizeof want);
    hk_store_close(r);
    /* shards of other settings are not joined: a store with other hooks */
    char c[600];
    path_of("c.h5", c, sizeof c);
    const int64_t other[1][2] = {{4, 5}};
    const int64_t n_other[1] = {2};
    write_store(c, true, other, n_other, 1, HOOKS + 1, 1);
    const char *mixed[] = {p, c};
    expect_error(hk_store_join(root, mixed, 2, false), HK_ERR_FORMAT, "differ", "not shards",
                 NULL);
    /* a plain store is not a shard */
    const char *with_plain[] = {q};
    expect_error(hk_store_join(root, with_plain, 1, false), HK_ERR_NOT_FOUND, "seq_corpus_id",
                 NULL, NULL);
    assert_int_equal(access(root, F_OK), -1);
}

/* Shards whose sequences store no rows (positions past their ends): the root still opens as
 * a store, with its sequences and no rows. */
static void test_no_rows(void **state) {
    (void)state;
    char p[600], root[600];
    path_of("empty.h5.rank0000", p, sizeof p);
    path_of("empty.h5", root, sizeof root);
    hk_store_opts o = hk_store_default_opts();
    o.positions = "9:";
    o.corpus_ids = true;
    const char *hooks[] = {"blocks.0.hook_resid_post"};
    hk_store *s = NULL;
    EXPECT_OK(hk_store_create(p, g_m, hooks, 1, &o, &s));
    int32_t tokens[2 * CTX];
    int64_t lengths[2];
    const int64_t ids[2] = {3, 1};
    batch_of(ids, 2, tokens, lengths);
    EXPECT_OK(hk_store_set_corpus_ids(s, ids, 2));
    EXPECT_OK(hk_store_run(s, g_m, tokens, lengths, 2, CTX));
    EXPECT_OK(hk_store_close(s));
    const char *shards[] = {p};
    EXPECT_OK(hk_store_join(root, shards, 1, false));
    hk_store *r = NULL;
    EXPECT_OK(hk_store_open(root, &r));
    hk_store_info info;
    EXPECT_OK(hk_store_get_info(r, &info));
    assert_int_equal(info.n_sequences, 2);
    assert_int_equal(info.n_rows, 0);
    int64_t len;
    EXPECT_OK(hk_store_sequence(r, 0, &len, NULL, NULL, NULL));
    assert_int_equal(len, LENS[1]); /* corpus order: sequence 1 first */
    hk_store_close(r);
}

static int setup(void **state) {
    (void)state;
    make_tmpdir(g_tmp, sizeof g_tmp);
    g_m = fixture_model("gpt2");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    hk_model_free(g_m);
    remove_tree(g_tmp);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_equals_single),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_no_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
