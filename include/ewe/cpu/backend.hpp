// The CPU backend: every op of ewe/ops/backend.hpp on the host. Work is cut into items
// fixed by the shapes alone and handed out dynamically by the pool of
// ewe/cpu/thread_pool.hpp; each item runs single-threaded products and loops (Eigen's,
// so ewe's CMake target defines EIGEN_DONT_PARALLELIZE), and partials of items are
// summed in item order: results are the same for any number of threads. Convolutions
// go through im2col (ewe/cpu/im2col.hpp); their float products run on the AVX-512
// kernel of ewe/cpu/gemm.hpp where the build targets AVX-512, on Eigen elsewhere (float
// convolutions of one output or one input channel, and float filter gradients of 32 to
// 80 output channels, skip im2col there: the direct kernels of
// ewe/cpu/conv_kernels.hpp), and so do the dense layers' (through
// ewe/cpu/dense_kernels.hpp). With ContextOptions::cpu_product_precision bf16 every
// float product of the convolutions and dense layers runs on the bf16 kernel of
// ewe/cpu/gemm_bf16.hpp instead, filter gradients included (the one-channel direct
// kernels stay fp32).
// Reductions over a tensor accumulate in double, also for float data. Including this
// header registers the float backend with ewe::Context (ewe/core/cpu_hooks.hpp), as the
// CUDA module registers its own; ewe/cpu/double_backend.hpp registers the double one.
#pragma once

#if defined(_OPENMP) && !defined(EIGEN_DONT_PARALLELIZE)
#error "ewe/cpu/backend.hpp: compile with -DEIGEN_DONT_PARALLELIZE (the ewe::ewe CMake target sets it): ewe runs Eigen's products on its own threads"
#endif

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "ewe/core/context.hpp"
#include "ewe/cpu/conv_kernels.hpp"
#include "ewe/cpu/dense_kernels.hpp"
#include "ewe/cpu/gemm.hpp"
#include "ewe/cpu/gemm_bf16.hpp"
#include "ewe/cpu/im2col.hpp"
#include "ewe/cpu/im2col_bf16.hpp"
#include "ewe/cpu/thread_pool.hpp"
#include "ewe/cpu/update_packets.hpp"
#include "ewe/ops/backend.hpp"

namespace ewe::cpu {

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Element-wise loops run in pieces of this many elements (one piece: no thread wakes).
constexpr std::int64_t kParallelGrain = 1 << 15;
// Products of fewer multiply-adds than this run as one item.
constexpr std::int64_t kSerialProduct = 1 << 18;
// The long side of a matrix product is cut into about this many items; a convolution's
// backward into at most kImageGroups groups of images (each with its own filter-gradient
// partial), its forward into at least that many blocks of output pixels.
constexpr std::int64_t kProductItems = 32;
constexpr std::int64_t kImageGroups = 16;

template <class T>
T activate(Activation act, T v) {
    switch (act) {
        case Activation::relu: return v > T(0) ? v : T(0);
        case Activation::sigmoid: return T(1) / (T(1) + std::exp(-v));
        default: return v;
    }
}

// d act / d pre, written in terms of the output y = act(pre).
template <class T>
T activation_slope(Activation act, T y) {
    switch (act) {
        case Activation::relu: return y > T(0) ? T(1) : T(0);
        case Activation::sigmoid: return y * (T(1) - y);
        default: return T(1);
    }
}

// Returns body(known) with `act` as a compile-time constant, decltype(known)::value:
// loops over values written with it carry no switch and vectorize (relu, none).
template <class Body>
decltype(auto) with_activation(Activation act, Body&& body) {
    switch (act) {
        case Activation::relu: return body(std::integral_constant<Activation, Activation::relu>{});
        case Activation::sigmoid: return body(std::integral_constant<Activation, Activation::sigmoid>{});
        default: return body(std::integral_constant<Activation, Activation::none>{});
    }
}

// y (rows, cols, rows ld apart; ld 0: cols) = act(y + b), in place, on the calling
// thread; b may be null.
template <class T>
void bias_activation(Activation act, const T* b, T* y, std::int64_t rows, std::int64_t cols, std::int64_t ld = 0) {
    if (b == nullptr && act == Activation::none) return;
    with_activation(act, [&](auto known) {
        constexpr Activation a = decltype(known)::value;
        for (std::int64_t r = 0; r < rows; ++r) {
            T* row = y + r * (ld == 0 ? cols : ld);
            if (b != nullptr)
                for (std::int64_t c = 0; c < cols; ++c) row[c] = activate(a, row[c] + b[c]);
            else
                for (std::int64_t c = 0; c < cols; ++c) row[c] = activate(a, row[c]);
        }
    });
}

// dpre = dy * act'(y) for `count` elements, on the calling thread.
template <class T>
void activation_grad(Activation act, const T* y, const T* dy, T* dpre, std::int64_t count) {
    with_activation(act, [&](auto known) {
        for (std::int64_t i = 0; i < count; ++i) dpre[i] = dy[i] * activation_slope(decltype(known)::value, y[i]);
    });
}

// dpre = dy * act'(y) for `rows` rows of `cols` values (rows ld apart in y, dy and dpre),
// and, where sums is not null, sums[c] += dpre's column sums in double, in the same pass:
// each row's gradient is summed while in registers, row after row.
template <class T>
void activation_grad_column_sums(Activation act, const T* y, const T* dy, T* dpre, std::int64_t rows,
                                 std::int64_t cols, std::int64_t ld, double* sums) {
    with_activation(act, [&](auto known) {
        for (std::int64_t r = 0; r < rows; ++r) {
            const T* yr = y + r * ld;
            const T* dyr = dy + r * ld;
            T* dr = dpre + r * ld;
            if (sums == nullptr) {
                for (std::int64_t c = 0; c < cols; ++c) dr[c] = dyr[c] * activation_slope(decltype(known)::value, yr[c]);
                continue;
            }
            for (std::int64_t c = 0; c < cols; ++c) {
                const T d = dyr[c] * activation_slope(decltype(known)::value, yr[c]);
                dr[c] = d;
                sums[c] += double(d);
            }
        }
    });
}

// The size of the pieces a product's long side is cut into: about kProductItems of
// them, multiples of 16, at least 256. Depends on the shape only, never on threads.
inline std::int64_t product_piece(std::int64_t long_side) {
    const std::int64_t even = (long_side + kProductItems - 1) / kProductItems;
    return std::max<std::int64_t>(256, (even + 15) / 16 * 16);
}

// out[i] = sum over p of parts[p * stride + i], p in order, for i in [0, count), in
// parallel pieces: the fixed-order reduction of per-item partials (summed in Part, the
// partials' type, then converted).
template <class Part, class T>
void sum_partials(int threads, const Part* parts, std::int64_t count_parts, std::int64_t stride, std::int64_t count,
                  T* out) {
    parallel_ranges(threads, count, kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) {
            Part total = parts[i];
            for (std::int64_t p = 1; p < count_parts; ++p) total += parts[p * stride + i];
            out[i] = T(total);
        }
    });
}

// Scratch memory of one op, carved from the context's: arrays of doubles, of T and of
// 32-bit words (the bf16 products' packed operands), each starting on a 64-byte boundary.
template <class T>
class ScratchPlan {
public:
    std::int64_t add_doubles(std::int64_t count) { return add(count * std::int64_t(sizeof(double))); }
    std::int64_t add_values(std::int64_t count) { return add(count * std::int64_t(sizeof(T))); }
    std::int64_t add_words(std::int64_t count) { return add(count * std::int64_t(sizeof(std::uint32_t))); }
    void allocate(Context& ctx) { base_ = reinterpret_cast<std::byte*>(ctx.cpu_scratch<double>(bytes_ / 8 + 1)); }
    double* doubles(std::int64_t offset) const { return reinterpret_cast<double*>(base_ + offset); }
    T* values(std::int64_t offset) const { return reinterpret_cast<T*>(base_ + offset); }
    std::uint32_t* words(std::int64_t offset) const { return reinterpret_cast<std::uint32_t*>(base_ + offset); }

private:
    std::int64_t add(std::int64_t bytes) {
        const std::int64_t offset = bytes_;
        bytes_ += (bytes + 63) / 64 * 64;
        return offset;
    }
    std::int64_t bytes_ = 0;
    std::byte* base_ = nullptr;
};

template <class T>
class Backend final : public ewe::Backend<T> {
public:
    template <class U>
    using View = TensorView<U>;

    // y = act(x w + b). Small products run as one item. Otherwise w's long side is cut
    // into pieces: `out` pieces give blocks of y's columns (bias and activation applied
    // while the block is in cache; x transposed once, so no item packs it again); `in`
    // pieces (the encoder's 62720 -> 100) give partial products over a block of w's rows,
    // each read once, summed in piece order.
    void dense_forward(Context& ctx, View<const T> x, View<const T> w, View<const T> b, Activation act,
                       View<T> y) override {
        const bool bf16 = dense_rounds_to_bf16(ctx, x.dim(0));
        const std::int64_t n = x.dim(0), in = x.dim(1), out = w.dim(1);
        const std::int64_t piece = product_piece(std::max(in, out));
        if (n * in * out <= kSerialProduct || std::max(in, out) <= piece) {
            dense_product(bf16, n, out, in, x.data(), in, 1, w.data(), out, false, y.data(), out);
            bias_activation(act, b.data(), y.data(), n, out);
            return;
        }
        if (out > in) {
            T* xt = ctx.cpu_scratch<T>(in * n);
            transpose_into(x.data(), n, in, xt);
            parallel_for(thread_count(ctx), (out + piece - 1) / piece, [&](std::int64_t item, int) {
                const std::int64_t c0 = item * piece, cols = std::min(piece, out - c0);
                dense_product(bf16, n, cols, in, xt, 1, n, w.data() + c0, out, false, y.data() + c0, out);
                bias_activation(act, b.empty() ? nullptr : b.data() + c0, y.data() + c0, n, cols, out);
            });
            return;
        }
        const std::int64_t pieces = (in + piece - 1) / piece;
        T* parts = ctx.cpu_scratch<T>(pieces * n * out);
        parallel_for(thread_count(ctx), pieces, [&](std::int64_t item, int) {
            const std::int64_t k0 = item * piece, rows = std::min(piece, in - k0);
            dense_product(bf16, n, out, rows, x.data() + k0, in, 1, w.data() + k0 * out, out, false, parts + item * n * out, out);
        });
        sum_partials(thread_count(ctx), parts, pieces, n * out, n * out, y.data());
        bias_activation(act, b.data(), y.data(), n, out);
    }

    // dw = x^T dpre, dx = dpre w^T, db = column sums of dpre. With a small batch the
    // products are bound by reading w, so both come from one pass over w, cut along its
    // long side: `in` pieces give blocks of dw's rows and dx's columns; `out` pieces give
    // blocks of dpre, db and dw's columns, and partial dx products summed in piece order.
    void dense_backward(Context& ctx, View<const T> x, View<const T> w, View<const T> y, View<const T> dy,
                        Activation act, View<T> dpre, View<T> dx, View<T> dw, View<T> db) override {
        const bool bf16 = dense_rounds_to_bf16(ctx, x.dim(0));
        const std::int64_t n = x.dim(0), in = x.dim(1), out = w.dim(1);
        const std::int64_t piece = product_piece(std::max(in, out));
        const bool serial = n * in * out <= kSerialProduct || std::max(in, out) <= piece;
        const std::int64_t pieces = (out + piece - 1) / piece;
        ScratchPlan<T> plan;
        const std::int64_t sums_at = plan.add_doubles(out);
        const std::int64_t parts_at = plan.add_values(serial || in >= out || dx.empty() ? 0 : pieces * n * in);
        plan.allocate(ctx);
        // dpre and db for the columns [c0, c0 + cols).
        const auto dpre_and_db = [&, sums = plan.doubles(sums_at)](std::int64_t c0, std::int64_t cols) {
            if (!db.empty()) std::fill(sums + c0, sums + c0 + cols, 0.0);
            activation_grad_column_sums(act, y.data() + c0, dy.data() + c0, dpre.data() + c0, n, cols, out,
                                        db.empty() ? nullptr : sums + c0);
            if (db.empty()) return;
            for (std::int64_t c = c0; c < c0 + cols; ++c) db[c] = T(sums[c]);
        };
        if (serial || in >= out) dpre_and_db(0, out);
        if (serial) {
            dense_product(bf16, in, out, n, x.data(), 1, in, dpre.data(), out, false, dw.data(), out);  // dW = X^T D
            if (!dx.empty()) dense_product(bf16, n, in, out, dpre.data(), out, 1, w.data(), out, true, dx.data(), in);  // D W^T
            return;
        }
        if (in >= out) {
            parallel_for(thread_count(ctx), (in + piece - 1) / piece, [&](std::int64_t item, int) {
                const std::int64_t r0 = item * piece, rows = std::min(piece, in - r0);
                dense_product(bf16, rows, out, n, x.data() + r0, 1, in, dpre.data(), out, false, dw.data() + r0 * out, out);
                if (!dx.empty())
                    dense_product(bf16, n, rows, out, dpre.data(), out, 1, w.data() + r0 * out, out, true, dx.data() + r0, in);
            });
            return;
        }
        T* parts = dx.empty() ? nullptr : plan.values(parts_at);
        parallel_for(thread_count(ctx), pieces, [&](std::int64_t item, int) {
            const std::int64_t c0 = item * piece, cols = std::min(piece, out - c0);
            dpre_and_db(c0, cols);
            dense_product(bf16, in, cols, n, x.data(), 1, in, dpre.data() + c0, out, false, dw.data() + c0, out);
            if (parts != nullptr)
                dense_product(bf16, n, in, cols, dpre.data() + c0, out, 1, w.data() + c0, out, true, parts + item * n * in, in);
        });
        if (parts != nullptr) sum_partials(thread_count(ctx), parts, pieces, n * in, n * in, dx.data());
    }

    // A w^T smaller than this (128 KB) stays in cache, where Eigen's product is as fast
    // or faster: the small layers' input gradients ran 1-2 us slower on the kernels.
    static constexpr std::int64_t kDenseTransposedMinValues = std::int64_t(1) << 15;

    // The bf16 mode's dense products start at this batch. Below it each weight takes part
    // in too few multiply-adds to pay for its conversion: the products are bound by
    // reading w (fp32, once), and converting it costs more than vdpbf16ps saves. The
    // encoder's 62720 -> 100 at batch 8 took 1.17-1.65x longer in bf16 (forward, weight
    // and input gradients), at batch 64 1.25-1.46x less (bench_cpu_layers, 1 thread).
    static constexpr std::int64_t kBf16DenseMinBatch = 32;

    // Whether a dense layer's products at this batch take bf16 inputs (rounds_to_bf16,
    // from kBf16DenseMinBatch on).
    static bool dense_rounds_to_bf16(const Context& ctx, std::int64_t batch) {
        return rounds_to_bf16(ctx) && batch >= kBf16DenseMinBatch;
    }

    // C (m x n, rows ldc apart) = A B, the dense layers' products: A(i, p) at
    // a[i * a_rs + p * a_cs] (a_cs == 1 or a_rs == 1), B (k x n) row-major, rows ldb
    // apart, or with b_transposed B^T (n x k) row-major, rows ldb apart (B = w^T; A then
    // row-major, a_cs == 1). Float runs the kernels of ewe/cpu/dense_kernels.hpp where
    // compiled, when C has at least kGemmMinColumns columns and, with b_transposed, B at
    // least kDenseTransposedMinValues values; everything else Eigen's product (the
    // portable path); with bf16 (rounds_to_bf16), all on gemm_bf16(); on the calling
    // thread.
    static void dense_product(bool bf16, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t a_rs,
                              std::int64_t a_cs, const T* b, std::int64_t ldb, bool b_transposed, T* c,
                              std::int64_t ldc) {
        if constexpr (kBf16Kernel) {
            if (bf16) return gemm_bf16(m, n, k, a, a_rs, a_cs, b, b_transposed ? 1 : ldb, b_transposed ? ldb : 1, c, ldc,
                                       false);
        }
        if constexpr (kGemmKernel) {
            if (n >= kGemmMinColumns && (!b_transposed || n * k >= kDenseTransposedMinValues)) {
                if (b_transposed) streamed_product_bt(m, n, k, a, a_rs, b, ldb, c, ldc, false);
                else streamed_product(m, n, k, a, a_rs, a_cs, b, ldb, c, ldc, false);
                return;
            }
        }
        using Strided = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;
        using ConstStrided = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;
        Strided C(c, m, n, Eigen::OuterStride<>(ldc));
        const auto times_b = [&](const auto& A) {
            if (b_transposed) C.noalias() = A * ConstStrided(b, n, k, Eigen::OuterStride<>(ldb)).transpose();
            else C.noalias() = A * ConstStrided(b, k, n, Eigen::OuterStride<>(ldb));
        };
        if (a_cs == 1) times_b(ConstStrided(a, m, k, Eigen::OuterStride<>(a_rs)));
        else times_b(ConstStrided(a, k, m, Eigen::OuterStride<>(a_cs)).transpose());
    }

    // Convolutions lower to GEMMs over im2col blocks: a block's patch matrix is built,
    // used and dropped while still in cache, in the running thread's slot of scratch.
    // The forward convolution's items are blocks of output pixels (bias and activation
    // applied to each while in cache). Ops whose items write overlapping pixels or sum a
    // filter gradient take whole images: a group of images per item (at most
    // kImageGroups, fixed by the batch), each group with its own partial filter and bias
    // gradient, summed in group order afterwards. A float convolution with one output
    // channel (and the forward pass of one with one input channel) skips im2col: the
    // direct kernels of ewe/cpu/conv_kernels.hpp, on the same items. So does the float
    // filter gradient of 32 to 80 output channels (direct_filter_gradient), after the
    // groups, on items of its own (filter_gradient_by_taps). In the bf16 mode each op
    // packs its filter once for gemm_bf16, read by every item and thread, and writes the
    // patch rows straight in gemm_bf16's packed layouts (ewe/cpu/im2col_bf16.hpp).
    void conv2d_forward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w, View<const T> b,
                        Activation act, View<T> y) override {
        const bool bf16 = rounds_to_bf16(ctx);
        const std::int64_t M = g.gemm_m(), K = g.gemm_k();
        const std::int64_t rows_per_item =
            std::min(im2col_block_rows(g, ctx.options().cpu_im2col_elements),
                     std::max<std::int64_t>(1, (M + kImageGroups - 1) / kImageGroups));
        if (direct_one_channel(g)) {
            if constexpr (kDirectConv)
                parallel_for(thread_count(ctx), (M + rows_per_item - 1) / rows_per_item, [&](std::int64_t item, int) {
                    const std::int64_t m = item * rows_per_item, rows = std::min(rows_per_item, M - m);
                    conv_one_channel_forward(g, x.data(), w.data(), b.empty() ? nullptr : b.data(),
                                             act == Activation::relu, m, m + rows, y.data());
                    if (act != Activation::relu) bias_activation<T>(act, nullptr, y.data() + m, rows, 1);
                });
            return;
        }
        // bf16: the filter packed once for every item, each block of patch rows packed by
        // im2col_bf16 (no fp32 block).
        const bool packed = bf16 && !direct_single_input(g);
        ScratchPlan<T> plan;
        const int threads = thread_count(ctx);  // the slots of scratch and of parallel_for
        const std::int64_t cols_at =
            plan.add_values(direct_single_input(g) || packed ? 0 : threads * rows_per_item * K);
        const std::int64_t wt_at = plan.add_values(K * g.out_c);
        const std::int64_t packed_w_at = plan.add_words(packed ? bf16_packed_b_words(K, g.out_c) : 0);
        const std::int64_t packed_cols_at = plan.add_words(packed ? threads * bf16_packed_a_words(rows_per_item, K) : 0);
        const std::int64_t row_buffer_at = plan.add_values(packed ? threads * 2 * K : 0);
        plan.allocate(ctx);
        T* wt = plan.values(wt_at);
        transpose_into(w.data(), g.out_c, K, wt);
        Bf16PackedB packed_w{};
        if constexpr (kBf16Kernel)
            if (packed) packed_w = pack_bf16_b(K, g.out_c, wt, g.out_c, 1, plan.words(packed_w_at));
        parallel_for(threads, (M + rows_per_item - 1) / rows_per_item, [&](std::int64_t item, int slot) {
            const std::int64_t m = item * rows_per_item, rows = std::min(rows_per_item, M - m);
            if (direct_single_input(g)) {
                if constexpr (kDirectConv) {
                    conv_single_input_forward(g, x.data(), wt, b.empty() ? nullptr : b.data(),
                                              act == Activation::relu, m, m + rows, y.data());
                    if (act != Activation::relu) bias_activation<T>(act, nullptr, y.data() + m * g.out_c, rows, g.out_c);
                }
                return;
            }
            if constexpr (kBf16Kernel) {
                if (packed) {
                    std::uint32_t* patches = plan.words(packed_cols_at) + slot * bf16_packed_a_words(rows_per_item, K);
                    im2col_bf16(g, x.data(), m, m + rows, plan.values(row_buffer_at) + slot * 2 * K, patches, nullptr);
                    packed_product(rows, g.out_c, K, Bf16PackedA{patches, bf16_pairs(K), 1}, packed_w,
                                   y.data() + m * g.out_c, g.out_c, act, b.empty() ? nullptr : b.data());
                    return;
                }
            }
            T* cols = plan.values(cols_at) + slot * rows_per_item * K;
            im2col(g, x.data(), m, m + rows, cols);
            product(bf16, rows, g.out_c, K, cols, K, 1, wt, g.out_c, y.data() + m * g.out_c, g.out_c, false, act,
                    b.empty() ? nullptr : b.data());
        });
    }

    void conv2d_backward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w, View<const T> y,
                         View<const T> dy, Activation act, View<T> dpre, View<T> dx, View<T> dw,
                         View<T> db) override {
        const bool bf16 = rounds_to_bf16(ctx);
        const std::int64_t K = g.gemm_k(), C = g.out_c, pixels = g.h.out * g.w.out;
        const bool direct_dw = !bf16 && direct_filter_gradient(g);  // bf16: the product's kernel
        // bf16: the filter packed once as P = D W's B, the patches straight as dW's B.
        const bool packed = bf16 && !direct_one_channel(g);
        const Bf16Operands operands{.w = packed && !dx.empty() ? w.data() : nullptr, .k = C, .n = K, .rs = K, .cs = 1,
                                    .patches_b = packed, .fp32_patches = !packed || !dx.empty()};
        for_image_groups(ctx, g, direct_dw ? 0 : C * K, C, [&](std::int64_t n0, std::int64_t n1, std::int64_t block,
                                                              T* cols, T* dw_part, double* db_part, const T*,
                                                              const Bf16Slot& slot) {
            const std::int64_t m0 = n0 * pixels, m1 = n1 * pixels;
            activation_grad_column_sums(act, y.data() + m0 * C, dy.data() + m0 * C, dpre.data() + m0 * C, m1 - m0, C, C,
                                        db_part);
            if (!dx.empty()) std::fill(dx.data() + image_start(g, m0), dx.data() + image_start(g, m1), T(0));
            if (direct_one_channel(g)) {
                if constexpr (kDirectConv) {
                    std::fill(dw_part, dw_part + K, T(0));
                    conv_one_channel_backward_weights(g, x.data(), dpre.data(), m0, m1, dw_part);
                    if (!dx.empty()) conv_one_channel_backward_data(g, dpre.data(), w.data(), m0, m1, dx.data());
                }
                return;
            }
            if (direct_dw && dx.empty()) return;
            for (std::int64_t m = m0; m < m1; m += block) {
                const std::int64_t rows = std::min(block, m1 - m);
                const T* d = dpre.data() + m * C;
                if constexpr (kBf16Kernel) {
                    if (packed) {
                        im2col_bf16(g, x.data(), m, m + rows, slot.row_buffer, nullptr, slot.patches_b);
                        packed_product(C, K, rows, d, 1, C, Bf16PackedB{slot.patches_b, bf16_packed_width(K)}, dw_part,
                                       K, m > m0);  // dW (+)= D^T P
                        if (dx.empty()) continue;
                        packed_product(rows, K, C, d, C, 1, slot.w, cols, K, false);  // P = D W
                        col2im_add(g, cols, m, m + rows, dx.data());
                        continue;
                    }
                }
                if (!direct_dw) {
                    im2col(g, x.data(), m, m + rows, cols);
                    product(bf16, C, K, rows, d, 1, C, cols, K, dw_part, K, m > m0);  // dW (+)= D^T P
                }
                if (dx.empty()) continue;
                product(bf16, rows, K, C, d, C, 1, w.data(), K, cols, K, false);  // P = D W
                col2im_add(g, cols, m, m + rows, dx.data());
            }
        }, dw.data(), db.data(), nullptr, operands);
        if (direct_dw) filter_gradient_by_taps(ctx, g, x.data(), dpre.data(), dw.data());
    }

    // Items are single images: each one's output pixels are written by its item alone.
    void conv2d_transpose_forward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w,
                                  View<const T> b, Activation act, View<T> y) override {
        const bool bf16 = rounds_to_bf16(ctx);
        const std::int64_t K = g.gemm_k(), pixels = g.h.out * g.w.out, image = g.h.in * g.w.in * g.in_c;
        const std::int64_t block = std::min(im2col_block_rows(g, ctx.options().cpu_im2col_elements), pixels);
        ScratchPlan<T> plan;
        const int threads = thread_count(ctx);  // the slots of scratch and of parallel_for
        const std::int64_t cols_at = plan.add_values(threads * block * K);
        const std::int64_t packed_w_at = plan.add_words(bf16 ? bf16_packed_b_words(g.out_c, K) : 0);
        plan.allocate(ctx);
        Bf16PackedB packed_w{};  // bf16: the filter packed once for every image
        if constexpr (kBf16Kernel)
            if (bf16) packed_w = pack_bf16_b(g.out_c, K, w.data(), K, 1, plan.words(packed_w_at));
        parallel_for(threads, g.batch, [&](std::int64_t n, int slot) {
            T* cols = plan.values(cols_at) + slot * block * K;
            std::fill(y.data() + n * image, y.data() + (n + 1) * image, T(0));
            for (std::int64_t m = n * pixels; m < (n + 1) * pixels; m += block) {
                const std::int64_t rows = std::min(block, (n + 1) * pixels - m);
                const T* xm = x.data() + m * g.out_c;
                if (bf16) packed_product(rows, K, g.out_c, xm, g.out_c, 1, packed_w, cols, K, false);
                else product(bf16, rows, K, g.out_c, xm, g.out_c, 1, w.data(), K, cols, K, false);
                col2im_add(g, cols, m, m + rows, y.data());
            }
            bias_activation(act, b.data(), y.data() + n * image, g.h.in * g.w.in, g.in_c);
        });
    }

    void conv2d_transpose_backward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w,
                                   View<const T> y, View<const T> dy, Activation act, View<T> dpre, View<T> dx,
                                   View<T> dw, View<T> db) override {
        const bool bf16 = rounds_to_bf16(ctx);
        const std::int64_t K = g.gemm_k(), C = g.in_c, pixels = g.h.out * g.w.out;
        const bool direct_dw = !bf16 && direct_filter_gradient(g);  // bf16: the product's kernel
        // bf16: the filter packed once as dX = P W^T's B, the patches straight as dX's A
        // and dW's B (no fp32 block).
        const Bf16Operands operands{.w = bf16 && !dx.empty() ? w.data() : nullptr, .k = K, .n = g.out_c, .rs = 1,
                                    .cs = K, .patches_a = bf16 && !dx.empty(), .patches_b = bf16,
                                    .fp32_patches = !bf16};
        for_image_groups(ctx, g, direct_dw ? 0 : g.out_c * K, C, [&](std::int64_t n0, std::int64_t n1,
                                                                     std::int64_t block, T* cols, T* dw_part,
                                                                     double* db_part, const T* wt,
                                                                     const Bf16Slot& slot) {
            const std::int64_t m0 = n0 * pixels, m1 = n1 * pixels;
            const std::int64_t p0 = image_start(g, m0), p1 = image_start(g, m1);
            activation_grad_column_sums(act, y.data() + p0, dy.data() + p0, dpre.data() + p0, (p1 - p0) / C, C, C,
                                        db_part);
            if (direct_dw && dx.empty()) return;
            for (std::int64_t m = m0; m < m1; m += block) {
                const std::int64_t rows = std::min(block, m1 - m);
                const T* xm = x.data() + m * g.out_c;
                if constexpr (kBf16Kernel) {
                    if (bf16) {
                        im2col_bf16(g, dpre.data(), m, m + rows, slot.row_buffer, slot.patches_a, slot.patches_b);
                        packed_product(g.out_c, K, rows, xm, 1, g.out_c,
                                       Bf16PackedB{slot.patches_b, bf16_packed_width(K)}, dw_part, K,
                                       m > m0);  // dW (+)= X^T P
                        if (!dx.empty())
                            packed_product(rows, g.out_c, K, Bf16PackedA{slot.patches_a, bf16_pairs(K), 1}, slot.w,
                                           dx.data() + m * g.out_c, g.out_c);
                        continue;
                    }
                }
                im2col(g, dpre.data(), m, m + rows, cols);
                if (!direct_dw) product(bf16, g.out_c, K, rows, xm, 1, g.out_c, cols, K, dw_part, K, m > m0);  // dW (+)= X^T P
                if (!dx.empty()) product(bf16, rows, g.out_c, K, cols, K, 1, wt, g.out_c, dx.data() + m * g.out_c, g.out_c, false);
            }
        }, dw.data(), db.data(), dx.empty() || bf16 ? nullptr : w.data(), operands);
        if (direct_dw) filter_gradient_by_taps(ctx, g, dpre.data(), x.data(), dw.data());
    }

    void activation_forward(Context& ctx, Activation act, View<const T> x, View<T> y) override {
        parallel_ranges(thread_count(ctx), x.numel(), kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
            for (std::int64_t i = begin; i < end; ++i) y[i] = activate(act, x[i]);
        });
    }

    void activation_backward(Context& ctx, Activation act, View<const T> y, View<const T> dy, View<T> dx) override {
        parallel_ranges(thread_count(ctx), y.numel(), kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
            activation_grad(act, y.data() + begin, dy.data() + begin, dx.data() + begin, end - begin);
        });
    }

    void batchnorm_forward(Context&, const BatchNormOptions& options, Phase phase, View<const T> x, View<const T> gamma,
                           View<const T> beta, View<T> moving_mean, View<T> moving_var, View<T> saved_mean,
                           View<T> saved_invstd, View<T> y) override {
        const std::int64_t C = gamma.numel(), M = x.numel() / C;
        if (phase == Phase::train) {
            for (std::int64_t c = 0; c < C; ++c) {
                double mean = 0;
                for (std::int64_t r = 0; r < M; ++r) mean += x[r * C + c];
                mean /= double(M);
                double var = 0;
                for (std::int64_t r = 0; r < M; ++r) {
                    const double d = x[r * C + c] - mean;
                    var += d * d;
                }
                var /= double(M);
                saved_mean[c] = T(mean);
                saved_invstd[c] = T(1.0 / std::sqrt(var + options.epsilon));
                moving_mean[c] = T(options.momentum * moving_mean[c] + (1.0 - options.momentum) * mean);
                moving_var[c] = T(options.momentum * moving_var[c] + (1.0 - options.momentum) * var);
            }
        }
        for (std::int64_t r = 0; r < M; ++r) {
            for (std::int64_t c = 0; c < C; ++c) {
                const T mean = phase == Phase::train ? saved_mean[c] : moving_mean[c];
                const T invstd = phase == Phase::train ? saved_invstd[c]
                                                       : T(1.0 / std::sqrt(double(moving_var[c]) + options.epsilon));
                y[r * C + c] = gamma[c] * (x[r * C + c] - mean) * invstd + beta[c];
            }
        }
    }

    void batchnorm_backward(Context&, View<const T> x, View<const T> dy, View<const T> gamma,
                            View<const T> saved_mean, View<const T> saved_invstd, View<T> dx, View<T> dgamma,
                            View<T> dbeta) override {
        const std::int64_t C = gamma.numel(), M = x.numel() / C;
        for (std::int64_t c = 0; c < C; ++c) {
            double sum_dy = 0, sum_dy_xhat = 0;
            for (std::int64_t r = 0; r < M; ++r) {
                const double xhat = (double(x[r * C + c]) - saved_mean[c]) * saved_invstd[c];
                sum_dy += dy[r * C + c];
                sum_dy_xhat += dy[r * C + c] * xhat;
            }
            dgamma[c] = T(sum_dy_xhat);
            dbeta[c] = T(sum_dy);
            const double scale = double(gamma[c]) * saved_invstd[c] / double(M);
            for (std::int64_t r = 0; r < M; ++r) {
                const double xhat = (double(x[r * C + c]) - saved_mean[c]) * saved_invstd[c];
                dx[r * C + c] = T(scale * (double(M) * dy[r * C + c] - sum_dy - xhat * sum_dy_xhat));
            }
        }
    }

    void dropout_forward(Context& ctx, double rate, const PhiloxKey& key, View<const T> x, View<T> y) override {
        apply_dropout(thread_count(ctx), rate, key, x.data(), y.data(), x.numel());
    }
    void dropout_backward(Context& ctx, double rate, const PhiloxKey& key, View<const T> dy, View<T> dx) override {
        apply_dropout(thread_count(ctx), rate, key, dy.data(), dx.data(), dy.numel());
    }

    void reparameterize_forward(Context&, double log_var_scale, const PhiloxKey& key, View<const T> mean,
                                View<const T> log_var, View<T> z) override {
        for (std::int64_t i = 0; i < mean.numel(); ++i)
            z[i] = T(mean[i] + std::exp(log_var_scale * log_var[i]) *
                     double(philox_normal(key, key.first_element + std::uint64_t(i))));
    }

    void reparameterize_backward(Context&, double log_var_scale, const PhiloxKey& key, View<const T> log_var,
                                 View<const T> dz, View<T> dmean, View<T> dlog_var) override {
        for (std::int64_t i = 0; i < log_var.numel(); ++i) {
            const double eps = philox_normal(key, key.first_element + std::uint64_t(i));
            dmean[i] += dz[i];
            dlog_var[i] += T(dz[i] * log_var_scale * std::exp(log_var_scale * log_var[i]) * eps);
        }
    }

    void mse_forward(Context&, double scale, View<const T> pred, View<const T> target, View<T> per_sample) override {
        const std::int64_t N = pred.dim(0), P = pred.numel() / std::max<std::int64_t>(N, 1);
        for (std::int64_t n = 0; n < N; ++n) {
            double acc = 0;
            for (std::int64_t p = 0; p < P; ++p) {
                const double d = double(pred[n * P + p]) - double(target[n * P + p]);
                acc += d * d;
            }
            per_sample[n] = T(scale * acc / double(P));
        }
    }

    void mse_backward(Context&, double grad_scale, View<const T> pred, View<const T> target,
                      View<T> dpred) override {
        const T c = T(grad_scale);
        for (std::int64_t i = 0; i < pred.numel(); ++i) dpred[i] = c * (pred[i] - target[i]);
    }

    void kl_forward(Context&, double divisor, View<const T> mean, View<const T> log_var,
                    View<T> per_sample) override {
        const std::int64_t N = mean.dim(0), D = mean.dim(1);
        for (std::int64_t n = 0; n < N; ++n) {
            double acc = 0;
            for (std::int64_t d = 0; d < D; ++d) {
                const double m = mean[n * D + d], lv = log_var[n * D + d];
                acc += -0.5 * (1.0 + lv - m * m - std::exp(lv));
            }
            per_sample[n] = T(acc / divisor);
        }
    }

    void kl_backward(Context&, double grad_scale, View<const T> mean, View<const T> log_var, View<T> dmean,
                     View<T> dlog_var) override {
        for (std::int64_t i = 0; i < mean.numel(); ++i) {
            dmean[i] = T(grad_scale * mean[i]);
            dlog_var[i] = T(grad_scale * 0.5 * (std::exp(double(log_var[i])) - 1.0));
        }
    }

    // The optimizers run as one pass of Eigen packets (update_packets: the bits of the
    // Eigen array expressions the comments show, wherever a range starts) on pieces of
    // kParallelGrain parameters.
    void sgd_update(Context& ctx, const SgdOptions& options, double lr, View<T> params, View<const T> grads,
                    View<T> velocity) override {
        using namespace Eigen::internal;
        using P = UpdatePacket<T>;
        const P m = pset1<P>(T(options.momentum)), rate = pset1<P>(T(lr)), minus_rate = pset1<P>(-T(lr));
        // One rule per variant: a product shared between branches would change which one
        // the compiler fuses into a multiply-add.
        const auto run = [&](const auto& rule) {
            parallel_ranges(thread_count(ctx), params.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
                T* v = options.momentum != 0.0 ? velocity.data() + b : nullptr;
                update_packets<T>(e - b, params.data() + b, grads.data() + b, v, nullptr, rule);
            });
        };
        if (options.momentum == 0.0)
            run([&](P& p, const P& g, P&, P&) { p = psub(p, pmul(rate, g)); });  // p -= rate * g
        else if (!options.nesterov)
            run([&](P& p, const P& g, P& v, P&) {
                v = psub(pmul(m, v), pmul(rate, g));  // v = m * v - rate * g
                p = padd(p, v);                       // p += v
            });
        else  // rate * g, used twice, would be computed once and fused neither time: fused here
            run([&](P& p, const P& g, P& v, P&) {
                v = pmadd(minus_rate, g, pmul(m, v));             // v = m * v - rate * g
                p = padd(p, pmadd(minus_rate, g, pmul(m, v)));  // p += m * v - rate * g
            });
    }

    void rmsprop_update(Context& ctx, const RmspropOptions& options, double lr, View<T> params, View<const T> grads,
                        View<T> mean_square) override {
        using namespace Eigen::internal;
        using P = UpdatePacket<T>;
        const P rho = pset1<P>(T(options.rho)), one_minus_rho = pset1<P>(T(1.0 - options.rho));
        const P eps = pset1<P>(T(options.epsilon)), rate = pset1<P>(T(lr));
        parallel_ranges(thread_count(ctx), params.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
            update_packets<T>(e - b, params.data() + b, grads.data() + b, mean_square.data() + b, nullptr,
                              [&](P& p, const P& g, P& s, P&) {
                                  s = padd(pmul(rho, s), pmul(one_minus_rho, pmul(g, g)));  // s = rho s + (1 - rho) g^2
                                  p = psub(p, pdiv(pmul(rate, g), padd(psqrt(s), eps)));   // p -= rate g / (sqrt(s) + eps)
                              });
        });
    }

    void adam_update(Context& ctx, const AdamOptions& options, double step_size, View<T> params, View<const T> grads,
                     View<T> m, View<T> v) override {
        using namespace Eigen::internal;
        using P = UpdatePacket<T>;
        const T b1 = T(options.beta1), b2 = T(options.beta2);
        const P rate = pset1<P>(T(step_size)), eps = pset1<P>(T(options.epsilon));
        const P beta1 = pset1<P>(b1), one_minus_beta1 = pset1<P>(T(1) - b1);
        const P beta2 = pset1<P>(b2), one_minus_beta2 = pset1<P>(T(1) - b2);
        parallel_ranges(thread_count(ctx), params.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
            update_packets<T>(e - b, params.data() + b, grads.data() + b, m.data() + b, v.data() + b,
                              [&](P& p, const P& g, P& mm, P& vv) {
                                  mm = padd(pmul(beta1, mm), pmul(one_minus_beta1, g));             // m = b1 m + (1 - b1) g
                                  vv = padd(pmul(beta2, vv), pmul(one_minus_beta2, pmul(g, g)));    // v = b2 v + (1 - b2) g^2
                                  p = psub(p, pdiv(pmul(rate, mm), padd(psqrt(vv), eps)));          // p -= rate m / (sqrt(v) + eps)
                              });
        });
    }

    void fill(Context&, T value, View<T> x) override { std::fill(x.data(), x.data() + x.numel(), value); }

    void copy(Context&, View<const T> src, View<T> dst) override { ewe::copy<T>(src, dst); }

    void add(Context& ctx, View<const T> a, View<const T> b, View<T> out) override {
        parallel_ranges(thread_count(ctx), a.numel(), kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
            for (std::int64_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
        });
    }

    void sum(Context&, View<const T> x, View<T> out) override {
        double acc = 0;
        for (std::int64_t i = 0; i < x.numel(); ++i) acc += x[i];
        out[0] = T(acc);
    }

    void gather_images(Context&, View<const std::uint8_t> images, View<const std::int32_t> indices, double scale,
                       View<T> out) override {
        gather_rows(images, indices, scale, out);
    }
    void gather_images(Context&, View<const T> images, View<const std::int32_t> indices, double scale,
                       View<T> out) override {
        gather_rows(images, indices, scale, out);
    }

private:
    template <class Source>
    static void gather_rows(View<const Source> images, View<const std::int32_t> indices, double scale, View<T> out) {
        const std::int64_t count = images.dim(0), pixels = images.numel() / std::max<std::int64_t>(count, 1);
        for (std::int64_t i = 0; i < indices.numel(); ++i) {
            const std::int64_t row = indices[i];
            EWE_REQUIRE(row >= 0 && row < count, "ops::gather_images: index ", row, " at position ", i,
                        " is outside the ", count, " images");
            const Source* src = images.data() + row * pixels;
            T* dst = out.data() + i * pixels;
            for (std::int64_t p = 0; p < pixels; ++p) dst[p] = T(double(src[p]) * scale);
        }
    }

    // Whether ctx's float products take bf16 inputs (ContextOptions::cpu_product_precision;
    // ewe::Context refuses the mode where ewe/cpu/gemm_bf16.hpp is not compiled).
    static bool rounds_to_bf16(const Context& ctx) {
        return kBf16Kernel && ctx.options().cpu_product_precision == CpuProductPrecision::bf16;
    }

    static constexpr bool kGemmKernel = std::is_same_v<T, float> && kHasGemmKernel;
    static constexpr bool kBf16Kernel = std::is_same_v<T, float> && kHasBf16GemmKernel;
    static constexpr std::int64_t kGemmMinColumns = 8;
    static constexpr bool kDirectConv = std::is_same_v<T, float> && kHasDirectConvKernels;

    // Whether a convolution runs on the direct kernels of ewe/cpu/conv_kernels.hpp
    // instead of im2col and a product: float filters of one output channel, where built.
    static bool direct_one_channel(const ConvGeometry& g) { return kDirectConv && g.out_c == 1; }
    // Or, for the forward pass, one input channel and at most 16 output channels.
    static bool direct_single_input(const ConvGeometry& g) { return kDirectConv && g.in_c == 1 && g.out_c <= 16; }
    // Or, for the filter gradient, 32 to kFilterGradientMaxOutputs output channels (the
    // lanes mostly full), or one input channel (one output channel stays on the kernels
    // above). In bench_cpu_layers this won for 40 and 80 outputs (8-30% less time) and
    // for the 1 -> 10 layer (21%), and lost for 20 (the 20 -> 10 and 10 -> 20 layers,
    // 8-16% more: 20 of 32 lanes), where im2col's rows of kh * kw * in_c fill them.
    static bool direct_filter_gradient(const ConvGeometry& g) {
        return kDirectConv && !direct_one_channel(g) && g.out_c <= kFilterGradientMaxOutputs &&
               (g.out_c >= 32 || g.in_c == 1);
    }
    // The direct filter gradient's items: at least this many (filter taps, or taps x
    // ranges of input channels where the filter has fewer taps).
    static constexpr std::int64_t kFilterGradientItems = 16;

    // The direct filter gradient's images per block: as many as keep a block's img and
    // a (both read once per tap) within about half an L2 cache, at least one.
    static constexpr std::int64_t kFilterGradientBlockBytes = std::int64_t(1) << 19;

    // dw (out_c, kh, kw, in_c) = the filter gradient of g from img (the convolution's
    // input) and a (its output side, out_c columns), on the direct kernel of
    // ewe/cpu/conv_kernels.hpp, a block of images at a time (each read from memory once,
    // then from cache by every tap). Each item owns whole values of dw (one tap, a range
    // of input channels) and adds the block's pixels to them, so the sums' order depends
    // on the shapes only and no partials are added up afterwards.
    static void filter_gradient_by_taps(Context& ctx, const ConvGeometry& g, const T* img, const T* a, T* dw) {
        if constexpr (kDirectConv) {
            const std::int64_t K = g.gemm_k();
            if (g.batch == 0) {
                std::fill(dw, dw + g.out_c * K, T(0));
                return;
            }
            const std::int64_t taps = g.h.kernel * g.w.kernel, tile = filter_gradient_tile_channels(g.out_c);
            const std::int64_t tiles = (g.in_c + tile - 1) / tile;
            const std::int64_t ranges = std::min(tiles, (kFilterGradientItems + taps - 1) / taps);
            const std::int64_t channels = (tiles + ranges - 1) / ranges * tile;
            const std::int64_t per_tap = (g.in_c + channels - 1) / channels;
            const std::int64_t image_bytes =
                (g.h.in * g.w.in * g.in_c + g.h.out * g.w.out * g.out_c) * std::int64_t(sizeof(T));
            const std::int64_t images = std::max<std::int64_t>(1, kFilterGradientBlockBytes / image_bytes);
            T* dwt = ctx.cpu_scratch<T>(K * g.out_c);
            for (std::int64_t n0 = 0; n0 < g.batch; n0 += images)
                parallel_for(thread_count(ctx), taps * per_tap, [&](std::int64_t item, int) {
                    const std::int64_t c0 = item % per_tap * channels;
                    conv_filter_gradient(g, img, a, item / per_tap, c0, std::min(g.in_c, c0 + channels), n0,
                                         std::min(g.batch, n0 + images), dwt);
                });
            transpose_into(dwt, K, g.out_c, dw);
        }
    }

    // C (m x n, rows ldc apart) = A B, or C + A B with `accumulate`, then (when bias or
    // act is given) C = act(C + bias), for the convolutions: A(i, p) at
    // a[i * a_rs + p * a_cs] with a_cs == 1 (row-major) or a_rs == 1 (a transposed
    // row-major matrix), B (k x n) row-major, rows ldb apart. Float runs the AVX-512
    // kernel of ewe/cpu/gemm.hpp where compiled (bias and ReLU fused into its stores)
    // when C has at least kGemmMinColumns columns (narrower ones, such as the last
    // layer's single channel, fill too few vector lanes), everything else Eigen's product
    // (the portable path); with bf16 (rounds_to_bf16), all on gemm_bf16(); on the calling
    // thread.
    static void product(bool bf16, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t a_rs,
                        std::int64_t a_cs, const T* b, std::int64_t ldb, T* c, std::int64_t ldc, bool accumulate,
                        Activation act = Activation::none, const T* bias = nullptr) {
        if constexpr (kBf16Kernel) {
            if (bf16) {
                const bool fused = act == Activation::none || act == Activation::relu;
                gemm_bf16(m, n, k, a, a_rs, a_cs, b, ldb, 1, c, ldc, accumulate, fused ? bias : nullptr,
                          act == Activation::relu);
                if (!fused) bias_activation(act, bias, c, m, n, ldc);
                return;
            }
        }
        if constexpr (kGemmKernel) {
            if (n >= kGemmMinColumns) {
                const bool fused = act == Activation::none || act == Activation::relu;
                gemm(m, n, k, a, a_rs, a_cs, b, ldb, c, ldc, accumulate, fused ? bias : nullptr,
                     act == Activation::relu);
                if (!fused) bias_activation(act, bias, c, m, n, ldc);
                return;
            }
        }
        using Strided = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;
        using ConstStrided = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;
        Strided C(c, m, n, Eigen::OuterStride<>(ldc));
        const ConstStrided B(b, k, n, Eigen::OuterStride<>(ldb));
        const auto multiply = [&](const auto& A) {
            if (accumulate) C.noalias() += A * B;
            else C.noalias() = A * B;
        };
        if (a_cs == 1) multiply(ConstStrided(a, m, k, Eigen::OuterStride<>(a_rs)));
        else multiply(ConstStrided(a, k, m, Eigen::OuterStride<>(a_cs)).transpose());
        bias_activation(act, bias, c, m, n, ldc);
    }

    // product() in the bf16 mode on operands packed for gemm_bf16 (ewe/cpu/gemm_bf16.hpp):
    // C = act(A B + bias).
    static void packed_product(std::int64_t m, std::int64_t n, std::int64_t k, Bf16PackedA a, Bf16PackedB b, T* c,
                               std::int64_t ldc, Activation act = Activation::none, const T* bias = nullptr) {
        if constexpr (kBf16Kernel) {
            const bool fused = act == Activation::none || act == Activation::relu;
            gemm_bf16(m, n, k, a, b, c, ldc, false, fused ? bias : nullptr, act == Activation::relu);
            if (!fused) bias_activation(act, bias, c, m, n, ldc);
        }
    }
    // The same with A (m x k) at a[i * a_rs + p * a_cs] in floats (gemm_bf16 packs it):
    // C = A B, or C + A B with `accumulate`.
    static void packed_product(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t a_rs,
                               std::int64_t a_cs, Bf16PackedB b, T* c, std::int64_t ldc, bool accumulate) {
        if constexpr (kBf16Kernel) gemm_bf16(m, n, k, a, a_rs, a_cs, b, c, ldc, accumulate);
    }

    // out (cols x rows, row-major) = the transpose of in (rows x cols, row-major).
    static void transpose_into(const T* in, std::int64_t rows, std::int64_t cols, T* out) {
        for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t c = 0; c < cols; ++c) out[c * rows + r] = in[r * cols + c];
    }

    // Offset in the convolution's input (the transposed convolution's output) of the
    // image whose first patch row is m.
    static std::int64_t image_start(const ConvGeometry& g, std::int64_t m) {
        return m / (g.h.out * g.w.out) * g.h.in * g.w.in * g.in_c;
    }

    // The bf16 mode's operands of for_image_groups: the filter packed once as the data
    // gradient's B (k x n at w[p * rs + j * cs]; none where w is null), and whether each
    // running thread gets its block of patch rows packed as a product's A (patches_a),
    // as its B (patches_b), and in fp32 (cols).
    struct Bf16Operands {
        const T* w = nullptr;
        std::int64_t k = 0, n = 0, rs = 0, cs = 0;
        bool patches_a = false, patches_b = false, fp32_patches = true;
    };
    // What a group's body gets of them: the packed filter, im2col_bf16's row buffer and
    // the running thread's words for its patches (null where not asked for).
    struct Bf16Slot {
        Bf16PackedB w{};
        T* row_buffer = nullptr;
        std::uint32_t* patches_a = nullptr;
        std::uint32_t* patches_b = nullptr;
    };

    // Runs body(n0, n1, block, cols, dw_part, db_part, wt, bf16_slot) for groups of whole
    // images [n0, n1): min(batch, kImageGroups) groups, as items of parallel_for. cols is
    // the running thread's scratch (block patch rows; null without bf16's fp32_patches);
    // dw_part (dw_size values, which the body sets) and db_part (db_size doubles, zeroed
    // here) are the group's partial gradients, summed over the groups in group order into
    // dw and db (db may be null). wt is the filter w (out_c x K) transposed once for all
    // groups, or null when w is. bf16_slot: the operands asked for in `bf16`.
    template <class Body>
    static void for_image_groups(Context& ctx, const ConvGeometry& g, std::int64_t dw_size, std::int64_t db_size,
                                 Body&& body, T* dw, T* db, const T* w, const Bf16Operands& bf16) {
        const std::int64_t groups = std::max<std::int64_t>(1, std::min(g.batch, kImageGroups));
        const std::int64_t pixels = g.h.out * g.w.out;
        const std::int64_t block = std::min(im2col_block_rows(g, ctx.options().cpu_im2col_elements),
                                            std::max<std::int64_t>(pixels * ((g.batch + groups - 1) / groups), 1));
        ScratchPlan<T> plan;
        const std::int64_t db_at = plan.add_doubles(groups * db_size);
        const std::int64_t dw_at = plan.add_values(groups * dw_size);
        const int threads = thread_count(ctx);  // the slots of scratch and of parallel_for
        const std::int64_t K = g.gemm_k();
        const std::int64_t cols_at = plan.add_values(bf16.fp32_patches ? threads * block * K : 0);
        const std::int64_t wt_at = plan.add_values(w == nullptr ? 0 : g.out_c * K);
        const std::int64_t packed_w_at = plan.add_words(bf16.w == nullptr ? 0 : bf16_packed_b_words(bf16.k, bf16.n));
        const bool any_patches = bf16.patches_a || bf16.patches_b;
        const std::int64_t row_buffer_at = plan.add_values(any_patches ? threads * 2 * K : 0);
        const std::int64_t a_words = bf16.patches_a ? bf16_packed_a_words(block, K) : 0;
        const std::int64_t b_words = bf16.patches_b ? bf16_packed_b_words(block, K) : 0;
        const std::int64_t patches_at = plan.add_words(threads * (a_words + b_words));
        plan.allocate(ctx);
        T* wt = w == nullptr ? nullptr : plan.values(wt_at);
        if (w != nullptr) transpose_into(w, g.out_c, K, wt);
        Bf16PackedB packed_w{};
        if constexpr (kBf16Kernel)
            if (bf16.w != nullptr)
                packed_w = pack_bf16_b(bf16.k, bf16.n, bf16.w, bf16.rs, bf16.cs, plan.words(packed_w_at));
        double* db_parts = plan.doubles(db_at);
        T* dw_parts = plan.values(dw_at);
        std::fill(db_parts, db_parts + groups * db_size, 0.0);
        parallel_for(threads, groups, [&](std::int64_t group, int slot) {
            std::uint32_t* patches = plan.words(patches_at) + slot * (a_words + b_words);
            const Bf16Slot bf16_slot{packed_w, any_patches ? plan.values(row_buffer_at) + slot * 2 * K : nullptr,
                                     bf16.patches_a ? patches : nullptr, bf16.patches_b ? patches + a_words : nullptr};
            body(g.batch * group / groups, g.batch * (group + 1) / groups, block,
                 bf16.fp32_patches ? plan.values(cols_at) + slot * block * K : nullptr, dw_parts + group * dw_size,
                 db_parts + group * db_size, wt, bf16_slot);
        });
        sum_partials(thread_count(ctx), dw_parts, groups, dw_size, dw_size, dw);
        if (db != nullptr) sum_partials(thread_count(ctx), db_parts, groups, db_size, db_size, db);
    }

    static void apply_dropout(int threads, double rate, const PhiloxKey& key, const T* in, T* out, std::int64_t count) {
        const std::uint32_t threshold = dropout_threshold(rate);
        const T scale = T(1.0 / (1.0 - rate));
        parallel_ranges(threads, count, kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
            for (std::int64_t i = begin; i < end; ++i)
                out[i] = philox_keep(key, key.first_element + std::uint64_t(i), threshold) ? in[i] * scale : T(0);
        });
    }
};

}  // namespace ewe::cpu

namespace ewe::cpu {

// The program's CPU backend for element type T.
template <class T>
Backend<T>& backend_instance() {
    static Backend<T> backend;
    return backend;
}

// The float backend registers itself with ewe::Context (ewe/core/cpu_hooks.hpp) when the
// program starts, before anything that follows this header in the same file runs; the
// double one where ewe/cpu/double_backend.hpp is included (compiling it costs a file
// about as much again as float's, so only programs that compute in double pay it).
// libewe_cpu.a (ewe::compiled) registers both (include/ewe/compiled/cpu_backend.cpp).
inline const bool float_backend_registered = (detail::install_cpu_backend(&backend_instance<float>()), true);

}  // namespace ewe::cpu
