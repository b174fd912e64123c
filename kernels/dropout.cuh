// Inverted dropout: out = keep ? in / (1 - rate) : 0, the keep decision drawn by
// ewe::philox_keep (include/ewe/core/philox.hpp) so the mask equals the CPU's bit for
// bit. One thread serves one Philox block: element i draws index key.first_element + i,
// so the first and last blocks may be partly outside the tensor.
// CPU reference: Backend::apply_dropout in include/ewe/cpu/backend.hpp.
#pragma once

#include "ewe/core/philox.hpp"
#include "ewe/kernels/common.cuh"

namespace ewe::cuda::kernels {

template <class T>
__global__ void dropout_kernel(const T* __restrict__ in, T* __restrict__ out, std::int64_t count,
                               std::uint32_t drop_threshold, T scale, StepScalar<std::uint64_t> seed,
                               std::uint32_t stream, StepScalar<std::uint64_t> offset,
                               StepScalar<std::uint64_t> first_element) {
    const PhiloxKey key{seed.get(), stream, offset.get(), first_element.get()};
    const std::int64_t head = static_cast<std::int64_t>(key.first_element % 4);  // block elements before element 0
    const std::int64_t blocks = (head + count + 3) / 4;
    for (std::int64_t b = global_index(); b < blocks; b += grid_stride()) {
        const Philox4x32 bits = philox_block(key, static_cast<std::uint32_t>(key.first_element / 4 + b));
        for (int j = 0; j < 4; ++j) {
            const std::int64_t i = b * 4 + j - head;
            if (i >= 0 && i < count) out[i] = (bits.v[j] >> 8) >= drop_threshold ? in[i] * scale : T(0);
        }
    }
}

// One grid-stride item per Philox block; the count of blocks touched depends on
// first_element % 4 (a step scalar, unknown to the host inside a graph), so one more
// item than an aligned tensor needs is launched.
template <class T>
void dropout(cudaStream_t stream, const T* in, T* out, std::int64_t count, std::uint32_t drop_threshold, T scale,
             StepScalar<std::uint64_t> seed, std::uint32_t philox_stream, StepScalar<std::uint64_t> offset,
             StepScalar<std::uint64_t> first_element) {
    launch_1d("kernels::dropout", stream, (count + 3) / 4 + 1, dropout_kernel<T>, in, out, count, drop_threshold,
              scale, seed, philox_stream, offset, first_element);
}

}  // namespace ewe::cuda::kernels
