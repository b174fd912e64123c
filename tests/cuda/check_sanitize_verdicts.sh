#!/usr/bin/env bash
# ctest check of scripts/sanitize_test.sh's verdicts, with stand-in compute-sanitizers
# (EWE_COMPUTE_SANITIZER) that print what the real tool prints: 0 errors passes (0);
# errors, hazards or an unexplained crash fail (1); a refusal by the machine, no device,
# or no tool at all are "not run" (77), never a pass.
#   bash tests/cuda/check_sanitize_verdicts.sh PATH/TO/scripts/sanitize_test.sh
set -uo pipefail
wrapper=${1:?usage: check_sanitize_verdicts.sh SANITIZE_TEST_SH}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stand_in() {  # name, body of the stand-in compute-sanitizer
  printf '#!/usr/bin/env bash\n%s\n' "$2" >"$work/$1"
  chmod +x "$work/$1"
}
stand_in clean 'echo "========= COMPUTE-SANITIZER"; echo "========= ERROR SUMMARY: 0 errors"; exit 0'
stand_in errors 'echo "========= Invalid __global__ read of size 4 bytes"; echo "========= ERROR SUMMARY: 3 errors"; exit 99'
stand_in race_clean 'echo "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)"; exit 0'
stand_in race_errors 'echo "========= RACECHECK SUMMARY: 2 hazards displayed (2 errors, 0 warnings)"; exit 99'
stand_in exit_without_errors 'echo "========= ERROR SUMMARY: 0 errors"; exit 1'
stand_in refused 'echo "========= Error: Device not supported by this tool"; exit 1'
stand_in crashed 'echo "Segmentation fault"; exit 139'
stand_in no_device 'echo "test: CUDA driver none, runtime 13.0; no usable device (cudaErrorNoDevice: no CUDA-capable device is detected)"
echo "skipped: no CUDA device (cudaErrorNoDevice)"; echo "========= ERROR SUMMARY: 0 errors"; exit 77'

failures=0
expect() {  # stand-in, tool, expected exit code
  local out rc
  out=$(EWE_COMPUTE_SANITIZER=$work/$1 bash "$wrapper" "$2" /bin/true 2>&1); rc=$?
  if ((rc == $3)); then echo "ok: $1 ($2) -> $rc: $(tail -1 <<<"$out")"
  else echo "FAIL: $1 ($2) -> exit $rc, expected $3:"; echo "$out"; failures=$((failures + 1)); fi
}
expect clean memcheck 0
expect errors memcheck 1
expect race_clean racecheck 0
expect race_errors racecheck 1
expect exit_without_errors initcheck 1
expect refused synccheck 77
expect crashed memcheck 1
expect no_device memcheck 77
expect clean nosuchtool 1
# No compute-sanitizer at all (checked only where none is installed).
if [[ -z $(command -v compute-sanitizer) && -z $(find /usr/local/cuda*/ /opt/nvidia -name compute-sanitizer 2>/dev/null) ]]; then
  out=$(EWE_COMPUTE_SANITIZER='' bash "$wrapper" memcheck /bin/true 2>&1); rc=$?
  if ((rc == 77)) && grep -q "^skipped: compute-sanitizer not found" <<<"$out"; then echo "ok: no tool -> 77: $out"
  else echo "FAIL: no tool -> exit $rc, expected 77: $out"; failures=$((failures + 1)); fi
else
  echo "(the no-tool case is not checked: a compute-sanitizer is installed here)"
fi
((failures == 0)) || exit 1
echo "passed: every verdict as expected"
