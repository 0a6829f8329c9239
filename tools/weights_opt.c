#include "weights_opt.h"

#include <string.h>

int cli_load_opts(const cli_args *a, hk_load_opts *out) {
    *out = hk_load_default_opts();
    const char *v = cli_str(a, "weights");
    if (!v) return 0;
    if (strcmp(v, "blocks") == 0) {
        out->weights = HK_WEIGHTS_BLOCKS;
    } else if (strcmp(v, "f32") == 0) {
        out->weights = HK_WEIGHTS_F32;
    } else {
        return cli_usage_error(a, "--weights: \"%s\" is not a mode (expected blocks or f32)", v);
    }
    return 0;
}
