#!/usr/bin/env bash
# Builds libslimcuda-emulator.so: the CUDA backend's own sources (Sources/CSlimCUDA/cuda/*.cu)
# compiled as C++ by the host compiler against the CPU emulator of the CUDA runtime
# (Sources/CSlimCUDA/emulator). It exports the same C API as libslimcuda.so, so slim-quant
# (--cuda-lib) and slim-gpu-check run the real kernels, launch code and model graph on the CPU.
# For correctness where no GPU is lent; its speeds mean nothing. Also builds the emulator's
# self-test, slim-cuda-emulator-selftest, in the same directory.
#
#   bash scripts/build-cuda-emulator.sh [OUTPUT]   (default: .build/cuda/libslimcuda-emulator.so)
#
# Environment: CXX (default g++), CC (default gcc), SLIM_EMULATOR_FLAGS (extra flags, e.g.
# "-fsanitize=undefined"). Exit status: 0 built; 1 compilation failed.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-.build/cuda/libslimcuda-emulator.so}
CXX=${CXX:-g++}
CC=${CC:-gcc}
EXTRA=(${SLIM_EMULATOR_FLAGS:-})
OBJ=$(mktemp -d)
trap 'rm -rf "$OBJ"' EXIT
mkdir -p "$(dirname "$OUT")"

# -ffp-contract=off: no FMA contraction behind __fmul_rn/__fadd_rn; no _FORTIFY_SOURCE: the
# fault handler leaves a fiber stack with siglongjmp.
COMMON=(-O2 -g -fPIC -fvisibility=hidden -ffp-contract=off -fno-strict-aliasing -U_FORTIFY_SOURCE -Wall -Wno-unknown-pragmas
        -DSLIM_CUDA_BUILDING_LIBRARY -ISources/CSlimCUDA/emulator/include -ISources/CSlimCUDA/include "${EXTRA[@]}")
"$CC" "${COMMON[@]}" -std=c11 -c Sources/CSlimCUDA/slim_cuda_layout.c -o "$OBJ/layout.o"
for src in Sources/CSlimCUDA/cuda/*.cu Sources/CSlimCUDA/emulator/emulator.cpp Sources/CSlimCUDA/emulator/runtime_api.cpp; do
    "$CXX" "${COMMON[@]}" -std=c++17 -x c++ -include cuda_runtime.h -c "$src" -o "$OBJ/$(basename "$src").o" &
done
wait_all() { local status=0; for job in $(jobs -p); do wait "$job" || status=1; done; return $status; }
if ! wait_all; then
    echo "build-cuda-emulator: compilation failed" >&2
    exit 1
fi
"$CXX" -shared "${EXTRA[@]}" -o "$OUT.tmp.$$" "$OBJ"/*.o -ldl -lpthread
mv -f "$OUT.tmp.$$" "$OUT"
# The emulator's self-test (its rules and its mma/shuffle semantics), next to the library.
TEST=$(dirname "$OUT")/slim-cuda-emulator-selftest
"$CXX" "${COMMON[@]}" -std=c++17 -x c++ -include cuda_runtime.h -c Sources/CSlimCUDA/emulator/selftest.cpp \
    -o "$OBJ/selftest.o"
"$CXX" "${EXTRA[@]}" -o "$TEST.tmp.$$" "$OBJ/selftest.o" "$OBJ/emulator.cpp.o" "$OBJ/runtime_api.cpp.o" -lpthread
mv -f "$TEST.tmp.$$" "$TEST"
echo "build-cuda-emulator: built $OUT and $TEST" >&2
