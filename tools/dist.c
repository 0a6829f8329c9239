/* Distributed runs: launcher detection, the MPI module's loading, and thin wrappers that
 * print what failed (dist.h). */
#include "dist.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/dist_ops.h"

static const hk_mpi_ops *ops;
static cli_dist_info info;
static const char *cmd_name = "";
static bool active;

bool cli_dist_launched(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return true;
    }
    return false;
}

static bool splits_work(const char *command) {
    return strcmp(command, "cache") == 0 || strcmp(command, "patch") == 0 ||
           strcmp(command, "ablate") == 0;
}

static int load(void) {
    const char *tried[3];
    size_t n = 0;
    const char *env = getenv(CLI_MPI_MODULE_ENV);
    if (env && *env) {
        tried[n++] = env;
    } else {
#ifdef HK_MPI_MODULE_BUILD_PATH
        tried[n++] = HK_MPI_MODULE_BUILD_PATH;
#endif
#ifdef HK_MPI_MODULE_INSTALL_PATH
        tried[n++] = HK_MPI_MODULE_INSTALL_PATH;
#endif
    }
    if (n == 0) {
        fprintf(stderr, "hookformer %s: started by an MPI launcher, but this hookformer was "
                        "built without MPI (meson setup -Dmpi=enabled, with libopenmpi-dev); "
                        "%s=PATH names a libhookformer_mpi.so\n",
                cmd_name, CLI_MPI_MODULE_ENV);
        return 1;
    }
    char why[1024] = "";
    for (size_t i = 0; i < n; i++) {
        /* global: MPI's own plugins resolve against libmpi */
        void *h = dlopen(tried[i], RTLD_NOW | RTLD_GLOBAL);
        if (!h) {
            const char *e = dlerror();
            size_t len = strlen(why);
            snprintf(why + len, sizeof why - len, "%s%s", len ? "; " : "", e ? e : tried[i]);
            continue;
        }
        const hk_mpi_ops *t = dlsym(h, HK_MPI_OPS_SYMBOL);
        if (!t || t->abi != HK_MPI_OPS_ABI || t->size != sizeof(hk_mpi_ops)) {
            fprintf(stderr, "hookformer %s: %s: %s\n", cmd_name, tried[i],
                    !t ? "no " HK_MPI_OPS_SYMBOL " table (not hookformer's MPI module)"
                       : "the MPI module is of another hookformer version (table ABI)");
            return 1;
        }
        ops = t;
        return 0;
    }
    fprintf(stderr, "hookformer %s: cannot load the MPI module: %s\n", cmd_name, why);
    return 1;
}

int cli_dist_start(const char *command) {
    if (!cli_dist_launched() || !splits_work(command)) return 0;
    cmd_name = command;
    if (load()) return 1;
    if (ops->init(&info.rank, &info.size, &info.local_rank)) {
        fprintf(stderr, "hookformer %s: %s\n", cmd_name, ops->err());
        return 1;
    }
    active = true;
    return 0;
}

int cli_dist_finish(int rc) {
    if (!active) return rc;
    if (rc != 0) {
        fflush(stdout);
        fflush(stderr);
        if (info.size > 1) {
            fprintf(stderr, "hookformer %s: rank %d of %d failed (exit status %d); ending the "
                            "job\n",
                    cmd_name, info.rank, info.size, rc);
            ops->abort_job(rc);
        }
    }
    if (ops->finalize() && rc == 0) {
        fprintf(stderr, "hookformer %s: %s\n", cmd_name, ops->err());
        rc = 1;
    }
    active = false;
    return rc;
}

const cli_dist_info *cli_dist(void) { return active ? &info : NULL; }

static int check(int rc) {
    if (rc) fprintf(stderr, "hookformer %s: rank %d: %s\n", cmd_name, info.rank, ops->err());
    return rc ? 1 : 0;
}

int cli_dist_barrier(void) { return check(ops->barrier()); }
int cli_dist_bcast(void *buf, size_t bytes) { return check(ops->bcast(buf, bytes, 0)); }
int cli_dist_max(int v, int *out) { return check(ops->max_int(v, out)); }
int cli_dist_gather(const void *send, size_t bytes, void *recv_at_root) {
    return check(ops->gather(send, bytes, recv_at_root));
}
int cli_dist_handout_start(int64_t n) { return check(ops->handout_start(n)); }
int cli_dist_handout_next(int64_t *item) { return check(ops->handout_next(item)); }
int cli_dist_handout_end(void) { return check(ops->handout_end()); }
