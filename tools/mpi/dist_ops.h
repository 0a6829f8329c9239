/* The table of the MPI module (libhookformer_mpi.so, tools/mpi/dist_mpi.c), which tools/dist.c
 * dlopens when hookformer runs under an MPI launcher. The hookformer binary never links MPI:
 * without the module (a build without -Dmpi, or a plain run) nothing of MPI is loaded.
 * Every function returns 0, or nonzero with a message in the module's error buffer (err()). */
#ifndef HK_TOOLS_MPI_DIST_OPS_H
#define HK_TOOLS_MPI_DIST_OPS_H

#include <stddef.h>
#include <stdint.h>

#define HK_MPI_OPS_ABI 1
#define HK_MPI_OPS_SYMBOL "hk_mpi_ops_table"

typedef struct {
    int abi;                 /* HK_MPI_OPS_ABI */
    size_t size;             /* sizeof(hk_mpi_ops) */
    const char *(*err)(void);
    /* MPI_Init_thread (MPI_THREAD_SERIALIZED: rank 0's hand-out thread talks while its main
     * thread computes); rank and size of MPI_COMM_WORLD, local rank on this node */
    int (*init)(int *rank, int *size, int *local_rank);
    int (*finalize)(void);
    void (*abort_job)(int code); /* MPI_Abort: ends every rank */
    /* collectives; waits sleep between tests, so idle ranks leave the cores to busy ones */
    int (*barrier)(void);
    int (*bcast)(void *buf, size_t bytes, int root);
    int (*max_int)(int v, int *out);                       /* allreduce MAX */
    int (*gather)(const void *send, size_t bytes, void *recv_at_root); /* recv [size * bytes] */
    /* dynamic hand-out of items 0..n-1 by rank 0 (collective start and end); next() gives
     * each item to exactly one rank, -1 when none is left */
    int (*handout_start)(int64_t n);
    int (*handout_next)(int64_t *item);
    int (*handout_end)(void);
} hk_mpi_ops;

#endif
