// DBSCAN on a CUDA context for large n, with exactly the labels of ewe/cluster/dbscan.hpp:
// the host sorts the points into the same eps/sqrt(d) grid, a fused kernel on the
// context's stream counts every point's neighbours (distance and threshold in one pass
// over the 5^d cells around it, fp64, the same fused-multiply-add steps as the host,
// early exit at min_pts), and the host merges the core cells and labels border points
// as the CPU grid does. d = 1..3 (the grid's range); higher d, or a grid too large for
// 64-bit cell keys, runs the CPU k-d tree instead. Include from a .cu file (nvcc).
#pragma once

#if !defined(__CUDACC__)
#error "ewe/cluster/dbscan.cuh needs nvcc: include it from a .cu file that links ewe::cuda"
#endif

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "ewe/cluster/dbscan.hpp"
#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/cuda/check.cuh"
#include "ewe/cuda/resources.cuh"
#include "ewe/kernels/common.cuh"

namespace ewe::cluster {

namespace cuda_kernels {

// The grid as the kernel needs it (DbscanGrid::Layout without the host pointers).
struct KernelGridLayout {
    int d;
    std::int64_t cells;
    double eps2;
    std::int64_t dims[3];
};

// First cell whose key is >= key (cells are sorted by key).
__host__ __device__ inline std::int64_t lower_bound_key(const std::uint64_t* keys, std::int64_t count, std::uint64_t key) {
    std::int64_t lo = 0, hi = count;
    while (lo < hi) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// Whether the point at sorted position p has at least `cap` neighbours (itself included).
// Host-callable too: tests/cuda/host_test_cluster_kernels.cu checks it without a GPU.
template <class Real>
__host__ __device__ bool dbscan_is_core(std::int64_t p, const Real* __restrict__ pts,
                                      const std::int32_t* __restrict__ cell_of, const std::int32_t* __restrict__ start,
                                      const std::uint64_t* __restrict__ keys, const KernelGridLayout& g, std::int32_t cap) {
    const int d = g.d;
    const std::int32_t c = cell_of[p];
    std::int32_t count = start[c + 1] - start[c];  // a cell is narrower than eps: all of it is in reach
    if (count >= cap) return true;
    Real xp[3] = {0, 0, 0};
    for (int a = 0; a < d; ++a) xp[a] = pts[p * d + a];
    std::int64_t cc[3] = {0, 0, 0};
    std::uint64_t key = keys[c];
    for (int a = d - 1; a >= 0; --a) {
        cc[a] = static_cast<std::int64_t>(key % static_cast<std::uint64_t>(g.dims[a]));
        key /= static_cast<std::uint64_t>(g.dims[a]);
    }
    // Rows are the cells sharing all coordinates but the last; the cells of one row
    // within two steps of cc along the last axis form one contiguous key range.
    const int last = d - 1;
    const std::int64_t zlo = cc[last] >= 2 ? cc[last] - 2 : 0;
    const std::int64_t zhi = cc[last] + 2 < g.dims[last] ? cc[last] + 2 : g.dims[last] - 1;
    const std::uint64_t per_row = static_cast<std::uint64_t>(g.dims[last]);
    const int rows = last == 0 ? 1 : last == 1 ? 5 : 25;
    for (int combo = 0; combo < rows && count < cap; ++combo) {
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
        const std::uint64_t klo = static_cast<std::uint64_t>(row) * per_row + static_cast<std::uint64_t>(zlo);
        const std::uint64_t khi = static_cast<std::uint64_t>(row) * per_row + static_cast<std::uint64_t>(zhi);
        for (std::int64_t c2 = lower_bound_key(keys, g.cells, klo); c2 < g.cells && keys[c2] <= khi && count < cap; ++c2) {
            if (c2 == c) continue;  // counted whole above
            for (std::int32_t q = start[c2]; q < start[c2 + 1]; ++q) {
                Real s = 0;
                for (int a = 0; a < d; ++a) s = detail::sq_step(s, xp[a] - pts[static_cast<std::int64_t>(q) * d + a]);
                if (s <= g.eps2 && ++count >= cap) break;
            }
        }
    }
    return count >= cap;
}

// Core flags (0 or 1) of all n points in sorted order, grid-stride. A template (used
// with double) so that several .cu files of one program may include this header.
template <class Real>
__global__ void dbscan_count(const Real* __restrict__ pts, std::int64_t n, const std::int32_t* __restrict__ cell_of,
                             const std::int32_t* __restrict__ start, const std::uint64_t* __restrict__ keys,
                             KernelGridLayout g, std::int32_t cap, std::uint8_t* __restrict__ core) {
    for (std::int64_t p = ewe::cuda::kernels::global_index(); p < n; p += ewe::cuda::kernels::grid_stride())
        core[p] = dbscan_is_core(p, pts, cell_of, start, keys, g, cap) ? 1 : 0;
}

// The kernel's view of a grid, and each sorted point's cell.
inline KernelGridLayout kernel_grid_layout(const detail::DbscanGrid::Layout& L) {
    KernelGridLayout g{};
    g.d = L.d;
    g.cells = L.cells;
    g.eps2 = L.eps2;
    for (int a = 0; a < 3; ++a) g.dims[a] = L.dims[a];
    return g;
}
inline std::vector<std::int32_t> cell_of_points(const detail::DbscanGrid::Layout& L) {
    std::vector<std::int32_t> cell_of(L.n);
    for (std::int64_t c = 0; c < L.cells; ++c)
        for (std::int32_t p = L.start[c]; p < L.start[c + 1]; ++p) cell_of[p] = static_cast<std::int32_t>(c);
    return cell_of;
}

}  // namespace cuda_kernels

// DBSCAN of n x d host points (row-major, any arithmetic type) with the neighbour
// counts on `ctx`'s device and stream (see the top of the file). The sorted points and
// the cell tables are uploaded once, one kernel runs on the context's stream, and the
// core flags come back on it; the context is synchronized once (ctx.synchronize()),
// because the host merges the clusters from the flags. (The uploads, ewe::copy, and the
// release of the device tensors wait for the whole device, as every ewe tensor copy
// and free does.)
template <class T>
DbscanResult dbscan_gpu(Context& ctx, const T* points, std::int64_t n, int d, const DbscanOptions& options) {
    EWE_REQUIRE(ctx.device() == Device::cuda, "dbscan_gpu: expected a CUDA context (ewe::Context ctx(ewe::Device::cuda)), "
                "found a ", to_string(ctx.device()), " one");
    detail::check_dbscan_args(options, "dbscan_gpu");
    EWE_REQUIRE(n >= 0 && d >= 1 && n < std::numeric_limits<std::int32_t>::max(), "dbscan_gpu: expected 0 <= n < 2^31 - 1 points of dimension d >= 1, found n = ", n, ", d = ", d);
    detail::DbscanGrid grid;
    if (d > 3 || !grid.build(points, n, d, options.eps)) {
        const std::vector<double> x = detail::to_double_points(points, n, d, "dbscan_gpu");
        return detail::dbscan_kdtree(x, n, d, options);
    }
    if (n == 0) return grid.cluster({});
    const auto L = grid.layout();
    const std::vector<std::int32_t> cell_of = cuda_kernels::cell_of_points(L);

    ewe::cuda::Resources& res = ewe::cuda::resources(ctx);
    res.activate();
    const cudaStream_t stream = res.stream();
    const auto dpts = Tensor<double>::copy_of({L.points, Shape{n, d}}, Device::cuda);
    const auto dcell = Tensor<std::int32_t>::copy_of({cell_of.data(), Shape{n}}, Device::cuda);
    const auto dstart = Tensor<std::int32_t>::copy_of({L.start, Shape{L.cells + 1}}, Device::cuda);
    const auto dkeys = Tensor<std::uint64_t>::copy_of({L.keys, Shape{L.cells}}, Device::cuda);
    Tensor<std::uint8_t> dcore(Shape{n}, Device::cuda);

    const cuda_kernels::KernelGridLayout g = cuda_kernels::kernel_grid_layout(L);
    const std::int32_t cap = static_cast<std::int32_t>(std::min<std::int64_t>(options.min_pts, n + 1));
    // All bits set (255, neither 0 nor 1): a flag the kernel misses cannot keep an earlier result.
    EWE_CUDA_CHECK(cudaMemsetAsync(dcore.data(), 0xFF, static_cast<std::size_t>(n), stream));
    ewe::cuda::kernels::launch_1d("cluster::cuda_kernels::dbscan_count", stream, n, cuda_kernels::dbscan_count<double>,
                                  dpts.data(), n, dcell.data(), dstart.data(), dkeys.data(), g, cap, dcore.data());
    std::vector<std::uint8_t> core(n);
    EWE_CUDA_CHECK(cudaMemcpyAsync(core.data(), dcore.data(), static_cast<std::size_t>(n), cudaMemcpyDeviceToHost, stream));
    ctx.synchronize();  // the host reads the flags next
    for (std::int64_t p = 0; p < n; ++p)
        if (core[p] > 1)
            fail("dbscan_gpu: the counting kernel left core flag ", int(core[p]), " at sorted position ", p,
                 " (expected 0 or 1): a CUDA defect, please report it");
    return grid.cluster(core);
}

}  // namespace ewe::cluster
