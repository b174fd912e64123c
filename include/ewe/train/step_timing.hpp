// Timing of training steps, two ways:
//   time_steps_on_one_batch (the `sheep_vae bench` loop): `warmup` untimed train_steps
//     of a Vae (ewe/models/vae.hpp) on one fixed batch, then `steps` timed ones, each
//     closed by a device synchronization, without a Trainer: every step's wall-clock
//     time with their median, minimum and maximum, and the last step's loss
//     (batch_means, ewe/loss/vae_loss.hpp);
//   time_steps_in_trainer (a sweep's time estimate): any TrainingObjective stepped by a
//     Trainer as a run trains it (batches gathered from the data, on CUDA the captured
//     graph), the mean seconds per step.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/loss/vae_loss.hpp"
#include "ewe/models/vae.hpp"
#include "ewe/optim/optimizers.hpp"
#include "ewe/train/objective.hpp"
#include "ewe/train/trainer.hpp"

namespace ewe {

struct StepTimes {
    std::vector<double> ms;          // each timed step, in order
    double median_ms = 0, min_ms = 0, max_ms = 0;
    double last_loss = 0;            // batch_means(loss).total of the last step
};

template <class T>
StepTimes time_steps_on_one_batch(Context& ctx, Vae<T>& vae, VaeLoss<T>& loss, Optimizer<T>& optimizer,
                                  std::type_identity_t<TensorView<const T>> x, std::int64_t warmup, std::int64_t steps) {
    EWE_REQUIRE(warmup >= 0 && steps >= 1, "time_steps_on_one_batch: expected warmup >= 0 and steps >= 1, got ",
                warmup, " and ", steps);
    for (std::int64_t i = 0; i < warmup; ++i) train_step<T>(ctx, vae, loss, optimizer, x);
    ctx.synchronize();
    StepTimes t;
    for (std::int64_t i = 0; i < steps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        train_step<T>(ctx, vae, loss, optimizer, x);
        ctx.synchronize();
        t.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    t.last_loss = batch_means(loss).total;
    std::vector<double> sorted = t.ms;
    std::sort(sorted.begin(), sorted.end());
    const std::size_t m = sorted.size();
    t.median_ms = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
    t.min_ms = sorted.front();
    t.max_ms = sorted.back();
    return t;
}

// Seconds per training step of `objective` with `optimizer` in batches of `batch`, for
// an estimate of a run's time: a Trainer trains `steps` steps to warm up (on CUDA: the
// eager step and the graph capture), then `steps` timed ones, in order on the rows of the
// host tensor `images` (repeated when it has fewer than 2 * steps * batch). Nothing is
// written, and Ctrl-C is left to the caller.
template <class T>
double time_steps_in_trainer(Context& ctx, TrainingObjective<T>& objective, Optimizer<T>& optimizer,
                             TensorView<const T> images, std::int64_t batch, std::int64_t steps) {
    EWE_REQUIRE(steps >= 1 && batch >= 1 && images.rank() >= 1 && images.dim(0) > 0,
                "time_steps_in_trainer: expected steps >= 1, batch >= 1 and images");
    const std::int64_t rows = 2 * steps * batch, n = images.dim(0), row = images.numel() / n;
    Tensor<T> repeated(images.shape().features().with_batch(rows));
    for (std::int64_t i = 0; i < rows; ++i) std::copy_n(images.data() + (i % n) * row, row, repeated.data() + i * row);
    struct Clock final : Callback<T> {
        std::int64_t warm_up;
        std::chrono::steady_clock::time_point warm, end;
        explicit Clock(std::int64_t s) : warm_up(s) {}
        void on_batch_end(Trainer<T>&, const BatchLogs& logs) override {
            (logs.step == warm_up ? warm : end) = std::chrono::steady_clock::now();
        }
    };
    FitOptions fit;
    fit.batch_size = batch;
    fit.shuffle = false;
    fit.metrics_every = steps;  // two reads (device syncs): after the warm-up and at the end
    fit.handle_sigint = false;
    Trainer<T> trainer(ctx, objective, optimizer, fit);
    const auto clock = std::make_shared<Clock>(steps);
    trainer.add(clock);
    trainer.fit(repeated.view());
    return std::chrono::duration<double>(clock->end - clock->warm).count() / double(steps);
}

}  // namespace ewe
