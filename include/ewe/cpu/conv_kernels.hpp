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

// Calls run(m, x_offset, w_offset, length) for each output pixel m in [first, last)
// and each of its filter rows that lies inside the image: `length` values of x at
// x_offset (from the start of the batch) meet the filter's values at w_offset; then
// finish(m). The pixel's coordinates are stepped, not divided out, pixel by pixel.
template <class Run, class Finish>
void patch_runs(const ConvGeometry& g, std::int64_t first, std::int64_t last, Run&& run, Finish&& finish) {
    const std::int64_t C = g.in_c, KW = g.w.kernel, image_size = g.h.in * g.w.in * C;
    std::int64_t ow = first % g.w.out, oh = first / g.w.out % g.h.out, n = first / (g.w.out * g.h.out);
    for (std::int64_t m = first; m < last; ++m) {
        const std::int64_t iw0 = ow * g.w.stride - g.w.pad_before;
        const std::int64_t lo = std::clamp<std::int64_t>(-iw0, 0, KW);
        const std::int64_t hi = std::max(lo, std::clamp<std::int64_t>(g.w.in - iw0, 0, KW));
        const std::int64_t ih0 = oh * g.h.stride - g.h.pad_before;
        const std::int64_t kh0 = std::max<std::int64_t>(0, -ih0), kh1 = std::min(g.h.kernel, g.h.in - ih0);
        for (std::int64_t kh = kh0; kh < kh1 && hi > lo; ++kh)
            run(m, n * image_size + ((ih0 + kh) * g.w.in + iw0 + lo) * C, (kh * KW + lo) * C, (hi - lo) * C);
        finish(m);
        if (++ow == g.w.out) {
            ow = 0;
            if (++oh == g.h.out) {
                oh = 0;
                ++n;
            }
        }
    }
}

}  // namespace direct_conv_detail

// y[m] = the sum over the patch of output pixel m of x times the filter w
// (1, kh, kw, in_c), for m in [first, last); no bias, no activation.
inline void conv_one_channel_forward(const ConvGeometry& g, const float* x, const float* w, std::int64_t first,
                                     std::int64_t last, float* y) {
    using gemm_detail::kLanes;
    using gemm_detail::lanes;
    __m512 acc = _mm512_setzero_ps();
    direct_conv_detail::patch_runs(
        g, first, last,
        [&](std::int64_t, std::int64_t xo, std::int64_t wo, std::int64_t length) {
            for (std::int64_t i = 0; i < length; i += kLanes) {
                const __mmask16 mask = lanes(length - i);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + xo + i), _mm512_maskz_loadu_ps(mask, w + wo + i),
                                      acc);
            }
        },
        [&](std::int64_t m) {
            y[m] = _mm512_reduce_add_ps(acc);
            acc = _mm512_setzero_ps();
        });
}

// The input gradient: dx (+)= dy[m] times the filter over the patch of each output pixel
// m in [first, last) (dx is not cleared).
inline void conv_one_channel_backward_data(const ConvGeometry& g, const float* dy, const float* w,
                                           std::int64_t first, std::int64_t last, float* dx) {
    using gemm_detail::kLanes;
    using gemm_detail::lanes;
    direct_conv_detail::patch_runs(
        g, first, last,
        [&](std::int64_t m, std::int64_t xo, std::int64_t wo, std::int64_t length) {
            const __m512 d = _mm512_set1_ps(dy[m]);
            for (std::int64_t i = 0; i < length; i += kLanes) {
                const __mmask16 mask = lanes(length - i);
                const __m512 sum = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(mask, w + wo + i),
                                                   _mm512_maskz_loadu_ps(mask, dx + xo + i));
                _mm512_mask_storeu_ps(dx + xo + i, mask, sum);
            }
        },
        [](std::int64_t) {});
}

// The filter gradient: dw (1, kh, kw, in_c) (+)= dy[m] times the patch of each output
// pixel m in [first, last), in order of m (dw is not cleared).
inline void conv_one_channel_backward_weights(const ConvGeometry& g, const float* x, const float* dy,
                                              std::int64_t first, std::int64_t last, float* dw) {
    using gemm_detail::kLanes;
    using gemm_detail::lanes;
    direct_conv_detail::patch_runs(
        g, first, last,
        [&](std::int64_t m, std::int64_t xo, std::int64_t wo, std::int64_t length) {
            const __m512 d = _mm512_set1_ps(dy[m]);
            for (std::int64_t i = 0; i < length; i += kLanes) {
                const __mmask16 mask = lanes(length - i);
                const __m512 sum = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(mask, x + xo + i),
                                                   _mm512_maskz_loadu_ps(mask, dw + wo + i));
                _mm512_mask_storeu_ps(dw + wo + i, mask, sum);
            }
        },
        [](std::int64_t) {});
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
    __m512 acc = _mm512_setzero_ps();
    direct_conv_detail::patch_runs(
        g, first, last,
        [&](std::int64_t, std::int64_t xo, std::int64_t wo, std::int64_t length) {
            for (std::int64_t i = 0; i < length; ++i)
                acc = _mm512_fmadd_ps(_mm512_set1_ps(x[xo + i]), _mm512_maskz_loadu_ps(mask, wt + (wo + i) * C), acc);
        },
        [&](std::int64_t m) {
            _mm512_mask_storeu_ps(y + m * C, mask, acc);
            acc = _mm512_setzero_ps();
        });
}

// Its filter gradient, transposed: dwt (kh * kw, out_c) (+)= x[t] times dy[m, 0..out_c)
// for every pixel t of the patch of each output pixel m in [first, last), in order of m
// (dwt is not cleared). `sums` (kh * kw * 16 values) holds the sums meanwhile, one whole
// vector per tap (a masked store followed by a masked load of the same address stalls).
inline void conv_single_input_backward_weights(const ConvGeometry& g, const float* x, const float* dy,
                                               std::int64_t first, std::int64_t last, float* dwt, float* sums) {
    using gemm_detail::kLanes;
    const std::int64_t C = g.out_c, taps = g.h.kernel * g.w.kernel;
    const __mmask16 mask = gemm_detail::lanes(C);
    for (std::int64_t t = 0; t < taps; ++t) _mm512_storeu_ps(sums + t * kLanes, _mm512_maskz_loadu_ps(mask, dwt + t * C));
    direct_conv_detail::patch_runs(
        g, first, last,
        [&](std::int64_t m, std::int64_t xo, std::int64_t wo, std::int64_t length) {
            const __m512 d = _mm512_maskz_loadu_ps(mask, dy + m * C);
            for (std::int64_t i = 0; i < length; ++i) {
                float* at = sums + (wo + i) * kLanes;
                _mm512_storeu_ps(at, _mm512_fmadd_ps(_mm512_set1_ps(x[xo + i]), d, _mm512_loadu_ps(at)));
            }
        },
        [](std::int64_t) {});
    for (std::int64_t t = 0; t < taps; ++t) _mm512_mask_storeu_ps(dwt + t * C, mask, _mm512_loadu_ps(sums + t * kLanes));
}

#else

inline constexpr bool kHasDirectConvKernels = false;

#endif

}  // namespace ewe::cpu
