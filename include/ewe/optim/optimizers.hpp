// Optimizers over a ParameterStore's flat buffers: one update of every trainable
// parameter per step (one launch on CUDA). Update rules follow Keras:
//   SGD:     v = momentum * v - lr * g;  p += v  (Nesterov: p += momentum * v - lr * g)
//   RMSprop: s = rho * s + (1 - rho) * g^2;  p -= lr * g / (sqrt(s) + eps)
//   Adam:    m, v moments; p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
// The learning rate may change between steps. State buffers are allocated on
// construction, so step() allocates nothing. hyperparameters() names the fixed settings
// of the rule (all but the learning rate), which a checkpoint records and a resume
// checks.
#pragma once

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
    }
    virtual ~Optimizer() = default;
    virtual const char* kind() const = 0;
    // The update rule's settings other than the learning rate, by Keras' names.
    virtual std::vector<std::pair<std::string, double>> hyperparameters() const = 0;

    void step(Context& ctx) {
        ++iterations_;
        update(ctx, params_.trainable_values(), params_.grads());
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
    virtual void update(Context& ctx, TensorView<T> params, TensorView<const T> grads) = 0;

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
    void update(Context& ctx, TensorView<T> p, TensorView<const T> g) override {
        ops::sgd_update<T>(ctx, options_, this->lr_, p, g, velocity_);
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
    void update(Context& ctx, TensorView<T> p, TensorView<const T> g) override {
        ops::rmsprop_update<T>(ctx, options_, this->lr_, p, g, mean_square_);
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
    void update(Context& ctx, TensorView<T> p, TensorView<const T> g) override {
        ops::adam_update<T>(ctx, options_, this->lr_, this->iterations_, p, g, m_, v_);
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
