#!/usr/bin/env bash
# Prefill benchmark, side by side: hookformer (bench_prefill), the bare sgemm ceiling, and the
# PyTorch eager peer (bench/peer_prefill.py), measured in the same run on the same machine, then
# one ratio line per (threads, tokens) case.
#
#   bench/run_prefill.sh                      # threads 1,2 x tokens 128,1024, 5 reps
#   THREADS=1,2,4 TOKENS=128,512 REPS=3 BUILD_DIR=build bench/run_prefill.sh
#
# Both sides compute logits for every position (the peer runs with --all-logits), since
# hk_model_forward does. Ratios are time ratios: hookformer/peer < 1 means hookformer is faster;
# hookformer/ceiling >= 1, and 1 would mean the forward costs no more than its big sgemm calls.
# Needs python3 with torch + transformers for the peer; exits 1 when the peer cannot run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
THREADS=${THREADS:-1,2}
TOKENS=${TOKENS:-128,1024}
REPS=${REPS:-5}
PYTHON=${PYTHON:-python3}

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" bench/bench_prefill >/dev/null

out=$(mktemp -d "${TMPDIR:-/tmp}/hk-run-prefill-XXXXXX")
trap 'rm -rf "$out"' EXIT

"$BUILD_DIR/bench/bench_prefill" --threads "$THREADS" --tokens "$TOKENS" --reps "$REPS" |
    tee "$out/hookformer.txt"

peer_ok=1
"$PYTHON" bench/peer_prefill.py --threads "$THREADS" --tokens "$TOKENS" --reps "$REPS" \
    --all-logits | tee "$out/peer.txt" || peer_ok=0
[ "$peer_ok" = 1 ] || echo "run_prefill: the PyTorch peer did not run (needs torch + transformers)" >&2

echo "# ratios are time ratios (ms/ms): hookformer/peer < 1 = hookformer faster; hookformer/ceiling >= 1"
awk '
    function field(key,   i) {
        for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) return substr($i, length(key) + 2)
        return ""
    }
    {
        c = field("threads") " " field("tokens")
        if ($1 == "hookformer") { hk[c] = field("ms"); order[++n] = c }
        else if ($1 == "sgemm-ceiling") ceil[c] = field("ms")
        else if ($1 == "peer") peer[c] = field("ms")
    }
    END {
        for (i = 1; i <= n; i++) {
            c = order[i]; split(c, tt, " ")
            rp = (c in peer) ? sprintf("%.2f", hk[c] / peer[c]) : "n/a"
            rc = (c in ceil) ? sprintf("%.2f", hk[c] / ceil[c]) : "n/a"
            printf "ratio threads=%s tokens=%s hookformer_ms=%s peer_ms=%s ceiling_ms=%s hookformer/peer=%s hookformer/ceiling=%s\n",
                tt[1], tt[2], hk[c], (c in peer) ? peer[c] : "n/a", (c in ceil) ? ceil[c] : "n/a", rp, rc
        }
    }
' "$out/hookformer.txt" "$out/peer.txt"

[ "$peer_ok" = 1 ]
