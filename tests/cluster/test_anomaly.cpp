// Anomaly scoring: input mass, size-adjusted errors, thresholds, top-k, ROC AUC, precision@k,
// with values checked by hand (and against numpy / scikit-learn conventions); input
// complexity (deflate length) and the complexity-adjusted likelihood; ScoreTable and the
// negative ELBO.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ewe/anomaly/scores.hpp"
#include "ewe/anomaly/complexity.hpp"
#include "ewe/anomaly/score_table.hpp"
#include "ewe/core/philox.hpp"

using namespace ewe;
using namespace ewe::anomaly;

TEST_CASE("input mass: sum |x| of each sample") {
    const Tensor<float> x = Tensor<float>::from({3, 2, 2}, {0, 0, 0, 0, 1, 1, 1, 1, 0, -2, 0, 0});
    CHECK(input_mass<float>(x) == std::vector<double>{0, 4, 2});
    const Tensor<float> scalar(Shape{});
    CHECK_THROWS_AS(input_mass<float>(scalar), Error);
}

TEST_CASE("size-adjusted errors: the log-log least-squares line and its residuals") {
    // Errors on an exact line log1p(e) = 0.5 + 0.8 log1p(s): the fit recovers it and
    // every residual is 0.
    std::vector<double> sizes = {3, 10, 40, 90, 200}, errors;
    for (double s : sizes) errors.push_back(std::expm1(0.5 + 0.8 * std::log1p(s)));
    SizeAdjustment fit = fit_size_adjustment(errors, sizes);
    CHECK(fit.intercept == doctest::Approx(0.5));
    CHECK(fit.slope == doctest::Approx(0.8));
    for (double r : size_adjusted_errors(errors, sizes, fit)) CHECK(r == doctest::Approx(0.0).epsilon(1e-12));
    // A sample with its size's usual error scores 0, one with e times that error + 1, and
    // at equal SSE the smaller drawing is the more anomalous.
    const double usual = std::expm1(0.5 + 0.8 * std::log1p(50.0));
    const std::vector<double> r =
        size_adjusted_errors({usual, std::expm1(1 + std::log1p(usual)), 30, 30}, {50, 50, 20, 150}, fit);
    CHECK(r[0] == doctest::Approx(0.0).epsilon(1e-12));
    CHECK(r[1] == doctest::Approx(1.0));
    CHECK(r[2] > r[3]);
    // Hand-checked least squares on noisy points: x = log1p(s) = 0, 1, 2; y = log1p(e) = 0, 2, 1
    // -> slope = sxy / sxx = 1 / 2, intercept = 1 - 0.5 * 1 = 0.5.
    const double E = std::exp(1.0);
    fit = fit_size_adjustment({0, E * E - 1, E - 1}, {0, E - 1, E * E - 1});
    CHECK(fit.slope == doctest::Approx(0.5));
    CHECK(fit.intercept == doctest::Approx(0.5));
    // Equal sizes: no slope, the intercept is the mean log error.
    fit = fit_size_adjustment({E - 1, E * E * E - 1}, {7, 7});
    CHECK(fit.slope == 0.0);
    CHECK(fit.intercept == doctest::Approx(2.0));
    CHECK_THROWS_AS(fit_size_adjustment({}, {}), Error);
    CHECK_THROWS_AS(fit_size_adjustment({1, 2}, {1}), Error);
    CHECK_THROWS_AS(fit_size_adjustment({-1}, {1}), Error);
    CHECK_THROWS_AS(size_adjusted_errors({1}, {std::nan("")}, fit), Error);
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

TEST_CASE("input complexity: deflate length of the 8-bit drawing, and the complexity-adjusted likelihood") {
    // Three 28x28 "drawings": blank, one horizontal stroke, and Philox noise.
    Tensor<float> x(Shape{3, 28, 28, 1});
    for (std::int64_t j = 0; j < 784; ++j) {
        x[j] = 0;
        x[784 + j] = j / 28 == 14 && j % 28 > 3 && j % 28 < 24 ? 1.0f : 0.0f;
        x[2 * 784 + j] = float(philox_bits(PhiloxKey{5, 0, 0}, std::uint64_t(j)) >> 24) / 255.0f;
    }
    const std::vector<double> length = compressed_length_nats<float>(x.view());
    REQUIRE(length.size() == 3);
    CHECK(length[0] < length[1]);
    CHECK(length[1] < length[2]);
    // The lengths are whole bytes of the stream of exactly the stored 8-bit values.
    std::vector<std::uint8_t> noise(784);
    for (std::int64_t j = 0; j < 784; ++j) noise[std::size_t(j)] = std::uint8_t(philox_bits(PhiloxKey{5, 0, 0}, std::uint64_t(j)) >> 24);
    CHECK(length[2] == doctest::Approx(8 * std::log(2.0) * double(io::zlib_compress(noise).size())).epsilon(1e-12));
    CHECK(length[2] > 8 * std::log(2.0) * 700);  // noise barely compresses
    x[5] = 1.5f;
    CHECK_THROWS_WITH_AS(compressed_length_nats<float>(x.view()),
                         "compressed_length_nats: value 5 of sample 0 is outside [0, 1]: 1.5", Error);

    const std::vector<double> s = complexity_adjusted_nll({100, 200}, {30, 10}, 4);
    CHECK(s[0] == doctest::Approx(100 + 4 * std::log(255.0) - 30));
    CHECK(s[1] == doctest::Approx(200 + 4 * std::log(255.0) - 10));
    CHECK_THROWS_WITH_AS(complexity_adjusted_nll({1, 2}, {1}, 4), "complexity_adjusted_nll: 2 likelihoods but 1 lengths",
                         Error);
}

TEST_CASE("ScoreTable: cutoffs, detection of the planted samples, and its files") {
    // Six samples, the last two planted: "sse" ranks them on top, "noise" does not.
    ScoreTable table(6, 2, 0.5);
    table.add("sse", "reconstruction error", {1, 2, 3, 4, 10, 11}).add("noise", "a poor score", {5, 1, 6, 2, 3, 4});
    CHECK(table.at("sse").cutoff == doctest::Approx(quantile_threshold({1, 2, 3, 4, 10, 11}, 0.5)));
    CHECK(table.above_cutoff("sse") == 3);
    CHECK_THROWS_AS(table.at("missing"), Error);
    CHECK_THROWS_AS(table.add("short", "three values", {1, 2, 3}), Error);
    const std::vector<ScoreDetection> found = table.detection();
    REQUIRE(found.size() == 2);
    CHECK(found[0].name == "sse");
    CHECK(found[0].roc_auc == 1.0);
    CHECK(found[0].precision == 1.0);
    // noise ranks the planted 3 and 4 above 1 and 2 only: 4 of 8 pairs.
    CHECK(found[1].roc_auc == doctest::Approx(0.5));
    CHECK(ScoreTable(3, 0, 0.9).add("sse", "", {1, 2, 3}).detection().empty());  // nothing planted: nothing to detect

    const std::filesystem::path dir = std::filesystem::temp_directory_path() / "ewe_test_score_table";
    std::filesystem::create_directories(dir);
    table.write(dir, "sse", {"data.npy", "other.npy", "drawings"});
    const auto csv = io::read_csv(dir / "scores.csv");
    REQUIRE(csv.size() == 7);
    CHECK(csv[0] == std::vector<std::string>{"index", "source", "planted", "sse", "noise", "above_cutoff"});
    CHECK(csv[5] == std::vector<std::string>{"0", "other.npy", "1", "10", "3", "1"});
    CHECK(csv[1][5] == "0");
    for (const char* f : {"scores.npy", "histogram_sse.svg", "histogram_noise.svg"}) CHECK(std::filesystem::exists(dir / f));
    // The negative ELBO: 2 * SSE plus the KL of each sample's posterior.
    TappedPass pass;
    pass.sse = {1.5};
    pass.mean = {0.5, 0};
    pass.log_var = {0, std::log(2.0)};
    pass.latent = 2;
    CHECK(negative_elbo(pass, 2)[0] == doctest::Approx(3 + 0.125 + -0.5 * (1 + std::log(2.0) - 2)));
    std::filesystem::remove_all(dir);
}
