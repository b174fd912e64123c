// Shared pieces of ewe's hand-written CUDA kernels (kernels/*.cuh): the launch
// shape and the one checked launch of a grid-stride kernel (each kernel file wraps its
// kernels in launch functions built on it), the per-step scalar argument that CUDA
// graphs refill between replays, and the activation functions written exactly as the
// CPU reference (ewe::cpu::activate / ewe::cpu::activation_slope in
// include/ewe/cpu/backend.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "ewe/cuda/check.cuh"
#include "ewe/ops/geometry.hpp"

namespace ewe::cuda::kernels {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items (at least one, so a launch is valid).
inline unsigned blocks_for(std::int64_t n, int threads = kThreads) {
    const std::int64_t b = (n + threads - 1) / threads;
    return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 4 ? 65535 * 4 : b));
}

// Launches `kernel` on `stream` as a grid-stride loop over `items` (nothing when there
// are none), with `shared_bytes` of dynamic shared memory per block, and turns a launch
// error into an ewe::Error naming `what`. Every 1-D kernel of kernels/*.cuh (and of the
// GPU clustering) is launched through this, from the launch function next to it.
template <class... Params, class... Args>
void launch_1d_shared(const char* what, cudaStream_t stream, std::int64_t items, std::size_t shared_bytes,
                      void (*kernel)(Params...), const Args&... args) {
    if (items <= 0) return;
    kernel<<<blocks_for(items), kThreads, shared_bytes, stream>>>(args...);
    detail::check_launch(what, __FILE__, __LINE__);
}

// The same without dynamic shared memory.
template <class... Params, class... Args>
void launch_1d(const char* what, cudaStream_t stream, std::int64_t items, void (*kernel)(Params...),
               const Args&... args) {
    launch_1d_shared(what, stream, items, 0, kernel, args...);
}

// A host scalar that may change between training steps (learning rate, loss
// coefficient, Philox seed/offset). Eagerly it travels by value; inside a captured
// CUDA graph `slot` points into the context's device "step scalars" block, which the
// graph guard refills with one copy before every replay (see ewe/cuda/graph.cuh).
template <class V>
struct StepScalar {
    V value;
    const V* slot;
    __device__ V get() const { return slot != nullptr ? *slot : value; }
};

template <class T>
__device__ inline T activate(Activation act, T v) {
    switch (act) {
        case Activation::relu: return v > T(0) ? v : T(0);
        case Activation::sigmoid: return T(1) / (T(1) + exp(-v));
        default: return v;
    }
}

template <class T>
__device__ inline T activation_slope(Activation act, T y) {
    switch (act) {
        case Activation::relu: return y > T(0) ? T(1) : T(0);
        case Activation::sigmoid: return y * (T(1) - y);
        default: return T(1);
    }
}

__device__ inline std::int64_t global_index() {
    return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_stride() { return static_cast<std::int64_t>(gridDim.x) * blockDim.x; }

}  // namespace ewe::cuda::kernels
