#!/usr/bin/env bash
# Store benchmark, side by side in one run on one disk: raw sequential writes (dd with fsync),
# hookformer's forward alone and with every layer's hook_resid_post streamed to HDF5
# (bench_store), and the TransformerLens peer (bench/peer_store.py: run_with_cache, then h5py or
# torch.save). GPT-2-small shape (bench_prefill --write-model), random weights and tokens.
#
#   bench/run_store.sh                                  # 64 prompts x 128 tokens, batch 8
#   PROMPTS=128 LEN=128 BATCH=8 THREADS=2 OUT=/data bench/run_store.sh
#
# OUT is the directory written to (default: build/bench-store, i.e. the repository's disk).
# Ratios: store/forward = time with the store / forward alone (1.0 = free); store-write/dd =
# the store's write throughput (bytes / time in its writes, commits and a final fsync) over dd's.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
PROMPTS=${PROMPTS:-64}
LEN=${LEN:-128}
BATCH=${BATCH:-8}
THREADS=${THREADS:-2}
PEER=${PEER:-/opt/venv-tl/bin/python}
OUT=${OUT:-$BUILD_DIR/bench-store}

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" bench/bench_store bench/bench_prefill >/dev/null
mkdir -p "$OUT"
MODEL=$OUT/gpt2-small
[ -f "$MODEL/config.json" ] || { mkdir -p "$MODEL" && "$BUILD_DIR/bench/bench_prefill" --write-model "$MODEL" >/dev/null; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "# machine: ${cpu:-unknown CPU}, $(nproc) cores, $(uname -sr); $(date -u '+%Y-%m-%d %H:%M UTC'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# disk: $(df -hT "$OUT" | tail -1 | awk '{print $1, $2, $3 " total,", $5 " free"}')"

# hookformer
hk=$("$BUILD_DIR/bench/bench_store" --model "$MODEL" --out "$OUT" --prompts "$PROMPTS" \
    --len "$LEN" --batch "$BATCH" --threads "$THREADS")
echo "$hk"
bytes=$(echo "$hk" | sed -n 's/^store .*bytes=\([0-9]*\).*/\1/p')

# raw disk: the same number of bytes, sequential 4 MiB blocks, fsync at the end
count=$(( (bytes + 4194303) / 4194304 ))
t0=$(date +%s.%N)
dd if=/dev/zero of="$OUT/dd.bin" bs=4M count="$count" conv=fsync status=none
t1=$(date +%s.%N)
rm -f "$OUT/dd.bin"
dd_mbps=$(awk -v b="$count" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f", b * 4194304 / 1e6 / (t1 - t0) }')
echo "dd           MBps=$dd_mbps bytes=$((count * 4194304))"

# TransformerLens
peer=""
if peer=$("$PEER" bench/peer_store.py --model "$MODEL" --out "$OUT" --prompts "$PROMPTS" \
        --len "$LEN" --batch "$BATCH" --threads "$THREADS"); then
    echo "$peer"
else
    echo "run_store: the TransformerLens peer did not run ($PEER)" >&2
fi

field() { echo "$1" | sed -n "s/^$2 .* $3=\([0-9.]*\).*/\1/p"; }
fwd=$(field "$hk" forward ms); st=$(field "$hk" store ms); sw=$(field "$hk" store-write MBps)
echo "# load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v fwd="$fwd" -v st="$st" -v sw="$sw" -v dd="$dd_mbps" 'BEGIN {
    printf "ratio hookformer store/forward = %.3f (aim <= 1.3)\n", st / fwd
    printf "ratio store-write/dd = %.3f (%.1f / %.1f MB/s; aim >= 0.7)\n", sw / dd, sw, dd }'
if [ -n "$peer" ]; then
    tf=$(field "$peer" tl-forward ms); th=$(field "$peer" tl-h5py ms); tt=$(field "$peer" tl-torchsave ms)
    awk -v st="$st" -v fwd="$fwd" -v tf="$tf" -v th="$th" -v tt="$tt" 'BEGIN {
        printf "ratio TL run_with_cache+h5py/TL forward = %.3f, +torch.save/TL forward = %.3f\n", th / tf, tt / tf
        printf "ratio hookformer store / TL run_with_cache+h5py = %.3f, / +torch.save = %.3f (time; < 1 = hookformer faster)\n", st / th, st / tt
        printf "ratio hookformer forward / TL forward = %.3f\n", fwd / tf }'
fi
