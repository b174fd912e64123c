// The two hook tables through which ewe/core reaches the CUDA backend without
// including CUDA: device memory for ewe::Tensor (CudaMemoryHooks) and per-context
// resources, synchronize, the backends and CUDA-graph step replay for ewe::Context and
// ewe::StepReplay (CudaContextHooks). The backend (ewe/cuda/hooks.cuh) fills them; they
// are installed either by the backend module libewe_cuda.so, which ewe/core/
// cuda_loader.hpp loads when a program first asks for Device::cuda, or by
// ewe/cuda/backend_registration.cu compiled into the program itself (ewe's own CUDA
// tests). Also here: CudaBackendModule, the record the module's one entry point
// returns, and what must match between the module and the program that loads it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "ewe/core/device.hpp"
#include "ewe/core/version.hpp"

namespace ewe {

struct ContextOptions;  // ewe/core/context.hpp
template <class T>
class Backend;  // ewe/ops/backend.hpp

namespace detail {

// A non-owning reference to a callable `void()` (a training step), so that the CUDA
// backend can run it without being a template: valid only while the callable lives.
class StepRef {
public:
    template <class F>
        requires(!std::is_same_v<std::remove_cv_t<F>, StepRef>)
    StepRef(F& f)
        : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* o) { (*static_cast<F*>(o))(); }) {}
    void operator()() const { call_(object_); }

private:
    void* object_;
    void (*call_)(void*);
};

// What the CUDA backend did with one StepReplay::run (see ewe/core/step_replay.hpp).
enum class StepGraphRun {
    eager,     // warm-up: the step ran eagerly
    launched,  // the step was captured (first time) or its scalars recorded, and the graph launched
    refused,   // the step cannot be graphed (the reason is written out); nothing was launched
};

// Device memory for ewe::Tensor and ewe::copy.
struct CudaMemoryHooks {
    void* (*allocate)(std::size_t bytes);
    void (*release)(void* pointer);
    // Copies `bytes` between any two devices; synchronous with respect to the host.
    void (*copy)(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes);
};

// The CUDA backend's side of ewe::Context.
struct CudaContextHooks {
    std::shared_ptr<void> (*create_resources)(const ContextOptions& options);
    void (*synchronize)(void* resources);
    Backend<float>* backend;  // float only: ewe::Context refuses double on CUDA
    // CUDA-graph step replay (ewe::StepReplay): an ewe::cuda::StepGraph on a context's
    // resources; run_step_graph throws for errors that are not about graphing the step.
    void* (*create_step_graph)(void* resources, int warmup_steps);
    StepGraphRun (*run_step_graph)(void* graph, StepRef step, std::string& why_not);
    void (*destroy_step_graph)(void* graph) noexcept;
};

// The installed tables; null until a backend is installed. Each binary (the program,
// the module) has its own copies of these statics (the module is built with hidden
// visibility and loaded RTLD_LOCAL, and a program does not export them): the module
// installs its tables into its own copies, the loader into the program's. Atomic, since
// the first CUDA use may come from any thread.
inline std::atomic<const CudaMemoryHooks*>& cuda_memory_hooks_slot() {
    static std::atomic<const CudaMemoryHooks*> hooks{nullptr};
    return hooks;
}
inline std::atomic<const CudaContextHooks*>& cuda_context_hooks_slot() {
    static std::atomic<const CudaContextHooks*> hooks{nullptr};
    return hooks;
}
inline const CudaMemoryHooks* cuda_memory_hooks() { return cuda_memory_hooks_slot().load(std::memory_order_acquire); }
inline const CudaContextHooks* cuda_context_hooks() {
    return cuda_context_hooks_slot().load(std::memory_order_acquire);
}
// Memory first: a context (installed second) is only seen with memory hooks in place.
inline void install_cuda_hooks(const CudaContextHooks* context, const CudaMemoryHooks* memory) {
    cuda_memory_hooks_slot().store(memory, std::memory_order_release);
    cuda_context_hooks_slot().store(context, std::memory_order_release);
}

// What must agree between libewe_cuda.so and the program loading it, besides the
// entry point's name (kCudaBackendEntryPoint, versioned): increment kCudaBackendAbi
// whenever a type both sides use changes layout or meaning (the hook tables,
// ContextOptions, Context, Tensor/TensorView, Backend<T>'s virtual functions, ewe::Error),
// and the ewe version must match exactly, so a module from another build is refused
// with a clear error instead of calling through a mismatched table.
inline constexpr std::uint32_t kCudaBackendAbi = 2;

struct CudaBackendModule {
    std::uint32_t abi;                 // kCudaBackendAbi
    std::uint32_t ewe_version;         // EWE_VERSION
    std::uint32_t memory_hooks_size;   // sizeof(CudaMemoryHooks)
    std::uint32_t context_hooks_size;  // sizeof(CudaContextHooks)
    const CudaContextHooks* context_hooks;
    const CudaMemoryHooks* memory_hooks;
};

// The module's one exported symbol: extern "C" const CudaBackendModule* NAME() noexcept,
// which installs the hooks in the module's own copies and returns its record.
inline constexpr const char* kCudaBackendEntryPoint = "ewe_cuda_backend_v1";
using CudaBackendEntryPoint = const CudaBackendModule* (*)() noexcept;

// This build's record for the given tables (what a module returns).
inline constexpr CudaBackendModule cuda_backend_record(const CudaContextHooks* context,
                                                       const CudaMemoryHooks* memory) {
    return {kCudaBackendAbi, EWE_VERSION, sizeof(CudaMemoryHooks), sizeof(CudaContextHooks), context, memory};
}

}  // namespace detail
}  // namespace ewe
