// VAE loss terms per sample and their gradients. Each forward is one fused kernel
// (the elementwise term and its row reduction together, in double, fixed order);
// each backward is one elementwise kernel, launched by the function below it. The
// door (include/ewe/ops/ops.hpp) computes the divisor and gradient scales. CPU
// reference: Backend::mse_forward, mse_backward, kl_forward, kl_backward in
// include/ewe/cpu/backend.hpp.
#pragma once

#include "ewe/kernels/reduce.cuh"

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
    double divisor;  // D for the mean reduction, 1 for the sum (acc / 1 is acc, exactly)
    __device__ void operator()(std::int64_t r, double acc) const { per_sample[r] = T(acc / divisor); }
};

// dpred = T(grad_scale) * (pred - target), grad_scale = 2 * coefficient / P from the door.
template <class T>
__global__ void mse_backward_kernel(StepScalar<double> grad_scale, const T* __restrict__ pred,
                                    const T* __restrict__ target, T* __restrict__ dpred, std::int64_t count) {
    const T scale = T(grad_scale.get());
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) dpred[i] = scale * (pred[i] - target[i]);
}

// dmean = grad_scale * mean, dlog_var = grad_scale * 0.5 * (exp(log_var) - 1), in double.
template <class T>
__global__ void kl_backward_kernel(StepScalar<double> grad_scale, const T* __restrict__ mean,
                                   const T* __restrict__ log_var, T* __restrict__ dmean, T* __restrict__ dlog_var,
                                   std::int64_t count) {
    const double scale = grad_scale.get();
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        dmean[i] = T(scale * double(mean[i]));
        dlog_var[i] = T(scale * 0.5 * (exp(double(log_var[i])) - 1.0));
    }
}

template <class T>
void mse_backward(cudaStream_t stream, StepScalar<double> grad_scale, const T* pred, const T* target, T* dpred,
                  std::int64_t count) {
    launch_1d("kernels::mse_backward", stream, count, mse_backward_kernel<T>, grad_scale, pred, target, dpred, count);
}

template <class T>
void kl_backward(cudaStream_t stream, StepScalar<double> grad_scale, const T* mean, const T* log_var, T* dmean,
                 T* dlog_var, std::int64_t count) {
    launch_1d("kernels::kl_backward", stream, count, kl_backward_kernel<T>, grad_scale, mean, log_var, dmean, dlog_var,
              count);
}

}  // namespace ewe::cuda::kernels
