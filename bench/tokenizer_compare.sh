#!/usr/bin/env bash
# Our tokenizer against the reference Python one (TRIE_TOKENIZER of the `rwkv`
# package) on the same corpus: speed of each, the ratio, and whether the ids
# are identical. Builds nothing; takes about 10 s.
#
#   bench/tokenizer_compare.sh BUILD_DIR [CORPUS_FILE]
#
# Without CORPUS_FILE the corpus is the fixture texts repeated to 8 MB.
# Needs: pip install --no-deps rwkv==0.8.32
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: bench/tokenizer_compare.sh BUILD_DIR [CORPUS_FILE]}
bench="$build/tokenizer_bench"
if [ ! -x "$bench" ]; then
  echo "tokenizer_compare: no $bench; build it first (ninja -C $build tokenizer_bench)" >&2
  exit 2
fi
if ! python3 -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("rwkv") is None)'; then
  echo "tokenizer_compare: the reference needs: pip install --no-deps rwkv==0.8.32" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ $# -ge 2 ]; then
  corpus=$2
  corpus_args=(--corpus "$corpus")
else
  corpus=$tmp/corpus.txt
  corpus_args=(--save-corpus "$corpus")
fi

echo "== ours"
"$bench" "${corpus_args[@]}" --iters 10 --ids-out "$tmp/ours.bin" | tee "$tmp/ours.txt"
echo "== reference"
python3 "$here/tokenizer_reference.py" "$corpus" --ids "$tmp/ours.bin" | tee "$tmp/ref.txt" || true

ours=$(awk '/^tokens_per_s:/ {print $2}' "$tmp/ours.txt")
ref=$(awk '/^tokens_per_s:/ {print $2}' "$tmp/ref.txt")
identical=$(awk '/^ids identical:/ {print $3}' "$tmp/ref.txt")
echo "== summary"
printf 'reference tokens/s: %.4g\n' "$ref"
printf 'ours tokens/s:      %.4g\n' "$ours"
awk -v o="$ours" -v r="$ref" 'BEGIN { printf "ratio ours/reference: %.0fx\n", o / r }'
echo "ids identical: ${identical:-no}"
[ "$identical" = yes ]
