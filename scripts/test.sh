#!/usr/bin/env bash
# Builds ewe and runs its whole test suite (ctest): the CPU tests, the CUDA tests
# when nvcc, cuDNN and cuBLAS are present (they skip, saying so, without a GPU),
# and a consumer project built with find_package(ewe) and add_subdirectory.
# Usage: bash scripts/test.sh [build-dir]     (EWE_DATA: folder of Quick, Draw! .npy)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/ensure_deps.sh"
build=${1:-$root/build}
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then export CUDACXX=/usr/local/cuda/bin/nvcc; fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release ${EWE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
