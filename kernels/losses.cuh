// VAE loss terms per sample and their gradients. Each forward is one fused kernel
// (the elementwise term and its row reduction together, in double, fixed order);
// each backward is one elementwise kernel. CPU reference: Backend::mse_forward,
// mse_backward, kl_forward, kl_backward in include/ewe/cpu/backend.hpp.
#pragma once

#include "kernels/reduce.cuh"

namespace ewe::cuda::kernels {

template <class T>
struct SquaredError {
    const T *pred, *target;
    std::int64_t cols;
    __device__ double operator()(std::int64_t r, std::int64_t p) const {
        const double d = double(pred[r * cols + p]) - double(target[r * cols + p]);
        return d * d;
    }
};

// per_sample[n] = scale * acc / P.
template <class T>
struct StoreMse {
    T* per_sample;
    StepScalar<double> scale;
    double cols;
    __device__ void operator()(std::int64_t r, double acc) const { per_sample[r] = T(scale.get() * acc / cols); }
};

template <class T>
struct KlTerm {
    const T *mean, *log_var;
    std::int64_t cols;
    __device__ double operator()(std::int64_t r, std::int64_t d) const {
        const double m = mean[r * cols + d], lv = log_var[r * cols + d];
        return -0.5 * (1.0 + lv - m * m - exp(lv));
    }
};

template <class T>
struct StoreKl {
    T* per_sample;
    double divisor;  // D for the mean reduction, 1 for the sum
    __device__ void operator()(std::int64_t r, double acc) const { per_sample[r] = T(divisor == 1.0 ? acc : acc / divisor); }
};

// dpred = c * (pred - target), c = T(2 * coefficient / P) computed on the host.
template <class T>
__global__ void mse_backward(StepScalar<double> c, const T* __restrict__ pred, const T* __restrict__ target,
                             T* __restrict__ dpred, std::int64_t count) {
    const T coefficient = T(c.get());
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) dpred[i] = coefficient * (pred[i] - target[i]);
}

// dmean = c * mean, dlog_var = c * 0.5 * (exp(log_var) - 1).
template <class T>
__global__ void kl_backward(StepScalar<double> c, const T* __restrict__ mean, const T* __restrict__ log_var,
                            T* __restrict__ dmean, T* __restrict__ dlog_var, std::int64_t count) {
    const double coefficient = c.get();
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        dmean[i] = T(coefficient * double(mean[i]));
        dlog_var[i] = T(coefficient * 0.5 * (exp(double(log_var[i])) - 1.0));
    }
}

}  // namespace ewe::cuda::kernels
