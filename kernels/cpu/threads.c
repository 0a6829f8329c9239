/* Thread counts for OpenBLAS and OpenMP, set together. */
#include "kernels.h"

#include <cblas.h>
#include <omp.h>

void hk_k_set_threads(int n) {
    if (n <= 0) return;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int hk_k_get_threads(void) { return omp_get_max_threads(); }
