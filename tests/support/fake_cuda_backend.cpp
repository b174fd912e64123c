// Stand-in CUDA backend modules for tests/core/test_cuda_backend_loader.cpp, built by
// the host compiler without CUDA: with EWE_FAKE_WRONG_ABI the entry point returns a
// record of another ABI number (the loader must refuse it, naming both numbers); with
// EWE_FAKE_NO_ENTRY the module has no entry point at all.
#include "ewe/core/cuda_hooks.hpp"

#if defined(EWE_FAKE_WRONG_ABI)
namespace {
const ewe::detail::CudaMemoryHooks memory_hooks{};
const ewe::detail::CudaContextHooks context_hooks{};
}  // namespace

extern "C" __attribute__((visibility("default"))) const ewe::detail::CudaBackendModule* ewe_cuda_backend_v1() noexcept {
    static ewe::detail::CudaBackendModule record = ewe::detail::cuda_backend_record(&context_hooks, &memory_hooks);
    record.abi = ewe::detail::kCudaBackendAbi + 1;
    return &record;
}
#else
extern "C" __attribute__((visibility("default"))) int ewe_cuda_backend_v0() { return 0; }
#endif
