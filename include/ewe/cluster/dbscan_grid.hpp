// ewe::cluster::detail::DbscanGrid: the uniform-grid index of exact DBSCAN for 1-3
// dimensions (Gan & Tao, SIGMOD'15 style): points sorted into cells of side eps/sqrt(d),
// neighbour counts with whole-cell shortcuts, and clusters as the connected components
// of core points (ewe/cluster/concurrent_union_find.hpp). ewe/cluster/dbscan.hpp chooses
// it and says what the labels mean; dbscan_grid() runs it; the CUDA DBSCAN
// (ewe/cluster/dbscan.cuh) counts on its Layout.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ewe/cluster/concurrent_union_find.hpp"
#include "ewe/cluster/dbscan_result.hpp"
#include "ewe/cluster/kdtree.hpp"
#include "ewe/cluster/radix_sort.hpp"
#include "ewe/core/error.hpp"

namespace ewe::cluster::detail {

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

}  // namespace ewe::cluster::detail
