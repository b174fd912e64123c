// evaluate_vae (ewe/anomaly/vae_evaluation.hpp) on the small sheep VAE in double, against
// the other routes to each number: reconstruction_sse (the device pass) for the SSE and its
// ROC AUC and precision@planted, and posterior_statistics of encode() on the normal rows
// for the KL and active units; with nothing planted the detection numbers are NaN.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "error_of.hpp"
#include "small_sheep_vae.hpp"
#include "ewe/anomaly/vae_evaluation.hpp"
#include "ewe/models/sheep_vae.hpp"

using namespace ewe;
using namespace ewe::anomaly;
using ewe_test::error_of;

TEST_CASE("evaluate_vae: mean SSE, KL, active units and detection as their own routes give them") {
    Context ctx;
    SheepVae<double> vae(ctx, ewe_test::small_model_options(), 4, 11);
    const std::int64_t n = 11, planted = 3, normal = n - planted;
    Tensor<double> images(Shape{n, 8, 8, 1});
    for (std::int64_t i = 0; i < images.numel(); ++i)
        images[i] = i < normal * 64 ? double((i * 7 + i / 64) % 13) / 12.0 : double((i / 3) % 2);  // stripes planted

    const VaeEvaluation e = evaluate_vae<double>(ctx, vae, images.view(), planted);
    Tensor<double> sse(Shape{n});
    reconstruction_sse<double>(ctx, vae, images.view(), sse.view());
    const std::vector<double> scores(sse.data(), sse.data() + n);
    double mean = 0;
    for (std::int64_t i = 0; i < normal; ++i) mean += scores[std::size_t(i)];
    CHECK(e.mean_sse == doctest::Approx(mean / double(normal)).epsilon(1e-12));
    std::vector<std::uint8_t> labels(std::size_t(n), 0);
    std::fill(labels.begin() + normal, labels.end(), 1);
    CHECK(e.roc_auc == doctest::Approx(roc_auc(scores, labels)).epsilon(1e-12));
    CHECK(e.precision_at_planted == doctest::Approx(precision_at_k(scores, labels, planted)).epsilon(1e-12));

    const PosteriorStatistics posterior = posterior_statistics(encode<double>(ctx, vae, images.view().leading(normal)));
    double kl = 0;
    for (double d : posterior.kl_per_dimension) kl += d;
    CHECK(e.kl == doctest::Approx(kl).epsilon(1e-12));
    CHECK(e.active_units == posterior.active_units);

    const VaeEvaluation none = evaluate_vae<double>(ctx, vae, images.view(), 0);
    CHECK(std::isnan(none.roc_auc));
    CHECK(std::isnan(none.precision_at_planted));
    CHECK(none.mean_sse == doctest::Approx((mean + scores[8] + scores[9] + scores[10]) / double(n)).epsilon(1e-12));
    CHECK(error_of([&] { evaluate_vae<double>(ctx, vae, images.view(), n); }) ==
          "evaluate_vae: needs normal samples, found 11 samples of which 11 planted");
}
