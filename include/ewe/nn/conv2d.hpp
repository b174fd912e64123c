// Conv2D and Conv2DTranspose, Keras semantics on NHWC images: kernel k x k, stride,
// padding `same` (TensorFlow's rule, see ewe/ops/geometry.hpp) or `valid`, bias,
// fused activation, glorot_uniform kernels and zero biases.
// Conv2D kernel layout: (filters, kh, kw, in_channels).
// Conv2DTranspose kernel layout: (in_channels, kh, kw, filters); it computes the input
// gradient of the Conv2D that would map its output back to its input, so `same` with
// stride s turns h x w into (h * s) x (w * s) (28 x 28 -> 56 x 56 for s = 2).
#pragma once

#include "ewe/nn/layer.hpp"

namespace ewe {

struct ConvOptions {
    std::int64_t filters = 1;
    std::int64_t kernel = 3;
    std::int64_t stride = 1;
    Padding padding = Padding::valid;
    Activation activation = Activation::none;
};

namespace detail {
template <class T>
void check_conv_options(const Layer<T>& layer, const ConvOptions& o) {
    EWE_REQUIRE(o.filters > 0, layer.label(), ": filters must be positive, found ", o.filters);
    EWE_REQUIRE(o.kernel > 0, layer.label(), ": kernel size must be positive, found ",
                o.kernel);
    EWE_REQUIRE(o.stride > 0, layer.label(), ": stride must be positive, found ", o.stride);
}
}  // namespace detail

template <class T>
class Conv2D final : public Layer<T> {
public:
    explicit Conv2D(ConvOptions options, std::string name = {}) : Layer<T>(std::move(name)), o_(options) {
        detail::check_conv_options(*this, o_);
    }
    const char* kind() const override { return "Conv2D"; }
    const ConvGeometry& geometry() const { return g_; }
    Activation activation() const { return o_.activation; }

protected:
    std::string default_name() const override { return "conv2d"; }

    Shape build_impl(const Shape& input, BuildContext<T>& b) override {
        if (input.rank() != 3) this->invalid("expects NHWC images (batch, h, w, c), found features " + input.str());
        g_.in_c = input[2];
        g_.out_c = o_.filters;
        g_.h = ConvAxis::forward(input[0], o_.kernel, o_.stride, o_.padding);
        g_.w = ConvAxis::forward(input[1], o_.kernel, o_.stride, o_.padding);
        if (g_.h.out == 0 || g_.w.out == 0)
            this->invalid("kernel " + std::to_string(o_.kernel) + " with `valid` padding does not fit input " +
                          input.str());
        const std::int64_t area = o_.kernel * o_.kernel;
        kernel_ = this->add_parameter(b, "kernel", g_.filter_shape(), true, Init::glorot_uniform, area * g_.in_c,
                                      area * g_.out_c);
        bias_ = this->add_parameter(b, "bias", Shape{o_.filters}, true, Init::zeros);
        const Shape out{g_.h.out, g_.w.out, g_.out_c};
        dpre_ = this->planned(b, out);
        return out;
    }

    void forward_impl(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase) override {
        ops::conv2d_forward<T>(ctx, g_.with_batch(x.dim(0)), x, this->value(kernel_), this->value(bias_),
                               o_.activation, y);
    }

    void backward_impl(Context& ctx, TensorView<const T> x, TensorView<const T> y, TensorView<const T> dy,
                       TensorView<T> dx) override {
        ops::conv2d_backward<T>(ctx, g_.with_batch(x.dim(0)), x, this->value(kernel_), y, dy, o_.activation,
                                dpre_.view().leading(x.dim(0)), dx, this->grad(kernel_), this->grad(bias_));
    }

private:
    ConvOptions o_;
    ConvGeometry g_;
    int kernel_ = -1, bias_ = -1;
    Tensor<T> dpre_;
};

template <class T>
class Conv2DTranspose final : public Layer<T> {
public:
    explicit Conv2DTranspose(ConvOptions options, std::string name = {}) : Layer<T>(std::move(name)), o_(options) {
        detail::check_conv_options(*this, o_);
    }
    const char* kind() const override { return "Conv2DTranspose"; }
    // The hidden convolution: its input is this layer's output and vice versa.
    const ConvGeometry& geometry() const { return g_; }
    Activation activation() const { return o_.activation; }

protected:
    std::string default_name() const override { return "conv2d_transpose"; }

    Shape build_impl(const Shape& input, BuildContext<T>& b) override {
        if (input.rank() != 3) this->invalid("expects NHWC images (batch, h, w, c), found features " + input.str());
        g_.out_c = input[2];
        g_.in_c = o_.filters;
        g_.h = ConvAxis::transposed(input[0], o_.kernel, o_.stride, o_.padding);
        g_.w = ConvAxis::transposed(input[1], o_.kernel, o_.stride, o_.padding);
        const std::int64_t area = o_.kernel * o_.kernel;
        kernel_ = this->add_parameter(b, "kernel", g_.filter_shape(), true, Init::glorot_uniform, area * o_.filters,
                                      area * input[2]);
        bias_ = this->add_parameter(b, "bias", Shape{o_.filters}, true, Init::zeros);
        const Shape out{g_.h.in, g_.w.in, o_.filters};
        dpre_ = this->planned(b, out);
        return out;
    }

    void forward_impl(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase) override {
        ops::conv2d_transpose_forward<T>(ctx, g_.with_batch(x.dim(0)), x, this->value(kernel_), this->value(bias_),
                                         o_.activation, y);
    }

    void backward_impl(Context& ctx, TensorView<const T> x, TensorView<const T> y, TensorView<const T> dy,
                       TensorView<T> dx) override {
        ops::conv2d_transpose_backward<T>(ctx, g_.with_batch(x.dim(0)), x, this->value(kernel_), y, dy,
                                          o_.activation, dpre_.view().leading(x.dim(0)), dx, this->grad(kernel_),
                                          this->grad(bias_));
    }

private:
    ConvOptions o_;
    ConvGeometry g_;
    int kernel_ = -1, bias_ = -1;
    Tensor<T> dpre_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::Conv2D<float>;
extern template class ewe::Conv2DTranspose<float>;
#endif
