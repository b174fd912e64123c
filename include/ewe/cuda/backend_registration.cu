// The CUDA backend's registration: the one translation unit that installs the hook
// tables of ewe/cuda/hooks.cuh, built two ways.
//
// As the backend module libewe_cuda.so (CMake target ewe_cuda_backend, the way every
// program gets CUDA): the program itself links no CUDA library; the first
// Context(Device::cuda) dlopen()s the module (ewe/core/cuda_loader.hpp) and calls its
// one exported symbol, ewe_cuda_backend_v1, which installs the tables in the module's
// own copies of the hook statics (the module's code, e.g. a Tensor it allocates, reads
// those) and returns them with the ABI record the loader checks before installing them
// in the program's copies. The module is compiled with hidden visibility, so nothing
// else of it is exported and none of its inline statics is shared with the program.
//
// Compiled into a program (the internal CMake target ewe_cuda_eager: ewe's own nvcc-
// compiled tests and benchmarks, which also reach into the backend, e.g.
// ewe::cuda::resources(ctx)): the static initializer below installs the tables before
// main (GCC and Clang on ELF never defer it), so the loader is never asked.
//
// Only the CUDA side is here (ewe/cuda/hooks.cuh: no Eigen, no CPU backend), so no
// host-compiled inline function or template of the CPU path is instantiated by nvcc.
#include "ewe/cuda/hooks.cuh"

namespace ewe::cuda::detail {

// Installs the tables in this binary's hook statics, once; thread-safe.
inline void register_backend() {
    static const bool installed = [] {
        install_hooks();
        return true;
    }();
    (void)installed;
}

}  // namespace ewe::cuda::detail

extern "C" __attribute__((visibility("default"))) const ewe::detail::CudaBackendModule* ewe_cuda_backend_v1() noexcept {
    static const ewe::detail::CudaBackendModule record =
        ewe::detail::cuda_backend_record(&ewe::cuda::detail::context_hooks, &ewe::cuda::detail::memory_hooks);
    ewe::cuda::detail::register_backend();
    return &record;
}

namespace {
[[maybe_unused]] const bool ewe_cuda_backend_registered = [] {
    ewe::cuda::detail::register_backend();
    return true;
}();
}  // namespace
