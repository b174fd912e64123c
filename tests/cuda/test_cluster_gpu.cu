// CUDA clustering: dbscan_gpu and kmeans_gpu on an ewe::Context must give exactly the
// CPU results (both round every distance step as one fma: detail::sq_step), on either
// of two contexts, with fills queued on one of them, and at the size of the full sheep
// file's latent space (126,121 points). Skips through EWE_CUDA_TEST_MAIN without a device.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "ewe/cluster/dbscan.cuh"
#include "ewe/cluster/kmeans.cuh"
#include "latent_points.hpp"
#include "parity_util.cuh"

using namespace ewe;
using namespace ewe::cluster;
using ewe::test::latent_like;

namespace {

void check_same(const DbscanResult& gpu, const DbscanResult& cpu) {
    CHECK(gpu.labels == cpu.labels);
    CHECK(gpu.core == cpu.core);
    CHECK(gpu.n_clusters == cpu.n_clusters);
    CHECK(gpu.n_noise == cpu.n_noise);
}

void check_same(const KMeansResult& gpu, const KMeansResult& cpu) {
    CHECK(gpu.labels == cpu.labels);
    CHECK(gpu.centers == cpu.centers);
    CHECK(gpu.inertia == cpu.inertia);
    CHECK(gpu.init_inertia == cpu.init_inertia);
    CHECK(gpu.iterations == cpu.iterations);
    CHECK(gpu.best_init == cpu.best_init);
}

}  // namespace

TEST_CASE("dbscan_gpu equals dbscan") {
    Context ctx(Device::cuda);
    for (int d : {1, 2, 3, 5}) {
        const std::int64_t n = 20000;
        const std::vector<double> x = latent_like(n, d, 3 + d);
        for (double eps : {0.01, 0.05, 0.3})
            for (std::int64_t m : {1, 5, 50}) {
                INFO("d = " << d << ", eps = " << eps << ", min_pts = " << m);
                const DbscanResult cpu = dbscan(x.data(), n, d, DbscanOptions{eps, m});
                // Some points are core and some are not (else the flags test little).
                if (d <= 3 && eps == 0.05 && m == 50) CHECK((cpu.n_noise > 0 && cpu.n_clusters > 0));
                check_same(dbscan_gpu(ctx, x.data(), n, d, DbscanOptions{eps, m}), cpu);
            }
    }
}

TEST_CASE("dbscan_gpu on 126,121 points in 2-D (the full sheep file's latent space) and on float input") {
    Context ctx(Device::cuda);
    const std::int64_t n = 126121;
    const std::vector<double> x = latent_like(n, 2, 7);
    check_same(dbscan_gpu(ctx, x.data(), n, 2, DbscanOptions{0.05, 50}), dbscan(x.data(), n, 2, DbscanOptions{0.05, 50}));
    const std::vector<float> xf(x.begin(), x.end());
    check_same(dbscan_gpu(ctx, xf.data(), n, 2, DbscanOptions{0.05, 50}), dbscan(xf.data(), n, 2, DbscanOptions{0.05, 50}));
}

TEST_CASE("kmeans_gpu equals kmeans (Lloyd)") {
    Context ctx(Device::cuda);
    // d = 800: 7 centres per shared-memory tile (several tiles for k = 40);
    // d = 7000: a centre is larger than 48 KiB and is read in place.
    for (int d : {2, 8, 800, 7000}) {
        INFO("d = " << d);
        const std::int64_t n = d <= 8 ? 30000 : 600;
        const std::vector<double> x = latent_like(n, d, 11 + d);
        const KMeansOptions o = KMeansOptions{}.set_k(40).set_seed(5).set_n_init(2).set_algorithm(KMeansAlgorithm::lloyd);
        const KMeansResult cpu = kmeans(x.data(), n, d, o);
        CHECK(cpu.iterations > 1);
        check_same(kmeans_gpu(ctx, x.data(), n, d, o), cpu);
    }
}

TEST_CASE("two contexts: the same results on either, with work queued on the first") {
    Context first(Device::cuda), second(Device::cuda);
    const std::int64_t n = 126121;
    const std::vector<double> x = latent_like(n, 2, 21);
    const KMeansOptions o = KMeansOptions{}.set_k(12).set_seed(3).set_algorithm(KMeansAlgorithm::lloyd);
    const DbscanResult dbscan_cpu = dbscan(x.data(), n, 2, DbscanOptions{0.05, 50});
    const KMeansResult kmeans_cpu = kmeans(x.data(), n, 2, o);

    // 256 MiB of fills queued on `first`, not waited for, while both contexts cluster.
    Tensor<float> busy(Shape{64 << 20}, Device::cuda);
    for (int r = 0; r < 8; ++r) ops::fill<float>(first, float(r), busy.view());
    check_same(dbscan_gpu(second, x.data(), n, 2, DbscanOptions{0.05, 50}), dbscan_cpu);
    check_same(kmeans_gpu(first, x.data(), n, 2, o), kmeans_cpu);
    check_same(kmeans_gpu(second, x.data(), n, 2, o), kmeans_cpu);
    check_same(dbscan_gpu(first, x.data(), n, 2, DbscanOptions{0.05, 50}), dbscan_cpu);
    first.synchronize();
    CHECK(test::to_host<float>(busy.view())[(64 << 20) - 1] == 7.0f);
}

TEST_CASE("kmeans_gpu and dbscan_gpu refuse a CPU context") {
    Context cpu;
    const std::vector<double> x = latent_like(100, 2, 1);
    CHECK_THROWS_WITH(kmeans_gpu(cpu, x.data(), 100, 2, KMeansOptions{}),
                      doctest::Contains("kmeans_gpu: expected a CUDA context"));
    CHECK_THROWS_WITH(dbscan_gpu(cpu, x.data(), 100, 2, DbscanOptions{}),
                      doctest::Contains("dbscan_gpu: expected a CUDA context"));
}

EWE_CUDA_TEST_MAIN
