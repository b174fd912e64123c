// A rank-average ensemble of anomaly scores. Scores of different kinds (a log error
// ratio, a cosine distance, a squared Mahalanobis distance) have no common scale, so
// each member is calibrated as a percentile of the reference set's own scores (for
// reference rows, their leave-one-out scores): p(s) = (#{r < s} + #{r = s} / 2) / m over
// the m reference scores r, in [0, 1]; the ensemble score is the mean of the members'
// percentiles. A member that ranks a sample above every reference sample gives it 1.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ewe/core/error.hpp"

namespace ewe::anomaly {

class PercentileCalibration {
public:
    PercentileCalibration() = default;
    explicit PercentileCalibration(std::vector<double> reference_scores) : sorted_(std::move(reference_scores)) {
        EWE_REQUIRE(!sorted_.empty(), "PercentileCalibration: needs at least one reference score");
        for (std::size_t i = 0; i < sorted_.size(); ++i)
            EWE_REQUIRE(!std::isnan(sorted_[i]), "PercentileCalibration: reference score ", i, " is NaN");
        std::sort(sorted_.begin(), sorted_.end());
    }

    double percentile(double score) const {
        EWE_REQUIRE(!sorted_.empty(), "PercentileCalibration: not fitted");
        EWE_REQUIRE(!std::isnan(score), "PercentileCalibration: the score is NaN");
        const auto below = std::lower_bound(sorted_.begin(), sorted_.end(), score);
        const auto not_above = std::upper_bound(below, sorted_.end(), score);
        const double less = double(below - sorted_.begin()), equal = double(not_above - below);
        return (less + 0.5 * equal) / double(sorted_.size());
    }

    std::vector<double> percentiles(const std::vector<double>& scores) const {
        std::vector<double> out(scores.size());
        for (std::size_t i = 0; i < scores.size(); ++i) out[i] = percentile(scores[i]);
        return out;
    }

    const std::vector<double>& reference_scores() const { return sorted_; }  // ascending

private:
    std::vector<double> sorted_;
};

// The mean over members of each sample's percentile: members[m][i] is member m's
// percentile of sample i.
inline std::vector<double> rank_average(const std::vector<std::vector<double>>& members) {
    EWE_REQUIRE(!members.empty(), "rank_average: needs at least one member");
    const std::size_t n = members.front().size();
    std::vector<double> out(n, 0.0);
    for (std::size_t m = 0; m < members.size(); ++m) {
        EWE_REQUIRE(members[m].size() == n, "rank_average: member ", m, " has ", members[m].size(),
                    " scores, member 0 has ", n);
        for (std::size_t i = 0; i < n; ++i) out[i] += members[m][i];
    }
    for (double& v : out) v /= double(members.size());
    return out;
}

}  // namespace ewe::anomaly
