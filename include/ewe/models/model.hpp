// Model: the owner of a plain network (any Sequential), as Vae is of a VAE and Keras'
// Model of its layers: it builds the layers for one sample's input shape and a maximum
// batch into its own ParameterStore, allocates that from a seed, and holds the
// RandomState its random layers (Dropout) draw from. predict() runs it in Phase::eval
// over any number of host rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/nn/parameters.hpp"
#include "ewe/nn/sequential.hpp"
#include "ewe/nn/summary.hpp"

namespace ewe {

// The layers are built in order into one ParameterStore (their Keras-style names are
// the checkpoint's tensor names), which is then allocated from `seed` (the weights) and
// `seed` also keys every random draw (RandomState::seed, which Trainer::resume
// replaces by the seed of the run it continues). The output buffer of predict() is
// planned for max_batch rows.
template <class T>
class Model {
public:
    Model(Context& ctx, std::shared_ptr<Sequential<T>> layers, const Shape& input, std::int64_t max_batch,
          std::uint64_t seed)
        : layers_(std::move(layers)) {
        EWE_REQUIRE(layers_ != nullptr, "Model: the layers are null");
        EWE_REQUIRE(max_batch > 0, "Model '", layers_->name(), "': max_batch must be positive, found ", max_batch);
        EWE_REQUIRE(input.rank() >= 1 && input.numel() > 0, "Model '", layers_->name(),
                    "': input must be one sample's non-empty features, e.g. (h, w, c), found ", input);
        random_.seed = seed;
        BuildContext<T> b{ctx, params_, random_, max_batch};
        const Shape out = layers_->build(input, b);
        params_.allocate(ctx.device(), seed);
        output_ = Tensor<T>(out.with_batch(max_batch), ctx.device());
    }
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    std::int64_t max_batch() const { return layers_->max_batch(); }
    const Shape& input_shape() const { return layers_->input_shape(); }
    const Shape& output_shape() const { return layers_->output_shape(); }
    ParameterStore<T>& params() { return params_; }
    RandomState& random() { return random_; }
    Sequential<T>& layers() { return *layers_; }

    // The layers on x (n <= max_batch rows, on the context's device) into y.
    void forward(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase phase) {
        layers_->forward(ctx, x, y, phase);
    }

    // The outputs (n, output...) on the host of `x` (n, input...) on the host, in
    // Phase::eval (no dropout, BatchNorm's moving statistics), max_batch rows at a time.
    Tensor<T> predict(Context& ctx, std::type_identity_t<TensorView<const T>> x) {
        EWE_REQUIRE(x.device() == Device::cpu, "Model::predict: x must be on the host");
        EWE_REQUIRE(x.rank() >= 2 && x.shape().features() == input_shape(), "Model::predict: x should be (n, ",
                    input_shape().str().substr(1), ", found ", x.shape());
        const std::int64_t n = x.dim(0), b = max_batch(), in = input_shape().numel(), out = output_shape().numel();
        Tensor<T> y(output_shape().with_batch(n));
        Tensor<T> batch(input_shape().with_batch(b), ctx.device());
        for (std::int64_t i = 0; i < n; i += b) {
            const std::int64_t m = std::min(b, n - i);
            copy<T>(x.slice(i * in, input_shape().with_batch(m)), batch.view().leading(m));
            layers_->forward(ctx, batch.view().leading(m), output_.view().leading(m), Phase::eval);
            copy<T>(output_.view().leading(m), y.view().slice(i * out, output_shape().with_batch(m)));
        }
        return y;
    }

    // Keras-style summary: one row per layer, then the parameter totals.
    std::string summary() const { return format_summary(layers_->name(), input_shape(), layers_->summary_rows()); }

private:
    std::shared_ptr<Sequential<T>> layers_;
    RandomState random_;
    ParameterStore<T> params_;
    Tensor<T> output_;
};

}  // namespace ewe
