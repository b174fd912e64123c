// Feature-space anomaly scores, each against a direct computation in double: pooled maps,
// Gram matrices, values taps and square roots by hand, the tapped pass against a
// whole-batch forward, cosine k-NN
// and Mahalanobis against brute force (leave-one-out against a refit without the row),
// Ledoit-Wolf against its defining formula, the percentile calibration and rank
// average, a reference set's members (the size-adjusted k-NN against a least-squares
// line by the normal equations), its save/load round trip and bad files.
#include <doctest/doctest.h>

#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include <unistd.h>

#include "error_of.hpp"
#include "small_sheep_vae.hpp"
#include "ewe/anomaly/reference_set.hpp"
#include "ewe/core/philox.hpp"
#include "ewe/models/sheep_vae.hpp"

using namespace ewe;
using ewe_test::small_model_options;
using namespace ewe::anomaly;
using ewe_test::error_of;

namespace {

// Uniform values in [0, 1) from Philox: (rows, cols).
FeatureMatrix random_matrix(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
    FeatureMatrix m(rows, cols);
    for (std::size_t i = 0; i < m.values.size(); ++i)
        m.values[i] = double(philox_bits(PhiloxKey{seed, 0, 0}, std::uint64_t(i)) >> 11) / 9007199254740992.0;
    return m;
}

Tensor<double> small_images(std::int64_t n, std::uint64_t seed) {
    Tensor<double> x(Shape{n, 8, 8, 1});
    for (std::int64_t i = 0; i < x.numel(); ++i)
        x[i] = double(philox_bits(PhiloxKey{seed, 1, 0}, std::uint64_t(i)) >> 24) / 255.0;
    return x;
}

double cosine_distance(const double* a, const double* b, std::int64_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (std::int64_t j = 0; j < d; ++j) ab += a[j] * b[j], aa += a[j] * a[j], bb += b[j] * b[j];
    return 1 - ab / std::sqrt(aa * bb);
}

// Mean and inverse of a covariance (1 - s) S + s mu I of `x` without row `skip`, S the
// maximum-likelihood covariance: the definition, with a general matrix inverse.
double direct_mahalanobis(const FeatureMatrix& x, std::int64_t skip, double s, double mu, const double* query) {
    const std::int64_t d = x.cols;
    std::vector<double> mean(std::size_t(d), 0.0);
    double n = 0;
    for (std::int64_t i = 0; i < x.rows; ++i) {
        if (i == skip) continue;
        n += 1;
        for (std::int64_t j = 0; j < d; ++j) mean[std::size_t(j)] += x.row(i)[j];
    }
    for (double& v : mean) v /= n;
    Eigen::MatrixXd c = Eigen::MatrixXd::Zero(d, d);
    for (std::int64_t i = 0; i < x.rows; ++i) {
        if (i == skip) continue;
        for (std::int64_t a = 0; a < d; ++a)
            for (std::int64_t b = 0; b < d; ++b)
                c(a, b) += (x.row(i)[a] - mean[std::size_t(a)]) * (x.row(i)[b] - mean[std::size_t(b)]) / n;
    }
    c = (1 - s) * c + s * mu * Eigen::MatrixXd::Identity(d, d);
    const Eigen::MatrixXd inverse = c.inverse();
    Eigen::VectorXd u(d);
    for (std::int64_t j = 0; j < d; ++j) u(j) = query[j] - mean[std::size_t(j)];
    return u.dot(inverse * u);
}

}  // namespace

TEST_CASE("pooled maps (adaptive average cells) and Gram matrices by hand") {
    // A 3x3 map of 2 channels: channel 0 = position p, channel 1 = 1.
    std::vector<double> map(18);
    for (int p = 0; p < 9; ++p) map[std::size_t(2 * p)] = p, map[std::size_t(2 * p + 1)] = 1;
    std::vector<double> pooled(8);
    summarize_map(FeatureTap{0, TapSummary::pooled, 2}, map.data(), 3, 3, 2, pooled.data());
    // Cells span rows/columns [0, 2) and [1, 3): the middle row and column are shared.
    CHECK(pooled == std::vector<double>{(0 + 1 + 3 + 4) / 4.0, 1, (1 + 2 + 4 + 5) / 4.0, 1, (3 + 4 + 6 + 7) / 4.0, 1,
                                        (4 + 5 + 7 + 8) / 4.0, 1});
    std::vector<double> gram(3);
    summarize_map(FeatureTap{0, TapSummary::gram, 0}, map.data(), 3, 3, 2, gram.data());
    CHECK(gram[0] == doctest::Approx((0 + 1 + 4 + 9 + 16 + 25 + 36 + 49 + 64) / 9.0));  // sum p^2 / 9
    CHECK(gram[1] == doctest::Approx(36 / 9.0));                                          // sum p / 9
    CHECK(gram[2] == doctest::Approx(1.0));
    // Square-rooted summaries: sign(v) sqrt(|v|) of each value; a values tap copies the output.
    std::vector<double> rooted(8);
    summarize_map(FeatureTap{0, TapSummary::pooled, 2, true}, map.data(), 3, 3, 2, rooted.data());
    for (std::size_t i = 0; i < 8; ++i) CHECK(rooted[i] == doctest::Approx(std::sqrt(pooled[i])).epsilon(1e-15));
    const std::vector<double> signed_values = {-4, 0, 9, 2.25};
    std::vector<double> copied(4), rooted_values(4);
    summarize_map(FeatureTap{0, TapSummary::values, 0}, signed_values.data(), 1, 1, 4, copied.data());
    summarize_map(FeatureTap{0, TapSummary::values, 0, true}, signed_values.data(), 1, 1, 4, rooted_values.data());
    CHECK(copied == signed_values);
    CHECK(rooted_values == std::vector<double>{-2, 0, 3, 1.5});
}

TEST_CASE("tapped_pass: one eval pass gives the SSE, the posterior and each tap's summary, in any batch size") {
    Context ctx;
    SheepVae<double> batched(ctx, small_model_options(), 3, 7), whole(ctx, small_model_options(), 7, 7);
    const Tensor<double> x = small_images(7, 2);
    // Small encoder: conv, conv, Flatten, Dense (3), Dropout, BatchNormalization (5), ...
    const std::vector<FeatureTap> taps = {
        {1, TapSummary::pooled, 3}, {0, TapSummary::gram, 0, true}, {5, TapSummary::values, 0}};
    const TappedPass pass = tapped_pass<double>(ctx, batched, x.view(), taps);  // batches of 3, 3 and 1
    whole.forward(ctx, x.view(), Phase::eval);
    REQUIRE(pass.features.size() == 3);
    CHECK(pass.features[0].cols == 3 * 3 * 3);
    CHECK(pass.features[1].cols == 2 * 3 / 2);
    CHECK(pass.features[2].cols == 6);
    for (std::int64_t i = 0; i < 7; ++i) {
        double sse = 0;
        for (std::int64_t j = 0; j < 64; ++j) {
            const double e = whole.reconstruction(7)[i * 64 + j] - x[i * 64 + j];
            sse += e * e;
        }
        CHECK(pass.sse[std::size_t(i)] == doctest::Approx(sse).epsilon(1e-12));
        for (std::int64_t k = 0; k < 2; ++k) {
            CHECK(pass.mean[std::size_t(i * 2 + k)] == doctest::Approx(whole.mean(7)[i * 2 + k]).epsilon(1e-12));
            CHECK(pass.log_var[std::size_t(i * 2 + k)] == doctest::Approx(whole.log_var(7)[i * 2 + k]).epsilon(1e-12));
        }
        for (std::size_t t = 0; t < taps.size(); ++t) {
            const TensorView<const double> map = whole.encoder().activation(taps[t].layer, 7);
            const std::int64_t size = map.numel() / 7;
            std::vector<double> expected(std::size_t(pass.features[t].cols));
            if (map.rank() == 4) summarize_map(taps[t], map.data() + i * size, 8, 8, map.dim(3), expected.data());
            else summarize_map(taps[t], map.data() + i * size, 1, 1, size, expected.data());
            for (std::int64_t j = 0; j < pass.features[t].cols; ++j)
                CHECK(pass.features[t].row(i)[j] == doctest::Approx(expected[std::size_t(j)]).epsilon(1e-12));
        }
    }
    CHECK(error_of([&] { tapped_pass<double>(ctx, batched, x.view(), {{2, TapSummary::pooled, 2}}); })
              .find("(h, w, c) map") != std::string::npos);  // layer 2 is the Flatten
    CHECK(error_of([&] { tapped_pass<double>(ctx, batched, x.view(), {{1, TapSummary::pooled, 9}}); })
              .find("grid must be in [1, 8]") != std::string::npos);
}

TEST_CASE("cosine k-NN against brute force, and leave-one-out against a reference without the row") {
    const FeatureMatrix reference = random_matrix(40, 6, 1), queries = random_matrix(9, 6, 2);
    for (std::int64_t k : {1, 3, 7}) {
        const std::vector<double> scores = cosine_knn_scores(reference, queries, k);
        for (std::int64_t i = 0; i < queries.rows; ++i) {
            std::vector<double> d;
            for (std::int64_t j = 0; j < reference.rows; ++j) d.push_back(cosine_distance(queries.row(i), reference.row(j), 6));
            std::sort(d.begin(), d.end());
            double mean = 0;
            for (std::int64_t t = 0; t < k; ++t) mean += d[std::size_t(t)] / double(k);
            CHECK(scores[std::size_t(i)] == doctest::Approx(mean).epsilon(1e-12));
        }
    }
    // The reference scored against itself, each row left out, equals each row scored
    // against the other 39; without leaving out, every row's nearest neighbour is itself.
    std::vector<std::int64_t> self(40);
    for (int i = 0; i < 40; ++i) self[std::size_t(i)] = i;
    const std::vector<double> loo = cosine_knn_scores(reference, reference, 3, self);
    for (std::int64_t i = 0; i < 40; ++i) {
        FeatureMatrix others(39, 6), row(1, 6);
        for (std::int64_t j = 0, r = 0; j < 40; ++j)
            if (j != i) std::copy(reference.row(j), reference.row(j) + 6, others.row(r++));
        std::copy(reference.row(i), reference.row(i) + 6, row.row(0));
        CHECK(loo[std::size_t(i)] == doctest::Approx(cosine_knn_scores(others, row, 3)[0]).epsilon(1e-12));
    }
    CHECK(cosine_knn_scores(reference, reference, 1)[5] == doctest::Approx(0.0).epsilon(1e-12));
    CHECK(error_of([&] { cosine_knn_scores(reference, reference, 40, self); }).find("k must be in [1, 39]") !=
          std::string::npos);
    CHECK(error_of([&] { cosine_knn_scores(reference, random_matrix(2, 5, 3), 1); }).find("6 features") !=
          std::string::npos);
}

TEST_CASE("Ledoit-Wolf shrinkage against its defining formula") {
    for (std::int64_t rows : {5, 30, 200}) {
        const FeatureMatrix x = random_matrix(rows, 8, 4 + std::uint64_t(rows));
        const LedoitWolfFit fit = ledoit_wolf(x);
        const double n = double(rows), d = 8;
        Eigen::MatrixXd data(rows, 8);
        for (std::int64_t i = 0; i < rows; ++i)
            for (int j = 0; j < 8; ++j) data(i, j) = x.row(i)[j];
        const Eigen::MatrixXd centred = data.rowwise() - data.colwise().mean();
        const Eigen::MatrixXd s = centred.transpose() * centred / n;
        const double mu = s.trace() / d;
        const double d2 = (s - mu * Eigen::MatrixXd::Identity(8, 8)).squaredNorm() / d;
        double b2 = 0;
        for (std::int64_t k = 0; k < rows; ++k) {
            const Eigen::VectorXd xk = centred.row(k).transpose();
            b2 += (xk * xk.transpose() - s).squaredNorm() / d;
        }
        b2 /= n * n;
        INFO("rows " << rows);
        CHECK(fit.target == doctest::Approx(mu).epsilon(1e-12));
        CHECK(fit.shrinkage == doctest::Approx(std::min(b2, d2) / d2).epsilon(1e-10));
        CHECK(fit.shrinkage > 0);
        CHECK(fit.shrinkage <= 1);
        for (int a = 0; a < 8; ++a)
            for (int b = 0; b < 8; ++b) CHECK(fit.covariance[std::size_t(a * 8 + b)] == doctest::Approx(s(a, b)).epsilon(1e-12));
    }
    CHECK(error_of([] { ledoit_wolf(random_matrix(1, 3, 1)); }).find("at least 2 rows") != std::string::npos);
}

TEST_CASE("Mahalanobis distances against a direct inverse, leave-one-out against a refit without the row") {
    const FeatureMatrix reference = random_matrix(25, 5, 9), queries = random_matrix(4, 5, 10);
    const LedoitWolfFit fit = ledoit_wolf(reference);
    const std::vector<double> scores = mahalanobis_scores(fit, queries);
    for (std::int64_t i = 0; i < 4; ++i)
        CHECK(scores[std::size_t(i)] ==
              doctest::Approx(direct_mahalanobis(reference, -1, fit.shrinkage, fit.target, queries.row(i))).epsilon(1e-10));
    // Rows 3 and 17 of the reference as queries, each its own reference row.
    FeatureMatrix rows(2, 5);
    std::copy(reference.row(3), reference.row(3) + 5, rows.row(0));
    std::copy(reference.row(17), reference.row(17) + 5, rows.row(1));
    const std::vector<double> loo = mahalanobis_scores(fit, rows, {3, 17}, &reference);
    const double loo3 = direct_mahalanobis(reference, 3, fit.shrinkage, fit.target, reference.row(3));
    CHECK(loo[0] == doctest::Approx(loo3).epsilon(1e-10));
    CHECK(loo[1] == doctest::Approx(direct_mahalanobis(reference, 17, fit.shrinkage, fit.target, reference.row(17)))
                        .epsilon(1e-10));
    CHECK(loo[0] > mahalanobis_scores(fit, rows)[0]);  // a row is farther from a fit it did not shape
    CHECK(error_of([&] { mahalanobis_scores(fit, rows, {3, 17}); }).find("leave-one-out needs the 25 x 5") !=
          std::string::npos);
}

TEST_CASE("ensemble calibration: percentiles of the reference's own scores, ties counted half, and their mean") {
    const PercentileCalibration c({4, 1, 3, 3, 2});
    CHECK(c.percentile(0) == 0);
    CHECK(c.percentile(1) == doctest::Approx(0.1));   // (0 + 1/2) / 5
    CHECK(c.percentile(2.5) == doctest::Approx(0.4));  // 2 below
    CHECK(c.percentile(3) == doctest::Approx(0.6));   // (2 + 2/2) / 5
    CHECK(c.percentile(9) == 1);
    // The reference's own percentiles average to 1/2, whatever the scores.
    const std::vector<double> own = c.percentiles({4, 1, 3, 3, 2});
    double mean = 0;
    for (double p : own) mean += p / 5;
    CHECK(mean == doctest::Approx(0.5));
    const std::vector<double> average = rank_average({{0.2, 1.0}, {0.4, 0.0}, {0.9, 0.5}});
    CHECK(average[0] == doctest::Approx(0.5));
    CHECK(average[1] == doctest::Approx(0.5));
    CHECK(error_of([] { rank_average({{0.1}, {0.1, 0.2}}); }).find("member 1 has 2") != std::string::npos);
    CHECK(error_of([] { PercentileCalibration(std::vector<double>{}); }).find("at least one") != std::string::npos);
}

// The least-squares line of log(1 + y) in log(1 + x), by the normal equations, and
// each y's residual from it: the size adjustment, computed directly.
std::vector<double> direct_size_residuals(const std::vector<double>& fit_y, const std::vector<double>& fit_x,
                                          const std::vector<double>& y, const std::vector<double>& x) {
    Eigen::MatrixXd design(Eigen::Index(fit_x.size()), 2);
    Eigen::VectorXd target(Eigen::Index(fit_y.size()));
    for (std::size_t i = 0; i < fit_x.size(); ++i) {
        design(Eigen::Index(i), 0) = 1;
        design(Eigen::Index(i), 1) = std::log1p(fit_x[i]);
        target(Eigen::Index(i)) = std::log1p(fit_y[i]);
    }
    const Eigen::Vector2d line = (design.transpose() * design).inverse() * (design.transpose() * target);
    std::vector<double> out;
    for (std::size_t i = 0; i < y.size(); ++i) out.push_back(std::log1p(y[i]) - line(0) - line(1) * std::log1p(x[i]));
    return out;
}

TEST_CASE("a reference set: members as the direct computations, saved and loaded exactly, bad files refused") {
    Context ctx;
    SheepVae<double> vae(ctx, small_model_options(), 4, 11);
    const Tensor<double> normal = small_images(30, 3), scored = small_images(6, 4);
    // The small model's encoder: conv 0, conv 1, Flatten, Dense, Dropout, BatchNormalization 5.
    const EnsembleOptions options = EnsembleOptions::for_sheep_vae(2, 3, 2);
    CHECK(options.knn_tap.layer == 0);
    CHECK(options.dense_tap.layer == 5);
    CHECK(options.mahalanobis_tap.layer == 1);
    const EnsembleOptions sheep = EnsembleOptions::for_sheep_vae(4, 5, 7), defaults;
    CHECK((sheep.knn_tap.layer == defaults.knn_tap.layer && sheep.knn_tap.grid == defaults.knn_tap.grid &&
           sheep.dense_tap.layer == defaults.dense_tap.layer && sheep.mahalanobis_tap.layer == defaults.mahalanobis_tap.layer));
    const ReferenceSet set = ReferenceSet::fit<double>(ctx, vae, normal.view(), options);
    // Scored: the 6 new images and then 2 of the reference images.
    Tensor<double> mixed(Shape{8, 8, 8, 1});
    std::copy(scored.data(), scored.data() + 6 * 64, mixed.data());
    std::copy(normal.data() + 5 * 64, normal.data() + 7 * 64, mixed.data() + 6 * 64);
    const EnsembleScores s = set.score<double>(ctx, vae, mixed.view());
    const TappedPass ref = tapped_pass<double>(ctx, vae, normal.view(), options.taps());
    const TappedPass new_pass = tapped_pass<double>(ctx, vae, mixed.view(), options.taps());
    const std::vector<double> mass = input_mass<double>(normal.view()), new_mass = input_mass<double>(mixed.view());
    std::vector<std::int64_t> all(30);
    for (int i = 0; i < 30; ++i) all[std::size_t(i)] = i;
    // knn_pooled (tap 0) and knn_dense (tap 1): the distances' residuals from their line in
    // ink, fitted on the reference's leave-one-out distances.
    for (const auto& [tap, member] : {std::pair{0, &s.knn_pooled}, std::pair{1, &s.knn_dense}}) {
        INFO("tap " << tap);
        const std::vector<double> own = cosine_knn_scores(ref.features[std::size_t(tap)], ref.features[std::size_t(tap)], 3, all);
        std::vector<double> distances = cosine_knn_scores(ref.features[std::size_t(tap)], new_pass.features[std::size_t(tap)], 3);
        distances[6] = own[5];  // the reference rows: leave-one-out
        distances[7] = own[6];
        const std::vector<double> expected = direct_size_residuals(own, mass, distances, new_mass);
        for (std::size_t i = 0; i < 8; ++i) CHECK((*member)[i] == doctest::Approx(expected[i]).epsilon(1e-9));
    }
    const LedoitWolfFit fit = ledoit_wolf(ref.features[2]);
    CHECK(s.mahalanobis_gram[0] == doctest::Approx(mahalanobis_scores(fit, new_pass.features[2])[0]));
    CHECK(s.mahalanobis_gram[6] ==
          doctest::Approx(direct_mahalanobis(ref.features[2], 5, fit.shrinkage, fit.target, ref.features[2].row(5))));
    const std::vector<double> ink = direct_size_residuals(ref.sse, mass, new_pass.sse, new_mass);
    for (std::size_t i = 0; i < 8; ++i) CHECK(s.ink_adjusted_sse[i] == doctest::Approx(ink[i]).epsilon(1e-9));
    // Each ensemble score is the mean of the members' percentiles among the reference's own scores.
    for (std::size_t i = 0; i < 8; ++i) {
        double expected = 0;
        for (const auto& [member, scores] :
             {std::pair{0, &s.knn_pooled}, std::pair{1, &s.knn_dense}, std::pair{2, &s.mahalanobis_gram}}) {
            const std::vector<double>& own = set.calibration()[std::size_t(member)].reference_scores();
            double below = 0;
            for (double r : own) below += r < (*scores)[i] ? 1.0 : r == (*scores)[i] ? 0.5 : 0.0;
            expected += below / 30 / 3;
        }
        CHECK(s.ensemble[i] == doctest::Approx(expected).epsilon(1e-12));
    }

    const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("ewe_test_reference_set_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    set.save(dir / "reference.safetensors");
    const ReferenceSet loaded = ReferenceSet::load(dir / "reference.safetensors");
    const EnsembleScores again = loaded.score<double>(ctx, vae, mixed.view());
    for (std::size_t i = 0; i < 8; ++i) {
        CHECK(again.ensemble[i] == s.ensemble[i]);  // bit for bit
        CHECK(again.mahalanobis_gram[i] == s.mahalanobis_gram[i]);
        CHECK(again.knn_pooled[i] == s.knn_pooled[i]);
        CHECK(again.knn_dense[i] == s.knn_dense[i]);
        CHECK(again.ink_adjusted_sse[i] == s.ink_adjusted_sse[i]);
    }
    SheepVae<double> other(ctx, small_model_options(), 4, 12);
    CHECK(error_of([&] { loaded.score<double>(ctx, other, mixed.view()); }).find("the set was fitted on model") !=
          std::string::npos);
    {
        std::ofstream(dir / "truncated.safetensors", std::ios::binary) << "\x10\0\0\0\0\0\0\0{\"a\":";
        CHECK(error_of([&] { ReferenceSet::load(dir / "truncated.safetensors"); }).find("truncated.safetensors") !=
              std::string::npos);
        io::write_safetensors(dir / "weights.safetensors", {}, {{"format", "something else"}});
        CHECK(error_of([&] { ReferenceSet::load(dir / "weights.safetensors"); }).find("not a reference set") !=
              std::string::npos);
        io::write_safetensors(dir / "v1.safetensors", {}, {{"format", "ewe.anomaly.reference_set.v1"}});
        const std::string v1 = error_of([&] { ReferenceSet::load(dir / "v1.safetensors"); });
        CHECK(v1.find("format ewe.anomaly.reference_set.v1") != std::string::npos);
        CHECK(v1.find("fit the set again") != std::string::npos);
        CHECK(error_of([&] { ReferenceSet::load(dir / "missing.safetensors"); }).find("missing.safetensors") !=
              std::string::npos);
    }
    std::filesystem::remove_all(dir);
}
