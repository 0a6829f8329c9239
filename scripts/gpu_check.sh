#!/usr/bin/env bash
# One command that proves the GPU path on a machine with one H100/H200 and a fresh checkout
# (issue 14 points 5-7; docs/CUDA.md, "scripts/gpu_check.sh"):
#
#   scripts/gpu_check.sh                 # on the GPU machine: installs, builds, checks, times
#   scripts/gpu_check.sh --dry-run       # the same pipeline on the CPU at tiny shapes, no installs
#
# options: --device cuda|cpu|test (cpu and test imply --dry-run's shapes), --build DIR (default
# build-gpu; --dry-run: build), --report FILE (default DIR/gpu_check/report.md), --fixtures DIR
# (default tests/fixtures), --only PART[,PART] (run these parts only: setup, build, kernels,
# memcheck, fixtures, longctx, speed), --no-peers (skip the transformers rows even when torch is
# installed: the dry run's test uses it, torch's import alone takes seconds), --debs DIR (the
# .deb files of scripts/gpu_check/fetch_debs.sh, default .gpu-debs when it holds any; given
# explicitly, they are unpacked even when the system has the libraries, and in a dry run).
#
# Parts, each capped with `timeout` (GPU caps sum to 480 s, the issue's 8 minutes):
#   setup     nothing when pkg-config finds every build library; else, with no network, the
#             .deb files of --debs unpacked into BUILD.deps (scripts/gpu_check/unpack_debs.sh);
#             else apt-get of the missing packages; pip install of the Python modules that do
#             not import only (torch, transformers, safetensors, h5py, numpy)
#   build     meson setup -Dcuda=enabled, ninja -j16 of the targets the check runs only
#   kernels   meson test cuda_kernels cuda_ops cuda_module mask_tile (every CUDA kernel vs the
#             CPU), then backend_cuda (the CUDA backend's ops vs the CPU kernels)
#   memcheck  compute-sanitizer --tool memcheck on test_cuda_kernels
#   fixtures  every tests/fixtures model, `hookformer cache` of every hook point (logits are
#             unembed.hook_out) on the device against the CPU: f32 weights within 1e-4,
#             bf16 weights within 1e-3 + 0.03 * max|cpu| per dataset
#   longctx   a Mistral-7B-shaped bf16 random checkpoint, 32k tokens in 4096-token chunks
#             (rolling KV, W = 4096), every layer's resid_post to HDF5; peak device memory vs
#             `hookformer estimate --device cuda` and vs transformers sdpa / eager (OOM is a
#             result)
#   speed     prefill and decode tok/s vs transformers sdpa bf16 (GPT-2-small, Llama-1B
#             shapes); attention TFLOP/s vs SDPA-flash (bench/run_cuda_attention.sh)
#
# Writes one markdown report (its path is the last line printed) and exits 1 when any part
# failed, 0 otherwise; the report is written either way. Without torch the transformers rows
# are skipped and the report says so; a dry run never needs torch.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT=$PWD
SELF=$ROOT/scripts/gpu_check.sh
HELPERS=$ROOT/scripts/gpu_check
PARTS=(setup build kernels memcheck fixtures longctx speed)

# ---- options --------------------------------------------------------------------------------
if [ "${1:-}" = "--part" ]; then PART=$2; else PART=""; fi
if [ -z "$PART" ]; then
    DEVICE=cuda BUILD="" REPORT="" FIXTURES=tests/fixtures ONLY="" PEERS=1 DRY=0
    DEBS="" DEBS_EXPLICIT=0
    while [ $# -gt 0 ]; do
        case "$1" in
        --dry-run) DRY=1 ;;
        --device) DEVICE=${2:?--device needs cuda, cpu or test}; shift ;;
        --build) BUILD=${2:?--build needs a folder}; shift ;;
        --report) REPORT=${2:?--report needs a file}; shift ;;
        --fixtures) FIXTURES=${2:?--fixtures needs a folder}; shift ;;
        --only) ONLY=${2:?--only needs parts}; shift ;;
        --no-peers) PEERS=0 ;;
        --debs) DEBS=${2:?--debs needs a folder}; DEBS_EXPLICIT=1; shift ;;
        -h | --help) sed -n '2,37p' "$SELF" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        esac
        shift
    done
    # --dry-run is the CPU unless --device test says the test backend
    [ "$DRY" = 1 ] && [ "$DEVICE" = cuda ] && DEVICE=cpu
    case "$DEVICE" in
    cuda) MODE=gpu ;;
    cpu | test) MODE=dry ;;
    *) echo "gpu_check.sh: --device '$DEVICE' is not one of cuda, cpu, test" >&2; exit 2 ;;
    esac
    [ -n "$BUILD" ] || { [ $MODE = gpu ] && BUILD=build-gpu || BUILD=build; }
    case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
    case "$FIXTURES" in /*) ;; *) FIXTURES=$ROOT/$FIXTURES ;; esac
    if [ -z "$DEBS" ]; then
        ls "$ROOT"/.gpu-debs/*.deb >/dev/null 2>&1 && DEBS=$ROOT/.gpu-debs
    else
        case "$DEBS" in /*) ;; *) DEBS=$PWD/$DEBS ;; esac
        ls "$DEBS"/*.deb >/dev/null 2>&1 || { echo "gpu_check.sh: --debs '$DEBS' holds no .deb files" >&2; exit 2; }
    fi
    # the report and, beside it, the parts' work folder
    [ -n "$REPORT" ] || REPORT=$BUILD/gpu_check/report.md
    case "$REPORT" in /*) ;; *) REPORT=$PWD/$REPORT ;; esac
    WORK=${REPORT%.md}.work
    rm -rf "$WORK/parts"
    mkdir -p "$WORK/parts" "$(dirname "$REPORT")"
    export DEVICE MODE BUILD FIXTURES WORK PEERS DEBS DEBS_EXPLICIT
fi

HK=$BUILD/tools/hookformer
PY=${PYTHON:-python3}
# The libraries unpacked by the setup part (scripts/gpu_check/unpack_debs.sh): every part sees
# them through pkg-config, and the programs built find them by their rpath (no LD_LIBRARY_PATH:
# the same shell runs the machine's python and torch).
DEPS=$BUILD.deps
# shellcheck source=/dev/null
[ -n "$PART" ] && [ -f "$DEPS/env.sh" ] && . "$DEPS/env.sh"
# The CUDA toolkit where nvcc is not on PATH (meson's dependency('cuda') needs it found) and
# compute-sanitizer where the toolkit keeps it; meson and ninja from pip beside a venv's python.
for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer /opt/nvidia/compute-sanitizer \
         "$(dirname "$(command -v "$PY" 2>/dev/null || echo /nonexistent/x)")"; do
    [ -d "$d" ] && case ":$PATH:" in *":$d:"*) ;; *) PATH=$PATH:$d ;; esac
done
if [ -z "${CUDA_PATH:-}${CUDA_HOME:-}${CUDA_ROOT:-}" ] && command -v nvcc >/dev/null; then
    for d in "$(dirname "$(dirname "$(command -v nvcc)")")" \
             "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"; do
        [ -f "$d/include/cuda_runtime.h" ] || continue # a ccache link's folder, say
        export CUDA_PATH=$d
        break
    done
fi
for d in "${CUDA_PATH:-}" "${CUDA_HOME:-}" "${CUDA_ROOT:-}"; do
    [ -n "$d" ] && [ -d "$d/compute-sanitizer" ] && PATH=$PATH:$d/compute-sanitizer
    [ -n "$d" ] && [ -d "$d/bin" ] && PATH=$PATH:$d/bin
done
export PATH
# no network: transformers must not ask the hub for anything (the checkpoints are local)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
MESON=${MESON:-$(sed -n 's/^ command = \(.*\) --internal regenerate.*/\1/p' "$BUILD/build.ninja" 2>/dev/null | head -1)}
MESON=${MESON:-meson}

# Shapes: the issue's on a GPU, tiny ones in a dry run.
if [ "$MODE" = gpu ]; then
    LONG_MODEL=(--layers 32 --d-model 4096 --heads 32 --kv-heads 8 --d-mlp 14336 --vocab 32000
                --window 4096 --positions 32768)
    LONG_TOKENS=32768 LONG_CHUNK=4096
    GPT2_MODEL=(--layers 12 --d-model 768 --heads 12 --vocab 50257 --positions 1024)
    LLAMA_MODEL=(--layers 16 --d-model 2048 --heads 32 --kv-heads 8 --d-mlp 8192 --vocab 128256
                 --tied --positions 131072)
    PROMPT=512 NEW=128 JOBS=16
else
    LONG_MODEL=(--layers 2 --d-model 64 --heads 4 --kv-heads 2 --d-mlp 128 --vocab 512
                --window 32 --positions 4096)
    LONG_TOKENS=512 LONG_CHUNK=128
    GPT2_MODEL=(--layers 2 --d-model 64 --heads 4 --vocab 512 --positions 256)
    LLAMA_MODEL=(--layers 2 --d-model 64 --heads 4 --kv-heads 2 --d-mlp 128 --vocab 512 --tied
                 --positions 4096)
    PROMPT=64 NEW=16 JOBS=2
fi
# first guesses (no GPU has run this yet): the report's seconds column says how to re-balance
declare -A CAP_GPU=([setup]=75 [build]=110 [kernels]=20 [memcheck]=40 [fixtures]=35 [longctx]=150 [speed]=50)
declare -A CAP_DRY=([setup]=120 [build]=600 [kernels]=120 [memcheck]=30 [fixtures]=300 [longctx]=300 [speed]=300)

# ---- helpers for the parts ------------------------------------------------------------------
OUT=$WORK/parts/$PART.md   # the part's section of the report
LOG=$WORK/parts/$PART.log  # everything its commands print
status() { printf '%s %s\n' "$1" "$2" >"$WORK/parts/$PART.status"; }
md() { printf '%s\n' "$@" >>"$OUT"; }
fail_note() { FAILED=1; NOTES+=("$*"); }
FAILED=0 NOTES=()
finish() { # finish [note for PASS]
    if [ "$FAILED" -ne 0 ]; then status FAIL "$(IFS='; '; echo "${NOTES[*]}")"; exit 1; fi
    status PASS "${1:-}"
    exit 0
}
have_py() { "$PY" -c "import $1" >/dev/null 2>&1; }
have_peers() { [ "$PEERS" = 1 ] && have_py 'torch, transformers'; }
# How the device side runs (hookformer's CLI gains --device with the backend, issue 14 point 4):
# DEVENV + DEV for the device side (f32 weights), CPU for the reference, BF16 for bf16 weights
# on a GPU (else empty), RUN for the long-context and speed runs (bf16 on a GPU). Without the
# option, the test backend is still reachable through the environment (HK_DEVICE=test).
device_args() {
    DEVENV=() DEV=() CPU=() BF16=() RUN=()
    if "$HK" cache --help 2>&1 | grep -- '--device' >/dev/null; then
        CPU=(--device cpu) DEV=(--device "$DEVICE") RUN=(--device "$DEVICE")
        if [ "$DEVICE" = cuda ]; then
            # a CUDA load keeps a bf16/f16 checkpoint's dtype unless told: f32 for the 1e-4 bound
            DEV=(--device cuda --weights-dtype f32)
            BF16=(--device cuda --weights-dtype bf16) RUN=("${BF16[@]}")
        fi
        return 0
    fi
    if [ "$MODE" = gpu ]; then
        fail_note "this hookformer has no --device option (the backend is not in this checkout)"
        return 1
    fi
    if [ "$DEVICE" = test ]; then
        DEVENV=(env HK_DEVICE=test)
        md "" "_This hookformer has no \`--device\` yet: the device side ran with HK_DEVICE=test._"
    else
        md "" "_This hookformer has no \`--device\` yet: the device side ran as the CPU default._"
    fi
    return 0
}
ids() { awk -v n="$1" -v v="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%s%d", (i ? "," : ""), (7919 * i + 13) % v; print "" }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
json_field() { sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p"; }

# ---- the parts ------------------------------------------------------------------------------
# The build's libraries by their pkg-config names (meson.build's dependency() calls), and the
# Debian package that has each; the tools the build runs, and their packages.
PC_MODULES=(hdf5 openblas libcjson libpcre2-8 libutf8proc zlib cmocka)
declare -A PC_DEB=([hdf5]=libhdf5-dev [openblas]=libopenblas-dev [libcjson]=libcjson-dev
    [libpcre2-8]=libpcre2-dev [libutf8proc]=libutf8proc-dev [zlib]=zlib1g-dev [cmocka]=libcmocka-dev)
declare -A TOOL_DEB=([pkg-config]=pkg-config [meson]=meson [ninja]=ninja-build [gcc]=gcc)
missing_libs() { # the PC_MODULES pkg-config does not find (all of them without a pkg-config)
    local m pc=${PKG_CONFIG:-pkg-config}
    for m in "${PC_MODULES[@]}"; do
        command -v "$pc" >/dev/null && "$pc" --exists "$m" 2>/dev/null || printf '%s ' "$m"
    done
}
missing_tools() {
    local t
    for t in pkg-config meson ninja gcc; do
        if [ "$t" = pkg-config ] && [ -n "${PKG_CONFIG:-}" ]; then command -v "$PKG_CONFIG" >/dev/null && continue; fi
        command -v "$t" >/dev/null || printf '%s ' "$t"
    done
}
part_setup() {
    md "## setup"
    local libs tools way how
    libs=$(missing_libs) tools=$(missing_tools)
    if [ "$DEBS_EXPLICIT" = 1 ] || { [ -n "$libs$tools" ] && [ -n "$DEBS" ] && [ "$MODE" = gpu ]; }; then
        # no network needed: the .deb files of fetch_debs.sh, unpacked into a private root
        if "$HELPERS/unpack_debs.sh" "$DEBS" "$DEPS" >>"$LOG" 2>&1; then
            # shellcheck source=/dev/null
            . "$DEPS/env.sh"
            way="unpacked $(cat "$DEPS/SOURCE") into $DEPS (scripts/gpu_check/unpack_debs.sh; no network)"
            how="unpacked $(cut -d' ' -f1 "$DEPS/SOURCE") debs"
        else
            way="unpack_debs.sh $DEBS failed (see $LOG)"; fail_note "$way"
        fi
    elif [ -z "$libs$tools" ]; then
        case "$(${PKG_CONFIG:-pkg-config} --variable=pcfiledir hdf5 2>/dev/null)" in
        "$DEPS"/*) way="nothing installed: the libraries unpacked earlier, $(cat "$DEPS/SOURCE" 2>/dev/null), in $DEPS"
            how="unpacked earlier" ;;
        *) way="nothing installed: the system has every library and tool" how=system ;;
        esac
    elif [ "$MODE" = dry ]; then
        way="dry run: nothing installed; missing: ${libs}${tools}"
    elif command -v apt-get >/dev/null; then
        # a networked machine without the .deb files: Debian's packages
        local pkgs=() m sudo=()
        for m in $libs; do pkgs+=("${PC_DEB[$m]}"); done
        for m in $tools; do pkgs+=("${TOOL_DEB[$m]}"); done
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        local apt=(-o Acquire::Retries=0 -o Acquire::http::Timeout=10 -o Acquire::https::Timeout=10)
        "${sudo[@]}" apt-get "${apt[@]}" update >>"$LOG" 2>&1 &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt[@]}" install -y \
                --no-install-recommends "${pkgs[@]}" >>"$LOG" 2>&1 ||
            fail_note "apt-get install ${pkgs[*]} failed (no network? carry the .deb files of scripts/gpu_check/fetch_debs.sh: --debs)"
        way="apt-get install ${pkgs[*]}" how=apt-get
    else
        way="missing ${libs}${tools}; no .deb files (--debs) and no apt-get"; fail_note "$way"
    fi
    libs=$(missing_libs) tools=$(missing_tools)
    md "build libraries and tools: $way" ""
    [ -z "$libs$tools" ] || { [ "$MODE" = dry ] && [ "$DEBS_EXPLICIT" = 0 ]; } ||
        fail_note "still missing after setup: ${libs}${tools}"
    md "glibc: $(ldd --version 2>/dev/null | head -1 | awk '{ print $NF }') (the unpacked Debian 12 libraries need 2.34 or later)" ""
    # Python: pip only for the modules that do not import, never a retry (no network: it fails
    # at once), never in a dry run
    local want=(h5py numpy) mod pipmiss=()
    [ "$PEERS" = 1 ] && [ "$MODE" = gpu ] && want+=(torch transformers safetensors)
    for mod in "${want[@]}"; do have_py "$mod" || pipmiss+=("$mod"); done
    if [ ${#pipmiss[@]} -gt 0 ] && [ "$MODE" = gpu ]; then
        local pip=(-m pip install --quiet --retries 0 --timeout 10)
        if "$PY" "${pip[@]}" "${pipmiss[@]}" >>"$LOG" 2>&1 ||
            "$PY" "${pip[@]}" --break-system-packages "${pipmiss[@]}" >>"$LOG" 2>&1; then
            md "pip: installed ${pipmiss[*]}" ""
        else
            md "pip install ${pipmiss[*]} failed (no network? see $LOG)" ""
        fi
    else
        md "pip: nothing installed$([ ${#pipmiss[@]} -gt 0 ] && echo " (dry run; missing: ${pipmiss[*]})")" ""
    fi
    if [ "$MODE" = gpu ]; then
        command -v nvidia-smi >/dev/null || fail_note "nvidia-smi not found"
        command -v nvcc >/dev/null || fail_note "nvcc not found (looked in PATH and /usr/local/cuda/bin)"
        command -v compute-sanitizer >/dev/null ||
            fail_note "compute-sanitizer not found (PATH, /usr/local/cuda/bin, CUDA_PATH/compute-sanitizer, /opt/nvidia/compute-sanitizer)"
        md "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)" ""
        md "CUDA: nvcc $(command -v nvcc || echo none), CUDA_PATH ${CUDA_PATH:-unset}; compute-sanitizer $(command -v compute-sanitizer || echo none);" \
           "libcublas in the loader's cache: $( (ldconfig -p 2>/dev/null | grep 'libcublas\.so' >/dev/null) && echo yes || echo 'no (libhookformer_cuda.so finds it only through ld.so.conf or LD_LIBRARY_PATH)')" ""
    fi
    md "python ($(command -v "$PY")): h5py+numpy $(have_py 'h5py, numpy' && echo present || echo MISSING)," \
       "torch+transformers $(have_peers && "$PY" -c 'import torch, transformers; print(torch.__version__, transformers.__version__)' || echo 'not used: the transformers rows are skipped (not installed, or --no-peers)')"
    have_py 'h5py, numpy' || fail_note "python3 lacks h5py/numpy (the comparer and model writer need them)"
    finish "${how:+$how; }$([ "$MODE" = dry ] && echo 'dry run: no apt-get, no pip')"
}

part_build() {
    md "## build" ""
    local opts=(-Dbuildtype=release) targets=(tools/hookformer tests/kernels/test_cuda_kernels
        tests/kernels/test_cuda_module tests/kernels/test_mask_tile tests/kernels/test_cuda_ops
        tests/kernels/test_backend_cuda bench/bench_cuda_attention libhookformer.so)
    # libhookformer.so: test_cuda_module dlopens it (a test's `depends`, which meson test
    # --no-rebuild does not build)
    [ "$MODE" = gpu ] && opts+=(-Dcuda=enabled)
    if [ ! -f "$BUILD/build.ninja" ]; then
        "$MESON" setup "$BUILD" "${opts[@]}" >>"$LOG" 2>&1 || fail_note "meson setup failed (see $LOG)"
    fi
    # the CUDA module wherever the build has one (a dry run's build may: cuda=auto finds nvcc)
    if [ "$MODE" = gpu ] || ninja -C "$BUILD" -t targets all 2>/dev/null | grep '^libhookformer_cuda\.so:' >/dev/null; then
        targets+=(libhookformer_cuda.so)
    fi
    local t0=$SECONDS
    ninja -C "$BUILD" -j"$JOBS" "${targets[@]}" >>"$LOG" 2>&1 || fail_note "ninja failed (see $LOG)"
    md "ninja -j$JOBS ${targets[*]}: $((SECONDS - t0)) s"
    finish
}

part_kernels() {
    md "## CUDA kernel tests" ""
    "$MESON" test -C "$BUILD" --no-rebuild --print-errorlogs --logbase gpu_check_kernels \
        cuda_kernels cuda_ops cuda_module mask_tile >>"$LOG" 2>&1 || fail_note "meson test failed (see $LOG)"
    # the CUDA backend's ops against the CPU kernels (its no-GPU cases skip on a GPU: not counted)
    "$MESON" test -C "$BUILD" --no-rebuild --print-errorlogs --logbase gpu_check_backend \
        backend_cuda >>"$LOG" 2>&1 || fail_note "meson test backend_cuda failed (see $LOG)"
    md '```' "$(grep -E '^ *[0-9]+/[0-9]+ ' "$LOG" | sed 's/  */ /g')" '```'
    local skips
    skips=$(grep -c '\[  SKIPPED \]' "$BUILD/meson-logs/gpu_check_kernels.txt" 2>/dev/null)
    skips=${skips:-0}
    md "cmocka cases skipped: $skips$([ "$MODE" = dry ] && echo ' (no GPU: the device cases skip)')"
    [ "$MODE" = gpu ] && [ "$skips" -gt 0 ] && fail_note "$skips GPU cases skipped on a GPU"
    finish
}

part_memcheck() {
    md "## compute-sanitizer memcheck" ""
    if [ "$MODE" = dry ]; then
        md "skipped: dry run (no GPU)"
        status SKIP "dry run: no GPU"
        exit 0
    fi
    compute-sanitizer --tool memcheck --error-exitcode 1 "$BUILD/tests/kernels/test_cuda_kernels" \
        >>"$LOG" 2>&1 || fail_note "memcheck reported errors or a failing case (see $LOG)"
    md '```' "$(grep -E 'ERROR SUMMARY|PASSED|FAILED' "$LOG" | tail -5)" '```'
    finish
}

part_fixtures() {
    md "## fixtures on $DEVICE vs the CPU" ""
    device_args || finish
    md "f32 weights: max |device - cpu| <= 1e-4 per dataset; bf16 weights: <= 1e-3 + 0.03 * max |cpu|." ""
    md "| fixture | datasets | worst dataset | max err | status | detail |" "|---|---|---|---|---|---|"
    local dir name hooks n=0
    for dir in "$FIXTURES"/*/; do
        [ -f "$dir/config.json" ] || continue
        name=$(basename "$dir")
        n=$((n + 1))
        hooks=$("$HK" hooks --model "$dir" 2>>"$LOG" | awk '/^[a-z]/ && NF > 1 { print $1 }' |
            sed -E 's/^blocks\.[0-9]+\./blocks.*./' | awk '!seen[$0]++' | paste -sd, -)
        if [ -z "$hooks" ]; then fail_note "$name: hookformer hooks failed"; md "| $name | | | | FAIL | no hook list |"; continue; fi
        local t=1,2,3,4,5,6,7,8,9,10,11,12 w=$WORK/fx_$name
        rm -f "$w".*.h5
        if ! "$HK" cache "${CPU[@]}" --model "$dir" --tokens "$t" --hooks "$hooks" --out "$w.cpu.h5" >>"$LOG" 2>&1; then
            fail_note "$name: the CPU run failed"; md "| $name | | | | FAIL | CPU run failed (see log) |"; continue
        fi
        if ! "${DEVENV[@]}" "$HK" cache "${DEV[@]}" --model "$dir" --tokens "$t" --hooks "$hooks" --out "$w.dev.h5" >>"$LOG" 2>&1; then
            fail_note "$name: the $DEVICE run failed"; md "| $name | | | | FAIL | $DEVICE run failed (see log) |"; continue
        fi
        md "$("$PY" "$HELPERS/compare_h5.py" "$w.cpu.h5" "$w.dev.h5" --atol 1e-4 --label "$name f32" 2>>"$LOG")" ||
            fail_note "$name f32 over the bound"
        if [ ${#BF16[@]} -gt 0 ]; then
            if "$HK" cache "${BF16[@]}" --model "$dir" --tokens "$t" --hooks "$hooks" --out "$w.bf16.h5" >>"$LOG" 2>&1; then
                md "$("$PY" "$HELPERS/compare_h5.py" "$w.cpu.h5" "$w.bf16.h5" --atol 1e-3 --rtol 0.03 --label "$name bf16" 2>>"$LOG")" ||
                    fail_note "$name bf16 over the bound"
            else
                fail_note "$name: the bf16 run failed"; md "| $name bf16 | | | | FAIL | run failed (see log) |"
            fi
        fi
        rm -f "$w".*.h5
    done
    [ ${#BF16[@]} -gt 0 ] || md "" "bf16 weights: skipped (the CPU computes with f32 weights)."
    [ "$n" -gt 0 ] || fail_note "no fixture (config.json) under $FIXTURES"
    finish "$n fixtures"
}

part_longctx() {
    md "## long context: Mistral-7B shape, $LONG_TOKENS tokens, chunks of $LONG_CHUNK" ""
    device_args || finish
    local m=$WORK/mistral_long ids=$WORK/long_ids.txt out=$WORK/long.h5 peak est r
    "$PY" "$HELPERS/make_model.py" --family mistral --out "$m" "${LONG_MODEL[@]}" >>"$LOG" 2>&1 ||
        { fail_note "make_model.py failed"; finish; }
    md "checkpoint: $(tail -1 "$LOG")" ""
    ids "$LONG_TOKENS" "$(sed -n 's/.*"vocab_size": \([0-9]*\).*/\1/p' "$m/config.json")" >"$ids"
    local edev=cpu; [ "$MODE" = gpu ] && edev=cuda
    local eargs=(--device "$edev"); [ "$edev" = cuda ] && eargs+=(--weights-dtype bf16)
    # the estimate loads the checkpoint on the host only (no CUDA): beside the run, to save
    # the second load's time (a 7B bf16 checkpoint is 29 GB of f32 on the host)
    "$HK" estimate --model "$m" --ctx "$LONG_TOKENS" --chunk "$LONG_CHUNK" "${eargs[@]}" --json \
        >"$WORK/long_estimate.json" 2>>"$LOG" &
    local est_pid=$!
    local gpu=(); [ "$MODE" = gpu ] && gpu=(--gpu)
    rm -f "$out"
    r=$("$PY" "$HELPERS/peak_mem.py" "${gpu[@]}" --log "$LOG" -- "${DEVENV[@]}" "$HK" cache "${RUN[@]}" \
        --model "$m" --tokens-file "$ids" --hooks 'blocks.*.hook_resid_post' --chunk "$LONG_CHUNK" \
        --batch 1 --dtype bf16 --out "$out")
    peak=$(sed -n 's/.*peak_mib=\([0-9.]*\).*/\1/p' <<<"$r")
    wait "$est_pid" || fail_note "estimate failed (see $LOG)"
    est=$(json_field total <"$WORK/long_estimate.json")
    local rows
    rows=$("$PY" -c "import h5py, sys; f = h5py.File(sys.argv[1]); n = [k for k in f if k.endswith('hook_resid_post')]; print(len(n), min(f[k].shape[0] for k in n))" "$out" 2>>"$LOG")
    md "| run | peak MiB ($([ "$MODE" = gpu ] && echo 'device, nvidia-smi' || echo 'RSS')) | estimate MiB | peak / estimate | status |" "|---|---|---|---|---|"
    local st=PASS; [[ "$r" == *"rc=0 "* ]] && [ "$rows" = "${LONG_MODEL[1]} $LONG_TOKENS" ] || { st=FAIL; fail_note "hookformer cache: $r, stored (layers rows) '$rows'"; }
    local ratio=-; [ -n "$est" ] && [ -n "$peak" ] && ratio=$(awk -v p="$peak" -v e="$est" 'BEGIN { printf "%.3f", p * 1048576 / e }')
    md "| hookformer cache --chunk $LONG_CHUNK ($([ "$MODE" = gpu ] && echo 'bf16 weights, ')resid_post of every layer: ${rows/ / layers x } rows) | $peak | $(mib "${est:-0}") | $ratio | $st |"
    rm -f "$out"
    # The estimate within 10%. The dry run compares resident memory, where the HDF5 store's
    # buffers (a few MiB, not in the CPU estimate) count: an 8 MiB floor at its tiny sizes.
    # A sanitizer build's resident sizes mean nothing (shadow memory): no check there.
    local est_ok floor=0 san
    [ "$MODE" = dry ] && floor=8
    san=$("$PY" -c "import json, sys; print(next(o['value'] for o in json.load(open(sys.argv[1])) if o['name'] == 'b_sanitize'))" \
        "$BUILD/meson-info/intro-buildoptions.json" 2>/dev/null)
    if [ "$MODE" = dry ] && [ -n "$san" ] && [ "$san" != none ]; then
        est_ok="SKIP: a $san build (resident sizes include the sanitizer's memory)"
    else
        est_ok=$(awk -v p="$peak" -v e="$est" -v f=$floor 'BEGIN { d = p - e / 1048576; if (d < 0) d = -d; print (p > 0 && e > 0 && (d <= 0.1 * p || d <= f)) ? "PASS" : "FAIL" }')
        [ "$est_ok" = PASS ] || fail_note "estimate $(mib "${est:-0}") MiB vs peak $peak MiB"
    fi
    md "| estimate within 10% of the peak$([ $floor = 0 ] || echo " (or $floor MiB: the store's buffers are not in the CPU estimate)") | | | | $est_ok |"
    local pdev=cpu; [ "$MODE" = gpu ] && pdev=cuda
    if have_peers; then
        local attn
        for attn in sdpa eager; do
            r=$("$PY" "$HELPERS/peak_mem.py" "${gpu[@]}" --log "$WORK/peer_$attn.out" -- "$PY" "$HELPERS/peer_transformers.py" \
                longctx --model "$m" --tokens "$LONG_TOKENS" --attn "$attn" --device "$pdev")
            local line; line=$(grep -h '^impl=' "$WORK/peer_$attn.out" | tail -1)
            cat "$WORK/peer_$attn.out" >>"$LOG"
            md "| transformers $attn, one forward, output_hidden_states ($line) | $(sed -n 's/.*peak_mib=\([0-9.]*\).*/\1/p' <<<"$r") | | | $([ -n "$line" ] && echo PASS || echo FAIL) |"
            [ -n "$line" ] || fail_note "transformers $attn crashed (see $LOG)"
        done
    else
        md "| transformers sdpa / eager | | | | SKIP: torch/transformers not installed (or --no-peers) |"
    fi
    rm -rf "$m"
    finish "peak $peak MiB, estimate $(mib "${est:-0}") MiB"
}

part_speed() {
    md "## speed" ""
    device_args || finish
    local fam spec m r pf dc have_peer=0 pdev=cpu
    [ "$MODE" = gpu ] && pdev=cuda
    have_peers && have_peer=1
    md "Prefill of $PROMPT tokens, then $NEW greedy decode steps. hookformer: \`generate --verbose\`," \
       "prefill as the marginal rate between $((PROMPT / 4)) and $PROMPT tokens (each process starts cold;" \
       "the plain rate of the long run when the difference is not positive); transformers: after a" \
       "16-token warm-up." "" \
       "| model | hookformer prefill tok/s | decode tok/s | transformers sdpa prefill tok/s | decode tok/s | prefill ratio | decode ratio |" \
       "|---|---|---|---|---|---|---|"
    for fam in gpt2 llama; do
        m=$WORK/speed_$fam
        if [ $fam = gpt2 ]; then spec=("${GPT2_MODEL[@]}"); else spec=("${LLAMA_MODEL[@]}"); fi
        "$PY" "$HELPERS/make_model.py" --family $fam --out "$m" "${spec[@]}" >>"$LOG" 2>&1 ||
            { fail_note "make_model.py $fam failed"; continue; }
        local v; v=$(sed -n 's/.*"vocab_size": \([0-9]*\).*/\1/p' "$m/config.json")
        # Each generate is a cold process (cuBLAS handle, lazily loaded kernels, OpenMP start):
        # prefill tok/s is the marginal rate between a prompt of P/4 and one of P tokens,
        # (P - P/4) / (t(P) - t(P/4)); decode tok/s is the long run's.
        local q=$((PROMPT / 4)) rq tq tp_
        rq=$("${DEVENV[@]}" "$HK" generate "${RUN[@]}" --model "$m" --tokens "$(ids "$q" "$v")" --max-new 2 \
            --ids --verbose 2>&1 >/dev/null | tee -a "$LOG" | grep '# prefill' | tail -1)
        r=$("${DEVENV[@]}" "$HK" generate "${RUN[@]}" --model "$m" --tokens "$(ids "$PROMPT" "$v")" --max-new "$((NEW + 1))" \
            --ids --verbose 2>&1 >/dev/null | tee -a "$LOG" | grep '# prefill' | tail -1)
        tq=$(sed -n 's/.*prefill: [0-9]* tokens in \([0-9.]*\) ms.*/\1/p' <<<"$rq")
        tp_=$(sed -n 's/.*prefill: [0-9]* tokens in \([0-9.]*\) ms.*/\1/p' <<<"$r")
        pf=$(awk -v a="$tq" -v b="$tp_" -v n=$((PROMPT - q)) 'BEGIN { if (a != "" && b != "" && b > a) printf "%.1f", n / ((b - a) / 1e3) }')
        [ -n "$pf" ] || pf=$(sed -n 's/.*prefill: .*(\([0-9.]*\) tokens\/s).*/\1/p' <<<"$r")
        dc=$(sed -n 's/.*decode: .*(\([0-9.]*\) tokens\/s).*/\1/p' <<<"$r")
        [ -n "$pf" ] && [ -n "$dc" ] || fail_note "hookformer generate on $fam printed no timing (see $LOG)"
        local tp=- td=- rp=- rd=-
        if [ $have_peer = 1 ]; then
            r=$("$PY" "$HELPERS/peer_transformers.py" speed --model "$m" --prompt "$PROMPT" --new "$NEW" \
                --device "$pdev" 2>>"$LOG" | tail -1)
            tp=$(sed -n 's/.*prefill_tok_s=\([0-9.]*\).*/\1/p' <<<"$r")
            td=$(sed -n 's/.*decode_tok_s=\([0-9.]*\).*/\1/p' <<<"$r")
            [ -n "$tp" ] || { fail_note "transformers on $fam failed (see $LOG)"; tp=-; td=-; }
            [ "$tp" != - ] && [ -n "$pf" ] && rp=$(awk -v a="$pf" -v b="$tp" 'BEGIN { printf "%.2f", a / b }')
            [ "$td" != - ] && [ -n "$dc" ] && rd=$(awk -v a="$dc" -v b="$td" 'BEGIN { printf "%.2f", a / b }')
        fi
        md "| $fam ($(sed -n 's/.*"num_hidden_layers": \([0-9]*\).*/\1/p;s/.*"n_layer": \([0-9]*\).*/\1/p' "$m/config.json") layers) | ${pf:--} | ${dc:--} | $tp | $td | $rp | $rd |"
        rm -rf "$m"
    done
    [ $have_peer = 1 ] || md "" "transformers: skipped (torch/transformers not installed, or --no-peers)."
    md "" "### attention TFLOP/s (bench/run_cuda_attention.sh)" "" '```'
    local att
    att=$(BUILD_DIR=$BUILD REPS=5 bench/run_cuda_attention.sh 2>&1 | tee -a "$LOG")
    md "$att" '```'
    if [[ "$att" == *"no CUDA device"* || "$att" == *"built without CUDA"* ]]; then
        [ "$MODE" = gpu ] && fail_note "bench_cuda_attention: no CUDA device or no CUDA module"
    elif ! grep -q 'tflops=' <<<"$att"; then
        fail_note "bench_cuda_attention printed no figures"
    fi
    finish
}

# ---- a part, run by the driver under timeout ------------------------------------------------
if [ -n "$PART" ]; then
    : >"$OUT"
    "part_$PART"
fi

# ---- the driver -----------------------------------------------------------------------------
run_part() {
    local p=$1 cap t0 rc
    if [ "$MODE" = gpu ]; then cap=${CAP_GPU[$p]}; else cap=${CAP_DRY[$p]}; fi
    echo "gpu_check: $p (cap ${cap} s)"
    t0=$SECONDS
    timeout -k 10 "$cap" "$SELF" --part "$p"
    rc=$?
    local secs=$((SECONDS - t0))
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "FAIL timed out after $cap s" >"$WORK/parts/$p.status"
    elif [ ! -s "$WORK/parts/$p.status" ]; then
        echo "FAIL exited $rc without a result" >"$WORK/parts/$p.status"
    fi
    read -r st note <"$WORK/parts/$p.status"
    SUMMARY+=("| $p | $st | $secs | $cap | ${note:-} |")
    echo "gpu_check: $p $st ($secs s) ${note:-}"
    [ "$st" != FAIL ]
}

SUMMARY=() ANY_FAIL=0 T_START=$SECONDS
for p in "${PARTS[@]}"; do
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$p,"* ]]; then continue; fi
    run_part "$p" || ANY_FAIL=1
    # without a build there is nothing to check
    [ "$p" = build ] && [ ! -x "$HK" ] && { echo "gpu_check: no $HK: stopping" >&2; ANY_FAIL=1; break; }
done

{
    echo "# gpu_check report"
    echo
    # the device tool's copy of a checkout may have no .git (or no git): say so, not "changes"
    if git rev-parse --short HEAD >/dev/null 2>&1; then
        commit="$(git rev-parse --short HEAD)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    else
        commit="unknown (no git repository here)"
    fi
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $commit"
    echo "- mode: $([ "$MODE" = gpu ] && echo 'GPU' || echo "dry run on the CPU (--device $DEVICE, tiny shapes)"); host $(uname -n); $(nproc) CPUs"
    echo "- device: $( (nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none) | head -1)"
    echo "- build: $BUILD; total $((SECONDS - T_START)) s; result: $([ $ANY_FAIL = 0 ] && echo PASS || echo FAIL)"
    echo
    echo "| part | status | seconds | cap | note |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
    for p in "${PARTS[@]}"; do
        [ -s "$WORK/parts/$p.md" ] || continue
        echo
        cat "$WORK/parts/$p.md"
        echo
        echo "log: $WORK/parts/$p.log"
    done
} >"$REPORT"
echo "gpu_check: $([ $ANY_FAIL = 0 ] && echo PASS || echo FAIL); report: $REPORT"
echo "$REPORT"
exit $ANY_FAIL
