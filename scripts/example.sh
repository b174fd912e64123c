#!/usr/bin/env bash
# Builds the sheep_vae example and runs the experiment in small: the model summary,
# a short training run on the built-in default data (procedural sheep doodles, or
# $EWE_DATA/sheep.npy when EWE_DATA names a folder holding it), and a sheet of new
# sheep decoded from a grid over the latent plane. Output goes to out/sheep/; a rerun
# never overwrites an earlier run: it writes to out/sheep-2/, out/sheep-3/, ...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/ensure_deps.sh"
build=$root/build
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then export CUDACXX=/usr/local/cuda/bin/nvcc; fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release ${EWE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)" --target sheep_vae
sheep_vae=$build/examples/sheep_vae/sheep_vae
out=$root/out/sheep
n=1
while [[ -e $out ]]; do n=$((n + 1)); out=$root/out/sheep-$n; done
"$sheep_vae" summary
"$sheep_vae" train --epochs ${EPOCHS:-3} --limit ${LIMIT:-2000} --kl-start 1 --kl-steep 2 --out "$out"
"$sheep_vae" generate --checkpoint "$out/checkpoint.safetensors" --grid --out "$out/grid.png"
echo "ewe: wrote $out (metrics.csv, logs/, checkpoint.safetensors, grid.png)"
