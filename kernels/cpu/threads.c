/* Thread counts: hookformer's threads are the OpenMP team (and, for decode's products, the
 * pool of pool.c of as many threads); OpenBLAS runs single-threaded where it has a pool of its
 * own (blas_internal.h says why). */
#include "blas_internal.h"
#include "kernels.h"
#include "pool.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static int blas_parallel; /* openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP */

static void blas_single_threaded(void) {
    /* The OpenMP build needs nothing (and its openblas_set_num_threads would set the OpenMP
     * team size too). */
    if (blas_parallel == 1) openblas_set_num_threads(1);
}

static void blas_first_use(void) {
    blas_parallel = openblas_get_parallel();
    blas_single_threaded();
}

void hk_k_blas_init(void) { pthread_once(&blas_once, blas_first_use); }

void hk_k_set_threads(int n) {
    hk_k_blas_init();
    if (n <= 0) return;
    blas_single_threaded(); /* again: someone may have set OpenBLAS's count since */
    omp_set_num_threads(n);
}

int hk_k_get_threads(void) { return omp_get_max_threads(); }

void hk_k_omp_parallel(int nt, hk_pool_fn fn, void *arg) {
#pragma omp parallel num_threads(nt)
    fn(arg, omp_get_thread_num(), omp_get_num_threads());
}

void hk_k_parallel(int nt, hk_pool_fn fn, void *arg) {
    if (hk_pool_selected()) hk_pool_run(nt, fn, arg);
    else hk_k_omp_parallel(nt, fn, arg);
}
