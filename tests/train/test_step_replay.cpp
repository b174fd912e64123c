// ewe::StepReplay on the CPU: run() calls the step every time (no graphs, no
// fallback), so a loop through it trains exactly as the plain loop does; bad options
// are refused; a throwing step propagates and leaves the replay usable. The CUDA side
// (capture, replay, fallback) is tested in tests/cuda/test_graph.cu.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <ewe/ewe.hpp>

#include "small_sheep_vae.hpp"

using namespace ewe;
using ewe_test::small_model_options;

namespace {
// The parameters after `steps` train steps with changing learning rate, KL weight and
// data, each step through `run_step` (outputs start as NaN, so a step that never ran
// cannot pass).
template <class RunStep>
std::vector<float> train(Context& ctx, int steps, RunStep&& run_step) {
    SheepVae<float> vae(ctx, small_model_options(), 4, 7);
    VaeLoss<float> loss(ctx, VaeLossOptions{2.0 * 64, KlReduction::mean}, 4);
    Adam<float> opt(ctx, vae.params(), {.lr = 1e-2});
    Tensor<float> x(Shape{4, 8, 8, 1});
    for (int step = 0; step < steps; ++step) {
        for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = float((i * 7 + step * 13) % 17) / 16.0f;
        opt.set_learning_rate(1e-2 / (1.0 + step));
        loss.set_kl_weight(0.5 + 0.1 * step);
        run_step([&] { train_step(ctx, vae, loss, opt, x.view()); });
    }
    CHECK(opt.iterations() == steps);
    std::vector<float> out(std::size_t(vae.params().total_count()), std::numeric_limits<float>::quiet_NaN());
    const TensorView<const float> values = vae.params().values();
    for (std::int64_t i = 0; i < values.numel(); ++i) out[std::size_t(i)] = values.data()[i];
    return out;
}
}  // namespace

TEST_CASE("on the CPU, StepReplay runs the step every call and trains as the plain loop does") {
    Context plain_ctx, replay_ctx;
    const std::vector<float> plain = train(plain_ctx, 6, [](auto&& step) { step(); });
    int fallbacks = 0;
    StepReplay replay(replay_ctx, {.warmup_steps = 2, .on_fallback = [&](const std::string&) { ++fallbacks; }});
    const std::vector<float> replayed = train(replay_ctx, 6, [&](auto&& step) {
        replay.run(step);
        CHECK_FALSE(replay.replaying());
    });
    CHECK(replay.runs() == 6);
    CHECK(replay.launches() == 0);
    CHECK_FALSE(replay.fell_back());
    CHECK(replay.fallback_reason().empty());
    REQUIRE(plain.size() == replayed.size());
    CHECK(std::isfinite(replayed.front()));
    CHECK(replayed == plain);  // same ops in the same order on the same threads: bit-identical
    CHECK(fallbacks == 0);
}

TEST_CASE("StepReplay calls the step exactly once per run, enabled or not") {
    Context ctx;
    for (const bool enabled : {true, false}) {
        CAPTURE(enabled);
        StepReplay replay(ctx, {.enabled = enabled});
        int calls = 0;
        for (int i = 0; i < 5; ++i) replay.run([&] { ++calls; });
        const auto step = [&] { ++calls; };  // a const lvalue callable
        replay.run(step);
        CHECK(calls == 6);
        CHECK(replay.runs() == 6);
        CHECK_FALSE(replay.replaying());
    }
}

TEST_CASE("StepReplay refuses warmup_steps < 1, and a throwing step propagates without breaking it") {
    Context ctx;
    CHECK_THROWS_WITH_AS(StepReplay(ctx, {.warmup_steps = 0}), doctest::Contains("warmup_steps must be >= 1"),
                         ewe::Error);
    StepReplay replay(ctx);
    CHECK_THROWS_AS(replay.run([] { throw std::runtime_error("step failed"); }), std::runtime_error);
    int calls = 0;
    replay.run([&] { ++calls; });
    CHECK(calls == 1);
    CHECK_FALSE(replay.fell_back());
    StepReplay moved = std::move(replay);
    moved.run([&] { ++calls; });
    CHECK(calls == 2);
    CHECK(moved.runs() == 3);
}

TEST_CASE("without the CUDA backend module, Device::cuda says how to get it") {
    // This program links no CUDA backend; the one it would load is pointed away.
    ::setenv("EWE_CUDA_BACKEND", "/nonexistent/libewe_cuda.so", 1);
    CHECK_THROWS_WITH_AS(Context{Device::cuda},
                         "ewe::Context(Device::cuda): the CUDA backend libewe_cuda.so could not be loaded: tried "
                         "EWE_CUDA_BACKEND=/nonexistent/libewe_cuda.so (no such file); link the program to "
                         "ewe::cuda (CMake: find_package(ewe COMPONENTS cuda), an ewe configured with "
                         "EWE_WITH_CUDA) or set EWE_CUDA_BACKEND to the module's path",
                         ewe::Error);
    ::unsetenv("EWE_CUDA_BACKEND");
}
