// Helpers shared by the CUDA test programs: device detection (a program prints
// "skipped: no CUDA device" and passes when there is none), deterministic random
// host tensors, host copies of device tensors and the relative error used for every
// CPU-vs-GPU comparison: ||gpu - cpu||_2 / max(||cpu||_2, 1e-30), in double.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>

#include <cuda_runtime.h>

#include "ewe/ewe.hpp"

namespace ewe::test {

// True when at least one CUDA device can be used (an error counts as none).
inline bool cuda_available() {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return count > 0;
}

// Uniform values in [lo, hi) from Philox stream `stream` of seed 2024.
inline Tensor<float> uniform(const Shape& shape, std::uint32_t stream, float lo = -1.0f, float hi = 1.0f) {
    Tensor<float> t(shape);
    const PhiloxKey key{2024, stream, 0};
    for (std::int64_t i = 0; i < t.numel(); ++i) {
        const float u = float(philox_bits(key, std::uint64_t(i)) >> 8) * (1.0f / 16777216.0f);
        t[i] = lo + (hi - lo) * u;
    }
    return t;
}

template <class T>
Tensor<T> to_host(TensorView<const T> v) {
    Tensor<T> h(v.shape());
    ewe::copy<T>(v, h.view());
    return h;
}

inline double relative_error(TensorView<const float> gpu, TensorView<const float> cpu) {
    Tensor<float> g = gpu.device() == Device::cuda ? to_host<float>(gpu) : Tensor<float>();
    const float* a = gpu.device() == Device::cuda ? g.data() : gpu.data();
    double diff = 0, norm = 0;
    for (std::int64_t i = 0; i < cpu.numel(); ++i) {
        const double d = double(a[i]) - double(cpu[i]);
        diff += d * d;
        norm += double(cpu[i]) * double(cpu[i]);
    }
    if (!std::isfinite(diff)) return INFINITY;
    return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

inline double max_abs_difference(TensorView<const float> gpu, TensorView<const float> cpu) {
    Tensor<float> g = to_host<float>(gpu);
    double worst = 0;
    for (std::int64_t i = 0; i < cpu.numel(); ++i) worst = std::max(worst, std::fabs(double(g[i]) - double(cpu[i])));
    return worst;
}

}  // namespace ewe::test

// CHECKs that the GPU tensor matches the CPU one within `bound` (relative L2 error).
#define EWE_CHECK_CLOSE(gpu, cpu, bound)                                                   \
    do {                                                                                   \
        const double ewe_err_ = ::ewe::test::relative_error((gpu), (cpu));                 \
        INFO(#gpu " vs " #cpu ": relative error " << ewe_err_ << " (bound " << (bound) << ")"); \
        CHECK(ewe_err_ <= (bound));                                                        \
    } while (0)

// main() of a CUDA doctest program: skips (and passes) without a device.
#define EWE_CUDA_TEST_MAIN                                                                 \
    int main(int argc, char** argv) {                                                      \
        if (!::ewe::test::cuda_available()) {                                              \
            std::printf("skipped: no CUDA device\n");                                      \
            return 0;                                                                      \
        }                                                                                  \
        doctest::Context context(argc, argv);                                              \
        return context.run();                                                              \
    }
