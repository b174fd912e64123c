#!/usr/bin/env bash
# The anomaly-score study of docs/anomaly_scores.md: for every other class in $EWE_DATA
# (bear cat dog duck fish lion monkey rabbit, those present), `sheep_vae anomalies` on
# the 1,000 sheep with the first 50 drawings of that class planted, every score computed
# (iw_nll and complexity_adjusted_nll with K importance samples, default 64), the
# ink_adjusted_sse line fitted on the sheep alone (--reference), so no score is fitted on
# a planted class. Prints one table of ROC AUC by class and score, then each score's
# mean and worst class, and the leave-one-class-out check of picking a score by its
# worst class: for each class, the score with the best worst class over the OTHER
# classes, and that score's AUC on the held-out class.
# Usage: EWE_DATA=DIR bash scripts/anomaly_study.sh CHECKPOINT [build-dir] [out-dir]
#   K=64 (importance samples), THREADS=2 (OMP threads).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${EWE_DATA:?set EWE_DATA to a folder holding sheep.npy and the other classes}
checkpoint=${1:?usage: EWE_DATA=DIR bash scripts/anomaly_study.sh CHECKPOINT [build-dir] [out-dir]}
build=${2:-$root/build}
out=${3:-$root/out/anomaly_study}
samples=${K:-64}
sheep_vae=$build/examples/sheep_vae/sheep_vae
[[ -f $checkpoint ]] || { echo "anomaly_study.sh: checkpoint $checkpoint not found" >&2; exit 1; }
[[ -f $data/sheep.npy ]] || { echo "anomaly_study.sh: $data/sheep.npy not found" >&2; exit 1; }
[[ -x $sheep_vae ]] || { echo "anomaly_study.sh: $sheep_vae not built (cmake --build $build --target sheep_vae)" >&2; exit 1; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=${THREADS:-2}
mkdir -p "$out"

echo "# scripts/anomaly_study.sh: commit $(git -C "$root" rev-parse --short HEAD), $(date -u +%F)," \
     "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS"
echo "# checkpoint $checkpoint"
results=$out/results.jsonl
: > "$results"
for class in bear cat dog duck fish lion monkey rabbit; do
  [[ -f $data/$class.npy ]] || { echo "# $class.npy not in $data: skipped"; continue; }
  echo "\$ sheep_vae anomalies --checkpoint CHECKPOINT --data sheep.npy --plant $class.npy:50 --reference sheep.npy --samples $samples --json"
  start=$(date +%s)
  line=$("$sheep_vae" anomalies --checkpoint "$checkpoint" --data "$data/sheep.npy" --plant "$data/$class.npy:50" \
           --reference "$data/sheep.npy" --samples "$samples" --json --out "$out/$class")
  echo "$line"
  echo "# $class: $(( $(date +%s) - start )) s"
  printf '{"class": "%s", "result": %s}\n' "$class" "$line" >> "$results"
done

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
scores = ["sse", "ink_adjusted_sse", "neg_elbo", "iw_nll", "complexity_adjusted_nll"]
auc = {r["class"]: {s: r["result"]["roc_auc_" + s] for s in scores} for r in rows}
classes = list(auc)
width = max(len(s) for s in scores) + 2
print("\nROC AUC, 1000 sheep with 50 planted drawings of each class (higher score = more anomalous)")
print("class".ljust(10) + "".join(s.rjust(width) for s in scores))
for c in classes:
    print(c.ljust(10) + "".join(f"{auc[c][s]:.4f}".rjust(width) for s in scores))
print("mean".ljust(10) + "".join(f"{sum(auc[c][s] for c in classes) / len(classes):.4f}".rjust(width) for s in scores))
worst = {s: min(classes, key=lambda c: auc[c][s]) for s in scores}
print("worst".ljust(10) + "".join(f"{auc[worst[s]][s]:.4f}".rjust(width) for s in scores))
print("(class)".ljust(10) + "".join(worst[s].rjust(width) for s in scores))
if len(classes) > 1:
    print("\nPicking a score by its worst class, one class held out of the choice:")
    print("held out".ljust(10) + "chosen on the others".rjust(26) + "its worst there".rjust(17) + "AUC held out".rjust(14))
    for held in classes:
        others = [c for c in classes if c != held]
        chosen = max(scores, key=lambda s: min(auc[c][s] for c in others))
        print(held.ljust(10) + chosen.rjust(26) + f"{min(auc[c][chosen] for c in others):.4f}".rjust(17)
              + f"{auc[held][chosen]:.4f}".rjust(14))
best = max(scores, key=lambda s: auc[worst[s]][s])
print(f"\nbest worst class: {best}, {auc[worst[best]][best]:.4f} ({worst[best]}); target 0.95 "
      + ("met" if auc[worst[best]][best] >= 0.95 else "NOT met"))
EOF
