/* --device and --weights-dtype, shared by the commands that run a model (run, generate,
 * cache, patch, ablate, steer, lens, embed): parsed once here, before the model is loaded,
 * into hk_load_opts; the load then goes to the chosen backend. */
#ifndef HK_TOOLS_DEVICE_OPTS_H
#define HK_TOOLS_DEVICE_OPTS_H

#include <stdbool.h>

#include "args.h"
#include "hookformer.h"

#define CLI_OPTS_DEVICE                                                                        \
    {"device", "DEV", "where the forward runs: cpu (default) or cuda (test: the test-only "   \
                      "backend)"},                                                             \
    {"weights-dtype", "T", "the weight matrices on the device: f32 (default), f16 or bf16 "     \
                           "(--device cuda)"}

/* hk_load_opts from --device / --weights-dtype: 0, or CLI_EXIT_USAGE after the message
 * (an unknown device or dtype with the valid values; f16/bf16 weights without a device that
 * keeps them). */
int cli_load_opts(const cli_args *a, hk_load_opts *o);

/* cli_load_opts, then hk_model_load_opts(dir): 0, the usage error, or CLI_EXIT_RUNTIME after
 * "cannot load model 'DIR': <why>" (with the status name when with_status). */
int cli_model_load(const cli_args *a, const char *dir, bool with_status, hk_model **out);

#endif
