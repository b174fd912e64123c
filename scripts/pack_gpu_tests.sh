#!/usr/bin/env bash
# Packs the GPU check's programs, prebuilt here, into .carry/ for a GPU machine without
# the toolchain (docs/gpu_check.md). Builds the `gpu` presets of CMakePresets.json
# (build-gpu/, target ewe_gpu_programs), copies the programs and the CUDA backend module
# to .carry/build/ at their build-tree paths, and rewrites the tests' ctest file so that
# it runs wherever the repository lands: paths relative to the file's own folder, the
# module named in EWE_CUDA_BACKEND, and LD_LIBRARY_PATH extended, when ctest reads it,
# with .carry/lib (libgomp) and the cuDNN/cuBLAS folders of the machine's python nvidia
# wheels. EWE_DATA's sheep.npy and cat.npy go to .carry/data. On the GPU machine:
#   EWE_REQUIRE_CUDA=1 ctest --test-dir .carry/build/tests -L cuda -j 4 --output-on-failure
#   EWE_REQUIRE_CUDA=1 ctest --test-dir .carry/build/tests -L sanitizer -j 16 --output-on-failure
# Usage: [EWE_DATA=folder] bash scripts/pack_gpu_tests.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-gpu carry=$root/.carry
cd "$root"
cmake --preset gpu -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" >/dev/null
cmake --build --preset gpu -j "${EWE_BUILD_JOBS:-$(nproc)}"

rm -rf "$carry"
mkdir -p "$carry/build/tests" "$carry/lib"
for program in $(cd "$build" && find tests bench examples lib -type f -perm -u+x \
    \( -name 'test_cuda_*' -o -name 'bench_cuda_*' -o -name sheep_vae -o -name libewe_cuda.so \)); do
  mkdir -p "$carry/build/$(dirname "$program")"
  cp "$build/$program" "$carry/build/$program"
done
cp "$(readlink -f "$(g++ -print-file-name=libgomp.so.1)")" "$carry/lib/libgomp.so.1"  # OpenMP's runtime
data=$(sed -n 's/^EWE_TEST_DATA:PATH=//p' "$build/CMakeCache.txt")
if [[ -f ${EWE_DATA:-$data}/sheep.npy ]]; then
  mkdir -p "$carry/data"
  cp "${EWE_DATA:-$data}"/{sheep,cat}.npy "$carry/data/"
fi

# ctest reads the file in its own folder (.carry/build/tests), so `pwd` places it.
{
  cat <<'CMAKE'
# Written by scripts/pack_gpu_tests.sh from build-gpu/tests/CTestTestfile.cmake.
execute_process(COMMAND pwd OUTPUT_VARIABLE _ewe_here OUTPUT_STRIP_TRAILING_WHITESPACE)
get_filename_component(_ewe_build "${_ewe_here}/.." ABSOLUTE)
get_filename_component(_ewe_source "${_ewe_here}/../../.." ABSOLUTE)
get_filename_component(_ewe_data "${_ewe_here}/../../data" ABSOLUTE)
execute_process(COMMAND python3 -c "import nvidia, pathlib; print(':'.join(str(p) for d in nvidia.__path__ for p in sorted(pathlib.Path(d).glob('*/lib'))))"
  OUTPUT_VARIABLE _ewe_wheels OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
set(ENV{LD_LIBRARY_PATH} "${_ewe_build}/../lib:${_ewe_wheels}:/usr/local/cuda/lib64:$ENV{LD_LIBRARY_PATH}")
set(ENV{EWE_CUDA_BACKEND} "${_ewe_build}/lib/libewe_cuda.so")
CMAKE
  # Longest path first: the build and data folders may lie inside the source folder.
  sed -e "s|$build|\${_ewe_build}|g" -e "s|${data:-@ewe-no-data@}|\${_ewe_data}|g" -e "s|$root|\${_ewe_source}|g" \
    "$build/tests/CTestTestfile.cmake"
} >"$carry/build/tests/CTestTestfile.cmake"
if grep -qF "$(dirname "$root")/" "$carry/build/tests/CTestTestfile.cmake"; then
  echo "pack_gpu_tests: a path of this machine is left in the ctest file:" >&2
  grep -nF "$(dirname "$root")/" "$carry/build/tests/CTestTestfile.cmake" >&2
  exit 1
fi
{ git rev-parse HEAD; git diff --quiet HEAD || echo "(plus uncommitted changes)"; } >"$carry/build/COMMIT"
echo "packed $carry ($(du -sh "$carry" | cut -f1)): $(find "$carry/build" -type f -perm -u+x | wc -l) programs"
