// Test support: random tensors and central-difference gradient checks in double
// precision. A layer is checked through the scalar L = sum(r * forward(x)) for a
// fixed random r, so dL/dy = r is fed to backward and every input and parameter
// derivative is compared with (L(v + h) - L(v - h)) / 2h; a whole VAE is checked
// through its VaeLoss the same way (check_vae_gradients).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <ewe/ewe.hpp>

namespace ewe::testing {

// The bound of every gradient check: |analytic - numeric| <= kRelTolerance *
// (|analytic| + |numeric|) + kAbsTolerance * max(1, |L|). Central differences with
// h = 1e-6 in double have truncation error ~h^2 and rounding error ~1e-16 |L| / h,
// both far below these bounds (PyTorch's gradcheck uses rtol 1e-3, atol 1e-5).
constexpr double kRelTolerance = 1e-6;
constexpr double kAbsTolerance = 1e-9;
constexpr double kStep = 1e-6;

inline std::mt19937_64& rng() {
    static std::mt19937_64 engine(20261121);
    return engine;
}

template <class T = double>
Tensor<T> random_tensor(const Shape& shape, double lo = -1.0, double hi = 1.0) {
    Tensor<T> t(shape);
    std::uniform_real_distribution<double> dist(lo, hi);
    for (std::int64_t i = 0; i < t.numel(); ++i) t[i] = T(dist(rng()));
    return t;
}

// Compares analytic[i] with the central difference of `loss` in values[i], for every
// i (or `max_checks` evenly spread indices when the tensor is larger). Returns a
// description of the first mismatch, or an empty string when all agree.
// Coordinates where the two one-sided differences disagree by more than 1% (plus
// their truncation error h |f''|, bounded by 1e-4 max(1, |L|)) sit on a kink of a
// ReLU, where no derivative exists; they are skipped, counted in *kinks, and a check
// may skip at most one in twenty.
inline std::string gradient_mismatch(TensorView<double> values, TensorView<const double> analytic,
                                     const std::function<double()>& loss, std::int64_t max_checks = 400,
                                     std::int64_t* kinks = nullptr) {
    const std::int64_t n = values.numel();
    const std::int64_t stride = std::max<std::int64_t>(1, n / max_checks);
    const double center = loss();
    const double noise = kAbsTolerance * std::max(1.0, std::abs(center));
    std::int64_t skipped = 0, checked = 0;
    for (std::int64_t i = 0; i < n; i += stride, ++checked) {
        const double saved = values[i];
        values[i] = saved + kStep;
        const double plus = loss();
        values[i] = saved - kStep;
        const double minus = loss();
        values[i] = saved;
        const double ahead = (plus - center) / kStep, behind = (center - minus) / kStep;
        if (std::abs(ahead - behind) > 0.01 * (std::abs(ahead) + std::abs(behind)) + 1e-4 * std::max(1.0, std::abs(center))) {
            ++skipped;
            continue;
        }
        const double numeric = (plus - minus) / (2 * kStep);
        if (std::abs(analytic[i] - numeric) > kRelTolerance * (std::abs(analytic[i]) + std::abs(numeric)) + noise)
            return "[" + std::to_string(i) + "]: analytic " + std::to_string(analytic[i]) + " vs numeric " +
                   std::to_string(numeric);
    }
    if (kinks) *kinks = skipped;
    if (skipped * 20 > checked)
        return ": " + std::to_string(skipped) + " of " + std::to_string(checked) + " coordinates sit on kinks";
    return {};
}

inline void check_gradient(const std::string& what, TensorView<double> values, TensorView<const double> analytic,
                           const std::function<double()>& loss, std::int64_t max_checks = 400) {
    const std::string mismatch = gradient_mismatch(values, analytic, loss, max_checks);
    CHECK_MESSAGE(mismatch.empty(), what << mismatch);
}

inline double dot(TensorView<const double> a, TensorView<const double> b) {
    double s = 0;
    for (std::int64_t i = 0; i < a.numel(); ++i) s += a[i] * b[i];
    return s;
}

// Builds `layer` for `features` and gradient-checks its input and every trainable
// parameter at batch `batch` in Phase::train.
// The context uses tiny im2col blocks, so convolutions run through many blocks.
inline void check_layer(Layer<double>& layer, const Shape& features, std::int64_t batch = 3, std::uint64_t seed = 7) {
    ContextOptions options;
    options.cpu_im2col_elements = 100;
    Context ctx(Device::cpu, options);
    ParameterStore<double> store;
    RandomState random{seed, 5};
    BuildContext<double> b{ctx, store, random, batch};
    const Shape out = layer.build(features, b);
    store.allocate(Device::cpu, seed);
    // Perturb every parameter away from its initial value (zero biases, unit gammas)
    // so that the check does not sit on special points.
    for (std::int64_t i = 0; i < store.trainable_count(); ++i) store.values()[i] += 0.1 * std::sin(1.7 * double(i) + 0.3);

    Tensor<double> x = random_tensor(features.with_batch(batch));
    Tensor<double> y(out.with_batch(batch)), r = random_tensor(out.with_batch(batch));
    auto loss = [&] {
        layer.forward(ctx, x.view(), y.view(), Phase::train);
        return dot(y.view(), r.view());
    };
    loss();
    Tensor<double> dx(x.shape());
    layer.backward(ctx, x.view(), y.view(), r.view(), dx.view());
    // Copy the analytic parameter gradients before the checks run forward again.
    Tensor<double> grads = Tensor<double>(store.grads().shape());
    copy<double>(store.grads(), grads.view());

    check_gradient(std::string(layer.kind()) + " dx", x.view(), dx.view(), loss);
    for (const ParameterInfo& p : store.info()) {
        if (!p.trainable) continue;
        check_gradient(p.name, store.values().slice(p.offset, p.shape), grads.view().slice(p.offset, p.shape), loss);
    }
}

// The whole VAE and its loss on a random batch of `batch` images: every trainable
// parameter tensor against finite differences, with the random draws of step `offset`.
// Parameters are first moved off their initial values (zero biases put ReLUs whose
// inputs are all zero exactly on their kink, where no derivative exists). Returns the
// names of the tensors checked, in order.
inline std::vector<std::string> check_vae_gradients(Context& ctx, Vae<double>& vae, VaeLoss<double>& loss,
                                                    std::int64_t batch, std::uint64_t offset) {
    vae.random().offset = offset;
    for (std::int64_t i = 0; i < vae.params().trainable_count(); ++i)
        vae.params().values()[i] += 0.05 * std::sin(1.3 * double(i) + 0.2);
    Tensor<double> x = random_tensor(vae.image_shape().with_batch(batch), 0, 1);
    auto total = [&] {
        vae.forward(ctx, x.view(), Phase::train);
        loss.forward(ctx, x.view(), vae.reconstruction(batch), vae.mean(batch), vae.log_var(batch));
        return ewe::batch_means(loss).total;
    };
    total();
    loss.backward(ctx, x.view(), vae.reconstruction(batch), vae.mean(batch), vae.log_var(batch), vae.dx_hat(batch),
                  vae.dmean(batch), vae.dlog_var(batch));
    vae.backward(ctx, x.view());
    Tensor<double> grads(vae.params().grads().shape());
    copy<double>(vae.params().grads(), grads.view());
    std::vector<std::string> checked;
    for (const ParameterInfo& p : vae.params().info()) {
        if (!p.trainable) continue;
        check_gradient(p.name, vae.params().values().slice(p.offset, p.shape), grads.view().slice(p.offset, p.shape),
                       total, 60);
        checked.push_back(p.name);
    }
    return checked;
}

}  // namespace ewe::testing
