// Anomaly scoring: reconstruction errors, thresholds, top-k, ROC AUC, precision@k,
// with values checked by hand (and against numpy / scikit-learn conventions).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "ewe/cluster/anomaly.hpp"

using namespace ewe;
using namespace ewe::cluster;

TEST_CASE("per-sample SSE, MSE and relative SSE") {
    const Tensor<float> x = Tensor<float>::from({3, 2, 2}, {0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0});
    const Tensor<float> y = Tensor<float>::from({3, 2, 2}, {1, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 0});
    const ReconstructionErrors e = reconstruction_errors<float>(x, y);
    CHECK(e.sse == std::vector<double>{1, 5, 0});
    CHECK(e.mse == std::vector<double>{0.25, 1.25, 0});
    // sse / (sum |x| + sum |y|): 1 / (0 + 1); 5 / (4 + 5); an all-zero pair scores 0.
    CHECK(e.relative[0] == 1.0);
    CHECK(e.relative[1] == doctest::Approx(5.0 / 9));
    CHECK(e.relative[2] == 0.0);
    // For 0/1 images it is 1 - Dice: |x xor y| / (|x| + |y|).
    const Tensor<float> a = Tensor<float>::from({1, 6}, {1, 1, 1, 0, 0, 0});
    const Tensor<float> b = Tensor<float>::from({1, 6}, {0, 1, 1, 1, 0, 0});
    CHECK(reconstruction_errors<float>(a, b).relative[0] == doctest::Approx(1.0 - 2.0 * 2 / (3 + 3)));
    const Tensor<float> signs = Tensor<float>::from({1, 2}, {-1, 2});
    const Tensor<float> zeros = Tensor<float>::from({1, 2}, {0, 0});
    CHECK(reconstruction_errors<float>(signs, zeros).relative[0] == doctest::Approx(5.0 / 3));  // absolute values
    const Tensor<float> wrong({2, 4});
    CHECK_THROWS_AS(reconstruction_errors<float>(x, wrong), Error);
}

TEST_CASE("errors from a model callable, in batches") {
    Tensor<double> x({5, 3});
    for (int i = 0; i < 15; ++i) x[i] = i;
    int calls = 0;
    // The "model" reconstructs every value as 0 except it adds 1 to the first column.
    auto model = [&](TensorView<const double> batch) {
        ++calls;
        Tensor<double> out(batch.shape());
        for (std::int64_t i = 0; i < batch.numel(); ++i) out[i] = batch[i] + (i % 3 == 0 ? 1.0 : 0.0);
        return out;
    };
    const ReconstructionErrors e = reconstruction_errors<double>(x, model, 2);
    CHECK(calls == 3);
    CHECK(e.sse == std::vector<double>(5, 1.0));
    CHECK(e.mse[4] == doctest::Approx(1.0 / 3));
}

TEST_CASE("thresholds") {
    const std::vector<double> s = {1, 2, 3, 4, 100};
    CHECK(quantile_threshold(s, 0.5) == 3);
    CHECK(quantile_threshold(s, 0.0) == 1);
    CHECK(quantile_threshold(s, 1.0) == 100);
    CHECK(quantile_threshold(s, 0.9) == doctest::Approx(4 + 0.6 * 96));  // numpy.quantile: 61.6
    // mean 22, population sd sqrt(((21^2+20^2+19^2+18^2+78^2)/5)) = sqrt(1522) = 39.0128...
    CHECK(mean_sd_threshold(s, 2) == doctest::Approx(22 + 2 * 39.01281840626232));
    // median 3, |dev| = 2 1 0 1 97 -> MAD 1
    CHECK(median_mad_threshold(s, 3, 1.0) == doctest::Approx(6));
    CHECK(median_mad_threshold(s, 3) == doctest::Approx(3 + 3 * 1.4826));
    CHECK(median_mad_threshold({1, 2, 3, 4}, 1, 1.0) == doctest::Approx(2.5 + 1.0));
    CHECK(flag_anomalies(s, mean_sd_threshold(s, 1)) == std::vector<std::uint8_t>{0, 0, 0, 0, 1});
    CHECK_THROWS_AS(quantile_threshold({}, 0.5), Error);
    CHECK_THROWS_AS(quantile_threshold(s, 1.5), Error);
}

TEST_CASE("top-k, ROC AUC, precision@k") {
    const std::vector<double> s = {0.1, 0.9, 0.4, 0.9, 0.2};
    CHECK(top_k(s, 3) == std::vector<std::int64_t>{1, 3, 2});
    const std::vector<int> perfect = {0, 1, 0, 1, 0};
    CHECK(roc_auc(s, perfect) == 1.0);
    CHECK(precision_at_k(s, perfect, 2) == 1.0);
    CHECK(precision_at_k(s, perfect, 4) == 0.5);
    const std::vector<int> inverted = {1, 0, 0, 0, 1};
    CHECK(roc_auc(s, inverted) == 0.0);  // both anomalies score below every normal sample
    CHECK(roc_auc(s, std::vector<int>{0, 0, 1, 0, 0}) == doctest::Approx(0.5));  // 0.4 beats 2 of 4
    // A tie between a positive and a negative counts one half: sklearn gives 0.875.
    const std::vector<double> t = {0.5, 0.5, 0.1, 0.9};
    const std::vector<std::uint8_t> lt = {1, 0, 0, 1};
    CHECK(roc_auc(t, lt) == doctest::Approx(0.875));
    CHECK_THROWS_AS(roc_auc(s, std::vector<int>(5, 0)), Error);
    CHECK_THROWS_AS(roc_auc(s, std::vector<int>{0, 1, 2, 0, 0}), Error);
    CHECK_THROWS_AS(roc_auc(s, std::vector<int>{0, 1}), Error);
}
