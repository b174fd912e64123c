// Exact cosine k-nearest-neighbour anomaly scores against a reference set: a query's
// score is the mean cosine distance (1 - cos) to its k nearest reference rows, in
// double, by brute force (every pair). A query that is itself a reference row (its
// index given in `self`) is scored without that row: leave-one-out, so the reference
// set's own scores are comparable with those of new samples. A zero row has cosine 0
// with everything (distance 1).
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ewe/anomaly/feature_taps.hpp"
#include "ewe/core/error.hpp"

namespace ewe::anomaly {

namespace detail {
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline RowMatrix unit_rows(const FeatureMatrix& x) {
    RowMatrix out = Eigen::Map<const RowMatrix>(x.values.data(), x.rows, x.cols);
    for (Eigen::Index i = 0; i < out.rows(); ++i) {
        const double norm = out.row(i).norm();
        if (norm > 0) out.row(i) /= norm;
    }
    return out;
}
}  // namespace detail

// `self` is empty or holds, per query, the index of the reference row that is the
// query itself, or -1.
inline std::vector<double> cosine_knn_scores(const FeatureMatrix& reference, const FeatureMatrix& queries,
                                             std::int64_t k, const std::vector<std::int64_t>& self = {}) {
    EWE_REQUIRE(reference.cols == queries.cols, "cosine_knn_scores: reference rows have ", reference.cols,
                " features but queries have ", queries.cols);
    EWE_REQUIRE(self.empty() || std::int64_t(self.size()) == queries.rows, "cosine_knn_scores: ", self.size(),
                " self indices for ", queries.rows, " queries");
    const bool any_self = std::any_of(self.begin(), self.end(), [](std::int64_t s) { return s >= 0; });
    EWE_REQUIRE(k >= 1 && k <= reference.rows - (any_self ? 1 : 0), "cosine_knn_scores: k must be in [1, ",
                reference.rows - (any_self ? 1 : 0), "] for ", reference.rows, " reference rows",
                any_self ? " (one left out)" : "", ", found ", k);
    for (std::int64_t s : self)
        EWE_REQUIRE(s < reference.rows, "cosine_knn_scores: self index ", s, " is not a reference row (",
                    reference.rows, " rows)");
    const detail::RowMatrix r = detail::unit_rows(reference), q = detail::unit_rows(queries);
    std::vector<double> out(std::size_t(queries.rows));
    constexpr Eigen::Index kBlock = 256;  // queries per product: bounds the memory of the similarities
    std::vector<double> distances;
    for (Eigen::Index b = 0; b < q.rows(); b += kBlock) {
        const Eigen::Index m = std::min(kBlock, q.rows() - b);
        const detail::RowMatrix similarity = q.middleRows(b, m) * r.transpose();
        for (Eigen::Index i = 0; i < m; ++i) {
            const std::int64_t left_out = self.empty() ? -1 : self[std::size_t(b + i)];
            distances.clear();
            for (Eigen::Index j = 0; j < r.rows(); ++j)
                if (j != left_out) distances.push_back(std::max(0.0, 1.0 - similarity(i, j)));  // not below 0 by rounding
            std::nth_element(distances.begin(), distances.begin() + (k - 1), distances.end());
            double sum = 0;
            for (std::int64_t t = 0; t < k; ++t) sum += distances[std::size_t(t)];
            out[std::size_t(b + i)] = sum / double(k);
        }
    }
    return out;
}

}  // namespace ewe::anomaly
