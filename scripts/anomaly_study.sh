#!/usr/bin/env bash
# The anomaly-score study of docs/anomaly_scores.md. The first 50 drawings of every other
# class in $EWE_DATA (bear cat dog duck fish lion monkey rabbit, those present) are
# planted together among the 1,000 sheep, and `sheep_vae anomalies` scores them all with
# every score, once per K in SAMPLES (importance samples of iw_nll and
# complexity_adjusted_nll); ink_adjusted_sse's line is fitted on the sheep alone
# (--reference), so no score is fitted on a planted class. The ROC AUC of class C is
# computed over the 1,000 sheep and C's 50 drawings only: the AUC compares each planted
# drawing with each sheep, so it is the AUC of `--plant C.npy:50` (identical for the
# deterministic scores; for iw_nll the sheep see the same draws and C's drawings other
# ones), for one scoring pass instead of one per class.
# Prints a table of ROC AUC by class and score (at the largest K), each score's mean and
# worst class, iw_nll's AUC by K, and the leave-one-class-out check of picking a score by
# its worst class: for each class, the score with the best worst class over the OTHER
# classes, and that score's AUC on the held-out class.
# Usage: EWE_DATA=DIR bash scripts/anomaly_study.sh CHECKPOINT [build-dir] [out-dir]
#   SAMPLES="1 8 64" (K values, the last one the table's), THREADS=2 (OMP threads).
set -euo pipefail
source "$(dirname "$0")/anomaly_common.sh"
samples=(${SAMPLES:-1 8 64})
anomaly_setup anomaly_study.sh anomaly_study "$@"
# planted.npy: the first 50 drawings of each class, in the order of planted_classes.txt.
plant_rows planted 0 50
planted=$(awk '{s += $2} END {print s}' "$out/planted_classes.txt")
for k in "${samples[@]}"; do
  echo "\$ sheep_vae anomalies --checkpoint CHECKPOINT --data sheep.npy --plant planted.npy:$planted --reference sheep.npy --samples $k --json --out K$k"
  start=$(date +%s)
  "$sheep_vae" anomalies --checkpoint "$checkpoint" --data "$data/sheep.npy" --plant "$out/planted.npy:$planted" \
    --reference "$data/sheep.npy" --samples "$k" --json --out "$out/K$k"
  echo "# K=$k: $(( $(date +%s) - start )) s"
done

python3 - "$out" "${samples[@]}" <<'EOF'
import csv, os, sys
out, ks = sys.argv[1], sys.argv[2:]
classes = [line.split()[0] for line in open(os.path.join(out, "planted_classes.txt"))]
scores = ["sse", "ink_adjusted_sse", "neg_elbo", "iw_nll", "complexity_adjusted_nll"]

def roc_auc(normal, anomalous):  # P(anomaly outscores normal), ties one half (as ewe::anomaly::roc_auc)
    wins = 0.0
    for a in anomalous:
        for b in normal:
            wins += 1.0 if a > b else 0.5 if a == b else 0.0
    return wins / (len(anomalous) * len(normal))

def aucs(k):
    rows = list(csv.DictReader(open(os.path.join(out, "K" + k, "scores.csv"))))
    sheep = [r for r in rows if r["planted"] == "0"]
    planted = [r for r in rows if r["planted"] == "1"]
    table = {}
    for i, c in enumerate(classes):
        mine = [r for r in planted if int(r["index"]) // 50 == i]
        table[c] = {s: roc_auc([float(r[s]) for r in sheep], [float(r[s]) for r in mine]) for s in scores}
    return table

by_k = {k: aucs(k) for k in ks}
auc = by_k[ks[-1]]
width = max(len(s) for s in scores) + 2
print(f"\nROC AUC, 1000 sheep vs the 50 planted drawings of each class (higher score = more anomalous; K = {ks[-1]})")
print("class".ljust(10) + "".join(s.rjust(width) for s in scores))
for c in classes:
    print(c.ljust(10) + "".join(f"{auc[c][s]:.4f}".rjust(width) for s in scores))
print("mean".ljust(10) + "".join(f"{sum(auc[c][s] for c in classes) / len(classes):.4f}".rjust(width) for s in scores))
worst = {s: min(classes, key=lambda c: auc[c][s]) for s in scores}
print("worst".ljust(10) + "".join(f"{auc[worst[s]][s]:.4f}".rjust(width) for s in scores))
print("(class)".ljust(10) + "".join(worst[s].rjust(width) for s in scores))
if len(ks) > 1:
    print("\niw_nll ROC AUC by K (importance samples per drawing)")
    print("class".ljust(10) + "".join(("K=" + k).rjust(10) for k in ks))
    for c in classes:
        print(c.ljust(10) + "".join(f"{by_k[k][c]['iw_nll']:.4f}".rjust(10) for k in ks))
    print("worst".ljust(10) + "".join(f"{min(by_k[k][c]['iw_nll'] for c in classes):.4f}".rjust(10) for k in ks))
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
