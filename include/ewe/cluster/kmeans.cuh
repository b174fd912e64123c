// k-means on a CUDA context: the same k-means++ seeding (on the host) and Lloyd
// iterations as ewe/cluster/kmeans.hpp, with the assignment step (distances to all
// centres and the argmin, fused in one kernel, fp64, ties to the lower index) on the
// context's stream and the centre update on the host, so labels, centres and inertia
// equal the CPU result with KMeansAlgorithm::lloyd. Include from a .cu file (nvcc).
#pragma once

#if !defined(__CUDACC__)
#error "ewe/cluster/kmeans.cuh needs nvcc: include it from a .cu file that links ewe::cuda"
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ewe/cluster/kmeans.hpp"
#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/cuda/check.cuh"
#include "ewe/cuda/resources.cuh"
#include "ewe/kernels/common.cuh"

namespace ewe::cluster {

namespace cuda_kernels {

// Dynamic shared memory a block may use without opting in (the 48 KiB default).
constexpr std::size_t kSharedBytes = 48u << 10;

// Folds centres [first, first + m) (at `block`, m x d) into a point's running nearest
// centre (best squared distance, its index): the CPU's assign_lloyd order, ties to the
// lower index. Host-callable too: tests/cuda/host_test_cluster_kernels.cu.
template <class Real>
__host__ __device__ void fold_nearest(const Real* xi, const Real* block, std::int64_t first, std::int64_t m, int d,
                                      Real& best, std::int32_t& arg) {
    for (std::int64_t j = 0; j < m; ++j) {
        Real s = 0;
        for (int a = 0; a < d; ++a) s = detail::sq_step(s, xi[a] - block[j * d + a]);
        if (s < best) {
            best = s;
            arg = static_cast<std::int32_t>(first + j);
        }
    }
}

// Centres per shared-memory tile: as many as fit in kSharedBytes, at most k; 0 when
// one centre alone is larger (the kernel then reads them in place).
inline std::int64_t tile_centers(std::int64_t k, int d) {
    const std::int64_t center_bytes = static_cast<std::int64_t>(d) * static_cast<std::int64_t>(sizeof(double));
    return std::min<std::int64_t>(k, static_cast<std::int64_t>(kSharedBytes) / center_bytes);
}

// Each point's nearest centre and squared distance (grid-stride over blocks of
// points). With per_tile = tile_centers(k, d) > 0 the centres pass through shared
// memory per_tile at a time; with 0 they are read in place. A template (used with
// double), like every kernel in kernels/: a plain __global__ function defined in a
// header breaks the link of a program whose .cu files both include it.
template <class Real>
__global__ void kmeans_assign(const Real* __restrict__ x, std::int64_t n, int d, const Real* __restrict__ centers,
                              std::int64_t k, std::int64_t per_tile, std::int32_t* __restrict__ labels,
                              Real* __restrict__ mind2) {
    extern __shared__ unsigned char tile_bytes[];
    Real* tile = reinterpret_cast<Real*>(tile_bytes);
    const std::int64_t step = per_tile > 0 ? per_tile : k;
    // `first` is the same for every thread of a block, so all of them reach each barrier.
    for (std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * blockDim.x; first < n;
         first += ewe::cuda::kernels::grid_stride()) {
        const std::int64_t i = first + threadIdx.x;
        Real best = INFINITY;
        std::int32_t arg = 0;
        for (std::int64_t t0 = 0; t0 < k; t0 += step) {
            const std::int64_t m = min(step, k - t0);
            const Real* block = centers + t0 * d;
            if (per_tile > 0) {
                __syncthreads();  // every thread is done with the previous tile
                for (std::int64_t e = threadIdx.x; e < m * d; e += blockDim.x) tile[e] = block[e];
                __syncthreads();
                block = tile;
            }
            if (i < n) fold_nearest(x + i * d, block, t0, m, d, best, arg);
        }
        if (i < n) {
            labels[i] = arg;
            mind2[i] = best;
        }
    }
}

}  // namespace cuda_kernels

// k-means of n x d host points (row-major, any arithmetic type) with the assignment on
// `ctx`'s device and stream (see the top of the file). The points are uploaded once;
// each assignment uploads the centres, runs one kernel and copies labels and squared
// distances back, all on the context's stream, and synchronizes the context once
// (ctx.synchronize()) because the host needs them for the centre update: iterations + 1
// times per restart. (The upload of the points, ewe::copy, and the release of the
// device tensors wait for the whole device, as every ewe tensor copy and free does.)
template <class T>
KMeansResult kmeans_gpu(Context& ctx, const T* points, std::int64_t n, int d, const KMeansOptions& options) {
    EWE_REQUIRE(ctx.device() == Device::cuda, "kmeans_gpu: expected a CUDA context (ewe::Context ctx(ewe::Device::cuda)), "
                "found a ", to_string(ctx.device()), " one");
    const std::vector<double> x = detail::to_double_points(points, n, d, "kmeans_gpu");
    detail::check_kmeans_args(options, n, "kmeans_gpu");
    const std::int64_t k = options.k;
    ewe::cuda::Resources& res = ewe::cuda::resources(ctx);
    res.activate();
    const cudaStream_t stream = res.stream();

    const auto dx = Tensor<double>::copy_of({x.data(), Shape{n, d}}, Device::cuda);
    Tensor<double> dcenters({k, d}, Device::cuda), dmind2({n}, Device::cuda);
    Tensor<std::int32_t> dlabels({n}, Device::cuda);

    const std::int64_t per_tile = cuda_kernels::tile_centers(k, d);
    const std::size_t shared = static_cast<std::size_t>(per_tile * d) * sizeof(double);

    auto assign_on_device = [&](const std::vector<double>& centers, std::vector<std::int32_t>& labels,
                                std::vector<double>& dist2) {
        EWE_CUDA_CHECK(cudaMemcpyAsync(dcenters.data(), centers.data(), centers.size() * sizeof(double),
                                       cudaMemcpyHostToDevice, stream));
        // All bits set: label -1 and a NaN distance, so a point the kernel misses cannot
        // keep an earlier result.
        EWE_CUDA_CHECK(cudaMemsetAsync(dlabels.data(), 0xFF, static_cast<std::size_t>(n) * sizeof(std::int32_t), stream));
        EWE_CUDA_CHECK(cudaMemsetAsync(dmind2.data(), 0xFF, static_cast<std::size_t>(n) * sizeof(double), stream));
        ewe::cuda::kernels::launch_1d_shared("cluster::cuda_kernels::kmeans_assign", stream, n, shared,
                                             cuda_kernels::kmeans_assign<double>, dx.data(), n, d, dcenters.data(), k,
                                             per_tile, dlabels.data(), dmind2.data());
        EWE_CUDA_CHECK(cudaMemcpyAsync(labels.data(), dlabels.data(), static_cast<std::size_t>(n) * sizeof(std::int32_t),
                                       cudaMemcpyDeviceToHost, stream));
        EWE_CUDA_CHECK(cudaMemcpyAsync(dist2.data(), dmind2.data(), static_cast<std::size_t>(n) * sizeof(double),
                                       cudaMemcpyDeviceToHost, stream));
        ctx.synchronize();  // the host reads labels and dist2 next
        for (std::int64_t i = 0; i < n; ++i)
            if (labels[i] < 0 || labels[i] >= k)
                fail("kmeans_gpu: the assignment kernel left label ", labels[i], " for point ", i, " (expected [0, ",
                     k, ")): a CUDA defect, please report it");
    };
    return detail::kmeans_restarts(x, n, d, options, /*hamerly=*/false, assign_on_device);
}

}  // namespace ewe::cluster
