/* Internal to kernels/cpu: matrix products through OpenBLAS on hookformer's one thread team.
 *
 * hookformer's threads are OpenMP's. The pthreads build of OpenBLAS (Debian's default) keeps
 * a pool of its own whose workers spin for ~0.1 s after every call, while idle OpenMP workers
 * spin after every parallel region: on a machine with as many cores as threads the two pools
 * take the cores from each other (2 threads ran slower than 1 on 2 cores). So OpenBLAS runs
 * single-threaded (hk_k_blas_init) and the products are split here across the OpenMP team by
 * output columns, each thread calling OpenBLAS on its slice. The same split serves the OpenMP
 * and serial builds of OpenBLAS (an OpenMP-built OpenBLAS runs a call made inside a parallel
 * region on the calling thread); with the OpenMP build, letting OpenBLAS thread whole calls
 * itself measured no better overall (faster at 128 tokens, slower at 1024). */
#ifndef HK_KERNELS_BLAS_INTERNAL_H
#define HK_KERNELS_BLAS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

/* Makes OpenBLAS single-threaded where it has a pool of its own (pthreads build); once per
 * process, thread-safe. Every entry point below calls it. */
void hk_k_blas_init(void);

/* c[m, n] = alpha · a[m, k] · op(b) + beta · c (row-major, strides lda/ldb/ldc);
 * op(b) = b [k, n] (b_trans false) or bᵀ with b [n, k] (b_trans true).
 * Split across the OpenMP team by columns of c when large; beta = 0 ignores c's contents. */
void hk_k_sgemm(bool b_trans, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
