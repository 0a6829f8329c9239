/* hookformer's own thread pool for the small, frequent products of decode (docs/ARCHITECTURE.md,
 * "Threads for decode"): persistent workers that spin a bounded time after each job (the next
 * matrix-vector product of a decode step follows within microseconds), then sleep on a futex,
 * so an idle process spins nowhere. */
#ifndef HK_KERNELS_CPU_POOL_H
#define HK_KERNELS_CPU_POOL_H

#include <stdbool.h>

/* One share of a job: part t of nt (t = 0 runs on the calling thread). */
typedef void (*hk_pool_fn)(void *arg, int t, int nt);

/* Run fn(arg, t, nt) for every t in [0, nt) and return when all have returned. Workers are
 * started on first use (nt - 1 of them; more when a later call asks for more) and live until
 * process exit. Runs everything on the caller (t = 0..nt-1 in turn) when nt < 2, when called
 * from inside a pool job or an OpenMP region, when another thread holds the pool, or when a
 * worker cannot be started. */
void hk_pool_run(int nt, hk_pool_fn fn, void *arg);

/* Which team runs the decode products: the pool (true) or the OpenMP team (false).
 * HK_THREADS_TEAM=pool|omp chooses (read once); the default is the pool. */
bool hk_pool_selected(void);

/* Microseconds a worker (and the waiting caller) spins before sleeping: HK_POOL_SPIN_US, read
 * once, default 50; 0 sleeps at once. */
int hk_pool_spin_us(void);

/* The decode products' team: hk_pool_run when hk_pool_selected(), else an OpenMP parallel
 * region of nt threads (fn gets the team's actual size). */
void hk_k_parallel(int nt, hk_pool_fn fn, void *arg);
/* The OpenMP form alone: prefill's large products, which stay on the OpenMP team. */
void hk_k_omp_parallel(int nt, hk_pool_fn fn, void *arg);

/* Jobs run on workers since start (tests: proves the pool, not a serial fallback, ran). */
unsigned long hk_pool_jobs_on_workers(void);

#endif
