#!/usr/bin/env bash
# The one script to run ON the lent GPU machine, from the repository root, with the
# folder .carry/ carried along (made here by scripts/prepare_carry.sh):
#   bash scripts/gpu_check.sh [stage...]      stages: build test memcheck racecheck
#                                             initcheck synccheck bench (default: all)
# It configures and builds the CUDA tests and benchmarks (Eigen, doctest and Google
# Benchmark from .carry/; cuDNN and cuBLAS from /usr/local/cuda, else from the
# python wheels nvidia-cudnn-cu13 / nvidia-cublas), runs every tests/cuda program,
# runs compute-sanitizer's four tools on test_cuda_test_parity, runs the CUDA
# benchmarks, and writes at most 8 files to $OUT (the device tool brings back 8):
#   summary.txt build.log tests.log memcheck.log racecheck.log initcheck.log
#   synccheck.log bench.txt
# One device call may run 10 minutes: the build dir (build-gpu/, git-ignored) stays
# on a warm machine, so a long check can be split: "build test", then "memcheck
# racecheck", then "initcheck synccheck bench". EWE_SANITIZER_ARGS passes doctest
# filters to the sanitized runs (e.g. --test-case-exclude='*train_step*');
# EWE_SANITIZER_TIMEOUT (seconds, default 420) bounds each of them.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/out}
build=${EWE_GPU_BUILD:-$root/build-gpu}
carry=$root/.carry
mkdir -p "$out"
summary=$out/summary.txt
stages=("$@")
((${#stages[@]})) || stages=(build test memcheck racecheck initcheck synccheck bench)
status=0

note() { echo "$*" | tee -a "$summary"; }
want() { local s; for s in "${stages[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }

export PATH=/usr/local/cuda/bin:$PATH
note "== ewe gpu_check $(date -u +%FT%TZ) stages: ${stages[*]}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$summary" || true
nvcc --version | tail -1 | tee -a "$summary"

# ---------------------------------------------------------------- libraries
# Python wheels keep their CUDA libraries under site-packages/nvidia/...
nvidia_dirs=$(python3 -c 'import nvidia, sys; print("\n".join(nvidia.__path__))' 2>/dev/null || true)
find_in_wheels() {  # file-name pattern -> first match in the nvidia wheels
  local d f
  for d in $nvidia_dirs; do
    f=$(find "$d" \( -type f -o -type l \) -name "$1" 2>/dev/null | sort | head -1)
    [[ -n $f ]] && { echo "$f"; return 0; }
  done
  return 1
}
cmake_args=()
ld_dirs=()
toolkit=/usr/local/cuda
[[ -n ${EWE_IGNORE_TOOLKIT_LIBS:-} ]] && toolkit=/nonexistent  # test the wheel branch on a full toolkit
if [[ -f $toolkit/include/cudnn.h ]] && ls "$toolkit"/lib64/libcudnn.so* >/dev/null 2>&1; then
  note "cuDNN: /usr/local/cuda"
else
  cudnn_h=$(find_in_wheels cudnn.h) || cudnn_h=""
  cudnn_so=$(find_in_wheels 'libcudnn.so.[0-9]*') || cudnn_so=""
  if [[ -z $cudnn_h || -z $cudnn_so ]]; then
    note "FAIL: cuDNN not found in /usr/local/cuda nor in the python nvidia-cudnn wheel"; exit 1
  fi
  cmake_args+=("-DEWE_CUDNN_INCLUDE_DIR=$(dirname "$cudnn_h")" "-DEWE_CUDNN_LIBRARY=$cudnn_so")
  ld_dirs+=("$(dirname "$cudnn_so")")
  note "cuDNN: $cudnn_so"
fi
if ls "$toolkit"/lib64/libcublasLt.so* >/dev/null 2>&1 && [[ -f $toolkit/include/cublasLt.h ]]; then
  note "cuBLAS: /usr/local/cuda"
else
  cublas_h=$(find_in_wheels cublasLt.h) || cublas_h=""
  cublas_so=$(find_in_wheels 'libcublasLt.so.[0-9]*') || cublas_so=""
  if [[ -z $cublas_h || -z $cublas_so ]]; then
    note "FAIL: cuBLAS not found in /usr/local/cuda nor in the python nvidia-cublas wheel"; exit 1
  fi
  cublas_root=$(dirname "$(dirname "$cublas_h")")
  cmake_args+=("-DEWE_CUBLAS_ROOT=$cublas_root" "-DEWE_cublasLt_LIBRARY=$cublas_so"
               "-DEWE_cublas_LIBRARY=$(find_in_wheels 'libcublas.so.[0-9]*')")
  ld_dirs+=("$(dirname "$cublas_so")")
  note "cuBLAS: $cublas_so"
fi
# cuDNN 9 compiles some engines at run time with NVRTC.
if ! ls "$toolkit"/lib64/libnvrtc.so* >/dev/null 2>&1; then
  nvrtc_so=$(find_in_wheels 'libnvrtc.so.[0-9]*') && ld_dirs+=("$(dirname "$nvrtc_so")")
fi
ld_dirs+=("$carry/lib" /usr/local/cuda/lib64)
ld_joined=$(IFS=:; echo "${ld_dirs[*]}")
export LD_LIBRARY_PATH=$ld_joined${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

cuda_tests=()
for f in "$root"/tests/cuda/*.cu; do cuda_tests+=("test_cuda_$(basename "$f" .cu)"); done
cuda_benches=()
for f in "$root"/bench/*.cu; do [[ -e $f ]] && cuda_benches+=("bench_cuda_$(basename "$f" .cu)"); done

# ---------------------------------------------------------------- build
if want build; then
  [[ -d $carry/cmake ]] || { note "FAIL: $carry is missing: run scripts/prepare_carry.sh here and carry .carry"; exit 1; }
  generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
  [[ -f $build/CMakeCache.txt ]] && generator=()
  {
    cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90 -DEWE_WITH_CUDA=ON \
      -DEWE_BUILD_EXAMPLES=OFF -DEWE_NATIVE=OFF \
      -DEigen3_DIR="$carry/cmake/Eigen3" -Ddoctest_DIR="$carry/cmake/doctest" \
      -Dbenchmark_DIR="$carry/cmake/benchmark" "${cmake_args[@]}" &&
    keep_going=(-k); grep -q "CMAKE_GENERATOR:INTERNAL=Ninja" "$build/CMakeCache.txt" && keep_going=(-k 0)
    cmake --build "$build" -j "$(nproc)" --target "${cuda_tests[@]}" "${cuda_benches[@]}" -- "${keep_going[@]}"
  } >"$out/build.log" 2>&1
  rc=$?
  note "build: exit $rc (log: build.log)"
  ((rc == 0)) || status=1
fi

find_program() { find "$build" -type f -name "$1" -perm -u+x 2>/dev/null | head -1; }

# ---------------------------------------------------------------- tests
if want test; then
  : >"$out/tests.log"
  for t in "${cuda_tests[@]}"; do
    exe=$(find_program "$t")
    if [[ -z $exe ]]; then note "test $t: NOT BUILT"; status=1; continue; fi
    echo "===== $t" >>"$out/tests.log"
    start=$(date +%s)
    (cd "$build" && timeout 540 "$exe" --duration=true) >>"$out/tests.log" 2>&1
    rc=$?
    note "test $t: exit $rc ($(( $(date +%s) - start )) s)"
    ((rc == 0)) || status=1
  done
fi

# ---------------------------------------------------------------- compute-sanitizer
parity=$(find_program test_cuda_test_parity)
sanitizer=$(command -v compute-sanitizer || find /usr/local/cuda*/ /opt/nvidia -name compute-sanitizer -type f \
  -perm -u+x 2>/dev/null | head -1)
for tool in memcheck racecheck initcheck synccheck; do
  want "$tool" || continue
  if [[ -z $parity ]]; then note "$tool: test_cuda_test_parity not built"; status=1; continue; fi
  if [[ -z $sanitizer ]]; then note "$tool: compute-sanitizer not found"; status=1; continue; fi
  extra=()
  case $tool in
    memcheck) extra=(--leak-check full) ;;
    racecheck) extra=(--racecheck-report hazard) ;;
  esac
  start=$(date +%s)
  # shellcheck disable=SC2086
  timeout "${EWE_SANITIZER_TIMEOUT:-420}" "$sanitizer" --tool "$tool" "${extra[@]}" --error-exitcode 99 \
    --print-limit 200 "$parity" ${EWE_SANITIZER_ARGS:-} >"$out/$tool.log" 2>&1
  rc=$?
  tail -c 15000000 "$out/$tool.log" >"$out/$tool.tmp" && mv "$out/$tool.tmp" "$out/$tool.log"
  errors=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/$tool.log" | tail -1)
  note "$tool: exit $rc ($(( $(date +%s) - start )) s) ${errors:-no summary line}"
  ((rc == 0)) || status=1
done

# ---------------------------------------------------------------- benchmarks
if want bench; then
  : >"$out/bench.txt"
  for b in "${cuda_benches[@]}"; do
    exe=$(find_program "$b")
    if [[ -z $exe ]]; then note "bench $b: NOT BUILT"; status=1; continue; fi
    echo "===== $b" >>"$out/bench.txt"
    timeout 540 "$exe" --benchmark_min_time=0.05 --benchmark_counters_tabular=true >>"$out/bench.txt" 2>&1
    rc=$?
    note "bench $b: exit $rc"
    ((rc == 0)) || status=1
  done
fi

note "== gpu_check: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
exit $status
