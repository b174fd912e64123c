#!/usr/bin/env bash
# One run, side by side on this machine's CPU: a training step of the seed sheep VAE
# (RMSprop, fp32, 2 threads) in ewe (`sheep_vae bench`) and in PyTorch
# (torch_sheep_vae.py, Debian's python3-torch), at the post's batch 8 and at 64.
# Prints each side's JSON line and a table of ms/step, samples/s, peak RSS and ratios.
# Usage: bash bench/compare/cpu_step.sh [build-dir] [steps]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
steps=${2:-30}
sheep_vae=$build/examples/sheep_vae/sheep_vae
python=/usr/bin/python3
$python -c "import torch" 2>/dev/null || { echo "needs Debian's python3-torch: apt-get install -y python3-torch" >&2; exit 1; }
export OMP_NUM_THREADS=2
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, commit $(git -C "$root" rev-parse --short HEAD), $(date -u +%F)"
rows=()
for batch in 8 64; do
  ewe=$("$sheep_vae" bench --device cpu --batch "$batch" --steps "$steps" --warmup 5 --json)
  torch=$($python "$root/bench/compare/torch_sheep_vae.py" bench --device cpu --batch "$batch" --steps "$steps" --warmup 5 --threads 2)
  echo "$ewe"
  echo "$torch"
  rows+=("$batch|$ewe|$torch")
done
$python - "${rows[@]}" <<'PY'
import json, sys
print(f"{'batch':>5} {'ewe ms':>9} {'torch ms':>9} {'speed-up':>8} {'ewe RSS MB':>10} {'torch RSS MB':>12}")
for row in sys.argv[1:]:
    batch, e, t = row.split("|", 2)
    e, t = json.loads(e), json.loads(t)
    print(f"{batch:>5} {e['ms_per_step']:9.1f} {t['ms_per_step']:9.1f} {t['ms_per_step'] / e['ms_per_step']:7.2f}x"
          f" {e['peak_rss_mb']:10.0f} {t['peak_rss_mb']:12.0f}")
PY
