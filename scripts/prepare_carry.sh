#!/usr/bin/env bash
# Prepares .carry/ (git-ignored) on this development machine for scripts/gpu_check.sh
# on the lent GPU machine, which has nvcc, CMake and ninja but maybe no Eigen,
# doctest or Google Benchmark. It copies their headers and libraries into .carry/
# and writes small CMake package files (.carry/cmake/<name>/) that point at them,
# relative to their own location, so the folder works wherever it is carried.
#   Eigen 3 (headers)            -> .carry/include/eigen3,    Eigen3_DIR=.carry/cmake/Eigen3
#   doctest (header)             -> .carry/include/doctest,   doctest_DIR=.carry/cmake/doctest
#   Google Benchmark             -> .carry/include/benchmark + .carry/lib, benchmark_DIR=.carry/cmake/benchmark
#   CLI11 (header, for sheep_vae) -> .carry/include/CLI,       CLI11_DIR=.carry/cmake/CLI11
# With --prebuilt it also builds the CUDA tests, benchmarks and sheep_vae (with CUDA) here
# (build-gpubin/, sm_90, no -march=native) and copies the programs to .carry/build/ at
# their paths in the build tree, the CUDA backend module with them (.carry/build/lib/
# libewe_cuda.so, which gpu_check.sh names in EWE_CUDA_BACKEND for the host-compiled
# programs that load it: sheep_vae, test_cuda_test_step_replay), with the tests' ctest
# file as a template
# (.carry/build/tests/CTestTestfile.cmake.in: this machine's source, build and data
# paths replaced by @EWE_SOURCE@, @EWE_CARRIED_BUILD@ and @EWE_DATA@, which
# gpu_check.sh fills in wherever the repository lands), so the device's minutes go to
# running them through ctest. With EWE_DATA naming the Quick, Draw! folder, sheep.npy
# and cat.npy are copied to .carry/data for gpu_check.sh's example stage (a transient
# copy in an ignored folder).
# Google Benchmark is carried as a static library when one is found (a system
# libbenchmark.a, or a source tree in $EWE_BENCHMARK_SRC, built here with -fPIC),
# else as the system's shared library (gpu_check.sh puts .carry/lib on LD_LIBRARY_PATH).
# Usage: bash scripts/prepare_carry.sh [--prebuilt]   (then name .carry in the device run's carry)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
carry=$root/.carry
eigen_src=${EWE_EIGEN_INCLUDE:-/usr/include/eigen3}
doctest_src=${EWE_DOCTEST_INCLUDE:-/usr/include/doctest}
bench_include=${EWE_BENCHMARK_INCLUDE:-/usr/include/benchmark}
cli11_src=${EWE_CLI11_INCLUDE:-/usr/include/CLI}
prebuilt=0
for arg in "$@"; do
  case $arg in
    --prebuilt) prebuilt=1 ;;
    *) echo "prepare_carry: unknown argument '$arg' (expected --prebuilt)" >&2; exit 2 ;;
  esac
done
libdir=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)

for d in "$eigen_src/Eigen" "$doctest_src" "$bench_include" "$cli11_src"; do
  [[ -d $d ]] || { echo "prepare_carry: $d is missing (apt-get install libeigen3-dev doctest-dev libbenchmark-dev libcli11-dev)" >&2; exit 1; }
done

rm -rf "$carry"
mkdir -p "$carry/include" "$carry/lib" "$carry/cmake/Eigen3" "$carry/cmake/doctest" "$carry/cmake/benchmark" "$carry/cmake/CLI11"
cp -r "$eigen_src" "$carry/include/eigen3"
cp -r "$doctest_src" "$carry/include/doctest"
cp -r "$bench_include" "$carry/include/benchmark"
cp -r "$cli11_src" "$carry/include/CLI"

# --- versions
eigen_version=$(awk '/#define EIGEN_WORLD_VERSION/{w=$3} /#define EIGEN_MAJOR_VERSION/{M=$3} /#define EIGEN_MINOR_VERSION/{m=$3} END{print w"."M"."m}' "$eigen_src/Eigen/src/Core/util/Macros.h")
doctest_version=$(awk '/#define DOCTEST_VERSION_MAJOR/{a=$3} /#define DOCTEST_VERSION_MINOR/{b=$3} /#define DOCTEST_VERSION_PATCH/{c=$3} END{print a"."b"."c}' "$doctest_src/doctest.h")

# --- Google Benchmark library: static if we can, shared otherwise
bench_kind="" soname="" bench_version=""
if [[ -f /usr/lib/"$libdir"/libbenchmark.a ]]; then
  cp /usr/lib/"$libdir"/libbenchmark.a "$carry/lib/"
  bench_kind=STATIC
elif [[ -n ${EWE_BENCHMARK_SRC:-} && -f $EWE_BENCHMARK_SRC/CMakeLists.txt ]]; then
  tmp=$(mktemp -d)
  cmake -S "$EWE_BENCHMARK_SRC" -B "$tmp" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBENCHMARK_ENABLE_TESTING=OFF -DBENCHMARK_ENABLE_GTEST_TESTS=OFF \
    -DBENCHMARK_ENABLE_WERROR=OFF >/dev/null
  cmake --build "$tmp" --target benchmark -j "$(nproc)" >/dev/null
  cp "$(find "$tmp" -name libbenchmark.a | head -1)" "$carry/lib/"
  rm -rf "$carry/include/benchmark" && cp -r "$EWE_BENCHMARK_SRC/include/benchmark" "$carry/include/benchmark"
  rm -rf "$tmp"
  bench_kind=STATIC
else
  real=$(readlink -f /usr/lib/"$libdir"/libbenchmark.so)
  soname=$(objdump -p "$real" | awk '/SONAME/{print $2}')
  cp "$real" "$carry/lib/$soname"
  bench_kind=SHARED
  bench_version=$(basename "$real" | sed -n 's/^libbenchmark\.so\.\([0-9.]*\)$/\1/p')
  echo "prepare_carry: no static Google Benchmark here (Debian ships only the shared one); carrying $soname" >&2
fi
bench_file=$([[ $bench_kind == STATIC ]] && echo libbenchmark.a || echo "$soname")

# --- CMake package files
version_file() {  # name version -> <Name>ConfigVersion.cmake accepting any requested version <= ours
  cat <<CMAKE
set(PACKAGE_VERSION "$2")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
CMAKE
}
header_only_package() {  # name, imported target, include folder under .carry, version
  cat >"$carry/cmake/$1/$1Config.cmake" <<CMAKE
# Written by ewe's scripts/prepare_carry.sh: $1's headers two folders up.
get_filename_component(_ewe_carry "\${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT TARGET $2)
  add_library($2 INTERFACE IMPORTED)
  set_target_properties($2 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "\${_ewe_carry}/$3")
endif()
CMAKE
  version_file "$1" "$4" >"$carry/cmake/$1/$1ConfigVersion.cmake"
}
header_only_package Eigen3 Eigen3::Eigen include/eigen3 "$eigen_version"
echo 'set(EIGEN3_INCLUDE_DIR "${_ewe_carry}/include/eigen3")' >>"$carry/cmake/Eigen3/Eigen3Config.cmake"
header_only_package doctest doctest::doctest include "$doctest_version"
cli11_version=$(sed -n 's/^#define CLI11_VERSION "\(.*\)"/\1/p' "$cli11_src/Version.hpp")
header_only_package CLI11 CLI11::CLI11 include "${cli11_version:-2.0.0}"

cat >"$carry/cmake/benchmark/benchmarkConfig.cmake" <<CMAKE
# Written by ewe's scripts/prepare_carry.sh: Google Benchmark ($bench_kind) two folders up.
get_filename_component(_ewe_carry "\${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
include(CMakeFindDependencyMacro)
find_dependency(Threads)
if(NOT TARGET benchmark::benchmark)
  add_library(benchmark::benchmark $bench_kind IMPORTED)
  set_target_properties(benchmark::benchmark PROPERTIES
    IMPORTED_LOCATION "\${_ewe_carry}/lib/$bench_file"
    INTERFACE_INCLUDE_DIRECTORIES "\${_ewe_carry}/include"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
CMAKE
version_file benchmark "${bench_version:-1.7.1}" >"$carry/cmake/benchmark/benchmarkConfigVersion.cmake"

# --- the Quick, Draw! files the example stage uses (not part of the repository)
if [[ -n ${EWE_DATA:-} && -f $EWE_DATA/sheep.npy ]]; then
  mkdir -p "$carry/data"
  for f in sheep cat; do [[ -f $EWE_DATA/$f.npy ]] && cp "$EWE_DATA/$f.npy" "$carry/data/"; done
fi

# --- programs built here for the GPU machine, and their ctest file
if ((prebuilt)); then
  gpubin=$root/build-gpubin
  targets=()
  for f in "$root"/tests/cuda/test_*.cu "$root"/tests/cuda/test_*.cpp; do
    [[ -e $f ]] && { f=$(basename "$f"); targets+=("test_cuda_${f%.*}"); }
  done
  for f in "$root"/bench/*.cu; do [[ -e $f ]] && targets+=("bench_cuda_$(basename "$f" .cu)"); done
  targets+=(sheep_vae ewe_cuda_backend)
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  cmake -S "$root" -B "$gpubin" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$nvcc" \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DEWE_WITH_CUDA=ON -DEWE_BUILD_EXAMPLES=ON -DEWE_ARCH=portable >/dev/null
  start=$SECONDS
  cmake --build "$gpubin" -j "${EWE_BUILD_JOBS:-$(nproc)}" --target "${targets[@]}" >"$gpubin/prepare_carry.log" 2>&1 ||
    { tail -40 "$gpubin/prepare_carry.log" >&2; echo "prepare_carry: the build failed ($gpubin/prepare_carry.log)" >&2; exit 1; }
  echo "prepare_carry: built ${targets[*]} in $((SECONDS - start)) s"
  for t in "${targets[@]}"; do
    [[ $t == ewe_cuda_backend ]] && continue  # the module, below
    exe=$(cd "$gpubin" && find . -type f -name "$t" -perm -u+x | head -1)
    [[ -n $exe ]] || { echo "prepare_carry: $t was not built in $gpubin" >&2; exit 1; }
    mkdir -p "$carry/build/$(dirname "$exe")"
    cp "$gpubin/$exe" "$carry/build/$exe"
  done
  [[ -f $gpubin/lib/libewe_cuda.so ]] || { echo "prepare_carry: $gpubin/lib/libewe_cuda.so was not built" >&2; exit 1; }
  mkdir -p "$carry/build/lib"
  cp "$gpubin/lib/libewe_cuda.so" "$carry/build/lib/"
  # OpenMP's runtime may be missing where only nvcc's host compiler is installed.
  cp "$(readlink -f "$(g++ -print-file-name=libgomp.so.1)")" "$carry/lib/libgomp.so.1"
  # What the programs need from the C and C++ runtimes, for the record.
  objdump -T "$carry/build/tests/"test_cuda_* "$carry/build/lib/libewe_cuda.so" | grep -oE "GLIBC_[0-9.]+|GLIBCXX_[0-9.]+" | sort -uV |
    awk -F_ '{v[$1] = $0} END {print "needs", v["GLIBC"], v["GLIBCXX"]}' >"$carry/build/NEEDS"
  data=$(sed -n 's/^EWE_TEST_DATA:PATH=//p' "$gpubin/CMakeCache.txt")
  # Longest path first: the data and build folders may lie inside the source folder.
  sed -e "s|${data:-@EWE_NO_DATA@}|@EWE_DATA@|g" -e "s|$gpubin|@EWE_CARRIED_BUILD@|g" -e "s|$root|@EWE_SOURCE@|g" \
    "$gpubin/tests/CTestTestfile.cmake" >"$carry/build/tests/CTestTestfile.cmake.in"
  if grep -qF "$(dirname "$root")/" "$carry/build/tests/CTestTestfile.cmake.in"; then
    echo "prepare_carry: a path of this machine is left in the ctest template:" >&2
    grep -nF "$(dirname "$root")/" "$carry/build/tests/CTestTestfile.cmake.in" >&2
    exit 1
  fi
  git -C "$root" rev-parse HEAD >"$carry/build/COMMIT"
  git -C "$root" diff --quiet HEAD || echo "(plus uncommitted changes)" >>"$carry/build/COMMIT"
fi

echo "prepared $carry ($(du -sh "$carry" | cut -f1)): Eigen $eigen_version, doctest $doctest_version, Google Benchmark ($bench_kind)"
