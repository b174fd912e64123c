#!/usr/bin/env bash
# ewe's CPU training step against what a user would install today (issue 27): the seed
# sheep VAE, RMSprop, fp32, batch 8 and 64, 2 threads each (intra-op 2, inter-op 1,
# OMP_NUM_THREADS=2), in Keras 3 on TensorFlow (`fit`), PyTorch eager, PyTorch
# torch.compile, Keras 3 on JAX (`fit`, jitted) and PyTorch eager under bf16 autocast
# (bench/compare/peer_step.py), and ewe's own opt-in bf16 products where the CPU has
# AVX512_BF16, interleaved with ewe's `sheep_vae bench`: ewe runs before and after every
# peer, so that load on a shared machine hits both alike.
# Installs the peers from PyPI on first use into venvs under .venv-peers/ (git-ignored;
# rebuilt when the pins below change), needs a Python >= 3.12 (JAX's current releases;
# PEERS_PYTHON picks one) and a C++ compiler (torch.compile). Prints the versions, CPU,
# commit and date, each run's JSON line, then one table (peer_table.py): ms/step at batch
# 8 and 64 with its spread, time over ewe's, peak RSS.
# Usage: bash bench/compare/peers.sh [build-dir] [steps] [results-file]
#   results-file: everything printed is also written there (atomically).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
steps=${2:-30}
results=${3:-}
warmup=5
threads=2
sheep_vae=$build/examples/sheep_vae/sheep_vae
venvs=$root/.venv-peers
[[ -x $sheep_vae ]] || { echo "no $sheep_vae: build it first (cmake --build $build --target sheep_vae)" >&2; exit 1; }
[[ $steps =~ ^[1-9][0-9]*$ ]] || { echo "steps must be a positive integer, found '$steps'" >&2; exit 1; }
if [[ -n $results ]]; then
  [[ -d $(dirname "$results") ]] || { echo "results-file $results: its folder does not exist" >&2; exit 1; }
fi

# One venv per framework (TensorFlow and JAX each want their own numpy and ml_dtypes).
declare -A pins=(
  [tf]="tensorflow-cpu==2.21.0 keras==3.15.1"
  [torch]="torch==2.15.0 numpy==2.5.5"
  [jax]="jax[cpu]==0.12.1 keras==3.15.1"
)
find_python() {
  local candidate
  for candidate in "${PEERS_PYTHON:-}" python3.13 python3.12 "$(pyenv root 2>/dev/null)"/versions/3.1[23]*/bin/python3 python3; do
    if [[ -z $candidate ]] || ! command -v "$candidate" >/dev/null 2>&1; then continue; fi
    "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' 2>/dev/null &&
      { command -v "$candidate"; return; }
  done
  echo "needs Python >= 3.12 with venv and ensurepip (current JAX); set PEERS_PYTHON=/path/to/python3.12" >&2
  exit 1
}
python=$(find_python)
for venv in tf torch jax; do
  dir=$venvs/$venv
  [[ -f $dir/.pins && $(cat "$dir/.pins") == "${pins[$venv]} $("$python" -V)" ]] && continue
  echo "installing $venv peers into $dir: ${pins[$venv]} ($("$python" -V); takes minutes) ..." >&2
  rm -rf "$dir"
  "$python" -m venv "$dir"
  # shellcheck disable=SC2086
  "$dir/bin/pip" install -q --disable-pip-version-check ${pins[$venv]} >"$dir.log" 2>&1 ||
    { tail -5 "$dir.log" >&2; echo "pip install ${pins[$venv]} failed (no PyPI?); see $dir.log" >&2; exit 1; }
  echo "${pins[$venv]} $("$python" -V)" >"$dir/.pins"
done
[[ -n $(command -v c++ || true) ]] || { echo "torch.compile needs a C++ compiler (apt-get install g++)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads TF_NUM_INTRAOP_THREADS=$threads TF_NUM_INTEROP_THREADS=1
export TF_CPP_MIN_LOG_LEVEL=2 JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES='' PYTHONDONTWRITEBYTECODE=1
declare -A venv_of=([keras-tf]=tf [torch-eager]=torch [torch-compile]=torch [keras-jax]=jax [torch-bf16]=torch)
peers=(keras-tf torch-eager torch-compile keras-jax torch-bf16)
# ewe's opt-in bf16 products (ContextOptions::cpu_product_precision) run as one more
# contestant beside torch's bf16 autocast, where this CPU has AVX512_BF16.
if grep -qw avx512_bf16 /proc/cpuinfo; then peers+=(ewe-bf16); fi
# XLA's CPU pool has no thread-count switch (XLA_FLAGS ignores unknown words): it sizes
# itself by the cores the process may use, so JAX gets $threads cores where there are more.
jax_cores=()
if ((threads < $(nproc))); then jax_cores=(taskset -c "0-$((threads - 1))"); fi

run_ewe() {  # BATCH: one `sheep_vae bench` line into the lines file
  "$sheep_vae" bench --device cpu --threads "$threads" --batch "$1" --steps "$steps" --warmup "$warmup" --json |
    sed 's/^/ewe /' | tee -a "$work/lines"
}
run_peer() {  # PEER BATCH: its JSON line, or a failure line and a non-zero status
  local peer=$1 batch=$2 cores=() line
  if [[ $peer == keras-jax ]]; then cores=("${jax_cores[@]}"); fi
  local command=("${cores[@]}" "$venvs/${venv_of[$peer]:-}/bin/python" "$root/bench/compare/peer_step.py" "$peer")
  # ewe's bf16 products: the same bench as ewe's, one failure line where the build or CPU refuses them.
  if [[ $peer == ewe-bf16 ]]; then command=("$sheep_vae" bench --device cpu --product-precision bf16 --json); fi
  if line=$("${command[@]}" --batch "$batch" --steps "$steps" --warmup "$warmup" --threads "$threads" \
            2>"$work/$peer-$batch.err"); then
    echo "$peer $line" | tee -a "$work/lines"
  else
    echo "$peer {\"failed\": true, \"batch\": $batch}" >>"$work/lines"
    echo "$peer batch $batch FAILED: $(tail -3 "$work/$peer-$batch.err" | tr '\n' ' ')"
    return 1
  fi
}
measure() {  # everything that is printed; fails when a peer failed
  local failed=0 batch peer venv
  echo "# ewe against its peers: CPU training step of the seed sheep VAE (RMSprop, fp32), $threads threads each," \
    "$steps timed steps after $warmup warm-up steps per run, ewe before and after every peer"
  echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg) at start," \
    "ewe commit $(git -C "$root" rev-parse --short HEAD), $(date -u '+%F %H:%M UTC'), $("$python" -V)"
  for venv in tf torch jax; do
    echo "# venv $venv: $("$venvs/$venv/bin/python" -m pip list --format=freeze 2>/dev/null |
      grep -iE '^(tensorflow.cpu|keras|torch|jax|jaxlib|numpy|ml.dtypes)==' | tr '\n' ' ')"
  done
  for batch in 8 64; do
    run_ewe "$batch"
    for peer in "${peers[@]}"; do
      run_peer "$peer" "$batch" || failed=1
      run_ewe "$batch"
    done
  done
  echo "# load $(cut -d' ' -f1 /proc/loadavg) at the end, $(date -u '+%H:%M UTC')"
  echo
  "$python" "$root/bench/compare/peer_table.py" "$work/lines"
  return $failed
}

set +e
(set -e; measure) 2>&1 | tee "$work/printed"
status=$?
set -e
if [[ -n $results ]]; then
  if ((status != 0)); then
    echo "not written: $results (a run failed, exit $status)" >&2
  else
    tmp=$results.tmp.$$
    cp "$work/printed" "$tmp" && mv -f "$tmp" "$results"
    echo "written: $results"
  fi
fi
exit $status
