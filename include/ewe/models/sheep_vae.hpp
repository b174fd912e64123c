// The sheep VAE of the "sheep in latent space" experiment (Keras/R original): a
// convolutional encoder to a Gaussian posterior over a small latent space, the
// reparameterization trick, and a decoder built once and usable on its own
// (decoder()) as well as inside the VAE, sharing its parameters. With the default
// configuration the VAE has 12,857,845 parameters (350 non-trainable) and the
// decoder 6,511,206, as in the original.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "ewe/loss/vae_loss.hpp"
#include "ewe/nn/batchnorm.hpp"
#include "ewe/nn/conv2d.hpp"
#include "ewe/nn/dense.hpp"
#include "ewe/nn/elementwise.hpp"
#include "ewe/nn/sequential.hpp"
#include "ewe/nn/summary.hpp"
#include "ewe/optim/optimizers.hpp"

namespace ewe {

struct SheepVaeConfig {
    std::int64_t image_size = 28;
    std::int64_t channels = 1;
    std::int64_t kernel = 4;
    std::vector<std::int64_t> filters{10, 20, 40, 80};  // encoder convolutions; the decoder mirrors them
    std::vector<std::int64_t> units{100, 50, 25};       // encoder dense widths; the decoder mirrors them
    std::int64_t latent = 2;
    double dropout = 0.1;
    ReparamVariant reparam = ReparamVariant::standard;

    void validate() const {
        EWE_REQUIRE(image_size > 0 && image_size % 2 == 0, "SheepVaeConfig: image_size must be a positive even "
                    "number (the decoder upsamples by 2 and downsamples by 2), found ", image_size);
        EWE_REQUIRE(channels > 0, "SheepVaeConfig: channels must be positive, found ", channels);
        EWE_REQUIRE(!filters.empty(), "SheepVaeConfig: filters must not be empty");
        EWE_REQUIRE(units.size() >= 2, "SheepVaeConfig: units needs at least two widths, found ", units.size());
        EWE_REQUIRE(latent > 0, "SheepVaeConfig: latent must be positive, found ", latent);
    }
};

template <class T>
class SheepVae {
public:
    static constexpr std::uint32_t kSamplerStream = 0;  // Philox stream of the reparameterization noise

    SheepVae(Context& ctx, SheepVaeConfig config, std::int64_t max_batch, std::uint64_t seed)
        : config_(std::move(config)), max_batch_(max_batch) {
        config_.validate();
        EWE_REQUIRE(max_batch > 0, "SheepVae: max_batch must be positive, found ", max_batch);
        random_.seed = seed;
        build_encoder();
        build_decoder();
        BuildContext<T> b{ctx, params_, random_, max_batch};
        const Shape image{config_.image_size, config_.image_size, config_.channels};
        const Shape trunk = encoder_.build(image, b);
        z_mean_.build(trunk, b);
        z_log_var_.build(trunk, b);
        const Shape out = decoder_->build(Shape{config_.latent}, b);
        EWE_REQUIRE(out == image, "SheepVae: the decoder produces ", out, " but the input is ", image);
        params_.allocate(ctx.device(), seed);
        for (Tensor<T>* t : {&trunk_out_, &trunk_grad_, &head_grad_})
            *t = Tensor<T>(trunk.with_batch(max_batch), ctx.device());
        for (Tensor<T>* t : {&mean_, &log_var_, &z_, &dmean_, &dlog_var_, &dz_})
            *t = Tensor<T>(Shape{max_batch, config_.latent}, ctx.device());
        x_hat_ = Tensor<T>(image.with_batch(max_batch), ctx.device());
        dx_hat_ = Tensor<T>(image.with_batch(max_batch), ctx.device());
    }

    const SheepVaeConfig& config() const { return config_; }
    std::int64_t max_batch() const { return max_batch_; }
    std::int64_t latent() const { return config_.latent; }
    Shape image_shape() const { return Shape{config_.image_size, config_.image_size, config_.channels}; }
    ParameterStore<T>& params() { return params_; }
    RandomState& random() { return random_; }
    Sequential<T>& encoder() { return encoder_; }
    Dense<T>& z_mean() { return z_mean_; }
    Dense<T>& z_log_var() { return z_log_var_; }
    Sequential<T>& decoder() { return *decoder_; }

    // Encoder, sampling and decoder on x (n, h, w, c). In Phase::train z is sampled;
    // in Phase::eval z is the posterior mean unless `sample` is true.
    void forward(Context& ctx, TensorView<const T> x, Phase phase, bool sample = false) {
        const std::int64_t n = x.dim(0);
        encoder_.forward(ctx, x, trunk_out_.view().leading(n), phase);
        z_mean_.forward(ctx, trunk_out_.view().leading(n), mean_.view().leading(n), phase);
        z_log_var_.forward(ctx, trunk_out_.view().leading(n), log_var_.view().leading(n), phase);
        if (phase == Phase::train || sample)
            ops::reparameterize_forward<T>(ctx, config_.reparam, random_.key(kSamplerStream), mean(n), log_var(n),
                                           z_.view().leading(n));
        else
            ops::copy<T>(ctx, mean(n), z_.view().leading(n));
        decoder_->forward(ctx, z(n), x_hat_.view().leading(n), phase);
    }

    // Parameter gradients of a loss whose gradients with respect to x_hat, mean and
    // log_var are in dx_hat(n), dmean(n) and dlog_var(n) (VaeLoss::backward fills them).
    void backward(Context& ctx, TensorView<const T> x) {
        const std::int64_t n = x.dim(0);
        decoder_->backward(ctx, z(n), reconstruction(n), dx_hat_.view().leading(n), dz_.view().leading(n));
        ops::reparameterize_backward<T>(ctx, config_.reparam, random_.key(kSamplerStream), log_var(n), dz(n),
                                        dmean_.view().leading(n), dlog_var_.view().leading(n));
        auto trunk = trunk_out_.view().leading(n);
        auto head = head_grad_.view().leading(n), grad = trunk_grad_.view().leading(n);
        z_mean_.backward(ctx, trunk, mean(n), dmean_.view().leading(n), grad);
        z_log_var_.backward(ctx, trunk, log_var(n), dlog_var_.view().leading(n), head);
        ops::add<T>(ctx, grad, head, grad);
        encoder_.backward(ctx, x, trunk, grad, TensorView<T>());
    }

    // Buffers of the last forward (first n rows) and the loss-gradient inputs.
    TensorView<const T> encoded(std::int64_t n) const { return trunk_out_.view().leading(n); }  // encoder output
    TensorView<const T> mean(std::int64_t n) const { return mean_.view().leading(n); }
    TensorView<const T> log_var(std::int64_t n) const { return log_var_.view().leading(n); }
    TensorView<const T> z(std::int64_t n) const { return z_.view().leading(n); }
    TensorView<const T> dz(std::int64_t n) const { return dz_.view().leading(n); }
    TensorView<const T> reconstruction(std::int64_t n) const { return x_hat_.view().leading(n); }
    TensorView<T> dx_hat(std::int64_t n) { return dx_hat_.view().leading(n); }
    TensorView<T> dmean(std::int64_t n) { return dmean_.view().leading(n); }
    TensorView<T> dlog_var(std::int64_t n) { return dlog_var_.view().leading(n); }

    // Keras-style summaries of the whole VAE and of the standalone decoder.
    std::string summary() const {
        std::vector<SummaryRow> rows = encoder_.summary_rows();
        for (const Dense<T>* head : {&z_mean_, &z_log_var_}) {
            auto r = head->summary_rows();
            rows.insert(rows.end(), r.begin(), r.end());
        }
        rows.push_back(SummaryRow{"sampling", "Reparameterization", Shape{config_.latent}, 0, 0});
        auto d = decoder_->summary_rows();
        rows.insert(rows.end(), d.begin(), d.end());
        return format_summary("vae", image_shape(), rows);
    }
    std::string decoder_summary() const { return format_summary("decoder", Shape{config_.latent}, decoder_->summary_rows()); }

private:
    void build_encoder() {
        for (std::int64_t f : config_.filters)
            encoder_.template add<Conv2D>(ConvOptions{f, config_.kernel, 1, Padding::same, Activation::relu});
        encoder_.template add<Flatten>();
        for (std::size_t i = 0; i < config_.units.size(); ++i) {
            encoder_.template add<Dense>(config_.units[i], Activation::relu);
            if (i + 1 < config_.units.size()) {
                encoder_.template add<Dropout>(config_.dropout);
                encoder_.template add<BatchNormalization>();
            }
        }
    }

    void build_decoder() {
        decoder_ = std::make_shared<Sequential<T>>("decoder");
        const auto& u = config_.units;
        for (std::size_t i = u.size(); i-- > 0;) {
            decoder_->template add<Dense>(u[i], Activation::relu);
            if (i + 1 == u.size()) {
                decoder_->template add<Dropout>(config_.dropout);
                decoder_->template add<BatchNormalization>();
            }
        }
        const std::int64_t s = config_.image_size, top = config_.filters.back();
        decoder_->template add<Dense>(s * s * top, Activation::relu);
        decoder_->template add<Reshape>(Shape{s, s, top});
        for (std::size_t i = config_.filters.size(); i-- > 0;) {
            const std::int64_t stride = i == 0 ? 2 : 1;
            decoder_->template add<Conv2DTranspose>(
                ConvOptions{config_.filters[i], config_.kernel, stride, Padding::same, Activation::relu});
        }
        decoder_->template add<Conv2D>(
            ConvOptions{config_.channels, config_.kernel, 2, Padding::same, Activation::sigmoid});
    }

    SheepVaeConfig config_;
    std::int64_t max_batch_;
    RandomState random_;
    ParameterStore<T> params_;
    Sequential<T> encoder_{"encoder"};
    Dense<T> z_mean_{config_.latent, Activation::none, "z_mean"};
    Dense<T> z_log_var_{config_.latent, Activation::none, "z_log_var"};
    std::shared_ptr<Sequential<T>> decoder_;
    Tensor<T> trunk_out_, trunk_grad_, head_grad_, mean_, log_var_, z_, dmean_, dlog_var_, dz_, x_hat_, dx_hat_;
};

// One training step on the batch x: forward in Phase::train (the Philox offset is
// the optimizer's step count, so a resumed run draws the same noise), loss,
// backward and one optimizer update. Loss values stay on the device until
// loss.values() is called.
template <class T>
void train_step(Context& ctx, SheepVae<T>& vae, VaeLoss<T>& loss, Optimizer<T>& optimizer,
                std::type_identity_t<TensorView<const T>> x) {
    const std::int64_t n = x.dim(0);
    vae.random().offset = static_cast<std::uint64_t>(optimizer.iterations());
    vae.forward(ctx, x, Phase::train);
    loss.forward(ctx, x, vae.reconstruction(n), vae.mean(n), vae.log_var(n));
    loss.backward(ctx, x, vae.reconstruction(n), vae.mean(n), vae.log_var(n), vae.dx_hat(n), vae.dmean(n),
                  vae.dlog_var(n));
    vae.backward(ctx, x);
    optimizer.step(ctx);
}

// The anomaly-scoring pass: each image of `images` (n, h, w, c) through the VAE in
// Phase::eval (decoded from the posterior mean), vae.max_batch() rows at a time, and its
// reconstruction's sum of squared errors into `sse` (n), all on the context's device.
template <class T>
void reconstruction_sse(Context& ctx, SheepVae<T>& vae, std::type_identity_t<TensorView<const T>> images,
                        std::type_identity_t<TensorView<T>> sse) {
    EWE_REQUIRE(images.rank() == 4, "reconstruction_sse: images must be (n, h, w, c), found ", images.shape());
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
