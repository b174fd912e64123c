// ewe::StepReplay on CUDA, driven from code compiled by the host compiler (this file is
// a .cpp: the CUDA backend is the module libewe_cuda.so, loaded by the first CUDA
// context, as in sheep_vae; cudart is linked only for main()'s device report). The claims of test_graph.cu for StepGraph, made
// again through StepReplay: replayed SheepVae train steps match eager ones while the
// learning rate, the KL weight, the Philox offset and the batch change every step
// (deterministic contexts; bound: relative L2 error 1e-6). And the fallback: a step that
// cannot be graphed (other tensors than the captured ones, a host read inside it, a
// second graph on the context) is reported once, runs eagerly, and trains exactly as
// the eager reference does.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "parity_util.cuh"

using namespace ewe;

namespace {
constexpr double kSame = 1e-6;
constexpr std::int64_t kBatch = 8;

ContextOptions deterministic() {
    ContextOptions o;
    o.deterministic = true;
    return o;
}

// One model, loss, optimizer and two device input buffers on a context.
struct Run {
    explicit Run(Context& c) : ctx(c) {}
    Context& ctx;
    SheepVae<float> vae{ctx, SheepVaeOptions{}, kBatch, 11};
    VaeLoss<float> loss{ctx, VaeLossOptions{}, kBatch};
    Adam<float> opt{ctx, vae.params(), {.lr = 1e-3}};
    Tensor<float> x{Shape{kBatch, 28, 28, 1}, Device::cuda}, other{Shape{kBatch, 28, 28, 1}, Device::cuda};

    // Step `step`'s data and scalars, as test_graph.cu changes them.
    void prepare(int step) {
        const Tensor<float> data = test::uniform(Shape{kBatch, 28, 28, 1}, 500 + std::uint32_t(step), 0, 1);
        ewe::copy<float>(data.view(), x.view());
        ewe::copy<float>(data.view(), other.view());
        opt.set_learning_rate(1e-3 * (1.0 + step));
        loss.set_kl_weight(0.25 * step);
    }
    void train(bool use_other) { train_step(ctx, vae, loss, opt, (use_other ? other : x).view()); }
};

void check_same_training(Run& actual, Run& expected) {
    actual.ctx.synchronize();
    expected.ctx.synchronize();
    CHECK(actual.opt.iterations() == expected.opt.iterations());
    EWE_CHECK_CLOSE(actual.loss.per_sample_reconstruction(), expected.loss.per_sample_reconstruction(), kSame);
    EWE_CHECK_CLOSE(actual.loss.per_sample_kl(), expected.loss.per_sample_kl(), kSame);
    EWE_CHECK_CLOSE(actual.vae.params().values(), expected.vae.params().values(), kSame);
    EWE_CHECK_CLOSE(actual.vae.params().grads(), expected.vae.params().grads(), kSame);
}
}  // namespace

TEST_CASE("replayed train steps match eager ones with changing scalars and data") {
    Context eager(Device::cuda, deterministic()), graphed(Device::cuda, deterministic());
    Run a(eager), b(graphed);
    int fallbacks = 0;
    StepReplay replay(graphed, {.on_fallback = [&](const std::string&) { ++fallbacks; }});
    for (int step = 0; step < 5; ++step) {
        CAPTURE(step);
        a.prepare(step);
        b.prepare(step);
        a.train(false);
        replay.run([&] { b.train(false); });
        CHECK(replay.replaying() == (step >= 1));  // step 0 is the warm-up
        INFO("fallback reason: " << replay.fallback_reason());
        CHECK_FALSE(replay.fell_back());
        check_same_training(b, a);
    }
    CHECK(replay.runs() == 5);
    CHECK(replay.launches() == 4);
    CHECK(fallbacks == 0);
}

TEST_CASE("a step on other tensors than the captured ones falls back once and trains as eager steps do") {
    Context eager(Device::cuda, deterministic()), graphed(Device::cuda, deterministic());
    Run a(eager), b(graphed);
    std::vector<std::string> reasons;
    StepReplay replay(graphed, {.on_fallback = [&](const std::string& why) { reasons.push_back(why); }});
    const bool use_other[] = {false, false, true, false, true};  // warm-up, capture, refused, eager, eager
    for (int step = 0; step < 5; ++step) {
        CAPTURE(step);
        a.prepare(step);
        b.prepare(step);
        a.train(use_other[step]);
        replay.run([&] { b.train(use_other[step]); });
        CHECK(replay.replaying() == (step == 1));
        CHECK(replay.fell_back() == (step >= 2));
        check_same_training(b, a);  // the refused replay launched nothing; its eager run did the step
    }
    CHECK(replay.launches() == 1);
    REQUIRE(reasons.size() == 1);
    CHECK(reasons[0] == replay.fallback_reason());
    CHECK(reasons[0].find("did not repeat the captured CUDA graph") != std::string::npos);

    // reset(): a fresh warm-up and capture, then replays again.
    for (int step = 5; step < 8; ++step) {
        CAPTURE(step);
        if (step == 5) replay.reset();
        a.prepare(step);
        b.prepare(step);
        a.train(false);
        replay.run([&] { b.train(false); });
        CHECK(replay.replaying() == (step >= 6));
        CHECK_FALSE(replay.fell_back());
        check_same_training(b, a);
    }
    CHECK(reasons.size() == 1);
}

TEST_CASE("a step that reads the device inside cannot be captured: it falls back at the capture") {
    Context eager(Device::cuda, deterministic()), graphed(Device::cuda, deterministic());
    Run a(eager), b(graphed);
    int fallbacks = 0;
    StepReplay replay(graphed, {.on_fallback = [&](const std::string&) { ++fallbacks; }});
    for (int step = 0; step < 4; ++step) {
        CAPTURE(step);
        a.prepare(step);
        b.prepare(step);
        if (step > 0) (void)test::to_host<float>(a.loss.per_sample_kl());
        a.train(false);
        // The host read (of the last step's loss: none before the first step) comes first,
        // so the failed capture ran none of the step's host work.
        replay.run([&] {
            if (step > 0) (void)test::to_host<float>(b.loss.per_sample_kl());
            b.train(false);
        });
        INFO("fallback reason: " << replay.fallback_reason());
        CHECK_FALSE(replay.replaying());
        CHECK(replay.fell_back() == (step >= 1));
        check_same_training(b, a);
    }
    CHECK(replay.launches() == 0);
    CHECK(fallbacks == 1);
    CHECK(replay.fallback_reason().find("could not be captured") != std::string::npos);
}

TEST_CASE("one graph per context: a second StepReplay on it falls back; disabled replay stays eager") {
    Context ctx(Device::cuda, deterministic());
    Run r(ctx);
    StepReplay first(ctx), second(ctx, {.on_fallback = [](const std::string&) {}});
    StepReplay off(ctx, {.enabled = false});
    for (int step = 0; step < 3; ++step) {
        CAPTURE(step);
        r.prepare(step);
        first.run([&] { r.train(false); });
        CHECK(first.replaying() == (step >= 1));
        off.run([] {});
        CHECK_FALSE(off.replaying());
    }
    second.run([&] { r.train(false); });  // warm-up: eager
    CHECK_FALSE(second.fell_back());
    second.run([&] { r.train(false); });  // capture refused: `first` holds the context's graph
    CHECK(second.fell_back());
    CHECK(second.fallback_reason().find("already holds a captured step graph") != std::string::npos);
    first.run([&] { r.train(false); });
    CHECK(first.replaying());
    CHECK_FALSE(first.fell_back());
    CHECK(off.launches() == 0);
    ctx.synchronize();
    CHECK(r.opt.iterations() == 6);
}

EWE_CUDA_TEST_MAIN
