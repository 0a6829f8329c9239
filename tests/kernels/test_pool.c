/* kernels/cpu/pool.c: every share of every job runs exactly once with the job's nt, on the
 * workers (not a serial fallback) when the pool is free; nested and concurrent callers fall
 * back to serial and still run every share; a forked child's pool works; the decode products
 * give the same numbers through the pool, the OpenMP team and one thread. Run twice by meson:
 * with the default spin and with HK_POOL_SPIN_US=0 (workers sleep at once, every job a wake). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/pool.h"

#define MAX_NT 8

typedef struct {
    atomic_int runs[MAX_NT];
    atomic_int bad_nt;
    int want_nt;
} count_job;

static void count_share(void *arg, int t, int nt) {
    count_job *j = arg;
    if (nt != j->want_nt || t < 0 || t >= nt) atomic_fetch_add(&j->bad_nt, 1);
    else atomic_fetch_add(&j->runs[t], 1);
}

static void check_once(count_job *j, int nt) {
    assert_int_equal(atomic_load(&j->bad_nt), 0);
    for (int t = 0; t < nt; t++) assert_int_equal(atomic_load(&j->runs[t]), 1);
}

/* Many jobs back to back, nt from 1 to MAX_NT (the pool grows), each share once. */
static void test_every_share_once(void **state) {
    (void)state;
    const unsigned long before = hk_pool_jobs_on_workers();
    for (int rep = 0; rep < 20000; rep++) {
        const int nt = 1 + rep % MAX_NT;
        count_job j = {.want_nt = nt};
        hk_pool_run(nt, count_share, &j);
        check_once(&j, nt);
    }
    /* 7/8 of the jobs have shares for workers: they ran there, not on the caller */
    assert_true(hk_pool_jobs_on_workers() - before >= 17000UL);
}

/* A job of fewer shares than workers: the idle workers take none, and the next wider job
 * still gets every share (the pool was grown to MAX_NT - 1 workers by the test above or here). */
static void test_narrow_after_wide(void **state) {
    (void)state;
    for (int rep = 0; rep < 2000; rep++) {
        const int nt = rep % 2 ? MAX_NT : 2;
        count_job j = {.want_nt = nt};
        hk_pool_run(nt, count_share, &j);
        check_once(&j, nt);
    }
}

typedef struct {
    atomic_int inner_runs;
    atomic_int outer_runs;
} nest_job;

static void inner_share(void *arg, int t, int nt) {
    (void)t;
    (void)nt;
    atomic_fetch_add(&((nest_job *)arg)->inner_runs, 1);
}

static void outer_share(void *arg, int t, int nt) {
    (void)t;
    (void)nt;
    nest_job *j = arg;
    atomic_fetch_add(&j->outer_runs, 1);
    hk_pool_run(3, inner_share, j); /* from inside a job: serial, on this thread */
}

static void test_nested_is_serial(void **state) {
    (void)state;
    nest_job j = {0};
    hk_pool_run(4, outer_share, &j);
    assert_int_equal(atomic_load(&j.outer_runs), 4);
    assert_int_equal(atomic_load(&j.inner_runs), 12);
}

static void *concurrent_caller(void *arg) {
    atomic_int *failures = arg;
    for (int rep = 0; rep < 3000; rep++) {
        count_job j = {.want_nt = 4};
        hk_pool_run(4, count_share, &j);
        for (int t = 0; t < 4; t++)
            if (atomic_load(&j.runs[t]) != 1) atomic_fetch_add(failures, 1);
        if (atomic_load(&j.bad_nt)) atomic_fetch_add(failures, 1);
    }
    return NULL;
}

/* Two threads calling at once (two models in two threads): one gets the pool, the other runs
 * serially; neither loses or repeats a share. */
static void test_concurrent_callers(void **state) {
    (void)state;
    atomic_int failures = 0;
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, concurrent_caller, &failures), 0);
    assert_int_equal(pthread_create(&b, NULL, concurrent_caller, &failures), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(atomic_load(&failures), 0);
}

/* After fork the child has no workers; its first job starts new ones and completes. */
static void test_fork_child(void **state) {
    (void)state;
    count_job warm = {.want_nt = 4};
    hk_pool_run(4, count_share, &warm); /* the parent's workers exist */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20); /* a hang fails the test instead of blocking it */
        const unsigned long before = hk_pool_jobs_on_workers();
        for (int rep = 0; rep < 100; rep++) {
            count_job j = {.want_nt = 4};
            hk_pool_run(4, count_share, &j);
            for (int t = 0; t < 4; t++)
                if (atomic_load(&j.runs[t]) != 1) _exit(2);
        }
        _exit(hk_pool_jobs_on_workers() - before >= 100 ? 0 : 3);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The decode products: f32 (hk_k_linear, 1 row) and Q8_0 blocks (hk_k_qlinear, 3 rows) give the
 * same bits on one thread, through the pool at 4 threads and through the OpenMP team (each
 * output is one thread's dot product either way). */
static void test_products_same(void **state) {
    (void)state;
    enum { IN = 256, OUT = 1024, N = 3 };
    float *x = malloc(sizeof(float) * N * IN), *w = malloc(sizeof(float) * OUT * IN);
    float *y1 = malloc(sizeof(float) * N * OUT), *y4 = malloc(sizeof(float) * N * OUT);
    assert_non_null(x);
    assert_non_null(w);
    assert_non_null(y1);
    assert_non_null(y4);
    uint32_t s = 12345;
    for (int i = 0; i < N * IN; i++) x[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < OUT * IN; i++) w[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    /* Q8_0 blocks of w: 32 weights, an f16 scale (here 1/127 of the row block's max as f16 1.0
     * times a power of two is exact enough: the test compares thread counts, not values) */
    const size_t blk = 34, ldq = (size_t)(IN / 32) * blk;
    uint8_t *q = calloc(OUT, ldq);
    assert_non_null(q);
    for (int o = 0; o < OUT; o++)
        for (int b = 0; b < IN / 32; b++) {
            uint8_t *p = q + (size_t)o * ldq + (size_t)b * blk;
            p[0] = 0x00;
            p[1] = 0x20; /* f16 0x2000 = 2^-7 */
            for (int i = 0; i < 32; i++) p[2 + i] = (uint8_t)(int8_t)(w[o * IN + b * 32 + i] * 200.0f);
        }
    const int before = hk_k_get_threads();
    for (int qrun = 0; qrun < 2; qrun++) {
        const int n = qrun ? N : 1;
        hk_k_set_threads(1);
        if (qrun) assert_true(hk_k_qlinear(x, n, IN, 8 /* Q8_0 */, q, ldq, NULL, OUT, y1, OUT));
        else hk_k_linear(x, n, IN, w, IN, false, NULL, OUT, y1, OUT);
        hk_k_set_threads(4);
        const unsigned long jobs = hk_pool_jobs_on_workers();
        if (qrun) assert_true(hk_k_qlinear(x, n, IN, 8, q, ldq, NULL, OUT, y4, OUT));
        else hk_k_linear(x, n, IN, w, IN, false, NULL, OUT, y4, OUT);
        if (hk_pool_selected()) assert_true(hk_pool_jobs_on_workers() > jobs);
        assert_memory_equal(y1, y4, sizeof(float) * (size_t)n * OUT);
    }
    hk_k_set_threads(before);
    free(x);
    free(w);
    free(y1);
    free(y4);
    free(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_share_once),  cmocka_unit_test(test_narrow_after_wide),
        cmocka_unit_test(test_nested_is_serial),  cmocka_unit_test(test_concurrent_callers),
        cmocka_unit_test(test_fork_child),        cmocka_unit_test(test_products_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
