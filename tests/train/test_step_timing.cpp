// time_train_steps (ewe/train/step_timing.hpp) on the small sheep VAE: warmup + steps
// optimizer steps, one time per timed step with their median, minimum and maximum, and
// the last step's loss equal to that of a twin model trained by the plain loop.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include <ewe/models/sheep_vae.hpp>
#include <ewe/train/step_timing.hpp>

#include "small_sheep_vae.hpp"

using namespace ewe;

TEST_CASE("time_train_steps: every timed step, its median, min and max, and the last step's loss") {
    Context ctx(Device::cpu);
    Tensor<float> x(Shape{4, 8, 8, 1});
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = float((i * 7) % 17) / 16.0f;
    SheepVae<float> vae(ctx, ewe_test::small_model_options(), 4, 7);
    VaeLoss<float> loss(ctx, VaeLossOptions{2.0 * 64, KlReduction::mean}, 4);
    loss.set_kl_weight(0.5);
    Rmsprop<float> opt(ctx, vae.params(), {.lr = 1e-3});
    const StepTimes t = time_train_steps<float>(ctx, vae, loss, opt, x.view(), 2, 4);
    CHECK(opt.iterations() == 6);
    REQUIRE(t.ms.size() == 4);
    CHECK(t.min_ms == *std::min_element(t.ms.begin(), t.ms.end()));
    CHECK(t.max_ms == *std::max_element(t.ms.begin(), t.ms.end()));
    std::vector<double> sorted = t.ms;
    std::sort(sorted.begin(), sorted.end());
    CHECK(t.median_ms == 0.5 * (sorted[1] + sorted[2]));

    SheepVae<float> twin(ctx, ewe_test::small_model_options(), 4, 7);
    VaeLoss<float> twin_loss(ctx, VaeLossOptions{2.0 * 64, KlReduction::mean}, 4);
    twin_loss.set_kl_weight(0.5);
    Rmsprop<float> twin_opt(ctx, twin.params(), {.lr = 1e-3});
    for (int step = 0; step < 6; ++step) train_step(ctx, twin, twin_loss, twin_opt, x.view());
    double expected = 0;
    for (std::int64_t i = 0; i < 4; ++i)
        expected += (double(twin_loss.per_sample_reconstruction().data()[i]) +
                     0.5 * double(twin_loss.per_sample_kl().data()[i])) / 4.0;
    CHECK(std::isfinite(t.last_loss));
    CHECK(t.last_loss == expected);
    CHECK_THROWS_AS(time_train_steps<float>(ctx, vae, loss, opt, x.view(), 0, 0), Error);
}
