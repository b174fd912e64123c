// Batched inference with a trained VAE, on any device, in Phase::eval (no dropout,
// BatchNorm's moving statistics): encode() gives every image's posterior mean and log
// variance (and optionally its reconstruction from the mean), decode() turns latent
// points into images. Inputs and outputs are host arrays; the model's max_batch rows
// go through at a time. latent_grid and latent_draws make the points to decode: a
// regular grid over a 2-D latent plane, or draws around a centre (the prior N(0, I)).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/philox.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/models/vae.hpp"

namespace ewe {

template <class T>
struct VaeEncoding {
    std::vector<T> mean, log_var, reconstruction;  // (n, latent), (n, latent), (n, image...) when asked for
    std::int64_t latent = 0;
    std::int64_t count() const { return latent == 0 ? 0 : std::int64_t(mean.size()) / latent; }
};

// `images` (n, input...) on the host.
template <class T>
VaeEncoding<T> encode(Context& ctx, Vae<T>& vae, std::type_identity_t<TensorView<const T>> images,
                      bool keep_reconstruction = false) {
    EWE_REQUIRE(images.device() == Device::cpu, "encode: images must be on the host");
    EWE_REQUIRE(images.rank() >= 2 && images.shape().features() == vae.image_shape(), "encode: images should be (n, ",
                vae.image_shape().str().substr(1), ", found ", images.shape());
    const std::int64_t n = images.dim(0), d = vae.latent(), b = vae.max_batch(), per = vae.image_shape().numel();
    VaeEncoding<T> out;
    out.latent = d;
    out.mean.resize(std::size_t(n * d));
    out.log_var.resize(std::size_t(n * d));
    if (keep_reconstruction) out.reconstruction.resize(std::size_t(n * per));
    Tensor<T> x(vae.image_shape().with_batch(b), ctx.device());
    for (std::int64_t i = 0; i < n; i += b) {
        const std::int64_t m = std::min(b, n - i);
        const Shape rows = vae.image_shape().with_batch(m);
        copy<T>(images.slice(i * per, rows), x.view().leading(m));
        vae.forward(ctx, x.view().leading(m), Phase::eval);
        copy<T>(vae.mean(m), TensorView<T>(out.mean.data() + i * d, Shape{m, d}));
        copy<T>(vae.log_var(m), TensorView<T>(out.log_var.data() + i * d, Shape{m, d}));
        if (keep_reconstruction) copy<T>(vae.reconstruction(m), TensorView<T>(out.reconstruction.data() + i * per, rows));
    }
    return out;
}

// Decodes latent points `z` (n * latent values, row-major) into images (n * pixels).
template <class T>
std::vector<T> decode(Context& ctx, Vae<T>& vae, const std::vector<T>& z) {
    const std::int64_t d = vae.latent(), b = vae.max_batch(), per = vae.image_shape().numel();
    EWE_REQUIRE(z.size() % std::size_t(d) == 0, "decode: ", z.size(), " values are not whole points of ", d,
                " latent dimensions");
    const std::int64_t n = std::int64_t(z.size()) / d;
    std::vector<T> out(std::size_t(n * per));
    Tensor<T> zin(Shape{b, d}, ctx.device()), y(vae.image_shape().with_batch(b), ctx.device());
    for (std::int64_t i = 0; i < n; i += b) {
        const std::int64_t m = std::min(b, n - i);
        copy<T>(TensorView<const T>(z.data() + i * d, Shape{m, d}), zin.view().leading(m));
        vae.decoder().forward(ctx, zin.view().leading(m), y.view().leading(m), Phase::eval);
        copy<T>(y.view().leading(m), TensorView<T>(out.data() + i * per, vae.image_shape().with_batch(m)));
    }
    return out;
}

// The g x g points of a regular grid over [-range, range]^2 of a 2-D latent space, (x, y)
// interleaved (2 g^2 values) in the order of an image sheet of g columns: x = z[0]
// rising left to right, y = z[1] falling top to bottom (the post's "sheep manifold").
template <class T>
std::vector<T> latent_grid(std::int64_t g, double range) {
    EWE_REQUIRE(g >= 1 && range > 0, "latent_grid: expected g >= 1 and range > 0, got g = ", g, ", range = ", range);
    std::vector<T> z;
    const double t = g == 1 ? 0.0 : 1.0 / double(g - 1);
    for (std::int64_t r = 0; r < g; ++r)
        for (std::int64_t c = 0; c < g; ++c) {
            z.push_back(T(-range + 2 * range * double(c) * t));
            z.push_back(T(range - 2 * range * double(r) * t));
        }
    return z;
}

// n latent points center + sd * N(0, I) (n * center.size() values, row-major), the normal
// draws from Philox keyed {seed, "GEN"} by value index: for a zero centre and sd 1, draws
// from the VAE's prior. The same seed gives the same points on any device.
template <class T>
std::vector<T> latent_draws(std::int64_t n, const std::vector<double>& center, double sd, std::uint64_t seed) {
    const std::int64_t d = std::int64_t(center.size());
    EWE_REQUIRE(n >= 0 && d >= 1 && sd >= 0, "latent_draws: expected n >= 0, a centre and sd >= 0");
    const PhiloxKey key{seed, 0x47454eu, 0};
    std::vector<T> z;
    z.reserve(std::size_t(n * d));
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t k = 0; k < d; ++k)
            z.push_back(T(center[std::size_t(k)] + sd * double(philox_normal(key, std::uint64_t(i * d + k)))));
    return z;
}

}  // namespace ewe
