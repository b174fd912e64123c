// Vae: a variational autoencoder (Kingma & Welling, 2014) from the user's own encoder
// and decoder: encoder -> Dense heads z_mean and z_log_var -> Reparameterization ->
// decoder; plus train_step and the anomaly-scoring pass reconstruction_sse over any Vae.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "ewe/loss/vae_loss.hpp"
#include "ewe/nn/dense.hpp"
#include "ewe/nn/flops.hpp"
#include "ewe/nn/reparameterization.hpp"
#include "ewe/nn/sequential.hpp"
#include "ewe/nn/summary.hpp"
#include "ewe/optim/optimizers.hpp"

namespace ewe {

template <class T>
struct VaeOptions {
    Shape input;                              // one sample's features, e.g. (h, w, c); no batch
    std::shared_ptr<Sequential<T>> encoder;   // input -> a flat feature vector (f,)
    std::int64_t latent = 0;                  // units of the z_mean and z_log_var heads
    std::shared_ptr<Sequential<T>> decoder;   // (latent,) -> input
    ReparamVariant reparam = ReparamVariant::standard;
    std::string name = "vae";                 // the summary's model name
};

// The model builds the encoder, the heads, the sampling layer and the decoder in that
// order into one ParameterStore (parameter names and their order follow), then
// allocates it from `seed`. The decoder stays usable on its own (decoder()), sharing
// the VAE's parameters. Activations and gradients are planned for max_batch rows.
template <class T>
class Vae {
public:
    Vae(Context& ctx, VaeOptions<T> options, std::int64_t max_batch, std::uint64_t seed)
        : name_(std::move(options.name)),
          input_(options.input),
          latent_(options.latent),
          max_batch_(max_batch),
          encoder_(std::move(options.encoder)),
          z_mean_(latent_, Activation::none, "z_mean"),
          z_log_var_(latent_, Activation::none, "z_log_var"),
          sampling_(options.reparam),
          decoder_(std::move(options.decoder)) {
        EWE_REQUIRE(max_batch > 0, "Vae '", name_, "': max_batch must be positive, found ", max_batch);
        EWE_REQUIRE(input_.rank() >= 1 && input_.numel() > 0, "Vae '", name_,
                    "': input must be one sample's non-empty features, e.g. (h, w, c), found ", input_);
        EWE_REQUIRE(encoder_ != nullptr, "Vae '", name_, "': the encoder is null");
        EWE_REQUIRE(decoder_ != nullptr, "Vae '", name_, "': the decoder is null");
        random_.seed = seed;
        BuildContext<T> b{ctx, params_, random_, max_batch};
        if (ctx.device() == Device::cpu) b.memory_limit = available_host_memory();
        const Shape features = encoder_->build(input_, b);
        EWE_REQUIRE(features.rank() == 1, "Vae '", name_, "': the encoder must end in a flat feature vector (add a "
                    "Flatten layer), it maps ", input_, " to ", features);
        z_mean_.build(features, b);
        z_log_var_.build(features, b);
        sampling_.build(latent_, b);
        const Shape out = decoder_->build(Shape{latent_}, b);
        EWE_REQUIRE(out == input_, "Vae '", name_, "': the decoder must map (", latent_, ",) back to the input ",
                    input_, ", it produces ", out);
        // The VAE's own buffers below: encoder output and its two gradients, the latent
        // heads, z and their gradients, the reconstruction and its gradient.
        b.add_planned(Shape{3 * features.numel() + 6 * latent_ + 2 * input_.numel()}.with_batch(max_batch).numel());
        memory_.parameters = b.saturating_bytes(params_.total_count());
        memory_.gradients = b.saturating_bytes(params_.trainable_count());
        memory_.activations = b.planned_bytes;
        if (!b.within_memory_limit())
            throw OutOfMemory(detail::concat("Vae '", name_, "': max_batch ", max_batch, " needs ", memory_.describe(),
                                             ", but ", format_bytes(b.memory_limit),
                                             " are available (lower max_batch, or make the model smaller)"),
                              memory_, b.memory_limit);
        params_.allocate(ctx.device(), seed);
        for (Tensor<T>* t : {&encoded_, &features_grad_, &head_grad_})
            *t = Tensor<T>(features.with_batch(max_batch), ctx.device());
        for (Tensor<T>* t : {&mean_, &log_var_, &z_, &dmean_, &dlog_var_, &dz_})
            *t = Tensor<T>(Shape{max_batch, latent_}, ctx.device());
        x_hat_ = Tensor<T>(input_.with_batch(max_batch), ctx.device());
        dx_hat_ = Tensor<T>(input_.with_batch(max_batch), ctx.device());
    }
    virtual ~Vae() = default;

    std::int64_t max_batch() const { return max_batch_; }
    // The bytes the model allocated for its parameters, gradients and activations.
    const MemoryEstimate& memory() const { return memory_; }
    Shape image_shape() const { return input_; }
    std::int64_t latent() const { return latent_; }
    ParameterStore<T>& params() { return params_; }
    RandomState& random() { return random_; }
    Sequential<T>& encoder() { return *encoder_; }
    Dense<T>& z_mean() { return z_mean_; }
    Dense<T>& z_log_var() { return z_log_var_; }
    Reparameterization<T>& sampling() { return sampling_; }
    Sequential<T>& decoder() { return *decoder_; }

    // Encoder, sampling and decoder on x (n, input...). In Phase::train z is sampled;
    // in Phase::eval z is the posterior mean unless `sample` is true.
    void forward(Context& ctx, TensorView<const T> x, Phase phase, bool sample = false) {
        const std::int64_t n = x.dim(0);
        encoder_->forward(ctx, x, encoded_.view().leading(n), phase);
        z_mean_.forward(ctx, encoded(n), mean_.view().leading(n), phase);
        z_log_var_.forward(ctx, encoded(n), log_var_.view().leading(n), phase);
        sampling_.forward(ctx, mean(n), log_var(n), z_.view().leading(n), phase, sample);
        decoder_->forward(ctx, z(n), x_hat_.view().leading(n), phase);
    }

    // Parameter gradients of a loss whose gradients with respect to x_hat, mean and
    // log_var are in dx_hat(n), dmean(n) and dlog_var(n) (VaeLoss::backward fills them).
    // The reparameterization adds its share to dmean and dlog_var in place.
    void backward(Context& ctx, TensorView<const T> x) {
        const std::int64_t n = x.dim(0);
        decoder_->backward(ctx, z(n), reconstruction(n), dx_hat_.view().leading(n), dz_.view().leading(n));
        sampling_.backward(ctx, log_var(n), dz(n), dmean(n), dlog_var(n));
        auto grad = features_grad_.view().leading(n), head = head_grad_.view().leading(n);
        z_mean_.backward(ctx, encoded(n), mean(n), dmean(n), grad);
        z_log_var_.backward(ctx, encoded(n), log_var(n), dlog_var(n), head);
        ops::add<T>(ctx, grad, head, grad);
        encoder_->backward(ctx, x, encoded(n), grad, TensorView<T>());
    }

    // Buffers of the last forward (first n rows) and the loss-gradient inputs.
    TensorView<const T> encoded(std::int64_t n) const { return encoded_.view().leading(n); }  // encoder output
    TensorView<const T> mean(std::int64_t n) const { return mean_.view().leading(n); }
    TensorView<const T> log_var(std::int64_t n) const { return log_var_.view().leading(n); }
    TensorView<const T> z(std::int64_t n) const { return z_.view().leading(n); }
    TensorView<const T> dz(std::int64_t n) const { return dz_.view().leading(n); }
    TensorView<const T> reconstruction(std::int64_t n) const { return x_hat_.view().leading(n); }
    TensorView<T> dx_hat(std::int64_t n) { return dx_hat_.view().leading(n); }
    TensorView<T> dmean(std::int64_t n) { return dmean_.view().leading(n); }
    TensorView<T> dlog_var(std::int64_t n) { return dlog_var_.view().leading(n); }

    // The rows of the whole VAE's summary (encoder, latent heads, sampling, decoder),
    // for programs that lay it out themselves (e.g. as an HTML table).
    std::vector<SummaryRow> summary_rows() const {
        std::vector<SummaryRow> rows = encoder_->summary_rows();
        for (const Dense<T>* head : {&z_mean_, &z_log_var_}) {
            auto r = head->summary_rows();
            rows.insert(rows.end(), r.begin(), r.end());
        }
        rows.push_back(sampling_.summary_row());
        auto d = decoder_->summary_rows();
        rows.insert(rows.end(), d.begin(), d.end());
        return rows;
    }
    // Keras-style summaries of the whole VAE and of the standalone decoder.
    std::string summary() const { return format_summary(name_, input_, summary_rows()); }
    std::string decoder_summary() const { return format_summary(decoder_->name(), Shape{latent_}, decoder_->summary_rows()); }

private:
    std::string name_;
    Shape input_;
    std::int64_t latent_;
    std::int64_t max_batch_;
    MemoryEstimate memory_;
    RandomState random_;
    ParameterStore<T> params_;
    std::shared_ptr<Sequential<T>> encoder_;
    Dense<T> z_mean_, z_log_var_;
    Reparameterization<T> sampling_;
    std::shared_ptr<Sequential<T>> decoder_;
    Tensor<T> encoded_, features_grad_, head_grad_, mean_, log_var_, z_, dmean_, dlog_var_, dz_, x_hat_, dx_hat_;
};

// The gradients of `loss` on the batch x: forward in Phase::train with the random
// draws of optimizer step `step` (Philox offset) for samples first_sample, first_sample
// + 1, ... of the step's global batch (RandomState::first_sample; 0 in one process),
// loss, backward; the parameter gradients are overwritten. The per-sample loss terms
// stay on the device (loss.per_sample_reconstruction(), per_sample_kl()).
template <class T>
void vae_gradients(Context& ctx, Vae<T>& vae, VaeLoss<T>& loss, std::type_identity_t<TensorView<const T>> x,
                   std::uint64_t step, std::uint64_t first_sample = 0) {
    const std::int64_t n = x.dim(0);
    vae.random().offset = step;
    vae.random().first_sample = first_sample;
    vae.forward(ctx, x, Phase::train);
    loss.forward(ctx, x, vae.reconstruction(n), vae.mean(n), vae.log_var(n));
    loss.backward(ctx, x, vae.reconstruction(n), vae.mean(n), vae.log_var(n), vae.dx_hat(n), vae.dmean(n),
                  vae.dlog_var(n));
    vae.backward(ctx, x);
}

// FLOPs of one training step on `batch` images (ewe/nn/flops.hpp: three forward passes
// of the encoder, the two heads and the decoder).
template <class T>
double training_step_flops(Vae<T>& vae, std::int64_t batch) {
    return 3.0 * (forward_flops<T>(vae.encoder(), batch) + forward_flops<T>(vae.z_mean(), batch) +
                  forward_flops<T>(vae.z_log_var(), batch) + forward_flops<T>(vae.decoder(), batch));
}

// One training step on the batch x: vae_gradients at the optimizer's step count (so a
// resumed run draws the same noise), then one optimizer update.
template <class T>
void train_step(Context& ctx, Vae<T>& vae, VaeLoss<T>& loss, Optimizer<T>& optimizer,
                std::type_identity_t<TensorView<const T>> x) {
    vae_gradients(ctx, vae, loss, x, static_cast<std::uint64_t>(optimizer.iterations()));
    optimizer.step(ctx);
}

// The anomaly-scoring pass: each sample of `images` (n, input...) through the VAE in
// Phase::eval (decoded from the posterior mean), vae.max_batch() rows at a time, and its
// reconstruction's sum of squared errors into `sse` (n), all on the context's device.
template <class T>
void reconstruction_sse(Context& ctx, Vae<T>& vae, std::type_identity_t<TensorView<const T>> images,
                        std::type_identity_t<TensorView<T>> sse) {
    EWE_REQUIRE(images.rank() == vae.image_shape().rank() + 1, "reconstruction_sse: images must be (n, ",
                vae.image_shape().str().substr(1), " found ", images.shape());
    const std::int64_t n = images.dim(0), per = n == 0 ? 0 : images.numel() / n;
    EWE_REQUIRE(sse.rank() == 1 && sse.dim(0) == n, "reconstruction_sse: sse must be (", n, "), found ", sse.shape());
    for (std::int64_t i = 0; i < n; i += vae.max_batch()) {
        const std::int64_t m = std::min(vae.max_batch(), n - i);
        Shape rows_shape = images.shape();
        rows_shape[0] = m;
        const TensorView<const T> rows = images.slice(i * per, rows_shape);
        vae.forward(ctx, rows, Phase::eval);
        ops::mse_forward<T>(ctx, double(per), vae.reconstruction(m), rows, sse.slice(i, Shape{m}));
    }
}

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::Vae<float>;
#endif
