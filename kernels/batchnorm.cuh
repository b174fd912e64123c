// Batch normalization over the last axis of x viewed as (M, C): the statistics go
// through the deterministic column reduction of kernels/reduce.cuh (two passes, mean
// then biased variance, in double), then one elementwise pass normalizes (launch
// functions at the end).
// CPU reference: Backend::batchnorm_forward / batchnorm_backward in
// include/ewe/cpu/backend.hpp (same formulas, same double accumulation).
#pragma once

#include <cmath>

#include "ewe/kernels/reduce.cuh"

namespace ewe::cuda::kernels {

// (x - mean_c)^2 with the double mean of pass one.
template <class T>
struct SquaredDeviation {
    const T* x;
    const double* mean;
    std::int64_t cols;
    __device__ void operator()(std::int64_t r, std::int64_t c, double* acc) const {
        const double d = double(x[r * cols + c]) - mean[c];
        acc[0] += d * d;
    }
};

struct StoreMean {
    double* mean;
    double rows;
    __device__ void operator()(std::int64_t c, const double* sums) const { mean[c] = sums[0] / rows; }
};

// Saves the statistics and updates the moving ones (after the variance pass).
template <class T>
struct FinishStatistics {
    const double* mean;
    double rows, epsilon, momentum;
    T *saved_mean, *saved_invstd, *moving_mean, *moving_var;
    __device__ void operator()(std::int64_t c, const double* sums) const {
        const double var = sums[0] / rows;
        saved_mean[c] = T(mean[c]);
        saved_invstd[c] = T(1.0 / sqrt(var + epsilon));
        moving_mean[c] = T(momentum * double(moving_mean[c]) + (1.0 - momentum) * mean[c]);
        moving_var[c] = T(momentum * double(moving_var[c]) + (1.0 - momentum) * var);
    }
};

// y = gamma * (x - mean) * invstd + beta with the batch (train) or moving (eval) statistics.
template <class T>
__global__ void batchnorm_normalize_kernel(bool train, double epsilon, const T* __restrict__ x,
                                           const T* __restrict__ gamma,
                                           const T* __restrict__ beta, const T* __restrict__ mean_stat,
                                           const T* __restrict__ var_stat, T* __restrict__ y, std::int64_t count,
                                           std::int64_t cols) {
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const std::int64_t c = i % cols;
        const T mean = mean_stat[c];
        const T invstd = train ? var_stat[c] : T(1.0 / sqrt(double(var_stat[c]) + epsilon));
        y[i] = gamma[c] * (x[i] - mean) * invstd + beta[c];
    }
}

// Backward sums: [0] sum dy, [1] sum dy * xhat.
template <class T>
struct BackwardTerms {
    const T *x, *dy, *saved_mean, *saved_invstd;
    std::int64_t cols;
    __device__ void operator()(std::int64_t r, std::int64_t c, double* acc) const {
        const std::int64_t i = r * cols + c;
        const double xhat = (double(x[i]) - double(saved_mean[c])) * double(saved_invstd[c]);
        acc[0] += double(dy[i]);
        acc[1] += double(dy[i]) * xhat;
    }
};

template <class T>
struct StoreBackwardSums {
    double* sums_out;  // [2][cols]
    std::int64_t cols;
    T *dgamma, *dbeta;
    __device__ void operator()(std::int64_t c, const double* sums) const {
        sums_out[c] = sums[0];
        sums_out[cols + c] = sums[1];
        dgamma[c] = T(sums[1]);
        dbeta[c] = T(sums[0]);
    }
};

template <class T>
__global__ void batchnorm_backward_dx_kernel(const T* __restrict__ x, const T* __restrict__ dy,
                                             const T* __restrict__ gamma,
                                             const T* __restrict__ saved_mean, const T* __restrict__ saved_invstd,
                                             const double* __restrict__ sums, T* __restrict__ dx, std::int64_t count,
                                             std::int64_t cols) {
    const double rows = double(count / cols);
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const std::int64_t c = i % cols;
        const double invstd = double(saved_invstd[c]);
        const double xhat = (double(x[i]) - double(saved_mean[c])) * invstd;
        const double scale = double(gamma[c]) * invstd / rows;
        dx[i] = T(scale * (rows * double(dy[i]) - sums[c] - xhat * sums[cols + c]));
    }
}

// ---- launch functions

template <class T>
void batchnorm_normalize(cudaStream_t stream, bool train, double epsilon, const T* x, const T* gamma, const T* beta,
                         const T* mean_stat, const T* var_stat, T* y, std::int64_t count, std::int64_t cols) {
    launch_1d("kernels::batchnorm_normalize", stream, count, batchnorm_normalize_kernel<T>, train, epsilon, x, gamma,
              beta, mean_stat, var_stat, y, count, cols);
}

// sums: the [2][cols] block StoreBackwardSums wrote (sum dy, sum dy * xhat).
template <class T>
void batchnorm_backward_dx(cudaStream_t stream, const T* x, const T* dy, const T* gamma, const T* saved_mean,
                           const T* saved_invstd, const double* sums, T* dx, std::int64_t count, std::int64_t cols) {
    launch_1d("kernels::batchnorm_backward_dx", stream, count, batchnorm_backward_dx_kernel<T>, x, dy, gamma,
              saved_mean, saved_invstd, sums, dx, count, cols);
}

}  // namespace ewe::cuda::kernels
