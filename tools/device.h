/* --device and --weights-dtype, shared by every command that loads a model (run, generate,
 * cache, patch, ablate, steer, lens, embed, estimate): parsed once here into hk_load_opts.
 *   --device cpu|cuda      where the forward runs (default cpu); `test` (the test-only
 *                          backend: CPU kernels on separate, checked "device" memory) is
 *                          accepted for tests and not advertised in --help
 *   --weights-dtype f32|f16|bf16   the device's copy of the weight matrices (default f32) */
#ifndef HK_TOOLS_DEVICE_H
#define HK_TOOLS_DEVICE_H

#include "args.h"
#include "hookformer.h"

#define CLI_OPTS_DEVICE                                                                       \
    {"device", "cpu|cuda", "where the forward runs: cpu (default) or cuda (an NVIDIA GPU)"},  \
    {"weights-dtype", "f32|f16|bf16",                                                         \
     "the device's copy of the weight matrices (default f32; f16/bf16 need --device cuda)"}

/* The load options the command line asks for; a bad value is a usage error naming the valid
 * ones (the exit status it printed), else 0. */
int cli_load_opts(const cli_args *a, hk_load_opts *out);

#endif
