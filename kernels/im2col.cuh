// im2col / col2im on the GPU for NHWC images and (out_c, kh, kw, in_c) filters: the
// fallback lowering of every convolution to cuBLASLt GEMMs, used for a shape when
// cuDNN offers no usable algorithm (or EWE_CUDA_CONV_GEMM=1). TF padding is exact
// here (pixels outside the image read as zero, pad_before only).
// CPU reference: im2col / col2im_add in include/ewe/cpu/im2col.hpp.
#pragma once

#include "kernels/common.cuh"

namespace ewe::cuda::kernels {

// cols[m, (kh, kw, c)] = x[n, oh * s - pad + kh, ow * s - pad + kw, c], zero outside;
// m = (n * out_h + oh) * out_w + ow.
template <class T>
__global__ void im2col(ConvGeometry g, const T* __restrict__ x, T* __restrict__ cols) {
    const std::int64_t C = g.in_c, KW = g.w.kernel, K = g.h.kernel * KW * C;
    const std::int64_t count = g.batch * g.h.out * g.w.out * K;
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const std::int64_t m = i / K, k = i % K;
        const std::int64_t c = k % C, kw = (k / C) % KW, kh = k / (C * KW);
        const std::int64_t ow = m % g.w.out, oh = (m / g.w.out) % g.h.out, n = m / (g.w.out * g.h.out);
        const std::int64_t ih = oh * g.h.stride - g.h.pad_before + kh;
        const std::int64_t iw = ow * g.w.stride - g.w.pad_before + kw;
        cols[i] = (ih >= 0 && ih < g.h.in && iw >= 0 && iw < g.w.in) ? x[((n * g.h.in + ih) * g.w.in + iw) * C + c]
                                                                     : T(0);
    }
}

// x[n, ih, iw, c] = sum of the cols entries im2col copied from it (its adjoint), one
// thread per pixel in a fixed order: deterministic, no atomics.
template <class T>
__global__ void col2im(ConvGeometry g, const T* __restrict__ cols, T* __restrict__ x) {
    const std::int64_t C = g.in_c, KW = g.w.kernel, KH = g.h.kernel, K = KH * KW * C;
    const std::int64_t count = g.batch * g.h.in * g.w.in * C;
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const std::int64_t c = i % C, iw = (i / C) % g.w.in, ih = (i / (C * g.w.in)) % g.h.in;
        const std::int64_t n = i / (C * g.w.in * g.h.in);
        T acc = T(0);
        for (std::int64_t kh = 0; kh < KH; ++kh) {
            const std::int64_t th = ih + g.h.pad_before - kh;  // = oh * stride
            if (th < 0 || th % g.h.stride != 0) continue;
            const std::int64_t oh = th / g.h.stride;
            if (oh >= g.h.out) continue;
            for (std::int64_t kw = 0; kw < KW; ++kw) {
                const std::int64_t tw = iw + g.w.pad_before - kw;
                if (tw < 0 || tw % g.w.stride != 0) continue;
                const std::int64_t ow = tw / g.w.stride;
                if (ow >= g.w.out) continue;
                acc += cols[((n * g.h.out + oh) * g.w.out + ow) * K + (kh * KW + kw) * C + c];
            }
        }
        x[i] = acc;
    }
}

}  // namespace ewe::cuda::kernels
