// The hook through which ewe::Context reaches the CPU backend without depending on it,
// as it reaches the CUDA backend through ewe/core/cuda_hooks.hpp: the CPU backend
// (ewe/cpu/backend.hpp) installs its table here when the program starts, from every
// file that includes that header (header-only) or from libewe_cpu.a (ewe::compiled,
// whose registration ewe/ops/ops.hpp links in). ewe/core only forward-declares Backend.
#pragma once

#include <atomic>

namespace ewe {

template <class T>
class Backend;  // ewe/ops/backend.hpp

namespace detail {

// The CPU backend's side of ewe::Context.
struct CpuBackendHooks {
    Backend<float>* backend_float;
    Backend<double>* backend_double;
};

// The installed table; null until a CPU backend is installed. Atomic, since a program
// may create its first context on any thread.
inline std::atomic<const CpuBackendHooks*>& cpu_backend_hooks_slot() {
    static std::atomic<const CpuBackendHooks*> hooks{nullptr};
    return hooks;
}
inline const CpuBackendHooks* cpu_backend_hooks() { return cpu_backend_hooks_slot().load(std::memory_order_acquire); }
inline void install_cpu_backend_hooks(const CpuBackendHooks* hooks) {
    cpu_backend_hooks_slot().store(hooks, std::memory_order_release);
}

}  // namespace detail
}  // namespace ewe
