// Reparameterization: the VAE's sampling layer (Keras' `Sampling` layer, the post's
// Lambda), z = mean + exp(log_var / 2) * eps with eps ~ N(0, I), or the post's
// z = mean + exp(log_var) * eps (ReparamVariant::post). Two inputs, so its own contract.
#pragma once

#include <cstdint>
#include <string>

#include "ewe/nn/layer.hpp"

namespace ewe {

// Built once for a latent size and a max batch, like a Layer, then run on buffers its
// caller owns: forward(mean, log_var) -> z and backward(log_var, dz) -> dmean,
// dlog_var (accumulated). eps is drawn from the Philox key (seed, kStream, offset,
// first_sample * latent) of the model's RandomState and redrawn in backward, which follows a forward that sampled with the
// same offset. All tensors are (batch, latent).
template <class T>
class Reparameterization {
public:
    // BuildContext hands random layers the streams from 1 on; 0 is the sampler's.
    static constexpr std::uint32_t kStream = 0;

    explicit Reparameterization(ReparamVariant variant = ReparamVariant::standard, std::string name = {})
        : variant_(variant), name_(std::move(name)) {}
    Reparameterization(const Reparameterization&) = delete;
    Reparameterization& operator=(const Reparameterization&) = delete;

    const char* kind() const { return "Reparameterization"; }
    const std::string& name() const { return name_; }
    std::string label() const { return layer_label(kind(), name_); }
    ReparamVariant variant() const { return variant_; }

    void build(std::int64_t latent, BuildContext<T>& b) {
        EWE_REQUIRE(!built(), label(), ": already built (a layer object belongs to one model)");
        EWE_REQUIRE(latent > 0, label(), ": latent must be positive, found ", latent);
        if (name_.empty()) name_ = b.unique_name("sampling");
        random_ = &b.random;
        latent_ = latent;
        max_batch_ = b.max_batch;
    }

    bool built() const { return random_ != nullptr; }
    std::int64_t latent() const { return latent_; }
    std::int64_t max_batch() const { return max_batch_; }

    // z is sampled in Phase::train, and in Phase::eval when `sample` is true; otherwise
    // z is the posterior mean.
    void forward(Context& ctx, TensorView<const T> mean, TensorView<const T> log_var, TensorView<T> z, Phase phase,
                 bool sample = false) {
        check("forward", "mean", mean.shape(), mean.shape());
        check("forward", "log_var", log_var.shape(), mean.shape());
        check("forward", "z", z.shape(), mean.shape());
        if (phase == Phase::train || sample)
            ops::reparameterize_forward<T>(ctx, variant_, random_->key(kStream, latent_), mean, log_var, z);
        else
            ops::copy<T>(ctx, mean, z);
    }

    // Adds to dmean and dlog_var the gradients through z of a loss whose gradient with
    // respect to z is dz. It accumulates (unlike a Layer's backward): they usually hold
    // the KL term's gradients already (VaeLoss::backward writes them).
    void backward(Context& ctx, TensorView<const T> log_var, TensorView<const T> dz, TensorView<T> dmean,
                  TensorView<T> dlog_var) {
        check("backward", "log_var", log_var.shape(), log_var.shape());
        check("backward", "dz", dz.shape(), log_var.shape());
        check("backward", "dmean", dmean.shape(), log_var.shape());
        check("backward", "dlog_var", dlog_var.shape(), log_var.shape());
        ops::reparameterize_backward<T>(ctx, variant_, random_->key(kStream, latent_), log_var, dz, dmean, dlog_var);
    }

    SummaryRow summary_row() const { return SummaryRow{name_, kind(), Shape{latent_}, 0, 0}; }

private:
    // `found` must be (batch, latent) with batch <= max_batch, and equal `expected`.
    void check(const char* pass, const char* what, const Shape& found, const Shape& expected) const {
        EWE_REQUIRE(built(), label(), " ", pass, ": the layer is not built");
        EWE_REQUIRE(found.rank() == 2 && found[1] == latent_, label(), " ", pass, ": ", what,
                    " should have shape (batch, ", latent_, "), found ", found);
        EWE_REQUIRE(found[0] <= max_batch_, label(), " ", pass, ": batch ", found[0],
                    " exceeds the max_batch ", max_batch_, " the model was built for");
        EWE_REQUIRE(found == expected, label(), " ", pass, ": ", what, " should have shape ", expected,
                    ", found ", found);
    }

    ReparamVariant variant_;
    std::string name_;
    const RandomState* random_ = nullptr;
    std::int64_t latent_ = 0, max_batch_ = 0;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::Reparameterization<float>;
#endif
