// Optimizers over a ParameterStore's flat buffers: one update of every trainable
// parameter per step (one launch on CUDA). Update rules follow Keras:
//   SGD:     v = momentum * v - lr * g;  p += v  (Nesterov: p += momentum * v - lr * g)
//   RMSprop: s = rho * s + (1 - rho) * g^2;  p -= lr * g / (sqrt(s) + eps)
//   Adam:    m, v moments; p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
// The learning rate may change between steps. State buffers are allocated on
// construction, so step() allocates nothing. step_during runs the update of each layer's
// parameters inside the backward, right after their gradients are written (CPU). hyperparameters() names the fixed settings
// of the rule (all but the learning rate), which a checkpoint records and a resume
// checks.
#pragma once

#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ewe/nn/parameters.hpp"
#include "ewe/ops/ops.hpp"

namespace ewe {

template <class T>
class Optimizer {
public:
    Optimizer(ParameterStore<T>& params, double lr) : params_(params), lr_(lr) {
        EWE_REQUIRE(params.allocated(), "Optimizer: the parameter store must be allocated first");
        EWE_REQUIRE(lr > 0, "Optimizer: learning rate must be positive, found ", format_number(lr));
        updated_.resize(params.info().size());
        all_ids_.resize(params.info().size());
        std::iota(all_ids_.begin(), all_ids_.end(), 0);
    }
    virtual ~Optimizer() = default;
    virtual const char* kind() const = 0;
    // The update rule's settings other than the learning rate, by Keras' names.
    virtual std::vector<std::pair<std::string, double>> hyperparameters() const = 0;

    void step(Context& ctx) {
        ++iterations_;
        update(ctx, 0, params_.trainable_count());
    }

    // backward(); step(ctx), with the updates inside backward (a callable that overwrites
    // the gradients, e.g. TrainingObjective::compute_gradients): on the CPU each layer's
    // parameters are updated as soon as its backward reports their gradients final
    // (ParameterStore::gradients_final), while the gradients and weights it just touched
    // are still in cache, and the parameters no layer reported once backward returns. The
    // result is bit-identical to backward(); step(ctx): the rules are elementwise, and no
    // later backward reads a layer's parameters. Only for a backward that nothing global
    // follows before the update (a data-parallel gradient average): such a step calls
    // step(). On CUDA (one fused launch, inside the step's graph) it is backward();
    // step(ctx). iterations() counts this step already inside backward: read the step's
    // number before. If backward throws, some layers may be updated.
    template <class Backward>
    void step_during(Context& ctx, Backward&& backward) {
        if (ctx.device() != Device::cpu) {
            backward();
            step(ctx);
            return;
        }
        ++iterations_;
        std::fill(updated_.begin(), updated_.end(), char(0));
        struct Listening {
            ParameterStore<T>& store;
            ~Listening() { store.set_on_gradients_final({}); }
        } listening{params_};
        params_.set_on_gradients_final([this, &ctx](std::span<const int> ids) { update_once(ctx, ids); });
        backward();
        update_once(ctx, all_ids_);
    }

    void set_learning_rate(double lr) {
        EWE_REQUIRE(lr > 0, kind(), ": learning rate must be positive, found ", format_number(lr));
        lr_ = lr;
    }
    double learning_rate() const { return lr_; }
    ParameterStore<T>& params() const { return params_; }
    std::int64_t iterations() const { return iterations_; }
    void set_iterations(std::int64_t n) { iterations_ = n; }

    // Named state buffers (for checkpoints), each shaped like the trainable prefix.
    std::vector<std::pair<std::string, TensorView<T>>> state() {
        std::vector<std::pair<std::string, TensorView<T>>> out;
        for (auto& [name, tensor] : state_) out.emplace_back(name, tensor.view());
        return out;
    }

protected:
    // Applies the rule to the trainable parameters [begin, begin + count).
    virtual void update(Context& ctx, std::int64_t begin, std::int64_t count) = 0;

    // The elements [begin, begin + count) of a buffer shaped like the trainable
    // parameters (empty stays empty).
    static TensorView<T> part(TensorView<T> v, std::int64_t begin, std::int64_t count) {
        return v.empty() ? v : v.slice(begin, Shape{count});
    }
    TensorView<T> values_part(std::int64_t begin, std::int64_t count) const {
        return params_.trainable_values().slice(begin, Shape{count});
    }
    TensorView<const T> grads_part(std::int64_t begin, std::int64_t count) const {
        return params_.grads().slice(begin, Shape{count});
    }

    // A zero-initialized state buffer shaped like the trainable parameters.
    TensorView<T> add_state(Context& ctx, std::string name) {
        Tensor<T> t(Shape{params_.trainable_count()}, params_.device());
        ops::fill<T>(ctx, T(0), t.view());
        state_.emplace_back(std::move(name), std::move(t));
        return state_.back().second.view();
    }

    ParameterStore<T>& params_;
    double lr_;
    std::int64_t iterations_ = 0;
    std::vector<std::pair<std::string, Tensor<T>>> state_;

private:
    // Updates the trainable parameters among `ids` that this step has not updated yet,
    // adjacent ones in one call.
    void update_once(Context& ctx, std::span<const int> ids) {
        std::int64_t begin = 0, end = 0;
        for (int id : ids) {
            const ParameterInfo& p = params_.info()[std::size_t(id)];
            if (!p.trainable || updated_[std::size_t(id)]) continue;
            updated_[std::size_t(id)] = 1;
            if (p.offset != end) {
                if (end > begin) update(ctx, begin, end - begin);
                begin = p.offset;
            }
            end = p.offset + p.shape.numel();
        }
        if (end > begin) update(ctx, begin, end - begin);
    }

    std::vector<char> updated_;  // per parameter id: updated in this step_during
    std::vector<int> all_ids_;   // 0, 1, ..., one per parameter
};

template <class T>
class Sgd final : public Optimizer<T> {
public:
    Sgd(Context& ctx, ParameterStore<T>& params, SgdOptions options = {})
        : Optimizer<T>(params, options.lr), options_(options) {
        EWE_REQUIRE(options.momentum >= 0 && options.momentum < 1, "SGD: momentum must be in [0, 1), found ",
                    options.momentum);
        EWE_REQUIRE(!options.nesterov || options.momentum > 0, "SGD: nesterov needs a momentum > 0");
        if (options.momentum > 0) velocity_ = this->add_state(ctx, "velocity");
    }
    const char* kind() const override { return "SGD"; }
    std::vector<std::pair<std::string, double>> hyperparameters() const override {
        return {{"momentum", options_.momentum}, {"nesterov", options_.nesterov ? 1.0 : 0.0}};
    }

protected:
    void update(Context& ctx, std::int64_t begin, std::int64_t count) override {
        ops::sgd_update<T>(ctx, options_, this->lr_, this->values_part(begin, count), this->grads_part(begin, count),
                           this->part(velocity_, begin, count));
    }

private:
    SgdOptions options_;
    TensorView<T> velocity_;
};

template <class T>
class Rmsprop final : public Optimizer<T> {
public:
    Rmsprop(Context& ctx, ParameterStore<T>& params, RmspropOptions options = {})
        : Optimizer<T>(params, options.lr), options_(options) {
        EWE_REQUIRE(options.rho >= 0 && options.rho < 1, "RMSprop: rho must be in [0, 1), found ", options.rho);
        EWE_REQUIRE(options.epsilon > 0, "RMSprop: epsilon must be positive, found ", options.epsilon);
        mean_square_ = this->add_state(ctx, "mean_square");
    }
    const char* kind() const override { return "RMSprop"; }
    std::vector<std::pair<std::string, double>> hyperparameters() const override {
        return {{"rho", options_.rho}, {"epsilon", options_.epsilon}};
    }

protected:
    void update(Context& ctx, std::int64_t begin, std::int64_t count) override {
        ops::rmsprop_update<T>(ctx, options_, this->lr_, this->values_part(begin, count), this->grads_part(begin, count),
                               this->part(mean_square_, begin, count));
    }

private:
    RmspropOptions options_;
    TensorView<T> mean_square_;
};

template <class T>
class Adam final : public Optimizer<T> {
public:
    Adam(Context& ctx, ParameterStore<T>& params, AdamOptions options = {})
        : Optimizer<T>(params, options.lr), options_(options) {
        EWE_REQUIRE(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
                    "Adam: betas must be in [0, 1), found ", options.beta1, " and ", options.beta2);
        EWE_REQUIRE(options.epsilon > 0, "Adam: epsilon must be positive, found ", options.epsilon);
        m_ = this->add_state(ctx, "m");
        v_ = this->add_state(ctx, "v");
    }
    const char* kind() const override { return "Adam"; }
    std::vector<std::pair<std::string, double>> hyperparameters() const override {
        return {{"beta_1", options_.beta1}, {"beta_2", options_.beta2}, {"epsilon", options_.epsilon}};
    }

protected:
    void update(Context& ctx, std::int64_t begin, std::int64_t count) override {
        ops::adam_update<T>(ctx, options_, this->lr_, this->iterations_, this->values_part(begin, count),
                            this->grads_part(begin, count), this->part(m_, begin, count), this->part(v_, begin, count));
    }

private:
    AdamOptions options_;
    TensorView<T> m_, v_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::Optimizer<float>;
extern template class ewe::Sgd<float>;
extern template class ewe::Rmsprop<float>;
extern template class ewe::Adam<float>;
#endif
