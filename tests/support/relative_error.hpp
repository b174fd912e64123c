// relative_error(got, want): the largest |got - want| relative to the largest |want|, for
// tests that check float kernels against a reference computed in double; NaN where either
// holds a NaN.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace ewe_test {

inline double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
    double worst = 0, largest = 1e-30;
    for (std::size_t i = 0; i < want.size(); ++i) {
        const double difference = std::abs(double(got[i]) - want[i]);
        if (std::isnan(difference)) return difference;  // a value never written (tests start outputs as NaN)
        worst = std::max(worst, difference);
        largest = std::max(largest, std::abs(want[i]));
    }
    return worst / largest;
}

}  // namespace ewe_test
