// The conv, conv-transpose and dense layers of the seed sheep VAE (SheepVaeOptions{}),
// read from the model itself, with their shapes and FLOPs per pass: what the per-layer
// benchmarks (bench/cpu_layers.cpp through ewe, bench/onednn/cpu_layers.cpp through
// oneDNN) time, so both time the same list.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <ewe/ewe.hpp>

namespace ewe::bench {

enum class LayerKind { conv, conv_transpose, dense };

inline const char* to_string(LayerKind k) {
    switch (k) {
        case LayerKind::conv: return "conv";
        case LayerKind::conv_transpose: return "convT";
        default: return "dense";
    }
}

struct SheepLayer {
    std::string name;  // the model's: encoder/conv2d_1, decoder/dense_4, ...
    LayerKind kind = LayerKind::dense;
    ConvGeometry geometry;              // convolutions (batch 0: set per run)
    std::int64_t in = 0, out = 0;       // dense: features in and out
    Activation activation = Activation::none;

    // FLOPs of one pass (forward, input gradient or filter gradient: the same GEMM size)
    // at `batch`, as ewe/nn/flops.hpp counts them.
    double flops(std::int64_t batch) const {
        if (kind == LayerKind::dense) return 2.0 * double(batch) * double(in) * double(out);
        return geometry.with_batch(batch).flops();
    }
    // "in->out" channels or features, and the stride when it is not 1.
    std::string shape() const {
        if (kind == LayerKind::dense) return std::to_string(in) + "->" + std::to_string(out);
        std::string s = std::to_string(geometry.h.in) + "x" + std::to_string(geometry.w.in) + "x" +
                        std::to_string(kind == LayerKind::conv ? geometry.in_c : geometry.out_c) + "->" +
                        std::to_string(kind == LayerKind::conv ? geometry.out_c : geometry.in_c);
        if (geometry.h.stride != 1) s += " s" + std::to_string(geometry.h.stride);
        return s;
    }
};

namespace detail {
inline void add_layer(const std::string& part, const Layer<float>& layer, std::vector<SheepLayer>& out) {
    const std::string name = part + "/" + layer.name();
    if (const auto* conv = dynamic_cast<const Conv2D<float>*>(&layer))
        out.push_back({name, LayerKind::conv, conv->geometry(), 0, 0, conv->activation()});
    else if (const auto* convt = dynamic_cast<const Conv2DTranspose<float>*>(&layer))
        out.push_back({name, LayerKind::conv_transpose, convt->geometry(), 0, 0, convt->activation()});
    else if (const auto* dense = dynamic_cast<const Dense<float>*>(&layer))
        out.push_back({name, LayerKind::dense, {}, dense->input_shape()[0], dense->output_shape()[0],
                       dense->activation()});
}
}  // namespace detail

// The layers in the order a forward pass runs them.
inline std::vector<SheepLayer> sheep_layers() {
    Context ctx;
    SheepVae<float> vae(ctx, SheepVaeOptions{}, 1, 1);
    std::vector<SheepLayer> layers;
    for (std::size_t i = 0; i < vae.encoder().size(); ++i) detail::add_layer("encoder", vae.encoder()[i], layers);
    detail::add_layer("heads", vae.z_mean(), layers);
    detail::add_layer("heads", vae.z_log_var(), layers);
    for (std::size_t i = 0; i < vae.decoder().size(); ++i) detail::add_layer("decoder", vae.decoder()[i], layers);
    return layers;
}

// Registers `run(state, layer, pass)` as PREFIX/LAYER/PASS (to_string(pass)) at batch 8
// and 64 for every layer of the seed model and every pass but `input_gradient` of the
// first layer: the model's input needs no gradient in training.
template <class Pass, class Run>
void register_layer_benchmarks(const std::string& prefix, std::initializer_list<Pass> passes, Pass input_gradient,
                               Run run) {
    static const std::vector<SheepLayer> layers = sheep_layers();
    for (std::size_t i = 0; i < layers.size(); ++i)
        for (Pass pass : passes) {
            if (i == 0 && pass == input_gradient) continue;
            const SheepLayer& layer = layers[i];
            benchmark::RegisterBenchmark((prefix + "/" + layer.name + "/" + to_string(pass)).c_str(),
                                         [&layer, pass, run](benchmark::State& s) { run(s, layer, pass); })
                ->ArgName("batch")
                ->Arg(8)
                ->Arg(64)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
        }
}

}  // namespace ewe::bench
