#!/usr/bin/env bash
# Fuzz the input parsers with libFuzzer + AddressSanitizer.
#
#   scripts/fuzz.sh TARGET [SECONDS | -runs=N] [extra libFuzzer flags...]
#   scripts/fuzz.sh all    [SECONDS | -runs=N]        # every target, one after the other
#   scripts/fuzz.sh build  [TARGET]                   # only build
#
# Targets (harnesses in Fuzz/<Target>/main.swift plus Fuzz/Common, outside the SwiftPM package):
#   safetensors  SafetensorsFile(file:) on arbitrary bytes, every accepted tensor read in full
#   gguf         GGUFFile(file:) + GGUFImport(gguf:) (config, names, tokenizer) + dequantize
#   tokenizer    JSON.parse + Tokenizer(json:path:) + encode/decode of a fixed text
#   sentencepiece  Tokenizer(sentencePieceModel:path:) (tokenizer.model protobuf) + encode/decode
#   config       JSON.parse + LlamaConfig(json:path:) + TensorLayout validation
#   packed       a tiny slim-packed model: SafetensorsFile + LlamaWeights + packed forward
#
# The module sources (Sources/<Module>/*.swift) are compiled as they are, with
# -sanitize=fuzzer,address, into .build/fuzz; the harnesses call the production entry points
# (the `init(file:)` behind every `init(path:)`), so the fuzzed code is the shipped code.
# Seeds are the real fixtures (../shared and Tests/*/Fixtures), copied into a temporary corpus;
# findings go to .build/fuzz/findings/<target>/ (commit a minimized reproducer as a regression
# test, never a corpus). Runs under `nice -n 10`. Exit status: 0 clean, 1 a finding, 64 usage.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${SLIM_SHARED_DIR:-$ROOT/../shared}"
OUT="$ROOT/.build/fuzz"
TARGETS=(safetensors gguf tokenizer sentencepiece config packed)
SWIFT_FLAGS=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 5 -enable-testing)
[[ "$(uname -m)" == x86_64 ]] && SWIFT_FLAGS+=(-target-cpu haswell)

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }

# MARK: Build

# module name, its dependencies (already built), extra flags
build_module() {
  local name=$1; shift
  local obj="$OUT/obj/$name.o"
  local newest
  newest=$(ls -t "$ROOT/Sources/$name"/*.swift | head -1)
  if [[ -f "$obj" && "$obj" -nt "$newest" ]]; then return; fi
  echo "fuzz: compiling $name" >&2
  nice -n 10 swiftc "${SWIFT_FLAGS[@]}" -wmo -module-name "$name" -I "$OUT/modules" -I "$ROOT/Sources/CZlib" \
    -emit-module -emit-module-path "$OUT/modules/$name.swiftmodule" -c "$ROOT/Sources/$name"/*.swift -o "$obj" 2>&1 \
    | grep -v "warning: Cannot export local symbol" >&2 || true
  [[ -f "$obj" && "$obj" -nt "$newest" ]] || { echo "fuzz: compiling $name failed" >&2; exit 1; }
}

modules_for() {
  case $1 in
    safetensors) echo "SlimIO" ;;
    tokenizer|sentencepiece) echo "SlimIO SlimTokenizer" ;;
    gguf|config) echo "SlimIO SlimTokenizer SlimKernels SlimPacking SlimModel" ;;
    packed) echo "SlimIO SlimTokenizer SlimKernels SlimPacking SlimModel SlimRuntime" ;;
  esac
}

harness_dir() {
  case $1 in
    safetensors) echo Safetensors ;; gguf) echo GGUF ;; tokenizer) echo Tokenizer ;; sentencepiece) echo SentencePiece ;;
    config) echo Config ;; packed) echo Packed ;;
  esac
}

build_target() {
  local target=$1 objs=() m
  mkdir -p "$OUT/obj" "$OUT/modules" "$OUT/bin"
  for m in $(modules_for "$target"); do build_module "$m"; objs+=("$OUT/obj/$m.o"); done
  local main="$ROOT/Fuzz/$(harness_dir "$target")/main.swift" bin="$OUT/bin/fuzz-$target"
  local fresh=1 o
  [[ -f "$bin" && "$bin" -nt "$main" ]] || fresh=0
  local common=("$ROOT/Fuzz/Common/BlackHole.swift")
  case $target in tokenizer|sentencepiece) common+=("$ROOT/Fuzz/Common/TokenizerExercise.swift") ;; esac
  for o in "${common[@]}"; do [[ "$bin" -nt "$o" ]] || fresh=0; done
  for o in "${objs[@]}"; do [[ "$bin" -nt "$o" ]] || fresh=0; done
  [[ $fresh == 1 ]] && return
  echo "fuzz: linking $target" >&2
  nice -n 10 swiftc "${SWIFT_FLAGS[@]}" -I "$OUT/modules" -I "$ROOT/Sources/CZlib" "$main" "${common[@]}" \
    "${objs[@]}" -lz -o "$bin" 2>&1 \
    | grep -v "warning: Cannot export local symbol" >&2 || true
  [[ -x "$bin" && "$bin" -nt "$main" ]] || { echo "fuzz: linking $target failed" >&2; exit 1; }
}

# MARK: Seeds

seed_corpus() {
  local target=$1 dir=$2 f
  case $target in
    safetensors)
      cp "$ROOT"/Tests/SlimIOTests/Fixtures/safetensors/*.safetensors "$dir"/
      cp "$ROOT"/Tests/SlimIOTests/Fixtures/safetensors/sharded/*.safetensors "$dir"/ 2>/dev/null || true
      cp "$ROOT"/Tests/SlimIOTests/Fixtures/gguf/*.safetensors "$dir"/ ;;
    gguf)
      cp "$ROOT"/Tests/SlimIOTests/Fixtures/gguf/*.gguf "$dir"/ ;;
    tokenizer)
      cp "$SHARED/models/stories260K/tokenizer.json" "$dir/stories260K.json"
      # The big real vocabularies cut to a few hundred tokens (every pipeline part kept), and
      # the pipeline variants of the tokenizer goldens applied to the byte-level one: small
      # seeds keep each execution fast while covering every supported component.
      python3 - "$SHARED" "$ROOT/Tests/SlimTokenizerTests/Fixtures/golden-variants.json.gz" "$dir" <<'PY'
import gzip, json, sys
shared, variants_path, out = sys.argv[1:]
def cut(path, keep):
    t = json.load(open(path))
    vocab = {k: v for k, v in t["model"]["vocab"].items() if v < keep}
    merges = []
    for m in t["model"].get("merges", []):
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a in vocab and b in vocab and a + b in vocab: merges.append(m)
    t["model"]["vocab"], t["model"]["merges"] = vocab, merges
    t["added_tokens"] = [a for a in t.get("added_tokens", []) if a["id"] < keep]
    return t
small = {"smollm2": cut(shared + "/models/smollm2-135m/tokenizer.json", 600),
         "llama2": cut(shared + "/models/llama2-tokenizer/tokenizer.json", 700)}
for name, t in small.items(): json.dump(t, open(f"{out}/{name}-cut.json", "w"))
for v in json.load(gzip.open(variants_path))["variants"]:
    base = small["smollm2" if v["base"].startswith("smollm2") else "llama2"]
    t = json.loads(json.dumps(base))
    for k, val in v.get("patch", {}).get("set", {}).items(): t[k] = val
    json.dump(t, open(f"{out}/variant-{v['name']}.json", "w"))
PY
      ;;
    sentencepiece)
      # LLaMA-2's tokenizer.model cut to its first 600 pieces (specials, the 256 byte pieces and
      # the first merges; every other field kept) by walking the protobuf wire format: a small
      # seed keeps executions fast. The full file is a seed too.
      cp "$SHARED/models/llama2-tokenizer/tokenizer.model" "$dir/llama2-full.model"
      cp "$ROOT"/Tests/SlimTokenizerTests/Fixtures/*.model "$dir"/  # trained models with normalizer rules
      python3 - "$SHARED/models/llama2-tokenizer/tokenizer.model" "$dir/llama2-cut.model" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
def varint(i):
    v = s = 0
    while True:
        b = data[i]; i += 1; v |= (b & 0x7F) << s; s += 7
        if b < 0x80: return v, i
out, i, kept = bytearray(), 0, 0
while i < len(data):
    start = i
    key, i = varint(i)
    wire = key & 7
    if wire == 0: _, i = varint(i)
    elif wire == 1: i += 8
    elif wire == 5: i += 4
    elif wire == 2: n, i = varint(i); i += n
    else: raise SystemExit("unexpected wire type %d" % wire)
    if key >> 3 == 1:
        kept += 1
        if kept > 600: continue
    out += data[start:i]
open(sys.argv[2], "wb").write(bytes(out))
PY
      ;;
    config)
      cp "$ROOT"/Tests/SlimModelTests/Fixtures/configs/*.json "$dir"/
      cp "$SHARED/models/stories260K/config.json" "$dir/stories260K.json"
      cp "$ROOT"/Tests/SlimIOTests/Fixtures/gguf/tiny-llama.config.json "$dir"/ ;;
    packed)
      SLIM_FUZZ_SEED_DIR="$dir" "$OUT/bin/fuzz-packed" -runs=0 "$dir" >/dev/null 2>&1 ;;
  esac
  for f in "$ROOT"/Tests/*/Fixtures/fuzz/"$target"/*; do [[ -f "$f" ]] && cp "$f" "$dir"/; done
  return 0
}

# MARK: Run

run_target() {
  local target=$1 budget=$2; shift 2
  build_target "$target"
  local corpus findings log
  corpus=$(mktemp -d "${TMPDIR:-/tmp}/slim-fuzz-$target.XXXXXX")
  findings="$OUT/findings/$target"
  mkdir -p "$findings"
  log="$OUT/fuzz-$target.log"
  seed_corpus "$target" "$corpus"
  local limit=()
  if [[ $budget == -runs=* ]]; then limit=("$budget"); else limit=(-max_total_time="$budget"); fi
  echo "fuzz: $target, $(ls "$corpus" | wc -l) seeds, ${limit[*]}, log $log" >&2
  local start=$SECONDS rc=0
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 nice -n 10 "$OUT/bin/fuzz-$target" "$corpus" "${limit[@]}" \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=1100000 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$@" >"$log" 2>&1 || rc=$?
  local secs=$((SECONDS - start))
  local runs
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz: $target: $runs executions in ${secs}s ($(( ${runs/\?/0} / (secs > 0 ? secs : 1) ))/s), exit $rc" >&2
  rm -rf "$corpus"
  if [[ $rc -ne 0 ]]; then
    grep -E "ERROR|SUMMARY|Fatal error|artifact" "$log" | head -20 >&2
    return 1
  fi
}

[[ $# -ge 1 ]] || usage
case $1 in
  -h|--help) usage ;;
  build)
    shift
    for t in "${@:-${TARGETS[@]}}"; do build_target "$t"; done ;;
  all)
    shift
    status=0
    for t in "${TARGETS[@]}"; do run_target "$t" "${1:-60}" "${@:2}" || status=1; done
    exit $status ;;
  *)
    target=$1; shift
    [[ " ${TARGETS[*]} " == *" $target "* ]] || { echo "fuzz: unknown target '$target' (${TARGETS[*]})" >&2; exit 64; }
    run_target "$target" "${1:-60}" "${@:2}" ;;
esac
