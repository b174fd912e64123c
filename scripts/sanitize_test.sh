#!/usr/bin/env bash
# One compute-sanitizer run of one CUDA test program, as a ctest test (label
# `sanitizer`, SKIP_RETURN_CODE 77; tests/CMakeLists.txt registers one per tool and
# program). Exit 0 only when the tool finished with 0 errors; 77 (skipped, "not run")
# when compute-sanitizer is not installed, when there is no CUDA device, or when the
# tool refuses this machine (e.g. a virtualised runtime); 1 for anything else.
#   bash scripts/sanitize_test.sh TOOL PROGRAM [PROGRAM-ARGS...]
#   TOOL: memcheck | racecheck | initcheck | synccheck
# compute-sanitizer is looked up at run time: $EWE_COMPUTE_SANITIZER, PATH, then the
# CUDA toolkits under /usr/local and /opt/nvidia.
set -uo pipefail
tool=${1:?usage: sanitize_test.sh TOOL PROGRAM [ARGS...]}
program=${2:?usage: sanitize_test.sh TOOL PROGRAM [ARGS...]}
shift 2
case $tool in
  memcheck | racecheck | initcheck | synccheck) ;;
  *) echo "FAIL: sanitize_test.sh: unknown tool '$tool' (expected memcheck, racecheck, initcheck or synccheck)"; exit 1 ;;
esac
[[ -x $program ]] || { echo "FAIL: sanitize_test.sh: $program is not an executable"; exit 1; }

sanitizer=${EWE_COMPUTE_SANITIZER:-}
[[ -z $sanitizer ]] && sanitizer=$(command -v compute-sanitizer 2>/dev/null)
[[ -z $sanitizer ]] && sanitizer=$(find /usr/local/cuda*/ /opt/nvidia -name compute-sanitizer -type f -perm -u+x \
  2>/dev/null | sort | head -1)
if [[ -z $sanitizer ]]; then
  echo "skipped: compute-sanitizer not found (not run: PATH, /usr/local/cuda*, /opt/nvidia; or set EWE_COMPUTE_SANITIZER)"
  exit 77
fi

extra=()
[[ $tool == memcheck ]] && extra=(--leak-check full)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "$sanitizer --tool $tool ${extra[*]} --report-api-errors no $program $*"
# --report-api-errors no: cuDNN and cuBLAS make CUDA calls that fail by design (probes
# of what the device supports), which the tool would count as errors of ours; ewe checks
# every call it makes itself, so a failing call of ours already fails the test program.
"$sanitizer" --tool "$tool" "${extra[@]}" --report-api-errors no --error-exitcode 99 --print-limit 100 \
  "$program" "$@" >"$log" 2>&1
rc=$?
cat "$log"

if ((rc == 77)) && grep -q "^skipped: no CUDA device" "$log"; then
  echo "skipped: $tool not run: no CUDA device"
  exit 77
fi
summary=$(grep -E "(ERROR|RACECHECK) SUMMARY" "$log" | tail -1)
if [[ -z $summary ]]; then
  # No summary: the tool never instrumented the program. Its own refusal lines say why.
  refusal=$(grep -iE "^=+ .*(not supported|unsupported|internal sanitizer error|unable to|insufficient|virtuali[sz])" \
    "$log" | head -3)
  if [[ -n $refusal ]]; then
    echo "skipped: $tool not run: compute-sanitizer refused this machine: $refusal"
    exit 77
  fi
  echo "FAIL: $tool: exit $rc and no summary line from compute-sanitizer"
  exit 1
fi
errors=$(sed -nE 's/.*ERROR SUMMARY: ([0-9]+) error.*/\1/p; s/.*RACECHECK SUMMARY:.*\(([0-9]+) error.*/\1/p' \
  <<<"$summary")
if ((rc == 0)) && [[ $errors == 0 ]]; then
  echo "passed: $tool: $summary"
  exit 0
fi
echo "FAIL: $tool: exit $rc, $summary"
exit 1
