#!/usr/bin/env bash
# ctest data_parallel_mpi: data-parallel training over MPI (tests/dist/test_data_parallel.cpp)
# with mpirun -np 2, one OpenMP thread per rank: 2 ranks match one process; a rank that
# dies ends the run (mpirun) and leaves the last checkpoint intact, from which 2 ranks
# resume; a stalled rank makes the others fail with the collective timeout, not hang.
# Then `mpirun -np 2 sheep_vae train --distributed`, and --resume, when SHEEP_VAE is given.
# Usage: run.sh PROGRAM MPIEXEC WORKDIR [SHEEP_VAE] (PROGRAM empty: ewe was built without
# MPI -> 77).
set -uo pipefail
program=${1:-} mpiexec=${2:-} work=${3:-} sheep=${4:-}
if [[ -z $program ]]; then
  echo "skipped: ewe was built without MPI (EWE_WITH_MPI=OFF; install libopenmpi-dev and openmpi-bin, reconfigure)"
  exit 77
fi
export OMP_NUM_THREADS=1
# Open MPI's own allocations at MPI_Init are reported as leaks under AddressSanitizer.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
launch=("$mpiexec" -np 2 --oversubscribe)
[[ $(id -u) -eq 0 ]] && launch+=(--allow-run-as-root)
rm -rf "$work" && mkdir -p "$work"
failed=0
check() { if eval "$1"; then echo "ok: $2"; else echo "FAILED: $2"; failed=1; fi; }

echo "== 2 ranks x batch 8 against 1 process x batch 16 =="
"${launch[@]}" "$program" match "$work/match" || failed=1

echo "== rank 1 dies (SIGKILL) in epoch 2 =="
start=$SECONDS
timeout 120 "${launch[@]}" "$program" die "$work/die" >"$work/die.log" 2>&1
status=$?
sed 's/^/  | /' "$work/die.log" | head -20
check "[[ $status -ne 0 && $status -ne 124 ]]" "mpirun exits with an error ($status), not a hang, after $((SECONDS - start)) s"
check "grep -q 'signal 9' '$work/die.log'" "mpirun names the killed rank's signal"
"$program" check "$work/die" || failed=1

echo "== 2 ranks resume from the checkpoint the dead run left =="
"${launch[@]}" "$program" resume "$work/die" || failed=1

echo "== rank 1 stalls 60 s in a step; timeout 3 s =="
start=$SECONDS
timeout 120 "${launch[@]}" "$program" stall "$work/stall" >"$work/stall.log" 2>&1
status=$?
took=$((SECONDS - start))
sed 's/^/  | /' "$work/stall.log" | head -20
check "[[ $status -ne 0 && $status -ne 124 ]]" "mpirun exits with an error ($status) after $took s"
check "[[ $took -lt 40 ]]" "well before the stalled rank would wake (60 s)"
check "grep -q 'rank 0 of 2 waited 3 s for the other ranks' '$work/stall.log'" "rank 0 reports the timeout"

if [[ -n $sheep ]]; then
  echo "== mpirun -np 2 sheep_vae train --distributed (global batch 16), then --resume =="
  out=$work/sheep
  train=("${launch[@]}" "$sheep" train --distributed --limit 40 --batch 16 --snapshots '' --monitor 16 --quiet --out "$out")
  "${train[@]}" --epochs 1 >"$work/sheep.log" 2>&1 || { cat "$work/sheep.log"; failed=1; }
  check "[[ -f '$out/checkpoint.safetensors' && \$(wc -l < '$out/metrics.csv') -eq 2 ]]" \
    "epoch 1: a checkpoint and one row of metrics.csv (written by rank 0 alone)"
  check "[[ \$(cut -d, -f2 '$out/metrics.csv' | tail -1) == 3 ]]" "3 steps of global batch 16 for 40 drawings"
  "${train[@]}" --epochs 2 --resume >>"$work/sheep.log" 2>&1 || { cat "$work/sheep.log"; failed=1; }
  check "[[ \$(wc -l < '$out/metrics.csv') -eq 3 && \$(cut -d, -f2 '$out/metrics.csv' | tail -1) == 6 ]]" \
    "--resume on 2 ranks: epoch 2 continues from the checkpoint (6 steps in all)"
  check "grep -q 'Resuming from' '$work/sheep.log' && [[ \$(grep -c 'Resuming from' '$work/sheep.log') -eq 1 ]]" \
    "rank 0 alone reports"
fi

[[ $failed -eq 0 ]] && rm -rf "$work"
exit $failed
