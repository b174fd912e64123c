// The CPU backend: every op of ewe/ops/backend.hpp on the host, with Eigen for the
// matrix products (multi-threaded through OpenMP when it is enabled) and OpenMP
// loops for the rest. Convolutions go through im2col (ewe/cpu/im2col.hpp).
// Reductions accumulate in double, also for float data.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>

#include "ewe/core/context.hpp"
#include "ewe/cpu/im2col.hpp"
#include "ewe/ops/backend.hpp"

namespace ewe::cpu {

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<Matrix<T>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const Matrix<T>>;

template <class T>
MatrixMap<T> as_matrix(TensorView<T> t, std::int64_t rows, std::int64_t cols) {
    return MatrixMap<T>(t.data(), rows, cols);
}
template <class T>
ConstMatrixMap<T> as_matrix(TensorView<const T> t, std::int64_t rows, std::int64_t cols) {
    return ConstMatrixMap<T>(t.data(), rows, cols);
}

constexpr std::int64_t kParallelGrain = 1 << 14;  // elements below which loops stay serial

// Calls body(begin, end) on contiguous pieces of [0, count), one per OpenMP thread.
template <class Body>
void parallel_chunks(std::int64_t count, Body&& body) {
#pragma omp parallel if (count > kParallelGrain)
    {
        std::int64_t threads = 1, id = 0;
#if defined(_OPENMP)
        threads = omp_get_num_threads();
        id = omp_get_thread_num();
#endif
        const std::int64_t piece = (count + threads - 1) / threads;
        const std::int64_t begin = std::min(count, id * piece), end = std::min(count, begin + piece);
        if (end > begin) body(begin, end);
    }
}

template <class T>
using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

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

// y (M, C) = act(y + b), in place; b may be empty.
template <class T>
void bias_activation(Activation act, const T* b, T* y, std::int64_t rows, std::int64_t cols) {
    if (b == nullptr && act == Activation::none) return;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain)
    for (std::int64_t r = 0; r < rows; ++r) {
        T* row = y + r * cols;
        for (std::int64_t c = 0; c < cols; ++c) row[c] = activate(act, b ? row[c] + b[c] : row[c]);
    }
}

// dpre = dy * act'(y), all (M, C).
template <class T>
void activation_grad(Activation act, const T* y, const T* dy, T* dpre, std::int64_t count) {
#pragma omp parallel for schedule(static) if (count > kParallelGrain)
    for (std::int64_t i = 0; i < count; ++i) dpre[i] = dy[i] * activation_slope(act, y[i]);
}

// db[c] = sum over rows of dpre[r, c].
template <class T>
void column_sums(const T* dpre, T* db, std::int64_t rows, std::int64_t cols) {
    if (db == nullptr) return;
    ConstMatrixMap<T> d(dpre, rows, cols);
    Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(db, cols) = d.colwise().sum();
}

template <class T>
class Backend final : public ewe::Backend<T> {
public:
    template <class U>
    using View = TensorView<U>;

    void dense_forward(Context&, View<const T> x, View<const T> w, View<const T> b, Activation act,
                       View<T> y) override {
        const std::int64_t n = x.dim(0), in = x.dim(1), out = w.dim(1);
        as_matrix(y, n, out).noalias() = as_matrix(x, n, in) * as_matrix(w, in, out);
        bias_activation(act, b.data(), y.data(), n, out);
    }

    // dw = x^T dpre, dx = dpre w^T. With a small batch both products are bound by
    // memory, so they run in blocks of w's long side: each block of dw is computed in
    // cache and written once, and (when `in` is the long side) the same pass over w's
    // rows also gives that block of dx, so w is read once.
    void dense_backward(Context&, View<const T> x, View<const T> w, View<const T> y, View<const T> dy,
                        Activation act, View<T> dpre, View<T> dx, View<T> dw, View<T> db) override {
        const std::int64_t n = x.dim(0), in = x.dim(1), out = w.dim(1);
        activation_grad(act, y.data(), dy.data(), dpre.data(), n * out);
        column_sums(dpre.data(), db.data(), n, out);
        auto d = as_matrix(View<const T>(dpre), n, out);
        auto X = as_matrix(x, n, in);
        auto W = as_matrix(w, in, out);
        auto dW = as_matrix(dw, in, out);
        constexpr std::int64_t kBlock = 256;
        if (in >= out) {
#pragma omp parallel for schedule(static) if (in * out > kParallelGrain)
            for (std::int64_t r = 0; r < in; r += kBlock) {
                const std::int64_t rows = std::min(kBlock, in - r);
                dW.middleRows(r, rows).noalias() = X.middleCols(r, rows).transpose() * d;
                if (!dx.empty()) as_matrix(dx, n, in).middleCols(r, rows).noalias() = d * W.middleRows(r, rows).transpose();
            }
            return;
        }
#pragma omp parallel for schedule(static) if (in * out > kParallelGrain)
        for (std::int64_t c = 0; c < out; c += kBlock) {
            const std::int64_t cols = std::min(kBlock, out - c);
            dW.middleCols(c, cols).noalias() = X.transpose() * d.middleCols(c, cols);
        }
        if (!dx.empty()) as_matrix(dx, n, in).noalias() = d * W.transpose();
    }

    // Convolutions split the batch into one group of whole images per thread (so no
    // two threads touch the same pixel, and each runs its GEMMs alone), and walk each
    // group's output pixels in blocks (im2col_block_rows): a block's patch matrix is
    // built, used and dropped while still in cache. Filter gradients are summed from
    // per-thread partials in a fixed order. With fewer images than threads, the one
    // group's GEMMs and copies are parallel inside instead.
    void conv2d_forward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w, View<const T> b,
                        Activation act, View<T> y) override {
        const std::int64_t K = g.gemm_k();
        auto W = as_matrix(w, g.out_c, K);
        auto Y = as_matrix(y, g.gemm_m(), g.out_c);
        for_image_groups(ctx, g, 0, [&](std::int64_t m0, std::int64_t m1, std::int64_t block, T* cols, T*) {
            for (std::int64_t m = m0; m < m1; m += block) {
                const std::int64_t rows = std::min(block, m1 - m);
                im2col(g, x.data(), m, m + rows, cols);
                Y.middleRows(m, rows).noalias() = ConstMatrixMap<T>(cols, rows, K) * W.transpose();
            }
        });
        bias_activation(act, b.data(), y.data(), g.gemm_m(), g.out_c);
    }

    void conv2d_backward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w, View<const T> y,
                         View<const T> dy, Activation act, View<T> dpre, View<T> dx, View<T> dw,
                         View<T> db) override {
        const std::int64_t M = g.gemm_m(), K = g.gemm_k();
        activation_grad(act, y.data(), dy.data(), dpre.data(), M * g.out_c);
        column_sums(dpre.data(), db.data(), M, g.out_c);
        auto D = ConstMatrixMap<T>(dpre.data(), M, g.out_c);
        auto W = as_matrix(w, g.out_c, K);
        for_image_groups(ctx, g, g.out_c * K, [&](std::int64_t m0, std::int64_t m1, std::int64_t block, T* cols, T* dw_part) {
            auto dW = MatrixMap<T>(dw_part, g.out_c, K);
            dW.setZero();
            if (!dx.empty()) std::fill(dx.data() + image_start(g, m0), dx.data() + image_start(g, m1), T(0));
            for (std::int64_t m = m0; m < m1; m += block) {
                const std::int64_t rows = std::min(block, m1 - m);
                im2col(g, x.data(), m, m + rows, cols);
                auto C = MatrixMap<T>(cols, rows, K);
                dW.noalias() += D.middleRows(m, rows).transpose() * C;
                if (dx.empty()) continue;
                C.noalias() = D.middleRows(m, rows) * W;
                col2im_add(g, cols, m, m + rows, dx.data());
            }
        }, dw.data());
    }

    void conv2d_transpose_forward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w,
                                  View<const T> b, Activation act, View<T> y) override {
        const std::int64_t K = g.gemm_k();
        auto X = as_matrix(x, g.gemm_m(), g.out_c);
        auto W = as_matrix(w, g.out_c, K);
        for_image_groups(ctx, g, 0, [&](std::int64_t m0, std::int64_t m1, std::int64_t block, T* cols, T*) {
            std::fill(y.data() + image_start(g, m0), y.data() + image_start(g, m1), T(0));
            for (std::int64_t m = m0; m < m1; m += block) {
                const std::int64_t rows = std::min(block, m1 - m);
                MatrixMap<T>(cols, rows, K).noalias() = X.middleRows(m, rows) * W;
                col2im_add(g, cols, m, m + rows, y.data());
            }
        });
        bias_activation(act, b.data(), y.data(), y.numel() / g.in_c, g.in_c);
    }

    void conv2d_transpose_backward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w,
                                   View<const T> y, View<const T> dy, Activation act, View<T> dpre, View<T> dx,
                                   View<T> dw, View<T> db) override {
        const std::int64_t M = g.gemm_m(), K = g.gemm_k();
        activation_grad(act, y.data(), dy.data(), dpre.data(), y.numel());
        column_sums(dpre.data(), db.data(), y.numel() / g.in_c, g.in_c);
        auto X = as_matrix(x, M, g.out_c);
        auto W = as_matrix(w, g.out_c, K);
        for_image_groups(ctx, g, g.out_c * K, [&](std::int64_t m0, std::int64_t m1, std::int64_t block, T* cols, T* dw_part) {
            auto dW = MatrixMap<T>(dw_part, g.out_c, K);
            dW.setZero();
            for (std::int64_t m = m0; m < m1; m += block) {
                const std::int64_t rows = std::min(block, m1 - m);
                im2col(g, dpre.data(), m, m + rows, cols);
                auto C = ConstMatrixMap<T>(cols, rows, K);
                dW.noalias() += X.middleRows(m, rows).transpose() * C;
                if (!dx.empty()) as_matrix(dx, M, g.out_c).middleRows(m, rows).noalias() = C * W.transpose();
            }
        }, dw.data());
    }

    void activation_forward(Context&, Activation act, View<const T> x, View<T> y) override {
        const std::int64_t count = x.numel();
#pragma omp parallel for schedule(static) if (count > kParallelGrain)
        for (std::int64_t i = 0; i < count; ++i) y[i] = activate(act, x[i]);
    }

    void activation_backward(Context&, Activation act, View<const T> y, View<const T> dy, View<T> dx) override {
        activation_grad(act, y.data(), dy.data(), dx.data(), y.numel());
    }

    void batchnorm_forward(Context&, const BatchNormConfig& cfg, Phase phase, View<const T> x, View<const T> gamma,
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
                saved_invstd[c] = T(1.0 / std::sqrt(var + cfg.epsilon));
                moving_mean[c] = T(cfg.momentum * moving_mean[c] + (1.0 - cfg.momentum) * mean);
                moving_var[c] = T(cfg.momentum * moving_var[c] + (1.0 - cfg.momentum) * var);
            }
        }
        for (std::int64_t r = 0; r < M; ++r) {
            for (std::int64_t c = 0; c < C; ++c) {
                const T mean = phase == Phase::train ? saved_mean[c] : moving_mean[c];
                const T invstd = phase == Phase::train ? saved_invstd[c]
                                                       : T(1.0 / std::sqrt(double(moving_var[c]) + cfg.epsilon));
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

    void dropout_forward(Context&, double rate, const PhiloxKey& key, View<const T> x, View<T> y) override {
        apply_dropout(rate, key, x.data(), y.data(), x.numel());
    }
    void dropout_backward(Context&, double rate, const PhiloxKey& key, View<const T> dy, View<T> dx) override {
        apply_dropout(rate, key, dy.data(), dx.data(), dy.numel());
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

    // The optimizers run as Eigen array expressions (vectorized square roots and
    // divisions) on one contiguous piece per thread.
    void sgd_update(Context&, const SgdConfig& cfg, double lr, View<T> params, View<const T> grads,
                    View<T> velocity) override {
        const T m = T(cfg.momentum), rate = T(lr);
        parallel_chunks(params.numel(), [&](std::int64_t b, std::int64_t e) {
            ArrayMap<T> p(params.data() + b, e - b);
            ConstArrayMap<T> g(grads.data() + b, e - b);
            if (cfg.momentum == 0.0) {
                p -= rate * g;
                return;
            }
            ArrayMap<T> v(velocity.data() + b, e - b);
            v = m * v - rate * g;
            if (cfg.nesterov) p += m * v - rate * g;
            else p += v;
        });
    }

    void rmsprop_update(Context&, const RmspropConfig& cfg, double lr, View<T> params, View<const T> grads,
                        View<T> mean_square) override {
        const T rho = T(cfg.rho), one_minus_rho = T(1.0 - cfg.rho), eps = T(cfg.epsilon), rate = T(lr);
        parallel_chunks(params.numel(), [&](std::int64_t b, std::int64_t e) {
            ArrayMap<T> p(params.data() + b, e - b), s(mean_square.data() + b, e - b);
            ConstArrayMap<T> g(grads.data() + b, e - b);
            s = rho * s + one_minus_rho * g.square();
            p -= rate * g / (s.sqrt() + eps);
        });
    }

    void adam_update(Context&, const AdamConfig& cfg, double step_size, View<T> params, View<const T> grads,
                     View<T> m, View<T> v) override {
        const T rate = T(step_size);
        const T b1 = T(cfg.beta1), b2 = T(cfg.beta2), eps = T(cfg.epsilon);
        parallel_chunks(params.numel(), [&](std::int64_t b, std::int64_t e) {
            ArrayMap<T> p(params.data() + b, e - b), mm(m.data() + b, e - b), vv(v.data() + b, e - b);
            ConstArrayMap<T> g(grads.data() + b, e - b);
            mm = b1 * mm + (T(1) - b1) * g;
            vv = b2 * vv + (T(1) - b2) * g.square();
            p -= rate * mm / (vv.sqrt() + eps);
        });
    }

    void fill(Context&, T value, View<T> x) override { std::fill(x.data(), x.data() + x.numel(), value); }

    void copy(Context&, View<const T> src, View<T> dst) override { ewe::copy<T>(src, dst); }

    void add(Context&, View<const T> a, View<const T> b, View<T> out) override {
        const std::int64_t count = a.numel();
#pragma omp parallel for schedule(static) if (count > kParallelGrain)
        for (std::int64_t i = 0; i < count; ++i) out[i] = a[i] + b[i];
    }

    void sum(Context&, View<const T> x, View<T> out) override {
        double acc = 0;
        for (std::int64_t i = 0; i < x.numel(); ++i) acc += x[i];
        out[0] = T(acc);
    }

    void gather_images(Context&, View<const std::uint8_t> images, View<const std::int32_t> indices, double scale,
                       View<T> out) override {
        const std::int64_t count = images.dim(0), pixels = images.numel() / std::max<std::int64_t>(count, 1);
        for (std::int64_t i = 0; i < indices.numel(); ++i) {
            const std::int64_t row = indices[i];
            EWE_REQUIRE(row >= 0 && row < count, "ops::gather_images: index ", row, " at position ", i,
                        " is outside the ", count, " images");
            const std::uint8_t* src = images.data() + row * pixels;
            T* dst = out.data() + i * pixels;
            for (std::int64_t p = 0; p < pixels; ++p) dst[p] = T(double(src[p]) * scale);
        }
    }

private:
    // Offset in the convolution's input (the transposed convolution's output) of the
    // image whose first patch row is m, as for_image_groups hands out.
    static std::int64_t image_start(const ConvGeometry& g, std::int64_t m) {
        return m / (g.h.out * g.w.out) * g.h.in * g.w.in * g.in_c;
    }

    // Runs body(m0, m1, block, cols, partial) for each group of whole images [m0, m1)
    // (in rows of the patch matrix), one group per thread, with that thread's cols
    // scratch (block rows) and, when partial_size > 0, a partial result of that size
    // which is then summed over the groups, in group order, into `sum_into`.
    template <class Body>
    static void for_image_groups(Context& ctx, const ConvGeometry& g, std::int64_t partial_size, Body&& body,
                                 T* sum_into = nullptr) {
        int threads = 1;
#if defined(_OPENMP)
        threads = omp_get_max_threads();
#endif
        const std::int64_t groups = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, g.batch));
        const std::int64_t pixels = g.h.out * g.w.out;
        const std::int64_t block = std::min(im2col_block_rows(g, ctx.options().cpu_im2col_elements),
                                            std::max<std::int64_t>(pixels * ((g.batch + groups - 1) / groups), 1));
        const std::int64_t per_group = block * g.gemm_k() + partial_size;
        T* scratch = ctx.cpu_scratch<T>(groups * per_group);
#pragma omp parallel for num_threads(int(groups)) schedule(static, 1) if (groups > 1)
        for (std::int64_t group = 0; group < groups; ++group) {
            const std::int64_t n0 = g.batch * group / groups, n1 = g.batch * (group + 1) / groups;
            T* cols = scratch + group * per_group;
            body(n0 * pixels, n1 * pixels, block, cols, cols + block * g.gemm_k());
        }
        if (partial_size == 0) return;
        const std::int64_t offset = block * g.gemm_k();
#pragma omp parallel for schedule(static) if (partial_size > kParallelGrain)
        for (std::int64_t i = 0; i < partial_size; ++i) {
            T total = scratch[offset + i];
            for (std::int64_t group = 1; group < groups; ++group) total += scratch[group * per_group + offset + i];
            sum_into[i] = total;
        }
    }

    static void apply_dropout(double rate, const PhiloxKey& key, const T* in, T* out, std::int64_t count) {
        const std::uint32_t threshold = dropout_threshold(rate);
        const T scale = T(1.0 / (1.0 - rate));
#pragma omp parallel for schedule(static) if (count > kParallelGrain)
        for (std::int64_t i = 0; i < count; ++i)
            out[i] = philox_keep(key, key.first_element + std::uint64_t(i), threshold) ? in[i] * scale : T(0);
    }
};

}  // namespace ewe::cpu

namespace ewe::detail {
template <class T>
Backend<T>& cpu_backend() {
    static cpu::Backend<T> backend;
    return backend;
}
}  // namespace ewe::detail
