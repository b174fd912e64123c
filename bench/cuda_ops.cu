// Google Benchmark of the CUDA backend's ops at the seed model's shapes (the sheep
// VAE: 28x28x1 images, filters 10/20/40/80, kernel 4, dense 62720/100/50/25/2) for
// batches 8, 64 and 256. Times come from CUDA events around the op on the context's
// stream (manual time); each row reports FLOP/s (convolutions, dense) or bytes/s
// (memory-bound kernels, counting each tensor read or written once), so the distance
// to the H100 roofline (~67 TFLOP/s fp32 non-tensor, ~3.3 TB/s HBM3) is visible.
// The last rows time a whole SheepVae train_step, eager and as a replayed CUDA graph.
// It prints the CUDA driver, runtime and device first; without a usable device it prints
// "skipped: no CUDA device (<CUDA error>)" and exits 77, or fails with EWE_REQUIRE_CUDA=1
// (ewe/cuda/device.cuh).
#include <benchmark/benchmark.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ewe/cuda/device.cuh"
#include "ewe/ewe.hpp"

using namespace ewe;

namespace {

Context* g_ctx = nullptr;

Tensor<float> device_uniform(const Shape& shape, std::uint32_t stream, float lo = -1.0f, float hi = 1.0f) {
    Tensor<float> host(shape);
    const PhiloxKey key{1, stream, 0};
    for (std::int64_t i = 0; i < host.numel(); ++i)
        host[i] = lo + (hi - lo) * float(philox_bits(key, std::uint64_t(i)) >> 8) * (1.0f / 16777216.0f);
    return host.to(Device::cuda);
}

// Times `op` with CUDA events on `ctx`'s stream; `work` is FLOPs (flops = true) or bytes
// per call.
void timed(benchmark::State& state, const std::function<void()>& op, double work, bool flops,
           Context& ctx = *g_ctx) {
    cudaStream_t stream = cuda::resources(ctx).stream();
    cudaEvent_t start, stop;
    EWE_CUDA_CHECK(cudaEventCreate(&start));
    EWE_CUDA_CHECK(cudaEventCreate(&stop));
    op();  // warm-up: plans, workspace
    ctx.synchronize();
    for (auto _ : state) {
        EWE_CUDA_CHECK(cudaEventRecord(start, stream));
        op();
        EWE_CUDA_CHECK(cudaEventRecord(stop, stream));
        EWE_CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        EWE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        state.SetIterationTime(double(ms) / 1000.0);
    }
    state.counters[flops ? "FLOP/s" : "bytes/s"] =
        benchmark::Counter(work, benchmark::Counter::kIsIterationInvariantRate);
    EWE_CUDA_CHECK(cudaEventDestroy(start));
    EWE_CUDA_CHECK(cudaEventDestroy(stop));
}

struct ConvCase {
    const char* name;
    std::int64_t size, in_c, out_c, stride;
    bool transpose;
};

// Every convolution of the seed model (input size, channels, stride).
const ConvCase kConvs[] = {
    {"enc_conv1_1to10", 28, 1, 10, 1, false},     {"enc_conv2_10to20", 28, 10, 20, 1, false},
    {"enc_conv3_20to40", 28, 20, 40, 1, false},   {"enc_conv4_40to80", 28, 40, 80, 1, false},
    {"dec_tconv_80to40", 28, 80, 40, 1, true},    {"dec_tconv_40to20", 28, 40, 20, 1, true},
    {"dec_tconv_20to10", 28, 20, 10, 1, true},    {"dec_tconv_10to10_s2", 28, 10, 10, 2, true},
    {"dec_conv_10to1_s2", 56, 10, 1, 2, false},
};

ConvGeometry geometry(const ConvCase& c, std::int64_t batch) {
    ConvGeometry g;
    g.batch = batch;
    if (c.transpose) {
        g.out_c = c.in_c;
        g.in_c = c.out_c;
        g.h = ConvAxis::transposed(c.size, 4, c.stride, Padding::same);
        g.w = ConvAxis::transposed(c.size, 4, c.stride, Padding::same);
    } else {
        g.in_c = c.in_c;
        g.out_c = c.out_c;
        g.h = ConvAxis::forward(c.size, 4, c.stride, Padding::same);
        g.w = ConvAxis::forward(c.size, 4, c.stride, Padding::same);
    }
    return g;
}

void register_conv(const ConvCase& c, std::int64_t batch) {
    const ConvGeometry g = geometry(c, batch);
    const std::string base = std::string(c.name) + "/batch:" + std::to_string(batch);
    benchmark::RegisterBenchmark((base + "/forward").c_str(), [g, c](benchmark::State& state) {
        Tensor<float> in = device_uniform(c.transpose ? g.output_shape() : g.input_shape(), 1);
        Tensor<float> w = device_uniform(g.filter_shape(), 2), b = device_uniform(Shape{c.transpose ? g.in_c : g.out_c}, 3);
        Tensor<float> out(c.transpose ? g.input_shape() : g.output_shape(), Device::cuda);
        timed(state, [&] {
            if (c.transpose) ops::conv2d_transpose_forward<float>(*g_ctx, g, in, w, b, Activation::relu, out);
            else ops::conv2d_forward<float>(*g_ctx, g, in, w, b, Activation::relu, out);
        }, g.flops(), true);
    })->UseManualTime();
    benchmark::RegisterBenchmark((base + "/backward").c_str(), [g, c](benchmark::State& state) {
        const Shape x_shape = c.transpose ? g.output_shape() : g.input_shape();
        const Shape y_shape = c.transpose ? g.input_shape() : g.output_shape();
        Tensor<float> x = device_uniform(x_shape, 4), w = device_uniform(g.filter_shape(), 5);
        Tensor<float> y = device_uniform(y_shape, 6, 0, 1), dy = device_uniform(y_shape, 7);
        Tensor<float> dpre(y_shape, Device::cuda), dx(x_shape, Device::cuda), dw(g.filter_shape(), Device::cuda);
        Tensor<float> db(Shape{y_shape[3]}, Device::cuda);
        timed(state, [&] {
            if (c.transpose)
                ops::conv2d_transpose_backward<float>(*g_ctx, g, x, w, y, dy, Activation::relu, dpre, dx, dw, db);
            else ops::conv2d_backward<float>(*g_ctx, g, x, w, y, dy, Activation::relu, dpre, dx, dw, db);
        }, 2.0 * g.flops(), true);
    })->UseManualTime();
}

void register_dense(std::int64_t in, std::int64_t out, std::int64_t batch) {
    const std::string base = "dense_" + std::to_string(in) + "x" + std::to_string(out) + "/batch:" + std::to_string(batch);
    const double flops = 2.0 * double(batch) * double(in) * double(out);
    benchmark::RegisterBenchmark((base + "/forward").c_str(), [=](benchmark::State& state) {
        Tensor<float> x = device_uniform(Shape{batch, in}, 1), w = device_uniform(Shape{in, out}, 2);
        Tensor<float> b = device_uniform(Shape{out}, 3), y(Shape{batch, out}, Device::cuda);
        timed(state, [&] { ops::dense_forward<float>(*g_ctx, x, w, b, Activation::relu, y); }, flops, true);
    })->UseManualTime();
    benchmark::RegisterBenchmark((base + "/backward").c_str(), [=](benchmark::State& state) {
        Tensor<float> x = device_uniform(Shape{batch, in}, 1), w = device_uniform(Shape{in, out}, 2);
        Tensor<float> y = device_uniform(Shape{batch, out}, 3, 0, 1), dy = device_uniform(Shape{batch, out}, 4);
        Tensor<float> dpre(Shape{batch, out}, Device::cuda), dx(Shape{batch, in}, Device::cuda);
        Tensor<float> dw(Shape{in, out}, Device::cuda), db(Shape{out}, Device::cuda);
        timed(state, [&] { ops::dense_backward<float>(*g_ctx, x, w, y, dy, Activation::relu, dpre, dx, dw, db); },
              2.0 * flops, true);
    })->UseManualTime();
}

void register_memory_bound(std::int64_t batch) {
    const std::string suffix = "/batch:" + std::to_string(batch);
    const Shape act{batch, 28, 28, 80};  // the largest activation of the encoder
    const double act_bytes = double(act.numel()) * sizeof(float);
    benchmark::RegisterBenchmark(("relu_forward" + suffix).c_str(), [=](benchmark::State& state) {
        Tensor<float> x = device_uniform(act, 1), y(act, Device::cuda);
        timed(state, [&] { ops::activation_forward<float>(*g_ctx, Activation::relu, x, y); }, 2 * act_bytes, false);
    })->UseManualTime();
    benchmark::RegisterBenchmark(("dropout_forward" + suffix).c_str(), [=](benchmark::State& state) {
        Tensor<float> x = device_uniform(act, 1), y(act, Device::cuda);
        timed(state, [&] { ops::dropout_forward<float>(*g_ctx, 0.1, PhiloxKey{1, 2, 3}, x, y); }, 2 * act_bytes,
              false);
    })->UseManualTime();
    benchmark::RegisterBenchmark(("batchnorm_train_forward" + suffix).c_str(), [=](benchmark::State& state) {
        Tensor<float> x = device_uniform(act, 1), y(act, Device::cuda);
        Tensor<float> gamma = device_uniform(Shape{80}, 2), beta = device_uniform(Shape{80}, 3);
        Tensor<float> mm = device_uniform(Shape{80}, 4), mv = device_uniform(Shape{80}, 5, 0.5f, 1.5f);
        Tensor<float> sm(Shape{80}, Device::cuda), si(Shape{80}, Device::cuda);
        timed(state, [&] {
            ops::batchnorm_forward<float>(*g_ctx, BatchNormOptions{}, Phase::train, x, gamma, beta, mm, mv, sm, si, y);
        }, 4 * act_bytes, false);  // two statistics passes, one read + one write to normalize
    })->UseManualTime();
    benchmark::RegisterBenchmark(("batchnorm_backward" + suffix).c_str(), [=](benchmark::State& state) {
        Tensor<float> x = device_uniform(act, 1), dy = device_uniform(act, 2), dx(act, Device::cuda);
        Tensor<float> gamma = device_uniform(Shape{80}, 3), sm = device_uniform(Shape{80}, 4);
        Tensor<float> si = device_uniform(Shape{80}, 5, 0.5f, 1.5f);
        Tensor<float> dg(Shape{80}, Device::cuda), dbt(Shape{80}, Device::cuda);
        timed(state, [&] { ops::batchnorm_backward<float>(*g_ctx, x, dy, gamma, sm, si, dx, dg, dbt); },
              5 * act_bytes, false);
    })->UseManualTime();
    const Shape img{batch, 28, 28, 1};
    const double img_bytes = double(img.numel()) * sizeof(float);
    benchmark::RegisterBenchmark(("mse_forward" + suffix).c_str(), [=](benchmark::State& state) {
        Tensor<float> p = device_uniform(img, 1, 0, 1), t = device_uniform(img, 2, 0, 1);
        Tensor<float> out(Shape{batch}, Device::cuda);
        timed(state, [&] { ops::mse_forward<float>(*g_ctx, 1568.0, p, t, out); }, 2 * img_bytes, false);
    })->UseManualTime();
    benchmark::RegisterBenchmark(("gather_images" + suffix).c_str(), [=](benchmark::State& state) {
        Tensor<std::uint8_t> host(Shape{4096, 28, 28, 1});
        for (std::int64_t i = 0; i < host.numel(); ++i) host[i] = std::uint8_t(i * 31);
        Tensor<std::uint8_t> images = host.to(Device::cuda);
        Tensor<std::int32_t> idx_host(Shape{batch});
        for (std::int64_t i = 0; i < batch; ++i) idx_host[i] = std::int32_t((i * 977) % 4096);
        Tensor<std::int32_t> idx = idx_host.to(Device::cuda);
        Tensor<float> out(img, Device::cuda);
        timed(state, [&] { ops::gather_images<float>(*g_ctx, images, idx, 1.0 / 255.0, out); },
              img_bytes * 1.25, false);
    })->UseManualTime();
}

void register_optimizers() {
    const std::int64_t count = 12857845 - 350;  // trainable parameters of the seed VAE
    const double bytes = double(count) * sizeof(float);
    benchmark::RegisterBenchmark("adam_update/params:12857495", [=](benchmark::State& state) {
        Tensor<float> p = device_uniform(Shape{count}, 1), g = device_uniform(Shape{count}, 2);
        Tensor<float> m = device_uniform(Shape{count}, 3), v = device_uniform(Shape{count}, 4, 0, 1);
        std::int64_t step = 1;
        timed(state, [&] { ops::adam_update<float>(*g_ctx, AdamOptions{}, 1e-3, step++, p, g, m, v); }, 7 * bytes,
              false);
    })->UseManualTime();
    benchmark::RegisterBenchmark("rmsprop_update/params:12857495", [=](benchmark::State& state) {
        Tensor<float> p = device_uniform(Shape{count}, 1), g = device_uniform(Shape{count}, 2);
        Tensor<float> ms = device_uniform(Shape{count}, 3, 0, 1);
        timed(state, [&] { ops::rmsprop_update<float>(*g_ctx, RmspropOptions{}, 1e-3, p, g, ms); }, 5 * bytes, false);
    })->UseManualTime();
    benchmark::RegisterBenchmark("sum/params:12857495", [=](benchmark::State& state) {
        Tensor<float> x = device_uniform(Shape{count}, 1), out(Shape{1}, Device::cuda);
        timed(state, [&] { ops::sum<float>(*g_ctx, x, out); }, bytes, false);
    })->UseManualTime();
}

// One whole SheepVae training step (RMSprop, the post's optimizer and the one
// bench/compare/torch_sheep_vae.py uses), eagerly or replayed as a CUDA graph
// (ewe::cuda::StepGraph), in a context of its own; reports samples/s and the device
// memory that context took for its handles, the model, its optimizer state,
// activations and workspaces (cudaMemGetInfo before and after two steps).
// The graph row shows the launch overhead that capture removes.
void register_train_step(std::int64_t batch, bool graphed) {
    const std::string name = std::string(graphed ? "train_step_graph" : "train_step_eager") + "/batch:" +
                             std::to_string(batch);
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& state) {
        std::size_t free_before = 0, free_after = 0, total = 0;
        EWE_CUDA_CHECK(cudaDeviceSynchronize());
        EWE_CUDA_CHECK(cudaMemGetInfo(&free_before, &total));
        Context ctx(Device::cuda);
        SheepVae<float> vae(ctx, SheepVaeOptions{}, batch, 1);
        VaeLoss<float> loss(ctx, VaeLossOptions{}, batch);
        Rmsprop<float> rmsprop(ctx, vae.params(), {.lr = 1e-3});
        Tensor<float> x = device_uniform(Shape{batch, 28, 28, 1}, 9, 0, 1);
        cuda::StepGraph graph(ctx);
        auto step = [&] {
            if (graphed) graph.run([&] { train_step(ctx, vae, loss, rmsprop, x.view()); });
            else train_step(ctx, vae, loss, rmsprop, x.view());
        };
        step();  // warm-up (and, graphed, the next call captures)
        step();
        EWE_CUDA_CHECK(cudaDeviceSynchronize());
        EWE_CUDA_CHECK(cudaMemGetInfo(&free_after, &total));
        timed(state, step, 0.0, false, ctx);
        state.counters.erase("bytes/s");
        state.counters["device_MiB"] = double(free_before - free_after) / (1 << 20);
        state.SetItemsProcessed(state.iterations() * batch);
    })->UseManualTime();
}

// The anomaly-scoring pass (ewe::reconstruction_sse) over the issue's 126,121 drawings,
// resident on the device: every batch through the VAE in eval mode and each drawing's
// SSE into one device buffer. Iteration time = one whole pass; items: drawings.
void register_scoring_pass(std::int64_t batch) {
    const std::string name = "scoring_pass/drawings:126121/batch:" + std::to_string(batch);
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& state) {
        const std::int64_t drawings = 126121;
        SheepVae<float> vae(*g_ctx, SheepVaeOptions{}, batch, 1);
        const Tensor<float> x = device_uniform(Shape{drawings, 28, 28, 1}, 11, 0, 1);
        Tensor<float> sse(Shape{drawings}, Device::cuda);
        timed(state, [&] { reconstruction_sse<float>(*g_ctx, vae, x.view(), sse.view()); }, 0.0, false);
        state.counters.erase("bytes/s");
        state.SetItemsProcessed(state.iterations() * drawings);
    })->UseManualTime()->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
    if (const auto exit_code = cuda::exit_code_without_device(argv[0])) return *exit_code;
    Context ctx(Device::cuda);
    g_ctx = &ctx;
    for (std::int64_t batch : {8, 64, 256}) {
        for (const ConvCase& c : kConvs) register_conv(c, batch);
        const std::int64_t top = 28 * 28 * 80;
        register_dense(top, 100, batch);  // encoder
        register_dense(100, 50, batch);
        register_dense(25, top, batch);  // decoder
        register_memory_bound(batch);
        register_train_step(batch, false);
        register_train_step(batch, true);
    }
    register_optimizers();
    for (std::int64_t batch : {256, 1024, 4096}) register_scoring_pass(batch);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    g_ctx = nullptr;
    return 0;
}
