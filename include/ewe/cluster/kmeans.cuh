// k-means on a CUDA device: the same k-means++ seeding (on the host) and Lloyd
// iterations as ewe/cluster/kmeans.hpp, with the assignment step (distances to all
// centres and the argmin, fused in one kernel, fp64, ties to the lower index) on the
// GPU and the centre update on the host, so labels, centres and inertia equal the CPU
// result with KMeansAlgorithm::lloyd.
#pragma once

#if defined(__CUDACC__)

#include <cstdint>
#include <limits>
#include <vector>

#include "ewe/cluster/cuda_util.cuh"
#include "ewe/cluster/kmeans.hpp"

namespace ewe::cluster {

namespace cuda_kernels {

// One thread per point; centres staged through shared memory in tiles.
__global__ void kmeans_assign(const double* __restrict__ x, std::int64_t n, int d, const double* __restrict__ centers,
                              std::int64_t k, std::int32_t* __restrict__ labels, double* __restrict__ mind2) {
    extern __shared__ double tile[];
    const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const std::int64_t per_tile = max(static_cast<std::int64_t>(1), static_cast<std::int64_t>(6144 / d));  // 48 KiB
    double best = __longlong_as_double(0x7ff0000000000000LL);  // +infinity
    std::int32_t arg = 0;
    for (std::int64_t t0 = 0; t0 < k; t0 += per_tile) {
        const std::int64_t m = min(per_tile, k - t0);
        __syncthreads();
        for (std::int64_t e = threadIdx.x; e < m * d; e += blockDim.x) tile[e] = centers[t0 * d + e];
        __syncthreads();
        if (i < n) {
            for (std::int64_t j = 0; j < m; ++j) {
                double s = 0;
                for (int a = 0; a < d; ++a) s = detail::sq_step(s, x[i * d + a] - tile[j * d + a]);
                if (s < best) {
                    best = s;
                    arg = static_cast<std::int32_t>(t0 + j);
                }
            }
        }
    }
    if (i < n) {
        labels[i] = arg;
        mind2[i] = best;
    }
}

}  // namespace cuda_kernels

// k-means with the assignment step on the current CUDA device (see the top of the file).
template <class T>
KMeansResult kmeans_gpu(const T* points, std::int64_t n, int d, const KMeansOptions& options) {
    const std::vector<double> x = detail::to_double_points(points, n, d, "kmeans_gpu");
    detail::check_kmeans_args(options, n, "kmeans_gpu");
    const double tol_abs = detail::kmeans_tolerance(x, n, d, options.tol);
    cuda::DeviceBuffer<double> dx(x.data(), x.size()), dcenters(static_cast<std::size_t>(options.k) * d), dmind2(n);
    cuda::DeviceBuffer<std::int32_t> dlabels(n);
    const int threads = 256;
    const unsigned blocks = static_cast<unsigned>((n + threads - 1) / threads);
    const std::size_t shared = static_cast<std::size_t>(std::min<std::int64_t>(options.k, std::max(1, 6144 / d))) * d * sizeof(double);

    KMeansResult best;
    for (int r = 0; r < options.n_init; ++r) {
        detail::SplitMix64 rng = detail::restart_rng(options.seed, r);
        KMeansResult run;
        run.centers = detail::kmeans_plusplus(x, n, d, options.k, rng);
        run.labels.assign(n, 0);
        std::vector<double> dist2(n), shift;
        std::vector<std::int32_t> previous;
        auto assign = [&] {
            dcenters.upload(run.centers.data(), run.centers.size());
            cuda_kernels::kmeans_assign<<<blocks, threads, shared>>>(dx.data(), n, d, dcenters.data(), options.k,
                                                                      dlabels.data(), dmind2.data());
            cuda::check_launch("kmeans_assign");
            dlabels.download(run.labels.data(), n);
            dmind2.download(dist2.data(), n);
        };
        assign();
        run.init_inertia = detail::blocked_sum(n, [&](std::int64_t i) { return dist2[i]; });
        while (run.iterations < options.max_iter) {
            previous = run.labels;
            const double moved = detail::update_centers(x, n, d, options.k, run.labels, dist2, run.centers, shift);
            ++run.iterations;
            assign();
            std::int64_t changed = 0;
            for (std::int64_t i = 0; i < n; ++i) changed += previous[i] != run.labels[i];
            if (changed == 0 || moved <= tol_abs) break;
        }
        run.inertia = detail::blocked_sum(n, [&](std::int64_t i) {
            return detail::sqdist(&x[i * d], &run.centers[run.labels[i] * d], d);
        });
        run.best_init = r;
        if (r == 0 || run.inertia < best.inertia) best = std::move(run);
    }
    return best;
}

}  // namespace ewe::cluster

#endif  // __CUDACC__
