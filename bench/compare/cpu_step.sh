#!/usr/bin/env bash
# One run, side by side on this machine's CPU: a training step of the seed sheep VAE
# (RMSprop, fp32) in ewe (`sheep_vae bench`, 2 threads and 1) and in PyTorch
# (torch_sheep_vae.py, Debian's python3-torch, 2 threads), at the post's batch 8 and at
# 64 on a quiet machine, then at batch 8 again while another process keeps one core busy
# (`yes > /dev/null`, stopped when the script ends): issue 16's shared-machine case.
# Prints each side's JSON line and a table of ms/step, the ratios and peak RSS.
# Usage: bash bench/compare/cpu_step.sh [build-dir] [steps]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
steps=${2:-30}
sheep_vae=$build/examples/sheep_vae/sheep_vae
python=/usr/bin/python3
$python -c "import torch" 2>/dev/null || { echo "needs Debian's python3-torch: apt-get install -y python3-torch" >&2; exit 1; }
[[ -x $sheep_vae ]] || { echo "no $sheep_vae: build the project first (cmake --build $build)" >&2; exit 1; }
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, commit $(git -C "$root" rev-parse --short HEAD), $(date -u +%F)"
busy=
trap '[[ -n $busy ]] && kill "$busy" 2>/dev/null; true' EXIT

# measure CONDITION BATCH: ewe at 2 and 1 threads, PyTorch at 2, one JSON line each.
rows=()
measure() {
  local condition=$1 batch=$2 e2 e1 t2
  e2=$(OMP_NUM_THREADS=2 "$sheep_vae" bench --device cpu --batch "$batch" --steps "$steps" --warmup 5 --json)
  e1=$(OMP_NUM_THREADS=1 "$sheep_vae" bench --device cpu --batch "$batch" --steps "$steps" --warmup 5 --json)
  t2=$(OMP_NUM_THREADS=2 $python "$root/bench/compare/torch_sheep_vae.py" bench --device cpu --batch "$batch" \
       --steps "$steps" --warmup 5 --threads 2)
  printf '%s %s\n' "$condition" "$e2" "$condition" "$e1" "$condition" "$t2"
  rows+=("$condition|$batch|$e2|$e1|$t2")
}
measure quiet 8
measure quiet 64
yes > /dev/null &
busy=$!
measure contended 8
kill "$busy"
busy=

$python - "${rows[@]}" <<'PY'
import json, sys
rows = [r.split("|") for r in sys.argv[1:]]
print(f"{'condition':>10} {'batch':>5} {'ewe 2t ms':>10} {'ewe 1t ms':>10} {'torch ms':>9} {'vs torch':>8}"
      f" {'ewe RSS MB':>10} {'torch RSS MB':>12}")
ms = {}
for condition, batch, e2, e1, t2 in rows:
    e2, e1, t2 = json.loads(e2), json.loads(e1), json.loads(t2)
    ms[(condition, batch)] = (e2["ms_per_step"], e1["ms_per_step"], t2["ms_per_step"])
    print(f"{condition:>10} {batch:>5} {e2['ms_per_step']:10.1f} {e1['ms_per_step']:10.1f} {t2['ms_per_step']:9.1f}"
          f" {t2['ms_per_step'] / e2['ms_per_step']:7.2f}x {e2['peak_rss_mb']:10.0f} {t2['peak_rss_mb']:12.0f}")
quiet, busy = ms[("quiet", "8")], ms[("contended", "8")]
print(f"batch 8, one core busy: ewe 2 threads {busy[0] / quiet[0]:.2f}x its quiet step"
      f" ({busy[0] / busy[1]:.2f}x its 1-thread step under the same load); PyTorch {busy[2] / quiet[2]:.2f}x")
PY
