#!/usr/bin/env bash
# ctest check of the no-device rule (ewe/cuda/device.cuh) on real CUDA programs, on a
# machine without a usable GPU: each PROGRAM must print the driver/runtime report, then
# "skipped: no CUDA device (<cudaError...>)" and exit 77; with EWE_REQUIRE_CUDA=1 it
# must exit 1 with a FAIL line naming the CUDA error; with a malformed EWE_REQUIRE_CUDA
# it must exit 2. On a machine with a device this check skips (exit 77).
#   bash tests/cuda/check_no_device_rule.sh PROGRAM...
set -uo pipefail
failures=0
fail() { echo "check_no_device_rule: RULE BROKEN: $*"; failures=$((failures + 1)); }

for program in "$@"; do
  name=$(basename "$program")
  out=$(env -u EWE_REQUIRE_CUDA "$program" 2>&1); rc=$?
  echo "--- $name (EWE_REQUIRE_CUDA unset): exit $rc"; echo "$out"
  if ! grep -q "no usable device" <<<"$out" && grep -qE "CUDA driver .*; [0-9]+ devices?:" <<<"$out"; then
    echo "skipped: $name found a CUDA device; this check is for machines without one"
    exit 77
  fi
  grep -qE "^$name: CUDA driver [^,]+, runtime [0-9]+\.[0-9]+; no usable device \(cuda[A-Za-z]+: " <<<"$out" ||
    fail "$name: no driver/runtime report line first"
  ((rc == 77)) || fail "$name: exit $rc without a device (expected the skip code 77)"
  grep -qE "^skipped: no CUDA device \(cuda[A-Za-z]+\)$" <<<"$out" || fail "$name: no 'skipped: no CUDA device (<error>)' line"

  out=$(EWE_REQUIRE_CUDA=1 "$program" 2>&1); rc=$?
  echo "--- $name (EWE_REQUIRE_CUDA=1): exit $rc"; echo "$out"
  ((rc == 1)) || fail "$name: exit $rc with EWE_REQUIRE_CUDA=1 and no device (expected 1)"
  grep -qE "^FAIL: $name: EWE_REQUIRE_CUDA=1 but no usable CUDA device \(cuda[A-Za-z]+: " <<<"$out" ||
    fail "$name: no FAIL line naming the CUDA error"
  grep -q "^skipped" <<<"$out" && fail "$name: says 'skipped' although EWE_REQUIRE_CUDA=1"

  out=$(EWE_REQUIRE_CUDA=yes "$program" 2>&1); rc=$?
  echo "--- $name (EWE_REQUIRE_CUDA=yes): exit $rc"; echo "$out"
  ((rc == 2)) || fail "$name: exit $rc with EWE_REQUIRE_CUDA=yes (expected 2, a malformed switch)"
done
((failures == 0)) || exit 1
echo "passed: the no-device rule holds for $# programs"
