// Elementwise kernels: bias + activation (forward), activation gradient, add, fill,
// and the zero-pad / crop copies that give cuDNN TensorFlow's asymmetric `same`
// padding, each with its launch function (same name, stream first). CPU references in
// include/ewe/cpu/backend.hpp: bias_activation, activation_grad,
// Backend::activation_forward, Backend::add, Backend::fill.
#pragma once

#include "ewe/kernels/common.cuh"

namespace ewe::cuda::kernels {

// y (rows, cols) = act(y + b) in place; b may be null.
template <class T>
__global__ void bias_activation_kernel(Activation act, const T* __restrict__ b, T* __restrict__ y, std::int64_t count,
                                       std::int64_t cols) {
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const T v = b != nullptr ? y[i] + b[i % cols] : y[i];
        y[i] = activate(act, v);
    }
}

template <class T>
__global__ void activation_forward_kernel(Activation act, const T* __restrict__ x, T* __restrict__ y,
                                          std::int64_t count) {
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) y[i] = activate(act, x[i]);
}

// dpre = dy * act'(y).
template <class T>
__global__ void activation_grad_kernel(Activation act, const T* __restrict__ y, const T* __restrict__ dy,
                                       T* __restrict__ dpre, std::int64_t count) {
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) dpre[i] = dy[i] * activation_slope(act, y[i]);
}

// out = a + b; out may alias a or b (each element is read before it is written).
template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, std::int64_t count) {
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) out[i] = a[i] + b[i];
}

template <class T>
__global__ void fill_kernel(StepScalar<double> value, T* __restrict__ x, std::int64_t count) {
    const T v = T(value.get());
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) x[i] = v;
}

// xp (n, h + eh, w + ew, c) = x (n, h, w, c) followed by zero rows and columns.
template <class T>
__global__ void pad_tail_kernel(const T* __restrict__ x, T* __restrict__ xp, std::int64_t n, std::int64_t h,
                                std::int64_t w, std::int64_t c, std::int64_t hp, std::int64_t wp) {
    const std::int64_t count = n * hp * wp * c;
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const std::int64_t ch = i % c;
        std::int64_t t = i / c;
        const std::int64_t col = t % wp;
        t /= wp;
        const std::int64_t row = t % hp;
        const std::int64_t img = t / hp;
        xp[i] = (row < h && col < w) ? x[((img * h + row) * w + col) * c + ch] : T(0);
    }
}

// x (n, h, w, c) = the leading rows and columns of xp (n, hp, wp, c).
template <class T>
__global__ void crop_tail_kernel(const T* __restrict__ xp, T* __restrict__ x, std::int64_t n, std::int64_t h,
                                 std::int64_t w, std::int64_t c, std::int64_t hp, std::int64_t wp) {
    const std::int64_t count = n * h * w * c;
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const std::int64_t ch = i % c;
        std::int64_t t = i / c;
        const std::int64_t col = t % w;
        t /= w;
        const std::int64_t row = t % h;
        const std::int64_t img = t / h;
        x[i] = xp[((img * hp + row) * wp + col) * c + ch];
    }
}

// ---- launch functions

template <class T>
void bias_activation(cudaStream_t stream, Activation act, const T* b, T* y, std::int64_t count, std::int64_t cols) {
    if (b == nullptr && act == Activation::none) return;
    launch_1d("kernels::bias_activation", stream, count, bias_activation_kernel<T>, act, b, y, count, cols);
}

template <class T>
void activation_forward(cudaStream_t stream, Activation act, const T* x, T* y, std::int64_t count) {
    launch_1d("kernels::activation_forward", stream, count, activation_forward_kernel<T>, act, x, y, count);
}

template <class T>
void activation_grad(cudaStream_t stream, Activation act, const T* y, const T* dy, T* dpre, std::int64_t count) {
    launch_1d("kernels::activation_grad", stream, count, activation_grad_kernel<T>, act, y, dy, dpre, count);
}

template <class T>
void add(cudaStream_t stream, const T* a, const T* b, T* out, std::int64_t count) {
    launch_1d("kernels::add", stream, count, add_kernel<T>, a, b, out, count);
}

template <class T>
void fill(cudaStream_t stream, StepScalar<double> value, T* x, std::int64_t count) {
    launch_1d("kernels::fill", stream, count, fill_kernel<T>, value, x, count);
}

template <class T>
void pad_tail(cudaStream_t stream, const T* x, T* xp, std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c,
              std::int64_t hp, std::int64_t wp) {
    launch_1d("kernels::pad_tail", stream, n * hp * wp * c, pad_tail_kernel<T>, x, xp, n, h, w, c, hp, wp);
}

template <class T>
void crop_tail(cudaStream_t stream, const T* xp, T* x, std::int64_t n, std::int64_t h, std::int64_t w,
               std::int64_t c, std::int64_t hp, std::int64_t wp) {
    launch_1d("kernels::crop_tail", stream, n * h * w * c, crop_tail_kernel<T>, xp, x, n, h, w, c, hp, wp);
}

}  // namespace ewe::cuda::kernels
