// The per-point bodies of the GPU clustering kernels, run on the host (they are
// __host__ __device__), so their index math is checked on every machine, GPU or not:
// dbscan_is_core over the grid the kernel receives must give dbscan's labels, and
// fold_nearest over the kernel's centre tiles must give assign_lloyd's labels and
// distances. test_cluster_gpu.cu runs the kernels themselves on a device.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "ewe/cluster/dbscan.cuh"
#include "ewe/cluster/kmeans.cuh"
#include "latent_points.hpp"

using namespace ewe::cluster;
using ewe::test::latent_like;

TEST_CASE("dbscan_is_core on the kernel's grid gives dbscan's labels") {
    for (int d : {1, 2, 3}) {
        const std::int64_t n = 6000;
        const std::vector<double> x = latent_like(n, d, 40 + d);
        for (double eps : {0.02, 0.1, 0.4})
            for (std::int64_t m : {std::int64_t{1}, std::int64_t{4}, std::int64_t{30}, n + 5}) {
                INFO("d = " << d << ", eps = " << eps << ", min_pts = " << m);
                detail::DbscanGrid grid;
                REQUIRE(grid.build(x.data(), n, d, eps));
                const auto L = grid.layout();
                const cuda_kernels::KernelGridLayout g = cuda_kernels::kernel_grid_layout(L);
                const std::vector<std::int32_t> cell_of = cuda_kernels::cell_of_points(L);
                const std::int32_t cap = static_cast<std::int32_t>(std::min<std::int64_t>(m, n + 1));
                std::vector<std::uint8_t> core(n, 0xFF);
                for (std::int64_t p = 0; p < n; ++p)
                    core[p] = cuda_kernels::dbscan_is_core(p, L.points, cell_of.data(), L.start, L.keys, g, cap);
                const DbscanResult host = grid.cluster(core);
                const DbscanResult cpu = dbscan(x.data(), n, d, DbscanOptions{eps, m});
                CHECK(host.labels == cpu.labels);
                CHECK(host.core == cpu.core);
                CHECK(host.n_clusters == cpu.n_clusters);
            }
    }
}

TEST_CASE("tile_centers: 48 KiB tiles, or 0 when one centre does not fit") {
    CHECK(cuda_kernels::tile_centers(40, 2) == 40);
    CHECK(cuda_kernels::tile_centers(5000, 2) == 3072);
    CHECK(cuda_kernels::tile_centers(40, 800) == 7);
    CHECK(cuda_kernels::tile_centers(40, 6144) == 1);
    CHECK(cuda_kernels::tile_centers(40, 6145) == 0);
}

TEST_CASE("fold_nearest over the kernel's centre tiles gives assign_lloyd's result") {
    for (int d : {2, 800, 7000}) {
        INFO("d = " << d);
        const std::int64_t n = 300, k = 40;
        const std::vector<double> x = latent_like(n, d, 60 + d);
        // Duplicate centres in different tiles: ties must go to the lower index.
        std::vector<double> centers(x.begin(), x.begin() + k * d);
        std::copy(centers.begin(), centers.begin() + d, centers.end() - d);
        std::vector<std::int32_t> labels(n, -1);
        std::vector<double> dist2(n, -1.0);
        detail::assign_lloyd(x, n, d, centers, k, labels.data(), dist2.data());
        const std::int64_t per_tile = cuda_kernels::tile_centers(k, d);
        const std::int64_t step = per_tile > 0 ? per_tile : k;  // as kmeans_assign walks the centres
        std::int64_t mismatches = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            double best = INFINITY;
            std::int32_t arg = -1;
            for (std::int64_t t0 = 0; t0 < k; t0 += step)
                cuda_kernels::fold_nearest(&x[i * d], &centers[t0 * d], t0, std::min(step, k - t0), d, best, arg);
            mismatches += arg != labels[i] || best != dist2[i];
        }
        CHECK(mismatches == 0);
        CHECK(labels[0] == 0);  // point 0 is centre 0 and centre k - 1: the lower index wins
    }
}
