// The reparameterization trick z = mean + exp(log_var_scale * log_var) * eps with
// eps = ewe::philox_normal(key, key.first_element + i) (include/ewe/core/philox.hpp), the same stream as
// the CPU; log_var_scale = 0.5 (standard) or 1 (the sheep post), chosen by the door.
// Arithmetic in double as on the CPU; launch functions at the end. CPU reference:
// Backend::reparameterize_forward / reparameterize_backward in include/ewe/cpu/backend.hpp.
#pragma once

#include "ewe/core/philox.hpp"
#include "ewe/kernels/common.cuh"

namespace ewe::cuda::kernels {

template <class T>
__global__ void reparameterize_forward_kernel(double log_var_scale, const T* __restrict__ mean,
                                              const T* __restrict__ log_var, T* __restrict__ z, std::int64_t count,
                                              StepScalar<std::uint64_t> seed, std::uint32_t stream,
                                              StepScalar<std::uint64_t> offset,
                                              StepScalar<std::uint64_t> first_element) {
    const PhiloxKey key{seed.get(), stream, offset.get(), first_element.get()};
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const double eps = double(philox_normal(key, key.first_element + static_cast<std::uint64_t>(i)));
        z[i] = T(double(mean[i]) + exp(log_var_scale * double(log_var[i])) * eps);
    }
}

// Accumulates: dmean += dz, dlog_var += dz * log_var_scale * exp(log_var_scale * log_var) * eps.
template <class T>
__global__ void reparameterize_backward_kernel(double log_var_scale, const T* __restrict__ log_var,
                                               const T* __restrict__ dz, T* __restrict__ dmean,
                                               T* __restrict__ dlog_var, std::int64_t count,
                                               StepScalar<std::uint64_t> seed, std::uint32_t stream,
                                               StepScalar<std::uint64_t> offset,
                                              StepScalar<std::uint64_t> first_element) {
    const PhiloxKey key{seed.get(), stream, offset.get(), first_element.get()};
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const double eps = double(philox_normal(key, key.first_element + static_cast<std::uint64_t>(i)));
        dmean[i] += dz[i];
        dlog_var[i] += T(double(dz[i]) * log_var_scale * exp(log_var_scale * double(log_var[i])) * eps);
    }
}

// ---- launch functions

template <class T>
void reparameterize_forward(cudaStream_t stream, double log_var_scale, const T* mean, const T* log_var, T* z,
                            std::int64_t count, StepScalar<std::uint64_t> seed, std::uint32_t philox_stream,
                            StepScalar<std::uint64_t> offset, StepScalar<std::uint64_t> first_element) {
    launch_1d("kernels::reparameterize_forward", stream, count, reparameterize_forward_kernel<T>, log_var_scale, mean,
              log_var, z, count, seed, philox_stream, offset, first_element);
}

template <class T>
void reparameterize_backward(cudaStream_t stream, double log_var_scale, const T* log_var, const T* dz, T* dmean,
                             T* dlog_var, std::int64_t count, StepScalar<std::uint64_t> seed,
                             std::uint32_t philox_stream, StepScalar<std::uint64_t> offset,
                             StepScalar<std::uint64_t> first_element) {
    launch_1d("kernels::reparameterize_backward", stream, count, reparameterize_backward_kernel<T>, log_var_scale,
              log_var, dz, dmean, dlog_var, count, seed, philox_stream, offset, first_element);
}

}  // namespace ewe::cuda::kernels
