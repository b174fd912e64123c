#!/usr/bin/env bash
# Reruns docs/tutorial.md's experiment on the real Quick, Draw! files and refreshes its
# figures: 30 epochs on $EWE_DATA/sheep.npy (seed 42, 2 threads), new sheep from a grid
# and from the prior, anomaly scores (alone and with the first 50 cats planted), and the
# latent-space exploration, and all of it as one HTML page, docs/report/sheep_vae_report.html
# (sheep_vae report). Everything the programs print, which the tutorial quotes, goes to
# docs/figures/tutorial_run.txt; the run itself stays in RUN-DIR.
# Usage: EWE_DATA=DIR bash scripts/tutorial_run.sh [build-dir] [run-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${EWE_DATA:?set EWE_DATA to a folder holding sheep.npy and cat.npy}
build=${1:-$root/build}
run=${2:-$root/out/tutorial}
figures=$root/docs/figures
for f in sheep.npy cat.npy; do [[ -f $data/$f ]] || { echo "tutorial_run.sh: $data/$f not found" >&2; exit 1; }; done
cmake --build "$build" --target sheep_vae -j "$(nproc)" >/dev/null
sheep_vae=$build/examples/sheep_vae/sheep_vae
export OMP_WAIT_POLICY=passive
rm -rf "$run"
mkdir -p "$run" "$figures" "$root/docs/report"

{
  echo "# scripts/tutorial_run.sh: commit $(git -C "$root" rev-parse --short HEAD), $(date -u +%F)," \
       "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
  echo "\$ sheep_vae train --data sheep.npy --epochs 30 --seed 42 --threads 2 --snapshots 1,5,10,15,20,25,30 --quiet"
  "$sheep_vae" train --data "$data/sheep.npy" --epochs 30 --seed 42 --threads 2 --snapshots 1,5,10,15,20,25,30 \
    --quiet --out "$run/train"
  cat "$run/train/metrics.csv"
  ck=$run/train/checkpoint.safetensors
  echo "\$ sheep_vae generate --grid; sheep_vae generate --count 64 (prior)"
  "$sheep_vae" generate --checkpoint "$ck" --grid --out "$run/grid.png"
  "$sheep_vae" generate --checkpoint "$ck" --count 64 --out "$run/prior.png"
  echo "\$ sheep_vae anomalies --data sheep.npy"
  "$sheep_vae" anomalies --checkpoint "$ck" --data "$data/sheep.npy" --out "$run/anomalies"
  echo "\$ sheep_vae anomalies --data sheep.npy --plant cat.npy:50 [--json]"
  "$sheep_vae" anomalies --checkpoint "$ck" --data "$data/sheep.npy" --plant "$data/cat.npy:50" --out "$run/cats"
  "$sheep_vae" anomalies --checkpoint "$ck" --data "$data/sheep.npy" --plant "$data/cat.npy:50" --out "$run/cats" --json
  echo "\$ sheep_vae anomalies --data sheep.npy --plant cat.npy:1000 --json"
  "$sheep_vae" anomalies --checkpoint "$ck" --data "$data/sheep.npy" --plant "$data/cat.npy:1000" \
    --out "$run/cats_all" --json
  echo "\$ sheep_vae anomalies --data sheep.npy --plant cat.npy:1000 --reference sheep.npy --json"
  "$sheep_vae" anomalies --checkpoint "$ck" --data "$data/sheep.npy" --plant "$data/cat.npy:1000" \
    --reference "$data/sheep.npy" --out "$run/cats_all" --json
  echo "\$ sheep_vae explore --data sheep.npy"
  "$sheep_vae" explore --checkpoint "$ck" --data "$data/sheep.npy" --out "$run/explore"
  echo "\$ sheep_vae report --run train --explore explore --anomalies cats --generate grid.png"
  (cd "$run" && "$sheep_vae" report --run train --explore explore --anomalies cats --generate grid.png \
    --out "$root/docs/report/sheep_vae_report.html")
} 2>&1 | tee "$figures/tutorial_run.txt"

cp "$run/train/metrics.csv" "$figures/train_metrics.csv"
cp "$run/train/loss.svg" "$figures/train_loss.svg"
cp "$run/train/kl.svg" "$figures/train_kl.svg"
for e in 001 005 010 015 020 025 030; do cp "$run/train/latent_epoch$e.svg" "$figures/train_latent_epoch$e.svg"; done
cp "$run/grid.png" "$figures/generate_grid.png"
cp "$run/prior.png" "$figures/generate_prior.png"
cp "$run/anomalies/histogram_sse.svg" "$figures/anomalies_histogram_sse.svg"
cp "$run/anomalies/above_cutoff.png" "$figures/anomalies_above_cutoff.png"
for s in sse ink_adjusted_sse neg_elbo; do cp "$run/cats/histogram_$s.svg" "$figures/anomalies_cats_$s.svg"; done
for f in latent_scatter.svg kmeans_elbow.svg kmeans_100_centres.png knn_distance.svg dbscan_clusters.svg \
         dbscan_cluster_strips.png; do
  cp "$run/explore/$f" "$figures/explore_$f"
done
echo "tutorial_run.sh: refreshed $figures (numbers in tutorial_run.txt)"
