// Shape-preserving and shape-changing layers without parameters: Dropout (inverted:
// kept values are scaled by 1 / (1 - rate) in training, identity in evaluation; the
// mask is redrawn from its Philox stream in backward instead of stored), standalone
// ReLU and Sigmoid, Flatten (NHWC order, as Keras channels_last) and Reshape.
#pragma once

#include "ewe/nn/layer.hpp"

namespace ewe {

template <class T>
class Dropout final : public Layer<T> {
public:
    explicit Dropout(double rate, std::string name = {}) : Layer<T>(std::move(name)), rate_(rate) {
        if (!(rate >= 0.0 && rate < 1.0)) this->invalid("rate must be in [0, 1), found " + std::to_string(rate));
    }
    const char* kind() const override { return "Dropout"; }
    double rate() const { return rate_; }

protected:
    std::string default_name() const override { return "dropout"; }

    Shape build_impl(const Shape& input, BuildContext<T>& b) override {
        random_ = &b.random;
        stream_ = b.next_stream++;
        return input;
    }

    void forward_impl(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase phase) override {
        if (phase == Phase::eval) ops::copy<T>(ctx, x, y);
        else ops::dropout_forward<T>(ctx, rate_, random_->key(stream_, this->input_shape().numel()), x, y);
    }

    void backward_impl(Context& ctx, TensorView<const T>, TensorView<const T>, TensorView<const T> dy,
                       TensorView<T> dx) override {
        if (!dx.empty()) ops::dropout_backward<T>(ctx, rate_, random_->key(stream_, this->input_shape().numel()), dy, dx);
    }

private:
    double rate_;
    const RandomState* random_ = nullptr;
    std::uint32_t stream_ = 0;
};

template <class T>
class ActivationLayer final : public Layer<T> {
public:
    explicit ActivationLayer(Activation activation, std::string name = {})
        : Layer<T>(std::move(name)), activation_(activation) {}
    const char* kind() const override { return "Activation"; }

protected:
    std::string default_name() const override { return to_string(activation_); }
    Shape build_impl(const Shape& input, BuildContext<T>&) override { return input; }
    void forward_impl(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase) override {
        ops::activation_forward<T>(ctx, activation_, x, y);
    }
    void backward_impl(Context& ctx, TensorView<const T>, TensorView<const T> y, TensorView<const T> dy,
                       TensorView<T> dx) override {
        if (!dx.empty()) ops::activation_backward<T>(ctx, activation_, y, dy, dx);
    }

private:
    Activation activation_;
};

// Copies x into the output viewed with another feature shape (inside a Sequential, a
// view of x instead: Layer::reshapes_only).
template <class T>
class Reshape : public Layer<T> {
public:
    // target: the output features (no batch dimension).
    explicit Reshape(Shape target, std::string name = {}) : Layer<T>(std::move(name)), target_(target) {}
    const char* kind() const override { return "Reshape"; }
    bool reshapes_only() const override { return true; }

protected:
    std::string default_name() const override { return "reshape"; }
    virtual Shape target_for(const Shape&) const { return target_; }
    Shape build_impl(const Shape& input, BuildContext<T>&) override {
        const Shape target = target_for(input);
        if (input.numel() != target.numel())
            this->invalid("cannot reshape features " + input.str() + " (" + std::to_string(input.numel()) +
                          " values) to " + target.str() + " (" + std::to_string(target.numel()) + " values)");
        return target;
    }
    void forward_impl(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase) override { ops::copy<T>(ctx, x, y); }
    void backward_impl(Context& ctx, TensorView<const T>, TensorView<const T>, TensorView<const T> dy,
                       TensorView<T> dx) override {
        if (!dx.empty()) ops::copy<T>(ctx, dy, dx);
    }

private:
    Shape target_;
};

// Reshape to (batch, h * w * c), in NHWC order.
template <class T>
class Flatten final : public Reshape<T> {
public:
    explicit Flatten(std::string name = {}) : Reshape<T>(Shape{}, std::move(name)) {}
    const char* kind() const override { return "Flatten"; }

protected:
    std::string default_name() const override { return "flatten"; }
    Shape target_for(const Shape& input) const override { return Shape{input.numel()}; }
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::Dropout<float>;
extern template class ewe::ActivationLayer<float>;
extern template class ewe::Reshape<float>;
extern template class ewe::Flatten<float>;
#endif
