#!/usr/bin/env bash
# The one script to run ON the lent GPU machine, from the repository root, with the
# folder .carry/ carried along (made here by scripts/prepare_carry.sh):
#   bash scripts/gpu_check.sh [stage...]      stages: build test memcheck racecheck
#                                             initcheck synccheck bench example
#                                             compare (default: all)
# It configures and builds the CUDA tests and benchmarks (Eigen, doctest and Google
# Benchmark from .carry/; cuDNN and cuBLAS from /usr/local/cuda, else from the
# python wheels nvidia-cudnn-cu13 / nvidia-cublas), runs every tests/cuda program,
# runs compute-sanitizer's four tools on test_cuda_test_parity, runs the CUDA
# benchmarks, runs sheep_vae_cuda end to end (bench at batch 8/64/256, train, anomalies
# on GPU and CPU, generate, explore; data from $EWE_DATA or .carry/data), and writes at
# most 8 files to $OUT (the device tool brings back 8): summary.txt build.log tests.log
# sanitizers.log (the four tools one after another) bench.txt example.log, and for the
# PyTorch comparison (bench/compare/gpu_step.sh) compare.txt and compare-<gpu>-<date>.json.
# Without the build stage, programs come from the build dir if there is one, else from
# .carry/bin (scripts/prepare_carry.sh --prebuilt builds them on the development machine).
# One device call may run 10 minutes and a machine stays warm only briefly after one,
# so carry prebuilt programs and split the check, e.g. "test bench", then "compare
# example", then the four sanitizer tools. EWE_SANITIZER_ARGS passes doctest
# filters to the sanitized runs (e.g. --test-case-exclude='*train_step*');
# EWE_SANITIZER_TIMEOUT (seconds, default 420) bounds each of them, EWE_TEST_TIMEOUT
# (default 540) each test program.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/out}
build=${EWE_GPU_BUILD:-$root/build-gpu}
carry=$root/.carry
mkdir -p "$out"
summary=$out/summary.txt
stages=("$@")
((${#stages[@]})) || stages=(build test memcheck racecheck initcheck synccheck bench example compare)
status=0

note() { echo "$*" | tee -a "$summary"; }
want() { local s; for s in "${stages[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }

export PATH=/usr/local/cuda/bin:$PATH
[[ -z ${EWE_DATA:-} && -d $carry/data ]] && export EWE_DATA=$carry/data
note "== ewe gpu_check $(date -u +%FT%TZ) stages: ${stages[*]}"
[[ -f $carry/bin/COMMIT ]] && note "carried programs built at commit $(tr '\n' ' ' <"$carry/bin/COMMIT")"
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
      -DEWE_BUILD_EXAMPLES=ON -DEWE_NATIVE=OFF -DCLI11_DIR="$carry/cmake/CLI11" \
      -DEigen3_DIR="$carry/cmake/Eigen3" -Ddoctest_DIR="$carry/cmake/doctest" \
      -Dbenchmark_DIR="$carry/cmake/benchmark" "${cmake_args[@]}" &&
    keep_going=(-k); grep -q "CMAKE_GENERATOR:INTERNAL=Ninja" "$build/CMakeCache.txt" && keep_going=(-k 0)
    cmake --build "$build" -j "$(nproc)" --target "${cuda_tests[@]}" "${cuda_benches[@]}" sheep_vae_cuda -- "${keep_going[@]}"
  } >"$out/build.log" 2>&1
  rc=$?
  note "build: exit $rc (log: build.log)"
  ((rc == 0)) || status=1
fi

find_program() {
  local f; f=$(find "$build" -type f -name "$1" -perm -u+x 2>/dev/null | head -1)
  [[ -z $f && -x $carry/bin/$1 ]] && f=$carry/bin/$1
  echo "$f"
}

# ---------------------------------------------------------------- tests
if want test; then
  : >"$out/tests.log"
  for t in "${cuda_tests[@]}"; do
    exe=$(find_program "$t")
    if [[ -z $exe ]]; then note "test $t: NOT BUILT"; status=1; continue; fi
    echo "===== $t" >>"$out/tests.log"
    start=$(date +%s)
    (cd "$(dirname "$exe")" && timeout "${EWE_TEST_TIMEOUT:-540}" "$exe" --duration=true) >>"$out/tests.log" 2>&1
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
    --print-limit 200 "$parity" ${EWE_SANITIZER_ARGS:-} >"$out/$tool.tmp" 2>&1
  rc=$?
  errors=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/$tool.tmp" | tail -1)
  { echo "===== compute-sanitizer --tool $tool (exit $rc)"; tail -c 3500000 "$out/$tool.tmp"; } >>"$out/sanitizers.log"
  rm -f "$out/$tool.tmp"
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

# ---------------------------------------------------------------- the example, end to end
if want example; then
  log=$out/example.log
  : >"$log"
  app=$(find_program sheep_vae_cuda)
  data=${EWE_DATA:-$carry/data}
  if [[ -z $app ]]; then note "example: sheep_vae_cuda not built"; status=1
  elif [[ ! -f $data/sheep.npy ]]; then note "example: no $data/sheep.npy (set EWE_DATA or prepare .carry/data)"; status=1
  else
    run_example() {  # label, command...: runs it, logs it, notes its exit status
      local label=$1 rc start; shift
      echo "===== $label: $*" >>"$log"
      start=$(date +%s%N)
      timeout 300 "$@" >>"$log" 2>&1
      rc=$?
      note "example $label: exit $rc ($(( ($(date +%s%N) - start) / 1000000 )) ms)"
      ((rc == 0)) || status=1
    }
    work=$(mktemp -d)
    for b in 8 64 256; do
      run_example "bench cuda batch $b" "$app" bench --device cuda --batch "$b" --steps 200 --warmup 20 --json
    done
    run_example "train cuda" "$app" train --device cuda --data "$data/sheep.npy" --epochs 30 --quiet --out "$work/run"
    tail -n 3 "$work/run/metrics.csv" >>"$log"
    for dev in cuda cpu; do
      run_example "anomalies $dev" "$app" anomalies --device "$dev" --checkpoint "$work/run/checkpoint.safetensors" \
        --data "$data/sheep.npy" --plant "$data/cat.npy:50" --out "$work/anom_$dev" --json
    done
    python3 -c 'import sys, numpy as np; g, c = np.load(sys.argv[1]), np.load(sys.argv[2]);
print("scores.npy (sse, ink_adjusted_sse, neg_elbo) cuda vs cpu: max |difference|", np.abs(g - c).max(0),
      "max |cpu score|", np.abs(c).max(0))' "$work/anom_cuda/scores.npy" "$work/anom_cpu/scores.npy" >>"$log" 2>&1
    run_example "generate cuda" "$app" generate --device cuda --checkpoint "$work/run/checkpoint.safetensors" --grid --out "$work/grid.png"
    run_example "explore cuda" "$app" explore --device cuda --checkpoint "$work/run/checkpoint.safetensors" \
      --data "$data/sheep.npy" --out "$work/explore" --trials 20
    # Issue-size runs: one epoch and one scoring pass over 126,121 drawings (the sheep tiled).
    python3 -c 'import sys, numpy as np; s = np.load(sys.argv[1]); np.save(sys.argv[2], np.tile(s, (127, 1))[:126121])' \
      "$data/sheep.npy" "$work/sheep126k.npy"
    run_example "train cuda, 1 epoch of 126121" "$app" train --device cuda --data "$work/sheep126k.npy" --epochs 1 \
      --quiet --snapshots "" --out "$work/run126k"
    run_example "anomalies cuda, 126121 drawings" "$app" anomalies --device cuda --data "$work/sheep126k.npy" \
      --checkpoint "$work/run/checkpoint.safetensors" --out "$work/anom126k" --json
    rm -f "$work/sheep126k.npy"
    (cd "$work" && find . -type f | sort) >>"$log"
    rm -rf "$work"
  fi
fi

# ---------------------------------------------------------------- side by side with PyTorch
if want compare; then
  exe=$(find_program bench_cuda_cuda_ops)
  if [[ -z $exe ]]; then note "compare: bench_cuda_cuda_ops not built"; status=1
  else
    slug=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-' | sed 's/^nvidia-//')
    start=$(date +%s)
    timeout 540 bash "$root/bench/compare/gpu_step.sh" "$exe" "$out/compare-$slug-$(date -u +%Y%m%d).json" \
      >"$out/compare.txt" 2>&1
    rc=$?
    note "compare: exit $rc ($(( $(date +%s) - start )) s; table in compare.txt)"
    ((rc == 0)) || status=1
  fi
fi

note "== gpu_check: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
exit $status
