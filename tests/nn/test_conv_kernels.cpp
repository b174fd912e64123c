// The direct convolutions (ewe/cpu/conv_kernels.hpp) against a double-precision
// reference over odd image sizes, both paddings, strides 1 and 2, and pixel ranges that
// split an image: one output channel (forward, input and filter gradients; input
// channels 1, 3, 10, 17 leave partial vectors) and one input channel (forward; 1 to
// 16 output channels, with runs of 8 pixels summed side by side); the direct filter
// gradient (1 to 80 output channels); the forward passes also with bias and ReLU.
// Skipped, with a message, where the build has no AVX-512 (the backend then uses im2col
// and Eigen).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <vector>

#include "relative_error.hpp"

#include <ewe/cpu/conv_kernels.hpp>

namespace {

using ewe_test::relative_error;

using ewe::ConvAxis;
using ewe::ConvGeometry;
using ewe::Padding;

std::vector<float> pattern(std::int64_t count, int period, float offset) {
    std::vector<float> v(std::size_t(count), 0.0f);
    for (std::int64_t i = 0; i < count; ++i) v[std::size_t(i)] = float((i * 37) % period) / float(period) - offset;
    return v;
}

// Calls visit(m, x_index, w_index) for every (output pixel, filter tap, channel) of g
// whose input pixel lies inside the image: the reference's loop nest.
template <class Visit>
void for_each_tap(const ConvGeometry& g, Visit&& visit) {
    for (std::int64_t n = 0; n < g.batch; ++n)
        for (std::int64_t oh = 0; oh < g.h.out; ++oh)
            for (std::int64_t ow = 0; ow < g.w.out; ++ow)
                for (std::int64_t kh = 0; kh < g.h.kernel; ++kh)
                    for (std::int64_t kw = 0; kw < g.w.kernel; ++kw) {
                        const std::int64_t ih = oh * g.h.stride - g.h.pad_before + kh;
                        const std::int64_t iw = ow * g.w.stride - g.w.pad_before + kw;
                        if (ih < 0 || ih >= g.h.in || iw < 0 || iw >= g.w.in) continue;
                        for (std::int64_t c = 0; c < g.in_c; ++c)
                            visit((n * g.h.out + oh) * g.w.out + ow, ((n * g.h.in + ih) * g.w.in + iw) * g.in_c + c,
                                  (kh * g.w.kernel + kw) * g.in_c + c);
                    }
}

// One geometry of the tests: an image, its channels and a square filter.
struct ConvCase {
    std::int64_t height, width, in_channels, out_channels, kernel, stride;
    Padding padding;

    ConvGeometry geometry(std::int64_t batch) const {
        ConvGeometry g;
        g.batch = batch;
        g.in_c = in_channels;
        g.out_c = out_channels;
        g.h = ConvAxis::forward(height, kernel, stride, padding);
        g.w = ConvAxis::forward(width, kernel, stride, padding);
        return g;
    }
    friend std::ostream& operator<<(std::ostream& out, const ConvCase& t) {
        return out << t.height << "x" << t.width << "x" << t.in_channels << " -> " << t.out_channels << ", kernel "
                   << t.kernel << ", stride " << t.stride << (t.padding == Padding::same ? ", same" : ", valid");
    }
};

}  // namespace

TEST_CASE("direct one-channel convolutions match a double reference") {
    if (!ewe::cpu::kHasDirectConvKernels) {
        MESSAGE("this build has no AVX-512: the CPU backend uses im2col and Eigen, nothing to check here");
        return;
    }
    // One output channel.
    for (const ConvCase& t : {ConvCase{7, 9, 1, 1, 3, 1, Padding::same}, ConvCase{8, 6, 3, 1, 4, 2, Padding::same},
                              ConvCase{11, 5, 10, 1, 4, 2, Padding::same}, ConvCase{9, 10, 17, 1, 3, 1, Padding::valid},
                              ConvCase{6, 7, 10, 1, 4, 1, Padding::same}, ConvCase{10, 9, 2, 1, 5, 2, Padding::valid}}) {
        INFO(t);
        const ConvGeometry g = t.geometry(2);
        const std::int64_t pixels = g.gemm_m(), inputs = g.input_shape().numel(), taps = g.gemm_k();
        const std::vector<float> x = pattern(inputs, 13, 0.45f), w = pattern(taps, 7, 0.5f),
                                 dy = pattern(pixels, 5, 0.4f);
        std::vector<double> y_want(std::size_t(pixels), 0.0), dx_want(std::size_t(inputs), 0.0),
            dw_want(std::size_t(taps), 0.0);
        for_each_tap(g, [&](std::int64_t m, std::int64_t xi, std::int64_t wi) {
            y_want[std::size_t(m)] += double(x[std::size_t(xi)]) * double(w[std::size_t(wi)]);
            dx_want[std::size_t(xi)] += double(dy[std::size_t(m)]) * double(w[std::size_t(wi)]);
            dw_want[std::size_t(wi)] += double(dy[std::size_t(m)]) * double(x[std::size_t(xi)]);
        });
        std::vector<float> y(std::size_t(pixels), 0.0f), dx(std::size_t(inputs), 0.0f), dw(std::size_t(taps), 0.0f);
#if defined(__AVX512F__)
        // Two calls over pixel ranges split inside the first image, as the backend's items.
        const std::int64_t split = g.h.out * g.w.out / 2 + 1;
        for (const auto& [first, last] : {std::pair{std::int64_t(0), split}, std::pair{split, pixels}}) {
            ewe::cpu::conv_one_channel_forward(g, x.data(), w.data(), nullptr, false, first, last, y.data());
            ewe::cpu::conv_one_channel_backward_data(g, dy.data(), w.data(), first, last, dx.data());
            ewe::cpu::conv_one_channel_backward_weights(g, x.data(), dy.data(), first, last, dw.data());
        }
#endif
        CHECK(relative_error(y, y_want) < 1e-5);
        CHECK(relative_error(dx, dx_want) < 1e-5);
        CHECK(relative_error(dw, dw_want) < 1e-5);
        // Bias and ReLU fused into the forward pass.
        const float bias = -0.1f;
        for (double& v : y_want) v = std::max(v + double(bias), 0.0);
#if defined(__AVX512F__)
        ewe::cpu::conv_one_channel_forward(g, x.data(), w.data(), &bias, true, 0, pixels, y.data());
#endif
        CHECK(relative_error(y, y_want) < 1e-5);
    }
}

TEST_CASE("the direct single-input-channel forward convolution matches a double reference") {
    if (!ewe::cpu::kHasDirectConvKernels) {
        MESSAGE("this build has no AVX-512: the CPU backend uses im2col and Eigen, nothing to check here");
        return;
    }
    // The last two have runs of 8 output pixels clipped alike (summed side by side).
    for (const ConvCase& t : {ConvCase{7, 9, 1, 10, 4, 1, Padding::same}, ConvCase{8, 5, 1, 16, 3, 2, Padding::same},
                              ConvCase{9, 11, 1, 1, 5, 1, Padding::valid}, ConvCase{6, 6, 1, 7, 4, 2, Padding::valid},
                              ConvCase{6, 21, 1, 10, 4, 1, Padding::same}, ConvCase{5, 40, 1, 5, 3, 2, Padding::same}}) {
        INFO(t);
        const ConvGeometry g = t.geometry(2);
        const std::int64_t pixels = g.gemm_m(), C = g.out_c, taps = g.gemm_k();
        // wt (taps x C): the filter transposed, as the kernels take it.
        const std::vector<float> x = pattern(g.input_shape().numel(), 13, 0.45f), wt = pattern(taps * C, 7, 0.5f);
        std::vector<double> y_want(std::size_t(pixels * C), 0.0);
        for_each_tap(g, [&](std::int64_t m, std::int64_t xi, std::int64_t ti) {
            for (std::int64_t o = 0; o < C; ++o)
                y_want[std::size_t(m * C + o)] += double(x[std::size_t(xi)]) * double(wt[std::size_t(ti * C + o)]);
        });
        std::vector<float> y(std::size_t(pixels * C), 0.0f);
#if defined(__AVX512F__)
        const std::int64_t split = g.h.out * g.w.out / 2 + 1;
        for (const auto& [first, last] : {std::pair{std::int64_t(0), split}, std::pair{split, pixels}}) {
            ewe::cpu::conv_single_input_forward(g, x.data(), wt.data(), nullptr, false, first, last, y.data());
        }
#endif
        CHECK(relative_error(y, y_want) < 1e-5);
        // Bias and ReLU fused into the forward pass.
        const std::vector<float> bias = pattern(C, 3, 0.5f);
        for (std::int64_t i = 0; i < pixels * C; ++i)
            y_want[std::size_t(i)] = std::max(y_want[std::size_t(i)] + double(bias[std::size_t(i % C)]), 0.0);
#if defined(__AVX512F__)
        ewe::cpu::conv_single_input_forward(g, x.data(), wt.data(), bias.data(), true, 0, pixels, y.data());
#endif
        CHECK(relative_error(y, y_want) < 1e-5);
    }
}

TEST_CASE("the direct filter gradient matches a double reference") {
    if (!ewe::cpu::kHasDirectConvKernels) {
        MESSAGE("this build has no AVX-512: the CPU backend uses im2col and Eigen, nothing to check here");
        return;
    }
    // Output channels 1 to 80 (one to five vectors, partial ones included), input channels
    // that leave partial tiles (and tiles of fewer than 8 vectors, summed in 4 chains:
    // the first and the last two), and channel ranges that split the tiles as the
    // backend's items do.
    for (const ConvCase& t : {ConvCase{7, 9, 3, 80, 3, 1, Padding::same}, ConvCase{8, 6, 10, 20, 4, 2, Padding::same},
                              ConvCase{11, 5, 17, 33, 3, 2, Padding::valid}, ConvCase{6, 7, 40, 64, 3, 1, Padding::same},
                              ConvCase{9, 10, 2, 1, 5, 2, Padding::same}, ConvCase{5, 8, 13, 47, 4, 1, Padding::valid},
                              ConvCase{10, 9, 20, 10, 3, 2, Padding::same}, ConvCase{6, 29, 1, 10, 4, 1, Padding::same}}) {
        INFO(t);
        const ConvGeometry g = t.geometry(3);
        const std::int64_t pixels = g.gemm_m(), O = g.out_c, K = g.gemm_k();
        const std::vector<float> x = pattern(g.input_shape().numel(), 13, 0.45f), d = pattern(pixels * O, 7, 0.3f);  // no case sums to 0
        std::vector<double> dw_want(std::size_t(O * K), 0.0);
        for_each_tap(g, [&](std::int64_t m, std::int64_t xi, std::int64_t wi) {
            for (std::int64_t o = 0; o < O; ++o)
                dw_want[std::size_t(o * K + wi)] += double(d[std::size_t(m * O + o)]) * double(x[std::size_t(xi)]);
        });
        std::vector<float> dwt(std::size_t(K * O), std::nanf(""));  // transposed, as the kernel sums it
#if defined(__AVX512F__)
        // Blocks of images ([0, 1), then [1, 3)) and ranges of one tile of channels, as the
        // backend's items.
        const std::int64_t tile = ewe::cpu::filter_gradient_tile_channels(O);
        for (const auto& [n0, n1] : {std::pair{std::int64_t(0), std::int64_t(1)}, std::pair{std::int64_t(1), g.batch}})
            for (std::int64_t tap = 0; tap < g.h.kernel * g.w.kernel; ++tap)
                for (std::int64_t c0 = 0; c0 < g.in_c; c0 += tile)
                    ewe::cpu::conv_filter_gradient(g, x.data(), d.data(), tap, c0, std::min(g.in_c, c0 + tile), n0,
                                                   n1, dwt.data());
#endif
        std::vector<float> dw(std::size_t(O * K));
        for (std::int64_t k = 0; k < K; ++k)
            for (std::int64_t o = 0; o < O; ++o) dw[std::size_t(o * K + k)] = dwt[std::size_t(k * O + o)];
        CHECK(relative_error(dw, dw_want) < 1e-5);
    }
}
