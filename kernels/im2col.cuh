// im2col / col2im on the GPU for NHWC images and (out_c, kh, kw, in_c) filters: the
// fallback lowering of every convolution to cuBLASLt GEMMs, used for a shape when
// cuDNN offers no usable algorithm (or EWE_CUDA_CONV_GEMM=1). TF padding is exact
// here (pixels outside the image read as zero, pad_before only). Each kernel has its
// launch function (same name, stream first).
// CPU reference: im2col / col2im_add in include/ewe/cpu/im2col.hpp.
#pragma once

#include "ewe/kernels/common.cuh"

namespace ewe::cuda::kernels {

// cols[m, (kh, kw, c)] = x[n, oh * s - pad + kh, ow * s - pad + kw, c], zero outside;
// m = (n * out_h + oh) * out_w + ow.
template <class T>
__global__ void im2col_kernel(ConvGeometry g, const T* __restrict__ x, T* __restrict__ cols) {
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
__global__ void col2im_kernel(ConvGeometry g, const T* __restrict__ cols, T* __restrict__ x) {
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

// cols (batch * out_h * out_w, kh * kw * in_c) from x (batch, in_h, in_w, in_c).
template <class T>
void im2col(cudaStream_t stream, const ConvGeometry& g, const T* x, T* cols) {
    launch_1d("kernels::im2col", stream, g.gemm_m() * g.gemm_k(), im2col_kernel<T>, g, x, cols);
}

// x (batch, in_h, in_w, in_c), overwritten, from cols.
template <class T>
void col2im(cudaStream_t stream, const ConvGeometry& g, const T* cols, T* x) {
    launch_1d("kernels::col2im", stream, g.batch * g.h.in * g.w.in * g.in_c, col2im_kernel<T>, g, cols, x);
}

}  // namespace ewe::cuda::kernels
