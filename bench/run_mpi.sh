#!/usr/bin/env bash
# Distributed cache benchmark on one machine: the same `hookformer cache` run as one process
# and under `mpirun -n 1, 2, 4` (--oversubscribe where ranks outnumber cores), side by side in
# one run. The ranks split the corpus but share this machine's cores and disk: on a 2-core
# machine 2 ranks of 1 thread replace 1 process of 2 threads (no speed-up to expect; `single1`
# is the process with 1 thread, the per-rank baseline) and 4
# ranks oversubscribe the cores (the figures show the overhead of MPI, shards and the root,
# not scaling). docs/SCALE.md turns the per-token figures into a model for N nodes x G GPUs.
#
#   bench/run_mpi.sh                          # SmolLM2-135M (the default model), 16 x 32 tokens
#   MODEL=DIR PROMPTS=48 LEN=128 HOOKS='blocks.*.hook_resid_post' bench/run_mpi.sh
#
# Prints, per run: wall seconds (mpirun included), tokens/s, MB/s written, and the ratio of its
# wall time to the single process's (1.00 = the same; > 1 slower).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
MODEL=${MODEL:-$HOME/.cache/hookformer/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
PROMPTS=${PROMPTS:-16}
LEN=${LEN:-32}
BATCH=${BATCH:-4}
CORES=${CORES:-$(nproc)}
HOOKS=${HOOKS:-blocks.*.hook_resid_post}
OUT=${OUT:-$BUILD_DIR/bench-mpi}
HK=$BUILD_DIR/tools/hookformer

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR" -Dmpi=enabled
ninja -C "$BUILD_DIR" tools/hookformer >/dev/null
[ -e "$MODEL" ] || { echo "run_mpi: no model at $MODEL (scripts/fetch_models.sh)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "run_mpi: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/acts*.h5*

# the corpus: PROMPTS sequences of LEN random token ids (seeded)
ids=$OUT/ids.txt
awk -v n="$PROMPTS" -v len="$LEN" 'BEGIN { srand(18); for (i = 0; i < n; i++) {
    s = ""; for (p = 0; p < len; p++) s = s (p ? "," : "") int(1 + rand() * 40000); print s } }' >"$ids"

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "# machine: ${cpu:-unknown CPU}, $(nproc) cores, $(uname -sr); $(date -u '+%Y-%m-%d %H:%M UTC'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# model: $MODEL; $PROMPTS x $LEN tokens, batch $BATCH, hooks $HOOKS; $(mpirun --version | head -1)"

tokens=$((PROMPTS * LEN))
base=""
run() { # NAME RANKS THREADS [mpirun...]
    local name=$1 ranks=$2 threads=$3
    shift 3
    local out=$OUT/acts-$name.h5
    local t0 t1
    t0=$(date +%s.%N)
    "$@" "$HK" cache --model "$MODEL" --tokens-file "$ids" --hooks "$HOOKS" --out "$out" \
        --batch "$BATCH" --threads "$threads" 2>"$OUT/log-$name.txt" >/dev/null
    t1=$(date +%s.%N)
    local bytes
    bytes=$(find "$OUT" -maxdepth 1 -name "acts-$name.h5*" -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    local wall
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    [ -n "$base" ] || base=$wall
    awk -v n="$name" -v r="$ranks" -v th="$threads" -v w="$wall" -v t="$tokens" -v by="$bytes" \
        -v b="$base" -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN { printf "%-7s ranks=%d threads=%d wall=%.2fs tokens/s=%.0f MB/s=%.1f bytes=%d wall/single=%.2f load=%s\n",
        n, r, th, w, t / w, by / 1e6 / w, by, w / b, l }'
}
MPI=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
run single 1 "$CORES"
run single1 1 1
run mpi1 1 "$CORES" "${MPI[@]}" -n 1
run mpi2 2 $(( CORES / 2 > 0 ? CORES / 2 : 1 )) "${MPI[@]}" -n 2
run mpi4 4 $(( CORES / 4 > 0 ? CORES / 4 : 1 )) "${MPI[@]}" -n 4
per_token=$(awk -v f="$(wc -c <"$OUT/acts-single.h5")" -v t="$tokens" 'BEGIN { printf "%.0f", f / t }')
echo "# bytes per token (all hooks, single-process file): $per_token"
python3 - "$OUT"/acts-mpi4.h5.rank* <<'PY' || true
import sys, h5py
print("# sequences per shard (mpi4):", [len(h5py.File(p, "r")["seq_length"]) for p in sys.argv[1:]])
PY
rm -f "$OUT"/acts*.h5*
