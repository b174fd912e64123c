// Sequential: a stack of layers that is itself a Layer, so models nest (the sheep
// VAE holds its decoder as one). Building plans every intermediate activation once
// (sized for max_batch) and two gradient buffers that backward alternates between. A
// layer that only reshapes (Layer::reshapes_only) between two others is not run: its
// output and its input gradient are views of its input and of its output gradient.
#pragma once

#include <algorithm>
#include <memory>
#include <vector>

#include "ewe/nn/layer.hpp"

namespace ewe {

template <class T>
class Sequential final : public Layer<T> {
public:
    explicit Sequential(std::string name = {}) : Layer<T>(std::move(name)) {}
    const char* kind() const override { return "Sequential"; }

    // Adds a new layer of type L built from `args`; returns it.
    template <template <class> class L, class... Args>
    L<T>& add(Args&&... args) {
        auto layer = std::make_shared<L<T>>(std::forward<Args>(args)...);
        L<T>& ref = *layer;
        add(std::move(layer));
        return ref;
    }
    void add(std::shared_ptr<Layer<T>> layer) {
        EWE_REQUIRE(!this->built(), "Sequential '", this->name(), "': cannot add layers after build");
        EWE_REQUIRE(layer != nullptr, "Sequential '", this->name(), "': cannot add a null layer");
        layers_.push_back(std::move(layer));
    }

    std::size_t size() const { return layers_.size(); }
    Layer<T>& operator[](std::size_t i) const { return *layers_.at(i); }

    std::int64_t param_count() const override {
        std::int64_t n = 0;
        for (const auto& l : layers_) n += l->param_count();
        return n;
    }
    std::vector<SummaryRow> summary_rows() const override {
        std::vector<SummaryRow> rows;
        for (const auto& l : layers_) {
            auto more = l->summary_rows();
            rows.insert(rows.end(), more.begin(), more.end());
        }
        return rows;
    }

    // The output of layer i from the last forward (batch rows), for inspection.
    TensorView<const T> activation(std::size_t i, std::int64_t batch) const {
        EWE_REQUIRE(i + 1 < layers_.size(), "Sequential '", this->name(), "': activation ", i,
                    " is the model's output, which the caller owns");
        return output(i, batch);
    }

protected:
    std::string default_name() const override { return "sequential"; }

    Shape build_impl(const Shape& input, BuildContext<T>& b) override {
        EWE_REQUIRE(!layers_.empty(), "Sequential '", this->name(), "': has no layers");
        Shape shape = input;
        std::int64_t largest = input.numel();
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            shape = layers_[i]->build(shape, b);
            largest = std::max(largest, shape.numel());
            if (i + 1 < layers_.size()) outputs_.push_back(viewed(i) ? Tensor<T>() : this->planned(b, shape));
        }
        for (auto& g : grads_) g = this->planned(b, Shape{largest});
        return shape;
    }

    void forward_impl(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase phase) override {
        const std::int64_t n = x.dim(0);
        TensorView<const T> in = x;
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            if (viewed(i)) {
                in = output(i, n);
                continue;
            }
            TensorView<T> out = i + 1 < layers_.size() ? outputs_[i].view().leading(n) : y;
            layers_[i]->forward(ctx, in, out, phase);
            in = out;
        }
    }

    void backward_impl(Context& ctx, TensorView<const T> x, TensorView<const T> y, TensorView<const T> dy,
                       TensorView<T> dx) override {
        const std::int64_t n = x.dim(0);
        TensorView<const T> grad_out = dy;
        int next = 0;  // the gradient buffer the next layer run writes (the other holds grad_out)
        for (std::size_t k = layers_.size(); k-- > 0;) {
            Layer<T>& layer = *layers_[k];
            TensorView<const T> in = k == 0 ? x : output(k - 1, n);
            if (viewed(k)) {
                grad_out = grad_out.reshaped(in.shape());
                continue;
            }
            TensorView<const T> out = k + 1 == layers_.size() ? y : output(k, n);
            TensorView<T> grad_in;
            if (k > 0) grad_in = grads_[next].view().slice(0, in.shape());
            else grad_in = dx;
            layer.backward(ctx, in, out, grad_out, grad_in);
            grad_out = grad_in;
            next = 1 - next;
        }
    }

private:
    // Whether layer i is not run: it only reshapes, and is neither the first nor the last.
    bool viewed(std::size_t i) const { return i > 0 && i + 1 < layers_.size() && layers_[i]->reshapes_only(); }

    // The output of layer i (not the last) for a batch of n: its buffer, or the previous
    // layer's output viewed in its shape.
    TensorView<const T> output(std::size_t i, std::int64_t n) const {
        if (!viewed(i)) return outputs_[i].view().leading(n);
        return output(i - 1, n).reshaped(layers_[i]->output_shape().with_batch(n));
    }

    std::vector<std::shared_ptr<Layer<T>>> layers_;
    std::vector<Tensor<T>> outputs_;
    Tensor<T> grads_[2];
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::Sequential<float>;
#endif
