// im2col / col2im for NHWC images and (out_c, kh, kw, in_c) filters: the CPU
// convolution lowers every conv, conv-transpose and their gradients to one GEMM
// over the patch matrix cols (batch * out_h * out_w, kh * kw * in_c).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ewe/ops/geometry.hpp"

namespace ewe::cpu {

// cols[m, (kh, kw, c)] = x[n, oh * s - pad + kh, ow * s - pad + kw, c], zero outside.
template <class T>
void im2col(const ConvGeometry& g, const T* x, T* cols) {
    const std::int64_t C = g.in_c, KW = g.w.kernel, KH = g.h.kernel, K = g.gemm_k();
    const std::int64_t rows = g.batch * g.h.out;
#pragma omp parallel for schedule(static) if (rows * g.w.out * K > 32768)
    for (std::int64_t row = 0; row < rows; ++row) {
        const std::int64_t n = row / g.h.out, oh = row % g.h.out;
        const T* image = x + n * g.h.in * g.w.in * C;
        for (std::int64_t ow = 0; ow < g.w.out; ++ow) {
            T* out = cols + (row * g.w.out + ow) * K;
            for (std::int64_t kh = 0; kh < KH; ++kh) {
                const std::int64_t ih = oh * g.h.stride - g.h.pad_before + kh;
                T* dst = out + kh * KW * C;
                if (ih < 0 || ih >= g.h.in) {
                    std::fill(dst, dst + KW * C, T(0));
                    continue;
                }
                const std::int64_t iw0 = ow * g.w.stride - g.w.pad_before;
                const std::int64_t lo = std::clamp<std::int64_t>(-iw0, 0, KW);
                const std::int64_t hi = std::clamp<std::int64_t>(g.w.in - iw0, 0, KW);
                std::fill(dst, dst + lo * C, T(0));
                if (hi > lo) std::memcpy(dst + lo * C, image + (ih * g.w.in + iw0 + lo) * C, (hi - lo) * C * sizeof(T));
                std::fill(dst + std::max(hi, lo) * C, dst + KW * C, T(0));
            }
        }
    }
}

// x[n, ih, iw, c] = sum of the cols entries that im2col copied from it (the adjoint
// of im2col). Each image is gathered by one thread, so no two threads write together.
template <class T>
void col2im(const ConvGeometry& g, const T* cols, T* x) {
    const std::int64_t C = g.in_c, KW = g.w.kernel, KH = g.h.kernel, K = g.gemm_k();
    const std::int64_t image_size = g.h.in * g.w.in * C;
#pragma omp parallel for schedule(static) if (g.batch * image_size * KH * KW > 32768)
    for (std::int64_t n = 0; n < g.batch; ++n) {
        T* image = x + n * image_size;
        std::fill(image, image + image_size, T(0));
        for (std::int64_t oh = 0; oh < g.h.out; ++oh) {
            for (std::int64_t ow = 0; ow < g.w.out; ++ow) {
                const T* src = cols + ((n * g.h.out + oh) * g.w.out + ow) * K;
                for (std::int64_t kh = 0; kh < KH; ++kh) {
                    const std::int64_t ih = oh * g.h.stride - g.h.pad_before + kh;
                    if (ih < 0 || ih >= g.h.in) continue;
                    for (std::int64_t kw = 0; kw < KW; ++kw) {
                        const std::int64_t iw = ow * g.w.stride - g.w.pad_before + kw;
                        if (iw < 0 || iw >= g.w.in) continue;
                        T* dst = image + (ih * g.w.in + iw) * C;
                        const T* s = src + (kh * KW + kw) * C;
                        for (std::int64_t c = 0; c < C; ++c) dst[c] += s[c];
                    }
                }
            }
        }
    }
}

}  // namespace ewe::cpu
