// Step timing (ewe/train/step_timing.hpp) on the small sheep VAE. time_steps_on_one_batch:
// warmup + steps optimizer steps, one time per timed step with their median, minimum and
// maximum, and the last step's loss equal to that of a twin model trained by the plain
// loop. time_steps_in_trainer: 2 * steps Trainer steps (warm-up and timed), a positive
// mean, the model trained as a Trainer trains it, and bad arguments refused.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include <ewe/models/sheep_vae.hpp>
#include <ewe/train/objective.hpp>
#include <ewe/train/step_timing.hpp>

#include "small_sheep_vae.hpp"

using namespace ewe;

TEST_CASE("time_steps_on_one_batch: every timed step, its median, min and max, and the last step's loss") {
    Context ctx(Device::cpu);
    Tensor<float> x(Shape{4, 8, 8, 1});
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = float((i * 7) % 17) / 16.0f;
    SheepVae<float> vae(ctx, ewe_test::small_model_options(), 4, 7);
    VaeLoss<float> loss(ctx, VaeLossOptions{2.0 * 64, KlReduction::mean}, 4);
    loss.set_kl_weight(0.5);
    Rmsprop<float> opt(ctx, vae.params(), {.lr = 1e-3});
    const StepTimes t = time_steps_on_one_batch<float>(ctx, vae, loss, opt, x.view(), 2, 4);
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
    double recon = 0, kl = 0;
    for (std::int64_t i = 0; i < 4; ++i) {
        recon += double(twin_loss.per_sample_reconstruction().data()[i]);
        kl += double(twin_loss.per_sample_kl().data()[i]);
    }
    CHECK(std::isfinite(t.last_loss));
    CHECK(t.last_loss == recon / 4.0 + 0.5 * (kl / 4.0));
    CHECK(t.last_loss == batch_means(twin_loss).total);
    CHECK(batch_means(twin_loss).reconstruction == recon / 4.0);
    CHECK(batch_means(twin_loss).kl == kl / 4.0);
    CHECK_THROWS_AS(time_steps_on_one_batch<float>(ctx, vae, loss, opt, x.view(), 0, 0), Error);
}

TEST_CASE("time_steps_in_trainer: warm-up and timed steps through a Trainer, the mean seconds per step") {
    Context ctx(Device::cpu);
    Tensor<float> x(Shape{5, 8, 8, 1});  // fewer rows than 2 * steps * batch: repeated
    for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = float((i * 5) % 13) / 12.0f;
    SheepVae<float> vae(ctx, ewe_test::small_model_options(), 4, 3);
    VaeLoss<float> loss(ctx, VaeLossOptions{2.0 * 64, KlReduction::mean}, 4);
    Rmsprop<float> opt(ctx, vae.params(), {.lr = 1e-3});
    VaeObjective<float> objective(vae, loss);
    const double seconds = time_steps_in_trainer<float>(ctx, objective, opt, x.view(), 4, 3);
    CHECK(seconds > 0);
    CHECK(std::isfinite(seconds));
    CHECK(opt.iterations() == 6);
    CHECK(std::isfinite(batch_means(loss).total));
    CHECK_THROWS_AS(time_steps_in_trainer<float>(ctx, objective, opt, x.view(), 4, 0), Error);
    CHECK_THROWS_AS(time_steps_in_trainer<float>(ctx, objective, opt, x.view(), 0, 3), Error);
}
