// Per-layer CPU benchmarks of the seed sheep VAE: every conv, conv-transpose and dense
// layer (bench/sheep_layers.hpp), at batch 8 and 64, through ewe's op doors exactly as
// the layers call them in training: `forward` (bias and activation fused),
// `backward_weights` (dx empty, as the model's first layer is called: activation
// gradient, filter and bias gradients) and `backward` (the same call with the input
// gradient too; backward-data = backward - backward_weights). Counters: GFLOP/s and %
// of peak, where the peak is measured in this binary (BM_PeakFma: independent FMA
// chains on every vector lane, AVX-512 where compiled for it, else AVX2, on 1 thread
// and on all) for the thread count the layers run on (OMP_NUM_THREADS). ewe_bf16/...
// runs the same passes with ContextOptions::cpu_product_precision bf16 (registered where
// the build and the CPU have AVX512_BF16); its % peak is still of the fp32 FMA peak
// (vdpbf16ps does twice its multiply-adds, so bf16 products can pass 100%).
// bench/layers_table.py turns --benchmark_format=json output into the table of
// docs/performance.md.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <map>
#include <string>
#include <thread>
#include <vector>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

#include <ewe/ewe.hpp>

#include "sheep_layers.hpp"

namespace {

using namespace ewe;
using ewe::bench::LayerKind;
using ewe::bench::SheepLayer;

// ---------------------------------------------------------------- the FMA roof

#if defined(__AVX512F__)
using Lanes = __m512;
constexpr int kLanes = 16;
inline Lanes broadcast(float v) { return _mm512_set1_ps(v); }
inline Lanes multiply_add(Lanes a, Lanes b, Lanes c) { return _mm512_fmadd_ps(a, b, c); }
inline float first_lane(Lanes v) { return _mm512_cvtss_f32(v); }
constexpr const char* kRoofIsa = "avx512";
#elif defined(__FMA__)
using Lanes = __m256;
constexpr int kLanes = 8;
inline Lanes broadcast(float v) { return _mm256_set1_ps(v); }
inline Lanes multiply_add(Lanes a, Lanes b, Lanes c) { return _mm256_fmadd_ps(a, b, c); }
inline float first_lane(Lanes v) { return _mm256_cvtss_f32(v); }
constexpr const char* kRoofIsa = "avx2+fma";
#else
using Lanes = float;
constexpr int kLanes = 1;
inline Lanes broadcast(float v) { return v; }
inline Lanes multiply_add(Lanes a, Lanes b, Lanes c) { return a * b + c; }
inline float first_lane(Lanes v) { return v; }
constexpr const char* kRoofIsa = "scalar";
#endif

// Independent chains: more than FMA latency x FMA ports, so the units never wait.
constexpr int kChains = 16;
constexpr std::int64_t kFmaRounds = 1 << 23;
constexpr double kFmaRoundFlops = 2.0 * kChains * kLanes;

// kFmaRounds rounds of kChains independent multiply-adds on one thread.
float fma_chains(float seed) {
    Lanes acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = broadcast(seed + float(c));
    const Lanes scale = broadcast(0.999999f), shift = broadcast(1e-6f);
    for (std::int64_t r = 0; r < kFmaRounds; ++r)
        for (int c = 0; c < kChains; ++c) acc[c] = multiply_add(acc[c], scale, shift);
    float sum = 0;
    for (int c = 0; c < kChains; ++c) sum += first_lane(acc[c]);
    return sum;
}

// One run of fma_chains on each of `threads` threads, started together: the wall-clock
// seconds, and the FLOP/s summed over the threads by each one's own CPU time (what the
// threads get when other processes share the cores).
struct FmaRun {
    double seconds = 0, flops_per_cpu_second = 0;
};

double thread_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

FmaRun fma_run(int threads) {
    std::vector<std::thread> pool;
    std::vector<float> sums(std::size_t(threads), 0.0f);
    std::vector<double> cpu(std::size_t(threads), 0.0);
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&sums, &cpu, t] {
            const double cpu0 = thread_cpu_seconds();
            sums[std::size_t(t)] = fma_chains(float(t));
            cpu[std::size_t(t)] = thread_cpu_seconds() - cpu0;
        });
    for (auto& thread : pool) thread.join();
    FmaRun run;
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (double c : cpu) run.flops_per_cpu_second += kFmaRoundFlops * double(kFmaRounds) / c;
    benchmark::DoNotOptimize(sums.data());
    return run;
}

// The best of 5 measurements of the FMA rate on `threads` threads, in FLOP/s by the
// wall clock; measured once per thread count.
double peak_flops(int threads) {
    static std::map<int, double> peaks;
    auto [it, fresh] = peaks.try_emplace(threads, 0.0);
    if (fresh) {
        double best = 1e30;
        for (int i = 0; i < 5; ++i) best = std::min(best, fma_run(threads).seconds);
        it->second = kFmaRoundFlops * double(kFmaRounds) * threads / best;
    }
    return it->second;
}

// Counters: GFLOP/s by the wall clock, and GFLOP/s_cpu by the threads' CPU time.
void BM_PeakFma(benchmark::State& state) {
    const int threads = int(state.range(0));
    double seconds = 0, best_cpu_rate = 0;
    for (auto _ : state) {
        const FmaRun run = fma_run(threads);
        seconds += run.seconds;
        best_cpu_rate = std::max(best_cpu_rate, run.flops_per_cpu_second);
    }
    const double flops = kFmaRoundFlops * double(kFmaRounds) * threads;
    state.counters["GFLOP"] = flops / 1e9;
    state.counters["GFLOP/s"] = flops * double(state.iterations()) / seconds / 1e9;
    state.counters["GFLOP/s_cpu"] = best_cpu_rate / 1e9;
    state.SetLabel(kRoofIsa);
}

// ---------------------------------------------------------------- the layers

enum class Pass { forward, backward_weights, backward };

const char* to_string(Pass p) {
    switch (p) {
        case Pass::forward: return "forward";
        case Pass::backward_weights: return "backward_weights";
        default: return "backward";
    }
}

void fill_pattern(Tensor<float>& t, int period, float offset) {
    for (std::int64_t i = 0; i < t.numel(); ++i) t[i] = float(i % period) / float(period) - offset;
}

// One pass of `layer` at batch state.range(0) on the context's threads, the products'
// inputs in `precision`.
void layer_benchmark(benchmark::State& state, const SheepLayer& layer, Pass pass, CpuProductPrecision precision) {
    const std::int64_t batch = state.range(0);
    Context ctx(Device::cpu, ContextOptions{.cpu_product_precision = precision});
    const ConvGeometry g = layer.geometry.with_batch(batch);
    Shape x_shape, y_shape, w_shape, b_shape;
    switch (layer.kind) {
        case LayerKind::conv:
            x_shape = g.input_shape(), y_shape = g.output_shape(), w_shape = g.filter_shape(), b_shape = {g.out_c};
            break;
        case LayerKind::conv_transpose:
            x_shape = g.output_shape(), y_shape = g.input_shape(), w_shape = g.filter_shape(), b_shape = {g.in_c};
            break;
        case LayerKind::dense:
            x_shape = {batch, layer.in}, y_shape = {batch, layer.out}, w_shape = {layer.in, layer.out},
            b_shape = {layer.out};
            break;
    }
    Tensor<float> x(x_shape), y(y_shape), w(w_shape), b(b_shape), dy(y_shape), dpre(y_shape), dx(x_shape),
        dw(w_shape), db(b_shape);
    fill_pattern(x, 13, 0.0f);
    fill_pattern(w, 7, 0.45f);
    fill_pattern(b, 3, 0.3f);
    fill_pattern(dy, 5, 0.4f);
    const auto forward = [&] {
        switch (layer.kind) {
            case LayerKind::conv: ops::conv2d_forward<float>(ctx, g, x.view(), w.view(), b.view(), layer.activation, y.view()); break;
            case LayerKind::conv_transpose:
                ops::conv2d_transpose_forward<float>(ctx, g, x.view(), w.view(), b.view(), layer.activation, y.view());
                break;
            case LayerKind::dense: ops::dense_forward<float>(ctx, x.view(), w.view(), b.view(), layer.activation, y.view()); break;
        }
    };
    const auto backward = [&](TensorView<float> input_grad) {
        switch (layer.kind) {
            case LayerKind::conv:
                ops::conv2d_backward<float>(ctx, g, x.view(), w.view(), y.view(), dy.view(), layer.activation, dpre.view(),
                                            input_grad, dw.view(), db.view());
                break;
            case LayerKind::conv_transpose:
                ops::conv2d_transpose_backward<float>(ctx, g, x.view(), w.view(), y.view(), dy.view(), layer.activation,
                                                      dpre.view(), input_grad, dw.view(), db.view());
                break;
            case LayerKind::dense:
                ops::dense_backward<float>(ctx, x.view(), w.view(), y.view(), dy.view(), layer.activation, dpre.view(),
                                           input_grad, dw.view(), db.view());
                break;
        }
    };
    const auto run = [&] {
        if (pass == Pass::forward) forward();
        else backward(pass == Pass::backward ? dx.view() : TensorView<float>());
    };
    forward();  // y as training has it (the activation's slope reads it)
    run();      // warm-up: scratch memory grows once
    for (auto _ : state) run();
    const double flops = layer.flops(batch) * (pass == Pass::backward ? 2.0 : 1.0);
    state.counters["GFLOP"] = flops / 1e9;
    state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9 * double(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["%peak"] = benchmark::Counter(100.0 * flops * double(state.iterations()) / peak_flops(cpu::thread_count(ctx)),
                                                 benchmark::Counter::kIsRate);
    state.SetLabel(std::string(ewe::bench::to_string(layer.kind)) + " " + layer.shape());
}

}  // namespace

int main(int argc, char** argv) {
    const int all_threads = int(std::max(1u, std::thread::hardware_concurrency()));
    benchmark::RegisterBenchmark("BM_PeakFma", BM_PeakFma)->Arg(1)->Arg(all_threads)->Unit(benchmark::kMillisecond)->UseRealTime();
    for (CpuProductPrecision precision : {CpuProductPrecision::fp32, CpuProductPrecision::bf16}) {
        const bool bf16 = precision == CpuProductPrecision::bf16;
        if (bf16 && !cpu_bf16_products_available()) continue;
        ewe::bench::register_layer_benchmarks(bf16 ? "ewe_bf16" : "ewe",
                                              {Pass::forward, Pass::backward_weights, Pass::backward}, Pass::backward,
                                              [precision](benchmark::State& state, const SheepLayer& layer, Pass pass) {
                                                  layer_benchmark(state, layer, pass, precision);
                                              });
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
