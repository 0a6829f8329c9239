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
# hookformer/ceiling near 1 means the forward costs little beyond its big sgemm calls (the
# ceiling is OpenBLAS threading bare calls itself; the forward threads its products its own way,
# so at 2+ threads the ratio compares the two ways as well and can dip below 1).
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

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "# machine: ${cpu:-unknown CPU}, $(nproc) cores online, $(uname -sr); $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"

"$BUILD_DIR/bench/bench_prefill" --threads "$THREADS" --tokens "$TOKENS" --reps "$REPS" |
    tee "$out/hookformer.txt"

peer_ok=1
"$PYTHON" bench/peer_prefill.py --threads "$THREADS" --tokens "$TOKENS" --reps "$REPS" \
    --all-logits | tee "$out/peer.txt" || peer_ok=0
[ "$peer_ok" = 1 ] || echo "run_prefill: the PyTorch peer did not run (needs torch + transformers)" >&2

echo "# load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# time ratios (ms/ms): hookformer/peer < 1 = hookformer faster; hookformer/ceiling near 1 = little beyond the sgemm calls; tok_per_s_hookformer/peer = the throughput ratio (peer ms / hookformer ms)"
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
            sp = (c in peer) ? sprintf("%.2f", peer[c] / hk[c]) : "n/a"
            printf "ratio threads=%s tokens=%s hookformer_ms=%s peer_ms=%s ceiling_ms=%s hookformer/peer=%s hookformer/ceiling=%s tok_per_s_hookformer/peer=%s\n",
                tt[1], tt[2], hk[c], (c in peer) ? peer[c] : "n/a", (c in ceil) ? ceil[c] : "n/a", rp, rc, sp
        }
    }
' "$out/hookformer.txt" "$out/peer.txt"

[ "$peer_ok" = 1 ]
