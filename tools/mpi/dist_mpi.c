/* The MPI module (dist_ops.h): the few MPI calls a distributed hookformer command makes.
 * Built only with -Dmpi (Open MPI, MPICH); loaded by tools/dist.c under an MPI launcher.
 *
 * Hand-out: rank 0 keeps a counter of the next item. Its own main thread takes items from
 * the counter directly; a thread on rank 0 answers the other ranks' requests (tag REQ, reply
 * tag ITEM: the item or -1). The main thread makes no MPI call while that thread runs, so
 * MPI_THREAD_SERIALIZED is enough. Waits poll with a short sleep instead of MPI's busy wait,
 * so that a rank with nothing to do leaves the cores to the ranks computing (which matters
 * when ranks outnumber cores). */
#include <mpi.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dist_ops.h"

enum { TAG_REQ = 7101, TAG_ITEM = 7102 };

static char err_buf[512];
static int my_rank, n_ranks;

static const char *mpi_err(void) { return err_buf; }

static int fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    if (code != MPI_SUCCESS && n >= 0 && (size_t)n < sizeof err_buf) {
        char s[MPI_MAX_ERROR_STRING];
        int len = 0;
        if (MPI_Error_string(code, s, &len) == MPI_SUCCESS)
            snprintf(err_buf + n, sizeof err_buf - (size_t)n, ": %s", s);
    }
    return 1;
}

static void nap(void) {
    struct timespec ts = {0, 200000}; /* 0.2 ms */
    nanosleep(&ts, NULL);
}

/* MPI_Wait without the busy loop */
static int wait_req(MPI_Request *r, MPI_Status *status) {
    for (;;) {
        int done = 0, rc = MPI_Test(r, &done, status ? status : MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return rc;
        if (done) return MPI_SUCCESS;
        nap();
    }
}

static int mpi_init(int *rank, int *size, int *local_rank) {
    int provided = 0, rc;
    if ((rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided)) != MPI_SUCCESS)
        return fail(rc, "MPI_Init_thread");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (provided < MPI_THREAD_SERIALIZED)
        return fail(MPI_SUCCESS, "the MPI library gives thread level %d; the hand-out needs "
                                 "MPI_THREAD_SERIALIZED (%d)",
                    provided, MPI_THREAD_SERIALIZED);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    MPI_Comm node;
    int lr = 0;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, my_rank, MPI_INFO_NULL,
                            &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &lr);
        MPI_Comm_free(&node);
    }
    *rank = my_rank;
    *size = n_ranks;
    *local_rank = lr;
    return 0;
}

static int mpi_finalize(void) {
    int rc = MPI_Finalize();
    return rc == MPI_SUCCESS ? 0 : fail(rc, "MPI_Finalize");
}

static void mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static int mpi_barrier(void) {
    MPI_Request r;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &r);
    if (rc == MPI_SUCCESS) rc = wait_req(&r, NULL);
    return rc == MPI_SUCCESS ? 0 : fail(rc, "MPI barrier");
}

static int mpi_bcast(void *buf, size_t bytes, int root) {
    MPI_Request r;
    int rc = bytes > (size_t)INT32_MAX ? MPI_ERR_COUNT
                                      : MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root,
                                                   MPI_COMM_WORLD, &r);
    if (rc == MPI_SUCCESS) rc = wait_req(&r, NULL);
    return rc == MPI_SUCCESS ? 0 : fail(rc, "MPI broadcast of %zu bytes", bytes);
}

static int mpi_max_int(int v, int *out) {
    MPI_Request r;
    int rc = MPI_Iallreduce(&v, out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &r);
    if (rc == MPI_SUCCESS) rc = wait_req(&r, NULL);
    return rc == MPI_SUCCESS ? 0 : fail(rc, "MPI allreduce");
}

static int mpi_gather(const void *send, size_t bytes, void *recv) {
    MPI_Request r;
    int rc = bytes > (size_t)INT32_MAX ? MPI_ERR_COUNT
                                      : MPI_Igather(send, (int)bytes, MPI_BYTE, recv, (int)bytes,
                                                    MPI_BYTE, 0, MPI_COMM_WORLD, &r);
    if (rc == MPI_SUCCESS) rc = wait_req(&r, NULL);
    return rc == MPI_SUCCESS ? 0 : fail(rc, "MPI gather of %zu bytes per rank", bytes);
}

/* ---- hand-out ---- */

static _Atomic int64_t next_item;
static int64_t n_items;
static pthread_t server;
static bool server_running;
static int server_rc;

static int64_t take(void) {
    int64_t k = atomic_fetch_add(&next_item, 1);
    return k < n_items ? k : -1;
}

static void *serve(void *arg) {
    (void)arg;
    int finished = 0, rc = MPI_SUCCESS;
    while (finished < n_ranks - 1 && rc == MPI_SUCCESS) {
        int dummy;
        MPI_Request r;
        MPI_Status status;
        rc = MPI_Irecv(&dummy, 1, MPI_INT, MPI_ANY_SOURCE, TAG_REQ, MPI_COMM_WORLD, &r);
        if (rc == MPI_SUCCESS) rc = wait_req(&r, &status);
        if (rc != MPI_SUCCESS) break;
        int64_t k = take();
        if (k < 0) finished++;
        rc = MPI_Send(&k, 1, MPI_INT64_T, status.MPI_SOURCE, TAG_ITEM, MPI_COMM_WORLD);
    }
    server_rc = rc;
    return NULL;
}

static int mpi_handout_start(int64_t n) {
    n_items = n;
    atomic_store(&next_item, 0);
    server_rc = MPI_SUCCESS;
    int rc = mpi_barrier(); /* every rank is ready before the first request */
    if (rc) return rc;
    if (my_rank == 0 && n_ranks > 1) {
        if (pthread_create(&server, NULL, serve, NULL) != 0)
            return fail(MPI_SUCCESS, "cannot start the hand-out thread on rank 0");
        server_running = true;
    }
    return 0;
}

static int mpi_handout_next(int64_t *item) {
    if (my_rank == 0) {
        *item = take();
        return 0;
    }
    int dummy = 0;
    MPI_Request r;
    int rc = MPI_Send(&dummy, 1, MPI_INT, 0, TAG_REQ, MPI_COMM_WORLD);
    if (rc == MPI_SUCCESS)
        rc = MPI_Irecv(item, 1, MPI_INT64_T, 0, TAG_ITEM, MPI_COMM_WORLD, &r);
    if (rc == MPI_SUCCESS) rc = wait_req(&r, NULL);
    return rc == MPI_SUCCESS ? 0 : fail(rc, "rank %d: asking rank 0 for work", my_rank);
}

static int mpi_handout_end(void) {
    if (server_running) {
        pthread_join(server, NULL);
        server_running = false;
        if (server_rc != MPI_SUCCESS) return fail(server_rc, "rank 0: the hand-out thread");
    }
    return mpi_barrier();
}

const hk_mpi_ops hk_mpi_ops_table = {
    .abi = HK_MPI_OPS_ABI,
    .size = sizeof(hk_mpi_ops),
    .err = mpi_err,
    .init = mpi_init,
    .finalize = mpi_finalize,
    .abort_job = mpi_abort,
    .barrier = mpi_barrier,
    .bcast = mpi_bcast,
    .max_int = mpi_max_int,
    .gather = mpi_gather,
    .handout_start = mpi_handout_start,
    .handout_next = mpi_handout_next,
    .handout_end = mpi_handout_end,
};
