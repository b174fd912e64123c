#!/usr/bin/env bash
# Data-parallel speed of the sheep VAE at one global batch, in one run: 1 rank and
# 2 ranks over MPI with one thread each, against one process with 2 threads, and the
# all-reduce of the 51 MB gradient buffer between 2 ranks (bench_data_parallel).
# Usage: bench/mpi/run.sh BUILD_DIR [STEPS] [GLOBAL_BATCH]
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR [STEPS] [GLOBAL_BATCH]} steps=${2:-20} batch=${3:-16}
program=$build/bench/bench_data_parallel
[[ -x $program ]] || { echo "run.sh: $program is missing (build ewe with MPI: EWE_WITH_MPI)" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}  # threads sleep when cores are shared, as .ci/run
launch=(mpirun --oversubscribe --bind-to none)
[[ $(id -u) -eq 0 ]] && launch+=(--allow-run-as-root)
echo "# $(date -u +%FT%TZ) $(hostname), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(lscpu | sed -n 's/^Model name: *//p'); $(mpirun --version | head -1); OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
OMP_NUM_THREADS=2 "$program" --steps "$steps" --batch "$batch"
OMP_NUM_THREADS=1 "${launch[@]}" -np 1 "$program" --mpi --steps "$steps" --batch "$batch"
OMP_NUM_THREADS=1 "${launch[@]}" -np 2 "$program" --mpi --steps "$steps" --batch "$batch"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
