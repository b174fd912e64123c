// CPU benchmarks of the sheep VAE: the whole training step (RMSprop, fp32) at the
// post's batch 8 and larger, and at batch 8 beside a thread busy on one core; the
// anomaly-scoring pass; each layer's forward + backward at the seed model's shapes; and
// the optimizer update. Counters give FLOP/s or bytes/s next to time, with the
// machine's own SGEMM rate and copy bandwidth (measured first) as the roof.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include <ewe/anomaly/reference_set.hpp>
#include <ewe/ewe.hpp>

namespace {

using namespace ewe;

Tensor<float> sheep_like_batch(std::int64_t batch) {
    Tensor<float> x(Shape{batch, 28, 28, 1});
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = float((i * 7919) % 256) / 255.0f;
    return x;
}

// Another process's load on one core, as on a laptop, a shared server or a CI runner:
// a thread that spins until the benchmark ends (at most kMaxSeconds, so a crashed or
// hung benchmark cannot leave it running), started by the benchmark itself.
class BusyCore {
public:
    static constexpr double kMaxSeconds = 120;
    BusyCore()
        : thread_([this] {
              const auto start = std::chrono::steady_clock::now();
              std::uint64_t spins = 0;
              while (!stop_.load(std::memory_order_relaxed)) {
                  ++spins;
                  if (spins % (1u << 20) == 0 &&
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > kMaxSeconds)
                      break;
              }
          }) {}
    BusyCore(const BusyCore&) = delete;
    BusyCore& operator=(const BusyCore&) = delete;
    ~BusyCore() {
        stop_ = true;
        thread_.join();
    }

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// The training step at batch state.range(0), optionally beside a BusyCore.
void train_step_benchmark(benchmark::State& state, bool busy_core) {
    const std::int64_t batch = state.range(0);
    Context ctx;
    SheepVae<float> vae(ctx, SheepVaeOptions{}, batch, 1);
    VaeLoss<float> loss(ctx, VaeLossOptions{}, batch);
    Rmsprop<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
    Tensor<float> x = sheep_like_batch(batch);
    train_step(ctx, vae, loss, optimizer, x.view());  // warm-up: scratch memory grows once
    std::optional<BusyCore> busy;
    if (busy_core) busy.emplace();
    for (auto _ : state) train_step(ctx, vae, loss, optimizer, x.view());
    state.SetItemsProcessed(state.iterations() * batch);
    state.counters["FLOP/s"] = benchmark::Counter(training_step_flops(vae, batch) * double(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

void BM_TrainStep(benchmark::State& state) { train_step_benchmark(state, false); }
BENCHMARK(BM_TrainStep)->Arg(8)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

// The batch-8 training step while one core is busy with other work (issue 16: the
// 2-thread step should degrade gracefully, not fall behind the 1-thread step).
// Compare with BM_TrainStep/8 at the same OMP_NUM_THREADS in the same run.
void BM_TrainStepContended(benchmark::State& state) { train_step_benchmark(state, true); }
BENCHMARK(BM_TrainStepContended)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();

// The anomaly-scoring pass (ewe::reconstruction_sse): 1,024 drawings through the VAE
// in eval mode, batch by batch, and each one's SSE. Items: drawings.
void BM_ScoringPass(benchmark::State& state) {
    const std::int64_t batch = state.range(0), drawings = 1024;
    Context ctx;
    SheepVae<float> vae(ctx, SheepVaeOptions{}, batch, 1);
    const Tensor<float> x = sheep_like_batch(drawings);
    Tensor<float> sse(Shape{drawings});
    for (auto _ : state) reconstruction_sse<float>(ctx, vae, x.view(), sse.view());
    state.SetItemsProcessed(state.iterations() * drawings);
}
BENCHMARK(BM_ScoringPass)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

// Every anomaly score of ewe::anomaly::ReferenceSet (sse, ink_adjusted_sse, knn_pooled,
// knn_dense, mahalanobis_gram, ensemble) for the same 1,024 drawings as BM_ScoringPass, against a
// reference set of 1,000 others fitted beforehand: one tapped pass plus the members.
// Compare its time per drawing with BM_ScoringPass/128's in the same run. Items: drawings.
void BM_EnsembleScoring(benchmark::State& state) {
    const std::int64_t batch = state.range(0), drawings = 1024;
    Context ctx;
    SheepVae<float> vae(ctx, SheepVaeOptions{}, batch, 1);
    const Tensor<float> all = sheep_like_batch(drawings + 1000);
    const TensorView<const float> x = all.view().slice(0, Shape{drawings, 28, 28, 1});
    const ewe::anomaly::ReferenceSet reference =
        ewe::anomaly::ReferenceSet::fit<float>(ctx, vae, all.view().slice(drawings * 784, Shape{1000, 28, 28, 1}));
    for (auto _ : state) benchmark::DoNotOptimize(reference.score<float>(ctx, vae, x));
    state.SetItemsProcessed(state.iterations() * drawings);
}
BENCHMARK(BM_EnsembleScoring)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

// Forward + backward of one layer of the seed model at batch 8.
template <class MakeLayer>
void layer_pass(benchmark::State& state, const Shape& input, MakeLayer make, double flops_forward) {
    const std::int64_t batch = state.range(0);
    Context ctx;
    ParameterStore<float> store;
    RandomState random{1, 0};
    BuildContext<float> b{ctx, store, random, batch};
    auto layer = make();
    const Shape out = layer->build(input, b);
    store.allocate(Device::cpu, 1);
    Tensor<float> x(input.with_batch(batch)), y(out.with_batch(batch)), dy(out.with_batch(batch)),
        dx(input.with_batch(batch));
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = float(i % 13) / 13.0f;
    for (std::int64_t i = 0; i < dy.numel(); ++i) dy[i] = float(i % 5) / 5.0f - 0.4f;
    for (auto _ : state) {
        layer->forward(ctx, x.view(), y.view(), Phase::train);
        layer->backward(ctx, x.view(), y.view(), dy.view(), dx.view());
    }
    state.counters["FLOP/s"] =
        benchmark::Counter(3.0 * flops_forward * double(batch) * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Conv2D_40to80(benchmark::State& state) {
    layer_pass(state, Shape{28, 28, 40},
               [] { return std::make_unique<Conv2D<float>>(ConvOptions{80, 4, 1, Padding::same, Activation::relu}); },
               2.0 * 28 * 28 * 16 * 40 * 80);
}
void BM_Conv2DTranspose_80to80(benchmark::State& state) {
    layer_pass(state, Shape{28, 28, 80},
               [] { return std::make_unique<Conv2DTranspose<float>>(ConvOptions{80, 4, 1, Padding::same, Activation::relu}); },
               2.0 * 28 * 28 * 16 * 80 * 80);
}
void BM_Conv2DTranspose_20to10_stride2(benchmark::State& state) {
    layer_pass(state, Shape{28, 28, 20},
               [] { return std::make_unique<Conv2DTranspose<float>>(ConvOptions{10, 4, 2, Padding::same, Activation::relu}); },
               2.0 * 28 * 28 * 16 * 20 * 10);
}
void BM_Dense_62720to100(benchmark::State& state) {
    layer_pass(state, Shape{62720}, [] { return std::make_unique<Dense<float>>(100, Activation::relu); },
               2.0 * 62720 * 100);
}
void BM_Dense_100to62720(benchmark::State& state) {
    layer_pass(state, Shape{100}, [] { return std::make_unique<Dense<float>>(62720, Activation::relu); },
               2.0 * 62720 * 100);
}
BENCHMARK(BM_Conv2D_40to80)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Conv2DTranspose_80to80)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Conv2DTranspose_20to10_stride2)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Dense_62720to100)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Dense_100to62720)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();

// RMSprop over all 12,857,495 trainable parameters: reads p, g, s and writes p, s.
// Arg 0: every gradient non-zero. Args 1 and 2: as in a trained sheep VAE, where 60% of
// the gradients are 0 (dead units) and their state has decayed to denormal floats
// (1e-39, restored before every update), with denormal flushing off (1) and on (2, what
// CPU contexts do).
void BM_RmspropUpdate(benchmark::State& state) {
    const int variant = int(state.range(0));
    Context ctx;
    set_cpu_denormal_flushing(variant != 1);
    const std::int64_t n = 12857495;
    Tensor<float> p(Shape{n}), g(Shape{n}), s(Shape{n});
    ops::fill<float>(ctx, 0.5f, p.view());
    for (std::int64_t i = 0; i < n; ++i) g[i] = variant == 0 || i % 10 >= 6 ? 0.01f : 0.0f;
    const auto reset_state = [&] {
        for (std::int64_t i = 0; i < n; ++i) s[i] = variant == 0 || i % 10 >= 6 ? 1e-5f : 1e-39f;
    };
    for (auto _ : state) {
        state.PauseTiming();
        reset_state();
        state.ResumeTiming();
        ops::rmsprop_update<float>(ctx, RmspropOptions{}, 1e-3, p.view(), g.view(), s.view());
    }
    set_cpu_denormal_flushing(true);
    state.SetBytesProcessed(state.iterations() * n * 5 * std::int64_t(sizeof(float)));
}
BENCHMARK(BM_RmspropUpdate)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// The roofs: Eigen SGEMM on 1024^3 (the same GEMM the layers use) and a 256 MB copy.
void BM_RoofSgemm(benchmark::State& state) {
    const int n = 1024;
    Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
    for (auto _ : state) {
        c.noalias() = a * b;
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["FLOP/s"] = benchmark::Counter(2.0 * n * n * n * double(state.iterations()), benchmark::Counter::kIsRate);
}
void BM_RoofCopy(benchmark::State& state) {
    const std::int64_t n = 64 << 20;
    std::vector<float> a(n, 1.0f), b(n);
    for (auto _ : state) {
        std::copy(a.begin(), a.end(), b.begin());
        benchmark::DoNotOptimize(b.data());
    }
    state.SetBytesProcessed(state.iterations() * n * 2 * std::int64_t(sizeof(float)));
}
BENCHMARK(BM_RoofSgemm)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RoofCopy)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
