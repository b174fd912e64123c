// Timing of single VAE training steps, without a Trainer (the `sheep_vae bench` loop):
// time_train_steps runs `warmup` untimed train_steps (ewe/models/vae.hpp) on one fixed
// batch, then `steps` timed ones, each closed by a device synchronization, and gives
// every step's wall-clock time with their median, minimum and maximum, and the last
// step's loss (its per-sample terms averaged on the host, as the Trainer logs it).
// For a sweep's time estimate through the Trainer, see time_training_steps (sweep.hpp).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/tensor.hpp"
#include "ewe/loss/vae_loss.hpp"
#include "ewe/models/vae.hpp"
#include "ewe/optim/optimizers.hpp"

namespace ewe {

struct StepTimes {
    std::vector<double> ms;          // each timed step, in order
    double median_ms = 0, min_ms = 0, max_ms = 0;
    double last_loss = 0;            // mean over the batch of recon + kl_weight * kl, the last step's
};

template <class T>
StepTimes time_train_steps(Context& ctx, Vae<T>& vae, VaeLoss<T>& loss, Optimizer<T>& optimizer,
                           std::type_identity_t<TensorView<const T>> x, std::int64_t warmup, std::int64_t steps) {
    EWE_REQUIRE(warmup >= 0 && steps >= 1, "time_train_steps: expected warmup >= 0 and steps >= 1, got ", warmup,
                " and ", steps);
    for (std::int64_t i = 0; i < warmup; ++i) train_step<T>(ctx, vae, loss, optimizer, x);
    ctx.synchronize();
    StepTimes t;
    for (std::int64_t i = 0; i < steps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        train_step<T>(ctx, vae, loss, optimizer, x);
        ctx.synchronize();
        t.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    const Tensor<T> recon = Tensor<T>::copy_of(loss.per_sample_reconstruction(), Device::cpu),
                    kl = Tensor<T>::copy_of(loss.per_sample_kl(), Device::cpu);
    const std::int64_t batch = recon.numel();
    for (std::int64_t i = 0; i < batch; ++i)
        t.last_loss += (double(recon[i]) + loss.kl_weight() * double(kl[i])) / double(batch);
    std::vector<double> sorted = t.ms;
    std::sort(sorted.begin(), sorted.end());
    const std::size_t m = sorted.size();
    t.median_ms = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
    t.min_ms = sorted.front();
    t.max_ms = sorted.back();
    return t;
}

}  // namespace ewe
