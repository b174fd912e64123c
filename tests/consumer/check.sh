#!/usr/bin/env bash
# Installs ewe from the build tree into a scratch prefix, then builds and runs the
# consumer project both ways (find_package and add_subdirectory). Run by ctest.
set -euo pipefail
source_dir=$1 build_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
for mode in package subdirectory; do
  cmake -S "$source_dir/tests/consumer" -B "$work/$mode" -DEWE_CONSUME=$mode -DEWE_SOURCE_DIR="$source_dir" \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$work/$mode" -j 2 >/dev/null
  echo "consumer via $mode: $("$work/$mode/consumer")"
done
