// ewe::Context: the device a computation runs on and the resources it owns there
// (CPU threads and scratch memory; on CUDA the stream, cuDNN/cuBLASLt handles and
// workspace), plus the backend that implements every op for that device. The CUDA
// side sits behind the hook tables of ewe/core/cuda_hooks.hpp; the first
// Context(Device::cuda) loads the backend module that fills them (ewe/core/cuda_loader.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "ewe/core/cpu_check.hpp"
#include "ewe/core/cuda_hooks.hpp"
#include "ewe/core/cuda_loader.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/ops/backend.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__SSE2__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

namespace ewe {

struct ContextOptions {
    int threads = 0;             // CPU threads (ewe's pool and OpenMP's); 0 = all hardware threads
    std::int64_t cpu_im2col_elements = 1 << 20;  // CPU convolutions build patch matrices this large
    int cuda_device = 0;         // which GPU, for Device::cuda
    bool allow_tf32 = false;     // CUDA: let cuDNN/cuBLAS use TF32 tensor cores (off: exact fp32)
    bool deterministic = false;  // CUDA: deterministic algorithms and fixed-order reductions
    // CPU: flush denormal floats to zero (x86 FTZ and DAZ) on the creating thread, and so
    // on ewe's pool workers, which compute each job in the calling thread's modes, and
    // OpenMP's threads, as TensorFlow's CPU runtime does. Optimizer state of weights whose
    // gradient is 0 (dead ReLU units) decays into denormals, which x86 cores compute
    // several times slower: unflushed, the sheep VAE's RMSprop update took 71 instead of
    // 10 ms and each epoch 40% longer once that happened. Values below 1.2e-38 then read and
    // compute as 0. The setting stays on those threads after the context is gone; false
    // leaves the threads as they are (set_cpu_denormal_flushing below turns it off).
    bool flush_denormals = true;
};

// Turns x86's flush-to-zero and denormals-are-zero modes on or off for this thread
// (threads it creates later inherit them; ewe::cpu::ThreadPool's workers take them
// for every job this thread hands them) and every thread of OpenMP's pool (the
// clustering headers'). CPU contexts turn them on (ContextOptions::flush_denormals).
// A no-op without SSE.
inline void set_cpu_denormal_flushing(bool on) {
#if defined(__SSE2__)
    const auto apply = [on] {
        _MM_SET_FLUSH_ZERO_MODE(on ? _MM_FLUSH_ZERO_ON : _MM_FLUSH_ZERO_OFF);
        _MM_SET_DENORMALS_ZERO_MODE(on ? _MM_DENORMALS_ZERO_ON : _MM_DENORMALS_ZERO_OFF);
    };
    apply();
#if defined(_OPENMP)
#pragma omp parallel
    apply();
#endif
#else
    (void)on;
#endif
}

namespace detail {

template <class T>
Backend<T>& cpu_backend();  // defined in ewe/cpu/backend.hpp

}  // namespace detail

class Context {
public:
    explicit Context(Device device = Device::cpu, ContextOptions options = {}) : device_(device), options_(options) {
        EWE_REQUIRE(options.threads >= 0, "ewe::Context: threads must be >= 0, found ", options.threads);
        EWE_REQUIRE(options.cpu_im2col_elements > 0, "ewe::Context: cpu_im2col_elements must be positive, found ",
                    options.cpu_im2col_elements);
        detail::check_cpu_build_once();
        if (device == Device::cuda) {
            // The first CUDA context loads the backend module (ewe/core/cuda_loader.hpp).
            if (detail::cuda_context_hooks() == nullptr) detail::load_cuda_backend("ewe::Context(Device::cuda)");
            cuda_resources_ = detail::cuda_context_hooks()->create_resources(options);
        }
        if (device == Device::cpu && options.flush_denormals) set_cpu_denormal_flushing(true);
#if defined(_OPENMP)
        if (options.threads > 0) omp_set_num_threads(options.threads);
#endif
    }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    Device device() const { return device_; }
    const ContextOptions& options() const { return options_; }

    template <class T>
    Backend<T>& backend() {
        if (device_ == Device::cpu) return detail::cpu_backend<T>();
        const detail::CudaContextHooks* hooks = detail::cuda_context_hooks();
        Backend<T>* backend = nullptr;
        if constexpr (std::is_same_v<T, float>) backend = hooks->backend_float;
        else backend = hooks->backend_double;
        EWE_REQUIRE(backend != nullptr, "ewe::Context: the CUDA backend does not support this element type");
        return *backend;
    }

    // Waits until all work queued on this context has finished (no-op on the CPU).
    void synchronize() {
        if (device_ == Device::cuda) detail::cuda_context_hooks()->synchronize(cuda_resources_.get());
    }

    // Opaque per-device resources (the CUDA backend casts it to its own type).
    void* device_resources() const { return cuda_resources_.get(); }

    // Host scratch memory for CPU ops, reused between calls: grows on first use to the
    // largest size asked for, so a steady-state training step allocates nothing.
    template <class T>
    T* cpu_scratch(std::int64_t count) {
        const std::size_t bytes = static_cast<std::size_t>(count) * sizeof(T);
        if (bytes > cpu_scratch_bytes_) {
            cpu_scratch_ = Tensor<std::byte>(Shape{static_cast<std::int64_t>(bytes)});
            cpu_scratch_bytes_ = bytes;
        }
        return reinterpret_cast<T*>(cpu_scratch_.data());
    }

private:
    Device device_;
    ContextOptions options_;
    std::shared_ptr<void> cuda_resources_;
    Tensor<std::byte> cpu_scratch_;
    std::size_t cpu_scratch_bytes_ = 0;
};

}  // namespace ewe
