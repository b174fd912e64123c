// The hooks that make Context(Device::cuda) work: device memory (cudaMalloc, cudaFree,
// synchronous copies) for ewe::Tensor, and per-context resources, synchronize, the
// backends and CUDA-graph step replay (ewe::StepReplay over ewe::cuda::StepGraph) for
// ewe::Context, so that ewe/core stays free of CUDA (the tables' types are in
// ewe/core/cuda_hooks.hpp). install_hooks() puts both tables in this binary's hook
// statics; ewe/cuda/backend_registration.cu, the one translation unit that includes
// this header, calls it and hands the tables to the program that loads the module.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <string>

#include "ewe/core/context.hpp"
#include "ewe/cuda/backend.cuh"
#include "ewe/cuda/check.cuh"
#include "ewe/cuda/graph.cuh"
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

// ewe::StepReplay's graph: a StepGraph whose prepare() failing means "this step cannot
// be graphed" (StepReplay then runs it eagerly from now on); warm-up runs and launch
// failures throw as they are.
inline void* create_step_graph(void* resources, int warmup_steps) {
    return new StepGraph(*static_cast<Resources*>(resources), warmup_steps);
}
inline ewe::detail::StepGraphRun run_step_graph(void* graph, ewe::detail::StepRef step, std::string& why_not) {
    StepGraph& g = *static_cast<StepGraph*>(graph);
    if (g.warming_up()) {
        g.run(step);
        return ewe::detail::StepGraphRun::eager;
    }
    const bool capturing = !g.captured();
    try {
        g.prepare(step);
    } catch (const std::exception& e) {
        why_not = std::string(capturing ? "the step could not be captured as a CUDA graph: "
                                        : "the step did not repeat the captured CUDA graph: ") + e.what();
        return ewe::detail::StepGraphRun::refused;
    }
    g.launch();
    return ewe::detail::StepGraphRun::launched;
}
inline void destroy_step_graph(void* graph) noexcept { delete static_cast<StepGraph*>(graph); }

inline const ewe::detail::CudaMemoryHooks memory_hooks{&allocate, &release, &copy_bytes};
inline const ewe::detail::CudaContextHooks context_hooks{&create_resources,  &synchronize,    &float_backend,
                                                         &create_step_graph, &run_step_graph, &destroy_step_graph};

// Points this binary's copies of ewe/core's hook statics at the tables above.
inline void install_hooks() { ewe::detail::install_cuda_hooks(&context_hooks, &memory_hooks); }

}  // namespace detail

}  // namespace ewe::cuda
