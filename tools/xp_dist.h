/* Sweeps under mpirun (`mpirun -n N hookformer patch|ablate ...`): every rank loads the model
 * and runs the forwards of its share (hk_sweep_part: forward f on rank f % N), rank 0 gathers
 * the shares' values, merges them (hk_sweep_merge: bit for bit the single-process numbers) and
 * alone prints, writes --out and --svg. A single process: the whole sweep, rank 0. */
#ifndef HK_TOOLS_XP_DIST_H
#define HK_TOOLS_XP_DIST_H

#include <stdbool.h>

#include "args.h"
#include "hookformer.h"

/* This process's share ({0, 0}: the whole sweep). */
hk_sweep_part xp_dist_share(void);
/* Whether this process prints and writes the outputs (a single process, or rank 0). */
bool xp_dist_root(void);
/* Under mpirun: rank 0 receives every rank's values and forwards and merges them into r (the
 * other ranks' r is left as it is). 0, or an exit status with the message printed. */
int xp_dist_merge(const cli_args *a, hk_sweep_result *r);

#endif
