/* --weights blocks|f32: how a .gguf file's quantized weights are held (hk_load_opts), for
 * the subcommands that decode (run, generate). */
#ifndef HK_TOOLS_WEIGHTS_OPT_H
#define HK_TOOLS_WEIGHTS_OPT_H

#include "args.h"
#include "hookformer.h"

#define CLI_OPT_WEIGHTS                                                                        \
    {"weights", "MODE",                                                                        \
     "GGUF weights: blocks (default: quantized kernels for decode) or f32 (all dequantized)"}

/* The load options from --weights (absent: the library's defaults); a usage error (exit 2)
 * naming the value and the choices otherwise. */
int cli_load_opts(const cli_args *a, hk_load_opts *out);

#endif
