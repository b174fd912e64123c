// Direct float convolutions on AVX-512 for the narrow layers, where im2col + GEMM
// would copy the whole patch matrix to fill a few vector lanes: each output pixel reads
// its patch straight from the NHWC image, where per filter row the pixels under the
// filter that lie inside the image are one contiguous run of (kw, c) values.
// - One output channel (out_c == 1, as the sheep VAE's last layer, 10 -> 1): forward,
//   input and filter gradients go along each run 16 values at a time (the last vector
//   masked), against the same run of the filter.
// - One input channel and at most 16 output channels (the first layer, 1 -> 10):
//   forward and filter gradient with the output channels as the vector lanes.
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

// Calls run(x_offset, w_offset, length) for each filter row of output pixel m that lies
// inside the image: `length` values of x at x_offset (from the start of the batch) meet
// the filter's values at w_offset.
template <class Run>
void patch_runs(const ConvGeometry& g, std::int64_t m, Run&& run) {
    const std::int64_t C = g.in_c, KW = g.w.kernel;
    const std::int64_t ow = m % g.w.out, oh = m / g.w.out % g.h.out, n = m / (g.w.out * g.h.out);
    const std::int64_t iw0 = ow * g.w.stride - g.w.pad_before;
    const std::int64_t lo = std::clamp<std::int64_t>(-iw0, 0, KW);
    const std::int64_t hi = std::max(lo, std::clamp<std::int64_t>(g.w.in - iw0, 0, KW));
    if (hi == lo) return;
    const std::int64_t image = n * g.h.in * g.w.in * C;
    for (std::int64_t kh = 0; kh < g.h.kernel; ++kh) {
        const std::int64_t ih = oh * g.h.stride - g.h.pad_before + kh;
        if (ih < 0 || ih >= g.h.in) continue;
        run(image + (ih * g.w.in + iw0 + lo) * C, (kh * KW + lo) * C, (hi - lo) * C);
    }
}

// The sum of the 16 lanes of v, pairwise in a fixed order (GCC 12 warns on the
// shuffles of _mm512_reduce_add_ps at -O2).
inline float lane_sum(__m512 v) {
    alignas(64) float lane[16];
    _mm512_store_ps(lane, v);
    for (int width = 8; width > 0; width /= 2)
        for (int i = 0; i < width; ++i) lane[i] += lane[i + width];
    return lane[0];
}

}  // namespace direct_conv_detail

// y[m] = the sum over the patch of output pixel m of x times the filter w
// (1, kh, kw, in_c), for m in [first, last); no bias, no activation.
inline void conv_one_channel_forward(const ConvGeometry& g, const float* x, const float* w, std::int64_t first,
                                     std::int64_t last, float* y) {
    using gemm_detail::kLanes;
    using gemm_detail::lanes;
    for (std::int64_t m = first; m < last; ++m) {
        __m512 acc = _mm512_setzero_ps();
        direct_conv_detail::patch_runs(g, m, [&](std::int64_t xo, std::int64_t wo, std::int64_t length) {
            for (std::int64_t i = 0; i < length; i += kLanes) {
                const __mmask16 mask = lanes(length - i);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + xo + i), _mm512_maskz_loadu_ps(mask, w + wo + i),
                                      acc);
            }
        });
        y[m] = direct_conv_detail::lane_sum(acc);
    }
}

// The input gradient: dx (+)= dy[m] times the filter over the patch of each output pixel
// m in [first, last) (dx is not cleared).
inline void conv_one_channel_backward_data(const ConvGeometry& g, const float* dy, const float* w,
                                           std::int64_t first, std::int64_t last, float* dx) {
    using gemm_detail::kLanes;
    using gemm_detail::lanes;
    for (std::int64_t m = first; m < last; ++m) {
        const __m512 d = _mm512_set1_ps(dy[m]);
        direct_conv_detail::patch_runs(g, m, [&](std::int64_t xo, std::int64_t wo, std::int64_t length) {
            for (std::int64_t i = 0; i < length; i += kLanes) {
                const __mmask16 mask = lanes(length - i);
                const __m512 sum = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(mask, w + wo + i),
                                                   _mm512_maskz_loadu_ps(mask, dx + xo + i));
                _mm512_mask_storeu_ps(dx + xo + i, mask, sum);
            }
        });
    }
}

// The filter gradient: dw (1, kh, kw, in_c) (+)= dy[m] times the patch of each output
// pixel m in [first, last), in order of m (dw is not cleared).
inline void conv_one_channel_backward_weights(const ConvGeometry& g, const float* x, const float* dy,
                                              std::int64_t first, std::int64_t last, float* dw) {
    using gemm_detail::kLanes;
    using gemm_detail::lanes;
    for (std::int64_t m = first; m < last; ++m) {
        const __m512 d = _mm512_set1_ps(dy[m]);
        direct_conv_detail::patch_runs(g, m, [&](std::int64_t xo, std::int64_t wo, std::int64_t length) {
            for (std::int64_t i = 0; i < length; i += kLanes) {
                const __mmask16 mask = lanes(length - i);
                const __m512 sum = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(mask, x + xo + i),
                                                   _mm512_maskz_loadu_ps(mask, dw + wo + i));
                _mm512_mask_storeu_ps(dw + wo + i, mask, sum);
            }
        });
    }
}

// A single input channel (in_c == 1, as the sheep VAE's first layer, 1 -> 10) and at
// most 16 output channels: y[m, o] = the sum over the patch's pixels t of x[t] times
// wt[t, o], wt (kh * kw, out_c) being the filter transposed, for output pixels m in
// [first, last); the output channels are the vector lanes (masked), so each tap is one
// broadcast and one multiply-add, with no patch copied. No bias, no activation.
inline void conv_single_input_forward(const ConvGeometry& g, const float* x, const float* wt, std::int64_t first,
                                      std::int64_t last, float* y) {
    const std::int64_t C = g.out_c;
    const __mmask16 mask = gemm_detail::lanes(C);
    for (std::int64_t m = first; m < last; ++m) {
        __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};  // alternate filter rows: two chains
        int row = 0;
        direct_conv_detail::patch_runs(g, m, [&](std::int64_t xo, std::int64_t wo, std::int64_t length) {
            __m512& sum = acc[row++ & 1];
            for (std::int64_t i = 0; i < length; ++i)
                sum = _mm512_fmadd_ps(_mm512_set1_ps(x[xo + i]), _mm512_maskz_loadu_ps(mask, wt + (wo + i) * C), sum);
        });
        _mm512_mask_storeu_ps(y + m * C, mask, _mm512_add_ps(acc[0], acc[1]));
    }
}

// Its filter gradient, transposed: dwt (kh * kw, out_c) (+)= x[t] times dy[m, 0..out_c)
// for every pixel t of the patch of each output pixel m in [first, last), in order of m
// (dwt is not cleared).
inline void conv_single_input_backward_weights(const ConvGeometry& g, const float* x, const float* dy,
                                               std::int64_t first, std::int64_t last, float* dwt) {
    const std::int64_t C = g.out_c;
    const __mmask16 mask = gemm_detail::lanes(C);
    for (std::int64_t m = first; m < last; ++m) {
        const __m512 d = _mm512_maskz_loadu_ps(mask, dy + m * C);
        direct_conv_detail::patch_runs(g, m, [&](std::int64_t xo, std::int64_t wo, std::int64_t length) {
            for (std::int64_t i = 0; i < length; ++i) {
                float* at = dwt + (wo + i) * C;
                _mm512_mask_storeu_ps(at, mask,
                                      _mm512_fmadd_ps(_mm512_set1_ps(x[xo + i]), d, _mm512_maskz_loadu_ps(mask, at)));
            }
        });
    }
}

#else

inline constexpr bool kHasDirectConvKernels = false;

#endif

}  // namespace ewe::cpu
