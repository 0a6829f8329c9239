/* Distributed runs (docs/SCALE.md): `mpirun -n N hookformer cache|patch|ablate ...`.
 * Under an MPI launcher (Open MPI's mpirun, MPICH's mpiexec, Slurm's srun: detected by the
 * variables they set) main() calls cli_dist_start before those commands: it dlopens the MPI
 * module (libhookformer_mpi.so, built with -Dmpi) and initializes MPI. Everywhere else, and
 * for the other commands, nothing of MPI is loaded and cli_dist() is NULL: the commands run as
 * a single process. */
#ifndef HK_TOOLS_DIST_H
#define HK_TOOLS_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, size, local_rank;
} cli_dist_info;

/* The environment variable that names the module (overrides the build and install paths). */
#define CLI_MPI_MODULE_ENV "HK_MPI_MODULE"

/* Whether an MPI launcher started this process (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK). */
bool cli_dist_launched(void);
/* For the commands that split their work: load the module and init MPI. Returns 0, or an exit
 * status after printing why ("hookformer CMD: ..."): a launched run without the module fails,
 * it never runs N copies of the whole job. Other commands: 0, nothing done. */
int cli_dist_start(const char *command);
/* After the command: rc 0 on every rank finalizes; a rank that fails ends the whole job
 * (MPI_Abort with its status) so that no rank waits for it. Returns rc. */
int cli_dist_finish(int rc);
/* The run's ranks, or NULL for a single process. */
const cli_dist_info *cli_dist(void);

/* Collectives over every rank (0 or 1 with a message printed, naming the command). */
int cli_dist_barrier(void);
int cli_dist_bcast(void *buf, size_t bytes);            /* from rank 0 */
int cli_dist_max(int v, int *out);                       /* the largest v of all ranks */
int cli_dist_gather(const void *send, size_t bytes, void *recv_at_root);
/* Items 0..n-1 handed out by rank 0 to whichever rank asks first: start (collective), next
 * until it gives -1, end (collective). */
int cli_dist_handout_start(int64_t n);
int cli_dist_handout_next(int64_t *item);
int cli_dist_handout_end(void);

#endif
