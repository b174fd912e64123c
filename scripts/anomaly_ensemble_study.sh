#!/usr/bin/env bash
# The feature-space and ensemble study of docs/anomaly_scores.md (issue 29). The 1,000
# sheep of $EWE_DATA are the reference set (fitted once, saved with --save-reference and
# loaded for the second pass; each sheep is scored leave-one-out), and every other class
# (bear cat dog duck fish lion monkey rabbit, those present) is planted twice: rows 0-49
# (where the members and their settings were chosen) and rows 50-999 (never looked at
# while choosing). Class C's ROC AUC is computed over the 1,000 sheep and C's rows only;
# no score is fitted on a planted drawing, so planting all classes at once gives each
# class the AUC it would get alone.
# Prints, for both row ranges, a table of ROC AUC by score and class with each score's
# mean and worst class, and the seconds of each scoring pass.
# Usage: EWE_DATA=DIR bash scripts/anomaly_ensemble_study.sh CHECKPOINT [build-dir] [out-dir]
#   K=5 (knn_pooled's and knn_dense's neighbours), POOL=7 (knn_pooled's grid), THREADS=2 (OMP threads).
set -euo pipefail
source "$(dirname "$0")/anomaly_common.sh"
k=${K:-5}
pool=${POOL:-7}
EXTRA_HEADER="K=$k, POOL=$pool" anomaly_setup anomaly_ensemble_study.sh anomaly_ensemble_study "$@"
# rows_0_49.npy, rows_50_999.npy: those rows of each class, in the order of rows_*_classes.txt.
plant_rows rows_0_49 0 50
plant_rows rows_50_999 50 1000
n_first=$(awk '{s += $2} END {print s}' "$out/rows_0_49_classes.txt")
n_rest=$(awk '{s += $2} END {print s}' "$out/rows_50_999_classes.txt")
reference=$out/reference_set.safetensors
echo "\$ sheep_vae anomalies --checkpoint CHECKPOINT --data sheep.npy --plant rows_0_49.npy:$n_first --reference sheep.npy --k $k --pool $pool --save-reference reference_set.safetensors --json --out rows_0_49"
start=$(date +%s)
"$sheep_vae" anomalies --checkpoint "$checkpoint" --data "$data/sheep.npy" --plant "$out/rows_0_49.npy:$n_first" \
  --reference "$data/sheep.npy" --k "$k" --pool "$pool" --save-reference "$reference" --json --out "$out/rows_0_49"
echo "# rows 0-49: $(( $(date +%s) - start )) s (fit and save the reference set, score $(( 1000 + n_first )) drawings)"
echo "\$ sheep_vae anomalies --checkpoint CHECKPOINT --data sheep.npy --plant rows_50_999.npy:$n_rest --reference reference_set.safetensors --json --out rows_50_999"
start=$(date +%s)
"$sheep_vae" anomalies --checkpoint "$checkpoint" --data "$data/sheep.npy" --plant "$out/rows_50_999.npy:$n_rest" \
  --reference "$reference" --json --out "$out/rows_50_999"
echo "# rows 50-999: $(( $(date +%s) - start )) s (load the reference set, score $(( 1000 + n_rest )) drawings)"

python3 - "$out" <<'EOF'
import csv, os, sys
out = sys.argv[1]
planted = {name: [(c, int(n)) for c, n in (line.split() for line in open(os.path.join(out, name + "_classes.txt")))]
           for name in ["rows_0_49", "rows_50_999"]}
scores = ["sse", "ink_adjusted_sse", "neg_elbo", "knn_pooled", "knn_dense", "mahalanobis_gram", "ensemble"]

def roc_auc(normal, anomalous):  # P(anomaly outscores normal), ties one half (as ewe::anomaly::roc_auc)
    ranked = sorted([(v, 0) for v in normal] + [(v, 1) for v in anomalous])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += sum(1 for t in range(i, j) if ranked[t][1]) * (i + 1 + j) / 2
        i = j
    p, q = len(anomalous), len(normal)
    return (rank_sum - p * (p + 1) / 2) / (p * q)

def table(folder, per_class):
    rows = list(csv.DictReader(open(os.path.join(out, folder, "scores.csv"))))
    sheep = [r for r in rows if r["planted"] == "0"]
    mine, start = {}, 0
    planted_rows = [r for r in rows if r["planted"] == "1"]
    for c, n in per_class:
        mine[c] = planted_rows[start:start + n]
        start += n
    classes = [c for c, _ in per_class]
    auc = {s: {c: roc_auc([float(r[s]) for r in sheep], [float(r[s]) for r in mine[c]]) for c in classes} for s in scores}
    print(f"\nROC AUC, {len(sheep)} sheep vs {folder.replace('_', ' ', 1).replace('_', '-')} of each class"
          f" ({', '.join(f'{c} {len(mine[c])}' for c in classes)})")
    print("score".ljust(18) + "".join(c.rjust(8) for c in classes) + "mean".rjust(8) + "worst".rjust(16))
    for s in scores:
        worst = min(classes, key=lambda c: auc[s][c])
        print(s.ljust(18) + "".join(f"{auc[s][c]:.3f}".rjust(8) for c in classes)
              + f"{sum(auc[s].values()) / len(classes):.3f}".rjust(8) + f"{auc[s][worst]:.3f} ({worst})".rjust(16))
    return auc

table("rows_0_49", planted["rows_0_49"])
auc = table("rows_50_999", planted["rows_50_999"])
worst = min(auc["ensemble"].values())
print(f"\nensemble worst class on rows 50-999: {worst:.3f}; target 0.87 " + ("met" if worst >= 0.87 else "NOT met"))
EOF
