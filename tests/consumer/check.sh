#!/usr/bin/env bash
# Installs ewe the way README's "Install" section does, then builds and runs the consumer
# project both ways (find_package and add_subdirectory), own_vae.cpp (the program
# docs/api.md shows, checked to be the same text) included:
# - package: ewe freshly configured and installed right away, no target built (with nvcc
#   present, EWE_WITH_CUDA is on and the CUDA module is not built: the install must
#   still succeed, say how to build the module, and find_package(ewe COMPONENTS cuda)
#   must refuse naming the module); the consumer gets ewe's -march (EWE_ARCH, native by
#   default; none with EWE_ARCH=portable) and its run prints no build warning.
#   Likewise ewe::compiled: COMPONENTS compiled refused naming libewe_cpu.a.
# - subdirectory: add_subdirectory(<ewe source>): the consumer only (own_vae.cpp, the
#   same source compiled with the same flags, is built and run through the package).
# Then own_vae.cpp against ewe::compiled (libewe_cpu.a) of BUILD_DIR installed: the same
# output as header-only.
# With `cuda` (ewe built with CUDA) it also builds consumer_cuda against the installed
# ewe::cuda of BUILD_DIR, without the CUDA language, and checks that it links no CUDA
# library and loads the installed backend module (libewe_cuda.so) when it asks for
# Device::cuda, and that the installed CUDA headers (kernels included) resolve from
# the prefix's include folder alone. Run by ctest.
#   check.sh SOURCE_DIR BUILD_DIR [cuda]
set -euo pipefail
source_dir=$1 build_dir=$2 cuda=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(-DEWE_SOURCE_DIR="$source_dir" -DCMAKE_BUILD_TYPE=Release)

# README's install: configure, then install at once (ewe is header-only).
cmake -S "$source_dir" -B "$work/ewe-build" -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; echo "FAIL: configuring ewe"; exit 1; }
cmake --install "$work/ewe-build" --prefix "$work/fresh" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; echo "FAIL: cmake --install right after configure"; exit 1; }
[[ -f $work/fresh/lib/cmake/ewe/eweConfig.cmake && -f $work/fresh/include/ewe/ewe.hpp ]] ||
  { echo "FAIL: the install right after configure left no eweConfig.cmake or headers"; exit 1; }
if grep -q "EWE_WITH_CUDA:BOOL=ON" "$work/ewe-build/CMakeCache.txt"; then
  grep -q "cmake --build $work/ewe-build --target ewe_cuda_backend" "$work/install.log" ||
    { cat "$work/install.log"; echo "FAIL: the install does not say how to build the CUDA module"; exit 1; }
  if cmake -S "$source_dir/tests/consumer" -B "$work/no-module" -DEWE_CONSUME=package -DEWE_CONSUME_CUDA=ON \
    -DCMAKE_PREFIX_PATH="$work/fresh" "${common[@]}" >"$work/no-module.log" 2>&1; then
    echo "FAIL: find_package(ewe COMPONENTS cuda) succeeded without the CUDA module"; exit 1
  fi
  tr -s ' \n' ' ' <"$work/no-module.log" | grep -q "libewe_cuda.so is not installed .*--target ewe_cuda_backend" ||
    { cat "$work/no-module.log"; echo "FAIL: find_package(ewe COMPONENTS cuda) does not name the module"; exit 1; }
  echo "install right after configure (CUDA on, module not built): ok; COMPONENTS cuda refused naming the module"
else
  echo "install right after configure (CUDA off): ok"
fi
if [[ -f $work/fresh/lib/cmake/ewe/eweCompiledTargets.cmake ]]; then
  if cmake -S "$source_dir/tests/consumer" -B "$work/no-archive" --no-warn-unused-cli -DEWE_CONSUME=package \
    -DEWE_CONSUME_COMPILED=ON -DCMAKE_PREFIX_PATH="$work/fresh" "${common[@]}" >"$work/no-archive.log" 2>&1; then
    echo "FAIL: find_package(ewe COMPONENTS compiled) succeeded without libewe_cpu.a"; exit 1
  fi
  tr -s ' \n' ' ' <"$work/no-archive.log" | grep -q "libewe_cpu.a is not installed .*--target ewe_compiled" ||
    { cat "$work/no-archive.log"; echo "FAIL: find_package(ewe COMPONENTS compiled) does not name the archive"; exit 1; }
  echo "install right after configure: COMPONENTS compiled refused naming libewe_cpu.a"
fi
cmake -S "$source_dir/tests/consumer" -B "$work/portable" --no-warn-unused-cli -DEWE_CONSUME=package -DEWE_ARCH=portable \
  -DCMAKE_PREFIX_PATH="$work/fresh" "${common[@]}" >/dev/null
if grep -q -- "-march" "$work/portable/CMakeFiles/consumer.dir/flags.make"; then
  echo "FAIL: EWE_ARCH=portable still compiles the consumer with -march"; exit 1
fi

for mode in package subdirectory; do
  cmake -S "$source_dir/tests/consumer" -B "$work/$mode" --no-warn-unused-cli -DEWE_CONSUME=$mode \
    -DCMAKE_PREFIX_PATH="$work/fresh" "${common[@]}" >/dev/null
  grep -q -- "-march=native" "$work/$mode/CMakeFiles/consumer.dir/flags.make" ||
    { echo "FAIL: via $mode, the consumer is not compiled with ewe's -march=native"; exit 1; }
  targets=(consumer)
  [[ $mode == package ]] && targets+=(own_vae)
  cmake --build "$work/$mode" --target "${targets[@]}" -j 2 >/dev/null
  # (assignments, so that set -e stops at a program that fails)
  out=$("$work/$mode/consumer" 2>"$work/stderr")
  echo "consumer via $mode: $out"
  [[ ! -s $work/stderr ]] || { cat "$work/stderr"; echo "FAIL: the consumer via $mode is told its build is slow"; exit 1; }
done
out=$(cd "$work/package" && ./own_vae 2)
echo "own_vae via package: $out"
# own_vae.cpp against the installed ewe::compiled (built in BUILD_DIR) must print what
# the header-only build printed.
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$source_dir/tests/consumer" -B "$work/package-compiled" --no-warn-unused-cli -DEWE_CONSUME=package \
  -DEWE_CONSUME_COMPILED=ON -DCMAKE_PREFIX_PATH="$work/prefix" "${common[@]}" >/dev/null
cmake --build "$work/package-compiled" --target own_vae_compiled -j 2 >/dev/null
compiled_out=$(cd "$work/package-compiled" && ./own_vae_compiled 2)
header_only_out=$(cd "$work/package" && ./own_vae 2)
[[ $compiled_out == "$header_only_out" ]] ||
  { echo "FAIL: own_vae against ewe::compiled printed '$compiled_out', header-only '$header_only_out'"; exit 1; }
echo "own_vae via package, ewe::compiled: the same output"
# docs/api.md shows own_vae.cpp whole, as its first C++ block: the page and the program
# must not drift apart.
sed -n '/^```cpp$/,/^```$/{p;/^```$/q}' "$source_dir/docs/api.md" | sed '1d;$d' >"$work/api_program.cpp"
diff -u "$source_dir/tests/consumer/own_vae.cpp" "$work/api_program.cpp" >&2 ||
  { echo "FAIL: docs/api.md's program differs from tests/consumer/own_vae.cpp"; exit 1; }
[[ -n $cuda ]] || exit 0

[[ -d $work/prefix/include/ewe/kernels && ! -e $work/prefix/include/kernels ]] ||
  { echo "FAIL: kernels/ is not installed under include/ewe/kernels (only)"; exit 1; }
# The installed CUDA headers find their kernels ("ewe/kernels/x.cuh") in the prefix alone.
nvcc=$(sed -n 's/^CMAKE_CUDA_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
cudnn_include=$(sed -n 's/^EWE_CUDNN_INCLUDE_DIR:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
printf '#include <ewe/cuda/backend.cuh>\n#include <ewe/cluster/dbscan.cuh>\n#include <ewe/cluster/kmeans.cuh>\n' \
  >"$work/installed_headers.cu"
"$nvcc" -E -std=c++20 -I"$work/prefix/include" -I"$cudnn_include" "$work/installed_headers.cu" -o /dev/null ||
  { echo "FAIL: the installed CUDA headers do not resolve from $work/prefix/include"; exit 1; }
echo "installed CUDA headers and kernels resolve from the prefix's include folder alone"
module=$(find "$work/prefix" -name libewe_cuda.so | head -1)
[[ -n $module ]] || { echo "FAIL: the CUDA backend module libewe_cuda.so is not installed"; exit 1; }
echo "installed module: ${module#$work/prefix/}"
cmake -S "$source_dir/tests/consumer" -B "$work/package-cuda" -DEWE_CONSUME=package -DEWE_CONSUME_CUDA=ON \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${common[@]}" >/dev/null
cmake --build "$work/package-cuda" -j 2 >/dev/null
if ldd "$work/package-cuda/consumer_cuda" | grep -E "libcudart|libcublas|libcudnn"; then
  echo "FAIL: consumer_cuda links CUDA libraries (above); it should load them with the module only"; exit 1
fi
out=$(env -u EWE_CUDA_BACKEND "$work/package-cuda/consumer_cuda") || { echo "FAIL: consumer_cuda: $out"; exit 1; }
echo "consumer via package, ewe::cuda: links no CUDA library; $out"
