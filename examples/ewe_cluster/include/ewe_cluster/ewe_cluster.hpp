// The ewe_cluster command-line tool as a function (library ewe_cluster_cli), so tests
// can call it in-process:
//   ewe_cluster dbscan --input X.npy --eps E --min-pts M [--out labels.npy] [--json]
//   ewe_cluster kmeans --input X.npy --k K [--n-init N] [--seed S] [--out labels.npy] [--json]
// Input: float32 or float64 .npy of shape (N, D). Labels are written as int32 .npy.
// --json prints one line; "seconds" times the clustering alone (no file I/O).
#pragma once

#include <iosfwd>

namespace ewe_cluster {

// Runs the tool: results and help to `out`, errors to `err`. Returns the process exit
// status (0 on success). Never throws.
int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace ewe_cluster
