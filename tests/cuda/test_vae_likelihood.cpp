// importance_weighted_log_likelihood on CUDA, from host-compiled code (the backend module
// is loaded as sheep_vae loads it): with the same weights, images and seed, the CUDA
// estimates of log p(x) follow the CPU ones (the draws are made on the host, so only the
// encoder's and decoder's float arithmetic differs; bound 1e-5 relative plus 1e-3 nats),
// and a second CUDA run with the same seed repeats the first exactly.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "ewe/models/vae_likelihood.hpp"
#include "parity_util.cuh"

using namespace ewe;

TEST_CASE("IWAE log p(x) of the sheep VAE: CUDA follows the CPU for the same seed") {
    ContextOptions deterministic;
    deterministic.deterministic = true;
    Context cpu, gpu(Device::cuda, deterministic);
    constexpr std::int64_t kBatch = 16, kImages = 5;
    SheepVae<float> on_cpu(cpu, SheepVaeOptions{}, kBatch, 21), on_gpu(gpu, SheepVaeOptions{}, kBatch, 99);
    ewe::copy<float>(on_cpu.params().values(), on_gpu.params().values());
    const Tensor<float> images = test::uniform(Shape{kImages, 28, 28, 1}, 7, 0, 1);
    const ImportanceSamplingOptions options{24, 5, 0.25};  // 120 pairs: several decoder batches, the last one partial
    const std::vector<double> expected = importance_weighted_log_likelihood<float>(cpu, on_cpu, images.view(), options);
    const std::vector<double> actual = importance_weighted_log_likelihood<float>(gpu, on_gpu, images.view(), options);
    REQUIRE(actual.size() == expected.size());
    for (std::size_t i = 0; i < actual.size(); ++i) {
        CAPTURE(i);
        INFO("CUDA " << actual[i] << ", CPU " << expected[i]);
        CHECK(std::isfinite(expected[i]));
        CHECK(std::fabs(actual[i] - expected[i]) <= 1e-5 * std::fabs(expected[i]) + 1e-3);
    }
    CHECK(importance_weighted_log_likelihood<float>(gpu, on_gpu, images.view(), options) == actual);
}

EWE_CUDA_TEST_MAIN
