// Inverted dropout: out = keep ? in / (1 - rate) : 0, the keep decision drawn by
// ewe::philox_keep (include/ewe/core/philox.hpp) so the mask equals the CPU's bit for
// bit. One thread serves the four elements of one Philox block.
// CPU reference: Backend::apply_dropout in include/ewe/cpu/backend.hpp.
#pragma once

#include "ewe/core/philox.hpp"
#include "kernels/common.cuh"

namespace ewe::cuda::kernels {

template <class T>
__global__ void dropout_kernel(const T* __restrict__ in, T* __restrict__ out, std::int64_t count,
                               std::uint32_t drop_threshold, T scale, StepScalar<std::uint64_t> seed,
                               std::uint32_t stream, StepScalar<std::uint64_t> offset) {
    const PhiloxKey key{seed.get(), stream, offset.get()};
    const std::int64_t blocks = (count + 3) / 4;
    for (std::int64_t b = global_index(); b < blocks; b += grid_stride()) {
        const Philox4x32 bits = philox_block(key, static_cast<std::uint32_t>(b));
        for (int j = 0; j < 4; ++j) {
            const std::int64_t i = b * 4 + j;
            if (i < count) out[i] = (bits.v[j] >> 8) >= drop_threshold ? in[i] * scale : T(0);
        }
    }
}

// One grid-stride item per Philox block of four elements.
template <class T>
void dropout(cudaStream_t stream, const T* in, T* out, std::int64_t count, std::uint32_t drop_threshold, T scale,
             StepScalar<std::uint64_t> seed, std::uint32_t philox_stream, StepScalar<std::uint64_t> offset) {
    launch_1d("kernels::dropout", stream, (count + 3) / 4, dropout_kernel<T>, in, out, count, drop_threshold, scale,
              seed, philox_stream, offset);
}

}  // namespace ewe::cuda::kernels
