#!/usr/bin/env bash
# The one driver of the GPU check, run ON the lent GPU machine from the repository root
# with .carry/ carried (made here by `bash scripts/prepare_carry.sh --prebuilt`: the
# header-only dependencies, the prebuilt CUDA programs and their ctest file). The two
# device calls, in this order (each starts a fresh machine; 12 minutes of commands
# plus two starts within the 15 minutes lent):
#   run 1: command "bash scripts/gpu_check.sh versions tests example compare bench"
#          carry [".carry"], timeout_s 450
#   run 2: command "bash scripts/gpu_check.sh versions sanitizers"
#          carry [".carry"], timeout_s 270
# Stages always run in this order, each under its own time limit (seconds; the variable
# EWE_LIMIT_<STAGE> overrides one, e.g. EWE_LIMIT_SANITIZERS=180 when run 2 starts late),
# so the most valuable results come first and survive a later stage hanging:
#   versions    15  driver, runtime, devices, nvcc, compute-sanitizer, torch; libraries
#   build      420  (only if asked: builds the programs here when the carried ones cannot run)
#   tests      140  ctest -L cuda with EWE_REQUIRE_CUDA=1 (a missing device fails)
#   sanitizers 240  ctest -L sanitizer: compute-sanitizer's memcheck, racecheck,
#                   initcheck, synccheck on every CUDA test program, all at once
#   example    100  sheep_vae end to end (bench, train, anomalies cuda vs cpu,
#                   generate, explore, one epoch and one scoring pass of 126,121 drawings)
#   compare    110  bench/compare/gpu_step.sh: ewe's train step vs PyTorch eager and
#                   torch.compile (the machine's own python3 and torch)
#   bench       50  bench_cuda_cuda_ops, every row
# Output, at most 8 files in $OUT (default ./out): summary.txt (one line per result),
# versions.txt, tests.log, sanitizers.log, example.log, compare.txt, compare-<gpu>-<date>.json,
# bench.txt (build.log replaces versions.txt in the rare run that builds).
# Exit 0 only when every stage run passed; 77 when, with EWE_REQUIRE_CUDA=0 on a machine
# without a device, stages skipped and nothing failed; 1 otherwise.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/out}
carry=$root/.carry
carried_build=$carry/build
build=$root/build-gpu
mkdir -p "$out"
summary=$out/summary.txt
stages=("$@")
((${#stages[@]})) || { echo "usage: gpu_check.sh STAGE... (versions build tests sanitizers example compare bench)" >&2; exit 2; }
for s in "${stages[@]}"; do
  case $s in versions | build | tests | sanitizers | example | compare | bench) ;;
    *) echo "gpu_check.sh: unknown stage '$s' (versions build tests sanitizers example compare bench)" >&2; exit 2 ;;
  esac
done
status=0   # 1 once anything failed
skipped=0  # 1 once anything skipped for want of a device (only with EWE_REQUIRE_CUDA=0)
# Every CUDA program fails, naming the CUDA error, without a usable device (a rehearsal
# on a machine without one sets EWE_REQUIRE_CUDA=0 to see them skip instead).
export EWE_REQUIRE_CUDA=${EWE_REQUIRE_CUDA:-1}

note() { echo "$*" | tee -a "$summary"; }
want() { local s; for s in "${stages[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }
stage_start() {  # name, default limit (EWE_LIMIT_<NAME> overrides it)
  local override=EWE_LIMIT_${1^^}
  stage_name=$1; stage_deadline=$((SECONDS + ${!override:-$2})); stage_began=$SECONDS
}
left() { local l=$((stage_deadline - SECONDS)); ((l > 1)) && echo "$l" || echo 1; }  # seconds left in the stage
stage_result() {  # exit status of the stage's command, its time limit, a remark
  local how=exit
  (($1 == 124 || $1 == 137)) && how="TIMED OUT after $(($2))s, exit"
  (($1 == 77)) && how="SKIPPED (not run; no device or no tool), exit"
  note "$stage_name: $how $1 ($((SECONDS - stage_began)) s)${3:+ $3}"
  if (($1 == 77)); then skipped=1; elif (($1 != 0)); then status=1; fi
}

export PATH=/usr/local/cuda/bin:$PATH
[[ -z ${EWE_DATA:-} && -d $carry/data ]] && export EWE_DATA=$carry/data
note "== ewe gpu_check $(date -u +%FT%TZ) stages: ${stages[*]}"
[[ -f $carried_build/COMMIT ]] && note "carried programs built at commit $(paste -sd ' ' "$carried_build/COMMIT");" \
  "$(cat "$carried_build/NEEDS" 2>/dev/null); here: $(ldd --version 2>&1 | head -1)"

# ---------------------------------------------------------------- libraries
# cuDNN and cuBLAS: /usr/local/cuda if it has them, else the python wheels (nvidia-*),
# which keep them under site-packages/nvidia/<name>/lib.
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
[[ -n ${EWE_IGNORE_TOOLKIT_LIBS:-} ]] && toolkit=/nonexistent  # rehearse the wheel branch on a full toolkit
if [[ -f $toolkit/include/cudnn.h ]] && ls "$toolkit"/lib64/libcudnn.so* >/dev/null 2>&1; then
  note "cuDNN: $toolkit"
else
  cudnn_h=$(find_in_wheels cudnn.h) || cudnn_h=""
  cudnn_so=$(find_in_wheels 'libcudnn.so.[0-9]*') || cudnn_so=""
  if [[ -z $cudnn_so ]]; then note "FAIL: cuDNN not found in /usr/local/cuda nor in a python nvidia-cudnn wheel"; exit 1; fi
  cmake_args+=("-DEWE_CUDNN_INCLUDE_DIR=$(dirname "${cudnn_h:-/nonexistent/cudnn.h}")" "-DEWE_CUDNN_LIBRARY=$cudnn_so")
  ld_dirs+=("$(dirname "$cudnn_so")")
  note "cuDNN: $cudnn_so"
fi
if [[ -f $toolkit/include/cublasLt.h ]] && ls "$toolkit"/lib64/libcublasLt.so* >/dev/null 2>&1; then
  note "cuBLAS: $toolkit"
else
  cublas_h=$(find_in_wheels cublasLt.h) || cublas_h=""
  cublas_so=$(find_in_wheels 'libcublasLt.so.[0-9]*') || cublas_so=""
  if [[ -z $cublas_so ]]; then note "FAIL: cuBLAS not found in /usr/local/cuda nor in a python nvidia-cublas wheel"; exit 1; fi
  cmake_args+=("-DEWE_CUBLAS_ROOT=$(dirname "$(dirname "${cublas_h:-/nonexistent/include/cublasLt.h}")")"
               "-DEWE_cublasLt_LIBRARY=$cublas_so" "-DEWE_cublas_LIBRARY=$(find_in_wheels 'libcublas.so.[0-9]*')")
  ld_dirs+=("$(dirname "$cublas_so")")
  note "cuBLAS: $cublas_so"
fi
# cuDNN 9 compiles some engines at run time with NVRTC.
if ! ls "$toolkit"/lib64/libnvrtc.so* >/dev/null 2>&1; then
  nvrtc_so=$(find_in_wheels 'libnvrtc.so.[0-9]*') && ld_dirs+=("$(dirname "$nvrtc_so")")
fi
# NCCL, for test_cuda_test_nccl (the toolkit's, else the nvidia-nccl wheel PyTorch ships).
if ! ls "$toolkit"/lib*/libnccl.so* >/dev/null 2>&1; then
  if nccl_so=$(find_in_wheels 'libnccl.so.[0-9]*'); then ld_dirs+=("$(dirname "$nccl_so")"); note "NCCL: $nccl_so"
  else note "NCCL not found in /usr/local/cuda nor in a python nvidia-nccl wheel: cuda_test_nccl cannot start"; fi
fi
ld_dirs+=("$carry/lib" /usr/local/cuda/lib64 /usr/local/cuda/lib)
ld_joined=$(IFS=:; echo "${ld_dirs[*]}")
export LD_LIBRARY_PATH=$ld_joined${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# ---------------------------------------------------------------- programs and ctest
# Built here (build stage, now or in an earlier call on this machine) or carried.
find_program() {
  local d f
  for d in "$build" "$carried_build"; do
    f=$(find "$d" -type f -name "$1" -perm -u+x 2>/dev/null | head -1)
    [[ -n $f ]] && { echo "$f"; return 0; }
  done
  return 1
}
# The carried ctest file, with this machine's paths.
if [[ -f $carried_build/tests/CTestTestfile.cmake.in ]]; then
  sed -e "s|@EWE_DATA@|${EWE_DATA:-$carry/data}|g" -e "s|@EWE_CARRIED_BUILD@|$carried_build|g" \
    -e "s|@EWE_SOURCE@|$root|g" "$carried_build/tests/CTestTestfile.cmake.in" >"$carried_build/tests/CTestTestfile.cmake"
fi
# Whether there is a usable device, as the CUDA programs themselves see it (exit 77: none).
probe=$(find_program test_cuda_test_graph)
device_report="" no_device=0
if [[ -n $probe ]]; then
  listing=$(env -u EWE_REQUIRE_CUDA "$probe" --list-test-cases 2>&1)
  (($? == 77)) && no_device=1
  device_report=$(head -1 <<<"$listing")
fi
have_device() {  # stage name: true with a device; else fails the stage (EWE_REQUIRE_CUDA=1) or skips it
  ((no_device)) || return 0
  if [[ $EWE_REQUIRE_CUDA == 1 ]]; then note "FAIL: $1: no usable CUDA device: $device_report"; status=1
  else note "$1: skipped: no CUDA device: $device_report"; skipped=1; fi
  return 1
}
ctest_dir() { [[ -f $build/tests/CTestTestfile.cmake ]] && echo "$build/tests" || echo "$carried_build/tests"; }
run_ctest() {  # log, labels regex, parallel jobs: ctest on the programs, bounded by the stage
  local log=$1 label=$2 jobs=$3 dir rc
  dir=$(ctest_dir)
  [[ -f $dir/CTestTestfile.cmake ]] || { note "$stage_name: no ctest file in $dir (run prepare_carry.sh --prebuilt)"; status=1; return; }
  timeout -k 5 "$(left)" ctest --test-dir "$dir" -L "$label" -j "$jobs" --output-on-failure -V >"$log" 2>&1
  rc=$?
  # (n_skipped, not skipped: stage_result sets the script's own `skipped`.)
  local results n_passed n_skipped n_failed
  results=$(grep -E "^ *[0-9]+/[0-9]+ Test +#" "$log" | sed 's/^ *//')
  [[ -n $results ]] && echo "$results" >>"$summary"
  n_passed=$(grep -c " Passed " <<<"$results")
  n_skipped=$(grep -c "\*\*\*Skipped " <<<"$results")
  n_failed=$(grep -vcE " Passed |\*\*\*Skipped |^$" <<<"$results")
  # ctest counts a skipped test as passed: a stage in which nothing ran is a skip.
  ((rc == 0 && n_passed == 0)) && rc=77
  stage_result "$rc" "$((stage_deadline - stage_began))" "($n_passed passed, $n_skipped skipped, $n_failed failed)"
}

# The CUDA backend module that the host-compiled programs (sheep_vae,
# test_cuda_test_step_replay) load: the one built here (build stage), else the carried
# one. Their RUNPATH names the folder of the machine that built them, so it is named in
# EWE_CUDA_BACKEND (a missing module then fails naming that path).
select_module() {
  local m
  for m in "$build/lib/libewe_cuda.so" "$carried_build/lib/libewe_cuda.so"; do
    [[ -f $m ]] && { export EWE_CUDA_BACKEND=$m; return 0; }
  done
  export EWE_CUDA_BACKEND=$carried_build/lib/libewe_cuda.so
}
select_module

# ---------------------------------------------------------------- versions
if want versions; then
  stage_start versions 15
  {
    echo "== nvidia-smi"; timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total,mig.mode.current --format=csv 2>&1
    echo "== nvcc"; nvcc --version 2>&1 | tail -2
    echo "== compute-sanitizer"; compute-sanitizer --version 2>&1 | tail -1
    echo "== cmake"; cmake --version 2>&1 | head -1
    echo "== python3"; timeout 10 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version(), "available", torch.cuda.is_available())' 2>&1 | tail -1
    echo "== LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  } >"$out/versions.txt"
  graph=$(find_program test_cuda_test_graph)
  if [[ -z $graph ]]; then note "versions: no CUDA test program (carry .carry made by prepare_carry.sh --prebuilt)"; status=1
  else
    # Which file each carried program's libraries resolve to; a library not found is a failure.
    echo "== EWE_CUDA_BACKEND=$EWE_CUDA_BACKEND" >>"$out/versions.txt"
    for p in "$graph" "$(find_program bench_cuda_cuda_ops)" "$(find_program sheep_vae)" "$EWE_CUDA_BACKEND"; do
      [[ -n $p ]] && { echo "== ldd $p"; ldd "$p" 2>&1; } >>"$out/versions.txt"
    done
    grep -E "(cudnn|cublas|cudart|benchmark)[^ ]* =>" "$out/versions.txt" | sed -E 's/^\s*/libraries: /; s/ \(0x[0-9a-f]+\)$//' | sort -u >>"$summary"
    grep -qE "=> not found|version .* not found" "$out/versions.txt" &&
      { note "FAIL: a library is not found (versions.txt)"; status=1; }
    # The device report, as every CUDA program prints it first (EWE_REQUIRE_CUDA=1: fails without a device).
    listing=$(timeout "$(left)" "$graph" --list-test-cases 2>&1)
    rc=$?
    head -2 <<<"$listing" | tee -a "$out/versions.txt" >>"$summary"
    stage_result "$rc" 15
  fi
fi

# ---------------------------------------------------------------- build (fallback)
if want build; then
  stage_start build 420
  [[ -d $carry/cmake ]] || { note "FAIL: $carry is missing: run scripts/prepare_carry.sh here and carry .carry"; exit 1; }
  generator=(); command -v ninja >/dev/null && [[ ! -f $build/CMakeCache.txt ]] && generator=(-G Ninja)
  targets=()
  for f in "$root"/tests/cuda/test_*.cu "$root"/tests/cuda/test_*.cpp; do
    [[ -e $f ]] && { f=$(basename "$f"); targets+=("test_cuda_${f%.*}"); }
  done
  for f in "$root"/bench/*.cu; do targets+=("bench_cuda_$(basename "$f" .cu)"); done
  {
    cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90 -DEWE_WITH_CUDA=ON \
      -DEWE_BUILD_EXAMPLES=ON -DEWE_ARCH=portable -DCLI11_DIR="$carry/cmake/CLI11" \
      -DEigen3_DIR="$carry/cmake/Eigen3" -Ddoctest_DIR="$carry/cmake/doctest" \
      -Dbenchmark_DIR="$carry/cmake/benchmark" "${cmake_args[@]}" &&
      timeout "$(left)" cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" sheep_vae ewe_cuda_backend
  } >"$out/build.log" 2>&1
  stage_result $? 420 "(build.log)"
  select_module
  rm -f "$out/versions.txt"  # build.log takes its place among the 8 files that come back
fi

# ---------------------------------------------------------------- tests
if want tests; then
  stage_start tests 140
  run_ctest "$out/tests.log" cuda 4
fi

# ---------------------------------------------------------------- compute-sanitizer
if want sanitizers; then
  stage_start sanitizers 240
  run_ctest "$out/sanitizers.log" sanitizer 16
fi

# ---------------------------------------------------------------- the example, end to end
if want example; then
  stage_start example 100
  log=$out/example.log
  : >"$log"
  app=$(find_program sheep_vae)
  data=${EWE_DATA:-$carry/data}
  if ! have_device example; then :
  elif [[ -z $app ]]; then note "example: sheep_vae not found"; status=1
  elif [[ ! -f $data/sheep.npy ]]; then note "example: no $data/sheep.npy (set EWE_DATA or prepare .carry/data)"; status=1
  else
    run_example() {  # label, command...: runs it within the stage's time, logs it, notes its exit status
      local label=$1 rc start; shift
      echo "===== $label: $*" >>"$log"
      start=$SECONDS
      timeout -k 5 "$(left)" "$@" >>"$log" 2>&1
      rc=$?
      note "example $label: exit $rc ($((SECONDS - start)) s)"
      ((rc == 0)) || status=1
    }
    work=$(mktemp -d)
    for b in 8 64 256; do
      run_example "bench cuda batch $b" "$app" bench --device cuda --batch "$b" --steps 200 --warmup 20 --json
    done
    run_example "train cuda" "$app" train --device cuda --data "$data/sheep.npy" --epochs 30 --quiet --out "$work/run"
    tail -n 3 "$work/run/metrics.csv" >>"$log" 2>&1
    for dev in cuda cpu; do
      run_example "anomalies $dev" "$app" anomalies --device "$dev" --checkpoint "$work/run/checkpoint.safetensors" \
        --data "$data/sheep.npy" --plant "$data/cat.npy:50" --out "$work/anom_$dev" --json
    done
    python3 -c 'import sys, numpy as np; g, c = np.load(sys.argv[1]), np.load(sys.argv[2]);
print("scores.npy (sse, ink_adjusted_sse, neg_elbo) cuda vs cpu: max |difference|", np.abs(g - c).max(0),
      "max |cpu score|", np.abs(c).max(0))' "$work/anom_cuda/scores.npy" "$work/anom_cpu/scores.npy" >>"$log" 2>&1
    run_example "generate cuda" "$app" generate --device cuda --checkpoint "$work/run/checkpoint.safetensors" --grid \
      --out "$work/grid.png"
    run_example "explore cuda" "$app" explore --device cuda --checkpoint "$work/run/checkpoint.safetensors" \
      --data "$data/sheep.npy" --out "$work/explore" --trials 20
    # Issue-size runs: one epoch and one scoring pass over 126,121 drawings (the sheep tiled).
    python3 -c 'import sys, numpy as np; s = np.load(sys.argv[1]); np.save(sys.argv[2], np.tile(s, (127, 1))[:126121])' \
      "$data/sheep.npy" "$work/sheep126k.npy" >>"$log" 2>&1
    run_example "train cuda, 1 epoch of 126121" "$app" train --device cuda --data "$work/sheep126k.npy" --epochs 1 \
      --quiet --snapshots "" --out "$work/run126k"
    run_example "anomalies cuda, 126121 drawings" "$app" anomalies --device cuda --data "$work/sheep126k.npy" \
      --checkpoint "$work/run/checkpoint.safetensors" --out "$work/anom126k" --json
    (cd "$work" && find . -type f | sort) >>"$log"
    rm -rf "$work"
    note "example: $((SECONDS - stage_began)) s in all"
  fi
fi

# ---------------------------------------------------------------- side by side with PyTorch
if want compare; then
  stage_start compare 110
  exe=$(find_program bench_cuda_cuda_ops)
  if ! have_device compare; then :
  elif [[ -z $exe ]]; then note "compare: bench_cuda_cuda_ops not found"; status=1
  else
    slug=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr 'A-Z ' 'a-z-' |
      tr -cd 'a-z0-9-' | sed 's/^nvidia-//')
    # gpu_step.sh shares out its own budget (ewe first, then torch eager, then compile)
    # and writes the table from whatever finished.
    timeout -k 5 "$(left)" bash "$root/bench/compare/gpu_step.sh" "$exe" \
      "$out/compare-${slug:-gpu}-$(date -u +%Y%m%d).json" 100 "$(($(left) - 5))" >"$out/compare.txt" 2>&1
    stage_result $? 110 "(table in compare.txt)"
  fi
fi

# ---------------------------------------------------------------- benchmarks
if want bench; then
  stage_start bench 50
  exe=$(find_program bench_cuda_cuda_ops)
  if [[ -z $exe ]]; then note "bench: bench_cuda_cuda_ops not found"; status=1
  else
    timeout -k 5 "$(left)" "$exe" --benchmark_min_time=0.05 --benchmark_counters_tabular=true >"$out/bench.txt" 2>&1
    stage_result $? 50 "(bench.txt)"
  fi
fi

if ((status)); then note "== gpu_check: FAIL"; exit 1; fi
if ((skipped)); then note "== gpu_check: SKIPPED (no CUDA device; nothing failed)"; exit 77; fi
note "== gpu_check: PASS"
