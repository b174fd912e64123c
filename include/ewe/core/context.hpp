// ewe::Context: the device a computation runs on and the resources it owns there
// (the CPU threads its ops use and scratch memory; on CUDA the stream, cuDNN/cuBLASLt
// handles and workspace), plus the backend that implements every op for that device.
// Each backend installs itself behind hooks: the CPU one's in ewe/core/cpu_hooks.hpp, the CUDA one's in ewe/core/cuda_hooks.hpp (the first
// Context(Device::cuda) loads the backend module that fills them, ewe/core/cuda_loader.hpp).
// A context changes no process-wide state but the calling thread's denormal flushing
// (ContextOptions::flush_denormals).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "ewe/core/cpu_check.hpp"
#include "ewe/core/cpu_hooks.hpp"
#include "ewe/core/cuda_hooks.hpp"
#include "ewe/core/cuda_loader.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"

#if defined(__SSE2__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

namespace ewe {

// The inputs of the CPU float backend's matrix products (convolutions, transposed
// convolutions, dense layers; forward and backward): fp32 as stored, or rounded to
// bfloat16 (ties to even) with the products still summed in fp32, on AVX512_BF16
// (ewe/cpu/gemm_bf16.hpp), as oneDNN's fpmath_mode=bf16 or PyTorch's
// set_float32_matmul_precision("medium"). Weights, activations, gradients and optimizer
// state stay fp32; bf16 keeps 8 bits of mantissa, so each product carries a relative
// error of about 2^-8 per input. Results stay the same on any thread count.
enum class CpuProductPrecision { fp32, bf16 };
inline const char* to_string(CpuProductPrecision precision) {
    return precision == CpuProductPrecision::bf16 ? "bf16" : "fp32";
}
// The precision whose to_string is `name`; nullopt for any other text.
inline std::optional<CpuProductPrecision> cpu_product_precision_named(std::string_view name) {
    for (const CpuProductPrecision p : {CpuProductPrecision::fp32, CpuProductPrecision::bf16})
        if (name == to_string(p)) return p;
    return std::nullopt;
}

// Whether this program can run CpuProductPrecision::bf16: compiled for AVX512_BF16
// (EWE_ARCH native on such a CPU) and running on a CPU that has it.
inline bool cpu_bf16_products_available() {
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

struct ContextOptions {
    // CPU threads this context's ops run on; 0 = the process's default
    // (ewe::cpu::default_thread_count(): OpenMP's, e.g. OMP_NUM_THREADS, else all
    // hardware threads). Other contexts and OpenMP's own setting are left as they are.
    int threads = 0;
    std::int64_t cpu_im2col_elements = 1 << 17;  // CPU convolutions build patch matrices this large (512 KB of float: in L2)
    int cuda_device = 0;         // which GPU, for Device::cuda
    bool allow_tf32 = false;     // CUDA: let cuDNN/cuBLAS use TF32 tensor cores (off: exact fp32)
    bool deterministic = false;  // CUDA: deterministic algorithms and fixed-order reductions
    // CPU, float: the precision of the products' inputs (bf16: the opt-in mode above;
    // refused where the build or the CPU lacks AVX512_BF16, on CUDA and for double).
    CpuProductPrecision cpu_product_precision = CpuProductPrecision::fp32;
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

class Context {
public:
    explicit Context(Device device = Device::cpu, ContextOptions options = {}) : device_(device), options_(options) {
        EWE_REQUIRE(options.threads >= 0, "ewe::Context: threads must be >= 0, found ", options.threads);
        EWE_REQUIRE(options.cpu_im2col_elements > 0, "ewe::Context: cpu_im2col_elements must be positive, found ",
                    options.cpu_im2col_elements);
        if (options.cpu_product_precision == CpuProductPrecision::bf16) {
            EWE_REQUIRE(device == Device::cpu,
                        "ewe::Context: cpu_product_precision bf16 is a CPU mode; on CUDA use allow_tf32");
            EWE_REQUIRE(cpu_bf16_products_available(),
                        "ewe::Context: cpu_product_precision bf16 needs AVX512_BF16 in both the CPU and the build "
                        "(EWE_ARCH native on such a CPU); this ",
                        compiled_for_bf16() ? "CPU lacks it" : "program was compiled without it");
        }
        detail::check_cpu_build_once();
        if (device == Device::cuda) {
            // The first CUDA context loads the backend module (ewe/core/cuda_loader.hpp).
            if (detail::cuda_context_hooks() == nullptr) detail::load_cuda_backend("ewe::Context(Device::cuda)");
            cuda_resources_ = detail::cuda_context_hooks()->create_resources(options);
        }
        if (device == Device::cpu && options.flush_denormals) set_cpu_denormal_flushing(true);
    }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    Device device() const { return device_; }
    const ContextOptions& options() const { return options_; }

    // The backend of this context's device for element type T (float or double).
    template <class T>
    Backend<T>& backend() {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "ewe backends compute in float or double");
        if (device_ == Device::cpu) {
            if constexpr (std::is_same_v<T, double>)
                EWE_REQUIRE(options_.cpu_product_precision == CpuProductPrecision::fp32,
                            "ewe::Context: cpu_product_precision bf16 applies to float; this context computes in "
                            "double: use a context with the default fp32");
            Backend<T>* backend = detail::cpu_backend_slot<T>().load(std::memory_order_acquire);
            if (backend == nullptr) {
                if constexpr (std::is_same_v<T, float>)
                    fail("ewe::Context: no CPU backend is installed: include <ewe/ewe.hpp> (or ewe/cpu/backend.hpp) "
                         "in one file of the program, or link the ewe::compiled CMake target");
                else
                    fail("ewe::Context: no CPU backend for double is installed: include ewe/cpu/double_backend.hpp "
                         "in one file of the program, or link the ewe::compiled CMake target");
            }
            return *backend;
        }
        // The CUDA backend computes in float only: double on a CUDA context is refused
        // here, once, for every op.
        if constexpr (std::is_same_v<T, float>) return *detail::cuda_context_hooks()->backend;
        else fail("ewe::Context(Device::cuda): the CUDA backend computes in float only; build the model and its "
                  "tensors with float on Device::cuda (double runs on Device::cpu)");
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
    static constexpr bool compiled_for_bf16() {
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
        return true;
#else
        return false;
#endif
    }

    Device device_;
    ContextOptions options_;
    std::shared_ptr<void> cuda_resources_;
    Tensor<std::byte> cpu_scratch_;
    std::size_t cpu_scratch_bytes_ = 0;
};

}  // namespace ewe
