#!/usr/bin/env bash
# Long-context prefill, side by side: hookformer (bench_longctx: session, chunked prefill,
# rolling KV buffer on sliding-window layers) and transformers with eager and sdpa attention,
# on the same small Mistral-shaped model (bench/peer_longctx.py --make-model: 4 layers,
# d_model 256, 8/2 heads, d_mlp 512, vocab 1000, random fp32 weights), with and without a
# sliding window, in the same run. Every case runs in its own process, one after the other,
# so that its peak RSS (VmHWM: the whole process) is its own.
#
#   bench/run_longctx.sh                          # tokens 4096,16384,32768; W=1024; 2 threads
#   TOKENS=4096 REPS=3 BUILD_DIR=build bench/run_longctx.sh
#
# Both sides prefill as generation does: a KV cache is kept and only the last position's
# logits are computed. The transformers cases are capped at MEM_CAP_GIB of address space above
# their size after setup (RLIMIT_AS): eager attention materializes [heads, N, N] scores and,
# past the cap, ends with status=oom instead of exhausting the machine; a case running longer
# than CASE_TIMEOUT seconds is stopped (timeout). Ratios are hookformer/peer: time < 1 means
# hookformer is faster, RSS < 1 means it holds less memory.
# Needs python3 with torch + transformers (the peers also write the model); exits 1 without.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
TOKENS=${TOKENS:-4096,16384,32768}
WINDOW=${WINDOW:-1024}
CHUNK=${CHUNK:-2048}
THREADS=${THREADS:-2}
REPS=${REPS:-3}           # timed runs (median) for tokens <= 4096
REPS_LONG=${REPS_LONG:-1} # and above
PEERS=${PEERS:-eager,sdpa}
MEM_CAP_GIB=${MEM_CAP_GIB:-12}
CASE_TIMEOUT=${CASE_TIMEOUT:-1800}
PYTHON=${PYTHON:-python3}
MODEL_DIR=${MODEL_DIR:-${TMPDIR:-/tmp}/hk-longctx-models}

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" bench/bench_longctx >/dev/null

export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"

for w in 0 "$WINDOW"; do
    d="$MODEL_DIR/w$w"
    if [ ! -f "$d/model.safetensors" ]; then
        mkdir -p "$d"
        "$PYTHON" bench/peer_longctx.py --make-model "$d" --window "$w" >&2 ||
            { echo "run_longctx: cannot build the model (needs torch + transformers)" >&2; exit 1; }
    fi
done

results=$(mktemp "${TMPDIR:-/tmp}/hk-longctx-XXXXXX")
trap 'rm -f "$results"' EXIT

# run_case LABEL CMD...: one line "LABEL ... status=..." into $results (and on the terminal).
run_case() {
    local label=$1 line rc=0
    shift
    line=$(timeout "$CASE_TIMEOUT" "$@" 2>>"$results.log") || rc=$?
    if [ -z "$line" ]; then
        case $rc in
            124) line="$label status=timeout limit_s=$CASE_TIMEOUT" ;;
            137) line="$label status=killed" ;;
            *) line="$label status=error rc=$rc" ;;
        esac
    fi
    # the 1-minute load average at the end of the case: other work on the machine slows it
    echo "$line load1=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$results"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for n in ${TOKENS//,/ }; do
    reps=$REPS
    [ "$n" -le 4096 ] || reps=$REPS_LONG
    for w in 0 "$WINDOW"; do
        m="$MODEL_DIR/w$w"
        run_case "hookformer tokens=$n window=$w" "$BUILD_DIR/bench/bench_longctx" --model "$m" \
            --tokens "$n" --chunk "$CHUNK" --threads "$THREADS" --reps "$reps" \
            --mem-cap-gib "$MEM_CAP_GIB"
        for p in ${PEERS//,/ }; do
            run_case "peer attn=$p tokens=$n window=$w" "$PYTHON" bench/peer_longctx.py \
                --model "$m" --attn "$p" --tokens "$n" --threads "$THREADS" --reps "$reps" \
                --mem-cap-gib "$MEM_CAP_GIB"
        done
    done
done
rm -f "$results.log"

echo
echo "Prefill, fp32, $THREADS threads; hookformer: chunks of $CHUNK; peers capped at $MEM_CAP_GIB GiB above setup."
echo "prefill: median wall time; peak RSS: VmHWM of the whole process; prefill Δ RSS: peak minus"
echo "the RSS before the first timed prefill (model loaded, warmed up). Ratios hookformer/impl:"
echo "< 1 = hookformer faster / smaller. load: the machine's 1-minute load average after the case."
echo
awk '
    function field(key,   i) {
        for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) return substr($i, length(key) + 2)
        return ""
    }
    function ratio(c, p, a, b) {
        if (p == "hookformer" || st[c, "hookformer"] != "ok" || st[c, p] != "ok" || b == 0) return "-"
        return sprintf("%.2f", a / b)
    }
    {
        w = field("window"); if (w == "") w = 0
        c = field("tokens") " " w
        p = $1 == "hookformer" ? "hookformer" : field("attn")
        if (!(c in seen)) { seen[c] = 1; order[++n] = c; np[c] = 0 }
        impl[c, ++np[c]] = p
        st[c, p] = field("status"); ms[c, p] = field("ms") + 0
        rss[c, p] = field("peak_rss_mib") + 0; dl[c, p] = rss[c, p] - field("base_rss_mib")
        top[c, p] = field("top1"); ld[c, p] = field("load1")
    }
    END {
        print "| tokens | window | implementation | prefill | peak RSS | prefill Δ RSS | time hk/impl | peak RSS hk/impl | Δ RSS hk/impl | top-1 | load |"
        print "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (k = 1; k <= n; k++) {
            c = order[k]; split(c, cw, " ")
            for (i = 1; i <= np[c]; i++) {
                p = impl[c, i]
                name = p == "hookformer" ? "hookformer (chunked)" : "transformers " p
                if (st[c, p] == "ok")
                    cells = sprintf("%.2f s | %.0f MiB | %.0f MiB", ms[c, p] / 1000, rss[c, p], dl[c, p])
                else if (st[c, p] == "oom")
                    cells = sprintf("OOM (cap) | %.0f MiB | -", rss[c, p])
                else
                    cells = st[c, p] " | - | -"
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", cw[1], cw[2] == 0 ? "none" : cw[2], name, cells,
                    ratio(c, p, ms[c, "hookformer"], ms[c, p]), ratio(c, p, rss[c, "hookformer"], rss[c, p]),
                    ratio(c, p, dl[c, "hookformer"], dl[c, p]), top[c, p] == "" ? "-" : top[c, p], ld[c, p]
            }
        }
    }
' "$results"
