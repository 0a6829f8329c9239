#!/usr/bin/env bash
# Attention TFLOP/s on the GPU (issue 8, point 5): bench_cuda_attention against the PyTorch
# peers (bench/peer_cuda_attention.py) on a Mistral-7B layer shape (32/8 heads, d_head 128),
# causal and with Mistral's 4096-token sliding window, at 4k and 16k tokens, in the same run.
# Ratios are hookformer/peer TFLOP/s: > 1 means hookformer is faster.
#
#   bench/run_cuda_attention.sh                       # TOKENS=4096,16384 WINDOWS=0,4096 bf16
#   DTYPES=bf16,f32 REPS=5 BUILD_DIR=build bench/run_cuda_attention.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
TOKENS=${TOKENS:-4096,16384}
WINDOWS=${WINDOWS:-0,4096}
DTYPES=${DTYPES:-bf16}
REPS=${REPS:-10}
PYTHON=${PYTHON:-python3}

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" bench/bench_cuda_attention >/dev/null

tflops() { sed -n 's/.*tflops=\([0-9.]*\).*/\1/p' <<<"$1"; }

IFS=, read -ra NS <<<"$TOKENS"
IFS=, read -ra WS <<<"$WINDOWS"
IFS=, read -ra DS <<<"$DTYPES"
for dt in "${DS[@]}"; do
  for n in "${NS[@]}"; do
    for w in "${WS[@]}"; do
      hk=$("$BUILD_DIR/bench/bench_cuda_attention" "$n" "$w" "$dt" "$REPS")
      echo "$hk"
      case "$hk" in *"no CUDA device"*) exit 0 ;; esac
      while IFS= read -r peer; do
        echo "$peer"
        pt=$(tflops "$peer")
        ht=$(tflops "$hk")
        if [ -n "$pt" ] && [ -n "$ht" ]; then
          name=$(sed -n 's/^impl=\([^ ]*\).*/\1/p' <<<"$peer")
          awk -v h="$ht" -v p="$pt" -v n="$n" -v w="$w" -v d="$dt" -v name="$name" \
            'BEGIN { printf "ratio n=%s window=%s dtype=%s hookformer/%s = %.2f\n", n, w, d, name, h / p }'
        fi
      done < <("$PYTHON" bench/peer_cuda_attention.py --n "$n" --window "$w" --dtype "$dt" --reps "$REPS")
    done
  done
done
