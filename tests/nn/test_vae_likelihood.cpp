// importance_weighted_log_likelihood (ewe/models/vae_likelihood.hpp) on a tiny VAE of
// 4 values with a 1-D latent, in double: against log p(x) and the ELBO computed by
// quadrature over z on a dense grid (the honest check of the constants and of the
// proposal density, for both reparameterization variants); the K = 1 mean equals the
// ELBO; the mean estimate rises with K; determinism for a seed and independence of the
// batch size; finite estimates when the encoder's sd underflows or its draws overflow
// float; bad arguments; and gaussian_decoder_variance's reading of VaeLoss.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <vector>

#include <ewe/ewe.hpp>
#include <ewe/models/vae_likelihood.hpp>

using namespace ewe;

namespace {
constexpr std::int64_t kPixels = 4;
constexpr double kVariance = 0.05;  // the decoder's; small, so the posterior is sharper than q

VaeOptions<double> tiny_options(ReparamVariant variant) {
    auto encoder = std::make_shared<Sequential<double>>("tiny_encoder");
    encoder->add<Dense>(6, Activation::relu);
    auto decoder = std::make_shared<Sequential<double>>("tiny_decoder");
    decoder->add<Dense>(6, Activation::relu);
    decoder->add<Dense>(kPixels, Activation::sigmoid);
    return VaeOptions<double>{Shape{kPixels}, encoder, 1, decoder, variant, "tiny_vae"};
}

// An untrained model (Glorot weights of seed 3, scaled by 1.5 so that the decoder depends
// strongly on z): q(z|x) is a poor proposal, the ELBO lies 2 to 7 nats below log p(x),
// and only the importance weights close the gap.
std::unique_ptr<Vae<double>> tiny_vae(Context& ctx, ReparamVariant variant, std::int64_t max_batch = 64) {
    auto vae = std::make_unique<Vae<double>>(ctx, tiny_options(variant), max_batch, 3);
    const TensorView<double> w = vae->params().values();
    for (std::int64_t i = 0; i < w.numel(); ++i) w[i] *= 1.5;
    return vae;
}

// Drawings of the model: decoded from two latent points, then moved a little.
Tensor<double> tiny_images(Context& ctx, Vae<double>& vae) {
    const std::vector<double> x = decode<double>(ctx, vae, {0.8, -1.3});
    Tensor<double> images(Shape{2, kPixels});
    for (std::int64_t i = 0; i < images.numel(); ++i) images[i] = x[std::size_t(i)] + 0.03 * double(i % 3 - 1);
    return images;
}

// The same image repeated `copies` times: as many independent estimates of its log p(x).
Tensor<double> repeated(const Tensor<double>& images, std::int64_t row, std::int64_t copies) {
    Tensor<double> out(Shape{copies, kPixels});
    for (std::int64_t c = 0; c < copies; ++c)
        for (std::int64_t j = 0; j < kPixels; ++j) out[c * kPixels + j] = images[row * kPixels + j];
    return out;
}

double log_normal(double x, double mean, double variance) {
    return -0.5 * (x - mean) * (x - mean) / variance - 0.5 * std::log(2 * std::numbers::pi * variance);
}

struct Quadrature {
    double log_px = 0, elbo = 0;
};

// log p(x) = log integral p(x|z) p(z) dz and ELBO = integral q(z|x) log(p(x|z) p(z) / q(z|x)) dz
// by the trapezoid rule on z in [-12, 12] with step 5e-4 (the integrands are smooth and
// vanish at the ends).
Quadrature quadrature(Context& ctx, Vae<double>& vae, const Tensor<double>& images, std::int64_t row) {
    const double lo = -12, step = 5e-4;
    const std::int64_t points = 48001;
    std::vector<double> grid(static_cast<std::size_t>(points));
    for (std::int64_t j = 0; j < points; ++j) grid[std::size_t(j)] = lo + step * double(j);
    const std::vector<double> x_hat = decode<double>(ctx, vae, grid);
    const VaeEncoding<double> q = encode<double>(ctx, vae, repeated(images, row, 1).view());
    const double sd = vae.sampling().variant() == ReparamVariant::post ? std::exp(q.log_var[0]) : std::exp(0.5 * q.log_var[0]);
    std::vector<double> log_joint(static_cast<std::size_t>(points));
    double top = -INFINITY;
    Quadrature out;
    for (std::int64_t j = 0; j < points; ++j) {
        double lj = log_normal(grid[std::size_t(j)], 0, 1);
        for (std::int64_t p = 0; p < kPixels; ++p)
            lj += log_normal(images[row * kPixels + p], x_hat[std::size_t(j * kPixels + p)], kVariance);
        log_joint[std::size_t(j)] = lj;
        top = std::max(top, lj);
        const double log_q = log_normal(grid[std::size_t(j)], q.mean[0], sd * sd);
        const double weight = (j == 0 || j == points - 1 ? 0.5 : 1.0) * step;
        out.elbo += weight * std::exp(log_q) * (lj - log_q);
    }
    double sum = 0;
    for (std::int64_t j = 0; j < points; ++j)
        sum += (j == 0 || j == points - 1 ? 0.5 : 1.0) * step * std::exp(log_joint[std::size_t(j)] - top);
    out.log_px = top + std::log(sum);
    return out;
}

ImportanceSamplingOptions sampling(std::int64_t k, std::uint64_t seed = 1) {
    return ImportanceSamplingOptions{k, seed, kVariance};
}

struct Moments {
    double mean = 0, standard_error = 0;
};

Moments moments(const std::vector<double>& v) {
    Moments m;
    for (double x : v) m.mean += x;
    m.mean /= double(v.size());
    double var = 0;
    for (double x : v) var += (x - m.mean) * (x - m.mean);
    m.standard_error = std::sqrt(var / double(v.size() - 1) / double(v.size()));
    return m;
}
}  // namespace

TEST_CASE("the IWAE estimate at large K is log p(x) by quadrature over z, for both reparameterizations") {
    for (ReparamVariant variant : {ReparamVariant::standard, ReparamVariant::post}) {
        CAPTURE(variant == ReparamVariant::standard ? "standard" : "post");
        Context ctx;
        auto vae = tiny_vae(ctx, variant);
        const Tensor<double> images = tiny_images(ctx, *vae);
        const std::vector<double> estimate =
            importance_weighted_log_likelihood<double>(ctx, *vae, images.view(), sampling(20000));
        for (std::int64_t row = 0; row < 2; ++row) {
            const Quadrature exact = quadrature(ctx, *vae, images, row);
            CAPTURE(row);
            INFO("quadrature log p(x) " << exact.log_px << ", ELBO " << exact.elbo << ", IWAE K=20000 "
                                        << estimate[std::size_t(row)]);
            // The model is one where the bound matters: the ELBO is far below log p(x).
            CHECK(exact.log_px - exact.elbo > 2);
            CHECK(std::fabs(estimate[std::size_t(row)] - exact.log_px) < 0.02);
        }
    }
}

TEST_CASE("K = 1 estimates average to the ELBO, and the mean estimate rises with K towards log p(x)") {
    Context ctx;
    auto vae = tiny_vae(ctx, ReparamVariant::standard);
    const Tensor<double> images = tiny_images(ctx, *vae);
    const Quadrature exact = quadrature(ctx, *vae, images, 0);
    const Moments k1 = moments(importance_weighted_log_likelihood<double>(ctx, *vae, repeated(images, 0, 20000).view(), sampling(1)));
    INFO("K=1 mean " << k1.mean << " +- " << k1.standard_error << ", ELBO " << exact.elbo);
    CHECK(std::fabs(k1.mean - exact.elbo) < 4 * k1.standard_error);
    double previous = k1.mean;
    for (std::int64_t k : {4, 16, 64}) {
        const Moments mk =
            moments(importance_weighted_log_likelihood<double>(ctx, *vae, repeated(images, 0, 2000).view(), sampling(k, 7)));
        INFO("K=" << k << " mean " << mk.mean << " +- " << mk.standard_error << ", previous " << previous
                  << ", log p(x) " << exact.log_px);
        CHECK(mk.mean > previous);
        CHECK(mk.mean < exact.log_px + 4 * mk.standard_error);  // a lower bound in expectation
        previous = mk.mean;
    }
}

TEST_CASE("the estimate is deterministic for a seed and does not depend on the batch size") {
    Context ctx;
    auto small = tiny_vae(ctx, ReparamVariant::standard, 5);
    auto large = tiny_vae(ctx, ReparamVariant::standard, 64);
    const Tensor<double> images = tiny_images(ctx, *small);
    const std::vector<double> a = importance_weighted_log_likelihood<double>(ctx, *small, images.view(), sampling(13, 4));
    const std::vector<double> b = importance_weighted_log_likelihood<double>(ctx, *large, images.view(), sampling(13, 4));
    const std::vector<double> c = importance_weighted_log_likelihood<double>(ctx, *small, images.view(), sampling(13, 5));
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(std::isfinite(a[i]));
        CHECK(std::fabs(a[i] - b[i]) < 1e-12);
        CHECK(a[i] != c[i]);
    }
    CHECK(importance_weighted_log_likelihood<double>(ctx, *small, images.view(), sampling(13, 4)) == a);
}

TEST_CASE("an encoder far outside its range (sd underflowing to 0) gives a finite, very low estimate") {
    Context ctx;
    auto vae = tiny_vae(ctx, ReparamVariant::standard);
    const Tensor<double> images = tiny_images(ctx, *vae);
    const double ordinary = importance_weighted_log_likelihood<double>(ctx, *vae, images.view(), sampling(8))[0];
    for (std::size_t id = 0; id < vae->params().info().size(); ++id)
        if (vae->params().info()[id].name == "z_log_var/bias") vae->params().value(int(id))[0] = -2000;  // sd = exp(-1000) = 0
    const double collapsed = importance_weighted_log_likelihood<double>(ctx, *vae, images.view(), sampling(8))[0];
    INFO("ordinary " << ordinary << ", collapsed " << collapsed);
    CHECK(std::isfinite(collapsed));
    CHECK(collapsed < ordinary - 900);  // log q(z|x) = 1000 - eps^2 / 2 - log(2 pi) / 2 at the draw
}

TEST_CASE("draws beyond float's range are not decoded; beyond double's, log p(x) is the lowest double") {
    Context ctx;
    auto decoder = std::make_shared<Sequential<float>>("tiny_decoder");
    decoder->add<Dense>(6, Activation::relu);
    decoder->add<Dense>(kPixels, Activation::sigmoid);
    auto encoder = std::make_shared<Sequential<float>>("tiny_encoder");
    encoder->add<Dense>(6, Activation::relu);
    Vae<float> vae(ctx, VaeOptions<float>{Shape{kPixels}, encoder, 1, decoder}, 16, 3);
    const Tensor<float> images = Tensor<float>::from({1, kPixels}, {0.2f, 0.4f, 0.6f, 0.8f});
    const auto log_var_bias = [&](float v) {
        for (std::size_t id = 0; id < vae.params().info().size(); ++id)
            if (vae.params().info()[id].name == "z_log_var/bias") vae.params().value(int(id))[0] = v;
    };
    log_var_bias(200);  // sd = exp(100) = 2.7e43: every draw overflows float
    const double overflowed = importance_weighted_log_likelihood<float>(ctx, vae, images.view(), sampling(8))[0];
    INFO("log p(x) with sd = exp(100): " << overflowed);
    CHECK(std::isfinite(overflowed));
    CHECK(overflowed < -1e70);  // log p(z) of a draw beyond 3.4e38
    log_var_bias(3000);  // sd = exp(1500) overflows double too
    CHECK(importance_weighted_log_likelihood<float>(ctx, vae, images.view(), sampling(8))[0] ==
          std::numeric_limits<double>::lowest());
}

TEST_CASE("bad arguments give clear errors") {
    Context ctx;
    auto vae = tiny_vae(ctx, ReparamVariant::standard);
    const Tensor<double> images = tiny_images(ctx, *vae);
    CHECK_THROWS_WITH_AS(importance_weighted_log_likelihood<double>(ctx, *vae, images.view(), sampling(0)),
                         "importance_weighted_log_likelihood: samples (K) must be >= 1, found 0", Error);
    CHECK_THROWS_WITH_AS(
        importance_weighted_log_likelihood<double>(ctx, *vae, images.view(), ImportanceSamplingOptions{4, 0, -1.0}),
        "importance_weighted_log_likelihood: decoder_variance must be positive and finite, found -1", Error);
    const Tensor<double> wrong(Shape{2, 5});
    CHECK_THROWS_WITH_AS(importance_weighted_log_likelihood<double>(ctx, *vae, wrong.view(), sampling(4)),
                         "importance_weighted_log_likelihood: images should be (n, 4,), found (2, 5)", Error);
    CHECK_THROWS_WITH_AS(gaussian_decoder_variance(VaeLossOptions{}, 0),
                         "gaussian_decoder_variance: values_per_sample must be positive, found 0", Error);
}

TEST_CASE("gaussian_decoder_variance: the post's 2 * 28 * 28 * MSE is a Gaussian decoder of variance 1/4") {
    CHECK(gaussian_decoder_variance(VaeLossOptions{}, 28 * 28) == 0.25);
    CHECK(gaussian_decoder_variance(VaeLossOptions{2.0 * 64 * 64}, 64 * 64) == 0.25);
    CHECK(gaussian_decoder_variance(VaeLossOptions{10.0}, 4) == 0.2);
}
