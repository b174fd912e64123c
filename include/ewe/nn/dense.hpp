// Dense (fully connected) layer, Keras semantics: y = act(x kernel + bias) with
// kernel (in, units) glorot_uniform and bias zeros. Input (batch, in).
#pragma once

#include "ewe/nn/layer.hpp"

namespace ewe {

template <class T>
class Dense final : public Layer<T> {
public:
    explicit Dense(std::int64_t units, Activation activation = Activation::none, std::string name = {})
        : Layer<T>(std::move(name)), units_(units), activation_(activation) {
        if (units <= 0) this->invalid("units must be positive, found " + std::to_string(units));
    }
    const char* kind() const override { return "Dense"; }
    Activation activation() const { return activation_; }

protected:
    std::string default_name() const override { return "dense"; }

    Shape build_impl(const Shape& input, BuildContext<T>& b) override {
        if (input.rank() != 1)
            this->invalid("expects flat inputs (batch, features), found features " + input.str() +
                          " (add a Flatten layer first)");
        const std::int64_t in = input[0];
        kernel_ = this->add_parameter(b, "kernel", Shape{in, units_}, true, Init::glorot_uniform, in, units_);
        bias_ = this->add_parameter(b, "bias", Shape{units_}, true, Init::zeros);
        dpre_ = this->planned(b, Shape{units_});
        return Shape{units_};
    }

    void forward_impl(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase) override {
        ops::dense_forward<T>(ctx, x, this->value(kernel_), this->value(bias_), activation_, y);
    }

    void backward_impl(Context& ctx, TensorView<const T> x, TensorView<const T> y, TensorView<const T> dy,
                       TensorView<T> dx) override {
        ops::dense_backward<T>(ctx, x, this->value(kernel_), y, dy, activation_, dpre_.view().leading(x.dim(0)), dx,
                               this->grad(kernel_), this->grad(bias_));
    }

private:
    std::int64_t units_;
    Activation activation_;
    int kernel_ = -1, bias_ = -1;
    Tensor<T> dpre_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::Dense<float>;
#endif
