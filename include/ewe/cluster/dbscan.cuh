// DBSCAN on a CUDA device for large n, with exactly the labels of ewe/cluster/dbscan.hpp:
// the host sorts the points into the same eps/sqrt(d) grid, a fused kernel counts
// every point's neighbours (distance and threshold in one pass over the 5^d cells
// around it, fp64, the same fused-multiply-add steps as the host, early exit at
// min_pts), and the host merges the core cells and labels border points as the CPU
// grid does. d = 1..3 (the grid's range); higher d falls back to the CPU k-d tree.
#pragma once

#if defined(__CUDACC__)

#include <cstdint>
#include <vector>

#include "ewe/cluster/cuda_util.cuh"
#include "ewe/cluster/dbscan.hpp"

namespace ewe::cluster {

namespace cuda_kernels {

struct GridParams {
    int d;
    std::int64_t cells;
    double eps2, side;
    double lo[3], margin[3];
    std::int64_t dims[3];
};

__device__ inline std::int64_t lower_bound_key(const std::uint64_t* keys, std::int64_t count, std::uint64_t key) {
    std::int64_t lo = 0, hi = count;
    while (lo < hi) {
        const std::int64_t mid = (lo + hi) / 2;
        if (keys[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// One thread per (sorted) point: core flag = at least `cap` points within eps.
__global__ void dbscan_count(const double* __restrict__ pts, std::int64_t n, const std::int32_t* __restrict__ cell_of,
                             const std::int32_t* __restrict__ start, const std::uint64_t* __restrict__ keys,
                             GridParams g, std::int32_t cap, std::uint8_t* __restrict__ core) {
    const std::int64_t p = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (p >= n) return;
    const int d = g.d;
    const std::int32_t c = cell_of[p];
    std::int32_t count = start[c + 1] - start[c];
    if (count >= cap) {
        core[p] = 1;
        return;
    }
    double xp[3] = {0, 0, 0};
    for (int a = 0; a < d; ++a) xp[a] = pts[p * d + a];
    std::int64_t cc[3] = {0, 0, 0};
    std::uint64_t key = keys[c];
    for (int a = d - 1; a >= 0; --a) {
        cc[a] = static_cast<std::int64_t>(key % static_cast<std::uint64_t>(g.dims[a]));
        key /= static_cast<std::uint64_t>(g.dims[a]);
    }
    const int last = d - 1;
    const std::int64_t zlo = max(cc[last] - 2, static_cast<std::int64_t>(0));
    const std::int64_t zhi = min(cc[last] + 2, g.dims[last] - 1);
    const int combos = last == 0 ? 1 : last == 1 ? 5 : 25;
    for (int combo = 0; combo < combos && count < cap; ++combo) {
        std::int64_t row = 0;
        bool inside = true;
        int rest = combo;
        for (int a = 0; a < last; ++a) {
            const std::int64_t v = cc[a] + rest % 5 - 2;
            rest /= 5;
            if (v < 0 || v >= g.dims[a]) inside = false;
            row = row * g.dims[a] + v;
        }
        if (!inside) continue;
        const std::uint64_t per_row = static_cast<std::uint64_t>(g.dims[last]);
        const std::uint64_t klo = static_cast<std::uint64_t>(row) * per_row + static_cast<std::uint64_t>(zlo);
        const std::uint64_t khi = static_cast<std::uint64_t>(row) * per_row + static_cast<std::uint64_t>(zhi);
        for (std::int64_t c2 = lower_bound_key(keys, g.cells, klo); c2 < g.cells && keys[c2] <= khi && count < cap; ++c2) {
            if (c2 == c) continue;
            for (std::int32_t q = start[c2]; q < start[c2 + 1]; ++q) {
                double s = 0;
                for (int a = 0; a < d; ++a) s = detail::sq_step(s, xp[a] - pts[static_cast<std::int64_t>(q) * d + a]);
                if (s <= g.eps2 && ++count >= cap) break;
            }
        }
    }
    core[p] = count >= cap;
}

}  // namespace cuda_kernels

// DBSCAN with neighbour counting on the current CUDA device (see the top of the file).
template <class T>
DbscanResult dbscan_gpu(const T* points, std::int64_t n, int d, const DbscanOptions& options) {
    detail::check_dbscan_args(options, "dbscan_gpu");
    EWE_REQUIRE(n >= 0 && d >= 1 && n < std::numeric_limits<std::int32_t>::max(), "dbscan_gpu: expected 0 <= n < 2^31 - 1 points of dimension d >= 1, found n = ", n, ", d = ", d);
    detail::DbscanGrid grid;
    if (d > 3 || !grid.build(points, n, d, options.eps)) {
        const std::vector<double> x = detail::to_double_points(points, n, d, "dbscan_gpu");
        return detail::dbscan_kdtree(x, n, d, options);
    }
    if (n == 0) return grid.cluster({});
    const auto L = grid.layout();
    std::vector<std::int32_t> cell_of(n);
    for (std::int64_t c = 0; c < L.cells; ++c)
        for (std::int32_t p = L.start[c]; p < L.start[c + 1]; ++p) cell_of[p] = static_cast<std::int32_t>(c);
    cuda::DeviceBuffer<double> dpts(L.points, static_cast<std::size_t>(n) * d);
    cuda::DeviceBuffer<std::int32_t> dcell(cell_of.data(), n), dstart(L.start, L.cells + 1);
    cuda::DeviceBuffer<std::uint64_t> dkeys(L.keys, L.cells);
    cuda::DeviceBuffer<std::uint8_t> dcore(n);
    cuda_kernels::GridParams g{};
    g.d = d;
    g.cells = L.cells;
    g.eps2 = L.eps2;
    g.side = L.side;
    for (int a = 0; a < 3; ++a) {
        g.lo[a] = L.lo[a];
        g.margin[a] = L.margin[a];
        g.dims[a] = L.dims[a];
    }
    const std::int32_t cap = static_cast<std::int32_t>(std::min<std::int64_t>(options.min_pts, n + 1));
    const int threads = 256;
    cuda_kernels::dbscan_count<<<static_cast<unsigned>((n + threads - 1) / threads), threads>>>(
        dpts.data(), n, dcell.data(), dstart.data(), dkeys.data(), g, cap, dcore.data());
    cuda::check_launch("dbscan_count");
    std::vector<std::uint8_t> core(n);
    dcore.download(core.data(), n);
    return grid.cluster(core);
}

}  // namespace ewe::cluster

#endif  // __CUDACC__
