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
// neighbour lists are stored.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <vector>

#include "ewe/cluster/kdtree.hpp"
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

struct DbscanResult {
    std::vector<std::int32_t> labels;  // per point: cluster 0..n_clusters-1, or -1 for noise
    std::vector<std::uint8_t> core;    // per point: 1 for core points
    std::int32_t n_clusters = 0;
    std::int64_t n_noise = 0;
};

namespace detail {

inline void check_dbscan_args(const DbscanOptions& o, const char* who) {
    EWE_REQUIRE(std::isfinite(o.eps) && o.eps > 0, who, ": eps must be a positive finite number, found ", o.eps);
    EWE_REQUIRE(o.min_pts >= 1, who, ": min_pts must be >= 1 (it counts the point itself), found ", o.min_pts);
}

// Union-find with path halving; roots are the smaller index.
struct UnionFind {
    std::vector<std::int32_t> parent;
    explicit UnionFind(std::size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
    std::int32_t find(std::int32_t x) {
        while (parent[x] != x) {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        return x;
    }
    // Points every element straight at its root (then parent[] is read-only safe).
    void flatten() {
        for (std::size_t x = 0; x < parent.size(); ++x) parent[x] = parent[parent[x]];
    }
    void unite(std::int32_t a, std::int32_t b) {
        a = find(a);
        b = find(b);
        if (a == b) return;
        if (a < b) std::swap(a, b);
        parent[a] = b;
    }
};

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

// Union-find safe for concurrent unite() calls (lock-free: a root is linked below a
// smaller root by compare-and-swap). The partition it ends with does not depend on
// the order of the calls.
struct ConcurrentUnionFind {
    std::vector<std::int32_t> parent;
    explicit ConcurrentUnionFind(std::size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
    std::int32_t find(std::int32_t x) {
        while (true) {
            std::atomic_ref<std::int32_t> px(parent[x]);
            const std::int32_t p = px.load(std::memory_order_relaxed);
            if (p == x) return x;
            const std::int32_t gp = std::atomic_ref<std::int32_t>(parent[p]).load(std::memory_order_relaxed);
            if (gp != p) {
                std::int32_t expected = p;
                px.compare_exchange_weak(expected, gp, std::memory_order_relaxed);
            }
            x = gp;
        }
    }
    void unite(std::int32_t a, std::int32_t b) {
        while (true) {
            a = find(a);
            b = find(b);
            if (a == b) return;
            if (a < b) std::swap(a, b);
            std::int32_t expected = a;
            if (std::atomic_ref<std::int32_t>(parent[a]).compare_exchange_strong(expected, b, std::memory_order_acq_rel))
                return;
        }
    }
    // After all unions (single thread): every element points straight at its root.
    void flatten() {
        for (std::size_t x = 0; x < parent.size(); ++x) parent[x] = parent[parent[x]];
    }
};

// Number of the m points q (row-major, D coordinates) with sqdist(x, q) <= eps2.
template <int D>
inline std::int32_t count_within(const double* x, const double* q, std::int32_t m, double eps2) {
    std::int32_t count = 0;
    for (std::int32_t j = 0; j < m; ++j) {
        double s = 0;
        for (int k = 0; k < D; ++k) s = sq_step(s, x[k] - q[j * D + k]);
        count += s <= eps2;
    }
    return count;
}

// Stable LSD radix sort of (key, index) by key; keys below 2^bits.
inline void radix_sort(std::vector<std::uint64_t>& keys, std::vector<std::int32_t>& index, int bits) {
    constexpr int kDigit = 11;
    const std::size_t n = keys.size();
    std::vector<std::uint64_t> k2(n);
    std::vector<std::int32_t> i2(n);
    for (int shift = 0; shift < bits; shift += kDigit) {
        std::size_t count[(1 << kDigit) + 1] = {};
        for (std::size_t i = 0; i < n; ++i) ++count[((keys[i] >> shift) & ((1u << kDigit) - 1)) + 1];
        for (int b = 0; b < (1 << kDigit); ++b) count[b + 1] += count[b];
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t to = count[(keys[i] >> shift) & ((1u << kDigit) - 1)]++;
            k2[to] = keys[i];
            i2[to] = index[i];
        }
        keys.swap(k2);
        index.swap(i2);
    }
}

// ---------------------------------------------------------------------------------
// Uniform grid for 1 <= d <= 3. Cells have side eps/sqrt(d) (shrunk by 1e-6 so that
// rounding can never put two points more than eps apart into one cell): every pair of
// points in a cell are neighbours, so a cell holding >= min_pts points is wholly core,
// and only cells at most two steps away along each axis can hold neighbours. Cells are
// the non-empty ones, sorted by a packed 64-bit key (last axis fastest), so the
// neighbour cells of a row form one contiguous key range.
class DbscanGrid {
public:
    // Sorts the points (n x d, any arithmetic type) into cells; false when d > 3 or the
    // grid would need more cells than 64-bit keys can address (then use the k-d tree).
    template <class T>
    bool build(const T* x, std::int64_t n, int d, double eps) {
        if (d < 1 || d > 3) return false;
        d_ = d;
        n_ = n;
        eps2_ = eps * eps;
        side_ = eps / std::sqrt(static_cast<double>(d)) * (1.0 - 1e-6);
        for (int a = 0; a < 3; ++a) {
            lo_[a] = 0;
            dims_[a] = 1;
            margin_[a] = 0;
        }
        double total = 1;
        for (int a = 0; a < d; ++a) {
            double lo = std::numeric_limits<double>::infinity(), hi = -lo;
            for (std::int64_t i = 0; i < n; ++i) {
                const double v = static_cast<double>(x[i * d + a]);
                if (!std::isfinite(v)) fail("dbscan: expected finite coordinates, found ", v, " at row ", i, ", column ", a);
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
            if (n == 0) lo = hi = 0;
            const double cells = std::floor((hi - lo) / side_) + 1;
            if (!(cells < 2147483647.0)) return false;
            total *= cells;
            lo_[a] = lo;
            dims_[a] = static_cast<std::int64_t>(cells);
            margin_[a] = 1e-6 * side_ + 1e-12 * (std::abs(lo) + std::abs(hi));
        }
        if (!(total < 4.0e18)) return false;
        int bits = 1;
        while (bits < 63 && std::ldexp(1.0, bits) < total) ++bits;

        std::vector<std::uint64_t> key(n);
        std::vector<std::int32_t> index(n);
        for (std::int64_t i = 0; i < n; ++i) {
            std::uint64_t k = 0;
            for (int a = 0; a < d; ++a) {
                const auto c = std::min(static_cast<std::int64_t>((static_cast<double>(x[i * d + a]) - lo_[a]) / side_), dims_[a] - 1);
                k = k * static_cast<std::uint64_t>(dims_[a]) + static_cast<std::uint64_t>(c);
            }
            key[i] = k;
            index[i] = static_cast<std::int32_t>(i);
        }
        radix_sort(key, index, bits);
        pts_.resize(static_cast<std::size_t>(n) * d);
        keys_.clear();
        start_.clear();
        for (std::int64_t p = 0; p < n; ++p) {
            for (int a = 0; a < d; ++a) pts_[p * d + a] = static_cast<double>(x[static_cast<std::int64_t>(index[p]) * d + a]);
            if (p == 0 || key[p] != key[p - 1]) {
                keys_.push_back(key[p]);
                start_.push_back(static_cast<std::int32_t>(p));
            }
        }
        start_.push_back(static_cast<std::int32_t>(n));
        key = {};
        orig_ = std::move(index);
        keys_.shrink_to_fit();
        start_.shrink_to_fit();
        // When the whole grid is small (at most 2 entries per point), a dense table from
        // key to cell makes neighbour lookups O(1).
        dense_.clear();
        if (total <= static_cast<double>(2 * n + 4096)) {
            dense_.assign(static_cast<std::size_t>(total), -1);
            for (std::size_t c = 0; c < keys_.size(); ++c) dense_[keys_[c]] = static_cast<std::int32_t>(c);
        }
        // Rows (all axes but the last): a table of first cells when it is small.
        rows_.clear();
        std::int64_t rows = 1;
        for (int a = 0; a + 1 < d; ++a) rows *= dims_[a];
        if (rows <= n / 2 + 1024) {
            rows_.assign(rows + 1, 0);
            const std::uint64_t per_row = static_cast<std::uint64_t>(dims_[d - 1]);
            std::size_t c = 0;
            for (std::int64_t r = 0; r <= rows; ++r) {
                while (c < keys_.size() && keys_[c] / per_row < static_cast<std::uint64_t>(r)) ++c;
                rows_[r] = static_cast<std::int32_t>(c);
            }
        }
        return true;
    }

    std::int64_t cells() const { return static_cast<std::int64_t>(keys_.size()); }

    // Read-only access for the CUDA variant (ewe/cluster/dbscan.cuh).
    struct Layout {
        int d;
        std::int64_t n, cells;
        double eps2, side;
        std::array<double, 3> lo, margin;
        std::array<std::int64_t, 3> dims;
        const double* points;         // n x d, sorted by cell
        const std::uint64_t* keys;    // per cell
        const std::int32_t* start;    // per cell, plus one
    };
    Layout layout() const {
        return {d_, n_, cells(), eps2_, side_, lo_, margin_, dims_, pts_.data(), keys_.data(), start_.data()};
    }

    // Neighbour counts (the point itself included) by sorted position, capped at `cap`:
    // counts[p] >= cap means "at least cap".
    void count_neighbors(std::int64_t cap, std::vector<std::int32_t>& counts) const {
        switch (d_) {
            case 1: count_impl<1>(cap, counts); break;
            case 2: count_impl<2>(cap, counts); break;
            default: count_impl<3>(cap, counts); break;
        }
    }

    // Clusters given the core flags (by sorted position); labels in original order.
    DbscanResult cluster(const std::vector<std::uint8_t>& core) const {
        switch (d_) {
            case 1: return cluster_impl<1>(core);
            case 2: return cluster_impl<2>(core);
            default: return cluster_impl<3>(core);
        }
    }

private:
    struct Near {
        std::int32_t cell;
        int gap;  // squared gap to the home cell, in cells (for nearest-first order)
        double lo[3], hi[3];
    };

    void decode(std::uint64_t key, std::int64_t* cc) const {
        for (int a = d_ - 1; a >= 0; --a) {
            cc[a] = static_cast<std::int64_t>(key % static_cast<std::uint64_t>(dims_[a]));
            key /= static_cast<std::uint64_t>(dims_[a]);
        }
    }

    // The non-empty cells within two steps along every axis (the cell itself included),
    // with their boxes widened by a rounding margin and their gap (in cells; 0 for
    // touching cells, at most d).
    void neighbor_cells(std::int32_t c, std::vector<Near>& out) const {
        out.clear();
        std::int64_t cc[3];
        decode(keys_[c], cc);
        const int last = d_ - 1;
        const std::uint64_t per_row = static_cast<std::uint64_t>(dims_[last]);
        const std::int64_t zlo = std::max<std::int64_t>(cc[last] - 2, 0), zhi = std::min<std::int64_t>(cc[last] + 2, dims_[last] - 1);
        const int combos = last == 0 ? 1 : last == 1 ? 5 : 25;
        for (int combo = 0; combo < combos; ++combo) {
            std::int64_t row = 0;
            int gap = 0;
            bool inside = true;
            int rest = combo;
            double base_lo[3];
            for (int a = 0; a < last; ++a) {
                const int off = rest % 5 - 2;
                rest /= 5;
                const std::int64_t v = cc[a] + off;
                if (v < 0 || v >= dims_[a]) inside = false;
                row = row * dims_[a] + v;
                gap += std::max(std::abs(off) - 1, 0) * std::max(std::abs(off) - 1, 0);
                base_lo[a] = lo_[a] + static_cast<double>(v) * side_;
            }
            if (!inside) continue;
            // Appends cell `cell` at position z along the last axis (filled in place).
            auto add = [&](std::int32_t cell, std::int64_t z) {
                Near& nb = out.emplace_back();
                nb.cell = cell;
                const int offz = static_cast<int>(z - cc[last]);
                nb.gap = gap + std::max(std::abs(offz) - 1, 0) * std::max(std::abs(offz) - 1, 0);
                for (int a = 0; a < last; ++a) {
                    nb.lo[a] = base_lo[a] - margin_[a];
                    nb.hi[a] = base_lo[a] + side_ + margin_[a];
                }
                nb.lo[last] = lo_[last] + static_cast<double>(z) * side_ - margin_[last];
                nb.hi[last] = lo_[last] + static_cast<double>(z + 1) * side_ + margin_[last];
            };
            if (!dense_.empty()) {
                for (std::int64_t z = zlo; z <= zhi; ++z) {
                    const std::int32_t cell = dense_[static_cast<std::size_t>(row * dims_[last] + z)];
                    if (cell >= 0) add(cell, z);
                }
                continue;
            }
            const std::uint64_t klo = static_cast<std::uint64_t>(row) * per_row + static_cast<std::uint64_t>(zlo);
            const std::uint64_t khi = static_cast<std::uint64_t>(row) * per_row + static_cast<std::uint64_t>(zhi);
            auto first = keys_.begin(), end = keys_.end();
            if (!rows_.empty()) {
                first = keys_.begin() + rows_[row];
                end = keys_.begin() + rows_[row + 1];
            }
            for (auto it = std::lower_bound(first, end, klo); it != end && *it <= khi; ++it)
                add(static_cast<std::int32_t>(it - keys_.begin()),
                    static_cast<std::int64_t>(*it - static_cast<std::uint64_t>(row) * per_row));
        }
    }

    // Squared distances from x to the nearest and farthest point of a neighbour's box.
    template <int D>
    static void box_sqdist(const double* x, const Near& nb, double& mind2, double& maxd2) {
        mind2 = maxd2 = 0;
        for (int a = 0; a < D; ++a) {
            const double near = x[a] < nb.lo[a] ? nb.lo[a] - x[a] : (x[a] > nb.hi[a] ? x[a] - nb.hi[a] : 0.0);
            const double far = std::max(std::abs(x[a] - nb.lo[a]), std::abs(x[a] - nb.hi[a]));
            mind2 += near * near;
            maxd2 += far * far;
        }
    }

    template <int D>
    void count_impl(std::int64_t cap, std::vector<std::int32_t>& counts) const {
        counts.assign(n_, 0);
        const std::int32_t capped = static_cast<std::int32_t>(std::min<std::int64_t>(cap, n_ + 1));
        const std::int64_t nc = cells();
#pragma omp parallel if (n_ > kParallelMin)
        {
            std::vector<Near> near;
#pragma omp for schedule(dynamic, 64)
            for (std::int64_t c = 0; c < nc; ++c) {
                const std::int32_t size = start_[c + 1] - start_[c];
                if (size >= capped) {
                    std::fill(counts.begin() + start_[c], counts.begin() + start_[c + 1], capped);
                    continue;
                }
                neighbor_cells(static_cast<std::int32_t>(c), near);
                for (std::int32_t p = start_[c]; p < start_[c + 1]; ++p) {
                    std::int32_t cnt = size;
                    const double* xp = &pts_[static_cast<std::int64_t>(p) * D];
                    // Nearest cells first, so that dense surroundings stop the count early.
                    for (int gap = 0; gap <= D && cnt < capped; ++gap)
                        for (const Near& nb : near) {
                            if (cnt >= capped) break;
                            if (nb.gap != gap || nb.cell == c) continue;
                            double mind2, maxd2;
                            box_sqdist<D>(xp, nb, mind2, maxd2);
                            if (mind2 > eps2_) continue;
                            const std::int32_t m = start_[nb.cell + 1] - start_[nb.cell];
                            if (maxd2 < eps2_ * (1 - 1e-12)) cnt += m;
                            else cnt += count_within<D>(xp, &pts_[static_cast<std::int64_t>(start_[nb.cell]) * D], m, eps2_);
                        }
                    counts[p] = std::min(cnt, capped);
                }
            }
        }
    }

    // Does some core point of a lie within eps of some core point of b? `b_all_core`:
    // every point of b is core (then the test vectorises).
    template <int D>
    bool cells_connected(std::int32_t a, const Near& b, bool b_all_core, const std::vector<std::uint8_t>& core) const {
        const std::int32_t m = start_[b.cell + 1] - start_[b.cell];
        const double* qb = &pts_[static_cast<std::int64_t>(start_[b.cell]) * D];
        for (std::int32_t p = start_[a]; p < start_[a + 1]; ++p) {
            if (!core[p]) continue;
            const double* xp = &pts_[static_cast<std::int64_t>(p) * D];
            double mind2, maxd2;
            box_sqdist<D>(xp, b, mind2, maxd2);
            if (mind2 > eps2_) continue;
            if (b_all_core) {
                if (count_within<D>(xp, qb, m, eps2_) > 0) return true;
                continue;
            }
            for (std::int32_t q = 0; q < m; ++q)
                if (core[start_[b.cell] + q] && sqdist(xp, qb + static_cast<std::int64_t>(q) * D, D) <= eps2_) return true;
        }
        return false;
    }

    template <int D>
    DbscanResult cluster_impl(const std::vector<std::uint8_t>& core) const {
        const std::int64_t nc = cells();
        std::vector<std::uint8_t> cell_core(nc, 0);
        for (std::int64_t c = 0; c < nc; ++c)
            for (std::int32_t p = start_[c]; p < start_[c + 1] && !cell_core[c]; ++p) cell_core[c] = core[p];

        // cell_core: 0 no core point, 1 some, 2 all points core.
        for (std::int64_t c = 0; c < nc; ++c)
            if (cell_core[c]) {
                bool all = true;
                for (std::int32_t p = start_[c]; p < start_[c + 1] && all; ++p) all = core[p];
                if (all) cell_core[c] = 2;
            }
        // Core cells that hold a pair of core points within eps are merged: first the
        // touching cells, then the ones a cell apart, skipping pairs already joined.
        ConcurrentUnionFind uf(nc);
        for (int phase = 0; phase < 2; ++phase) {
#pragma omp parallel if (n_ > kParallelMin)
            {
                std::vector<Near> near;
#pragma omp for schedule(dynamic, 64)
                for (std::int64_t c = 0; c < nc; ++c) {
                    if (!cell_core[c]) continue;
                    neighbor_cells(static_cast<std::int32_t>(c), near);
                    for (const Near& nb : near) {
                        if (nb.cell <= c || !cell_core[nb.cell] || (nb.gap == 0) != (phase == 0)) continue;
                        if (uf.find(static_cast<std::int32_t>(c)) == uf.find(nb.cell)) continue;
                        if (cells_connected<D>(static_cast<std::int32_t>(c), nb, cell_core[nb.cell] == 2, core))
                            uf.unite(static_cast<std::int32_t>(c), nb.cell);
                    }
                }
            }
        }
        uf.flatten();

        // Number components by their smallest original core index.
        std::vector<std::int32_t> first(nc, std::numeric_limits<std::int32_t>::max());
        for (std::int64_t c = 0; c < nc; ++c)
            for (std::int32_t p = start_[c]; p < start_[c + 1]; ++p)
                if (core[p]) first[uf.parent[c]] = std::min(first[uf.parent[c]], orig_[p]);
        std::vector<std::int32_t> roots;
        for (std::int64_t c = 0; c < nc; ++c)
            if (cell_core[c] && uf.parent[c] == c) roots.push_back(static_cast<std::int32_t>(c));
        std::sort(roots.begin(), roots.end(), [&](std::int32_t a, std::int32_t b) { return first[a] < first[b]; });
        first = {};
        std::vector<std::int32_t>& number = uf.parent;  // reused: cell -> cluster number
        {
            std::vector<std::int32_t> by_root(nc, -1);
            for (std::size_t k = 0; k < roots.size(); ++k) by_root[roots[k]] = static_cast<std::int32_t>(k);
            for (std::int64_t c = 0; c < nc; ++c) number[c] = cell_core[c] ? by_root[number[c]] : -1;
        }

        DbscanResult r;
        r.n_clusters = static_cast<std::int32_t>(roots.size());
        r.labels.assign(n_, -1);
        r.core.assign(n_, 0);
#pragma omp parallel if (n_ > kParallelMin)
        {
            std::vector<Near> near;
#pragma omp for schedule(dynamic, 64)
            for (std::int64_t c = 0; c < nc; ++c) {
                bool has_noncore = false;
                for (std::int32_t p = start_[c]; p < start_[c + 1]; ++p) {
                    if (core[p]) {
                        r.core[orig_[p]] = 1;
                        r.labels[orig_[p]] = number[c];
                    } else {
                        has_noncore = true;
                    }
                }
                if (!has_noncore) continue;
                neighbor_cells(static_cast<std::int32_t>(c), near);
                for (std::int32_t p = start_[c]; p < start_[c + 1]; ++p) {
                    if (core[p]) continue;
                    const double* xp = &pts_[static_cast<std::int64_t>(p) * D];
                    // A core point in the same cell is always within eps.
                    std::int32_t best = cell_core[c] ? number[c] : std::numeric_limits<std::int32_t>::max();
                    for (const Near& nb : near) {
                        if (nb.cell == c || !cell_core[nb.cell] || number[nb.cell] >= best) continue;
                        double mind2, maxd2;
                        box_sqdist<D>(xp, nb, mind2, maxd2);
                        if (mind2 > eps2_) continue;
                        for (std::int32_t q = start_[nb.cell]; q < start_[nb.cell + 1]; ++q)
                            if (core[q] && sqdist(xp, &pts_[static_cast<std::int64_t>(q) * D], D) <= eps2_) {
                                best = number[nb.cell];
                                break;
                            }
                    }
                    if (best != std::numeric_limits<std::int32_t>::max()) r.labels[orig_[p]] = best;
                }
            }
        }
        finish(r);
        return r;
    }

    int d_ = 0;
    std::int64_t n_ = 0;
    double eps2_ = 0, side_ = 0;
    std::array<double, 3> lo_{}, margin_{};
    std::array<std::int64_t, 3> dims_{};
    std::vector<double> pts_;           // sorted by cell
    std::vector<std::int32_t> orig_;    // sorted position -> original index
    std::vector<std::uint64_t> keys_;   // per non-empty cell, ascending
    std::vector<std::int32_t> start_;   // per cell: first sorted position; one extra entry = n
    std::vector<std::int32_t> rows_;    // per row: first cell (empty when too many rows)
    std::vector<std::int32_t> dense_;   // key -> cell or -1 (empty when the grid is large)
};

inline DbscanResult dbscan_grid(const DbscanGrid& grid, std::int64_t n, std::int64_t min_pts) {
    std::vector<std::int32_t> counts;
    grid.count_neighbors(min_pts, counts);
    std::vector<std::uint8_t> core(n);
    for (std::int64_t p = 0; p < n; ++p) core[p] = counts[p] >= min_pts;
    counts = {};
    return grid.cluster(core);
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
