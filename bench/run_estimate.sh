#!/usr/bin/env bash
# `hookformer estimate` against the measured peak RSS of `hookformer run` on SmolLM2-135M
# (Q4_1 GGUF, dequantized to f32 at load), one line per case: 2, 4096 and 10000 tokens, in one
# forward and in chunks of CHUNK. Each side is its own process of the same executable
# (bench/bench_estimate.c); ratio = estimate / measured.
#
#   bench/run_estimate.sh                        # tokens 2,4096,10000; chunk 1024; 2 threads
#   TOKENS=2,4096 CHUNK=512 BUILD_DIR=build bench/run_estimate.sh
#
# The 10000-token case in one forward runs for minutes on 2 cores.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
TOKENS=${TOKENS:-2,4096,10000}
CHUNK=${CHUNK:-1024}
THREADS=${THREADS:-2}

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" tools/hookformer bench/bench_estimate >/dev/null
model="$(scripts/fetch_models.sh smollm2)/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
export OMP_NUM_THREADS="$THREADS"

echo "# SmolLM2-135M-Instruct Q4_1 ($model), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $THREADS threads"
IFS=, read -ra lens <<<"$TOKENS"
for n in "${lens[@]}"; do
  "$BUILD_DIR/bench/bench_estimate" "$BUILD_DIR/tools/hookformer" --model "$model" --tokens "$n" \
    --threads "$THREADS"
  "$BUILD_DIR/bench/bench_estimate" "$BUILD_DIR/tools/hookformer" --model "$model" --tokens "$n" \
    --chunk "$CHUNK" --threads "$THREADS"
done
