/* --device / --weights-dtype / --weights (tools/device.h). */
#include "device.h"

#include <stdio.h>
#include <string.h>

#include "dist.h"

/* Under mpirun / srun a device without an index is the rank's by its local rank: one process
 * per device, round robin when a node runs more ranks than it has devices. Where the devices
 * cannot be counted (no CUDA module, no GPU) the index stays auto, and the load says why it
 * cannot open the device. */
static void place_rank(hk_load_opts *o) {
    const cli_dist_info *d = cli_dist();
    if (!d || o->device == HK_DEVICE_CPU || o->device_index != HK_DEVICE_INDEX_AUTO) return;
    int n = 0;
    if (hk_device_count(o->device, &n) != HK_OK || n <= 0) return;
    o->device_index = d->local_rank % n;
}

int cli_load_opts(const cli_args *a, hk_load_opts *out) {
    *out = hk_load_default_opts();
    const char *d = cli_str(a, "device"), *w = cli_str(a, "weights-dtype");
    if (d) {
        hk_status st = hk_device_parse(d, &out->device, &out->device_index);
        if (st != HK_OK) return cli_usage_error(a, "--%s", hk_last_error());
    }
    if (w) {
        if (!strcmp(w, "f32"))
            out->weights_dtype = HK_DTYPE_F32;
        else if (!strcmp(w, "f16"))
            out->weights_dtype = HK_DTYPE_F16;
        else if (!strcmp(w, "bf16"))
            out->weights_dtype = HK_DTYPE_BF16;
        else
            return cli_usage_error(a, "--weights-dtype '%s': expected f32, f16 or bf16", w);
    }
    const char *q = cli_str(a, "weights");
    if (q) {
        if (!strcmp(q, "blocks"))
            out->weights = HK_WEIGHTS_BLOCKS;
        else if (!strcmp(q, "f32"))
            out->weights = HK_WEIGHTS_F32;
        else
            return cli_usage_error(a, "--weights: \"%s\" is not a mode (expected blocks or f32)", q);
    }
    place_rank(out);
    return 0;
}

void cli_device_note(const char *command, const hk_model *m) {
    const cli_dist_info *d = cli_dist();
    if (!d) return;
    fprintf(stderr, "%s: rank %d of %d (local rank %d) runs on %s\n", command, d->rank, d->size,
            d->local_rank, hk_model_device_string(m));
}
