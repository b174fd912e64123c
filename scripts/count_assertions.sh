#!/usr/bin/env bash
# Runs the doctest programs of a build through ctest and prints, per ctest entry, doctest's
# summary (test cases run, assertions checked) and the totals: the count to compare when
# tests move or change (the same totals before and after, or more).
# Usage: bash scripts/count_assertions.sh BUILD_DIR [ctest arguments, e.g. -LE cuda -j2]
set -euo pipefail
build=${1:?usage: count_assertions.sh BUILD_DIR [ctest arguments]}
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
ctest --test-dir "$build" -V "$@" >"$log" 2>&1 || echo "count_assertions.sh: some tests failed (counts below are of what ran)" >&2
# ctest -V prefixes each output line with "<test number>: "; names come from "Test #N: name".
awk '
  /Test +#[0-9]+: / { match($0, /#[0-9]+: [^ ]+/); s = substr($0, RSTART + 1, RLENGTH - 1); split(s, p, ": "); name[p[1]] = p[2] }
  /^[0-9]+: \[doctest\] test cases:/ { n = $1; sub(":", "", n); cases[n] = $5; order[++k] = n }
  /^[0-9]+: \[doctest\] assertions:/ { n = $1; sub(":", "", n); asserts[n] = $4 }
  END {
    for (i = 1; i <= k; i++) { n = order[i]; printf "%-45s %6d cases %8d assertions\n", name[n], cases[n], asserts[n] | "sort"; tc += cases[n]; ta += asserts[n] }
    close("sort")
    printf "%-45s %6d cases %8d assertions\n", "total (" k " doctest entries)", tc, ta
  }' "$log"
