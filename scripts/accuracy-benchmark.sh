#!/usr/bin/env bash
# Accuracy benchmark: WikiText-2 test perplexity (paper protocol, ctx 2048) of SmolLM2-135M
# in full precision and quantized with RTN, GPTQ and SliM-LLM at 2 and 3 bits, group 128 and 64.
# Prints a markdown table: method, bits, group, average code bits per weight, stored bits per
# weight of the quantized linears (codes + scales + zeros + 1-bit means + bit maps, from
# `slim-quant inspect` on the packed checkpoint), PPL, quantize time.
#
# Calibration: the full WikiText-2 train split is not available in ../shared, so the default
# calibration text is ../shared/data/wikitext-2-raw/wiki.train.excerpt.txt (its first 1 MB,
# blank lines removed), and the output says so. Numbers are therefore not the paper's protocol
# exactly, and SmolLM2 here is the dequantized Q4_1 GGUF (see ../shared/README.md): compare
# rows with each other, not with published numbers.
#
# The full run (128 windows × 2048 tokens, all windows of the test set) takes hours on a
# 2-core machine (about 2 h per SliM-LLM row); use --samples and --max-windows for a shorter one:
#   scripts/accuracy-benchmark.sh --samples 8 --max-windows 8 --methods "rtn gptq slim" --bits 2 --groups 128
#
# Options (defaults in brackets):
#   --model DIR        SmolLM2-135M directory [$SLIM_SMOLLM2_DIR, else ~/.cache/slim-quant-fixtures/smollm2-135m-f32]
#   --samples N        calibration windows [128]
#   --seq-len L        tokens per calibration window [2048]
#   --max-windows N    evaluate only the first N test windows [all]
#   --methods LIST     subset of "rtn gptq slim" [all three]
#   --bits LIST        [2 3]
#   --groups LIST      [128 64]
#   --calibration FILE [../shared/data/wikitext-2-raw/wiki.train.excerpt.txt]
#   --threads N        [all cores]
#   --work DIR         where the quantized checkpoints go [a temporary directory, removed at the end]
#   --keep             keep the quantized checkpoints
#   --bin PATH         slim-quant binary [built with swift build -c release]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SLIM_FIXTURE_CACHE:-$HOME/.cache/slim-quant-fixtures}
model=${SLIM_SMOLLM2_DIR:-$cache/smollm2-135m-f32}
samples=128
seq_len=2048
max_windows=""
methods="rtn gptq slim"
bits_list="2 3"
groups="128 64"
calibration="$root/../shared/data/wikitext-2-raw/wiki.train.excerpt.txt"
threads=""
work=""
keep=0
bin=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model=$2; shift 2 ;;
        --samples) samples=$2; shift 2 ;;
        --seq-len) seq_len=$2; shift 2 ;;
        --max-windows) max_windows=$2; shift 2 ;;
        --methods) methods=$2; shift 2 ;;
        --bits) bits_list=$2; shift 2 ;;
        --groups) groups=$2; shift 2 ;;
        --calibration) calibration=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --bin) bin=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
done

[ -f "$model/model.safetensors" ] || {
    echo "error: no SmolLM2-135M at $model: run ../shared/scripts/prepare-smollm2.sh $model (or scripts/prepare-fixtures.sh)" >&2
    exit 1
}
[ -f "$calibration" ] || { echo "error: calibration file $calibration not found" >&2; exit 1; }
for m in $methods; do
    case "$m" in rtn|gptq|slim) ;; *) echo "error: unknown method $m (rtn, gptq, slim)" >&2; exit 64 ;; esac
done
if [ -z "$bin" ]; then
    (cd "$root" && swift build -c release --product slim-quant >&2)
    bin="$(cd "$root" && swift build -c release --show-bin-path)/slim-quant"
fi
if [ -z "$work" ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/slim-accuracy.XXXXXX")
    [ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"

common=()
[ -n "$threads" ] && common+=(--threads "$threads")
eval_args=(--dataset wikitext2 --protocol paper --ctx 2048 --json)
[ -n "$max_windows" ] && eval_args+=(--max-windows "$max_windows")

# The value of a top-level "key": number line of slim-quant's pretty-printed JSON.
json_number() { sed -n "s/^  \"$1\": \\([-0-9.eE+]*\\),\\{0,1\\}\$/\\1/p" "$2" | head -n 1; }
now() { date +%s.%N; }

rows=()
run_eval() {  # model-dir label-for-errors -> prints PPL
    local out="$work/eval.json"
    "$bin" eval-ppl --model "$1" "${eval_args[@]}" ${common[@]+"${common[@]}"} > "$out" 2> "$work/eval.log" || {
        echo "error: eval-ppl failed on $2:" >&2; tail -n 5 "$work/eval.log" >&2; exit 1; }
    json_number ppl "$out"
}

echo "calibration: $calibration (WikiText-2 train EXCERPT: the full train split is not available here)," \
     "$samples windows × $seq_len tokens, seed 0" >&2
echo "evaluation: WikiText-2 test, paper protocol, ctx 2048${max_windows:+, first $max_windows windows}" >&2

echo "== fp" >&2
fp_ppl=$(run_eval "$model" fp)
rows+=("$(printf '| fp32 | 32 | - | 32.00 | 32.00 | %.3f | - |' "$fp_ppl")")

for group in $groups; do
    for bits in $bits_list; do
        for method in $methods; do
            name="$method-w$bits-g$group"
            echo "== $name" >&2
            q=(quantize --model "$model" --method "$method" --bits "$bits" --group-size "$group" --out "$work/$name" --json
               --no-resume ${common[@]+"${common[@]}"})
            if [ "$method" != rtn ]; then q+=(--samples "$samples" --seq-len "$seq_len" --calibration "$calibration"); fi
            start=$(now)
            "$bin" "${q[@]}" > "$work/$name.json" 2> "$work/$name.log" || {
                echo "error: quantize $name failed:" >&2; tail -n 5 "$work/$name.log" >&2; exit 1; }
            seconds=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
            avg=$(json_number average_bits "$work/$name.json")
            stored=$("$bin" inspect --model "$work/$name" --no-tensors | awk '/^all linears/ { print $9 }')
            ppl=$(run_eval "$work/$name" "$name")
            rows+=("$(printf '| %s | %s | %s | %.3f | %.3f | %.3f | %.0f s |' "$method" "$bits" "$group" "$avg" "$stored" "$ppl" "$seconds")")
            [ "$keep" = 1 ] || rm -rf "$work/$name"
        done
    done
done

echo
echo "SmolLM2-135M (dequantized Q4_1 GGUF), WikiText-2 test PPL, paper protocol ctx 2048${max_windows:+ (first $max_windows windows)};"
echo "calibration: $(basename "$calibration") (WikiText-2 train excerpt), $samples × $seq_len, seed 0."
echo
echo "| method | bits | group | avg code bits | stored bits/weight | PPL | quantize time |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
