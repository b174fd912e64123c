#!/usr/bin/env bash
# The compile cost of a program's file, header-only against ewe::compiled (docs/performance.md,
# "Compile time of a program"): CPU seconds (user + sys), peak memory and preprocessed lines
# of tests/consumer/own_vae.cpp (builds, trains and saves a VAE through <ewe/ewe.hpp>) both
# ways, and of the two files of the compiled part itself (src/), each compiled once by g++.
#   scripts/compile_time.sh [FLAGS...]      (default -O2; e.g. -O3 -march=native)
set -euo pipefail
cd "$(dirname "$0")/.."
opt=("${@:--O2}")
base=(-std=c++20 "${opt[@]}" -fopenmp -DEIGEN_DONT_PARALLELIZE -Iinclude -I. -isystem /usr/include/eigen3)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
measure() {  # measure LABEL FILE [EXTRA FLAGS...]
  local label=$1 file=$2
  shift 2
  local lines
  lines=$(g++ "${base[@]}" "$@" -E "$file" | wc -l)
  /usr/bin/time -f "%U %S %M" -o "$out/time" g++ "${base[@]}" "$@" -c "$file" -o "$out/file.o"
  read -r user sys rss <"$out/time"
  printf '%-40s %6.1f s CPU %6d MB %8d lines\n' "$label" "$(echo "$user + $sys" | bc)" $((rss / 1024)) "$lines"
}
echo "g++ $(g++ -dumpfullversion) ${opt[*]}"
measure "own_vae.cpp, header-only (ewe::ewe)" tests/consumer/own_vae.cpp
measure "own_vae.cpp, ewe::compiled" tests/consumer/own_vae.cpp -DEWE_COMPILED_LIBRARY
measure "include/ewe/compiled/cpu_backend.cpp (once)" include/ewe/compiled/cpu_backend.cpp -DEWE_COMPILED_LIBRARY
measure "include/ewe/compiled/instantiations.cpp (once)" include/ewe/compiled/instantiations.cpp -DEWE_COMPILED_LIBRARY
