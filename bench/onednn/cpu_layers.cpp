// The per-layer table's shapes (bench/sheep_layers.hpp) through oneDNN, the best CPU
// primitives available here (Debian's libdnnl-dev; what TensorFlow's CPU kernels call):
// convolution, deconvolution (Keras' Conv2DTranspose) and inner product, each forward
// (bias and activation fused as a post-op), backward-data and backward-weights (with the
// bias gradient) at batch 8 and 64, f32. Every tensor has format `any`, so oneDNN picks
// its own (blocked) layouts and no reorder is timed: the primitive alone, the most
// favourable reading for oneDNN. The activation's gradient, which ewe's backward ops
// include, is not timed here. Threads: OMP_NUM_THREADS, as for bench_cpu_layers.
#include <benchmark/benchmark.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "../sheep_layers.hpp"

namespace {

using ewe::bench::LayerKind;
using ewe::bench::SheepLayer;
using dims = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;

enum class Pass { forward, backward_data, backward_weights };

const char* to_string(Pass p) {
    switch (p) {
        case Pass::forward: return "forward";
        case Pass::backward_data: return "backward_data";
        default: return "backward_weights";
    }
}

dnnl::memory::desc any(const dims& d) { return {d, dnnl::memory::data_type::f32, tag::any}; }

// The tensors of one layer in oneDNN's logical order (N, C, H, W; weights O, I, H, W).
struct LayerDims {
    dims src, weights, bias, dst, strides, pad_before, pad_after;
};

LayerDims layer_dims(const SheepLayer& layer, std::int64_t batch) {
    const ewe::ConvGeometry& g = layer.geometry;
    const dims strides{g.h.stride, g.w.stride}, before{g.h.pad_before, g.w.pad_before},
        after{g.h.pad_after, g.w.pad_after};
    switch (layer.kind) {
        case LayerKind::conv:
            return {{batch, g.in_c, g.h.in, g.w.in}, {g.out_c, g.in_c, g.h.kernel, g.w.kernel}, {g.out_c},
                    {batch, g.out_c, g.h.out, g.w.out}, strides, before, after};
        case LayerKind::conv_transpose:  // the input gradient of the convolution g
            return {{batch, g.out_c, g.h.out, g.w.out}, {g.in_c, g.out_c, g.h.kernel, g.w.kernel}, {g.in_c},
                    {batch, g.in_c, g.h.in, g.w.in}, strides, before, after};
        default: return {{batch, layer.in}, {layer.out, layer.in}, {layer.out}, {batch, layer.out}, {}, {}, {}};
    }
}

dnnl::algorithm eltwise(ewe::Activation a) {
    return a == ewe::Activation::sigmoid ? dnnl::algorithm::eltwise_logistic : dnnl::algorithm::eltwise_relu;
}

// The primitive of one pass with its descriptor, for `layer` at `batch`.
std::pair<dnnl::primitive, dnnl::primitive_desc_base> make_primitive(const dnnl::engine& engine,
                                                                      const SheepLayer& layer, std::int64_t batch,
                                                                      Pass pass) {
    const LayerDims d = layer_dims(layer, batch);
    dnnl::primitive_attr attr;
    if (layer.activation != ewe::Activation::none) {
        dnnl::post_ops post;
        post.append_eltwise(1.0f, eltwise(layer.activation), 0.0f, 0.0f);
        attr.set_post_ops(post);
    }
    const auto fwd_training = dnnl::prop_kind::forward_training;
    switch (layer.kind) {
        case LayerKind::conv: {
            using namespace dnnl;
            const auto algo = algorithm::convolution_direct;
            convolution_forward::primitive_desc fwd(
                {fwd_training, algo, any(d.src), any(d.weights), any(d.bias), any(d.dst), d.strides, d.pad_before, d.pad_after},
                attr, engine);
            if (pass == Pass::forward) return {convolution_forward(fwd), fwd};
            if (pass == Pass::backward_data) {
                convolution_backward_data::primitive_desc pd(
                    {algo, any(d.src), any(d.weights), any(d.dst), d.strides, d.pad_before, d.pad_after}, engine, fwd);
                return {convolution_backward_data(pd), pd};
            }
            convolution_backward_weights::primitive_desc pd(
                {algo, any(d.src), any(d.weights), any(d.bias), any(d.dst), d.strides, d.pad_before, d.pad_after},
                engine, fwd);
            return {convolution_backward_weights(pd), pd};
        }
        case LayerKind::conv_transpose: {
            using namespace dnnl;
            const auto algo = algorithm::deconvolution_direct;
            deconvolution_forward::primitive_desc fwd(
                {fwd_training, algo, any(d.src), any(d.weights), any(d.bias), any(d.dst), d.strides, d.pad_before, d.pad_after},
                attr, engine);
            if (pass == Pass::forward) return {deconvolution_forward(fwd), fwd};
            if (pass == Pass::backward_data) {
                deconvolution_backward_data::primitive_desc pd(
                    {algo, any(d.src), any(d.weights), any(d.dst), d.strides, d.pad_before, d.pad_after}, engine, fwd);
                return {deconvolution_backward_data(pd), pd};
            }
            deconvolution_backward_weights::primitive_desc pd(
                {algo, any(d.src), any(d.weights), any(d.bias), any(d.dst), d.strides, d.pad_before, d.pad_after},
                engine, fwd);
            return {deconvolution_backward_weights(pd), pd};
        }
        default: {
            using namespace dnnl;
            inner_product_forward::primitive_desc fwd({fwd_training, any(d.src), any(d.weights), any(d.bias), any(d.dst)},
                                                      attr, engine);
            if (pass == Pass::forward) return {inner_product_forward(fwd), fwd};
            if (pass == Pass::backward_data) {
                inner_product_backward_data::primitive_desc pd({any(d.src), any(d.weights), any(d.dst)}, engine, fwd);
                return {inner_product_backward_data(pd), pd};
            }
            inner_product_backward_weights::primitive_desc pd({any(d.src), any(d.weights), any(d.bias), any(d.dst)},
                                                              engine, fwd);
            return {inner_product_backward_weights(pd), pd};
        }
    }
}

void layer_benchmark(benchmark::State& state, const SheepLayer& layer, Pass pass) {
    const std::int64_t batch = state.range(0);
    const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    dnnl::stream stream(engine);
    auto [primitive, pd] = make_primitive(engine, layer, batch, pass);
    // Every argument the primitive takes, in the layout it chose, filled with a pattern.
    std::unordered_map<int, dnnl::memory> args;
    for (int arg : {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST, DNNL_ARG_DIFF_SRC,
                    DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS, DNNL_ARG_DIFF_DST, DNNL_ARG_SCRATCHPAD}) {
        const dnnl::memory::desc md = pd.query_md(dnnl::query::exec_arg_md, arg);
        if (md.get_size() == 0) continue;
        dnnl::memory m(md, engine);
        auto* data = static_cast<float*>(m.get_data_handle());
        for (std::size_t i = 0; i < md.get_size() / sizeof(float); ++i) data[i] = float(i % 13) / 13.0f - 0.4f;
        args.emplace(arg, m);
    }
    primitive.execute(stream, args);  // warm-up
    stream.wait();
    for (auto _ : state) {
        primitive.execute(stream, args);
        stream.wait();
    }
    const double flops = layer.flops(batch);
    state.counters["GFLOP"] = flops / 1e9;
    state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9 * double(state.iterations()), benchmark::Counter::kIsRate);
    state.SetLabel(std::string(ewe::bench::to_string(layer.kind)) + " " + layer.shape() + " " +
                   pd.impl_info_str());
}

}  // namespace

int main(int argc, char** argv) {
    ewe::bench::register_layer_benchmarks("onednn", {Pass::forward, Pass::backward_data, Pass::backward_weights},
                                          Pass::backward_data, layer_benchmark);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
