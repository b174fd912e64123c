// The hooks that make Context(Device::cuda) work: device memory (cudaMalloc, cudaFree,
// synchronous copies) for ewe::Tensor, and per-context resources, synchronize and the
// backends for ewe::Context. Including this header (ewe/ewe.hpp does so under nvcc with
// EWE_WITH_CUDA) installs both tables at static initialization, so ewe/core stays free
// of CUDA.
#pragma once

#include <cstddef>
#include <memory>

#include "ewe/core/context.hpp"
#include "ewe/cuda/backend.cuh"
#include "ewe/cuda/check.cuh"
#include "ewe/cuda/resources.cuh"

namespace ewe::cuda {

namespace detail {

// Out of device memory is reported with the size asked for, what the device has free,
// and what to change; every other failure goes through EWE_CUDA_CHECK.
inline void* allocate(std::size_t bytes) {
    void* p = nullptr;
    const cudaError_t status = cudaMalloc(&p, bytes);
    if (status == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();  // clear the sticky-free error state of the runtime
        std::size_t free_bytes = 0, total_bytes = 0;
        (void)cudaMemGetInfo(&free_bytes, &total_bytes);
        fail("CUDA out of memory: asked for ", double(bytes) / (1 << 20), " MiB, the device has ",
             double(free_bytes) / (1 << 20), " MiB free of ", double(total_bytes) / (1 << 20),
             " MiB; use a smaller batch (--batch) or model, or free the GPU of other processes");
    }
    EWE_CUDA_CHECK(status);
    return p;
}

// Called from tensor destructors: must not throw. Waits for queued work first, since
// a kernel on some context's stream may still use the memory.
inline void release(void* p) {
    EWE_CUDA_WARN(cudaDeviceSynchronize());
    EWE_CUDA_WARN(cudaFree(p));
}

// Synchronous with respect to the host and to every stream: the contexts' streams
// are non-blocking, so a plain cudaMemcpy would not wait for them.
inline void copy_bytes(void* dst, Device, const void* src, Device, std::size_t bytes) {
    EWE_CUDA_CHECK(cudaDeviceSynchronize());
    EWE_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
    EWE_CUDA_CHECK(cudaDeviceSynchronize());
}

inline std::shared_ptr<void> create_resources(const ContextOptions& options) {
    return std::make_shared<Resources>(options);
}
inline void synchronize(void* resources) { static_cast<Resources*>(resources)->synchronize(); }

inline Backend<float> float_backend;
inline Backend<double> double_backend;

inline const ewe::detail::CudaMemoryHooks memory_hooks{&allocate, &release, &copy_bytes};
inline const ewe::detail::CudaContextHooks context_hooks{&create_resources, &synchronize, &float_backend,
                                                         &double_backend};

// Installs the hooks during static initialization of any program that includes this header.
inline const bool hooks_installed = [] {
    ewe::detail::cuda_memory_hooks() = &memory_hooks;
    ewe::detail::cuda_context_hooks() = &context_hooks;
    return true;
}();

}  // namespace detail

}  // namespace ewe::cuda
