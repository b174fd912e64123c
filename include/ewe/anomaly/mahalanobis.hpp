// Mahalanobis anomaly scores with a Ledoit-Wolf shrinkage covariance (Ledoit & Wolf,
// "A well-conditioned estimator for large-dimensional covariance matrices", 2004, as
// scikit-learn's LedoitWolf): with S the maximum-likelihood covariance of the n
// reference rows (divided by n) and mu = trace(S) / d, the estimate is
//     (1 - s) S + s mu I,   s = min(b2, d2) / d2,
//     d2 = ||S - mu I||_F^2 / d,   b2 = (1 / n^2) sum_k ||x_k x_k^T - S||_F^2 / d
// (x_k centred), which stays invertible when the d features outnumber or nearly
// outnumber the rows. A query's score is its squared distance (x - m)^T C^-1 (x - m).
// A query that is itself reference row i is scored leave-one-out: against the mean and
// maximum-likelihood covariance of the other n - 1 rows, shrunk with the same s and mu
// (by the Sherman-Morrison formula, exact for that definition), so reference rows are
// not favoured by having shaped the fit.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ewe/anomaly/feature_taps.hpp"
#include "ewe/core/error.hpp"

namespace ewe::anomaly {

struct LedoitWolfFit {
    std::int64_t samples = 0, features = 0;
    std::vector<double> mean;        // (d)
    std::vector<double> covariance;  // (d, d): S, the maximum-likelihood (1/n) covariance, unshrunk
    double shrinkage = 0;            // s in [0, 1]
    double target = 0;               // mu = trace(S) / d
};

inline LedoitWolfFit ledoit_wolf(const FeatureMatrix& x) {
    EWE_REQUIRE(x.rows >= 2 && x.cols >= 1, "ledoit_wolf: needs at least 2 rows of at least 1 feature, found (",
                x.rows, ", ", x.cols, ")");
    using Matrix = Eigen::MatrixXd;
    const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> data(
        x.values.data(), x.rows, x.cols);
    const double n = double(x.rows), d = double(x.cols);
    const Eigen::RowVectorXd mean = data.colwise().mean();
    const Matrix centred = data.rowwise() - mean;
    const Matrix s = centred.transpose() * centred / n;
    LedoitWolfFit fit;
    fit.samples = x.rows;
    fit.features = x.cols;
    fit.mean.assign(mean.data(), mean.data() + x.cols);
    fit.covariance.assign(s.data(), s.data() + s.size());  // symmetric: column-major reads as row-major
    fit.target = s.trace() / d;
    // b2 = (1/n^2) sum_k ||x_k x_k^T||_F^2 / d - ||S||_F^2 / (n d), with ||x x^T||_F^2 = |x|^4.
    const Matrix squares = centred.array().square().matrix();
    const double fourth = squares.rowwise().sum().squaredNorm();
    const double b2 = (fourth / (n * n) - s.squaredNorm() / n) / d;
    const double d2 = (s - fit.target * Matrix::Identity(x.cols, x.cols)).squaredNorm() / d;
    fit.shrinkage = d2 > 0 ? std::min(b2, d2) / d2 : 0.0;
    return fit;
}

// The shrunk covariance (1 - s) S + s mu I, row-major (d, d).
inline std::vector<double> shrunk_covariance(const LedoitWolfFit& fit) {
    std::vector<double> c(fit.covariance.size());
    for (std::int64_t i = 0; i < fit.features; ++i)
        for (std::int64_t j = 0; j < fit.features; ++j)
            c[std::size_t(i * fit.features + j)] = (1 - fit.shrinkage) * fit.covariance[std::size_t(i * fit.features + j)] +
                                                   (i == j ? fit.shrinkage * fit.target : 0.0);
    return c;
}

// `self` is empty or holds, per query, the index of the reference row the query is (or
// -1); `reference` is the data the fit was made on (needed only for those rows).
inline std::vector<double> mahalanobis_scores(const LedoitWolfFit& fit, const FeatureMatrix& queries,
                                              const std::vector<std::int64_t>& self = {},
                                              const FeatureMatrix* reference = nullptr) {
    EWE_REQUIRE(queries.cols == fit.features, "mahalanobis_scores: the fit has ", fit.features,
                " features but queries have ", queries.cols);
    EWE_REQUIRE(self.empty() || std::int64_t(self.size()) == queries.rows, "mahalanobis_scores: ", self.size(),
                " self indices for ", queries.rows, " queries");
    using Matrix = Eigen::MatrixXd;
    const std::int64_t d = fit.features;
    const double n = double(fit.samples);
    const Eigen::Map<const Matrix> s(fit.covariance.data(), d, d);
    const Eigen::Map<const Eigen::VectorXd> mean(fit.mean.data(), d);
    const Matrix identity = Matrix::Identity(d, d);
    const Eigen::LLT<Matrix> full((1 - fit.shrinkage) * s + fit.shrinkage * fit.target * identity);
    EWE_REQUIRE(full.info() == Eigen::Success, "mahalanobis_scores: the shrunk covariance is not positive definite "
                "(shrinkage ", fit.shrinkage, ", target ", fit.target, "): constant features?");
    // Leave-one-out of row i: C_-i = A - c u u^T with u = x_i - m, A = (1 - s) n/(n-1) S + s mu I,
    // c = (1 - s) n / (n-1)^2, and x_i - m_-i = n/(n-1) u; with q = u^T A^-1 u,
    // (x_i - m_-i)^T C_-i^-1 (x_i - m_-i) = (n/(n-1))^2 (q + c q^2 / (1 - c q)).
    const bool any_self = std::any_of(self.begin(), self.end(), [](std::int64_t i) { return i >= 0; });
    Eigen::LLT<Matrix> held_out;
    if (any_self) {
        EWE_REQUIRE(reference != nullptr && reference->rows == fit.samples && reference->cols == d,
                    "mahalanobis_scores: leave-one-out needs the ", fit.samples, " x ", d, " reference rows of the fit");
        EWE_REQUIRE(fit.samples >= 3, "mahalanobis_scores: leave-one-out needs at least 3 reference rows");
        held_out.compute((1 - fit.shrinkage) * n / (n - 1) * s + fit.shrinkage * fit.target * identity);
        EWE_REQUIRE(held_out.info() == Eigen::Success, "mahalanobis_scores: the leave-one-out covariance is not "
                    "positive definite");
    }
    const double c = (1 - fit.shrinkage) * n / ((n - 1) * (n - 1)), scale = n / (n - 1);
    std::vector<double> out(std::size_t(queries.rows));
    for (std::int64_t i = 0; i < queries.rows; ++i) {
        const std::int64_t r = self.empty() ? -1 : self[std::size_t(i)];
        EWE_REQUIRE(r < fit.samples, "mahalanobis_scores: self index ", r, " is not a reference row (", fit.samples,
                    " rows)");
        const Eigen::VectorXd u = Eigen::Map<const Eigen::VectorXd>(queries.row(i), d) - mean;
        if (r < 0) {
            out[std::size_t(i)] = u.dot(full.solve(u));
            continue;
        }
        const Eigen::VectorXd v = Eigen::Map<const Eigen::VectorXd>(reference->row(r), d) - mean;
        const double q = v.dot(held_out.solve(v));
        out[std::size_t(i)] = scale * scale * (q + c * q * q / (1 - c * q));
    }
    return out;
}

}  // namespace ewe::anomaly
