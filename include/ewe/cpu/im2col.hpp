// im2col / col2im for NHWC images and (out_c, kh, kw, in_c) filters: the CPU
// convolution lowers every conv, conv-transpose and their gradients to GEMMs over
// the patch matrix cols (batch * out_h * out_w, kh * kw * in_c), built a block of
// output pixels at a time so that each block of cols stays in cache. Both run on the
// calling thread: the backend runs them inside its parallel items.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ewe/ops/geometry.hpp"

namespace ewe::cpu {

// Rows [first, last) of cols, where row m = (n * out_h + oh) * out_w + ow holds
// x[n, oh * s - pad + kh, ow * s - pad + kw, c] over (kh, kw, c), zero outside.
template <class T>
void im2col(const ConvGeometry& g, const T* x, std::int64_t first, std::int64_t last, T* cols) {
    const std::int64_t C = g.in_c, KW = g.w.kernel, KH = g.h.kernel, K = g.gemm_k();
    for (std::int64_t m = first; m < last; ++m) {
        const std::int64_t ow = m % g.w.out, oh = m / g.w.out % g.h.out, n = m / (g.w.out * g.h.out);
        const T* image = x + n * g.h.in * g.w.in * C;
        T* out = cols + (m - first) * K;
        const std::int64_t iw0 = ow * g.w.stride - g.w.pad_before;
        const std::int64_t lo = std::clamp<std::int64_t>(-iw0, 0, KW);
        const std::int64_t hi = std::max(lo, std::clamp<std::int64_t>(g.w.in - iw0, 0, KW));
        for (std::int64_t kh = 0; kh < KH; ++kh) {
            const std::int64_t ih = oh * g.h.stride - g.h.pad_before + kh;
            T* dst = out + kh * KW * C;
            if (ih < 0 || ih >= g.h.in) {
                std::fill(dst, dst + KW * C, T(0));
                continue;
            }
            std::fill(dst, dst + lo * C, T(0));
            std::memcpy(dst + lo * C, image + (ih * g.w.in + iw0 + lo) * C, (hi - lo) * C * sizeof(T));
            std::fill(dst + hi * C, dst + KW * C, T(0));
        }
    }
}

// The adjoint of im2col for rows [first, last): adds every cols entry back into the
// pixel it was copied from (x is not cleared). A row's taps kw of one kh that fall
// inside the image are consecutive pixels, as in im2col: one run of additions each.
template <class T>
void col2im_add(const ConvGeometry& g, const T* __restrict cols, std::int64_t first, std::int64_t last,
                T* __restrict x) {
    const std::int64_t C = g.in_c, KW = g.w.kernel, KH = g.h.kernel, K = g.gemm_k();
    for (std::int64_t m = first; m < last; ++m) {
        const std::int64_t ow = m % g.w.out, oh = m / g.w.out % g.h.out, n = m / (g.w.out * g.h.out);
        T* image = x + n * g.h.in * g.w.in * C;
        const T* src = cols + (m - first) * K;
        const std::int64_t iw0 = ow * g.w.stride - g.w.pad_before;
        const std::int64_t lo = std::clamp<std::int64_t>(-iw0, 0, KW);
        const std::int64_t hi = std::max(lo, std::clamp<std::int64_t>(g.w.in - iw0, 0, KW));
        for (std::int64_t kh = 0; kh < KH; ++kh) {
            const std::int64_t ih = oh * g.h.stride - g.h.pad_before + kh;
            if (ih < 0 || ih >= g.h.in) continue;
            T* dst = image + (ih * g.w.in + iw0 + lo) * C;
            const T* s = src + (kh * KW + lo) * C;
            for (std::int64_t i = 0; i < (hi - lo) * C; ++i) dst[i] += s[i];
        }
    }
}

// Rows of cols per block: `elements` / K (ContextOptions::cpu_im2col_elements, 512 KB
// of float by default, so a block stays in L2 between im2col and its product: 2-9% less
// time than 4 MB blocks on the sheep VAE's larger layers at batch 64 in
// bench_cpu_layers), at least one row.
inline std::int64_t im2col_block_rows(const ConvGeometry& g, std::int64_t elements) {
    return std::max<std::int64_t>(1, elements / std::max<std::int64_t>(g.gemm_k(), 1));
}

}  // namespace ewe::cpu
