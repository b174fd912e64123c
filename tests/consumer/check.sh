#!/usr/bin/env bash
# Installs ewe from the build tree into a scratch prefix, then builds and runs the
# consumer project both ways (find_package and add_subdirectory), own_vae.cpp (the
# program docs/api.md shows, checked to be the same text) included. With a CUDA
# compiler (ewe built with CUDA) it also builds consumer_cuda against the installed
# ewe::cuda and checks that find_package(ewe COMPONENTS cuda) without the CUDA
# language enabled refuses, naming enable_language(CUDA). Run by ctest.
#   check.sh SOURCE_DIR BUILD_DIR [CUDA_COMPILER CUDA_ARCHITECTURES]
set -euo pipefail
source_dir=$1 build_dir=$2 cuda_compiler=${3:-} cuda_archs=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
common=(-DEWE_SOURCE_DIR="$source_dir" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release)
for mode in package subdirectory; do
  cmake -S "$source_dir/tests/consumer" -B "$work/$mode" -DEWE_CONSUME=$mode "${common[@]}" >/dev/null
  cmake --build "$work/$mode" -j 2 >/dev/null
  # (assignments, so that set -e stops at a program that fails)
  out=$("$work/$mode/consumer")
  echo "consumer via $mode: $out"
  out=$(cd "$work/$mode" && ./own_vae 2)
  echo "own_vae via $mode: $out"
done
# docs/api.md shows own_vae.cpp whole: the page and the program must not drift apart.
sed -n '/^```cpp$/,/^```$/p' "$source_dir/docs/api.md" | sed '1d;$d' >"$work/api_program.cpp"
diff -u "$source_dir/tests/consumer/own_vae.cpp" "$work/api_program.cpp" >&2 ||
  { echo "FAIL: docs/api.md's program differs from tests/consumer/own_vae.cpp"; exit 1; }
[[ -n $cuda_compiler ]] || exit 0

[[ -d $work/prefix/include/ewe/kernels && ! -e $work/prefix/include/kernels ]] ||
  { echo "FAIL: kernels/ is not installed under include/ewe/kernels (only)"; exit 1; }
cuda=(-DEWE_CONSUME=package -DEWE_CONSUME_CUDA=ON -DCMAKE_CUDA_COMPILER="$cuda_compiler"
  -DCMAKE_CUDA_ARCHITECTURES="$cuda_archs" "${common[@]}")
if out=$(cmake -S "$source_dir/tests/consumer" -B "$work/no-cuda-language" -DEWE_CONSUME_CUDA_LANGUAGE=OFF \
    "${cuda[@]}" 2>&1); then
  echo "FAIL: find_package(ewe COMPONENTS cuda) succeeded without the CUDA language"; exit 1
fi
grep -q "enable_language(CUDA)" <<<"$out" ||
  { echo "FAIL: find_package(ewe COMPONENTS cuda) without the CUDA language did not say why:"; echo "$out"; exit 1; }
echo "consumer via package, cuda component, CUDA language off: refused, naming enable_language(CUDA)"
cmake -S "$source_dir/tests/consumer" -B "$work/package-cuda" "${cuda[@]}" >/dev/null
cmake --build "$work/package-cuda" -j 2 >/dev/null
out=$("$work/package-cuda/consumer_cuda")
echo "consumer via package, ewe::cuda: $out"
