// Direct float convolutions on AVX-512 for the narrow layers, where im2col + GEMM
// would copy the whole patch matrix to fill a few vector lanes: each output pixel reads
// its patch straight from the NHWC image, where per filter row the pixels under the
// filter that lie inside the image are one contiguous run of (kw, c) values.
// - One output channel (out_c == 1, as the sheep VAE's last layer, 10 -> 1): forward,
//   input and filter gradients go along each run 16 values at a time (the last vector
//   masked), against the same run of the filter.
// - One input channel and at most 16 output channels (the first layer, 1 -> 10): the
//   forward pass, with the output channels as the vector lanes. (Its filter gradient
//   this way measured no faster in bench_cpu_layers than im2col + GEMM: that pass's
//   time goes to the activation gradient and the bias sums.)
// Each kernel covers a range of output pixels on the calling thread (the backend runs
// them inside its parallel items); the order of every sum depends on the shapes only.
// Compiled where the compiler targets AVX-512F, as ewe/cpu/gemm.hpp; elsewhere the
// backend keeps im2col and Eigen. Checked against a double reference in
// tests/nn/test_conv_kernels.cpp.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ewe/cpu/gemm.hpp"
#include "ewe/ops/geometry.hpp"

namespace ewe::cpu {

#if defined(__AVX512F__)

inline constexpr bool kHasDirectConvKernels = true;

namespace direct_conv_detail {

// The patch of one output pixel as `rows` runs of `length` values: run r is x from
// x + r * x_stride (offsets from the start of the batch) against the filter from
// w + r * w_stride; the filter rows and columns outside the image are left out.
struct PatchRuns {
    std::int64_t x = 0, w = 0, length = 0, rows = 0, x_stride = 0, w_stride = 0;
};

// The output pixels first, first + 1, ... in order, their coordinates stepped rather
// than divided out pixel by pixel. A plain loop (no callback), so that a kernel's sums
// stay in registers however much the compiler inlines.
class PixelWalk {
public:
    PixelWalk(const ConvGeometry& g, std::int64_t first)
        : g_(g), ow_(first % g.w.out), oh_(first / g.w.out % g.h.out), n_(first / (g.w.out * g.h.out)) {}

    PatchRuns runs() const {
        const std::int64_t C = g_.in_c, KW = g_.w.kernel;
        const std::int64_t iw0 = ow_ * g_.w.stride - g_.w.pad_before, ih0 = oh_ * g_.h.stride - g_.h.pad_before;
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
// with no patch copied.
inline void conv_single_input_forward(const ConvGeometry& g, const float* x, const float* wt, const float* bias,
                                      bool relu, std::int64_t first, std::int64_t last, float* y) {
    const std::int64_t C = g.out_c;
    const __mmask16 mask = gemm_detail::lanes(C);
    const __m512 add = bias != nullptr ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps();
    direct_conv_detail::PixelWalk walk(g, first);
    for (std::int64_t m = first; m < last; ++m, walk.next()) {
        const direct_conv_detail::PatchRuns p = walk.runs();
        __m512 even = _mm512_setzero_ps(), odd = _mm512_setzero_ps();  // two chains: even and odd taps of a row
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
        __m512 out = _mm512_add_ps(_mm512_add_ps(even, odd), add);
        if (relu) out = _mm512_max_ps(out, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(y + m * C, mask, out);
    }
}

#else

inline constexpr bool kHasDirectConvKernels = false;

#endif

}  // namespace ewe::cpu
