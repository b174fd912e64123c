// The CUDA backend's op adapters: every op of ewe/ops/backend.hpp on the GPU, with
// the semantics of the CPU reference (ewe/cpu/backend.hpp). Each adapter announces
// itself to the context's Resources (begin_op with a fingerprint of its arguments),
// routes its per-step host scalars through Resources::scalar (that is what lets
// ewe::cuda::StepGraph, graph.cuh, capture a training step once and replay it with new
// learning rates, loss coefficients and Philox offsets), then launches: convolutions
// through ewe/cuda/conv.cuh, dense GEMMs through ewe/cuda/gemm.cuh, the rest through
// the launch functions of kernels/*.cuh. Float only: ewe::Context refuses double on
// CUDA (ewe/core/context.hpp). The hooks that install this backend are in ewe/cuda/hooks.cuh.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ewe/core/context.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/cuda/check.cuh"
#include "ewe/cuda/conv.cuh"
#include "ewe/cuda/gemm.cuh"
#include "ewe/cuda/resources.cuh"
#include "ewe/ops/backend.hpp"
#include "ewe/kernels/batchnorm.cuh"
#include "ewe/kernels/dropout.cuh"
#include "ewe/kernels/elementwise.cuh"
#include "ewe/kernels/gather.cuh"
#include "ewe/kernels/losses.cuh"
#include "ewe/kernels/optimizers.cuh"
#include "ewe/kernels/reduce.cuh"
#include "ewe/kernels/reparam.cuh"

namespace ewe::cuda {

// The CUDA backend, declared for float only (the one specialization below).
template <class T>
class Backend;

// The float backend.
template <>
class Backend<float> final : public ewe::Backend<float> {
public:
    using T = float;
    template <class U>
    using View = TensorView<U>;

    // ------------------------------------------------------------ dense
    void dense_forward(Context& ctx, View<const T> x, View<const T> w, View<const T> b, Activation act,
                       View<T> y) override {
        Resources& r = begin(ctx, Fingerprint("dense_forward").add(x).add(w).add(b).add(int(act)).add(y),
                             "dense_forward");
        if (!r.launching()) return;
        const std::int64_t n = x.dim(0), in = x.dim(1), out = w.dim(1);
        gemm(r, false, false, out, n, in, w.data(), out, x.data(), in, y.data());
        kernels::bias_activation(r.stream(), act, b.data(), y.data(), n * out, out);
    }

    void dense_backward(Context& ctx, View<const T> x, View<const T> w, View<const T> y, View<const T> dy,
                        Activation act, View<T> dpre, View<T> dx, View<T> dw, View<T> db) override {
        Resources& r = begin(ctx,
                             Fingerprint("dense_backward").add(x).add(w).add(y).add(dy).add(int(act)).add(dpre).add(dx)
                                 .add(dw).add(db),
                             "dense_backward");
        if (!r.launching()) return;
        const std::int64_t n = x.dim(0), in = x.dim(1), out = w.dim(1);
        kernels::activation_grad(r.stream(), act, y.data(), dy.data(), dpre.data(), n * out);
        gemm(r, false, true, out, in, n, dpre.data(), out, x.data(), in, dw.data());
        column_sums(r, dpre.data(), db.data(), n, out);
        if (!dx.empty()) gemm(r, true, false, in, n, out, w.data(), out, dpre.data(), out, dx.data());
    }

    // ------------------------------------------------------------ convolutions
    // Conv2D runs the convolution g forwards; Conv2DTranspose runs it backwards:
    // forward = g's data gradient, filter gradient = g's filter gradient with the
    // roles of input (dpre) and output gradient (x) swapped, input gradient = g forward.
    void conv2d_forward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w, View<const T> b,
                        Activation act, View<T> y) override {
        Resources& r = begin(ctx, Fingerprint("conv2d_forward").add(g).add(x).add(w).add(b).add(int(act)).add(y),
                             "conv2d_forward");
        if (!r.launching() || y.numel() == 0) return;
        Convolution(r, g).forward(x.data(), w.data(), y.data());
        kernels::bias_activation(r.stream(), act, b.data(), y.data(), y.numel(), g.out_c);
    }

    void conv2d_backward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w, View<const T> y,
                         View<const T> dy, Activation act, View<T> dpre, View<T> dx, View<T> dw,
                         View<T> db) override {
        Resources& r = begin(ctx,
                             Fingerprint("conv2d_backward").add(g).add(x).add(w).add(y).add(dy).add(int(act)).add(dpre)
                                 .add(dx).add(dw).add(db),
                             "conv2d_backward");
        if (!r.launching()) return;
        if (g.batch == 0) return zero_grads(r, dw, db);
        const std::int64_t M = g.gemm_m();
        kernels::activation_grad(r.stream(), act, y.data(), dy.data(), dpre.data(), M * g.out_c);
        column_sums(r, dpre.data(), db.data(), M, g.out_c);
        Convolution conv(r, g);
        conv.backward_filter(x.data(), dpre.data(), dw.data());
        if (!dx.empty()) conv.backward_data(w.data(), dpre.data(), dx.data());
    }

    void conv2d_transpose_forward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w,
                                  View<const T> b, Activation act, View<T> y) override {
        Resources& r = begin(ctx,
                             Fingerprint("conv2d_transpose_forward").add(g).add(x).add(w).add(b).add(int(act)).add(y),
                             "conv2d_transpose_forward");
        if (!r.launching() || y.numel() == 0) return;
        Convolution(r, g).backward_data(w.data(), x.data(), y.data());
        kernels::bias_activation(r.stream(), act, b.data(), y.data(), y.numel(), g.in_c);
    }

    void conv2d_transpose_backward(Context& ctx, const ConvGeometry& g, View<const T> x, View<const T> w,
                                   View<const T> y, View<const T> dy, Activation act, View<T> dpre, View<T> dx,
                                   View<T> dw, View<T> db) override {
        Resources& r = begin(ctx,
                             Fingerprint("conv2d_transpose_backward").add(g).add(x).add(w).add(y).add(dy).add(int(act))
                                 .add(dpre).add(dx).add(dw).add(db),
                             "conv2d_transpose_backward");
        if (!r.launching()) return;
        if (g.batch == 0) return zero_grads(r, dw, db);
        kernels::activation_grad(r.stream(), act, y.data(), dy.data(), dpre.data(), y.numel());
        column_sums(r, dpre.data(), db.data(), y.numel() / g.in_c, g.in_c);
        Convolution conv(r, g);
        conv.backward_filter(dpre.data(), x.data(), dw.data());
        if (!dx.empty()) conv.forward(dpre.data(), w.data(), dx.data());
    }

    // ------------------------------------------------------------ activations
    void activation_forward(Context& ctx, Activation act, View<const T> x, View<T> y) override {
        Resources& r = begin(ctx, Fingerprint("activation_forward").add(int(act)).add(x).add(y), "activation_forward");
        if (!r.launching()) return;
        kernels::activation_forward(r.stream(), act, x.data(), y.data(), x.numel());
    }

    void activation_backward(Context& ctx, Activation act, View<const T> y, View<const T> dy, View<T> dx) override {
        Resources& r = begin(ctx, Fingerprint("activation_backward").add(int(act)).add(y).add(dy).add(dx),
                             "activation_backward");
        if (!r.launching()) return;
        kernels::activation_grad(r.stream(), act, y.data(), dy.data(), dx.data(), y.numel());
    }

    // ------------------------------------------------------------ batch normalization
    void batchnorm_forward(Context& ctx, const BatchNormOptions& options, Phase phase, View<const T> x, View<const T> gamma,
                           View<const T> beta, View<T> moving_mean, View<T> moving_var, View<T> saved_mean,
                           View<T> saved_invstd, View<T> y) override {
        Resources& r = begin(ctx,
                             Fingerprint("batchnorm_forward").add(options.momentum).add(options.epsilon).add(int(phase)).add(x)
                                 .add(gamma).add(beta).add(moving_mean).add(moving_var).add(saved_mean)
                                 .add(saved_invstd).add(y),
                             "batchnorm_forward");
        if (!r.launching()) return;
        const std::int64_t C = gamma.numel(), M = C > 0 ? x.numel() / C : 0;
        if (C == 0) return;
        const bool train = phase == Phase::train;
        if (train) {
            const kernels::ColumnReducePlan plan(M, C);
            WorkspaceCarver carve;
            carve.reserve(plan.bytes(1));
            carve.reserve(static_cast<std::size_t>(C) * sizeof(double));
            carve.bind(r.workspace(carve.total()));
            double* partials = carve.take<double>(plan.bytes(1) / sizeof(double));
            double* mean = carve.take<double>(static_cast<std::size_t>(C));
            kernels::column_reduce<1>(r.stream(), plan, partials, kernels::ColumnValue<T>{x.data(), C},
                                      kernels::StoreMean{mean, double(M)});
            kernels::column_reduce<1>(r.stream(), plan, partials, kernels::SquaredDeviation<T>{x.data(), mean, C},
                                      kernels::FinishStatistics<T>{mean, double(M), options.epsilon, options.momentum,
                                                                   saved_mean.data(), saved_invstd.data(),
                                                                   moving_mean.data(), moving_var.data()});
        }
        kernels::batchnorm_normalize(r.stream(), train, options.epsilon, x.data(), gamma.data(), beta.data(),
                                     train ? saved_mean.data() : moving_mean.data(),
                                     train ? saved_invstd.data() : moving_var.data(), y.data(), x.numel(), C);
    }

    void batchnorm_backward(Context& ctx, View<const T> x, View<const T> dy, View<const T> gamma,
                            View<const T> saved_mean, View<const T> saved_invstd, View<T> dx, View<T> dgamma,
                            View<T> dbeta) override {
        Resources& r = begin(ctx,
                             Fingerprint("batchnorm_backward").add(x).add(dy).add(gamma).add(saved_mean)
                                 .add(saved_invstd).add(dx).add(dgamma).add(dbeta),
                             "batchnorm_backward");
        if (!r.launching()) return;
        const std::int64_t C = gamma.numel(), M = C > 0 ? x.numel() / C : 0;
        if (C == 0) return;
        const kernels::ColumnReducePlan plan(M, C);
        WorkspaceCarver carve;
        carve.reserve(plan.bytes(2));
        carve.reserve(static_cast<std::size_t>(2 * C) * sizeof(double));
        carve.bind(r.workspace(carve.total()));
        double* partials = carve.take<double>(plan.bytes(2) / sizeof(double));
        double* sums = carve.take<double>(static_cast<std::size_t>(2 * C));
        kernels::column_reduce<2>(
            r.stream(), plan, partials,
            kernels::BackwardTerms<T>{x.data(), dy.data(), saved_mean.data(), saved_invstd.data(), C},
            kernels::StoreBackwardSums<T>{sums, C, dgamma.data(), dbeta.data()});
        kernels::batchnorm_backward_dx(r.stream(), x.data(), dy.data(), gamma.data(), saved_mean.data(),
                                       saved_invstd.data(), sums, dx.data(), x.numel(), C);
    }

    // ------------------------------------------------------------ dropout
    void dropout_forward(Context& ctx, double rate, const PhiloxKey& key, View<const T> x, View<T> y) override {
        run_dropout(ctx, "dropout_forward", rate, key, x, y);
    }
    void dropout_backward(Context& ctx, double rate, const PhiloxKey& key, View<const T> dy, View<T> dx) override {
        run_dropout(ctx, "dropout_backward", rate, key, dy, dx);
    }

    // ------------------------------------------------------------ reparameterization
    void reparameterize_forward(Context& ctx, double log_var_scale, const PhiloxKey& key, View<const T> mean,
                                View<const T> log_var, View<T> z) override {
        Resources& r = begin(ctx,
                             Fingerprint("reparameterize_forward").add(log_var_scale).add(key.stream).add(mean)
                                 .add(log_var).add(z),
                             "reparameterize_forward");
        const auto seed = r.scalar<std::uint64_t>(key.seed);
        const auto offset = r.scalar<std::uint64_t>(key.offset);
        const auto first_element = r.scalar<std::uint64_t>(key.first_element);
        if (!r.launching()) return;
        kernels::reparameterize_forward(r.stream(), log_var_scale, mean.data(), log_var.data(), z.data(), mean.numel(),
                                        seed, key.stream, offset, first_element);
    }

    void reparameterize_backward(Context& ctx, double log_var_scale, const PhiloxKey& key, View<const T> log_var,
                                 View<const T> dz, View<T> dmean, View<T> dlog_var) override {
        Resources& r = begin(ctx,
                             Fingerprint("reparameterize_backward").add(log_var_scale).add(key.stream).add(log_var)
                                 .add(dz).add(dmean).add(dlog_var),
                             "reparameterize_backward");
        const auto seed = r.scalar<std::uint64_t>(key.seed);
        const auto offset = r.scalar<std::uint64_t>(key.offset);
        const auto first_element = r.scalar<std::uint64_t>(key.first_element);
        if (!r.launching()) return;
        kernels::reparameterize_backward(r.stream(), log_var_scale, log_var.data(), dz.data(), dmean.data(),
                                         dlog_var.data(), log_var.numel(), seed, key.stream, offset,
                                         first_element);
    }

    // ------------------------------------------------------------ losses
    void mse_forward(Context& ctx, double scale, View<const T> pred, View<const T> target,
                     View<T> per_sample) override {
        Resources& r = begin(ctx, Fingerprint("mse_forward").add(pred).add(target).add(per_sample), "mse_forward");
        const auto s = r.scalar<double>(scale);
        if (!r.launching()) return;
        const std::int64_t N = pred.dim(0), P = pred.numel() / std::max<std::int64_t>(N, 1);
        kernels::row_reduce(r.stream(), N, P, kernels::SquaredError<T>{pred.data(), target.data(), P},
                            kernels::StoreMse<T>{per_sample.data(), s, double(P)});
    }

    void mse_backward(Context& ctx, double grad_scale, View<const T> pred, View<const T> target,
                      View<T> dpred) override {
        Resources& r = begin(ctx, Fingerprint("mse_backward").add(pred).add(target).add(dpred), "mse_backward");
        const auto s = r.scalar<double>(grad_scale);
        if (!r.launching()) return;
        kernels::mse_backward(r.stream(), s, pred.data(), target.data(), dpred.data(), pred.numel());
    }

    void kl_forward(Context& ctx, double divisor, View<const T> mean, View<const T> log_var,
                    View<T> per_sample) override {
        Resources& r = begin(ctx, Fingerprint("kl_forward").add(divisor).add(mean).add(log_var).add(per_sample),
                             "kl_forward");
        if (!r.launching()) return;
        const std::int64_t N = mean.dim(0), D = mean.dim(1);
        kernels::row_reduce(r.stream(), N, D, kernels::KlTerm<T>{mean.data(), log_var.data(), D},
                            kernels::StoreKl<T>{per_sample.data(), divisor});
    }

    void kl_backward(Context& ctx, double grad_scale, View<const T> mean, View<const T> log_var, View<T> dmean,
                     View<T> dlog_var) override {
        Resources& r = begin(ctx, Fingerprint("kl_backward").add(mean).add(log_var).add(dmean).add(dlog_var),
                             "kl_backward");
        const auto s = r.scalar<double>(grad_scale);
        if (!r.launching()) return;
        kernels::kl_backward(r.stream(), s, mean.data(), log_var.data(), dmean.data(), dlog_var.data(), mean.numel());
    }

    // ------------------------------------------------------------ optimizers
    void sgd_update(Context& ctx, const SgdOptions& options, double lr, View<T> params, View<const T> grads,
                    View<T> velocity) override {
        Resources& r = begin(ctx,
                             Fingerprint("sgd_update").add(options.momentum).add(options.nesterov).add(params).add(grads)
                                 .add(velocity),
                             "sgd_update");
        const auto rate = r.scalar<double>(lr);
        const std::int64_t count = params.numel();
        if (!r.launching()) return;
        if (options.momentum == 0.0) return kernels::sgd_plain(r.stream(), rate, params.data(), grads.data(), count);
        kernels::sgd_momentum(r.stream(), rate, T(options.momentum), options.nesterov, params.data(), grads.data(),
                              velocity.data(), count);
    }

    void rmsprop_update(Context& ctx, const RmspropOptions& options, double lr, View<T> params, View<const T> grads,
                        View<T> mean_square) override {
        Resources& r = begin(ctx,
                             Fingerprint("rmsprop_update").add(options.rho).add(options.epsilon).add(params).add(grads)
                                 .add(mean_square),
                             "rmsprop_update");
        const auto rate = r.scalar<double>(lr);
        const std::int64_t count = params.numel();
        if (!r.launching()) return;
        kernels::rmsprop(r.stream(), rate, T(options.rho), T(1.0 - options.rho), T(options.epsilon), params.data(), grads.data(),
                         mean_square.data(), count);
    }

    void adam_update(Context& ctx, const AdamOptions& options, double step_size, View<T> params, View<const T> grads,
                     View<T> m, View<T> v) override {
        Resources& r = begin(ctx,
                             Fingerprint("adam_update").add(options.beta1).add(options.beta2).add(options.epsilon).add(params)
                                 .add(grads).add(m).add(v),
                             "adam_update");
        const auto rate = r.scalar<double>(step_size);
        if (!r.launching()) return;
        kernels::adam(r.stream(), rate, T(options.beta1), T(options.beta2), T(options.epsilon), params.data(), grads.data(),
                      m.data(), v.data(), params.numel());
    }

    // ------------------------------------------------------------ utilities
    void fill(Context& ctx, T value, View<T> x) override {
        Resources& r = begin(ctx, Fingerprint("fill").add(x), "fill");
        const auto v = r.scalar<double>(double(value));
        if (!r.launching()) return;
        kernels::fill(r.stream(), v, x.data(), x.numel());
    }

    void copy(Context& ctx, View<const T> src, View<T> dst) override {
        Resources& r = begin(ctx, Fingerprint("copy").add(src).add(dst), "copy");
        if (!r.launching() || src.numel() == 0 || src.data() == dst.data()) return;
        EWE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), static_cast<std::size_t>(src.numel()) * sizeof(T),
                                       cudaMemcpyDeviceToDevice, r.stream()));
    }

    void add(Context& ctx, View<const T> a, View<const T> b, View<T> out) override {
        Resources& r = begin(ctx, Fingerprint("add").add(a).add(b).add(out), "add");
        if (!r.launching()) return;
        kernels::add(r.stream(), a.data(), b.data(), out.data(), a.numel());
    }

    void sum(Context& ctx, View<const T> x, View<T> out) override {
        Resources& r = begin(ctx, Fingerprint("sum").add(x).add(out), "sum");
        if (!r.launching()) return;
        const kernels::ColumnReducePlan plan(x.numel(), 1);
        double* partials = reinterpret_cast<double*>(r.workspace(plan.bytes(1)));
        kernels::column_reduce<1>(r.stream(), plan, partials, kernels::ColumnValue<T>{x.data(), 1},
                                  kernels::StoreSum<T>{out.data()});
    }

    void gather_images(Context& ctx, View<const std::uint8_t> images, View<const std::int32_t> indices, double scale,
                       View<T> out) override {
        gather_rows(ctx, images, indices, scale, out);
    }
    void gather_images(Context& ctx, View<const T> images, View<const std::int32_t> indices, double scale,
                       View<T> out) override {
        gather_rows(ctx, images, indices, scale, out);
    }

private:
    template <class Source>
    static void gather_rows(Context& ctx, View<const Source> images, View<const std::int32_t> indices, double scale,
                            View<T> out) {
        Resources& r = begin(ctx, Fingerprint("gather_images").add(images).add(indices).add(out), "gather_images");
        const auto s = r.scalar<double>(scale);
        const std::int64_t count = images.dim(0), pixels = images.numel() / std::max<std::int64_t>(count, 1);
        if (!r.launching()) return;
        kernels::gather_images(r.stream(), images.data(), count, indices.data(), indices.numel(), pixels, s, out.data(),
                               r.error_block());
    }

    static Resources& begin(Context& ctx, const Fingerprint& fp, const char* op) {
        Resources& r = resources(ctx);
        r.begin_op(fp, op);
        if (r.launching()) r.activate();
        return r;
    }

    // db[c] = sum over rows of dpre[r, c] (db may be null).
    static void column_sums(Resources& r, const T* dpre, T* db, std::int64_t rows, std::int64_t cols) {
        if (db == nullptr || cols == 0) return;
        const kernels::ColumnReducePlan plan(rows, cols);
        double* partials = reinterpret_cast<double*>(r.workspace(plan.bytes(1)));
        kernels::column_reduce<1>(r.stream(), plan, partials, kernels::ColumnValue<T>{dpre, cols},
                                  kernels::StoreSum<T>{db});
    }

    static void zero_grads(Resources& r, View<T> dw, View<T> db) {
        if (dw.numel() > 0)
            EWE_CUDA_CHECK(cudaMemsetAsync(dw.data(), 0, static_cast<std::size_t>(dw.numel()) * sizeof(T), r.stream()));
        if (!db.empty() && db.numel() > 0)
            EWE_CUDA_CHECK(cudaMemsetAsync(db.data(), 0, static_cast<std::size_t>(db.numel()) * sizeof(T), r.stream()));
    }

    static void run_dropout(Context& ctx, const char* op, double rate, const PhiloxKey& key, View<const T> in,
                            View<T> out) {
        Resources& r = begin(ctx, Fingerprint(op).add(rate).add(key.stream).add(in).add(out), op);
        const auto seed = r.scalar<std::uint64_t>(key.seed);
        const auto offset = r.scalar<std::uint64_t>(key.offset);
        const auto first_element = r.scalar<std::uint64_t>(key.first_element);
        if (!r.launching()) return;
        kernels::dropout(r.stream(), in.data(), out.data(), in.numel(), dropout_threshold(rate), T(1.0 / (1.0 - rate)),
                         seed, key.stream, offset, first_element);
    }
};

}  // namespace ewe::cuda
