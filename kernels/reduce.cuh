// Deterministic reductions in double: column sums of an (M, C) matrix (bias
// gradients, batch-norm statistics, the total of a tensor) and row sums (per-sample
// losses). The order of every addition depends only on the shapes, never on timing
// or on the GPU model, so a step gives the same bits every run (deterministic mode
// needs nothing more here). CPU references in include/ewe/cpu/backend.hpp:
// column_sums (db), Backend::batchnorm_forward/backward, Backend::sum,
// Backend::mse_forward, Backend::kl_forward (the CPU accumulates in double too).
#pragma once

#include <algorithm>

#include "ewe/kernels/common.cuh"

namespace ewe::cuda::kernels {

// Pass 1. Block (tile, chunk) sums f over rows [chunk * rows_per_chunk, ...) for the
// columns of its tile: thread t handles column t % width of the tile and every
// (256 / width)-th row, then lane 0 of each column adds the lanes in order.
// partials: [chunks][K][cols]. f(r, c, acc) adds its K terms into acc.
template <int K, class F>
__global__ void column_partials_kernel(F f, std::int64_t rows, std::int64_t cols, std::int64_t rows_per_chunk,
                                       double* __restrict__ partials) {
    const int width = cols < kThreads ? static_cast<int>(cols) : kThreads;
    const int lanes = kThreads / width;
    const int t = static_cast<int>(threadIdx.x);
    const int lane = t / width;
    const std::int64_t col = static_cast<std::int64_t>(blockIdx.x) * width + t % width;
    const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * rows_per_chunk;
    const std::int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    double acc[K];
    for (int k = 0; k < K; ++k) acc[k] = 0.0;
    if (lane < lanes && col < cols)
        for (std::int64_t r = r0 + lane; r < r1; r += lanes) f(r, col, acc);
    __shared__ double lanes_sum[K][kThreads];
    for (int k = 0; k < K; ++k) lanes_sum[k][t] = acc[k];
    __syncthreads();
    if (t < width && col < cols) {
        for (int k = 0; k < K; ++k) {
            double total = 0.0;
            for (int j = 0; j < lanes; ++j) total += lanes_sum[k][j * width + t];
            partials[(static_cast<std::int64_t>(blockIdx.y) * K + k) * cols + col] = total;
        }
    }
}

// Pass 2: adds the chunks of each column in order and hands the K sums to g(c, sums).
template <int K, class G>
__global__ void column_finish_kernel(const double* __restrict__ partials, std::int64_t chunks, std::int64_t cols, G g) {
    for (std::int64_t c = global_index(); c < cols; c += grid_stride()) {
        double sums[K];
        for (int k = 0; k < K; ++k) sums[k] = 0.0;
        for (std::int64_t ch = 0; ch < chunks; ++ch)
            for (int k = 0; k < K; ++k) sums[k] += partials[(ch * K + k) * cols + c];
        g(c, sums);
    }
}

// How a column reduction of (rows, cols) is split; a function of the shape only.
struct ColumnReducePlan {
    std::int64_t rows = 0, cols = 0, rows_per_chunk = 1, chunks = 1;
    unsigned tiles = 1;

    ColumnReducePlan(std::int64_t m, std::int64_t c) : rows(m), cols(c) {
        const std::int64_t width = std::max<std::int64_t>(1, std::min<std::int64_t>(c, kThreads));
        const std::int64_t lanes = kThreads / width;
        rows_per_chunk = std::max<std::int64_t>(lanes * 16, (m + 1023) / 1024);
        chunks = std::max<std::int64_t>(1, (m + rows_per_chunk - 1) / rows_per_chunk);
        tiles = static_cast<unsigned>((c + width - 1) / width);
    }
    // Workspace for the partial sums of a K-term reduction.
    std::size_t bytes(int k) const { return static_cast<std::size_t>(chunks * k * cols) * sizeof(double); }
};

// Launches both passes on `stream`; partials needs plan.bytes(K) bytes.
template <int K, class F, class G>
void column_reduce(cudaStream_t stream, const ColumnReducePlan& plan, double* partials, F f, G g) {
    if (plan.cols == 0) return;
    const dim3 grid(plan.tiles, static_cast<unsigned>(plan.chunks));
    column_partials_kernel<K><<<grid, kThreads, 0, stream>>>(f, plan.rows, plan.cols, plan.rows_per_chunk, partials);
    detail::check_launch("kernels::column_partials", __FILE__, __LINE__);
    launch_1d("kernels::column_finish", stream, plan.cols, column_finish_kernel<K, G>, partials, plan.chunks,
              plan.cols, g);
}

// One block per row: sums f(row, p) over p in a fixed tree order; g(row, total).
template <class F, class G>
__global__ void row_reduce_kernel(F f, std::int64_t rows, std::int64_t cols, G g) {
    __shared__ double partial[kThreads];
    for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        double acc = 0.0;
        for (std::int64_t p = threadIdx.x; p < cols; p += blockDim.x) acc += f(row, p);
        partial[threadIdx.x] = acc;
        __syncthreads();
        for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
            if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0) g(row, partial[0]);
        __syncthreads();
    }
}

// Launches the row reduction on `stream`: one block per row (at most 65535 blocks).
template <class F, class G>
void row_reduce(cudaStream_t stream, std::int64_t rows, std::int64_t cols, F f, G g) {
    if (rows == 0) return;
    const unsigned blocks = static_cast<unsigned>(std::min<std::int64_t>(rows, 65535));
    row_reduce_kernel<<<blocks, kThreads, 0, stream>>>(f, rows, cols, g);
    detail::check_launch("kernels::row_reduce", __FILE__, __LINE__);
}

// Column-sum terms and writers used by several ops.
template <class T>
struct ColumnValue {
    const T* x;
    std::int64_t cols;
    __device__ void operator()(std::int64_t r, std::int64_t c, double* acc) const { acc[0] += double(x[r * cols + c]); }
};

template <class T>
struct StoreSum {
    T* out;
    __device__ void operator()(std::int64_t c, const double* sums) const { out[c] = T(sums[0]); }
};

}  // namespace ewe::cuda::kernels
