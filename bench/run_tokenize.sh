#!/usr/bin/env bash
# Tokenization throughput, hookformer vs Hugging Face tokenizers, same corpus, same run.
#   bench/run_tokenize.sh [BUILD_DIR] [ROUNDS]
# Tokenizers: SmolLM2 (the tokenizer.json transformers builds from the GGUF, written to the
# cache by tests/fixtures/make_tokenizer_fixtures.py --real), MiniLM (real WordPiece), and the
# fixture kinds. hookformer runs one thread; HF "lines"/"document" run one thread too, "batch"
# is encode_batch over HF's thread pool (RAYON_NUM_THREADS, default every core).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
rounds=${2:-5}
cache=${HK_MODEL_CACHE:-$HOME/.cache/hookformer}
corpus=$root/tests/fixtures/tokenizers/corpus.bin.gz
cases=()
[ -f "$cache/smollm2/tokenizer.hf.json" ] && cases+=("smollm2:$cache/smollm2/tokenizer.hf.json")
[ -f "$cache/minilm/tokenizer.json" ] && cases+=("minilm:$cache/minilm/tokenizer.json")
for k in bpe_gpt2 bpe_llama3 spm_llama2 wordpiece_bert; do
  cases+=("$k:$root/tests/fixtures/tokenizers/$k.json")
done
printf "%-16s %12s %12s %12s %12s %12s %8s %8s\n" tokenizer "hk lines" "hf lines" "hk doc" "hf doc" \
  "hf batch" "lines x" "doc x"
for c in "${cases[@]}"; do
  name=${c%%:*}; path=${c#*:}
  hk=$("$build/bench/bench_tokenize" "$path" "$corpus" "$rounds")
  hf=$(python3 "$root/bench/peer_tokenize.py" "$path" "$corpus" "$rounds")
  read -r hk_lines hk_doc hk_ids <<<"$(awk '{print $4, $7, $9}' <<<"$hk")"
  read -r hf_lines hf_doc hf_batch hf_ids <<<"$(awk '{print $4, $7, $10, $12}' <<<"$hf")"
  [ "$hk_ids" = "$hf_ids" ] || echo "warning: $name: $hk_ids ids vs HF $hf_ids" >&2
  printf "%-16s %12s %12s %12s %12s %12s %8.2f %8.2f\n" "$name" "$hk_lines" "$hf_lines" "$hk_doc" \
    "$hf_doc" "$hf_batch" "$(echo "$hk_lines / $hf_lines" | bc -l)" "$(echo "$hk_doc / $hf_doc" | bc -l)"
done
echo "(MB/s of corpus bytes, median of $rounds rounds; $(nproc) cores; HF batch threads:" \
  "${RAYON_NUM_THREADS:-all})"
