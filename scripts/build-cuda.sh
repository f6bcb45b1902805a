#!/usr/bin/env bash
# Builds libslimcuda.so, the CUDA backend behind `--device cuda`, from Sources/CSlimCUDA/cuda/*.cu.
#
#   bash scripts/build-cuda.sh [OUTPUT]      (default: .build/cuda/libslimcuda.so)
#
# Compile and link only: no GPU is needed. SASS for sm_80 (A100) and sm_90 (H100/H200) plus
# compute_90 PTX for newer GPUs; the CUDA runtime is linked statically, so the GPU machine needs
# only the NVIDIA driver (libcuda.so.1). slim-quant finds the library next to its binary's
# .build directory, through $SLIM_CUDA_LIB, or --cuda-lib.
#
# nvcc is taken from, in order: $NVCC, PATH, $CUDA_HOME/bin, then the PyPI wheels
# nvidia-cuda-nvcc/-runtime/-crt (version $SLIM_NVCC_VERSION, default 13.5.37), installed once
# into a cached virtual environment ($SLIM_NVCC_VENV, default ~/.cache/slim-quant-nvcc).
# Environment: SLIM_CUDA_ARCHS="80 90" (SASS targets; PTX for the last), SLIM_CUDA_VERBOSE=1
# (ptxas register/spill report).
# Exit status: 0 built; 1 no nvcc could be found or installed, or compilation failed.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-.build/cuda/libslimcuda.so}
ARCHS=${SLIM_CUDA_ARCHS:-"80 90"}
WHEEL_VERSION=${SLIM_NVCC_VERSION:-13.5.37}
VENV=${SLIM_NVCC_VENV:-$HOME/.cache/slim-quant-nvcc}

find_nvcc() {
    if [[ -n "${NVCC:-}" ]]; then echo "$NVCC"; return 0; fi
    if command -v nvcc >/dev/null 2>&1; then command -v nvcc; return 0; fi
    if [[ -n "${CUDA_HOME:-}" && -x "$CUDA_HOME/bin/nvcc" ]]; then echo "$CUDA_HOME/bin/nvcc"; return 0; fi
    local found
    found=$(ls "$VENV"/lib/python3*/site-packages/nvidia/*/bin/nvcc 2>/dev/null | head -1 || true)
    if [[ -n "$found" ]]; then echo "$found"; return 0; fi
    return 1
}

if ! NVCC_BIN=$(find_nvcc); then
    echo "build-cuda: no nvcc on PATH or in CUDA_HOME; installing the PyPI nvcc $WHEEL_VERSION into $VENV" >&2
    if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet --disable-pip-version-check \
            "nvidia-cuda-nvcc==$WHEEL_VERSION" "nvidia-cuda-runtime==$WHEEL_VERSION" \
            "nvidia-cuda-crt==$WHEEL_VERSION" nvidia-cuda-cccl; }; then
        echo "build-cuda: error: could not install nvcc from PyPI; set NVCC or CUDA_HOME" >&2
        exit 1
    fi
    if ! NVCC_BIN=$(find_nvcc); then
        echo "build-cuda: error: the nvcc wheel installed but no nvcc was found under $VENV" >&2
        exit 1
    fi
fi

GENCODE=()
last=""
for arch in $ARCHS; do
    GENCODE+=(-gencode "arch=compute_$arch,code=sm_$arch")
    last=$arch
done
GENCODE+=(-gencode "arch=compute_$last,code=compute_$last")

VERBOSE=()
if [[ "${SLIM_CUDA_VERBOSE:-0}" != 0 ]]; then VERBOSE=(-Xptxas -v); fi

mkdir -p "$(dirname "$OUT")"
TMP="$OUT.tmp.$$"
trap 'rm -f "$TMP"' EXIT
echo "build-cuda: $("$NVCC_BIN" --version | tail -1) → $OUT (archs: $ARCHS)" >&2
"$NVCC_BIN" -O3 -std=c++17 -lineinfo -shared -cudart static \
    -DSLIM_CUDA_BUILDING_LIBRARY -ISources/CSlimCUDA/include \
    -Xcompiler -fPIC,-fvisibility=hidden,-Wall \
    -Xlinker --no-undefined -ldl \
    "${GENCODE[@]}" "${VERBOSE[@]}" \
    Sources/CSlimCUDA/cuda/*.cu Sources/CSlimCUDA/slim_cuda_layout.c -o "$TMP"
mv -f "$TMP" "$OUT"
trap - EXIT
echo "build-cuda: built $OUT" >&2
