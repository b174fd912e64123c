// ewe::Trainer on CUDA, from host-compiled code: full-batch steps replayed as a CUDA
// graph train as eager steps do (deterministic contexts, relative L2 error <= 1e-6,
// the graph really launched), the loss is read back every metrics_every steps only,
// and a CUDA run of the seed model follows the CPU run of the same seed (bound 1e-3,
// the parity tests' bound for a whole training step).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "parity_util.cuh"

using namespace ewe;

namespace {

ContextOptions deterministic() {
    ContextOptions o;
    o.deterministic = true;
    return o;
}

struct BatchCounter final : Callback<float> {
    int batch_ends = 0;
    std::vector<double> losses;
    void on_batch_end(Trainer<float>&, const BatchLogs&) override { ++batch_ends; }
    void on_epoch_end(Trainer<float>&, const EpochLogs& logs) override { losses.push_back(logs.mean["loss"]); }
};

// 20 images (3 steps of batch 8, the last one partial) trained for two epochs with
// the post's RMSprop and a KL weight of 0.5.
struct Training {
    Training(Device device, bool graph) : ctx(device, deterministic()) {
        FitOptions options;
        options.epochs = 2;
        options.shuffle_seed = 3;
        options.cuda_graph = graph;
        loss.set_kl_weight(0.5);
        Trainer<float> trainer(ctx, objective, optimizer, options);
        trainer.add(counter);
        const Tensor<float> images = test::uniform(Shape{20, 28, 28, 1}, 77, 0, 1);
        result = trainer.fit(images.view());
        ctx.synchronize();
    }
    Context ctx;
    SheepVae<float> vae{ctx, SheepVaeOptions{}, 8, 5};
    VaeLoss<float> loss{ctx, VaeLossOptions{}, 8};
    Rmsprop<float> optimizer{ctx, vae.params(), {.lr = 1e-3}};
    VaeObjective<float> objective{vae, loss};
    std::shared_ptr<BatchCounter> counter = std::make_shared<BatchCounter>();
    FitResult result;
};

}  // namespace

TEST_CASE("Trainer on CUDA: replayed full-batch steps train as eager ones; the loss is read once per epoch here") {
    Training graph(Device::cuda, true), eager(Device::cuda, false);
    CHECK(graph.result.progress.iterations == 6);
    // Per epoch two full batches and one partial: the first full one warms up, the
    // second is captured and launched, and both full ones of epoch 2 are replays.
    CHECK(graph.result.graph_launches == 3);
    CHECK(eager.result.graph_launches == 0);
    // metrics_every is 50 on CUDA: one read, at each epoch's last step.
    CHECK(graph.counter->batch_ends == 2);
    REQUIRE(graph.counter->losses.size() == 2);
    for (std::size_t e = 0; e < 2; ++e)
        CHECK(std::fabs(graph.counter->losses[e] - eager.counter->losses[e]) <= 1e-6 * std::fabs(eager.counter->losses[e]));
    EWE_CHECK_CLOSE(graph.vae.params().values(), eager.vae.params().values(), 1e-6);
}

TEST_CASE("Trainer on CUDA follows the CPU run of the same seed") {
    Training gpu(Device::cuda, true), cpu(Device::cpu, true);
    REQUIRE(gpu.counter->losses.size() == 2);
    REQUIRE(cpu.counter->losses.size() == 2);
    for (std::size_t e = 0; e < 2; ++e)
        CHECK(std::fabs(gpu.counter->losses[e] - cpu.counter->losses[e]) <= 1e-3 * std::fabs(cpu.counter->losses[e]));
    EWE_CHECK_CLOSE(gpu.vae.params().values(), cpu.vae.params().values(), 1e-3);
}

EWE_CUDA_TEST_MAIN
