// BatchNormalization over the last axis (features after a Dense layer, channels of
// an NHWC image), Keras semantics: momentum 0.99, epsilon 1e-3, gamma ones, beta
// zeros; training normalizes by the batch mean and biased variance and updates the
// moving mean/variance (non-trainable parameters, initialized to 0 and 1), which
// evaluation uses instead.
#pragma once

#include "ewe/nn/layer.hpp"

namespace ewe {

template <class T>
class BatchNormalization final : public Layer<T> {
public:
    explicit BatchNormalization(BatchNormOptions options = {}, std::string name = {})
        : Layer<T>(std::move(name)), options_(options) {
        if (!(options.momentum >= 0.0 && options.momentum <= 1.0))
            this->invalid("momentum must be in [0, 1], found " + std::to_string(options.momentum));
        if (!(options.epsilon > 0.0)) this->invalid("epsilon must be positive, found " + std::to_string(options.epsilon));
    }
    const char* kind() const override { return "BatchNormalization"; }

protected:
    std::string default_name() const override { return "batch_normalization"; }

    Shape build_impl(const Shape& input, BuildContext<T>& b) override {
        if (input.rank() < 1) this->invalid("needs at least one feature axis");
        const Shape c{input[input.rank() - 1]};
        gamma_ = this->add_parameter(b, "gamma", c, true, Init::ones);
        beta_ = this->add_parameter(b, "beta", c, true, Init::zeros);
        moving_mean_ = this->add_parameter(b, "moving_mean", c, false, Init::zeros);
        moving_var_ = this->add_parameter(b, "moving_variance", c, false, Init::ones);
        saved_mean_ = Tensor<T>(c, b.ctx.device());
        saved_invstd_ = Tensor<T>(c, b.ctx.device());
        return input;
    }

    void forward_impl(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase phase) override {
        ops::batchnorm_forward<T>(ctx, options_, phase, x, this->value(gamma_), this->value(beta_),
                                  this->value(moving_mean_), this->value(moving_var_), saved_mean_.view(),
                                  saved_invstd_.view(), y);
    }

    void backward_impl(Context& ctx, TensorView<const T> x, TensorView<const T>, TensorView<const T> dy,
                       TensorView<T> dx) override {
        if (dx.empty()) invalid_first();
        ops::batchnorm_backward<T>(ctx, x, dy, this->value(gamma_), saved_mean_.view(), saved_invstd_.view(), dx,
                                   this->grad(gamma_), this->grad(beta_));
    }

private:
    [[noreturn]] void invalid_first() const { this->invalid("backward needs dx (cannot be the first layer)"); }

    BatchNormOptions options_;
    int gamma_ = -1, beta_ = -1, moving_mean_ = -1, moving_var_ = -1;
    Tensor<T> saved_mean_, saved_invstd_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::BatchNormalization<float>;
#endif
