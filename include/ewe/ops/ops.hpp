// The doors: one function per op (ewe::ops::dense_forward, ...). Each checks once,
// for every backend, that its tensors live on the context's device and have the
// shapes the op needs, computes the op's host-side scalars once (Adam's bias-corrected
// step size, the MSE and KL gradient coefficients, the reparameterization's log_var
// scale), then calls the context's backend (ewe/ops/backend.hpp).
// Layers call these, never a backend directly.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"
#include "ewe/ops/backend.hpp"
#if defined(EWE_COMPILED_LIBRARY)
#include "ewe/compiled/cpu_backend.hpp"  // links in libewe_cpu.a's CPU backend
#endif

namespace ewe::ops {

namespace detail {

template <class T>
void on_device(const Context& ctx, const char* op, const char* name, const TensorView<T>& t) {
    EWE_REQUIRE(t.empty() || t.device() == ctx.device(), op, ": tensor '", name, "' is on ", to_string(t.device()),
                " but the context runs on ", to_string(ctx.device()));
}

template <class T>
void shaped(const char* op, const char* name, const TensorView<T>& t, const Shape& expected) {
    EWE_REQUIRE(!t.empty() || expected.numel() == 0, op, ": tensor '", name, "' is missing (expected shape ",
                expected, ")");
    EWE_REQUIRE(t.shape() == expected, op, ": tensor '", name, "' should have shape ", expected, ", found ",
                t.shape());
}

template <class T>
void sized(const char* op, const char* name, const TensorView<T>& t, std::int64_t expected) {
    EWE_REQUIRE(t.numel() == expected, op, ": tensor '", name, "' should have ", expected, " elements, found ",
                t.numel(), " (shape ", t.shape(), ")");
}

template <class T>
void optional_shaped(const char* op, const char* name, const TensorView<T>& t, const Shape& expected) {
    if (!t.empty()) shaped(op, name, t, expected);
}

// Rows of an (M, C) view of t whose last dimension must be `columns`.
template <class T>
std::int64_t rows_of(const char* op, const char* name, const TensorView<T>& t, std::int64_t columns) {
    EWE_REQUIRE(t.rank() >= 1 && t.dim(t.rank() - 1) == columns, op, ": tensor '", name,
                "' should have last dimension ", columns, ", found shape ", t.shape());
    return t.numel() / std::max<std::int64_t>(columns, 1);
}

template <class... Views>
void all_on_device(const Context& ctx, const char* op, const Views&... views) {
    (on_device(ctx, op, views.first, views.second), ...);
}

}  // namespace detail

#define EWE_ON_DEVICE(ctx, op, ...) ::ewe::ops::detail::all_on_device(ctx, op, __VA_ARGS__)
#define EWE_ARG(x) std::pair<const char*, decltype(x)>(#x, x)

// ---------------------------------------------------------------- dense
template <class T>
void dense_forward(Context& ctx, TensorView<const T> x, TensorView<const T> w, TensorView<const T> b,
                   Activation act, TensorView<T> y) {
    constexpr const char* op = "ops::dense_forward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(x), EWE_ARG(w), EWE_ARG(b), EWE_ARG(y));
    EWE_REQUIRE(x.rank() == 2 && w.rank() == 2, op, ": x and w must be matrices, found ", x.shape(), " and ",
                w.shape());
    detail::shaped(op, "w", w, Shape{x.dim(1), w.dim(1)});
    detail::optional_shaped(op, "b", b, Shape{w.dim(1)});
    detail::shaped(op, "y", y, Shape{x.dim(0), w.dim(1)});
    ctx.backend<T>().dense_forward(ctx, x, w, b, act, y);
}

template <class T>
void dense_backward(Context& ctx, TensorView<const T> x, TensorView<const T> w, TensorView<const T> y,
                    TensorView<const T> dy, Activation act, TensorView<T> dpre, TensorView<T> dx, TensorView<T> dw,
                    TensorView<T> db) {
    constexpr const char* op = "ops::dense_backward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(x), EWE_ARG(w), EWE_ARG(y), EWE_ARG(dy), EWE_ARG(dpre), EWE_ARG(dx),
                  EWE_ARG(dw), EWE_ARG(db));
    EWE_REQUIRE(x.rank() == 2 && w.rank() == 2, op, ": x and w must be matrices, found ", x.shape(), " and ",
                w.shape());
    const Shape out{x.dim(0), w.dim(1)};
    detail::shaped(op, "y", y, out);
    detail::shaped(op, "dy", dy, out);
    detail::shaped(op, "dpre", dpre, out);
    detail::optional_shaped(op, "dx", dx, x.shape());
    detail::shaped(op, "dw", dw, w.shape());
    detail::optional_shaped(op, "db", db, Shape{w.dim(1)});
    ctx.backend<T>().dense_backward(ctx, x, w, y, dy, act, dpre, dx, dw, db);
}

// ---------------------------------------------------------------- convolutions
namespace detail {
template <class T>
void conv_shapes(const char* op, const ConvGeometry& g, const TensorView<T>& in, const TensorView<T>& w,
                 const TensorView<T>& b, const TensorView<T>& out, std::int64_t bias_channels) {
    shaped(op, "x", in, g.input_shape());
    shaped(op, "w", w, g.filter_shape());
    optional_shaped(op, "b", b, Shape{bias_channels});
    shaped(op, "y", out, g.output_shape());
}
}  // namespace detail

template <class T>
void conv2d_forward(Context& ctx, const ConvGeometry& g, TensorView<const T> x, TensorView<const T> w,
                    TensorView<const T> b, Activation act, TensorView<T> y) {
    constexpr const char* op = "ops::conv2d_forward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(x), EWE_ARG(w), EWE_ARG(b), EWE_ARG(y));
    detail::conv_shapes<const T>(op, g, x, w, b, y, g.out_c);
    ctx.backend<T>().conv2d_forward(ctx, g, x, w, b, act, y);
}

template <class T>
void conv2d_backward(Context& ctx, const ConvGeometry& g, TensorView<const T> x, TensorView<const T> w,
                     TensorView<const T> y, TensorView<const T> dy, Activation act, TensorView<T> dpre,
                     TensorView<T> dx, TensorView<T> dw, TensorView<T> db) {
    constexpr const char* op = "ops::conv2d_backward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(x), EWE_ARG(w), EWE_ARG(y), EWE_ARG(dy), EWE_ARG(dpre), EWE_ARG(dx),
                  EWE_ARG(dw), EWE_ARG(db));
    detail::conv_shapes<const T>(op, g, x, w, TensorView<const T>(), y, g.out_c);
    detail::shaped(op, "dy", dy, g.output_shape());
    detail::shaped(op, "dpre", dpre, g.output_shape());
    detail::optional_shaped(op, "dx", dx, g.input_shape());
    detail::shaped(op, "dw", dw, g.filter_shape());
    detail::optional_shaped(op, "db", db, Shape{g.out_c});
    ctx.backend<T>().conv2d_backward(ctx, g, x, w, y, dy, act, dpre, dx, dw, db);
}

template <class T>
void conv2d_transpose_forward(Context& ctx, const ConvGeometry& g, TensorView<const T> x, TensorView<const T> w,
                              TensorView<const T> b, Activation act, TensorView<T> y) {
    constexpr const char* op = "ops::conv2d_transpose_forward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(x), EWE_ARG(w), EWE_ARG(b), EWE_ARG(y));
    detail::shaped(op, "x", x, g.output_shape());
    detail::shaped(op, "w", w, g.filter_shape());
    detail::optional_shaped(op, "b", b, Shape{g.in_c});
    detail::shaped(op, "y", y, g.input_shape());
    ctx.backend<T>().conv2d_transpose_forward(ctx, g, x, w, b, act, y);
}

template <class T>
void conv2d_transpose_backward(Context& ctx, const ConvGeometry& g, TensorView<const T> x, TensorView<const T> w,
                               TensorView<const T> y, TensorView<const T> dy, Activation act, TensorView<T> dpre,
                               TensorView<T> dx, TensorView<T> dw, TensorView<T> db) {
    constexpr const char* op = "ops::conv2d_transpose_backward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(x), EWE_ARG(w), EWE_ARG(y), EWE_ARG(dy), EWE_ARG(dpre), EWE_ARG(dx),
                  EWE_ARG(dw), EWE_ARG(db));
    detail::shaped(op, "x", x, g.output_shape());
    detail::shaped(op, "w", w, g.filter_shape());
    detail::shaped(op, "y", y, g.input_shape());
    detail::shaped(op, "dy", dy, g.input_shape());
    detail::shaped(op, "dpre", dpre, g.input_shape());
    detail::optional_shaped(op, "dx", dx, g.output_shape());
    detail::shaped(op, "dw", dw, g.filter_shape());
    detail::optional_shaped(op, "db", db, Shape{g.in_c});
    ctx.backend<T>().conv2d_transpose_backward(ctx, g, x, w, y, dy, act, dpre, dx, dw, db);
}

// ---------------------------------------------------------------- activations
template <class T>
void activation_forward(Context& ctx, Activation act, TensorView<const T> x, TensorView<T> y) {
    constexpr const char* op = "ops::activation_forward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(x), EWE_ARG(y));
    detail::shaped(op, "y", y, x.shape());
    ctx.backend<T>().activation_forward(ctx, act, x, y);
}

template <class T>
void activation_backward(Context& ctx, Activation act, TensorView<const T> y, TensorView<const T> dy,
                         TensorView<T> dx) {
    constexpr const char* op = "ops::activation_backward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(y), EWE_ARG(dy), EWE_ARG(dx));
    detail::shaped(op, "dy", dy, y.shape());
    detail::shaped(op, "dx", dx, y.shape());
    ctx.backend<T>().activation_backward(ctx, act, y, dy, dx);
}

// ---------------------------------------------------------------- batch normalization
template <class T>
void batchnorm_forward(Context& ctx, const BatchNormOptions& options, Phase phase, TensorView<const T> x,
                       TensorView<const T> gamma, TensorView<const T> beta, TensorView<T> moving_mean,
                       TensorView<T> moving_var, TensorView<T> saved_mean, TensorView<T> saved_invstd,
                       TensorView<T> y) {
    constexpr const char* op = "ops::batchnorm_forward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(x), EWE_ARG(gamma), EWE_ARG(beta), EWE_ARG(moving_mean), EWE_ARG(moving_var),
                  EWE_ARG(saved_mean), EWE_ARG(saved_invstd), EWE_ARG(y));
    const std::int64_t c = gamma.numel();
    detail::rows_of(op, "x", x, c);
    detail::sized(op, "beta", beta, c);
    detail::sized(op, "moving_mean", moving_mean, c);
    detail::sized(op, "moving_var", moving_var, c);
    if (phase == Phase::train) {
        EWE_REQUIRE(x.numel() > 0, op, ": training needs at least one sample");
        detail::sized(op, "saved_mean", saved_mean, c);
        detail::sized(op, "saved_invstd", saved_invstd, c);
    }
    detail::shaped(op, "y", y, x.shape());
    ctx.backend<T>().batchnorm_forward(ctx, options, phase, x, gamma, beta, moving_mean, moving_var, saved_mean,
                                       saved_invstd, y);
}

template <class T>
void batchnorm_backward(Context& ctx, TensorView<const T> x, TensorView<const T> dy, TensorView<const T> gamma,
                        TensorView<const T> saved_mean, TensorView<const T> saved_invstd, TensorView<T> dx,
                        TensorView<T> dgamma, TensorView<T> dbeta) {
    constexpr const char* op = "ops::batchnorm_backward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(x), EWE_ARG(dy), EWE_ARG(gamma), EWE_ARG(saved_mean), EWE_ARG(saved_invstd),
                  EWE_ARG(dx), EWE_ARG(dgamma), EWE_ARG(dbeta));
    const std::int64_t c = gamma.numel();
    detail::rows_of(op, "x", x, c);
    detail::shaped(op, "dy", dy, x.shape());
    detail::shaped(op, "dx", dx, x.shape());
    for (auto* v : {&saved_mean, &saved_invstd}) detail::sized(op, "saved statistics", *v, c);
    detail::sized(op, "dgamma", dgamma, c);
    detail::sized(op, "dbeta", dbeta, c);
    ctx.backend<T>().batchnorm_backward(ctx, x, dy, gamma, saved_mean, saved_invstd, dx, dgamma, dbeta);
}

// ---------------------------------------------------------------- dropout
template <class T>
void dropout_forward(Context& ctx, double rate, const PhiloxKey& key, TensorView<const T> x, TensorView<T> y) {
    constexpr const char* op = "ops::dropout_forward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(x), EWE_ARG(y));
    EWE_REQUIRE(rate >= 0.0 && rate < 1.0, op, ": rate must be in [0, 1), found ", format_number(rate));
    detail::shaped(op, "y", y, x.shape());
    ctx.backend<T>().dropout_forward(ctx, rate, key, x, y);
}

template <class T>
void dropout_backward(Context& ctx, double rate, const PhiloxKey& key, TensorView<const T> dy, TensorView<T> dx) {
    constexpr const char* op = "ops::dropout_backward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(dy), EWE_ARG(dx));
    EWE_REQUIRE(rate >= 0.0 && rate < 1.0, op, ": rate must be in [0, 1), found ", format_number(rate));
    detail::shaped(op, "dx", dx, dy.shape());
    ctx.backend<T>().dropout_backward(ctx, rate, key, dy, dx);
}

// ---------------------------------------------------------------- reparameterization
namespace detail {
// z = mean + exp(scale * log_var) * eps: 0.5 makes exp(scale * log_var) the standard
// deviation; the sheep post's Keras code used 1.0 (log_var treated as log(sigma)).
inline double log_var_scale(ReparamVariant variant) { return variant == ReparamVariant::standard ? 0.5 : 1.0; }
}  // namespace detail

template <class T>
void reparameterize_forward(Context& ctx, ReparamVariant variant, const PhiloxKey& key, TensorView<const T> mean,
                            TensorView<const T> log_var, TensorView<T> z) {
    constexpr const char* op = "ops::reparameterize_forward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(mean), EWE_ARG(log_var), EWE_ARG(z));
    detail::shaped(op, "log_var", log_var, mean.shape());
    detail::shaped(op, "z", z, mean.shape());
    ctx.backend<T>().reparameterize_forward(ctx, detail::log_var_scale(variant), key, mean, log_var, z);
}

template <class T>
void reparameterize_backward(Context& ctx, ReparamVariant variant, const PhiloxKey& key,
                             TensorView<const T> log_var, TensorView<const T> dz, TensorView<T> dmean,
                             TensorView<T> dlog_var) {
    constexpr const char* op = "ops::reparameterize_backward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(log_var), EWE_ARG(dz), EWE_ARG(dmean), EWE_ARG(dlog_var));
    detail::shaped(op, "dz", dz, log_var.shape());
    detail::shaped(op, "dmean", dmean, log_var.shape());
    detail::shaped(op, "dlog_var", dlog_var, log_var.shape());
    ctx.backend<T>().reparameterize_backward(ctx, detail::log_var_scale(variant), key, log_var, dz, dmean, dlog_var);
}

// ---------------------------------------------------------------- losses
template <class T>
void mse_forward(Context& ctx, double scale, TensorView<const T> pred, TensorView<const T> target,
                 TensorView<T> per_sample) {
    constexpr const char* op = "ops::mse_forward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(pred), EWE_ARG(target), EWE_ARG(per_sample));
    EWE_REQUIRE(pred.rank() >= 1, op, ": pred needs a batch dimension");
    detail::sized(op, "target", target, pred.numel());
    detail::sized(op, "per_sample", per_sample, pred.dim(0));
    ctx.backend<T>().mse_forward(ctx, scale, pred, target, per_sample);
}

template <class T>
void mse_backward(Context& ctx, double coefficient, TensorView<const T> pred, TensorView<const T> target,
                  TensorView<T> dpred) {
    constexpr const char* op = "ops::mse_backward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(pred), EWE_ARG(target), EWE_ARG(dpred));
    EWE_REQUIRE(pred.rank() >= 1, op, ": pred needs a batch dimension");
    detail::sized(op, "target", target, pred.numel());
    detail::shaped(op, "dpred", dpred, pred.shape());
    const std::int64_t values_per_sample = pred.numel() / std::max<std::int64_t>(pred.dim(0), 1);
    ctx.backend<T>().mse_backward(ctx, 2.0 * coefficient / double(values_per_sample), pred, target, dpred);
}

template <class T>
void kl_forward(Context& ctx, KlReduction reduction, TensorView<const T> mean, TensorView<const T> log_var,
                TensorView<T> per_sample) {
    constexpr const char* op = "ops::kl_forward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(mean), EWE_ARG(log_var), EWE_ARG(per_sample));
    EWE_REQUIRE(mean.rank() == 2, op, ": mean must be (batch, latent), found ", mean.shape());
    detail::shaped(op, "log_var", log_var, mean.shape());
    detail::sized(op, "per_sample", per_sample, mean.dim(0));
    ctx.backend<T>().kl_forward(ctx, reduction == KlReduction::mean ? double(mean.dim(1)) : 1.0, mean, log_var,
                                per_sample);
}

template <class T>
void kl_backward(Context& ctx, KlReduction reduction, double coefficient, TensorView<const T> mean,
                 TensorView<const T> log_var, TensorView<T> dmean, TensorView<T> dlog_var) {
    constexpr const char* op = "ops::kl_backward";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(mean), EWE_ARG(log_var), EWE_ARG(dmean), EWE_ARG(dlog_var));
    EWE_REQUIRE(mean.rank() == 2, op, ": mean must be (batch, latent), found ", mean.shape());
    detail::shaped(op, "log_var", log_var, mean.shape());
    detail::shaped(op, "dmean", dmean, mean.shape());
    detail::shaped(op, "dlog_var", dlog_var, mean.shape());
    const double grad_scale = reduction == KlReduction::mean ? coefficient / double(mean.dim(1)) : coefficient;
    ctx.backend<T>().kl_backward(ctx, grad_scale, mean, log_var, dmean, dlog_var);
}

// ---------------------------------------------------------------- optimizers
template <class T>
void sgd_update(Context& ctx, const SgdOptions& options, double lr, TensorView<T> params, TensorView<const T> grads,
                TensorView<T> velocity) {
    constexpr const char* op = "ops::sgd_update";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(params), EWE_ARG(grads), EWE_ARG(velocity));
    detail::sized(op, "grads", grads, params.numel());
    if (options.momentum != 0.0) detail::sized(op, "velocity", velocity, params.numel());
    ctx.backend<T>().sgd_update(ctx, options, lr, params, grads, velocity);
}

template <class T>
void rmsprop_update(Context& ctx, const RmspropOptions& options, double lr, TensorView<T> params,
                    TensorView<const T> grads, TensorView<T> mean_square) {
    constexpr const char* op = "ops::rmsprop_update";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(params), EWE_ARG(grads), EWE_ARG(mean_square));
    detail::sized(op, "grads", grads, params.numel());
    detail::sized(op, "mean_square", mean_square, params.numel());
    ctx.backend<T>().rmsprop_update(ctx, options, lr, params, grads, mean_square);
}

template <class T>
void adam_update(Context& ctx, const AdamOptions& options, double lr, std::int64_t step, TensorView<T> params,
                 TensorView<const T> grads, TensorView<T> m, TensorView<T> v) {
    constexpr const char* op = "ops::adam_update";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(params), EWE_ARG(grads), EWE_ARG(m), EWE_ARG(v));
    EWE_REQUIRE(step >= 1, op, ": step counts from 1, found ", step);
    detail::sized(op, "grads", grads, params.numel());
    detail::sized(op, "m", m, params.numel());
    detail::sized(op, "v", v, params.numel());
    // Keras' form: the bias corrections fold into the step size; eps is added to sqrt(v).
    const double correction1 = 1.0 - std::pow(options.beta1, double(step));
    const double correction2 = 1.0 - std::pow(options.beta2, double(step));
    ctx.backend<T>().adam_update(ctx, options, lr * std::sqrt(correction2) / correction1, params, grads, m, v);
}

// ---------------------------------------------------------------- utilities
template <class T>
void fill(Context& ctx, T value, TensorView<T> x) {
    EWE_ON_DEVICE(ctx, "ops::fill", EWE_ARG(x));
    ctx.backend<T>().fill(ctx, value, x);
}

template <class T>
void copy(Context& ctx, TensorView<const T> src, TensorView<T> dst) {
    EWE_ON_DEVICE(ctx, "ops::copy", EWE_ARG(src), EWE_ARG(dst));
    detail::sized("ops::copy", "dst", dst, src.numel());
    ctx.backend<T>().copy(ctx, src, dst);
}

template <class T>
void add(Context& ctx, TensorView<const T> a, TensorView<const T> b, TensorView<T> out) {
    EWE_ON_DEVICE(ctx, "ops::add", EWE_ARG(a), EWE_ARG(b), EWE_ARG(out));
    detail::shaped("ops::add", "b", b, a.shape());
    detail::shaped("ops::add", "out", out, a.shape());
    ctx.backend<T>().add(ctx, a, b, out);
}

template <class T>
void sum(Context& ctx, TensorView<const T> x, TensorView<T> out) {
    EWE_ON_DEVICE(ctx, "ops::sum", EWE_ARG(x), EWE_ARG(out));
    detail::sized("ops::sum", "out", out, 1);
    ctx.backend<T>().sum(ctx, x, out);
}

namespace detail {
template <class Source, class T>
void check_gather(Context& ctx, TensorView<const Source> images, TensorView<const std::int32_t> indices,
                  TensorView<T> out) {
    constexpr const char* op = "ops::gather_images";
    EWE_ON_DEVICE(ctx, op, EWE_ARG(images), EWE_ARG(indices), EWE_ARG(out));
    EWE_REQUIRE(images.rank() >= 2, op, ": images must be (count, pixels...), found ", images.shape());
    const std::int64_t pixels = images.numel() / std::max<std::int64_t>(images.dim(0), 1);
    sized(op, "out", out, indices.numel() * pixels);
}
}  // namespace detail

// out[i, :] = images[indices[i], :] * scale: a batch gathered in one call, from uint8
// images (scale 1/255 gives [0, 1]) or from images of T (scale 1 copies them bit for bit,
// as Trainer::fit assembles its batches).
template <class T>
void gather_images(Context& ctx, TensorView<const std::uint8_t> images, TensorView<const std::int32_t> indices,
                   double scale, TensorView<T> out) {
    detail::check_gather(ctx, images, indices, out);
    ctx.backend<T>().gather_images(ctx, images, indices, scale, out);
}
template <class T>
void gather_images(Context& ctx, TensorView<const T> images, TensorView<const std::int32_t> indices, double scale,
                   TensorView<T> out) {
    detail::check_gather(ctx, images, indices, out);
    ctx.backend<T>().gather_images(ctx, images, indices, scale, out);
}

#undef EWE_ARG
#undef EWE_ON_DEVICE

}  // namespace ewe::ops
