#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + fuzzer) into their own build
# folder and runs each for SECONDS, starting from the seed corpus (tests/fuzz/corpus/*
# and the hand-made bad files in tests/data/bad_*). Fails (exit 1) on any crash,
# sanitizer report, timeout or out-of-memory; the input that caused it is kept as
# <build>/artifacts/<target>/crash-* (add it to tests/fuzz/corpus/ once fixed).
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
status=0
for target in npy safetensors; do
  work="$build/corpus/$target"        # grows as the fuzzer finds new coverage; the seeds stay untouched
  artifacts="$build/artifacts/$target"
  mkdir -p "$work" "$artifacts"
  seeds=("$root/tests/fuzz/corpus/$target")
  [[ -d "$root/tests/data/bad_$target" ]] && seeds+=("$root/tests/data/bad_$target")
  log="$build/fuzz_$target.log"
  parallel=()
  if (( jobs > 1 )); then parallel=(-jobs="$jobs" -workers="$jobs"); fi
  rm -f "$build"/fuzz-*.log
  echo "== fuzz_$target: ${seconds}s, $jobs job(s), seeds ${seeds[*]#$root/}"
  # -malloc_limit_mb: any single allocation above 256 MiB is a finding (inputs are at
  # most 64 KiB, so a reader that allocates more trusted a size field it should not).
  if (cd "$build" && "./fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
      -malloc_limit_mb=256 -max_len=65536 -print_final_stats=1 "${parallel[@]}" -artifact_prefix="$artifacts/" \
      "$work" "${seeds[@]}") >"$log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$log" $(compgen -G "$build/fuzz-*.log" || true))
    echo "   ok: $runs executions, corpus $(ls "$work" | wc -l) files, no crash"
  else
    status=1
    echo "   FAILED: see $log and $artifacts/" >&2
    for f in "$log" "$build"/fuzz-*.log; do if [[ -f "$f" ]]; then tail -n 40 "$f" >&2; fi; done
  fi
done
exit $status
