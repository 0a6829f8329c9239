#!/usr/bin/env bash
# Sentence-embedding benchmark, side by side: hookformer (bench_embed: hk_model_embed) and the
# sentence-transformers peer (bench/peer_embed.py: SentenceTransformer.forward), on the same
# token ids in the same batches, measured in the same run; then one ratio line per case, and
# the largest 1 - cosine between the two sides' embeddings.
#
#   bench/run_embed.sh                               # all-MiniLM-L6-v2, 128 sequences, batch 32, 3 reps
#   N=512 BATCH=64 THREADS=2 REPS=3 bench/run_embed.sh
#
# The model is $HK_MODEL_CACHE/minilm (scripts/fetch_models.sh minilm). The ids are random
# WordPiece ids ([CLS] w... [SEP]) of 8 to 128 tokens, seeded, so every run embeds the same
# sequences. Needs python3 with torch + sentence-transformers for the peer.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
N=${N:-128}
BATCH=${BATCH:-32}
THREADS=${THREADS:-1}
REPS=${REPS:-3}
PYTHON=${PYTHON:-python3}
CACHE=${HK_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hookformer}
MODEL=${MODEL:-$CACHE/minilm}

[ -f "$MODEL/model.safetensors" ] || { echo "run_embed: no model at $MODEL (scripts/fetch_models.sh minilm)" >&2; exit 1; }
[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" bench/bench_embed tools/hookformer >/dev/null

out=$(mktemp -d "${TMPDIR:-/tmp}/hk-run-embed-XXXXXX")
trap 'rm -rf "$out"' EXIT
"$PYTHON" - "$N" "$out/ids.txt" <<'PY'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
with open(path, "w") as f:
    for _ in range(n):
        k = rng.randint(6, 126)
        f.write(" ".join(map(str, [101] + [rng.randint(1996, 29611) for _ in range(k)] + [102])) + "\n")
PY

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "# machine: ${cpu:-unknown CPU}, $(nproc) cores online; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
args=(--model "$MODEL" --ids "$out/ids.txt" --batch "$BATCH" --threads "$THREADS" --reps "$REPS")
hk=$("$BUILD_DIR/bench/bench_embed" "${args[@]}")
echo "$hk"
peer=$("$PYTHON" bench/peer_embed.py "${args[@]}" --save "$out/peer.npy" 2>/dev/null)
echo "$peer"
"$BUILD_DIR/tools/hookformer" embed --model "$MODEL" --tokens-file "$out/ids.txt" --out "$out/hk.npy" >/dev/null
"$PYTHON" - "$out/hk.npy" "$out/peer.npy" <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]).astype(np.float64), np.load(sys.argv[2]).astype(np.float64)
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print(f"agreement: {len(a)} embeddings, max 1 - cosine {1 - cos.min():.3g}")
PY
ms() { sed -n 's/.* ms=\([0-9.]*\).*/\1/p' <<<"$1"; }
awk -v h="$(ms "$hk")" -v p="$(ms "$peer")" -v t="$THREADS" -v b="$BATCH" -v n="$N" \
    'BEGIN { printf "ratio threads=%s batch=%s sequences=%s hookformer_ms=%s peer_ms=%s hookformer/peer=%.2f seq_per_s_hookformer/peer=%.2f\n", t, b, n, h, p, h / p, p / h }'
echo "# load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
