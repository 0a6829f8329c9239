#!/usr/bin/env bash
# Hook cost on the GPT-2-small shape: bench_hooks (normal forward) beside bench_hooks_nodispatch
# (hook dispatch compiled out), alternated ROUNDS times in the same run; prints each case's
# median and its ratio to the compiled-out build.
#   BUILD_DIR=build TOKENS=128 REPS=5 ROUNDS=3 THREADS=1 bench/run_hooks.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
TOKENS=${TOKENS:-128}
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
model=$(mktemp -d "${TMPDIR:-/tmp}/hk-bench-hooks-XXXXXX")
out=$(mktemp)
trap 'rm -rf "$model" "$out"' EXIT
"$BUILD_DIR/bench/bench_prefill" --write-model "$model"
for round in $(seq "$ROUNDS"); do
    "$BUILD_DIR/bench/bench_hooks_nodispatch" --model "$model" --tokens "$TOKENS" --reps "$REPS" \
        --threads "$THREADS" --cases none >>"$out"
    "$BUILD_DIR/bench/bench_hooks" --model "$model" --tokens "$TOKENS" --reps "$REPS" \
        --threads "$THREADS" >>"$out"
done
echo "# hook cost: GPT-2-small shape, $TOKENS tokens, $THREADS thread(s), median of $ROUNDS rounds x $REPS reps"
awk '
    { split($1, c, "="); split($2, t, "="); split($3, d, "=");
      key = c[2] (d[2] == "0" ? " (dispatch compiled out)" : "");
      n[key]++; v[key, n[key]] = t[2] + 0 }
    END {
        for (k in n) {  # median per case
            m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i];
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
            med[k] = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        base = med["none (dispatch compiled out)"];
        split("none (dispatch compiled out),none,noop-no-pattern,noop,cache", order, ",");
        printf "%-32s %10s %8s\n", "case", "ms", "ratio";
        for (i = 1; i <= 5; i++) if (order[i] in med)
            printf "%-32s %10.2f %8.3f\n", order[i], med[order[i]], med[order[i]] / base
    }' "$out"
