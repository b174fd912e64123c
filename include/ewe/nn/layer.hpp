// The layer contract. A layer is built once for a fixed feature shape and a maximum
// batch (registering its parameters in a ParameterStore and allocating whatever it
// keeps between forward and backward), then runs forward and backward on buffers
// its caller owns: forward(x) -> y, backward(x, y, dy) -> dx plus its parameter
// gradients, which backward overwrites (it does not accumulate). backward follows
// a forward in Phase::train on the same x. Any batch up to max_batch may be used.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/memory.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/nn/parameters.hpp"
#include "ewe/ops/ops.hpp"

namespace ewe {

// Seed and per-step offset of every random draw a model makes (dropout masks,
// reparameterization noise). The model advances `offset` once per training step;
// each consumer owns one Philox stream. `first_sample` is the index, in the step's
// global batch, of the batch's row 0: 0 in one process, the first row of its shard on
// a data-parallel rank, so that every sample draws the same noise however the global
// batch is split.
struct RandomState {
    std::uint64_t seed = 0;
    std::uint64_t offset = 0;
    std::uint64_t first_sample = 0;
    // The key of a consumer whose tensors hold `per_sample` elements per batch row.
    PhiloxKey key(std::uint32_t stream, std::int64_t per_sample) const {
        return PhiloxKey{seed, stream, offset, first_sample * std::uint64_t(per_sample)};
    }
};

// What a layer needs while it is built.
template <class T>
struct BuildContext {
    BuildContext(Context& context, ParameterStore<T>& store, const RandomState& rng, std::int64_t batch)
        : ctx(context), params(store), random(rng), max_batch(batch) {
        EWE_REQUIRE(batch > 0, "BuildContext: max_batch must be positive, found ", batch);
    }

    Context& ctx;
    ParameterStore<T>& params;
    const RandomState& random;
    std::int64_t max_batch;
    std::uint32_t next_stream = 1;           // Philox streams of random layers (0: Reparameterization)
    std::map<std::string, int> name_counts;  // Keras-style automatic names: dense, dense_1, ...
    // Bytes of every buffer planned so far, and the most the build may allocate: once the
    // planned buffers and the registered parameters (values and gradients) pass
    // memory_limit, planned buffers stay empty and the model refuses after its build (Vae
    // checks within_memory_limit()), so a model too large is refused before it is allocated.
    std::int64_t planned_bytes = 0;
    std::int64_t memory_limit = std::numeric_limits<std::int64_t>::max();

    // The parameters registered so far: values and gradients.
    std::int64_t parameter_bytes() const { return saturating_bytes(params.total_count() + params.trainable_count()); }
    bool within_memory_limit() const {
        const std::int64_t p = parameter_bytes();
        return planned_bytes <= memory_limit && p <= memory_limit - planned_bytes;
    }
    // `count` elements of T in bytes, saturating at the int64 maximum.
    static std::int64_t saturating_bytes(std::int64_t count) {
        constexpr std::int64_t most = std::numeric_limits<std::int64_t>::max();
        return count > most / std::int64_t(sizeof(T)) ? most : count * std::int64_t(sizeof(T));
    }
    // Counts `count` more planned elements of T.
    void add_planned(std::int64_t count) {
        const std::int64_t bytes = saturating_bytes(count);
        planned_bytes = bytes > std::numeric_limits<std::int64_t>::max() - planned_bytes
                            ? std::numeric_limits<std::int64_t>::max() : planned_bytes + bytes;
    }

    std::string unique_name(const std::string& base) {
        const int k = name_counts[base]++;
        return k == 0 ? base : base + "_" + std::to_string(k);
    }
};

// How messages name a layer: its kind and name ("Dropout 'dropout_1'"), or its kind
// alone before build has given it a name ("Dropout (unnamed)").
inline std::string layer_label(const char* kind, const std::string& name) {
    return name.empty() ? std::string(kind) + " (unnamed)" : std::string(kind) + " '" + name + "'";
}

// One row of a Keras-style summary.
struct SummaryRow {
    std::string name, kind;
    Shape output;  // without the batch dimension
    std::int64_t params = 0;         // all parameters of the layer
    std::int64_t non_trainable = 0;  // of which not trainable
};

template <class T>
class Layer {
public:
    explicit Layer(std::string name = {}) : name_(std::move(name)) {}
    virtual ~Layer() = default;
    Layer(const Layer&) = delete;
    Layer& operator=(const Layer&) = delete;

    // Keras' class name, e.g. "Conv2D".
    virtual const char* kind() const = 0;
    const std::string& name() const { return name_; }
    std::string label() const { return layer_label(kind(), name_); }

    // Builds the layer for inputs of `input` features (no batch dimension) and returns
    // the output features. A layer is built once.
    Shape build(const Shape& input, BuildContext<T>& b) {
        EWE_REQUIRE(!built_, label(), ": already built (a layer object belongs to one model)");
        if (name_.empty()) name_ = b.unique_name(default_name());
        store_ = &b.params;
        max_batch_ = b.max_batch;
        input_ = input;
        output_ = build_impl(input, b);
        built_ = true;
        return output_;
    }

    bool built() const { return built_; }
    const Shape& input_shape() const { return input_; }
    const Shape& output_shape() const { return output_; }
    std::int64_t max_batch() const { return max_batch_; }

    void forward(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase phase) {
        check_io("forward", x, y);
        forward_impl(ctx, x, y, phase);
    }

    // dx may be empty when the input gradient is not wanted (the first layer).
    void backward(Context& ctx, TensorView<const T> x, TensorView<const T> y, TensorView<const T> dy,
                  TensorView<T> dx) {
        check_io("backward", x, y);
        EWE_REQUIRE(dy.shape() == y.shape(), label(), " backward: dy should have shape ", y.shape(),
                    ", found ", dy.shape());
        EWE_REQUIRE(dx.empty() || dx.shape() == x.shape(), label(), " backward: dx should have shape ",
                    x.shape(), ", found ", dx.shape());
        backward_impl(ctx, x, y, dy, dx);
    }

    // Parameters this layer registered (with those of its sub-layers).
    virtual std::int64_t param_count() const { return count_params(true) + count_params(false); }
    // Rows this layer adds to a summary: one, or one per sub-layer for containers.
    virtual std::vector<SummaryRow> summary_rows() const {
        return {SummaryRow{name_, kind(), output_, param_count(), count_params(false)}};
    }

protected:
    virtual std::string default_name() const = 0;
    virtual Shape build_impl(const Shape& input, BuildContext<T>& b) = 0;
    virtual void forward_impl(Context& ctx, TensorView<const T> x, TensorView<T> y, Phase phase) = 0;
    virtual void backward_impl(Context& ctx, TensorView<const T> x, TensorView<const T> y, TensorView<const T> dy,
                               TensorView<T> dx) = 0;

    // Registers "<layer name>/<what>" in the store; returns its id.
    int add_parameter(BuildContext<T>& b, const std::string& what, Shape shape, bool trainable, Init init,
                      std::int64_t fan_in = 0, std::int64_t fan_out = 0) {
        const int id = b.params.add(name_ + "/" + what, shape, trainable, init, fan_in, fan_out);
        param_ids_.push_back(id);
        return id;
    }
    TensorView<T> value(int id) const { return store_->value(id); }
    TensorView<T> grad(int id) const { return store_->grad(id); }

    // A (batch, features...) tensor on the build device, sized for max_batch; counted in
    // b.planned_bytes, and left empty once the build is past b.memory_limit.
    Tensor<T> planned(BuildContext<T>& b, const Shape& features) const {
        const Shape shape = features.with_batch(b.max_batch);
        b.add_planned(shape.numel());
        if (!b.within_memory_limit()) return Tensor<T>();
        return Tensor<T>(shape, b.ctx.device());
    }

    [[noreturn]] void invalid(const std::string& what) const { fail(label(), ": ", what); }

private:
    std::int64_t count_params(bool trainable) const {
        std::int64_t n = 0;
        for (int id : param_ids_)
            if (store_->info()[id].trainable == trainable) n += store_->info()[id].shape.numel();
        return n;
    }

    void check_io(const char* pass, const TensorView<const T>& x, const TensorView<const T>& y) const {
        EWE_REQUIRE(built_, label(), " ", pass, ": the layer is not built");
        EWE_REQUIRE(x.rank() >= 1 && x.shape().features() == input_, label(), " ", pass,
                    ": expected input of shape ", input_.with_batch(x.rank() >= 1 ? x.dim(0) : 0), ", found ", x.shape());
        EWE_REQUIRE(x.dim(0) <= max_batch_, label(), " ", pass, ": batch ", x.dim(0),
                    " exceeds the max_batch ", max_batch_, " the model was built for");
        EWE_REQUIRE(y.shape() == output_.with_batch(x.dim(0)), label(), " ", pass,
                    ": expected output of shape ", output_.with_batch(x.dim(0)), ", found ", y.shape());
    }

    std::string name_;
    bool built_ = false;
    ParameterStore<T>* store_ = nullptr;
    std::vector<int> param_ids_;
    std::int64_t max_batch_ = 0;
    Shape input_, output_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::Layer<float>;
#endif
