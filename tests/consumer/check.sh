#!/usr/bin/env bash
# Installs ewe from the build tree into a scratch prefix, then builds and runs the
# consumer project both ways (find_package and add_subdirectory), own_vae.cpp (the
# program docs/api.md shows, checked to be the same text) included, and own_vae.cpp
# against the installed ewe::compiled (the same output as header-only). With `cuda` (ewe
# built with CUDA) it also builds consumer_cuda against the installed ewe::cuda,
# without the CUDA language, and checks that it links no CUDA library and loads the
# installed backend module (libewe_cuda.so) when it asks for Device::cuda. Run by ctest.
#   check.sh SOURCE_DIR BUILD_DIR [cuda]
set -euo pipefail
source_dir=$1 build_dir=$2 cuda=${3:-}
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
# own_vae.cpp against the installed ewe::compiled must print what the header-only build printed.
compiled_out=$(cd "$work/package" && ./own_vae_compiled 2)
header_only_out=$(cd "$work/package" && ./own_vae 2)
[[ $compiled_out == "$header_only_out" ]] ||
  { echo "FAIL: own_vae against ewe::compiled printed '$compiled_out', header-only '$header_only_out'"; exit 1; }
echo "own_vae via package, ewe::compiled: the same output"
# docs/api.md shows own_vae.cpp whole: the page and the program must not drift apart.
sed -n '/^```cpp$/,/^```$/p' "$source_dir/docs/api.md" | sed '1d;$d' >"$work/api_program.cpp"
diff -u "$source_dir/tests/consumer/own_vae.cpp" "$work/api_program.cpp" >&2 ||
  { echo "FAIL: docs/api.md's program differs from tests/consumer/own_vae.cpp"; exit 1; }
[[ -n $cuda ]] || exit 0

[[ -d $work/prefix/include/ewe/kernels && ! -e $work/prefix/include/kernels ]] ||
  { echo "FAIL: kernels/ is not installed under include/ewe/kernels (only)"; exit 1; }
module=$(find "$work/prefix" -name libewe_cuda.so | head -1)
[[ -n $module ]] || { echo "FAIL: the CUDA backend module libewe_cuda.so is not installed"; exit 1; }
echo "installed module: ${module#$work/prefix/}"
cmake -S "$source_dir/tests/consumer" -B "$work/package-cuda" -DEWE_CONSUME=package -DEWE_CONSUME_CUDA=ON \
  "${common[@]}" >/dev/null
cmake --build "$work/package-cuda" -j 2 >/dev/null
if ldd "$work/package-cuda/consumer_cuda" | grep -E "libcudart|libcublas|libcudnn"; then
  echo "FAIL: consumer_cuda links CUDA libraries (above); it should load them with the module only"; exit 1
fi
out=$(env -u EWE_CUDA_BACKEND "$work/package-cuda/consumer_cuda") || { echo "FAIL: consumer_cuda: $out"; exit 1; }
echo "consumer via package, ewe::cuda: links no CUDA library; $out"
