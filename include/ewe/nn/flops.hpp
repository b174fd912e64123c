// Floating-point operations of a forward pass, for benchmarks that report how close
// they run to the machine's roof: 2 per multiply-add of every convolution (direct or
// transposed, counted on its GEMM) and every Dense layer (bias additions included);
// activations, normalization and reshapes are memory-bound and not counted. A training
// step costs about three forward passes (forward, input and weight gradients).
#pragma once

#include <cstdint>

#include "ewe/nn/conv2d.hpp"
#include "ewe/nn/dense.hpp"
#include "ewe/nn/sequential.hpp"

namespace ewe {

template <class T>
double forward_flops(const Layer<T>& layer, std::int64_t batch) {
    if (const auto* model = dynamic_cast<const Sequential<T>*>(&layer)) {
        double flops = 0;
        for (std::size_t i = 0; i < model->size(); ++i) flops += forward_flops((*model)[i], batch);
        return flops;
    }
    if (const auto* conv = dynamic_cast<const Conv2D<T>*>(&layer)) return conv->geometry().with_batch(batch).flops();
    if (const auto* convt = dynamic_cast<const Conv2DTranspose<T>*>(&layer))
        return convt->geometry().with_batch(batch).flops();
    if (dynamic_cast<const Dense<T>*>(&layer)) return 2.0 * double(batch) * double(layer.param_count());
    return 0.0;
}

}  // namespace ewe
