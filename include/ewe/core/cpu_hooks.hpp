// The slots through which ewe::Context reaches the CPU backend without depending on it,
// as it reaches the CUDA backend through ewe/core/cuda_hooks.hpp: the CPU backend
// installs itself here when the program starts, for float from every file that includes
// ewe/cpu/backend.hpp, for double from every file that includes ewe/cpu/double_backend.hpp
// (header-only), or both from libewe_cpu.a (ewe::compiled, whose registration
// ewe/ops/ops.hpp links in). ewe/core only forward-declares Backend.
#pragma once

#include <atomic>

namespace ewe {

template <class T>
class Backend;  // ewe/ops/backend.hpp

namespace detail {

// The installed CPU backend for element type T; null until one is installed. Atomic,
// since a program may create its first context on any thread.
template <class T>
std::atomic<Backend<T>*>& cpu_backend_slot() {
    static std::atomic<Backend<T>*> backend{nullptr};
    return backend;
}
template <class T>
void install_cpu_backend(Backend<T>* backend) {
    cpu_backend_slot<T>().store(backend, std::memory_order_release);
}

}  // namespace detail
}  // namespace ewe
