// The backend contract: every op ewe runs, as one virtual function with the same
// signature on the CPU (ewe/cpu/backend.hpp) and on CUDA (ewe/cuda/backend.cuh).
// Callers never use a backend directly: they go through the doors in ewe/ops/ops.hpp,
// which check shapes and devices once for both backends, compute the host-side
// scalars (Adam's bias correction, loss gradient coefficients, ...) and dispatch here.
//
// Conventions: tensors are row-major, images NHWC; "M x C" views treat every leading
// dimension as rows. Outputs are overwritten unless the op says it accumulates.
// An empty view (nullptr) stands for an optional output that is not wanted.
#pragma once

#include <cstdint>

#include "ewe/core/philox.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/ops/geometry.hpp"

namespace ewe {

class Context;

enum class Phase { train, eval };

// z = mean + exp(log_var / 2) * eps is the standard one; the sheep post's Keras
// code used z = mean + exp(log_var) * eps, which treats log_var as log(sigma).
enum class ReparamVariant { standard, post };

// KL(N(mean, exp(log_var)) || N(0, I)) per sample, reduced over the latent dims by
// mean (the sheep post: k_mean(..., axis = -1)) or by sum (the textbook ELBO).
enum class KlReduction { mean, sum };

struct BatchNormOptions {
    double momentum = 0.99;  // moving = momentum * moving + (1 - momentum) * batch
    double epsilon = 1e-3;
};
struct SgdOptions {
    double lr = 0.01;  // the initial learning rate (the update ops take each step's rate as an argument)
    double momentum = 0.0;
    bool nesterov = false;
};
struct RmspropOptions {
    double lr = 1e-3;  // the initial learning rate (the update ops take each step's rate as an argument)
    double rho = 0.9;
    double epsilon = 1e-7;  // added outside the square root, as Keras and PyTorch
};
struct AdamOptions {
    double lr = 1e-3;  // the initial learning rate (the update ops take each step's rate as an argument)
    double beta1 = 0.9, beta2 = 0.999;
    double epsilon = 1e-7;  // Keras' default; PyTorch uses 1e-8
};

template <class T>
class Backend {
public:
    template <class U>
    using View = TensorView<U>;
    virtual ~Backend() = default;

    // --- Dense: x (N, I), w (I, O), b (O), y (N, O); y = act(x w + b).
    virtual void dense_forward(Context&, View<const T> x, View<const T> w, View<const T> b, Activation act,
                               View<T> y) = 0;
    // dpre (N, O) is scratch that receives dL/d(x w + b); dx is optional.
    virtual void dense_backward(Context&, View<const T> x, View<const T> w, View<const T> y, View<const T> dy,
                                Activation act, View<T> dpre, View<T> dx, View<T> dw, View<T> db) = 0;

    // --- Conv2D: y = act(conv(x, w) + b) with g's geometry (x input, y output).
    virtual void conv2d_forward(Context&, const ConvGeometry& g, View<const T> x, View<const T> w,
                                View<const T> b, Activation act, View<T> y) = 0;
    virtual void conv2d_backward(Context&, const ConvGeometry& g, View<const T> x, View<const T> w,
                                 View<const T> y, View<const T> dy, Activation act, View<T> dpre, View<T> dx,
                                 View<T> dw, View<T> db) = 0;

    // --- Conv2DTranspose: the input gradient of the convolution g, so x has g's
    // output shape, y g's input shape, w g's filter shape (x channels, kh, kw, y channels).
    virtual void conv2d_transpose_forward(Context&, const ConvGeometry& g, View<const T> x, View<const T> w,
                                          View<const T> b, Activation act, View<T> y) = 0;
    virtual void conv2d_transpose_backward(Context&, const ConvGeometry& g, View<const T> x, View<const T> w,
                                           View<const T> y, View<const T> dy, Activation act, View<T> dpre,
                                           View<T> dx, View<T> dw, View<T> db) = 0;

    // --- Elementwise activation (a standalone ReLU or Sigmoid layer).
    virtual void activation_forward(Context&, Activation act, View<const T> x, View<T> y) = 0;
    virtual void activation_backward(Context&, Activation act, View<const T> y, View<const T> dy, View<T> dx) = 0;

    // --- BatchNormalization over the last dimension of x viewed as (M, C). In
    // training it normalises by the batch mean and biased variance, saves them
    // (saved_invstd = 1 / sqrt(var + eps)) and updates the moving statistics; in
    // evaluation it uses the moving statistics.
    virtual void batchnorm_forward(Context&, const BatchNormOptions& options, Phase phase, View<const T> x,
                                   View<const T> gamma, View<const T> beta, View<T> moving_mean, View<T> moving_var,
                                   View<T> saved_mean, View<T> saved_invstd, View<T> y) = 0;
    // Training-mode gradient (through the batch statistics).
    virtual void batchnorm_backward(Context&, View<const T> x, View<const T> dy, View<const T> gamma,
                                    View<const T> saved_mean, View<const T> saved_invstd, View<T> dx,
                                    View<T> dgamma, View<T> dbeta) = 0;

    // --- Inverted dropout: y = x * keep / (1 - rate), keep drawn by philox_keep.
    virtual void dropout_forward(Context&, double rate, const PhiloxKey& key, View<const T> x, View<T> y) = 0;
    virtual void dropout_backward(Context&, double rate, const PhiloxKey& key, View<const T> dy, View<T> dx) = 0;

    // --- Reparameterization, mean/log_var/z all (N, D); eps = philox_normal(key, i):
    // z = mean + exp(log_var_scale * log_var) * eps, in double. The door passes
    // log_var_scale = 0.5 for ReparamVariant::standard and 1.0 for ReparamVariant::post.
    virtual void reparameterize_forward(Context&, double log_var_scale, const PhiloxKey& key,
                                        View<const T> mean, View<const T> log_var, View<T> z) = 0;
    // Accumulates: dmean += dz, dlog_var += dz * log_var_scale * exp(log_var_scale * log_var) * eps.
    virtual void reparameterize_backward(Context&, double log_var_scale, const PhiloxKey& key,
                                         View<const T> log_var, View<const T> dz, View<T> dmean,
                                         View<T> dlog_var) = 0;

    // --- Losses, per sample. pred/target (N, P): per_sample[n] = scale * mean_p (pred - target)^2.
    virtual void mse_forward(Context&, double scale, View<const T> pred, View<const T> target,
                             View<T> per_sample) = 0;
    // dpred = T(grad_scale) * (pred - target). The door passes grad_scale = 2 * coefficient / P
    // (coefficient = scale / N for a batch mean).
    virtual void mse_backward(Context&, double grad_scale, View<const T> pred, View<const T> target,
                              View<T> dpred) = 0;
    // per_sample[n] = (sum_d -0.5 * (1 + log_var - mean^2 - exp(log_var))) / divisor, in
    // double. The door passes divisor = D for KlReduction::mean and 1 for KlReduction::sum.
    virtual void kl_forward(Context&, double divisor, View<const T> mean, View<const T> log_var,
                            View<T> per_sample) = 0;
    // Overwrites: dmean = grad_scale * mean, dlog_var = grad_scale * 0.5 * (exp(log_var) - 1), in
    // double. The door passes grad_scale = coefficient / D for KlReduction::mean, coefficient for sum.
    virtual void kl_backward(Context&, double grad_scale, View<const T> mean, View<const T> log_var,
                             View<T> dmean, View<T> dlog_var) = 0;

    // --- Optimizers over flat buffers (all parameters at once). Per-step factors arrive
    // in double; the backends round them to T once.
    virtual void sgd_update(Context&, const SgdOptions& options, double lr, View<T> params, View<const T> grads,
                            View<T> velocity) = 0;
    virtual void rmsprop_update(Context&, const RmspropOptions& options, double lr, View<T> params,
                                View<const T> grads, View<T> mean_square) = 0;
    // m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= step_size * m / (sqrt(v) + eps). The
    // door passes Keras' bias-corrected step_size = lr * sqrt(1 - b2^step) / (1 - b1^step).
    virtual void adam_update(Context&, const AdamOptions& options, double step_size, View<T> params,
                             View<const T> grads, View<T> m, View<T> v) = 0;

    // --- Utilities.
    virtual void fill(Context&, T value, View<T> x) = 0;
    virtual void copy(Context&, View<const T> src, View<T> dst) = 0;
    virtual void add(Context&, View<const T> a, View<const T> b, View<T> out) = 0;  // out may alias a or b
    virtual void sum(Context&, View<const T> x, View<T> out) = 0;  // out: one element
    // out[i, :] = images[indices[i], :] * scale (images (N_all, P) of uint8 or T to T (n, P)).
    virtual void gather_images(Context&, View<const std::uint8_t> images, View<const std::int32_t> indices,
                               double scale, View<T> out) = 0;
    virtual void gather_images(Context&, View<const T> images, View<const std::int32_t> indices, double scale,
                               View<T> out) = 0;
};

}  // namespace ewe
