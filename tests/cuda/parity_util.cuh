// Helpers shared by the CUDA test programs: their main() (device report first, then
// skip or fail by the rule of ewe/cuda/device.cuh), deterministic random host tensors,
// NaN-filled outputs, and the CPU-vs-GPU comparisons. Every comparison first makes its
// own host copies of both tensors, wherever each lives, and reads only those copies;
// the relative error is ||a - b||_2 / max(||b||_2, 1e-30) in double, and any NaN or
// infinity on either side is an infinite error (an output never written stays NaN).
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>

#include "ewe/cuda/device.cuh"
#include "ewe/ewe.hpp"

namespace ewe::test {

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

// A host copy of `v`, from either device (ewe::copy waits for every stream).
template <class T>
Tensor<T> to_host(TensorView<const T> v) {
    return Tensor<T>::copy_of(v, Device::cpu);
}

// Fills each of `outputs` (host or device) with quiet NaN: call it on every output
// before the op under test, so an output the op fails to write cannot keep an earlier
// right answer.
inline void fill_nan(std::initializer_list<TensorView<float>> outputs) {
    for (const TensorView<float>& out : outputs) {
        Tensor<float> nan(out.shape());
        for (std::int64_t i = 0; i < nan.numel(); ++i) nan[i] = std::numeric_limits<float>::quiet_NaN();
        ewe::copy<float>(nan.view(), out);
    }
}

// Relative L2 error of `actual` against `expected` (see the top of the file).
inline double relative_error(TensorView<const float> actual, TensorView<const float> expected) {
    EWE_REQUIRE(actual.shape() == expected.shape(), "relative_error: shapes differ: ", actual.shape().str(), " vs ",
                expected.shape().str());
    const Tensor<float> a = to_host<float>(actual), e = to_host<float>(expected);
    double diff = 0, norm = 0;
    for (std::int64_t i = 0; i < e.numel(); ++i) {
        const double d = double(a[i]) - double(e[i]);
        diff += d * d;
        norm += double(e[i]) * double(e[i]);
    }
    if (!std::isfinite(diff) || !std::isfinite(norm)) return INFINITY;
    return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// Largest |actual - expected| over the elements (infinite if either side has a NaN).
inline double max_abs_difference(TensorView<const float> actual, TensorView<const float> expected) {
    EWE_REQUIRE(actual.shape() == expected.shape(), "max_abs_difference: shapes differ: ", actual.shape().str(),
                " vs ", expected.shape().str());
    const Tensor<float> a = to_host<float>(actual), e = to_host<float>(expected);
    double worst = 0;
    for (std::int64_t i = 0; i < e.numel(); ++i) {
        const double d = std::fabs(double(a[i]) - double(e[i]));
        if (!std::isfinite(d)) return INFINITY;
        worst = std::max(worst, d);
    }
    return worst;
}

}  // namespace ewe::test

// CHECKs that `actual` matches `expected` within `bound` (relative L2 error); either may
// be on either device.
#define EWE_CHECK_CLOSE(actual, expected, bound)                                                   \
    do {                                                                                           \
        const double ewe_err_ = ::ewe::test::relative_error((actual), (expected));                 \
        INFO(#actual " vs " #expected ": relative error " << ewe_err_ << " (bound " << (bound) << ")"); \
        CHECK(ewe_err_ <= (bound));                                                                \
    } while (0)

// main() of a CUDA doctest program: prints the CUDA driver, runtime and devices, then
// runs the tests, or leaves by the rule of ewe/cuda/device.cuh (skip code 77, or a
// failure with EWE_REQUIRE_CUDA=1) when no device is usable.
#define EWE_CUDA_TEST_MAIN                                                                 \
    int main(int argc, char** argv) {                                                      \
        if (const auto ewe_exit_ = ::ewe::cuda::exit_code_without_device(argv[0])) return *ewe_exit_; \
        doctest::Context context(argc, argv);                                              \
        return context.run();                                                              \
    }
