// The marginal likelihood log p(x) of a trained VAE, estimated by importance sampling
// with the encoder as proposal (the IWAE bound of Burda, Grosse & Salakhutdinov 2016):
//     log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,
//     z_k ~ q(z|x), k = 1..K.
// Its expectation is a lower bound that rises with K to log p(x) (K = 1: the ELBO).
// The generative model is the one VaeLoss trains:
//   p(z) = N(0, I);
//   p(x|z) = N(x_hat(z), variance * I), a Gaussian decoder: VaeLoss's reconstruction term
//     recon_scale * mean_j (x_hat_j - x_j)^2 = SSE / (2 * variance) is -log p(x|z) up to
//     the constant (P / 2) log(2 pi variance) for P values per sample, so
//     variance = P / (2 * recon_scale) (gaussian_decoder_variance); the sheep post's
//     2 * 28 * 28 * MSE = 2 * SSE is variance 1/4. The KL weight and its reduction over
//     latent dimensions are training choices (annealing, the post's mean over
//     dimensions), not part of the model, so the prior here is the full N(0, I);
//   q(z|x) = N(mean, sd^2) per dimension, sd = exp(log_var / 2), or exp(log_var) for
//     ReparamVariant::post: the distribution the model's sampling layer draws from.
// The result is a log density in nats of x in R^P, constants included, so estimates of
// different K, seeds and devices compare directly.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <type_traits>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/philox.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/loss/vae_loss.hpp"
#include "ewe/models/vae.hpp"
#include "ewe/models/vae_inference.hpp"

namespace ewe {

// The variance of the Gaussian decoder that VaeLoss's reconstruction term is the
// negative log-likelihood of (up to a constant), for `values_per_sample` values per sample.
inline double gaussian_decoder_variance(const VaeLossOptions& loss, std::int64_t values_per_sample) {
    EWE_REQUIRE(values_per_sample > 0, "gaussian_decoder_variance: values_per_sample must be positive, found ",
                values_per_sample);
    EWE_REQUIRE(loss.recon_scale > 0, "gaussian_decoder_variance: recon_scale must be positive, found ",
                loss.recon_scale);
    return double(values_per_sample) / (2.0 * loss.recon_scale);
}

struct ImportanceSamplingOptions {
    std::int64_t samples = 64;     // K >= 1 draws from q(z|x) per image
    std::uint64_t seed = 0;        // the Philox seed of the draws
    double decoder_variance = 0.25;  // of p(x|z); gaussian_decoder_variance(loss options, P)
};

// The Philox stream of the importance samples (the model's own sampler uses stream 0 and
// its random layers 1, 2, ...; this key has its own seed, so the value only documents).
inline constexpr std::uint32_t kImportanceSamplingStream = 0x1f5a;

// Estimates of log p(x) (nats) for each image of `images` (n, input...) on the host, in
// Phase::eval. Deterministic for a seed: eps of image i, sample k, latent dimension d is
// Philox normal number (i * K + k) * latent + d of (seed, kImportanceSamplingStream), on
// every device; the decoder runs max_batch (image, sample) pairs at a time.
template <class T>
std::vector<double> importance_weighted_log_likelihood(Context& ctx, Vae<T>& vae,
                                                       std::type_identity_t<TensorView<const T>> images,
                                                       const ImportanceSamplingOptions& options) {
    constexpr const char* who = "importance_weighted_log_likelihood";
    const std::int64_t k_samples = options.samples;
    EWE_REQUIRE(k_samples >= 1, who, ": samples (K) must be >= 1, found ", k_samples);
    EWE_REQUIRE(std::isfinite(options.decoder_variance) && options.decoder_variance > 0, who,
                ": decoder_variance must be positive and finite, found ", options.decoder_variance);
    EWE_REQUIRE(images.device() == Device::cpu, who, ": images must be on the host");
    EWE_REQUIRE(images.rank() >= 2 && images.shape().features() == vae.image_shape(), who, ": images should be (n, ",
                vae.image_shape().str().substr(1), ", found ", images.shape());
    const std::int64_t n = images.dim(0), d = vae.latent(), b = vae.max_batch(), per = vae.image_shape().numel();
    EWE_REQUIRE(double(n) * double(k_samples) * double(d) < 8589934592.0, who, ": n * K * latent = ", n, " * ",
                k_samples, " * ", d, " draws exceed the 2^33 normals of one Philox stream");
    const VaeEncoding<T> enc = encode<T>(ctx, vae, images);
    const bool post = vae.sampling().variant() == ReparamVariant::post;
    const PhiloxKey key{options.seed, kImportanceSamplingStream, 0};
    const double decoder_constant = 0.5 * double(per) * std::log(2.0 * std::numbers::pi * options.decoder_variance);

    // log p(z_k) - log q(z_k|x) of every (image, sample) pair (their (d/2) log(2 pi) cancel),
    // then log p(x|z_k) added.
    std::vector<double> log_weight(std::size_t(n * k_samples));
    std::vector<std::uint8_t> overflowed(static_cast<std::size_t>(b));
    Tensor<T> z_host(Shape{b, d}), x_host(vae.image_shape().with_batch(b)), sse_host(Shape{b});
    Tensor<T> z(Shape{b, d}, ctx.device()), x(vae.image_shape().with_batch(b), ctx.device());
    Tensor<T> x_hat(vae.image_shape().with_batch(b), ctx.device()), sse(Shape{b}, ctx.device());
    const std::int64_t pairs = n * k_samples;
    for (std::int64_t p0 = 0; p0 < pairs; p0 += b) {
        const std::int64_t m = std::min(b, pairs - p0);
        for (std::int64_t r = 0; r < m; ++r) {
            const std::int64_t pair = p0 + r, image = pair / k_samples;
            double log_ratio = 0;
            overflowed[std::size_t(r)] = 0;
            for (std::int64_t j = 0; j < d; ++j) {
                const double mu = double(enc.mean[std::size_t(image * d + j)]);
                const double lv = double(enc.log_var[std::size_t(image * d + j)]);
                const double log_sd = post ? lv : 0.5 * lv;
                const double eps = double(philox_normal(key, std::uint64_t(pair * d + j)));
                const double zd = mu + std::exp(log_sd) * eps;
                const T zj = T(zd);
                // A draw beyond T's range (an encoder far outside its training data: one bear
                // encodes to log_var 460) is not decoded: its log p(x|z) is bounded by the
                // decoder's maximum, -decoder_constant, which is taken, and its log p(z) <
                // -1e76 decides its weight anyway.
                const bool representable = std::isfinite(double(zj));
                overflowed[std::size_t(r)] |= !representable;
                z_host[r * d + j] = representable ? zj : T(0);
                // log p(z) - log q(z|x), q's density taken at the draw itself (eps), which
                // stays finite when sd underflows.
                log_ratio += -0.5 * zd * zd + 0.5 * eps * eps + log_sd;
            }
            log_weight[std::size_t(pair)] = log_ratio;
            std::copy_n(images.data() + image * per, per, x_host.data() + r * per);
        }
        copy<T>(z_host.view().leading(m), z.view().leading(m));
        copy<T>(x_host.view().leading(m), x.view().leading(m));
        vae.decoder().forward(ctx, z.view().leading(m), x_hat.view().leading(m), Phase::eval);
        ops::mse_forward<T>(ctx, double(per), x_hat.view().leading(m), x.view().leading(m), sse.view().leading(m));
        copy<T>(sse.view().leading(m), sse_host.view().leading(m));
        for (std::int64_t r = 0; r < m; ++r)
            log_weight[std::size_t(p0 + r)] +=
                (overflowed[std::size_t(r)] ? 0.0 : -double(sse_host[r]) / (2.0 * options.decoder_variance)) - decoder_constant;
    }
    std::vector<double> out(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        const double* w = log_weight.data() + i * k_samples;
        const double top = *std::max_element(w, w + k_samples);
        if (!std::isfinite(top)) {  // every draw beyond double's range (log_var ~ 1400 or more): p(x) is 0 in double
            out[std::size_t(i)] = std::numeric_limits<double>::lowest();
            continue;
        }
        double sum = 0;
        for (std::int64_t k = 0; k < k_samples; ++k) sum += std::exp(w[k] - top);
        out[std::size_t(i)] = top + std::log(sum) - std::log(double(k_samples));
    }
    return out;
}

}  // namespace ewe
