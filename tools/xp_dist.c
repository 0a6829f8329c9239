/* Sweeps split over MPI ranks (xp_dist.h). */
#include "xp_dist.h"

#include <stdlib.h>

#include "dist.h"

hk_sweep_part xp_dist_share(void) {
    const cli_dist_info *d = cli_dist();
    return d ? (hk_sweep_part){d->rank, d->size} : (hk_sweep_part){0, 0};
}

bool xp_dist_root(void) {
    const cli_dist_info *d = cli_dist();
    return !d || d->rank == 0;
}

int xp_dist_merge(const cli_args *a, hk_sweep_result *r) {
    const cli_dist_info *d = cli_dist();
    if (!d) return 0;
    const size_t n = (size_t)r->patches, size = (size_t)d->size;
    const bool root = d->rank == 0;
    float *all = root ? malloc(size * (n ? n : 1) * sizeof *all) : NULL;       /* [size, n] */
    int64_t *fw = root ? malloc(size * sizeof *fw) : NULL;                    /* [size] */
    int rc = root && (!all || !fw) ? cli_runtime_error(a, "out of memory for %zu x %zu values",
                                                       size, n)
                                   : 0;
    /* every rank takes part in both gathers, even when rank 0 is out of memory */
    int bad = 0;
    if (cli_dist_max(rc, &bad)) rc = CLI_EXIT_RUNTIME;
    else if (bad) rc = bad;
    if (!rc && (cli_dist_gather(r->values, n * sizeof *r->values, all) ||
                cli_dist_gather(&r->forwards, sizeof r->forwards, fw)))
        rc = CLI_EXIT_RUNTIME;
    if (!rc && root && hk_sweep_merge(r, all, fw, (int64_t)size) != HK_OK)
        rc = cli_runtime_error(a, "%s", hk_last_error());
    free(all);
    free(fw);
    return rc;
}
