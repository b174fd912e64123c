// Exact DBSCAN (Ester et al., KDD'96) with the labels of scikit-learn's DBSCAN and of
// R's dbscan package: a uniform-grid algorithm for 1-3 dimensions (Gan & Tao, SIGMOD'15
// style, exact), a k-d tree for higher ones, and an O(n^2) reference for tests.
//
// Semantics (identical for every index structure):
//  * distance: Euclidean; q is a neighbour of p when sum_k (p_k - q_k)^2 <= eps*eps,
//    summed in dimension order in double precision (float input is widened first;
//    each step s + t*t rounded once, a fused multiply-add on every build, see
//    detail::sq_step);
//  * p is a core point when at least min_pts points, p itself included, are neighbours;
//  * clusters are the connected components of core points under "neighbour", numbered
//    from 0 in order of discovery: scanning points in index order, each cluster gets
//    its number when its first (lowest-index) core point is met, as in scikit-learn;
//  * a non-core point that neighbours core points is a border point and joins the
//    first cluster that reaches it, i.e. the lowest-numbered cluster among its core
//    neighbours (scikit-learn and R expand clusters one after another);
//  * everything else is noise, label -1.
// Memory is linear in n: the grid keeps a sorted copy of the points, the permutation,
// per-point counts/flags and per-cell tables (under 64 bytes per 2-D point); no
// neighbour lists are stored. The grid is ewe/cluster/dbscan_grid.hpp, the k-d tree
// ewe/cluster/kdtree.hpp; this file chooses between them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <vector>

#include "ewe/cluster/dbscan_grid.hpp"
#include "ewe/cluster/dbscan_result.hpp"
#include "ewe/cluster/kdtree.hpp"
#include "ewe/cluster/union_find.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"

namespace ewe::cluster {

enum class DbscanIndex {
    automatic,  // grid for d <= 3 (when the grid fits in 64-bit cell keys), k-d tree otherwise
    grid,       // uniform grid, d <= 3 (falls back to the k-d tree when coordinates span too many cells)
    kdtree,     // k-d tree, any d
    reference,  // O(n^2) time and memory: neighbour lists and scikit-learn's expansion loop
};

struct DbscanOptions {
    double eps = 0.5;
    std::int64_t min_pts = 5;  // counts the point itself (scikit-learn's min_samples, R's minPts)
    DbscanIndex index = DbscanIndex::automatic;

    DbscanOptions& set_eps(double v) { eps = v; return *this; }
    DbscanOptions& set_min_pts(std::int64_t v) { min_pts = v; return *this; }
    DbscanOptions& set_index(DbscanIndex v) { index = v; return *this; }
};

namespace detail {

inline void check_dbscan_args(const DbscanOptions& o, const char* who) {
    EWE_REQUIRE(std::isfinite(o.eps) && o.eps > 0, who, ": eps must be a positive finite number, found ", o.eps);
    EWE_REQUIRE(o.min_pts >= 1, who, ": min_pts must be >= 1 (it counts the point itself), found ", o.min_pts);
}

// ---------------------------------------------------------------------------------
// The O(n^2) reference: neighbour lists, then scikit-learn's dbscan_inner loop.
inline DbscanResult dbscan_reference(const std::vector<double>& x, std::int64_t n, int d, const DbscanOptions& o) {
    const double eps2 = o.eps * o.eps;
    std::vector<std::vector<std::int32_t>> nb(n);
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j)
            if (sqdist(&x[i * d], &x[j * d], d) <= eps2) nb[i].push_back(static_cast<std::int32_t>(j));
    DbscanResult r;
    r.labels.assign(n, -1);
    r.core.assign(n, 0);
    for (std::int64_t i = 0; i < n; ++i) r.core[i] = static_cast<std::int64_t>(nb[i].size()) >= o.min_pts;
    std::int32_t label = 0;
    std::vector<std::int32_t> stack;
    for (std::int64_t s = 0; s < n; ++s) {
        if (r.labels[s] != -1 || !r.core[s]) continue;
        std::int64_t i = s;
        while (true) {
            if (r.labels[i] == -1) {
                r.labels[i] = label;
                if (r.core[i])
                    for (std::int32_t v : nb[i])
                        if (r.labels[v] == -1) stack.push_back(v);
            }
            if (stack.empty()) break;
            i = stack.back();
            stack.pop_back();
        }
        ++label;
    }
    r.n_clusters = label;
    finish(r);
    return r;
}

// ---------------------------------------------------------------------------------
// k-d tree DBSCAN (any d): core counts with early exit, union of core neighbours,
// border points take the smallest cluster number among their core neighbours.
inline DbscanResult dbscan_kdtree(const std::vector<double>& x, std::int64_t n, int d, const DbscanOptions& o) {
    const double eps2 = o.eps * o.eps;
    KdTree tree(x.data(), n, d);
    std::vector<std::uint8_t> core(n, 0);  // by tree position
#pragma omp parallel for schedule(dynamic, 256) if (n > kParallelMin)
    for (std::int64_t p = 0; p < n; ++p) {
        std::int64_t count = 0;
        tree.radius(tree.point(p), eps2, [&](std::int32_t) { return ++count < o.min_pts; });
        core[p] = count >= o.min_pts;
    }
    UnionFind uf(n);
    for (std::int64_t p = 0; p < n; ++p) {
        if (!core[p]) continue;
        tree.radius(tree.point(p), eps2, [&](std::int32_t q) {
            if (q > p && core[q]) uf.unite(static_cast<std::int32_t>(p), q);
            return true;
        });
    }
    uf.flatten();
    std::vector<std::int32_t> pos(n);
    for (std::int64_t p = 0; p < n; ++p) pos[tree.original(p)] = static_cast<std::int32_t>(p);
    std::vector<std::int32_t> number(n, -1);
    DbscanResult r;
    r.n_clusters = number_components(n, [&](std::int64_t i) { return core[pos[i]] ? uf.parent[pos[i]] : -1; }, number);
    r.labels.assign(n, -1);
    r.core.assign(n, 0);
#pragma omp parallel for schedule(dynamic, 256) if (n > kParallelMin)
    for (std::int64_t p = 0; p < n; ++p) {
        const std::int32_t i = tree.original(p);
        if (core[p]) {
            r.core[i] = 1;
            r.labels[i] = number[uf.parent[p]];
            continue;
        }
        std::int32_t best = std::numeric_limits<std::int32_t>::max();
        tree.radius(tree.point(p), eps2, [&](std::int32_t q) {
            if (core[q]) best = std::min(best, number[uf.parent[q]]);
            return best > 0;
        });
        if (best != std::numeric_limits<std::int32_t>::max()) r.labels[i] = best;
    }
    finish(r);
    return r;
}

}  // namespace detail

// DBSCAN of n points of dimension d (row-major). See the top of this file for the
// exact semantics; every index gives the same labels.
template <class T>
DbscanResult dbscan(const T* points, std::int64_t n, int d, const DbscanOptions& options) {
    detail::check_dbscan_args(options, "dbscan");
    EWE_REQUIRE(n >= 0 && d >= 1 && n < std::numeric_limits<std::int32_t>::max(), "dbscan: expected 0 <= n < 2^31 - 1 points of dimension d >= 1, found n = ", n, ", d = ", d);
    if ((options.index == DbscanIndex::automatic || options.index == DbscanIndex::grid) && d <= 3) {
        detail::DbscanGrid grid;  // reads the input directly: no extra copy
        if (grid.build(points, n, d, options.eps)) return detail::dbscan_grid(grid, n, options.min_pts);
    }
    const std::vector<double> x = detail::to_double_points(points, n, d, "dbscan");
    if (options.index == DbscanIndex::reference) return detail::dbscan_reference(x, n, d, options);
    return detail::dbscan_kdtree(x, n, d, options);
}

// The same for an (n, d) host tensor.
template <class T>
DbscanResult dbscan(TensorView<const T> points, const DbscanOptions& options) {
    EWE_REQUIRE(points.rank() == 2 && points.device() == Device::cpu, "dbscan: expected an (n, d) host tensor, found ",
                points.shape(), " on ", to_string(points.device()));
    return dbscan(points.data(), points.dim(0), static_cast<int>(points.dim(1)), options);
}

// Distance from every point to its k-th nearest other point (the point itself is not
// counted, as in R's dbscan::kNNdist): sorted, these give the "k-dist plot" whose knee
// suggests eps for min_pts = k + 1.
template <class T>
std::vector<double> knn_distances(const T* points, std::int64_t n, int d, int k) {
    EWE_REQUIRE(k >= 1 && k < n, "knn_distances: k must be in [1, n - 1] = [1, ", n - 1, "], found ", k);
    const std::vector<double> x = detail::to_double_points(points, n, d, "knn_distances");
    KdTree tree(x.data(), n, d);
    std::vector<double> out(n);
#pragma omp parallel if (n > detail::kParallelMin)
    {
        std::vector<std::pair<double, std::int32_t>> heap;
#pragma omp for schedule(dynamic, 256)
        for (std::int64_t p = 0; p < n; ++p) {
            tree.knn(tree.point(p), k, p, heap);
            out[tree.original(p)] = std::sqrt(heap.back().first);
        }
    }
    return out;
}

// One (eps, min_pts) pair of a parameter search and what it gave.
struct DbscanTrial {
    double eps = 0.5;
    std::int64_t min_pts = 5;
};
struct DbscanTrialResult {
    double eps = 0;
    std::int64_t min_pts = 0;
    std::int32_t n_clusters = 0;
    std::int64_t n_noise = 0;
    std::int64_t n_core = 0;
    std::vector<std::int32_t> labels;  // filled when keep_labels
};

// Runs DBSCAN for every trial; results come back in the order of `trials` and equal
// what dbscan() gives for each pair. Work is shared where that stays exact: trials
// with the same eps share one grid and one pass of neighbour counts (capped at their
// largest min_pts); different eps values run in parallel.
template <class T>
std::vector<DbscanTrialResult> dbscan_search(const T* points, std::int64_t n, int d, const std::vector<DbscanTrial>& trials,
                                             bool keep_labels = false) {
    for (const DbscanTrial& t : trials) detail::check_dbscan_args(DbscanOptions{t.eps, t.min_pts}, "dbscan_search");
    const std::vector<double> x = detail::to_double_points(points, n, d, "dbscan_search");
    std::map<double, std::vector<std::size_t>> by_eps;
    for (std::size_t i = 0; i < trials.size(); ++i) by_eps[trials[i].eps].push_back(i);
    std::vector<std::pair<double, std::vector<std::size_t>>> groups(by_eps.begin(), by_eps.end());
    std::vector<DbscanTrialResult> out(trials.size());
    auto store = [&](std::size_t i, DbscanResult&& r) {
        DbscanTrialResult& t = out[i];
        t.eps = trials[i].eps;
        t.min_pts = trials[i].min_pts;
        t.n_clusters = r.n_clusters;
        t.n_noise = r.n_noise;
        t.n_core = std::count(r.core.begin(), r.core.end(), std::uint8_t{1});
        if (keep_labels) t.labels = std::move(r.labels);
    };
    auto run_group = [&](const std::pair<double, std::vector<std::size_t>>& g) {
        detail::DbscanGrid grid;
        if (d <= 3 && grid.build(x.data(), n, d, g.first)) {
            std::int64_t cap = 1;
            for (std::size_t i : g.second) cap = std::max(cap, trials[i].min_pts);
            std::vector<std::int32_t> counts;
            grid.count_neighbors(cap, counts);
            std::vector<std::uint8_t> core(n);
            for (std::size_t i : g.second) {
                for (std::int64_t p = 0; p < n; ++p) core[p] = counts[p] >= trials[i].min_pts;
                store(i, grid.cluster(core));
            }
        } else {
            for (std::size_t i : g.second) store(i, detail::dbscan_kdtree(x, n, d, DbscanOptions{trials[i].eps, trials[i].min_pts}));
        }
    };
    // Several groups: one thread per group; few groups: parallelism inside each.
    const std::int64_t ng = static_cast<std::int64_t>(groups.size());
    if (ng >= 4) {
#pragma omp parallel for schedule(dynamic, 1)
        for (std::int64_t g = 0; g < ng; ++g) run_group(groups[g]);
    } else {
        for (const auto& g : groups) run_group(g);
    }
    return out;
}

}  // namespace ewe::cluster
