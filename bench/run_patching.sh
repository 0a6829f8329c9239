#!/usr/bin/env bash
# Patching sweeps beside TransformerLens, in the same run on the same weights: a resid_pre
# layer x position sweep and a head x layer sweep (attn.hook_z, all positions) for one
# clean/corrupted prompt pair, hookformer (bench/bench_patching, batched patches) then
# TransformerLens 3.9 (bench/peer_patching.py: patching.get_act_patch_resid_pre and
# get_act_patch_attn_head_out_all_pos, one forward per patch). Prints time ratios and the
# largest difference between the two sides' results.
#
#   MODEL=DIR bench/run_patching.sh          # an HF folder both sides load
#   THREADS=2 REPS=1 TL_PYTHON=/opt/venv-tl/bin/python BUILD_DIR=build
#
# Default MODEL: SmolLM2-135M-Instruct from scripts/fetch_models.sh, dequantized once by the
# peer (--export) into $HK_MODEL_CACHE/smollm2-f32, so both sides compute with the same f32
# weights. Default prompt pair (20 tokens, SmolLM2's tokenizer): an IOI sentence with the
# second mention of the subject swapped; answer " Mary", wrong " John".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
THREADS=${THREADS:-2}
REPS=${REPS:-1}
TL_PYTHON=${TL_PYTHON:-/opt/venv-tl/bin/python}
CACHE=${HK_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hookformer}
# "When Mary and John went to the store after a long day at work, John gave a drink to"
CLEAN=${CLEAN:-2427,5099,284,2322,3514,288,260,4249,990,253,986,1194,418,746,28,2322,4502,253,5968,288}
CORRUPTED=${CORRUPTED:-2427,5099,284,2322,3514,288,260,4249,990,253,986,1194,418,746,28,5099,4502,253,5968,288}
ANSWER=${ANSWER:-5099}
WRONG=${WRONG:-2322}

if [ -z "${MODEL:-}" ]; then
    MODEL=$CACHE/smollm2-f32
    if [ ! -f "$MODEL/model.safetensors" ]; then
        gguf=$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
        [ -f "$gguf" ] || scripts/fetch_models.sh smollm2 >/dev/null
        echo "# dequantizing $gguf into $MODEL (once)"
        "$TL_PYTHON" bench/peer_patching.py --model "$gguf" --export "$MODEL"
    fi
fi

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" bench/bench_patching >/dev/null
out=$(mktemp -d "${TMPDIR:-/tmp}/hk-run-patching-XXXXXX")
trap 'rm -rf "$out"' EXIT

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "# machine: ${cpu:-unknown CPU}, $(nproc) cores online; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# model $MODEL, threads $THREADS, reps $REPS (median)"
args=(--model "$MODEL" --clean "$CLEAN" --corrupted "$CORRUPTED" --answer "$ANSWER" --wrong "$WRONG"
      --threads "$THREADS" --reps "$REPS")
"$BUILD_DIR/bench/bench_patching" "${args[@]}" --out "$out/hk_" ${FULL:+--full} | tee "$out/hk.txt"
"$TL_PYTHON" bench/peer_patching.py "${args[@]}" --out "$out/tl_" | tee "$out/tl.txt"
echo "# load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
"$TL_PYTHON" - "$out" <<'PY'
import sys, re, numpy as np
d = sys.argv[1]
def parse(path):
    rows = {}
    for line in open(path):
        if line.startswith("#"):
            continue
        kv = dict(x.split("=", 1) for x in line.split()[1:])
        rows[kv["sweep"]] = kv
    return rows
hk, tl = parse(f"{d}/hk.txt"), parse(f"{d}/tl.txt")
for name in ("resid_pre", "head_out"):
    a = np.fromfile(f"{d}/hk_{name}.f32", dtype=np.float32)
    b = np.fromfile(f"{d}/tl_{name}.f32", dtype=np.float32)
    diff = float(np.abs(a - b).max()) if a.shape == b.shape else float("nan")
    h, t = float(hk[name]["s"]), float(tl[name]["s"])
    line = (f"ratio sweep={name} patches={hk[name]['patches']} hookformer_s={h:.2f} "
            f"transformer_lens_s={t:.2f} tl/hookformer={t / h:.2f} max_abs_diff={diff:.1e}")
    if f"{name}_full" in hk:
        hf = float(hk[f"{name}_full"]["s"])
        line += f" hookformer_full_forward_s={hf:.2f} tl/hookformer_full={t / hf:.2f}"
    print(line)
PY
