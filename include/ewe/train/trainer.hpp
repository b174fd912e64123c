// ewe::Trainer: Keras' fit() for any TrainingObjective. Each epoch visits the data in
// an order drawn from Philox(shuffle_seed, epoch), so any epoch's order is known
// without replaying earlier ones and a run resumed from a checkpoint (fit(images,
// progress)) continues bit for bit; random draws of step s use Philox offset s. The
// data set is copied to the context's device once; batches are gathered there. The
// loss terms are read back to the host every `metrics_every` steps (on CUDA each read
// is a device sync; full-batch steps are replayed as a CUDA graph, ewe/core/
// step_replay.hpp), summed in double, and checked: a non-finite loss stops training
// with an error naming the epoch, the step and the first layer output holding a NaN or
// Inf. SIGINT finishes the current step, calls every callback's on_interrupt and
// returns (FitResult::interrupted).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/philox.hpp"
#include "ewe/core/step_replay.hpp"
#include "ewe/optim/optimizers.hpp"
#include "ewe/train/callback.hpp"
#include "ewe/train/objective.hpp"

namespace ewe {

struct FitOptions {
    std::int64_t epochs = 1;          // train through this epoch (counting epochs already done)
    std::int64_t batch_size = 0;      // 0: the objective's max_batch
    bool shuffle = true;              // false: every epoch in data order
    std::uint64_t shuffle_seed = 0;   // Philox seed of the epoch orders
    std::int64_t metrics_every = 0;   // steps between loss read-backs; 0: 1 on the CPU, 50 on CUDA
    bool handle_sigint = true;        // SIGINT ends fit() cleanly (FitResult::interrupted)
    // CUDA: capture the full-batch step once and replay it as a CUDA graph
    // (ewe::StepReplay); a step that cannot be graphed runs eagerly, and on_graph_fallback
    // (default: one line on stderr) is told why, once. No effect on the CPU.
    bool cuda_graph = true;
    std::function<void(const std::string& reason)> on_graph_fallback = {};
};

struct FitResult {
    TrainProgress progress;    // where training stopped
    bool interrupted = false;  // by SIGINT, part way through epoch progress.epoch + 1
    bool stopped = false;      // by a callback's stop_training()
    std::int64_t graph_launches = 0;  // steps run as a replayed CUDA graph
};

// The order of the n samples in epoch `epoch`: Fisher-Yates driven by Philox(seed,
// stream 0x53485546, offset epoch).
inline std::vector<std::int64_t> epoch_order(std::uint64_t seed, std::int64_t epoch, std::int64_t n) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), std::int64_t(0));
    const PhiloxKey key{seed, 0x53485546u, std::uint64_t(epoch)};
    for (std::int64_t i = n - 1; i > 0; --i) {
        const std::uint64_t bits = std::uint64_t(philox_bits(key, std::uint64_t(2 * i))) << 32 |
                                   philox_bits(key, std::uint64_t(2 * i + 1));
        const std::int64_t j = std::int64_t(bits % std::uint64_t(i + 1));
        std::swap(order[std::size_t(i)], order[std::size_t(j)]);
    }
    return order;
}

namespace detail {

inline std::atomic<bool>& sigint_received() {
    static std::atomic<bool> flag{false};
    return flag;
}

// Routes SIGINT to sigint_received() while it lives; restores the previous handler.
class SigintGuard {
public:
    explicit SigintGuard(bool active) : active_(active) {
        sigint_received().store(false);
        if (active_) previous_ = std::signal(SIGINT, [](int) { sigint_received().store(true); });
    }
    ~SigintGuard() {
        if (active_) std::signal(SIGINT, previous_);
    }
    SigintGuard(const SigintGuard&) = delete;
    SigintGuard& operator=(const SigintGuard&) = delete;

private:
    bool active_;
    void (*previous_)(int) = SIG_DFL;
};

}  // namespace detail

template <class T>
class Trainer {
public:
    Trainer(Context& ctx, TrainingObjective<T>& objective, Optimizer<T>& optimizer, FitOptions options = {})
        : ctx_(ctx), objective_(objective), optimizer_(optimizer), options_(options) {
        if (options_.batch_size == 0) options_.batch_size = objective.max_batch();
        if (options_.metrics_every == 0) options_.metrics_every = ctx.device() == Device::cpu ? 1 : 50;
        EWE_REQUIRE(options_.epochs >= 0, "Trainer: epochs must be >= 0, found ", options_.epochs);
        EWE_REQUIRE(options_.batch_size > 0 && options_.batch_size <= objective.max_batch(), "Trainer: batch_size ",
                    options_.batch_size, " must be in [1, ", objective.max_batch(), "] (the model's max_batch)");
        EWE_REQUIRE(options_.metrics_every > 0, "Trainer: metrics_every must be >= 0, found ", options_.metrics_every);
        EWE_REQUIRE(&objective.params() == &optimizer.params(),
                    "Trainer: the optimizer updates another parameter store than the objective's");
    }
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    // Adds a callback; they run in the order added.
    Trainer& add(std::shared_ptr<Callback<T>> callback) {
        EWE_REQUIRE(callback != nullptr, "Trainer::add: null callback");
        callbacks_.push_back(std::move(callback));
        return *this;
    }

    // Trains on `images` (n, features...: the objective's input shape), host or device,
    // from `start` (a fresh run, or where a checkpoint left off) through options.epochs.
    FitResult fit(TensorView<const T> images, TrainProgress start = {}) {
        const Shape sample = objective_.input_shape();
        EWE_REQUIRE(images.rank() >= 2 && images.shape().features() == sample && images.dim(0) > 0,
                    "Trainer::fit: images should be (n, ", sample.str().substr(1), " with n > 0, found ",
                    images.shape());
        EWE_REQUIRE(start.epoch >= 0 && start.iterations >= 0, "Trainer::fit: a negative start position");
        const bool upload = images.device() != ctx_.device();
        if (upload) data_ = Tensor<T>::copy_of(images, ctx_.device());
        const TensorView<const T> data = upload ? TensorView<const T>(data_.view()) : images;
        const std::int64_t n = data.dim(0), b = options_.batch_size, per = sample.numel();
        steps_per_epoch_ = (n + b - 1) / b;
        samples_ = n;
        progress_ = start;
        stop_requested_ = false;
        optimizer_.set_iterations(start.iterations);

        Tensor<T> x(sample.with_batch(b), ctx_.device());
        const std::vector<std::string> terms = objective_.term_names();
        const std::int64_t window = options_.metrics_every;
        std::vector<Tensor<T>> ring, ring_host;  // per term: (window, batch) per-sample values
        for (std::size_t k = 0; k < terms.size(); ++k) {
            ring.emplace_back(Shape{window, b}, ctx_.device());
            ring_host.emplace_back(Shape{window, b});
        }
        std::vector<std::int64_t> window_rows;  // rows of each step in the current window

        StepReplayOptions replay_options;
        replay_options.enabled = options_.cuda_graph;
        replay_options.on_fallback = options_.on_graph_fallback;
        StepReplay replay(ctx_, replay_options);
        const auto step = [&](TensorView<const T> batch) {
            objective_.compute_gradients(ctx_, batch, std::uint64_t(optimizer_.iterations()));
            optimizer_.step(ctx_);
        };
        std::vector<std::int64_t> order(static_cast<std::size_t>(n));  // data order unless shuffled
        std::iota(order.begin(), order.end(), std::int64_t(0));
        const detail::SigintGuard sigint(options_.handle_sigint);
        for (auto& c : callbacks_) c->on_train_begin(*this);
        FitResult result;
        for (std::int64_t epoch = start.epoch + 1; epoch <= options_.epochs && !stop_requested_; ++epoch) {
            for (auto& c : callbacks_) c->on_epoch_begin(*this, epoch);
            if (options_.shuffle) order = epoch_order(options_.shuffle_seed, epoch, n);
            const double t0 = seconds_now();
            std::vector<double> term_sums(terms.size(), 0.0);
            std::int64_t seen = 0;
            window_rows.clear();
            for (std::int64_t s = 0; s < steps_per_epoch_; ++s) {
                const std::int64_t m = std::min(b, n - s * b);
                for (std::int64_t r = 0; r < m; ++r)
                    ops::copy<T>(ctx_, data.slice(order[std::size_t(s * b + r)] * per, sample.with_batch(1)),
                                 x.view().slice(r * per, sample.with_batch(1)));
                // Full batches replay one graph; a smaller last batch runs eagerly.
                if (m == b) replay.run([&] { step(x.view()); });
                else step(x.view().leading(m));
                const std::size_t slot = window_rows.size();
                for (std::size_t k = 0; k < terms.size(); ++k)
                    ops::copy<T>(ctx_, objective_.per_sample_term(k, m), ring[k].view().slice(std::int64_t(slot) * b, Shape{m}));
                window_rows.push_back(m);
                progress_.iterations = optimizer_.iterations();
                const bool last = s + 1 == steps_per_epoch_;
                if (std::int64_t(window_rows.size()) == window || last) {
                    read_window(ring, ring_host, window_rows, terms.size(), b, term_sums, epoch, s + 1 - std::int64_t(slot));
                    for (std::int64_t rows : window_rows) seen += rows;
                    window_rows.clear();
                    BatchLogs logs{epoch, s + 1, steps_per_epoch_, metrics(term_sums, seen)};
                    for (auto& c : callbacks_) c->on_batch_end(*this, logs);
                }
                if (detail::sigint_received().load()) {
                    for (auto& c : callbacks_) c->on_interrupt(*this, progress_);
                    result.interrupted = true;
                    interrupted_step_ = s + 1;
                    break;
                }
                if (stop_requested_) break;
            }
            if (result.interrupted) break;
            if (stop_requested_ && seen < n) break;  // stopped part way: the epoch is not complete
            progress_.epoch = epoch;
            EpochLogs logs{epoch, progress_.iterations, seconds_now() - t0, metrics(term_sums, double(n))};
            for (auto& c : callbacks_) c->add_epoch_metrics(*this, logs);
            for (auto& c : callbacks_) c->on_epoch_end(*this, logs);
        }
        for (auto& c : callbacks_) c->on_train_end(*this);
        data_ = Tensor<T>();
        result.progress = progress_;
        result.stopped = stop_requested_;
        result.graph_launches = replay.launches();
        return result;
    }

    // Asks fit() to stop after the current step (a callback's way to end training).
    void stop_training() { stop_requested_ = true; }

    Context& context() { return ctx_; }
    TrainingObjective<T>& objective() { return objective_; }
    Optimizer<T>& optimizer() { return optimizer_; }
    const FitOptions& options() const { return options_; }
    const TrainProgress& progress() const { return progress_; }
    std::int64_t steps_per_epoch() const { return steps_per_epoch_; }
    std::int64_t samples() const { return samples_; }
    // The step (1-based, within its epoch) at which SIGINT stopped the last fit().
    std::int64_t interrupted_step() const { return interrupted_step_; }
    // Names of the values of every epoch's EpochLogs, in order: the trainer's own (also
    // those of every BatchLogs), then those its callbacks add.
    std::vector<std::string> metric_names() {
        std::vector<std::string> names = metrics({}, 1.0).names();
        for (auto& c : callbacks_)
            for (std::string& name : c->epoch_metric_names(*this)) names.push_back(std::move(name));
        return names;
    }

private:
    static double seconds_now() {
        using namespace std::chrono;
        return duration<double>(steady_clock::now().time_since_epoch()).count();
    }

    // Means per sample of `term_sums` over `count` samples: "loss", each term, then
    // "<term>_weight" for every term after the first.
    Metrics metrics(const std::vector<double>& term_sums, double count) const {
        const std::vector<std::string> terms = objective_.term_names();
        Metrics m;
        double loss = 0;
        std::vector<std::pair<std::string, double>> parts;
        for (std::size_t k = 0; k < terms.size(); ++k) {
            const double mean = k < term_sums.size() && count > 0 ? term_sums[k] / count : 0.0;
            loss += objective_.term_weight(k) * mean;
            parts.emplace_back(terms[k], mean);
        }
        m.values.emplace_back("loss", loss);
        m.values.insert(m.values.end(), parts.begin(), parts.end());
        for (std::size_t k = 1; k < terms.size(); ++k) m.values.emplace_back(terms[k] + "_weight", objective_.term_weight(k));
        return m;
    }

    // Reads the window's per-sample terms back (one device sync), adds them to
    // term_sums in step order, and fails at the first step whose loss is not finite.
    void read_window(std::vector<Tensor<T>>& ring, std::vector<Tensor<T>>& ring_host,
                     const std::vector<std::int64_t>& rows, std::size_t terms, std::int64_t b,
                     std::vector<double>& term_sums, std::int64_t epoch, std::int64_t first_step) {
        for (std::size_t k = 0; k < terms; ++k) copy<T>(ring[k].view(), ring_host[k].view());
        for (std::size_t s = 0; s < rows.size(); ++s) {
            double loss = 0;
            std::vector<double> step_sums(terms, 0.0);
            for (std::size_t k = 0; k < terms; ++k) {
                const T* v = ring_host[k].data() + std::int64_t(s) * b;
                for (std::int64_t r = 0; r < rows[s]; ++r) step_sums[k] += double(v[r]);
                loss += objective_.term_weight(k) * step_sums[k] / double(rows[s]);
            }
            if (!std::isfinite(loss)) {
                const std::int64_t step = first_step + std::int64_t(s), last = first_step + std::int64_t(rows.size()) - 1;
                fail("fit: the loss became ", std::isnan(loss) ? "NaN" : loss > 0 ? "+inf" : "-inf", " at epoch ", epoch,
                     ", step ", step, "; first non-finite",
                     step == last ? "" : " (in the forward of step " + std::to_string(last) + ", when it was read)",
                     ": ", objective_.first_nonfinite(rows.back()));
            }
            for (std::size_t k = 0; k < terms; ++k) term_sums[k] += step_sums[k];
        }
    }

    Context& ctx_;
    TrainingObjective<T>& objective_;
    Optimizer<T>& optimizer_;
    FitOptions options_;
    std::vector<std::shared_ptr<Callback<T>>> callbacks_;
    Tensor<T> data_;
    TrainProgress progress_;
    std::int64_t steps_per_epoch_ = 0, samples_ = 0, interrupted_step_ = 0;
    bool stop_requested_ = false;
};

}  // namespace ewe
