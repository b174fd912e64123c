// ParameterStore: every parameter of a model in one flat allocation, and every
// gradient in another. Trainable parameters come first, in the order layers
// registered them, then the non-trainable ones (BatchNorm's moving statistics), so
// an optimizer updates the prefix values()[0, trainable_count()) in one launch
// against grads(), and a checkpoint writes each buffer in one piece.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/core/philox.hpp"
#include "ewe/core/tensor.hpp"

namespace ewe {

// Keras' initializers for the layers ewe has.
enum class Init { zeros, ones, glorot_uniform };

struct ParameterInfo {
    std::string name;      // "<layer>/<parameter>", e.g. "dense_1/kernel"
    Shape shape;
    bool trainable = true;
    Init init = Init::zeros;
    std::int64_t fan_in = 0, fan_out = 0;  // for glorot_uniform
    std::int64_t offset = 0;               // into values() (and grads() when trainable)
};

template <class T>
class ParameterStore {
public:
    // Registers a parameter before allocate(); returns its id.
    int add(std::string name, Shape shape, bool trainable, Init init, std::int64_t fan_in = 0,
            std::int64_t fan_out = 0) {
        EWE_REQUIRE(!allocated(), "ParameterStore::add(", name, "): the store is already allocated");
        for (const ParameterInfo& p : params_)
            EWE_REQUIRE(p.name != name, "ParameterStore::add: a parameter named '", name, "' already exists");
        params_.push_back(ParameterInfo{std::move(name), shape, trainable, init, fan_in, fan_out, 0});
        return static_cast<int>(params_.size()) - 1;
    }

    // Lays out and allocates both buffers on `device` and initializes the values from
    // a Philox stream of `seed` (parameter k draws stream k), so a model built twice
    // with one seed starts from the same weights on any device.
    void allocate(Device device, std::uint64_t seed) {
        EWE_REQUIRE(!allocated(), "ParameterStore::allocate: already allocated");
        allocated_ = true;
        trainable_ = 0;
        for (ParameterInfo& p : params_)
            if (p.trainable) p.offset = std::exchange(trainable_, trainable_ + p.shape.numel());
        std::int64_t total = trainable_;
        for (ParameterInfo& p : params_)
            if (!p.trainable) p.offset = std::exchange(total, total + p.shape.numel());
        Tensor<T> host(Shape{total});
        for (std::size_t k = 0; k < params_.size(); ++k) initialize(params_[k], seed, std::uint32_t(k), host.data());
        values_ = device == Device::cpu ? std::move(host) : host.to(device);
        grads_ = Tensor<T>(Shape{trainable_}, device);
        if (trainable_ > 0) {
            Tensor<T> zeros(Shape{trainable_});
            std::fill(zeros.data(), zeros.data() + trainable_, T(0));
            copy<T>(zeros.view(), grads_.view());
        }
    }

    bool allocated() const { return allocated_; }
    Device device() const { return values_.device(); }

    TensorView<T> value(int id) const { return values_.view().slice(params_[id].offset, params_[id].shape); }
    // The gradient slot of a trainable parameter.
    TensorView<T> grad(int id) const {
        EWE_REQUIRE(params_[id].trainable, "ParameterStore::grad: '", params_[id].name, "' is not trainable");
        return grads_.view().slice(params_[id].offset, params_[id].shape);
    }

    TensorView<T> values() const { return values_.view(); }
    TensorView<T> trainable_values() const { return values_.view().slice(0, Shape{trainable_}); }
    TensorView<T> grads() const { return grads_.view(); }

    const std::vector<ParameterInfo>& info() const { return params_; }
    std::int64_t trainable_count() const { return count(true); }
    std::int64_t non_trainable_count() const { return count(false); }
    std::int64_t total_count() const { return count(true) + count(false); }

private:
    std::int64_t count(bool trainable) const {
        std::int64_t n = 0;
        for (const ParameterInfo& p : params_)
            if (p.trainable == trainable) n += p.shape.numel();
        return n;
    }

    static void initialize(const ParameterInfo& p, std::uint64_t seed, std::uint32_t stream, T* values) {
        T* out = values + p.offset;
        const std::int64_t n = p.shape.numel();
        if (p.init != Init::glorot_uniform) {
            std::fill(out, out + n, p.init == Init::ones ? T(1) : T(0));
            return;
        }
        const double limit = std::sqrt(6.0 / double(p.fan_in + p.fan_out));
        const PhiloxKey key{seed, stream, 0};
        for (std::int64_t i = 0; i < n; ++i) {
            const double u = double(philox_bits(key, std::uint64_t(i))) / 4294967296.0;  // [0, 1)
            out[i] = T((2.0 * u - 1.0) * limit);
        }
    }

    std::vector<ParameterInfo> params_;
    std::int64_t trainable_ = 0;
    bool allocated_ = false;
    Tensor<T> values_, grads_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::ParameterStore<float>;
#endif
