// CUDA clustering: dbscan_gpu and kmeans_gpu must give exactly the CPU results. Prints
// "skipped: no CUDA device" and passes when cudaGetDeviceCount reports none.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "ewe/cluster/dbscan.cuh"
#include "ewe/cluster/dbscan.hpp"
#include "ewe/cluster/kmeans.cuh"
#include "ewe/cluster/kmeans.hpp"

using namespace ewe::cluster;

namespace {

bool have_device() {
    static const bool have = [] {
        const bool any = cuda::device_count() > 0;
        if (!any) std::printf("skipped: no CUDA device\n");
        return any;
    }();
    return have;
}

std::vector<double> latent_like(std::int64_t n, int d, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> x(static_cast<std::size_t>(n) * d);
    for (std::int64_t i = 0; i < n; ++i) {
        const int kind = static_cast<int>(rng() % 3);
        for (int k = 0; k < d; ++k)
            x[i * d + k] = kind == 0 ? 0.1 * normal(rng) - 1 : kind == 1 ? 0.2 * normal(rng) + 1 : 1.5 * normal(rng);
    }
    return x;
}

}  // namespace

TEST_CASE("dbscan_gpu equals dbscan") {
    if (!have_device()) return;
    for (int d : {1, 2, 3, 5}) {
        const std::int64_t n = 20000;
        const std::vector<double> x = latent_like(n, d, 3 + d);
        for (double eps : {0.01, 0.05, 0.3})
            for (std::int64_t m : {1, 5, 50}) {
                const DbscanResult cpu = dbscan(x.data(), n, d, DbscanOptions{eps, m});
                const DbscanResult gpu = dbscan_gpu(x.data(), n, d, DbscanOptions{eps, m});
                CHECK(gpu.labels == cpu.labels);
                CHECK(gpu.core == cpu.core);
                CHECK(gpu.n_clusters == cpu.n_clusters);
            }
    }
}

TEST_CASE("kmeans_gpu equals kmeans (Lloyd)") {
    if (!have_device()) return;
    for (int d : {2, 8}) {
        const std::int64_t n = 30000;
        const std::vector<double> x = latent_like(n, d, 11 + d);
        const KMeansOptions o = KMeansOptions{}.set_k(40).set_seed(5).set_n_init(2).set_algorithm(KMeansAlgorithm::lloyd);
        const KMeansResult cpu = kmeans(x.data(), n, d, o);
        const KMeansResult gpu = kmeans_gpu(x.data(), n, d, o);
        CHECK(gpu.labels == cpu.labels);
        CHECK(gpu.centers == cpu.centers);
        CHECK(gpu.inertia == cpu.inertia);
        CHECK(gpu.iterations == cpu.iterations);
    }
}
