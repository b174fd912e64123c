// Anomaly scores from reconstruction error and their evaluation: each sample's size (its
// ink, for drawings), the reconstruction error adjusted for that size by a log-log
// least-squares fit on reference samples, thresholds (numpy-style linear quantile, mean + k*sd with the population sd, median + k*MAD with
// R's 1.4826 consistency constant by default), top-k, and, with known labels, ROC AUC
// (Mann-Whitney, ties counted half, as scikit-learn's roc_auc_score) and precision@k.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"

namespace ewe::anomaly {

namespace detail {

inline void require_scores(const std::vector<double>& s, const char* who) {
    EWE_REQUIRE(!s.empty(), who, ": expected at least one score, found none");
    for (std::size_t i = 0; i < s.size(); ++i)
        EWE_REQUIRE(!std::isnan(s[i]), who, ": score ", i, " is NaN");
}

inline double median_of(std::vector<double> v) {
    const std::size_t m = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + m, v.end());
    const double hi = v[m];
    if (v.size() % 2) return hi;
    const double lo = *std::max_element(v.begin(), v.begin() + m);
    return 0.5 * (lo + hi);
}

}  // namespace detail

// The size of each sample (dimension 0) of host `inputs`: sum |x| over its values (the
// ink of a drawing), the regressor of size_adjusted_errors below. The reconstruction
// error itself is ewe::reconstruction_sse (ewe/models/vae.hpp), computed on the device.
template <class T>
std::vector<double> input_mass(std::type_identity_t<TensorView<const T>> inputs) {
    EWE_REQUIRE(inputs.device() == Device::cpu, "input_mass: inputs must be on the host");
    EWE_REQUIRE(inputs.rank() >= 1, "input_mass: expected a batch dimension, found a rank-0 tensor");
    const std::int64_t n = inputs.dim(0), per = n == 0 ? 0 : inputs.numel() / n;
    std::vector<double> out(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        double mass = 0;
        for (std::int64_t j = 0; j < per; ++j) mass += std::abs(static_cast<double>(inputs[i * per + j]));
        out[static_cast<std::size_t>(i)] = mass;
    }
    return out;
}

// Reconstruction error adjusted for size. A model's error grows with the size of the
// sample (a drawing with twice the strokes has more pixels to get wrong), so a plain SSE
// flags big normal samples and misses small odd ones. The adjustment fits the line
//     log(1 + error) = intercept + slope * log(1 + size)
// by least squares on reference samples (normal data; or the scored data itself when
// anomalies are a small minority, which barely moves the fit), and scores a sample by its
// residual: how many e-folds worse its error is than that of normal samples of its size.
struct SizeAdjustment {
    double intercept = 0;
    double slope = 0;  // 0 when all reference sizes are equal (the fit is then the mean)
};

namespace detail {
inline void check_errors_and_sizes(const std::vector<double>& errors, const std::vector<double>& sizes,
                                   const char* who) {
    EWE_REQUIRE(errors.size() == sizes.size(), who, ": ", errors.size(), " errors but ", sizes.size(), " sizes");
    for (std::size_t i = 0; i < errors.size(); ++i) {
        EWE_REQUIRE(std::isfinite(errors[i]) && errors[i] >= 0, who, ": error ", i,
                    " must be finite and >= 0, found ", errors[i]);
        EWE_REQUIRE(std::isfinite(sizes[i]) && sizes[i] >= 0, who, ": size ", i, " must be finite and >= 0, found ",
                    sizes[i]);
    }
}
}  // namespace detail

inline SizeAdjustment fit_size_adjustment(const std::vector<double>& errors, const std::vector<double>& sizes) {
    detail::check_errors_and_sizes(errors, sizes, "fit_size_adjustment");
    EWE_REQUIRE(!errors.empty(), "fit_size_adjustment: expected at least one reference sample, found none");
    const double n = static_cast<double>(errors.size());
    double mean_x = 0, mean_y = 0;
    for (std::size_t i = 0; i < errors.size(); ++i) mean_x += std::log1p(sizes[i]), mean_y += std::log1p(errors[i]);
    mean_x /= n, mean_y /= n;
    double sxx = 0, sxy = 0;
    for (std::size_t i = 0; i < errors.size(); ++i) {
        const double dx = std::log1p(sizes[i]) - mean_x;
        sxx += dx * dx;
        sxy += dx * (std::log1p(errors[i]) - mean_y);
    }
    SizeAdjustment fit;
    fit.slope = sxx > 0 ? sxy / sxx : 0.0;
    fit.intercept = mean_y - fit.slope * mean_x;
    return fit;
}

inline std::vector<double> size_adjusted_errors(const std::vector<double>& errors, const std::vector<double>& sizes,
                                                const SizeAdjustment& fit) {
    detail::check_errors_and_sizes(errors, sizes, "size_adjusted_errors");
    std::vector<double> out(errors.size());
    for (std::size_t i = 0; i < errors.size(); ++i)
        out[i] = std::log1p(errors[i]) - (fit.intercept + fit.slope * std::log1p(sizes[i]));
    return out;
}

// The q-quantile (0 <= q <= 1) with linear interpolation between order statistics
// (numpy.quantile's default, R's type 7).
inline double quantile_threshold(const std::vector<double>& scores, double q) {
    detail::require_scores(scores, "quantile_threshold");
    EWE_REQUIRE(q >= 0 && q <= 1, "quantile_threshold: q must be in [0, 1], found ", format_number(q));
    std::vector<double> s = scores;
    std::sort(s.begin(), s.end());
    const double pos = q * static_cast<double>(s.size() - 1);
    const std::size_t lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, s.size() - 1);
    return s[lo] + (pos - static_cast<double>(lo)) * (s[hi] - s[lo]);
}

// mean + k * sd, with the population standard deviation (numpy's ddof = 0).
inline double mean_sd_threshold(const std::vector<double>& scores, double k) {
    detail::require_scores(scores, "mean_sd_threshold");
    const double n = static_cast<double>(scores.size());
    const double mean = std::accumulate(scores.begin(), scores.end(), 0.0) / n;
    double var = 0;
    for (double s : scores) var += (s - mean) * (s - mean);
    return mean + k * std::sqrt(var / n);
}

// median + k * scale * MAD, MAD = median(|s - median(s)|). scale = 1.4826 (R's mad())
// makes scale * MAD estimate the sd of normal data; pass 1 for the raw MAD.
inline double median_mad_threshold(const std::vector<double>& scores, double k, double scale = 1.4826) {
    detail::require_scores(scores, "median_mad_threshold");
    const double med = detail::median_of(scores);
    std::vector<double> dev(scores.size());
    for (std::size_t i = 0; i < scores.size(); ++i) dev[i] = std::abs(scores[i] - med);
    return med + k * scale * detail::median_of(std::move(dev));
}

// 1 where score > threshold.
inline std::vector<std::uint8_t> flag_anomalies(const std::vector<double>& scores, double threshold) {
    std::vector<std::uint8_t> out(scores.size());
    for (std::size_t i = 0; i < scores.size(); ++i) out[i] = scores[i] > threshold;
    return out;
}

// Indices of the k largest scores, largest first; ties go to the lower index.
inline std::vector<std::int64_t> top_k(const std::vector<double>& scores, std::int64_t k) {
    EWE_REQUIRE(k >= 0 && k <= static_cast<std::int64_t>(scores.size()), "top_k: k must be in [0, ", scores.size(),
                "], found ", k);
    std::vector<std::int64_t> idx(scores.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](std::int64_t a, std::int64_t b) {
        return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;
    });
    idx.resize(static_cast<std::size_t>(k));
    return idx;
}

namespace detail {
template <class L>
void check_labels(const std::vector<double>& scores, const std::vector<L>& labels, const char* who) {
    require_scores(scores, who);
    EWE_REQUIRE(labels.size() == scores.size(), who, ": ", scores.size(), " scores but ", labels.size(), " labels");
    for (std::size_t i = 0; i < labels.size(); ++i)
        EWE_REQUIRE(labels[i] == L(0) || labels[i] == L(1), who, ": labels must be 0 (normal) or 1 (anomaly), found ",
                    +labels[i], " at ", i);
}
}  // namespace detail

// Area under the ROC curve for "higher score = more anomalous", labels 1 = anomaly:
// the probability that a random anomaly outscores a random normal sample, ties
// counting one half (average ranks).
template <class L>
double roc_auc(const std::vector<double>& scores, const std::vector<L>& labels) {
    detail::check_labels(scores, labels, "roc_auc");
    const std::size_t n = scores.size();
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
    double rank_sum = 0;
    std::size_t positives = 0;
    for (std::size_t i = 0; i < n;) {
        std::size_t j = i;
        while (j < n && scores[idx[j]] == scores[idx[i]]) ++j;
        const double avg_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1..j
        for (std::size_t t = i; t < j; ++t)
            if (labels[idx[t]] == L(1)) {
                rank_sum += avg_rank;
                ++positives;
            }
        i = j;
    }
    const std::size_t negatives = n - positives;
    EWE_REQUIRE(positives > 0 && negatives > 0, "roc_auc: needs both classes, found ", positives, " anomalies and ",
                negatives, " normal samples");
    const double p = static_cast<double>(positives), q = static_cast<double>(negatives);
    return (rank_sum - p * (p + 1) / 2) / (p * q);
}

// Fraction of anomalies (label 1) among the k highest scores (ties: lower index first).
template <class L>
double precision_at_k(const std::vector<double>& scores, const std::vector<L>& labels, std::int64_t k) {
    detail::check_labels(scores, labels, "precision_at_k");
    EWE_REQUIRE(k >= 1, "precision_at_k: k must be >= 1, found ", k);
    const auto top = top_k(scores, k);
    std::int64_t hits = 0;
    for (std::int64_t i : top) hits += labels[i] == L(1);
    return static_cast<double>(hits) / static_cast<double>(k);
}

}  // namespace ewe::anomaly
