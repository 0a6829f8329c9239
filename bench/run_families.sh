#!/usr/bin/env bash
# Wave-2 families, prefill side by side: a Gemma-2-2B-shaped model (2 layers) and a
# Mixtral-shaped one (1/4 scale, 2 layers; bench/peer_longctx.py --family) through hookformer
# (bench_longctx: one feed of all tokens, last-position logits) and transformers eager and
# sdpa (bench/peer_longctx.py), each case in its own process (peak RSS its own), in the same
# run; then the routed Mixtral forward beside the same weights with every expert on every
# token (mixtral_dense: num_experts_per_tok = 8), the cost routing must stay well under.
#
#   bench/run_families.sh                       # 512 tokens, 2 threads, 1 rep
#   TOKENS=1024 REPS=3 bench/run_families.sh
#
# Ratios are hookformer/peer (< 1: hookformer faster / smaller). Needs python3 with torch +
# transformers (the peers also write the models); exits 1 without.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
TOKENS=${TOKENS:-512}
THREADS=${THREADS:-2}
REPS=${REPS:-1}
PYTHON=${PYTHON:-python3}
MODEL_DIR=${MODEL_DIR:-${TMPDIR:-/tmp}/hk-family-models}

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" bench/bench_longctx >/dev/null
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"

for f in gemma2 mixtral mixtral_dense; do
    if [ ! -f "$MODEL_DIR/$f/model.safetensors" ]; then
        mkdir -p "$MODEL_DIR/$f"
        "$PYTHON" bench/peer_longctx.py --make-model "$MODEL_DIR/$f" --family "$f" >&2 ||
            { echo "run_families: cannot build the models (needs torch + transformers)" >&2; exit 1; }
    fi
done

field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $TOKENS tokens, $THREADS threads, fp32"
echo "| model | implementation | prefill | tok/s | peak RSS | time hk/impl | peak RSS hk/impl |"
echo "|---|---|---:|---:|---:|---:|---:|"
declare -A hk_ms hk_rss
for f in gemma2 mixtral mixtral_dense; do
    m="$MODEL_DIR/$f"
    line=$("$BUILD_DIR/bench/bench_longctx" --model "$m" --tokens "$TOKENS" --chunk "$TOKENS" \
        --threads "$THREADS" --reps "$REPS" --mem-cap-gib 0 2>/dev/null || true)
    hk_ms[$f]=$(field "$line" ms)
    hk_rss[$f]=$(field "$line" peak_rss_mib)
    [ -n "${hk_ms[$f]}" ] || { echo "| $f | hookformer | error | | | | |"; continue; }
    awk -v f="$f" -v ms="${hk_ms[$f]}" -v r="${hk_rss[$f]}" -v n="$TOKENS" \
        'BEGIN { printf "| %s | hookformer | %.2f s | %.0f | %.0f MiB | | |\n", f, ms / 1000, n / (ms / 1000), r }'
    [ "$f" = mixtral_dense ] && continue
    for p in eager sdpa; do
        line=$("$PYTHON" bench/peer_longctx.py --model "$m" --attn "$p" --tokens "$TOKENS" \
            --threads "$THREADS" --reps "$REPS" --mem-cap-gib 0 2>/dev/null || true)
        st=$(field "$line" status)
        if [ "$st" != ok ]; then
            echo "| $f | transformers $p | ${st:-error (not supported)} | | | | |"
            continue
        fi
        awk -v f="$f" -v p="$p" -v ms="$(field "$line" ms)" -v r="$(field "$line" peak_rss_mib)" \
            -v hms="${hk_ms[$f]}" -v hr="${hk_rss[$f]}" -v n="$TOKENS" \
            'BEGIN { printf "| %s | transformers %s | %.2f s | %.0f | %.0f MiB | %.2f | %.2f |\n", f, p, ms / 1000, n / (ms / 1000), r, hms / ms, hr / r }'
    done
done
if [ -n "${hk_ms[mixtral]}" ] && [ -n "${hk_ms[mixtral_dense]}" ]; then
    awk -v a="${hk_ms[mixtral]}" -v b="${hk_ms[mixtral_dense]}" \
        'BEGIN { printf "\nMoE routing: top-2 of 8 / every expert on every token = %.2f (hookformer)\n", a / b }'
fi
