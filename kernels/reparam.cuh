// The reparameterization trick z = mean + exp(half * log_var) * eps with
// eps = ewe::philox_normal(key, i) (include/ewe/core/philox.hpp), the same stream as
// the CPU; half = 0.5 (standard) or 1 (the sheep post). Arithmetic in double as on
// the CPU. CPU reference: Backend::reparameterize_forward / reparameterize_backward in
// include/ewe/cpu/backend.hpp.
#pragma once

#include "ewe/core/philox.hpp"
#include "kernels/common.cuh"

namespace ewe::cuda::kernels {

template <class T>
__global__ void reparameterize_forward(double half, const T* __restrict__ mean, const T* __restrict__ log_var,
                                       T* __restrict__ z, std::int64_t count, StepScalar<std::uint64_t> seed,
                                       std::uint32_t stream, StepScalar<std::uint64_t> offset) {
    const PhiloxKey key{seed.get(), stream, offset.get()};
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const double eps = double(philox_normal(key, static_cast<std::uint64_t>(i)));
        z[i] = T(double(mean[i]) + exp(half * double(log_var[i])) * eps);
    }
}

// Accumulates: dmean += dz, dlog_var += dz * half * exp(half * log_var) * eps.
template <class T>
__global__ void reparameterize_backward(double half, const T* __restrict__ log_var, const T* __restrict__ dz,
                                        T* __restrict__ dmean, T* __restrict__ dlog_var, std::int64_t count,
                                        StepScalar<std::uint64_t> seed, std::uint32_t stream,
                                        StepScalar<std::uint64_t> offset) {
    const PhiloxKey key{seed.get(), stream, offset.get()};
    for (std::int64_t i = global_index(); i < count; i += grid_stride()) {
        const double eps = double(philox_normal(key, static_cast<std::uint64_t>(i)));
        dmean[i] += dz[i];
        dlog_var[i] += T(double(dz[i]) * half * exp(half * double(log_var[i])) * eps);
    }
}

}  // namespace ewe::cuda::kernels
