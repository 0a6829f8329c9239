/* --device and --weights-dtype, shared by every command that loads a model (run, generate,
 * cache, patch, ablate, steer, lens, embed, estimate): parsed once here into hk_load_opts.
 *   --device cpu|cuda|cuda:N   where the forward runs (default cpu); cuda:N the GPU of
 *                          index N (cudaSetDevice's, relative to CUDA_VISIBLE_DEVICES), cuda
 *                          without N GPU 0, or under mpirun / srun the local rank's GPU
 *                          (local rank mod the node's GPUs: docs/SCALE.md, "Placement");
 *                          `test` / `test:N` (the test-only backend: CPU kernels on separate,
 *                          checked "device" memory; HK_TEST_DEVICES=N simulates N devices) is
 *                          accepted for tests and not advertised in --help
 *   --weights-dtype f32|f16|bf16   the device's copy of the weight matrices (default f32)
 *   --weights blocks|f32   a .gguf file's quantized linears: kept in their blocks for decode
 *                          (default) or all dequantized at load (hk_weights_mode) */
#ifndef HK_TOOLS_DEVICE_H
#define HK_TOOLS_DEVICE_H

#include "args.h"
#include "hookformer.h"

#define CLI_OPTS_DEVICE                                                                       \
    {"device", "cpu|cuda|cuda:N",                                                             \
     "where the forward runs: cpu (default), cuda (an NVIDIA GPU: GPU 0, under mpirun the "   \
     "local rank's) or cuda:N (GPU N)"},                                                      \
    {"weights-dtype", "f32|f16|bf16",                                                         \
     "the device's copy of the weight matrices (default f32; f16/bf16 need --device cuda)"},  \
    {"weights", "blocks|f32",                                                                 \
     "GGUF weights: blocks (default: quantized kernels for decode) or f32 (all dequantized)"}

/* The load options the command line asks for; a bad value is a usage error naming the valid
 * ones (the exit status it printed), else 0. */
int cli_load_opts(const cli_args *a, hk_load_opts *out);

/* Under mpirun / srun: one line on stderr saying where this rank's model runs
 * ("cache: rank 1 of 3 (local rank 1) runs on cuda:1"); nothing in a single process. */
void cli_device_note(const char *command, const hk_model *m);

#endif
