# R reference for bench/compare/cluster_reference.py: times dbscan::dbscan (Hahsler et
# al., kd-tree frNN) on an n x 2 float64 raw file and writes its labels (0 = noise,
# clusters from 1) as raw int32.
# Usage: Rscript cluster_reference.R points.f64 n d eps minPts labels.i32 repeats
args <- commandArgs(trailingOnly = TRUE)
path <- args[1]; n <- as.integer(args[2]); d <- as.integer(args[3])
eps <- as.numeric(args[4]); minPts <- as.integer(args[5]); out <- args[6]
repeats <- as.integer(args[7])
x <- matrix(readBin(path, what = "double", n = n * d, size = 8, endian = "little"), ncol = d, byrow = TRUE)
suppressPackageStartupMessages(library(dbscan))
best <- Inf
for (r in seq_len(repeats)) {
  t <- system.time(res <- dbscan::dbscan(x, eps = eps, minPts = minPts))[["elapsed"]]
  best <- min(best, t)
}
writeBin(as.integer(res$cluster), out, size = 4, endian = "little")
cat(sprintf("{\"seconds\": %.6f, \"version\": \"%s\"}\n", best, as.character(packageVersion("dbscan"))))
