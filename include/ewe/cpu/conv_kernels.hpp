// Direct float convolutions on AVX-512, where im2col + GEMM would copy the whole patch
// matrix to fill a few vector lanes or to feed one product: each output pixel reads its
// patch straight from the NHWC image, where per filter row the pixels under the filter
// that lie inside the image are one contiguous run of (kw, c) values.
// - One output channel (out_c == 1, as the sheep VAE's last layer, 10 -> 1): forward,
//   input and filter gradients go along each run 16 values at a time (the last vector
//   masked), against the same run of the filter.
// - One input channel and at most 16 output channels (the first layer, 1 -> 10): the
//   forward pass, with the output channels as the vector lanes, 8 pixels side by side.
// - The filter gradient of up to 80 output channels (conv_filter_gradient): an implicit
//   product over the output pixels, tap by tap, with the output channels as the lanes
//   and a tile of input channels in registers over each image (the patch matrix it
//   replaces is kh * kw times the image).
// Each kernel covers a range of output pixels, or of taps, channels and images, on the
// calling thread (the backend runs them inside its parallel items); the order of every
// sum depends on the shapes only. Compiled where the compiler targets AVX-512F, as
// ewe/cpu/gemm.hpp; elsewhere the backend keeps im2col and Eigen. Checked against a
// double reference in tests/nn/test_conv_kernels.cpp.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ewe/cpu/gemm.hpp"
#include "ewe/ops/geometry.hpp"

namespace ewe::cpu {

// The direct filter gradient's shapes (here for every build: the backend plans its items
// with them): at most five vectors of 16 output channels, and per tile as many input
// channels (rows) as the 32 vector registers hold beside the loads and one broadcast, at
// most 8. A range of input channels handed to conv_filter_gradient starts at a multiple
// of filter_gradient_tile_channels.
inline constexpr std::int64_t kFilterGradientMaxOutputs = 80;

constexpr std::int64_t filter_gradient_tile_channels(std::int64_t out_c) {
    const std::int64_t vectors = (out_c + 15) / 16;
    return std::min<std::int64_t>(8, (32 - vectors - 1) / vectors);
}

#if defined(__AVX512F__)

inline constexpr bool kHasDirectConvKernels = true;

namespace direct_conv_detail {

// The patch of one output pixel as `rows` runs of `length` values: run r is x from
// x + r * x_stride (offsets from the start of the batch) against the filter from
// w + r * w_stride; the filter rows and columns outside the image are left out.
struct PatchRuns {
    std::int64_t x = 0, w = 0, length = 0, rows = 0, x_stride = 0, w_stride = 0;

    // Whether `other` leaves out the same filter rows and columns (so its runs are these,
    // moved along x).
    bool clipped_like(const PatchRuns& other) const {
        return w == other.w && length == other.length && rows == other.rows;
    }
};

// The output pixels first, first + 1, ... in order, their coordinates stepped rather
// than divided out pixel by pixel. A plain loop (no callback), so that a kernel's sums
// stay in registers however much the compiler inlines.
class PixelWalk {
public:
    PixelWalk(const ConvGeometry& g, std::int64_t first)
        : g_(g), ow_(first % g.w.out), oh_(first / g.w.out % g.h.out), n_(first / (g.w.out * g.h.out)) {}

    // The runs of the current pixel, or of the one `ahead` columns further along its row
    // (ahead < columns_left()).
    PatchRuns runs(std::int64_t ahead = 0) const {
        const std::int64_t C = g_.in_c, KW = g_.w.kernel;
        const std::int64_t iw0 = (ow_ + ahead) * g_.w.stride - g_.w.pad_before, ih0 = oh_ * g_.h.stride - g_.h.pad_before;
        const std::int64_t lo = std::clamp<std::int64_t>(-iw0, 0, KW);
        const std::int64_t hi = std::max(lo, std::clamp<std::int64_t>(g_.w.in - iw0, 0, KW));
        const std::int64_t kh0 = std::max<std::int64_t>(0, -ih0), kh1 = std::min(g_.h.kernel, g_.h.in - ih0);
        PatchRuns p;
        p.x = (n_ * g_.h.in * g_.w.in + (ih0 + kh0) * g_.w.in + iw0 + lo) * C;
        p.w = (kh0 * KW + lo) * C;
        p.length = (hi - lo) * C;
        p.rows = hi > lo ? std::max<std::int64_t>(0, kh1 - kh0) : 0;
        p.x_stride = g_.w.in * C;
        p.w_stride = KW * C;
        return p;
    }

    // Output pixels from the current one to the end of its row.
    std::int64_t columns_left() const { return g_.w.out - ow_; }

    void next() {
        if (++ow_ < g_.w.out) return;
        ow_ = 0;
        if (++oh_ < g_.h.out) return;
        oh_ = 0;
        ++n_;
    }

private:
    const ConvGeometry& g_;
    std::int64_t ow_, oh_, n_;
};

}  // namespace direct_conv_detail

// y[m] = the sum over the patch of output pixel m of x times the filter w
// (1, kh, kw, in_c), plus bias (if not null), then max(0, .) with relu, for m in
// [first, last).
inline void conv_one_channel_forward(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                                     bool relu, std::int64_t first, std::int64_t last, float* y) {
    using gemm_detail::kLanes;
    using gemm_detail::lanes;
    direct_conv_detail::PixelWalk walk(g, first);
    for (std::int64_t m = first; m < last; ++m, walk.next()) {
        const direct_conv_detail::PatchRuns p = walk.runs();
        __m512 acc = _mm512_setzero_ps();
        for (std::int64_t r = 0; r < p.rows; ++r) {
            const float* xr = x + p.x + r * p.x_stride;
            const float* wr = w + p.w + r * p.w_stride;
            for (std::int64_t i = 0; i < p.length; i += kLanes) {
                const __mmask16 mask = lanes(p.length - i);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, xr + i), _mm512_maskz_loadu_ps(mask, wr + i), acc);
            }
        }
        const float sum = _mm512_reduce_add_ps(acc) + (bias != nullptr ? *bias : 0.0f);
        y[m] = relu ? std::max(sum, 0.0f) : sum;
    }
}

// The input gradient: dx (+)= dy[m] times the filter over the patch of each output pixel
// m in [first, last) (dx is not cleared).
inline void conv_one_channel_backward_data(const ConvGeometry& g, const float* dy, const float* w,
                                           std::int64_t first, std::int64_t last, float* dx) {
    using gemm_detail::kLanes;
    using gemm_detail::lanes;
    direct_conv_detail::PixelWalk walk(g, first);
    for (std::int64_t m = first; m < last; ++m, walk.next()) {
        const direct_conv_detail::PatchRuns p = walk.runs();
        const __m512 d = _mm512_set1_ps(dy[m]);
        for (std::int64_t r = 0; r < p.rows; ++r) {
            float* xr = dx + p.x + r * p.x_stride;
            const float* wr = w + p.w + r * p.w_stride;
            for (std::int64_t i = 0; i < p.length; i += kLanes) {
                const __mmask16 mask = lanes(p.length - i);
                _mm512_mask_storeu_ps(xr + i, mask,
                                      _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(mask, wr + i),
                                                      _mm512_maskz_loadu_ps(mask, xr + i)));
            }
        }
    }
}

// The filter gradient: dw (1, kh, kw, in_c) (+)= dy[m] times the patch of each output
// pixel m in [first, last), in order of m (dw is not cleared).
inline void conv_one_channel_backward_weights(const ConvGeometry& g, const float* x, const float* dy,
                                              std::int64_t first, std::int64_t last, float* dw) {
    using gemm_detail::kLanes;
    using gemm_detail::lanes;
    direct_conv_detail::PixelWalk walk(g, first);
    for (std::int64_t m = first; m < last; ++m, walk.next()) {
        const direct_conv_detail::PatchRuns p = walk.runs();
        const __m512 d = _mm512_set1_ps(dy[m]);
        for (std::int64_t r = 0; r < p.rows; ++r) {
            const float* xr = x + p.x + r * p.x_stride;
            float* wr = dw + p.w + r * p.w_stride;
            for (std::int64_t i = 0; i < p.length; i += kLanes) {
                const __mmask16 mask = lanes(p.length - i);
                _mm512_mask_storeu_ps(wr + i, mask,
                                      _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(mask, xr + i),
                                                      _mm512_maskz_loadu_ps(mask, wr + i)));
            }
        }
    }
}

// A single input channel (in_c == 1, as the sheep VAE's first layer, 1 -> 10) and at
// most 16 output channels: y[m, o] = the sum over the patch's pixels t of x[t] times
// wt[t, o], wt (kh * kw, out_c) being the filter transposed, plus bias[o] (if not null),
// then max(0, .) with relu, for output pixels m in [first, last); the output channels
// are the vector lanes (masked), so each tap is one broadcast and one multiply-add,
// with no patch copied. Runs of kPixelGroup pixels along an output row whose patches
// the image edge clips alike share each load of the filter and sum side by side (a
// pixel's sum alone waits on its multiply-adds' latency); every pixel sums its taps in
// the same two chains (even and odd taps of each filter row) on either path.
inline void conv_single_input_forward(const ConvGeometry& g, const float* x, const float* wt, const float* bias,
                                      bool relu, std::int64_t first, std::int64_t last, float* y) {
    constexpr int kPixelGroup = 8;
    const std::int64_t C = g.out_c, step = g.w.stride;
    const __mmask16 mask = gemm_detail::lanes(C);
    const __m512 add = bias != nullptr ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps();
    const auto store = [&](std::int64_t m, __m512 even, __m512 odd) {
        __m512 out = _mm512_add_ps(_mm512_add_ps(even, odd), add);
        if (relu) out = _mm512_max_ps(out, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(y + m * C, mask, out);
    };
    direct_conv_detail::PixelWalk walk(g, first);
    for (std::int64_t m = first; m < last;) {
        const direct_conv_detail::PatchRuns p = walk.runs();
        if (m + kPixelGroup <= last && walk.columns_left() >= kPixelGroup &&
            walk.runs(kPixelGroup - 1).clipped_like(p)) {
            __m512 even[kPixelGroup], odd[kPixelGroup];
            for (int j = 0; j < kPixelGroup; ++j) even[j] = odd[j] = _mm512_setzero_ps();
            for (std::int64_t r = 0; r < p.rows; ++r) {
                const float* xr = x + p.x + r * p.x_stride;
                const float* wr = wt + (p.w + r * p.w_stride) * C;
                std::int64_t i = 0;
                for (; i + 1 < p.length; i += 2) {
                    const __m512 we = _mm512_maskz_loadu_ps(mask, wr + i * C), wo = _mm512_maskz_loadu_ps(mask, wr + (i + 1) * C);
EWE_GEMM_UNROLL(GCC unroll 8)
                    for (int j = 0; j < kPixelGroup; ++j) {
                        even[j] = _mm512_fmadd_ps(_mm512_set1_ps(xr[j * step + i]), we, even[j]);
                        odd[j] = _mm512_fmadd_ps(_mm512_set1_ps(xr[j * step + i + 1]), wo, odd[j]);
                    }
                }
                if (i < p.length) {
                    const __m512 we = _mm512_maskz_loadu_ps(mask, wr + i * C);
EWE_GEMM_UNROLL(GCC unroll 8)
                    for (int j = 0; j < kPixelGroup; ++j)
                        even[j] = _mm512_fmadd_ps(_mm512_set1_ps(xr[j * step + i]), we, even[j]);
                }
            }
            for (int j = 0; j < kPixelGroup; ++j, ++m, walk.next()) store(m, even[j], odd[j]);
            continue;
        }
        __m512 even = _mm512_setzero_ps(), odd = _mm512_setzero_ps();
        for (std::int64_t r = 0; r < p.rows; ++r) {
            const float* xr = x + p.x + r * p.x_stride;
            const float* wr = wt + (p.w + r * p.w_stride) * C;
            std::int64_t i = 0;
            for (; i + 1 < p.length; i += 2) {
                even = _mm512_fmadd_ps(_mm512_set1_ps(xr[i]), _mm512_maskz_loadu_ps(mask, wr + i * C), even);
                odd = _mm512_fmadd_ps(_mm512_set1_ps(xr[i + 1]), _mm512_maskz_loadu_ps(mask, wr + (i + 1) * C), odd);
            }
            if (i < p.length) even = _mm512_fmadd_ps(_mm512_set1_ps(xr[i]), _mm512_maskz_loadu_ps(mask, wr + i * C), even);
        }
        store(m, even, odd);
        ++m;
        walk.next();
    }
}

namespace direct_conv_detail {

// The output columns [first, last) of the pixels whose tap at filter column kw falls
// inside the image along the width.
struct TapColumns {
    std::int64_t first = 0, last = 0;
};

inline TapColumns tap_columns(const ConvAxis& w, std::int64_t kw) {
    // iw = ow * stride - pad_before + kw must lie in [0, in).
    const std::int64_t low = w.pad_before - kw, high = w.in - 1 + w.pad_before - kw;
    TapColumns c;
    c.first = low <= 0 ? 0 : (low + w.stride - 1) / w.stride;
    c.last = high < 0 ? 0 : std::min(w.out, high / w.stride + 1);
    c.last = std::max(c.first, c.last);
    return c;
}

// The Rows x (Vectors * 16, the last vector masked to out_c) tile of dwt, the filter
// gradient of tap (kh, kw) transposed: dwt[r][o] (+)= img[patch pixel of m at the tap,
// c0 + r] * a[m][o] over the output pixels m of image n, in order; rows out_c apart. A
// tile of fewer than 8 vectors (one input channel: the first layer) would wait on the
// latency of its multiply-adds, so it sums kChains pixels side by side (pixel i of a
// row's run into chain i % kChains), adding the chains at the end of the image.
template <int Rows, int Vectors>
void filter_gradient_tile(const ConvGeometry& g, const float* img, const float* a, std::int64_t kh,
                          const TapColumns& columns, std::int64_t kw, std::int64_t c0, std::int64_t n, bool load,
                          float* dwt) {
    using gemm_detail::kLanes;
    constexpr int kChains = Rows * Vectors < 8 ? 4 : 1;
    const std::int64_t O = g.out_c, C = g.in_c, step = g.w.stride * C;
    const std::int64_t first = columns.first, last = columns.last;
    __mmask16 mask[Vectors];
    for (int v = 0; v < Vectors; ++v) mask[v] = gemm_detail::lanes(O - v * kLanes);
    __m512 acc[kChains][Rows][Vectors];
    for (int k = 0; k < kChains; ++k)
EWE_GEMM_UNROLL(GCC unroll 8)
        for (int r = 0; r < Rows; ++r)
EWE_GEMM_UNROLL(GCC unroll 5)
            for (int v = 0; v < Vectors; ++v)
                acc[k][r][v] = load && k == 0 ? _mm512_maskz_loadu_ps(mask[v], dwt + r * O + v * kLanes)
                                              : _mm512_setzero_ps();
    // acc[k] (+)= the product at output column ow, from ar (a) and xr (img).
    const auto add_pixel = [&](__m512 (&sums)[Rows][Vectors], const float* ar, const float* xr) {
        __m512 bv[Vectors];
EWE_GEMM_UNROLL(GCC unroll 5)
        for (int v = 0; v < Vectors; ++v) bv[v] = _mm512_maskz_loadu_ps(mask[v], ar + v * kLanes);
EWE_GEMM_UNROLL(GCC unroll 8)
        for (int r = 0; r < Rows; ++r) {
            const __m512 xv = _mm512_set1_ps(xr[r]);
EWE_GEMM_UNROLL(GCC unroll 5)
            for (int v = 0; v < Vectors; ++v) sums[r][v] = _mm512_fmadd_ps(xv, bv[v], sums[r][v]);
        }
    };
    for (std::int64_t oh = 0; oh < g.h.out; ++oh) {
        const std::int64_t ih = oh * g.h.stride - g.h.pad_before + kh;
        if (ih < 0 || ih >= g.h.in) continue;
        const float* ar = a + ((n * g.h.out + oh) * g.w.out + first) * O;
        const float* xr = img + ((n * g.h.in + ih) * g.w.in + first * g.w.stride - g.w.pad_before + kw) * C + c0;
        std::int64_t ow = first;
        for (; ow + kChains <= last; ow += kChains, ar += kChains * O, xr += kChains * step)
EWE_GEMM_UNROLL(GCC unroll 4)
            for (int k = 0; k < kChains; ++k) add_pixel(acc[k], ar + k * O, xr + k * step);
        for (int k = 0; ow < last; ++k, ++ow, ar += O, xr += step) add_pixel(acc[k], ar, xr);
    }
    for (int k = 1; k < kChains; ++k)
        for (int r = 0; r < Rows; ++r)
            for (int v = 0; v < Vectors; ++v) acc[0][r][v] = _mm512_add_ps(acc[0][r][v], acc[k][r][v]);
EWE_GEMM_UNROLL(GCC unroll 8)
    for (int r = 0; r < Rows; ++r)
EWE_GEMM_UNROLL(GCC unroll 5)
        for (int v = 0; v < Vectors; ++v) _mm512_mask_storeu_ps(dwt + r * O + v * kLanes, mask[v], acc[0][r][v]);
}

// filter_gradient_tile<Rows, Vectors> for a runtime row count (1..Rows).
template <int Vectors, int Rows = int(filter_gradient_tile_channels(Vectors * 16))>
void filter_gradient_rows(int rows, const ConvGeometry& g, const float* img, const float* a, std::int64_t kh,
                          const TapColumns& columns, std::int64_t kw, std::int64_t c0, std::int64_t n, bool load,
                          float* dwt) {
    if constexpr (Rows > 0) {
        if (rows == Rows) return filter_gradient_tile<Rows, Vectors>(g, img, a, kh, columns, kw, c0, n, load, dwt);
        return filter_gradient_rows<Vectors, Rows - 1>(rows, g, img, a, kh, columns, kw, c0, n, load, dwt);
    }
}

template <int Vectors>
void filter_gradient_channels(const ConvGeometry& g, const float* img, const float* a, std::int64_t tap,
                              std::int64_t c0, std::int64_t c1, std::int64_t n0, std::int64_t n1, float* dwt) {
    constexpr int kRows = int(filter_gradient_tile_channels(Vectors * 16));
    const std::int64_t kh = tap / g.w.kernel, kw = tap % g.w.kernel;
    const TapColumns columns = tap_columns(g.w, kw);
    for (std::int64_t n = n0; n < n1; ++n)
        for (std::int64_t c = c0; c < c1; c += kRows)
            filter_gradient_rows<Vectors>(int(std::min<std::int64_t>(kRows, c1 - c)), g, img, a, kh, columns, kw, c,
                                          n, n > 0, dwt + (tap * g.in_c + c) * g.out_c);
}

}  // namespace direct_conv_detail

// The filter gradient without a patch matrix (an implicit product over the output
// pixels), transposed: dwt[(kh, kw, c), o] = the sum over the output pixels m of the
// batch, in order, of a[m, o] times img[the pixel under tap (kh, kw) of m, c]. img is
// the convolution's input (NHWC, in_c channels), a its output-side matrix (batch *
// out_h * out_w rows of out_c, at most kFilterGradientMaxOutputs): for a convolution
// the output gradient, for a transposed one its input. One call adds the images
// [n0, n1) (the first image, n0 == 0, sets the sum) for one tap `tap` = kh * kw_size +
// kw and the input channels [c0, c1) to dwt's rows of them (out_c columns). The output
// channels are the vector lanes; each tile of input channels x out_c stays in
// registers over an image.
inline void conv_filter_gradient(const ConvGeometry& g, const float* img, const float* a, std::int64_t tap,
                                 std::int64_t c0, std::int64_t c1, std::int64_t n0, std::int64_t n1, float* dwt) {
    using namespace direct_conv_detail;
    switch ((g.out_c + gemm_detail::kLanes - 1) / gemm_detail::kLanes) {
        case 1: return filter_gradient_channels<1>(g, img, a, tap, c0, c1, n0, n1, dwt);
        case 2: return filter_gradient_channels<2>(g, img, a, tap, c0, c1, n0, n1, dwt);
        case 3: return filter_gradient_channels<3>(g, img, a, tap, c0, c1, n0, n1, dwt);
        case 4: return filter_gradient_channels<4>(g, img, a, tap, c0, c1, n0, n1, dwt);
        default: return filter_gradient_channels<5>(g, img, a, tap, c0, c1, n0, n1, dwt);
    }
}

#else

inline constexpr bool kHasDirectConvKernels = false;

#endif

}  // namespace ewe::cpu
