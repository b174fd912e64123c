// ewe::cluster::DbscanResult, what every DBSCAN index of ewe/cluster/dbscan.hpp
// returns, and the two steps they share to fill it: numbering union-find components
// in scikit-learn's order (number_components) and counting the noise (finish).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ewe::cluster {

struct DbscanResult {
    std::vector<std::int32_t> labels;  // per point: cluster 0..n_clusters-1, or -1 for noise
    std::vector<std::uint8_t> core;    // per point: 1 for core points
    std::int32_t n_clusters = 0;
    std::int64_t n_noise = 0;
};

namespace detail {

// Turns per-item component roots into cluster numbers in order of the smallest
// original index of a core point in each component. `root_of_core(i)` is the root of
// original point i when it is core, -1 otherwise (called for i = 0..n-1 in order);
// writes numbers into `number` (indexed by root).
template <class RootOf>
std::int32_t number_components(std::int64_t n, RootOf&& root_of_core, std::vector<std::int32_t>& number) {
    std::int32_t next = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int32_t r = root_of_core(i);
        if (r >= 0 && number[r] < 0) number[r] = next++;
    }
    return next;
}

inline void finish(DbscanResult& r) {
    r.n_noise = std::count(r.labels.begin(), r.labels.end(), -1);
}

}  // namespace detail
}  // namespace ewe::cluster
