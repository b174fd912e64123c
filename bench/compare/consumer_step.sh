#!/usr/bin/env bash
# Issue 26's target, measured in one run: a user's program built by README's lines
# (ewe configured and installed at once, then find_package(ewe) + ewe::ewe in a Release
# build: tests/consumer, `consumer bench`) against `sheep_vae bench` (the project's own
# build), the same training step (seed sheep VAE, RMSprop, fp32, batch 8, all threads).
# Also the consumer built with EWE_ARCH=portable (no -march), to show what the default
# buys. Rounds alternate the programs so that load on a shared machine hits them alike;
# prints every round, the medians and the ratios (target: consumer within 15%).
# Usage: bash bench/compare/consumer_step.sh [build-dir] [steps] [rounds]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
steps=${2:-20}
rounds=${3:-5}
sheep_vae=$build/examples/sheep_vae/sheep_vae
[[ -x $sheep_vae ]] || { echo "no $sheep_vae: build it first (cmake --build $build --target sheep_vae)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)," \
  "commit $(git -C "$root" rev-parse --short HEAD), $(date -u +%F)"

# README's Install section, then README's CMake lines in the consumer project.
cmake -S "$root" -B "$work/ewe" -DCMAKE_BUILD_TYPE=Release -DEWE_BUILD_TESTS=OFF -DEWE_BUILD_EXAMPLES=OFF \
  -DEWE_BUILD_BENCH=OFF >/dev/null
cmake --install "$work/ewe" --prefix "$work/prefix" >/dev/null
for arch in native portable; do
  cmake -S "$root/tests/consumer" -B "$work/consumer-$arch" -DCMAKE_BUILD_TYPE=Release -DEWE_CONSUME=package \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DEWE_ARCH=$arch >/dev/null
  cmake --build "$work/consumer-$arch" --target consumer -j 2 >/dev/null
done
echo "# consumer compile flags: $(grep CXX_FLAGS "$work/consumer-native/CMakeFiles/consumer.dir/flags.make")"

ewe_ms=() native_ms=() portable_ms=()
for ((r = 1; r <= rounds; ++r)); do
  e=$("$sheep_vae" bench --device cpu --steps "$steps" --warmup 3 --json |
      sed -n 's/.*"ms_per_step": *\([0-9.]*\).*/\1/p')
  n=$("$work/consumer-native/consumer" bench "$steps" | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p')
  p=$(EWE_QUIET_CPU_CHECK=1 "$work/consumer-portable/consumer" bench "$steps" | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p')
  echo "round $r: sheep_vae bench $e ms/step, consumer (README build) $n ms/step, consumer EWE_ARCH=portable $p ms/step"
  ewe_ms+=("$e") native_ms+=("$n") portable_ms+=("$p")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
e=$(median "${ewe_ms[@]}") n=$(median "${native_ms[@]}") p=$(median "${portable_ms[@]}")
awk -v e="$e" -v n="$n" -v p="$p" 'BEGIN {
  printf "median of rounds: sheep_vae bench %.1f ms/step, consumer %.1f ms/step (%.2fx, %+.1f%%), portable consumer %.1f ms/step (%.2fx)\n",
    e, n, n / e, 100 * (n / e - 1), p, p / e }'
