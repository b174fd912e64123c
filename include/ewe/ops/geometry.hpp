// Convolution geometry (NHWC) and the padding rules of TensorFlow/Keras:
// `valid` adds no padding; `same` gives ceil(in / stride) outputs and pads
// max((out - 1) * stride + kernel - in, 0) in total, the odd pixel at the end
// (bottom/right), so even kernels pad one more after than before.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"

namespace ewe {

enum class Padding { valid, same };

inline const char* to_string(Padding p) { return p == Padding::same ? "same" : "valid"; }

enum class Activation { none, relu, sigmoid };

inline const char* to_string(Activation a) {
    switch (a) {
        case Activation::relu: return "relu";
        case Activation::sigmoid: return "sigmoid";
        default: return "linear";
    }
}

// One spatial axis of a convolution: output size and padding before the first pixel.
struct ConvAxis {
    std::int64_t in = 0, out = 0, kernel = 0, stride = 1, pad_before = 0, pad_after = 0;

    static ConvAxis forward(std::int64_t in, std::int64_t kernel, std::int64_t stride, Padding padding) {
        ConvAxis a{in, 0, kernel, stride, 0, 0};
        if (padding == Padding::same) {
            a.out = (in + stride - 1) / stride;
            const std::int64_t total = std::max<std::int64_t>((a.out - 1) * stride + kernel - in, 0);
            a.pad_before = total / 2;
            a.pad_after = total - a.pad_before;
        } else {
            a.out = in >= kernel ? (in - kernel) / stride + 1 : 0;
        }
        return a;
    }
    // The axis of the convolution whose input gradient a transposed convolution
    // computes: Keras' Conv2DTranspose maps `in` pixels to in * stride (`same`) or
    // (in - 1) * stride + kernel (`valid`), and the hidden convolution maps that back.
    static ConvAxis transposed(std::int64_t in, std::int64_t kernel, std::int64_t stride, Padding padding) {
        const std::int64_t big = padding == Padding::same ? in * stride : (in - 1) * stride + std::max(kernel, stride);
        ConvAxis a = forward(big, kernel, stride, padding);
        if (padding == Padding::valid) a.pad_after = big - ((a.out - 1) * stride + kernel);  // unused tail rows
        return a;
    }
};

// A 2-D convolution of x (batch, in_h, in_w, in_c) by w (out_c, kernel_h, kernel_w,
// in_c) into y (batch, out_h, out_w, out_c). Transposed convolutions reuse it with
// the roles of x and y swapped (see nn/conv2d_transpose.hpp).
struct ConvGeometry {
    std::int64_t batch = 0, in_c = 0, out_c = 0;
    ConvAxis h, w;

    Shape input_shape() const { return Shape{batch, h.in, w.in, in_c}; }
    Shape output_shape() const { return Shape{batch, h.out, w.out, out_c}; }
    Shape filter_shape() const { return Shape{out_c, h.kernel, w.kernel, in_c}; }
    std::int64_t gemm_k() const { return h.kernel * w.kernel * in_c; }            // im2col row length
    std::int64_t gemm_m() const { return batch * h.out * w.out; }                  // im2col rows
    double flops() const { return 2.0 * double(gemm_m()) * double(gemm_k()) * double(out_c); }
    ConvGeometry with_batch(std::int64_t n) const {
        ConvGeometry g = *this;
        g.batch = n;
        return g;
    }
};

}  // namespace ewe
