// Optimizer updates over the whole flat parameter buffer in one launch each, Keras
// rules (see include/ewe/optim/optimizers.hpp). The learning-rate-like factor is a
// StepScalar so a captured CUDA graph picks up the new value on every replay; each
// kernel has its launch function (same name without _kernel, stream first).
// CPU reference: Backend::sgd_update, rmsprop_update, adam_update in
// include/ewe/cpu/backend.hpp (the same float arithmetic).
#pragma once

#include "ewe/kernels/common.cuh"

namespace ewe::cuda::kernels {

template <class T>
__global__ void sgd_plain_kernel(StepScalar<double> lr, T* __restrict__ p, const T* __restrict__ g,
                                 std::int64_t count) {
    const T rate = T(lr.get());
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) p[i] -= rate * g[i];
}

template <class T>
__global__ void sgd_momentum_kernel(StepScalar<double> lr, T momentum, bool nesterov, T* __restrict__ p,
                                    const T* __restrict__ g, T* __restrict__ velocity, std::int64_t count) {
    const T rate = T(lr.get());
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const T v = momentum * velocity[i] - rate * g[i];
        velocity[i] = v;
        p[i] += nesterov ? momentum * v - rate * g[i] : v;
    }
}

template <class T>
__global__ void rmsprop_kernel(StepScalar<double> lr, T rho, T one_minus_rho, T eps, T* __restrict__ p,
                               const T* __restrict__ g, T* __restrict__ ms, std::int64_t count) {
    const T rate = T(lr.get());
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const T s = rho * ms[i] + one_minus_rho * g[i] * g[i];
        ms[i] = s;
        p[i] -= rate * g[i] / (sqrt(s) + eps);
    }
}

// step_size = lr * sqrt(1 - beta2^t) / (1 - beta1^t), computed by the door each step.
template <class T>
__global__ void adam_kernel(StepScalar<double> step_size, T b1, T b2, T eps, T* __restrict__ p,
                            const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v, std::int64_t count) {
    const T rate = T(step_size.get());
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const T mi = b1 * m[i] + (T(1) - b1) * g[i];
        const T vi = b2 * v[i] + (T(1) - b2) * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] -= rate * mi / (sqrt(vi) + eps);
    }
}

// ---- launch functions

template <class T>
void sgd_plain(cudaStream_t stream, StepScalar<double> lr, T* p, const T* g, std::int64_t count) {
    launch_1d("kernels::sgd_plain", stream, count, sgd_plain_kernel<T>, lr, p, g, count);
}

template <class T>
void sgd_momentum(cudaStream_t stream, StepScalar<double> lr, T momentum, bool nesterov, T* p, const T* g,
                  T* velocity, std::int64_t count) {
    launch_1d("kernels::sgd_momentum", stream, count, sgd_momentum_kernel<T>, lr, momentum, nesterov, p, g, velocity,
              count);
}

template <class T>
void rmsprop(cudaStream_t stream, StepScalar<double> lr, T rho, T one_minus_rho, T eps, T* p, const T* g, T* ms,
             std::int64_t count) {
    launch_1d("kernels::rmsprop", stream, count, rmsprop_kernel<T>, lr, rho, one_minus_rho, eps, p, g, ms, count);
}

template <class T>
void adam(cudaStream_t stream, StepScalar<double> step_size, T b1, T b2, T eps, T* p, const T* g, T* m, T* v,
          std::int64_t count) {
    launch_1d("kernels::adam", stream, count, adam_kernel<T>, step_size, b1, b2, eps, p, g, m, v, count);
}

}  // namespace ewe::cuda::kernels
