/* hookformer's thread pool (pool.h). One job at a time: the caller publishes (fn, arg, nt) and
 * bumps `gen`; worker i (1-based) runs share i when it has one, and every worker decrements
 * `pending` (so the job stays readable until all have read it); the
 * caller runs share 0 and waits for `pending` to reach 0. Both sides spin a bounded time
 * (HK_POOL_SPIN_US; not sched_yield: on a loaded machine a yield hands the core to another
 * process for its whole time slice, milliseconds, where a futex wake preempts it), then sleep
 * on a futex; the `sleepers` / `caller_asleep` counts let the other side skip the wake
 * syscall when nobody sleeps. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HK_POOL_MAX_WORKERS 255

static struct {
    pthread_mutex_t lock; /* held by the one caller running a job */
    atomic_uint gen;      /* futex word: one more per job */
    atomic_int pending;   /* futex word: workers that have not finished the current job */
    atomic_int sleepers;  /* workers asleep on gen */
    atomic_int caller_asleep;
    /* the job, written before gen is bumped, read by every worker before it acknowledges */
    atomic_uintptr_t fn, arg;
    atomic_int nt, part; /* the job's shares; shares 1..part-1 run on workers 1..part-1 */
    int workers; /* started so far; under lock */
    atomic_ulong on_workers;
} P = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* gen when worker i was started: it waits for the next job from there (reading gen at its
 * own start could already see the job it was started for, and skip it) */
static unsigned start_gen[HK_POOL_MAX_WORKERS + 1];

static _Thread_local bool in_job; /* a worker, or a caller inside its share: nested runs are serial */

static int futex(atomic_int *addr, int op, int val) {
    return (int)syscall(SYS_futex, (int *)addr, op, val, NULL, NULL, 0);
}

/* a spin-wait hint: lets the core's other hardware thread run, saves power */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int env_int(const char *name, int dflt, int lo, int hi) {
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    return *end || v < lo || v > hi ? dflt : (int)v;
}

int hk_pool_spin_us(void) {
    static atomic_int spin = -1;
    int v = atomic_load(&spin);
    if (v < 0) atomic_store(&spin, v = env_int("HK_POOL_SPIN_US", 50, 0, 1000000));
    return v;
}

bool hk_pool_selected(void) {
    static atomic_int sel = -1;
    int v = atomic_load(&sel);
    if (v < 0) {
        const char *s = getenv("HK_THREADS_TEAM");
        v = !(s && strcmp(s, "omp") == 0);
        atomic_store(&sel, v);
    }
    return v;
}

unsigned long hk_pool_jobs_on_workers(void) { return atomic_load(&P.on_workers); }

/* Spin (bounded) until *w != v; true when it changed. */
static bool spin_while_equal(atomic_uint *w, unsigned v, int spin_us) {
    if (spin_us <= 0) return atomic_load(w) != v;
    const double end = now_us() + spin_us;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (atomic_load_explicit(w, memory_order_acquire) != v) return true;
            cpu_relax();
        }
        if (now_us() >= end) return false;
    }
}

static void *worker(void *p) {
    const int id = (int)(intptr_t)p;
    in_job = true;
    const int spin = hk_pool_spin_us();
    unsigned seen = start_gen[id]; /* written before pthread_create: visible here */
    for (;;) {
        if (!spin_while_equal(&P.gen, seen, spin)) {
            atomic_fetch_add(&P.sleepers, 1);
            while (atomic_load(&P.gen) == seen)
                futex((atomic_int *)&P.gen, FUTEX_WAIT_PRIVATE, (int)seen);
            atomic_fetch_sub(&P.sleepers, 1);
        }
        seen = atomic_load_explicit(&P.gen, memory_order_acquire);
        /* stable until every worker has acknowledged this job below */
        const hk_pool_fn fn = (hk_pool_fn)atomic_load_explicit(&P.fn, memory_order_relaxed);
        void *arg = (void *)atomic_load_explicit(&P.arg, memory_order_relaxed);
        const int nt = atomic_load_explicit(&P.nt, memory_order_relaxed);
        if (id < atomic_load_explicit(&P.part, memory_order_relaxed)) {
            fn(arg, id, nt);
            atomic_fetch_add_explicit(&P.on_workers, 1, memory_order_relaxed);
        }
        if (atomic_fetch_sub(&P.pending, 1) == 1 && atomic_load(&P.caller_asleep))
            futex(&P.pending, FUTEX_WAKE_PRIVATE, 1);
    }
    return NULL;
}

/* A forked child has none of the parent's workers. */
static void after_fork_child(void) {
    pthread_mutex_init(&P.lock, NULL);
    P.workers = 0;
    atomic_store(&P.sleepers, 0);
    atomic_store(&P.pending, 0);
    atomic_store(&P.caller_asleep, 0);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void register_fork(void) { pthread_atfork(NULL, NULL, after_fork_child); }

/* Start workers up to `want` (under lock). Workers block every signal: the caller's thread
 * keeps handling them (the CLI's Ctrl-C). */
static void grow(int want) {
    if (want > HK_POOL_MAX_WORKERS) want = HK_POOL_MAX_WORKERS;
    if (P.workers >= want) return;
    pthread_once(&fork_once, register_fork);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    while (P.workers < want) {
        pthread_t t;
        start_gen[P.workers + 1] = atomic_load(&P.gen);
        if (pthread_create(&t, &at, worker, (void *)(intptr_t)(P.workers + 1)) != 0) break;
        P.workers++;
    }
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void run_serial(int from, int to, int nt, hk_pool_fn fn, void *arg) {
    const bool was = in_job;
    in_job = true;
    for (int t = from; t < to; t++) fn(arg, t, nt);
    in_job = was;
}

void hk_pool_run(int nt, hk_pool_fn fn, void *arg) {
    if (nt < 1) return;
    if (nt == 1 || in_job || omp_in_parallel() || pthread_mutex_trylock(&P.lock) != 0) {
        run_serial(0, nt, nt, fn, arg);
        return;
    }
    grow(nt - 1);
    const int on_workers = nt - 1 < P.workers ? nt - 1 : P.workers; /* shares 1..on_workers */
    if (on_workers == 0) {
        pthread_mutex_unlock(&P.lock);
        run_serial(0, nt, nt, fn, arg);
        return;
    }
    atomic_store(&P.pending, P.workers); /* every worker acknowledges */
    atomic_store_explicit(&P.fn, (uintptr_t)fn, memory_order_relaxed);
    atomic_store_explicit(&P.arg, (uintptr_t)arg, memory_order_relaxed);
    atomic_store_explicit(&P.nt, nt, memory_order_relaxed);
    /* workers past on_workers skip this job; the caller runs the shares no worker takes */
    atomic_store_explicit(&P.part, on_workers + 1, memory_order_relaxed);
    atomic_fetch_add(&P.gen, 1); /* seq_cst: publishes the job, then reads sleepers */
    if (atomic_load(&P.sleepers) > 0) futex((atomic_int *)&P.gen, FUTEX_WAKE_PRIVATE, INT_MAX);
    run_serial(0, 1, nt, fn, arg);
    run_serial(on_workers + 1, nt, nt, fn, arg);
    if (atomic_load(&P.pending) > 0) {
        const int spin = hk_pool_spin_us();
        const double end = now_us() + spin;
        while (atomic_load_explicit(&P.pending, memory_order_acquire) > 0 && now_us() < end)
            for (int i = 0; i < 64; i++) cpu_relax();
        atomic_store(&P.caller_asleep, 1);
        int v;
        while ((v = atomic_load(&P.pending)) > 0) futex(&P.pending, FUTEX_WAIT_PRIVATE, v);
        atomic_store(&P.caller_asleep, 0);
    }
    pthread_mutex_unlock(&P.lock);
}
