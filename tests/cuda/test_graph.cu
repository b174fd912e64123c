// ewe::cuda::StepGraph: a captured-and-replayed SheepVae training step must match
// eager execution while the learning rate, the KL weight, the Philox offset and the
// batch contents change every step; a replay whose ops differ from the captured ones
// must be refused. Both contexts run in deterministic mode, so eager and graph runs
// launch the same kernels on the same inputs (bound: relative L2 error 1e-6).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "ewe/cuda/graph.cuh"
#include "ewe/loss/vae_loss.hpp"
#include "parity_util.cuh"

using namespace ewe;

namespace {
constexpr double kSame = 1e-6;

ContextOptions deterministic() {
    ContextOptions o;
    o.deterministic = true;
    return o;
}
}  // namespace

TEST_CASE("a replayed train step matches eager steps with changing scalars and data") {
    Context eager(Device::cuda, deterministic()), graphed(Device::cuda, deterministic());
    const SheepVaeOptions model_options;
    const std::int64_t batch = 8;
    SheepVae<float> a(eager, model_options, batch, 11), b(graphed, model_options, batch, 11);
    VaeLoss<float> la(eager, VaeLossOptions{}, batch), lb(graphed, VaeLossOptions{}, batch);
    Adam<float> oa(eager, a.params(), {.lr = 1e-3}), ob(graphed, b.params(), {.lr = 1e-3});
    Tensor<float> xa(Shape{batch, 28, 28, 1}, Device::cuda), xb(Shape{batch, 28, 28, 1}, Device::cuda);
    cuda::StepGraph graph(graphed);
    for (int step = 0; step < 5; ++step) {
        CAPTURE(step);
        const Tensor<float> data = test::uniform(Shape{batch, 28, 28, 1}, 500 + std::uint32_t(step), 0, 1);
        ewe::copy<float>(data.view(), xa.view());  // new batch, copied into the captured buffer
        ewe::copy<float>(data.view(), xb.view());
        const double lr = 1e-3 * (1.0 + step), kl = 0.25 * step;
        oa.set_learning_rate(lr);
        ob.set_learning_rate(lr);
        la.set_kl_weight(kl);
        lb.set_kl_weight(kl);
        train_step(eager, a, la, oa, xa.view());
        graph.run([&] { train_step(graphed, b, lb, ob, xb.view()); });
        CHECK(graph.captured() == (step >= 1));
        eager.synchronize();
        graphed.synchronize();
        EWE_CHECK_CLOSE(lb.per_sample_reconstruction(), la.per_sample_reconstruction(), kSame);
        EWE_CHECK_CLOSE(lb.per_sample_kl(), la.per_sample_kl(), kSame);
    }
    CHECK(graph.launches() == 4);
    EWE_CHECK_CLOSE(b.params().values(), a.params().values(), kSame);
    EWE_CHECK_CLOSE(b.params().grads(), a.params().grads(), kSame);
}

TEST_CASE("a replay with other tensors is refused, and reset() recaptures") {
    Context ctx(Device::cuda);
    const SheepVaeOptions model_options;
    const std::int64_t batch = 2;
    SheepVae<float> vae(ctx, model_options, batch, 3);
    VaeLoss<float> loss(ctx, VaeLossOptions{}, batch);
    Sgd<float> opt(ctx, vae.params(), {.lr = 1e-3});
    const Tensor<float> data = test::uniform(Shape{batch, 28, 28, 1}, 600, 0, 1);
    Tensor<float> x = data.to(Device::cuda), other = data.to(Device::cuda);
    cuda::StepGraph graph(ctx);
    graph.run([&] { train_step(ctx, vae, loss, opt, x.view()); });
    graph.run([&] { train_step(ctx, vae, loss, opt, x.view()); });
    REQUIRE(graph.captured());
    CHECK_THROWS_AS(graph.run([&] { train_step(ctx, vae, loss, opt, other.view()); }), ewe::Error);
    graph.reset();
    CHECK_NOTHROW(graph.run([&] { train_step(ctx, vae, loss, opt, other.view()); }));
    CHECK(graph.captured());
    ctx.synchronize();
}

TEST_CASE("prepare() captures without launching and launch() runs the graph (StepReplay's two halves)") {
    Context ctx(Device::cuda, deterministic());
    const std::int64_t batch = 2;
    SheepVae<float> vae(ctx, SheepVaeOptions{}, batch, 5);
    VaeLoss<float> loss(ctx, VaeLossOptions{}, batch);
    Sgd<float> opt(ctx, vae.params(), {.lr = 1e-3});
    const Tensor<float> x = test::uniform(Shape{batch, 28, 28, 1}, 700, 0, 1).to(Device::cuda);
    const auto step = [&] { train_step(ctx, vae, loss, opt, x.view()); };
    cuda::StepGraph graph(ctx, 2);
    CHECK_THROWS_AS(graph.launch(), ewe::Error);  // nothing captured yet
    for (int i = 0; i < 2; ++i) {
        CHECK(graph.warming_up());
        graph.run(step);
    }
    CHECK_FALSE(graph.warming_up());
    graph.prepare(step);
    CHECK(graph.captured());
    CHECK(graph.launches() == 0);
    graph.launch();
    graph.prepare(step);  // a replay's record half
    graph.launch();
    CHECK(graph.launches() == 2);
    ctx.synchronize();
    CHECK(opt.iterations() == 4);
    CHECK(std::isfinite(ewe::batch_means(loss).total));
}

EWE_CUDA_TEST_MAIN
