// Feature taps: one eval-mode pass of a VAE over many images that keeps, besides each
// image's posterior mean, log variance and reconstruction error, summaries of chosen
// encoder layers' activations: the map average-pooled to a small grid (what is drawn
// where), its Gram matrix of channel correlations (stroke texture, Gatys et al. 2015),
// or a layer's values as they are (a dense layer's units), optionally square-rooted.
// It works through the model's layer API (Vae::forward, Sequential::activation), so it
// runs on the CPU and on CUDA alike; summaries are computed on the host in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/models/vae.hpp"

namespace ewe::anomaly {

// Row-major (rows, cols) doubles: one row per sample.
struct FeatureMatrix {
    std::int64_t rows = 0, cols = 0;
    std::vector<double> values;

    FeatureMatrix() = default;
    FeatureMatrix(std::int64_t r, std::int64_t c) : rows(r), cols(c), values(std::size_t(r * c)) {}
    const double* row(std::int64_t i) const { return values.data() + i * cols; }
    double* row(std::int64_t i) { return values.data() + i * cols; }
};

enum class TapSummary {
    pooled,  // the (h, w, c) map averaged over grid x grid cells: (grid, grid, c) values
    gram,    // G_cd = mean over the h w positions of a_c a_d, upper triangle c <= d row by row
    values,  // the layer's output as it is, flattened (any shape: a dense layer's units)
};

// A tap on layer `layer` (index into vae.encoder(); pooled and gram need an (h, w, c) map).
struct FeatureTap {
    std::size_t layer = 0;
    TapSummary summary = TapSummary::pooled;
    std::int64_t grid = 4;  // pooled only; cell a of `grid` spans [floor(a h / grid), ceil((a + 1) h / grid))
                            // (adaptive average pooling, PyTorch's AdaptiveAvgPool2d rule)
    bool square_root = false;  // each summary value v becomes sign(v) sqrt(|v|) ("power normalization"):
                               // fewer, stronger strokes weigh less against many faint ones
};

inline std::string to_string(TapSummary s) {
    return s == TapSummary::pooled ? "pooled" : s == TapSummary::gram ? "gram" : "values";
}

// The summary's length for a layer output of shape `map` (per sample).
inline std::int64_t summary_size(const FeatureTap& tap, const Shape& map) {
    if (tap.summary == TapSummary::values) return map.numel();
    const std::int64_t c = map[2];
    return tap.summary == TapSummary::pooled ? tap.grid * tap.grid * c : c * (c + 1) / 2;
}

// The summary of one (h, w, c) map, channels last, into `out` (summary_size values); a
// values tap reads any output as h = w = 1 and c = its size.
template <class T>
void summarize_map(const FeatureTap& tap, const T* map, std::int64_t h, std::int64_t w, std::int64_t c, double* out) {
    const std::int64_t size = summary_size(tap, Shape{h, w, c});
    if (tap.summary == TapSummary::values) {
        for (std::int64_t k = 0; k < size; ++k) out[k] = double(map[k]);
    } else if (tap.summary == TapSummary::pooled) {
        const std::int64_t g = tap.grid;
        for (std::int64_t a = 0; a < g; ++a) {
            const std::int64_t y0 = a * h / g, y1 = ((a + 1) * h + g - 1) / g;
            for (std::int64_t b = 0; b < g; ++b) {
                const std::int64_t x0 = b * w / g, x1 = ((b + 1) * w + g - 1) / g;
                double* cell = out + (a * g + b) * c;
                std::fill(cell, cell + c, 0.0);
                for (std::int64_t y = y0; y < y1; ++y)
                    for (std::int64_t x = x0; x < x1; ++x)
                        for (std::int64_t k = 0; k < c; ++k) cell[k] += double(map[(y * w + x) * c + k]);
                const double area = double((y1 - y0) * (x1 - x0));
                for (std::int64_t k = 0; k < c; ++k) cell[k] /= area;
            }
        }
    } else {
        std::vector<double> gram(std::size_t(c * c), 0.0);
        for (std::int64_t p = 0; p < h * w; ++p)
            for (std::int64_t i = 0; i < c; ++i) {
                const double ai = double(map[p * c + i]);
                if (ai == 0) continue;
                for (std::int64_t j = i; j < c; ++j) gram[std::size_t(i * c + j)] += ai * double(map[p * c + j]);
            }
        std::int64_t k = 0;
        for (std::int64_t i = 0; i < c; ++i)
            for (std::int64_t j = i; j < c; ++j) out[k++] = gram[std::size_t(i * c + j)] / double(h * w);
    }
    if (tap.square_root)
        for (std::int64_t k = 0; k < size; ++k) out[k] = std::copysign(std::sqrt(std::abs(out[k])), out[k]);
}

// What one pass gives, one row per image.
struct TappedPass {
    std::vector<double> sse;            // reconstruction_sse: decoded from the posterior mean
    std::vector<double> mean, log_var;  // (n, latent)
    std::int64_t latent = 0;
    std::vector<FeatureMatrix> features;  // one per tap, (n, summary_size)
};

// Checks that every tap names an encoder layer whose output the pass can read (not the
// encoder's last layer), an (h, w, c) map for pooled and gram, and a positive grid no
// larger than the map.
template <class T>
void check_taps(Vae<T>& vae, const std::vector<FeatureTap>& taps) {
    const std::size_t layers = vae.encoder().size();
    for (const FeatureTap& t : taps) {
        EWE_REQUIRE(t.layer + 1 < layers, "feature tap: layer ", t.layer, " is not an inner layer of the encoder (",
                    layers, " layers, the last one not tappable)");
        const Shape& map = vae.encoder()[t.layer].output_shape();
        EWE_REQUIRE(map.rank() == 3 || t.summary == TapSummary::values, "feature tap: encoder layer ", t.layer, " (",
                    vae.encoder()[t.layer].label(), ") gives ", map, ", expected an (h, w, c) map");
        if (t.summary == TapSummary::pooled)
            EWE_REQUIRE(t.grid >= 1 && t.grid <= std::min(map[0], map[1]), "feature tap: grid must be in [1, ",
                        std::min(map[0], map[1]), "] for encoder layer ", t.layer, "'s ", map, " map, found ", t.grid);
    }
}

// Every image of host `images` (n, input...) through the VAE in Phase::eval,
// vae.max_batch() at a time, on the context's device.
template <class T>
TappedPass tapped_pass(Context& ctx, Vae<T>& vae, std::type_identity_t<TensorView<const T>> images,
                       const std::vector<FeatureTap>& taps) {
    EWE_REQUIRE(images.device() == Device::cpu, "tapped_pass: images must be on the host");
    EWE_REQUIRE(images.rank() >= 2 && images.shape().features() == vae.image_shape(), "tapped_pass: images should be (n, ",
                vae.image_shape().str().substr(1), ", found ", images.shape());
    check_taps(vae, taps);
    const std::int64_t n = images.dim(0), d = vae.latent(), b = vae.max_batch(), per = vae.image_shape().numel();
    TappedPass out;
    out.latent = d;
    out.sse.resize(std::size_t(n));
    out.mean.resize(std::size_t(n * d));
    out.log_var.resize(std::size_t(n * d));
    for (const FeatureTap& t : taps)
        out.features.emplace_back(n, summary_size(t, vae.encoder()[t.layer].output_shape()));
    Tensor<T> x(vae.image_shape().with_batch(b), ctx.device()), sse(Shape{b}, ctx.device());
    Tensor<T> sse_host(Shape{b}), mean_host(Shape{b, d}), log_var_host(Shape{b, d});
    std::vector<Tensor<T>> maps_host;  // used when the device is not the host
    for (const FeatureTap& t : taps) maps_host.emplace_back(vae.encoder()[t.layer].output_shape().with_batch(b));
    for (std::int64_t i = 0; i < n; i += b) {
        const std::int64_t m = std::min(b, n - i);
        copy<T>(images.slice(i * per, vae.image_shape().with_batch(m)), x.view().leading(m));
        reconstruction_sse<T>(ctx, vae, x.view().leading(m), sse.view().leading(m));  // the one forward pass
        copy<T>(sse.view().leading(m), sse_host.view().leading(m));
        copy<T>(vae.mean(m), mean_host.view().leading(m));
        copy<T>(vae.log_var(m), log_var_host.view().leading(m));
        for (std::int64_t r = 0; r < m; ++r) {
            out.sse[std::size_t(i + r)] = double(sse_host[r]);
            for (std::int64_t k = 0; k < d; ++k) {
                out.mean[std::size_t((i + r) * d + k)] = double(mean_host[r * d + k]);
                out.log_var[std::size_t((i + r) * d + k)] = double(log_var_host[r * d + k]);
            }
        }
        for (std::size_t t = 0; t < taps.size(); ++t) {
            TensorView<const T> map = vae.encoder().activation(taps[t].layer, m);
            if (map.device() != Device::cpu) {
                copy<T>(map, maps_host[t].view().leading(m));
                map = maps_host[t].view().leading(m);
            }
            const Shape& s = map.shape();
            const std::int64_t map_size = map.numel() / m;
            const bool spatial = s.rank() == 4;
            for (std::int64_t r = 0; r < m; ++r)
                summarize_map(taps[t], map.data() + r * map_size, spatial ? s[1] : 1, spatial ? s[2] : 1,
                              spatial ? s[3] : map_size, out.features[t].row(i + r));
        }
    }
    return out;
}

}  // namespace ewe::anomaly
