// Minibatch assembly on the device: out[i, :] = images[indices[i], :] * scale from
// uint8 or T images (N_all, P) already on the GPU, indices on the GPU too. A bad index
// cannot throw inside a kernel: its row is zeroed and the first bad (index, position)
// is recorded in the context's error block, which ctx.synchronize() turns into the
// same ewe::Error the CPU throws. CPU reference: Backend::gather_images in
// include/ewe/cpu/backend.hpp.
#pragma once

#include "ewe/kernels/common.cuh"

namespace ewe::cuda::kernels {

// errors: [0] count of bad indices, [1] first bad index, [2] its position.
template <class Source, class T>
__global__ void gather_images_kernel(const Source* __restrict__ images, std::int64_t count,
                                     const std::int32_t* __restrict__ indices, std::int64_t n, std::int64_t pixels,
                                     StepScalar<double> scale, T* __restrict__ out, unsigned long long* errors) {
    const double s = scale.get();
    const std::int64_t total = n * pixels;
    for (std::int64_t k = global_index(); k < total; k += grid_stride()) {
        const std::int64_t i = k / pixels, p = k % pixels;
        const std::int64_t row = indices[i];
        if (row < 0 || row >= count) {
            out[k] = T(0);
            if (p == 0 && atomicAdd(&errors[0], 1ull) == 0ull) {
                errors[1] = static_cast<unsigned long long>(row);
                errors[2] = static_cast<unsigned long long>(i);
            }
            continue;
        }
        out[k] = T(double(images[row * pixels + p]) * s);
    }
}

template <class Source, class T>
void gather_images(cudaStream_t stream, const Source* images, std::int64_t count, const std::int32_t* indices,
                   std::int64_t n, std::int64_t pixels, StepScalar<double> scale, T* out, unsigned long long* errors) {
    launch_1d("kernels::gather_images", stream, n * pixels, gather_images_kernel<Source, T>, images, count, indices, n,
              pixels, scale, out, errors);
}

}  // namespace ewe::cuda::kernels
