/* --device / --weights-dtype (tools/device.h). */
#include "device.h"

#include <string.h>

int cli_load_opts(const cli_args *a, hk_load_opts *out) {
    *out = hk_load_default_opts();
    const char *d = cli_str(a, "device"), *w = cli_str(a, "weights-dtype");
    if (d) {
        if (!strcmp(d, "cpu"))
            out->device = HK_DEVICE_CPU;
        else if (!strcmp(d, "cuda"))
            out->device = HK_DEVICE_CUDA;
        else if (!strcmp(d, "test"))
            out->device = HK_DEVICE_TEST;
        else
            return cli_usage_error(a, "--device '%s': expected cpu or cuda", d);
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
    return 0;
}
