#!/usr/bin/env bash
# GPU checks of the CUDA backend (`--device cuda`), for a machine with an NVIDIA GPU:
#
#   bash scripts/gpu-check.sh [--bundle | --build-only | --skip-build | --rehearse | --emulator]
#                             [--quick] [--steps LIST]
#
#   (no mode)     build everything here (nvcc + Swift), then run the checks.
#   --bundle      (on a build machine; no GPU needed) write .build/gpu-bundle for a GPU machine
#                 without a Swift toolchain: slim-quant and slim-gpu-check built with a static Swift
#                 runtime, stripped and xz-compressed, libslimcuda.so, and the fixtures (stories260K,
#                 WikiText-2, stories260K quantized with SliM-LLM at 2 and 3 bits: mixed 1…4-bit
#                 groups of 32 with a ragged last group). About 23 MB: carry it to the GPU machine.
#                 Built in .build/static (a separate build path: SwiftPM does not relink a product
#                 for --static-swift-stdlib alone) and refused unless it needs no Swift runtime.
#   --build-only  build libslimcuda.so, slim-quant and slim-gpu-check (release), then stop.
#   --skip-build  use .build/gpu-bundle when present (rebuilding libslimcuda.so with the local
#                 nvcc when there is one), else what --build-only built (building what is missing).
#   --rehearse    no GPU needed: the --skip-build path on .build/gpu-bundle exactly as a GPU machine
#                 runs it (bundled binaries unpacked, bundled fixtures kept), the CPU emulator standing
#                 in for the GPU; --quick, no LLaMA-7B-sized runs, no nvcc. A bundle that would waste
#                 a GPU session fails here first.
#   --emulator    no GPU needed: build libslimcuda-emulator.so (the same .cu sources compiled for
#                 the CPU emulator of the CUDA runtime, scripts/build-cuda-emulator.sh) and run the
#                 same steps against it, plus the emulator's self-test and the kernels once more
#                 with its threads in reverse order (a race changes results). Speed steps only run
#                 their paths at small sizes (emulated timings mean nothing). CI runs this with
#                 --quick.
#   --quick       fewer kernel cases; no LLaMA-7B-shape correctness matrices.
#   --steps LIST  (not with --bundle/--build-only) a comma-separated subset of kernels,ppl,generate,speed,sweep,
#                 baseline,sanitize (default all), so a GPU session can split the run over calls of
#                 ≤ 10 minutes. Every step prints its wall time.
#
# Steps: kernels: slim-gpu-check, every kernel vs the CPU / float64 reference on random packed
# matrices (all bit mixes, ragged groups, NaN-poisoned outputs with guard elements), whole models
# vs SlimRuntime (logits of a window, KV-cache decode steps, NLL), GEMV bandwidth vs the copy
# bandwidth at LLaMA-7B shapes (cold cache: weights cycled through 2 × L2 of copies); ppl: eval-ppl
# on the CPU and on the GPU for each packed checkpoint, equal within 0.1 % with either KV cache
# (f32, f16, bf16) on both devices; generate: greedy continuations equal, with each cache; speed: decode tokens/s of a synthetic LLaMA-7B at 2 and 3 bits (target
# ≥ 200 tok/s on an H100); sweep: the decode GEMV per SLIM_CUDA_DEPTH × SLIM_CUDA_WARPS;
# baseline: fp16 cuBLAS GEMV via torch in the same run; sanitize: compute-sanitizer's memcheck,
# racecheck, synccheck and initcheck on the quick kernel set.
#
# Without a GPU it prints SKIP lines and exits 0. Exit status 1 when any check FAILs (SPEED lines
# never fail). SmolLM2 is added when ~/.cache/slim-quant-fixtures/smollm2-135m-f32 (or
# $SLIM_SMOLLM2_DIR) exists. Environment: SLIM_SHARED_DIR (default ../shared), PYTHON (torch
# baseline, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

USAGE="usage: bash scripts/gpu-check.sh [--bundle | --build-only | --skip-build | --rehearse | --emulator] [--quick] [--steps LIST]"
ALL_STEPS=(kernels ppl generate speed sweep baseline sanitize)
MODE=all QUICK=() STEPS=all
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bundle) MODE=bundle ;;
        --build-only) MODE=build ;;
        --skip-build) MODE=check ;;
        --rehearse) MODE=rehearse ;;
        --emulator) MODE=emulator ;;
        --quick) QUICK=(--quick) ;;
        --steps)
            [[ $# -ge 2 ]] || { echo "error: --steps needs a list (${ALL_STEPS[*]})" >&2; exit 64; }
            STEPS=$2; shift
            for step in ${STEPS//,/ }; do
                [[ " ${ALL_STEPS[*]} all " == *" $step "* ]] ||
                    { echo "error: unknown step '$step' in --steps (known: ${ALL_STEPS[*]} all)" >&2; exit 64; }
            done ;;
        *) echo "$USAGE" >&2; exit 64 ;;
    esac
    shift
done
# True when any of the named steps was asked for.
wanted() {
    local step
    for step in "$@"; do [[ ",$STEPS," == *",all,"* || ",$STEPS," == *",$step,"* ]] && return 0; done
    return 1
}

SHARED=${SLIM_SHARED_DIR:-../shared}
BUNDLE=.build/gpu-bundle
BIN=.build/release
FIX=.build/gpu-fixtures
FAILURES=0
note() { echo "== $*"; }

has_gpu() {
    { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; } ||
        compgen -G "/proc/driver/nvidia/gpus/*" >/dev/null
}

need_swift() {
    command -v swift >/dev/null 2>&1 && return 0
    echo "error: no Swift toolchain on this machine: run 'bash scripts/gpu-check.sh --bundle' on a build machine" \
         "and bring .build/gpu-bundle here" >&2
    exit 1
}

build_binaries() {
    need_swift
    note "build: libslimcuda.so, slim-quant, slim-gpu-check (release)"
    bash scripts/build-cuda.sh
    swift build -c release --product slim-quant
    swift build -c release --product slim-gpu-check
}

# Fixtures in $1: stories260K, WikiText-2, stories260K-slim{2,3}, quantized by slim-quant $2
# (slim3 with BF16 embedding, classifier and norms), and stories260K-f16 (every weight F16,
# converted from the shared GGUF): 16-bit dense weights and norms go through the model checks;
# tiny-llama-{f16,bf16} (committed test fixture: tied embeddings, GQA) for the tied classifier;
# bias-llama (committed, a bias on every projection) dense and RTN-4 packed.
# They are stamped with the quantizer binary's checksum and this recipe's, so fresh_fixtures remakes
# them whenever either changes (the checks must never run on checkpoints written by older code).
prepare_fixtures() {
    local dir=$1 quantizer=$2
    note "fixtures → $dir"
    rm -f "$dir/.made-by"
    [[ -d "$SHARED/models/stories260K" ]] || { echo "error: $SHARED/models/stories260K not found (set SLIM_SHARED_DIR)" >&2; exit 1; }
    mkdir -p "$dir/data"
    rm -rf "$dir/stories260K" "$dir/data/wikitext-2-raw"
    cp -r "$SHARED/models/stories260K" "$dir/" && chmod -R u+w "$dir/stories260K"
    cp -r "$SHARED/data/wikitext-2-raw" "$dir/data/" && chmod -R u+w "$dir/data"
    for bits in 2 3; do
        rm -rf "$dir/stories260K-slim$bits"
        local dtype=source
        [[ $bits == 3 ]] && dtype=bf16
        "$quantizer" quantize --model "$dir/stories260K" --bits $bits --method slim --group-size 32 \
            --samples 16 --seq-len 256 --data-dir "$dir/data" --out "$dir/stories260K-slim$bits" --unquantized-dtype $dtype \
            >"$dir/quantize-slim$bits.log" 2>&1 || { cat "$dir/quantize-slim$bits.log" >&2; exit 1; }
    done
    rm -rf "$dir/stories260K-f16"
    "$quantizer" convert --from "$SHARED/models/stories260K-gguf/stories260K-f32.gguf" --out "$dir/stories260K-f16" \
        --dtype f16 >"$dir/convert-f16.log" 2>&1 || { cat "$dir/convert-f16.log" >&2; exit 1; }
    for dtype in f16 bf16; do
        rm -rf "$dir/tiny-llama-$dtype" && mkdir -p "$dir/tiny-llama-$dtype"
        cp Tests/SlimIOTests/Fixtures/gguf/tiny-llama.config.json "$dir/tiny-llama-$dtype/config.json"
        cp "Tests/SlimIOTests/Fixtures/gguf/tiny-llama.$dtype.safetensors" "$dir/tiny-llama-$dtype/model.safetensors"
    done
    rm -rf "$dir/bias-llama" "$dir/bias-llama-rtn4"
    cp -r Tests/SlimRuntimeTests/Fixtures/bias-llama "$dir/bias-llama"
    "$quantizer" quantize --model "$dir/bias-llama" --bits 4 --method rtn --group-size 16 --out "$dir/bias-llama-rtn4" \
        >"$dir/quantize-bias.log" 2>&1 || { cat "$dir/quantize-bias.log" >&2; exit 1; }
    rm -rf "$dir/smollm2-rtn4"  # made on demand below, by the same quantizer
    stamp "$quantizer" >"$dir/.made-by"
}

# The quantizer binary's version and checksum, and the recipe itself (this function's text).
stamp() { echo "$("$1" --version) $(cksum <"$1" | cut -d' ' -f1) $(declare -f prepare_fixtures | cksum | cut -d' ' -f1)"; }

# prepare_fixtures unless $1 already holds fixtures made by this very slim-quant binary $2.
fresh_fixtures() {
    local dir=$1 quantizer=$2
    if [[ -d "$dir/stories260K-slim2" && "$(cat "$dir/.made-by" 2>/dev/null)" == "$(stamp "$quantizer")" ]]; then
        return 0
    fi
    prepare_fixtures "$dir" "$quantizer"
}

# Fails (naming the library) when executable $1 needs a shared library beyond the C/C++ runtime
# every Linux has: the GPU machine has no Swift toolchain, so a libswiftCore.so dependency means a
# bundle that cannot start there.
self_contained() {
    local extra
    extra=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
        grep -Ev '^(libc|libm|libz|libstdc\+\+|libgcc_s|libpthread|libdl|librt|libutil|ld-linux-x86-64)\.so' || true)
    [[ -z $extra ]] && return 0
    echo "error: $1 needs $(echo $extra) (not on a GPU machine without Swift): not a static-Swift build" >&2
    return 1
}

unpack() {  # xz file → executable, with Python's lzma when xz is missing
    if command -v xz >/dev/null 2>&1; then xz -dc "$1" >"$2"; else
        ${PYTHON:-python3} -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
    fi
    chmod +x "$2"
}

if [[ $MODE == bundle ]]; then
    need_swift
    note "bundle → $BUNDLE (static Swift runtime, stripped, xz)"
    bash scripts/build-cuda.sh
    for exe in slim-quant slim-gpu-check; do
        swift build -c release --static-swift-stdlib --build-path .build/static --product $exe
    done
    rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
    for exe in slim-quant slim-gpu-check; do
        strip -o "$BUNDLE/$exe" ".build/static/release/$exe"
        self_contained "$BUNDLE/$exe" || exit 1
    done
    # Made by the very binary that ships, so the GPU machine's fresh_fixtures keeps them.
    prepare_fixtures "$BUNDLE/fixtures" "$BUNDLE/slim-quant"
    for exe in slim-quant slim-gpu-check; do xz -T0 -6 "$BUNDLE/$exe"; done
    xz -T0 -6 -c .build/cuda/libslimcuda.so >"$BUNDLE/libslimcuda.so.xz"
    du -sh "$BUNDLE"
    rm -rf .build/gpu-run  # binaries unpacked from an older bundle
    # It travels to the GPU machine with the checkout, 64 MiB at most together.
    size=$(du -sm "$BUNDLE" | cut -f1)
    [[ $size -le 56 ]] || { echo "error: $BUNDLE is $size MiB; with the checkout it must stay under 64 MiB" >&2; exit 1; }
    exit 0
fi
if [[ $MODE == build ]]; then build_binaries; exit 0; fi

# CPU-vs-GPU perplexity of "model:ctx:windows" specs with the backend in $SLIM_CUDA_LIB (or the
# default lookup), with the fp32 and with the fp16 KV cache on both devices; adds to FAILURES.
ppl_checks() {
    local spec model ctx windows cpu gpu kv
    ppl_of() { grep '"ppl"' | sed 's/[^0-9.eE+-]//g'; }
    for spec in "$@"; do
        IFS=: read -r model ctx windows <<<"$spec"
        args=(eval-ppl --model "$model" --dataset wikitext2 --data-dir "$FIX/data" --ctx "$ctx" --max-windows "$windows" --json)
        for kv in f32 f16 bf16; do  # each cache type on both devices
            cpu=$($BIN/slim-quant "${args[@]}" --kv-cache $kv 2>/dev/null | ppl_of || true)
            gpu=$($BIN/slim-quant "${args[@]}" --device cuda --kv-cache $kv 2>/dev/null | ppl_of || true)
            if awk -v a="$cpu" -v b="$gpu" 'BEGIN { d = (a - b) / a; if (d < 0) d = -d; exit !(a > 0 && d <= 0.001) }'; then
                echo "PASS PPL $(basename "$model") ctx $ctx × $windows, $kv KV cache: CPU $cpu, GPU $gpu (within 0.1 %)"
            else
                echo "FAIL PPL $(basename "$model") ctx $ctx × $windows, $kv KV cache: CPU ${cpu:-error}," \
                     "GPU ${gpu:-error} (must agree within 0.1 %)"
                FAILURES=$((FAILURES + 1))
            fi
        done
    done
}

# Greedy `generate` on the CPU and on the GPU (backend as for ppl_checks) must print the same
# continuation; adds to FAILURES. Models without a tokenizer (tiny-llama) are left out.
generate_checks() {
    local model cpu gpu args kv
    for model in "$@"; do
        [[ -f "$model/tokenizer.json" || -f "$model/tokenizer.model" ]] || continue
        for kv in f32 f16 bf16; do
            args=(generate --model "$model" --prompt "Once upon a time" --max-tokens 24 --kv-cache $kv)
            cpu=$($BIN/slim-quant "${args[@]}" 2>/dev/null || echo "error")
            gpu=$($BIN/slim-quant "${args[@]}" --device cuda 2>/dev/null || echo "error")
            if [[ "$cpu" == "$gpu" && "$cpu" != error ]]; then
                echo "PASS generate $(basename "$model"), $kv KV cache: GPU continues as the CPU does: ${gpu:0:60}…"
            else
                echo "FAIL generate $(basename "$model"), $kv KV cache: CPU '${cpu}' vs GPU '${gpu}'"
                FAILURES=$((FAILURES + 1))
            fi
        done
    done
}

# The emulator (--emulator, --rehearse) stands in for the GPU: the same steps, made quick.
EMULATED=false
[[ $MODE == emulator || $MODE == rehearse ]] && EMULATED=true
if [[ $MODE == emulator ]]; then
    need_swift
    note "build: libslimcuda-emulator.so (CPU emulator), slim-quant, slim-gpu-check (release)"
    bash scripts/build-cuda-emulator.sh .build/cuda/libslimcuda-emulator.so
    swift build -c release --product slim-quant
    swift build -c release --product slim-gpu-check
elif [[ $MODE == rehearse ]]; then
    [[ -f "$BUNDLE/slim-quant.xz" ]] || { echo "error: no $BUNDLE: run 'bash scripts/gpu-check.sh --bundle' first" >&2; exit 1; }
    [[ -f .build/cuda/libslimcuda-emulator.so ]] || bash scripts/build-cuda-emulator.sh .build/cuda/libslimcuda-emulator.so
    QUICK=(--quick)
    note "rehearsal: $BUNDLE as a GPU machine runs it, the CPU emulator standing in for the GPU"
elif ! has_gpu; then
    if [[ $MODE == all ]]; then bash scripts/build-cuda.sh; fi  # the kernels still compile
    echo "SKIP kernel and model checks: no NVIDIA GPU (nvidia-smi lists none, no /proc/driver/nvidia/gpus)"
    echo "SKIP PPL CPU vs GPU: no NVIDIA GPU"
    echo "SKIP speed: no NVIDIA GPU"
    exit 0
fi
if $EMULATED; then
    export SLIM_CUDA_LIB=$PWD/.build/cuda/libslimcuda-emulator.so
    note "the emulator's own rules and mma/shuffle semantics"
    .build/cuda/slim-cuda-emulator-selftest || FAILURES=$((FAILURES + 1))
fi

if [[ $MODE == rehearse || ($MODE == check && -f "$BUNDLE/slim-quant.xz") ]]; then
    note "using $BUNDLE"
    # Unpacked outside the bundle (114 MB): the bundle stays small enough to carry after a rehearsal.
    BIN=.build/gpu-run/bin FIX=$BUNDLE/fixtures
    mkdir -p "$BIN"
    for exe in slim-quant slim-gpu-check; do  # unpack again when the bundle is newer
        [[ -x "$BIN/$exe" && "$BIN/$exe" -nt "$BUNDLE/$exe.xz" ]] || unpack "$BUNDLE/$exe.xz" "$BIN/$exe"
    done
    if [[ $MODE == rehearse ]]; then
        # The GPU machine must keep the bundled fixtures: remade there, they would cost its time.
        if [[ "$(cat "$FIX/.made-by" 2>/dev/null)" != "$(stamp "$BIN/slim-quant")" ]]; then
            echo "FAIL bundle: its fixtures were not made by its slim-quant (a GPU machine would remake them)"
            FAILURES=$((FAILURES + 1))
        fi
    # Prefer the local nvcc (its CUDA matches the driver); else the bundled build.
    elif ! { { command -v nvcc >/dev/null 2>&1 || [[ -n "${CUDA_HOME:-}" ]]; } && bash scripts/build-cuda.sh "$BIN/libslimcuda.so"; }; then
        echo "note: using the bundled libslimcuda.so (no local nvcc, or its build failed)"
        unpack "$BUNDLE/libslimcuda.so.xz" "$BIN/libslimcuda.so"
    fi
elif [[ $MODE != emulator ]] &&
        [[ $MODE == all || ! -x $BIN/slim-gpu-check || ! -x $BIN/slim-quant || ! -f .build/cuda/libslimcuda.so ]]; then
    build_binaries
fi
$EMULATED || nvidia-smi -L 2>/dev/null || true

fresh_fixtures "$FIX" "$BIN/slim-quant"
MODELS=("$FIX/stories260K" "$FIX/stories260K-slim2" "$FIX/stories260K-slim3" "$FIX/stories260K-f16"
        "$FIX/tiny-llama-f16" "$FIX/tiny-llama-bf16" "$FIX/bias-llama" "$FIX/bias-llama-rtn4")
PACKED=("$FIX/stories260K-slim2:512:8" "$FIX/stories260K-slim3:512:8")
SMOL=${SLIM_SMOLLM2_DIR:-$HOME/.cache/slim-quant-fixtures/smollm2-135m-f32}
if $EMULATED; then
    PACKED=("$FIX/stories260K-slim2:512:2" "$FIX/stories260K-slim3:256:2")  # the emulator is slow
    echo "SKIP SmolLM2 checks: too slow on the emulator"
elif [[ -f "$SMOL/model.safetensors" ]] && wanted kernels ppl generate; then
    if [[ ! -d "$FIX/smollm2-rtn4" ]]; then
        note "quantize SmolLM2-135M (RTN 4-bit, group 128) for the packed checks"
        $BIN/slim-quant quantize --model "$SMOL" --bits 4 --method rtn --out "$FIX/smollm2-rtn4" \
            >"$FIX/quantize-smollm2.log" 2>&1 || { cat "$FIX/quantize-smollm2.log" >&2; exit 1; }
    fi
    MODELS+=("$SMOL" "$FIX/smollm2-rtn4")
    PACKED+=("$FIX/smollm2-rtn4:2048:2")
else
    echo "SKIP SmolLM2 checks: no fixture at $SMOL (scripts/prepare-fixtures.sh), or no step uses it"
fi

# MARK: steps (--steps picks a subset, so a GPU session can split them over calls of ≤ 10 min)

step_kernels() {
    local args=(--require-gpu "${QUICK[@]}") m
    $EMULATED && args+=(--no-speed)  # emulated GEMV rates at LLaMA-7B shapes take hours
    for m in "${MODELS[@]}"; do args+=(--model "$m"); done
    $BIN/slim-gpu-check "${args[@]}" || FAILURES=$((FAILURES + 1))
    $EMULATED || return 0
    echo "-- again with the ready fibers run in reverse order (a race changes results)"
    if ! SLIM_CUDA_EMULATOR_SCHEDULE=reverse $BIN/slim-gpu-check --require-gpu --no-speed --quick \
            --model "$FIX/stories260K-slim2" >"$FIX/reverse.log" 2>&1; then
        grep -v '^PASS' "$FIX/reverse.log"
        FAILURES=$((FAILURES + 1))
    fi
    echo "reverse schedule: $(tail -1 "$FIX/reverse.log")"
}

step_ppl() { ppl_checks "${PACKED[@]}"; }

step_generate() { generate_checks "${MODELS[@]}"; }

step_speed() {
    if $EMULATED; then  # runs the path; emulated speeds mean nothing
        echo "SKIP bench --synthetic llama-7b: the emulator would take hours"
        $BIN/slim-quant bench --model "$FIX/stories260K-slim2" --device cuda -p 32 -n 8 -r 1 || FAILURES=$((FAILURES + 1))
        $BIN/slim-quant bench --model "$FIX/stories260K-slim2" --device cuda -p 0 -n 8 -d 0,64 -r 1 --kv-cache f16 ||
            FAILURES=$((FAILURES + 1))
        return 0
    fi
    for bits in 2 3; do
        $BIN/slim-quant bench --synthetic llama-7b --bits $bits --device cuda -p 512 -n 128 -r 3 || FAILURES=$((FAILURES + 1))
    done
    # Decode with 2048 positions cached (2.1 GB of fp32 keys and values, as many bytes as the 2-bit
    # weights): the 16-bit caches halve them.
    for kv in f32 f16 bf16; do
        $BIN/slim-quant bench --synthetic llama-7b --bits 2 --device cuda -p 0 -n 128 -d 2048 -r 3 --kv-cache $kv ||
            FAILURES=$((FAILURES + 1))
    done
    $BIN/slim-quant bench --model "$FIX/stories260K-slim2" --device cuda -p 128 -n 64 -r 3 || FAILURES=$((FAILURES + 1))
}

step_sweep() {
    if $EMULATED; then  # small shapes: checks the path
        $BIN/slim-gpu-check --sweep --quick || FAILURES=$((FAILURES + 1))
    else
        $BIN/slim-gpu-check --sweep "${QUICK[@]}" || echo "SKIP decode sweep: slim-gpu-check --sweep failed"
    fi
}

step_baseline() {
    ${PYTHON:-python3} scripts/bench/torch_gemv.py || echo "SKIP torch cuBLAS baseline: the script failed"
}

# compute-sanitizer catches what neither the emulator nor result checks can: races in shared
# memory between warps, missing barriers (synccheck), reads of device memory nobody wrote
# (initcheck), out-of-bounds accesses the guard elements miss. The quick kernel set and two small
# models, every tool bounded by SLIM_SANITIZE_TIMEOUT seconds (default 120; a tool stopped there without a
# hazard is a SKIP line, not a failure).
step_sanitize() {
    local cs tool rc log limit=${SLIM_SANITIZE_TIMEOUT:-120}
    cs=$(command -v compute-sanitizer || true)
    for dir in "${CUDA_HOME:-}" /usr/local/cuda; do
        if [[ -z $cs && -n $dir && -x $dir/bin/compute-sanitizer ]]; then cs=$dir/bin/compute-sanitizer; fi
    done
    if $EMULATED || [[ -z $cs ]]; then
        echo "SKIP compute-sanitizer: ${cs:+emulator (no GPU)}${cs:-not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda/bin)}"
        return
    fi
    for tool in memcheck racecheck synccheck initcheck; do
        log=$FIX/sanitize-$tool.log rc=0
        timeout -k 10 "$limit" "$cs" --tool $tool --error-exitcode 99 --print-limit 20 \
            $BIN/slim-gpu-check --require-gpu --quick --no-speed \
            --model "$FIX/stories260K-slim2" --model "$FIX/tiny-llama-f16" >"$log" 2>&1 || rc=$?
        if [[ $rc == 0 ]]; then
            echo "PASS compute-sanitizer --tool $tool: no hazards ($(tail -1 "$log"))"
        elif [[ $rc == 124 ]] && ! grep -v 'COMPUTE-SANITIZER' "$log" | grep -q '^========='; then
            # Slow is not wrong: report what was covered, fail only on a hazard.
            echo "SKIP compute-sanitizer --tool $tool: no hazard in $limit s, then stopped" \
                 "($(grep -c '^PASS' "$log") checks passed; SLIM_SANITIZE_TIMEOUT allows longer)"
        else
            echo "FAIL compute-sanitizer --tool $tool: exit $rc (99: hazards found, 124: over $limit s, 1: a check failed)"
            grep -m 40 -E '^=========|^FAIL' "$log" || tail -20 "$log"
            FAILURES=$((FAILURES + 1))
        fi
    done
}

declare -A TITLES=(
    [kernels]="kernels, models, GEMV bandwidth (slim-gpu-check)"
    [ppl]="perplexity: CPU vs GPU (WikiText-2, paper protocol)"
    [generate]="generate: CPU vs GPU (greedy)"
    [speed]="decode speed: synthetic LLaMA-7B (target ≥ 200 tok/s on an H100) and a real packed checkpoint"
    [sweep]="tuning: decode GEMV per SLIM_CUDA_DEPTH × SLIM_CUDA_WARPS (the automatic choice is depth 0, warps 0)"
    [baseline]="baseline: fp16 cuBLAS GEMV via torch"
    [sanitize]="compute-sanitizer: memcheck, racecheck, synccheck, initcheck on the quick kernel set"
)
for step in "${ALL_STEPS[@]}"; do
    wanted $step || continue
    note "${TITLES[$step]}"
    began=$SECONDS
    step_$step
    echo "-- step $step: $((SECONDS - began)) s"
done

label=gpu-check
[[ $MODE == emulator ]] && label="gpu-check (emulator)"
[[ $MODE == rehearse ]] && label="gpu-check (rehearsal of $BUNDLE on the emulator)"
if [[ $FAILURES -gt 0 ]]; then
    echo "$label: $FAILURES step(s) FAILED"
    exit 1
fi
echo "$label: all checks passed"
