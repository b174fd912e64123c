#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + fuzzer) into their own build
# folder and runs each for SECONDS, side by side (a process each), starting from the seed
# corpus (tests/fuzz/corpus/* and the hand-made bad files in tests/data/bad_*). Fails
# (exit 1) on any crash, sanitizer report, timeout or out-of-memory; the input that caused
# it is kept as <build>/artifacts/<target>/crash-* (add it to tests/fuzz/corpus/ once
# fixed), the fuzzer's logs in <build>/logs/<target>/.
# Usage: bash tests/fuzz/run.sh [SECONDS=20] [build-dir=build-fuzz]
#   FUZZ_JOBS=N runs N fuzzing processes per target (default 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-20}
build=$(mkdir -p "${2:-$root/build-fuzz}" && cd "${2:-$root/build-fuzz}" && pwd)
jobs=${FUZZ_JOBS:-1}
cxx=${CXX_FUZZ:-clang++}
if ! command -v "$cxx" >/dev/null; then echo "run.sh: $cxx not found (libFuzzer needs clang)" >&2; exit 2; fi

cmake -S "$root/tests/fuzz" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "${BUILD_JOBS:-2}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# fuzz TARGET: runs fuzz_TARGET for SECONDS in its own folder (libFuzzer's -jobs logs,
# fuzz-<n>.log, go to the working folder); prints the verdict, and the logs' tails on a
# failure, and returns non-zero on a finding.
fuzz() {
  local target=$1
  local work="$build/corpus/$target"  # grows as the fuzzer finds new coverage; the seeds stay untouched
  local artifacts="$build/artifacts/$target"
  local logs="$build/logs/$target"
  rm -rf "$logs"
  mkdir -p "$work" "$artifacts" "$logs"
  local seeds=("$root/tests/fuzz/corpus/$target")
  [[ -d "$root/tests/data/bad_$target" ]] && seeds+=("$root/tests/data/bad_$target")
  local parallel=()
  if (( jobs > 1 )); then parallel=(-jobs="$jobs" -workers="$jobs"); fi
  echo "== fuzz_$target: ${seconds}s, $jobs job(s), seeds ${seeds[*]#$root/}"
  # -malloc_limit_mb: any single allocation above 256 MiB is a finding (inputs are at
  # most 64 KiB, so a reader that allocates more trusted a size field it should not).
  if (cd "$logs" && "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
      -malloc_limit_mb=256 -max_len=65536 -print_final_stats=1 "${parallel[@]}" -artifact_prefix="$artifacts/" \
      "$work" "${seeds[@]}") >"$logs/fuzz_$target.log" 2>&1; then
    local runs
    runs=$(awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$logs"/*.log)
    echo "   ok: $runs executions, corpus $(ls "$work" | wc -l) files, no crash"
  else
    echo "   FAILED: see $logs/ and $artifacts/"
    for f in "$logs"/*.log; do tail -n 40 "$f"; done
    return 1
  fi
}

# The targets fuzz side by side (one core each), their verdicts printed in order.
targets=(npy safetensors)
pids=()
for target in "${targets[@]}"; do
  fuzz "$target" >"$build/verdict_$target.txt" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!targets[@]}"; do
  wait "${pids[$i]}" || status=1
  cat "$build/verdict_${targets[$i]}.txt"
done
exit $status
