// What the training loop (ewe/train/trainer.hpp) needs of a model and its loss: its
// parameters, the batch it was built for, and one call that runs forward (Phase::train),
// the loss and backward, leaving the gradients of the batch-mean loss in the parameter
// store. The loss is a weighted sum of named per-sample terms (a VAE: "recon" and "kl"),
// which stay on the device until the trainer reads them. VaeObjective serves any VAE
// (ewe::SheepVae, a user's own); AutoencoderObjective any plain Model trained to
// reproduce its input under a scaled MSE.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/loss/vae_loss.hpp"
#include "ewe/models/model.hpp"
#include "ewe/models/vae.hpp"
#include "ewe/nn/layer.hpp"
#include "ewe/nn/sequential.hpp"

namespace ewe {

template <class T>
class TrainingObjective {
public:
    virtual ~TrainingObjective() = default;

    virtual ParameterStore<T>& params() = 0;
    // The seed and offset of the model's random draws (a resume restores the seed).
    virtual RandomState& random() = 0;
    virtual std::int64_t max_batch() const = 0;
    virtual Shape input_shape() const = 0;  // one sample, no batch dimension

    // Forward in Phase::train with the random draws of optimizer step `step` for the
    // samples first_sample, first_sample + 1, ... of the step's global batch (0 in one
    // process; a data-parallel rank's shard starts further on: RandomState::first_sample),
    // the loss, and backward: overwrites the parameter gradients of the batch-mean loss.
    virtual void compute_gradients(Context& ctx, TensorView<const T> x, std::uint64_t step,
                                   std::uint64_t first_sample) = 0;

    // The loss terms: names, per-sample values of the last compute_gradients (first n
    // rows), and the weight of each in the total.
    virtual std::vector<std::string> term_names() const = 0;
    virtual TensorView<const T> per_sample_term(std::size_t k, std::int64_t n) const = 0;
    virtual double term_weight(std::size_t k) const = 0;
    // Sets a term's weight (e.g. KL annealing); an error for a term that has none to set.
    virtual void set_term_weight(const std::string& name, double weight) = 0;

    // After a non-finite loss: where the first NaN or Inf is in the last forward (a
    // layer's output, else a parameter), for the error message.
    virtual std::string first_nonfinite(std::int64_t n) = 0;

protected:
    static bool has_nonfinite(TensorView<const T> t) {
        Tensor<T> host(t.shape());
        copy<T>(t, host.view());
        return !std::all_of(host.data(), host.data() + host.numel(), [](T v) { return std::isfinite(double(v)); });
    }
    // The first output of `model` (forward order) with a non-finite value, or "".
    static std::string scan(const Sequential<T>& model, TensorView<const T> output, std::int64_t n) {
        for (std::size_t i = 0; i + 1 < model.size(); ++i)
            if (has_nonfinite(model.activation(i, n))) return "the output of layer '" + model[i].name() + "'";
        if (has_nonfinite(output)) return "the output of layer '" + model[model.size() - 1].name() + "'";
        return {};
    }
    static std::string scan_parameters(const ParameterStore<T>& params) {
        for (const ParameterInfo& info : params.info())
            if (has_nonfinite(params.values().slice(info.offset, info.shape))) return "parameter '" + info.name + "'";
        return "the loss itself";
    }
};

// Any ewe::Vae (ewe::SheepVae or one of the user's parts) under a VaeLoss. Terms:
// "recon" (weight 1) and "kl" (the loss' kl_weight).
template <class T>
class VaeObjective final : public TrainingObjective<T> {
public:
    VaeObjective(Vae<T>& vae, VaeLoss<T>& loss) : vae_(vae), loss_(loss) {}

    ParameterStore<T>& params() override { return vae_.params(); }
    RandomState& random() override { return vae_.random(); }
    std::int64_t max_batch() const override { return vae_.max_batch(); }
    Shape input_shape() const override { return vae_.image_shape(); }

    void compute_gradients(Context& ctx, TensorView<const T> x, std::uint64_t step,
                           std::uint64_t first_sample) override {
        vae_gradients(ctx, vae_, loss_, x, step, first_sample);
    }

    std::vector<std::string> term_names() const override { return {"recon", "kl"}; }
    TensorView<const T> per_sample_term(std::size_t k, std::int64_t n) const override {
        return (k == 0 ? loss_.per_sample_reconstruction() : loss_.per_sample_kl()).leading(n);
    }
    double term_weight(std::size_t k) const override { return k == 0 ? 1.0 : loss_.kl_weight(); }
    void set_term_weight(const std::string& name, double weight) override {
        EWE_REQUIRE(name == "kl", "VaeObjective: only the 'kl' term has a weight to set, not '", name, "'");
        loss_.set_kl_weight(weight);
    }

    std::string first_nonfinite(std::int64_t n) override {
        if (std::string where = this->scan(vae_.encoder(), vae_.encoded(n), n); !where.empty()) return where;
        if (this->has_nonfinite(vae_.mean(n))) return "the output of layer 'z_mean'";
        if (this->has_nonfinite(vae_.log_var(n))) return "the output of layer 'z_log_var'";
        if (std::string where = this->scan(vae_.decoder(), vae_.reconstruction(n), n); !where.empty()) return where;
        return this->scan_parameters(vae_.params());
    }

private:
    Vae<T>& vae_;
    VaeLoss<T>& loss_;
};

// A Model that maps its input to a reconstruction of it (a plain autoencoder), under
// recon_scale * mean-over-features squared error per sample ("recon").
template <class T>
class AutoencoderObjective final : public TrainingObjective<T> {
public:
    AutoencoderObjective(Context& ctx, Model<T>& model, double recon_scale) : model_(model), recon_scale_(recon_scale) {
        EWE_REQUIRE(model.output_shape() == model.input_shape(), "AutoencoderObjective: the model maps ",
                    model.input_shape(), " to ", model.output_shape(), "; an autoencoder reproduces its input");
        EWE_REQUIRE(recon_scale > 0, "AutoencoderObjective: recon_scale must be positive, found ", format_number(recon_scale));
        const Shape batch = model.input_shape().with_batch(model.max_batch());
        x_hat_ = Tensor<T>(batch, ctx.device());
        dx_hat_ = Tensor<T>(batch, ctx.device());
        recon_ = Tensor<T>(Shape{model.max_batch()}, ctx.device());
    }

    ParameterStore<T>& params() override { return model_.params(); }
    RandomState& random() override { return model_.random(); }
    std::int64_t max_batch() const override { return model_.max_batch(); }
    Shape input_shape() const override { return model_.input_shape(); }

    void compute_gradients(Context& ctx, TensorView<const T> x, std::uint64_t step,
                           std::uint64_t first_sample) override {
        const std::int64_t n = x.dim(0);
        model_.random().offset = step;
        model_.random().first_sample = first_sample;
        const TensorView<T> x_hat = x_hat_.view().leading(n), dx_hat = dx_hat_.view().leading(n);
        model_.forward(ctx, x, x_hat, Phase::train);
        ops::mse_forward<T>(ctx, recon_scale_, x_hat, x, recon_.view().leading(n));
        ops::mse_backward<T>(ctx, recon_scale_ / double(n), x_hat, x, dx_hat);
        model_.layers().backward(ctx, x, x_hat, dx_hat, TensorView<T>());
    }

    std::vector<std::string> term_names() const override { return {"recon"}; }
    TensorView<const T> per_sample_term(std::size_t, std::int64_t n) const override { return recon_.view().leading(n); }
    double term_weight(std::size_t) const override { return 1.0; }
    void set_term_weight(const std::string& name, double) override {
        fail("AutoencoderObjective: its one term 'recon' has no weight to set (asked for '", name, "')");
    }

    std::string first_nonfinite(std::int64_t n) override {
        if (std::string where = this->scan(model_.layers(), x_hat_.view().leading(n), n); !where.empty())
            return where;
        return this->scan_parameters(model_.params());
    }

private:
    Model<T>& model_;
    double recon_scale_;
    Tensor<T> x_hat_, dx_hat_, recon_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::TrainingObjective<float>;
extern template class ewe::VaeObjective<float>;
extern template class ewe::AutoencoderObjective<float>;
#endif
