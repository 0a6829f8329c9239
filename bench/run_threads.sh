#!/usr/bin/env bash
# Which team should run decode's matrix-vector products: hookformer's pool (kernels/cpu/pool.c)
# or the OpenMP team? SmolLM2-135M-Instruct Q4_1 (blocks), decode 64 tokens after an 8-token
# prompt, at 1 and 2 threads, interleaved rounds, median tok/s per wall second and per CPU
# second, and each team's ratio against the pool (> 1: faster than the pool).
#
#   bench/run_threads.sh
#   ROUNDS=5 THREADS="2" WEIGHTS=f32 BUILD_DIR=build bench/run_threads.sh
#
# Teams: pool (HK_THREADS_TEAM=pool, workers spin HK_POOL_SPIN_US = 50 µs after a job, then
# sleep on a futex), pool-nospin (HK_POOL_SPIN_US=0: sleep at once), omp-passive
# (HK_THREADS_TEAM=omp OMP_WAIT_POLICY=passive: libgomp sleeps at once) and omp-default
# (libgomp's default: spins GOMP_SPINCOUNT, then sleeps). Wall time is what a user waits;
# CPU time shows what spinning costs the other jobs of a shared machine. The load average
# before and after is printed: on a loaded machine spinning loses, on an idle one it wins.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
THREADS=${THREADS:-1 2}
ROUNDS=${ROUNDS:-3}
WEIGHTS=${WEIGHTS:-blocks}
TOKENS=${TOKENS:-64}

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" bench/bench_smollm2 >/dev/null
model="$(scripts/fetch_models.sh smollm2)/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

out=$(mktemp "${TMPDIR:-/tmp}/hk-run-threads-XXXXXX")
trap 'rm -f "$out"' EXIT
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "# machine: ${cpu:-unknown CPU}, $(nproc) cores online; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# SmolLM2-135M-Instruct Q4_1, --weights $WEIGHTS, decode $TOKENS tokens after 8, $ROUNDS rounds"
teams="pool pool-nospin omp-passive omp-default"
for round in $(seq "$ROUNDS"); do
    for t in $THREADS; do
        for team in $teams; do
            case $team in
            pool) env=(HK_THREADS_TEAM=pool) ;;
            pool-nospin) env=(HK_THREADS_TEAM=pool HK_POOL_SPIN_US=0) ;;
            omp-passive) env=(HK_THREADS_TEAM=omp OMP_WAIT_POLICY=passive) ;;
            omp-default) env=(HK_THREADS_TEAM=omp) ;;
            esac
            line=$(env "${env[@]}" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS="$t" \
                "$BUILD_DIR/bench/bench_smollm2" --model "$model" --weights "$WEIGHTS" \
                --prefill 8 --decode "$TOKENS" --prompt 8 --threads "$t" --reps 1 | grep 'case=decode')
            echo "team=$team threads=$t $line" >>"$out"
        done
    done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" "$THREADS" "$teams" <<'EOF'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=(\S+)", l)) for l in open(sys.argv[1])]
threads, teams = sys.argv[2].split(), sys.argv[3].split()
def med(team, t, key):
    v = [float(r[key]) for r in rows if r["team"] == team and r["threads"] == t]
    return statistics.median(v) if v else float("nan")
print("| team | threads | tok/s | tok/CPU-s | / pool (tok/s) |")
print("|---|---:|---:|---:|---:|")
for t in threads:
    base = med("pool", t, "tok_per_s")
    for team in teams:
        w = med(team, t, "tok_per_s")
        print(f"| {team} | {t} | {w:.1f} | {med(team, t, 'tok_per_cpu_s'):.1f} | {w / base:.2f} |")
EOF
