/* --device and --weights-dtype (device_opts.h). */
#include "device_opts.h"

#include <string.h>

int cli_load_opts(const cli_args *a, hk_load_opts *o) {
    *o = hk_load_default_opts();
    const char *dev = cli_str(a, "device"), *wt = cli_str(a, "weights-dtype");
    if (dev) {
        if (!strcmp(dev, "cpu")) o->device = HK_DEVICE_CPU;
        else if (!strcmp(dev, "cuda")) o->device = HK_DEVICE_CUDA;
        else if (!strcmp(dev, "test")) o->device = HK_DEVICE_TEST;
        else
            return cli_usage_error(a, "--device: expected cpu or cuda (or test, the test-only "
                                      "backend), got '%s'",
                                   dev);
    }
    if (wt) {
        if (!strcmp(wt, "f32")) o->weights_dtype = HK_DTYPE_F32;
        else if (!strcmp(wt, "f16")) o->weights_dtype = HK_DTYPE_F16;
        else if (!strcmp(wt, "bf16")) o->weights_dtype = HK_DTYPE_BF16;
        else
            return cli_usage_error(a, "--weights-dtype: expected f32, f16 or bf16, got '%s'", wt);
        if (o->weights_dtype != HK_DTYPE_F32 && o->device != HK_DEVICE_CUDA)
            return cli_usage_error(a, "--weights-dtype %s needs --device cuda (the %s backend "
                                      "computes in f32)",
                                   wt, o->device == HK_DEVICE_TEST ? "test" : "CPU");
    }
    return 0;
}

int cli_model_load(const cli_args *a, const char *dir, bool with_status, hk_model **out) {
    *out = NULL;
    hk_load_opts o;
    int rc = cli_load_opts(a, &o);
    if (rc) return rc;
    hk_status st = hk_model_load_opts(dir, &o, out);
    if (st == HK_OK) return 0;
    if (with_status)
        return cli_runtime_error(a, "cannot load model '%s': %s (%s)", dir, hk_last_error(),
                                 hk_status_name(st));
    return cli_runtime_error(a, "cannot load model '%s': %s", dir, hk_last_error());
}
